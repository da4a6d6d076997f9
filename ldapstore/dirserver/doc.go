// Package dirserver runs private directory servers as the current user in a temporary
// directory: OpenLDAP's slapd and 389 Directory Server on 127.0.0.1, and a Samba AD DC in a
// network namespace of its own, reached through a relay on 127.0.0.1. The demo's directory is
// one, and (through ldaptest) so is the directory of every test that claims LDAP behaviour.
package dirserver
