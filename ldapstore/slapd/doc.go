// Package slapd runs a private OpenLDAP slapd on 127.0.0.1 as the current user: the demo's
// directory, and (through ldaptest) the directory of every test that claims LDAP behaviour.
package slapd
