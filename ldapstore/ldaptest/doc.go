// Package ldaptest runs private directory servers for tests and the demo: OpenLDAP's slapd and
// 389 Directory Server on 127.0.0.1, and a Samba AD DC in a network namespace of its own,
// reached through a relay on 127.0.0.1.
package ldaptest
