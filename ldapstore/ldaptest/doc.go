// Package ldaptest runs a private OpenLDAP slapd on 127.0.0.1 for tests and the demo.
package ldaptest
