// Package ldaptest gives test packages a private OpenLDAP slapd on 127.0.0.1 (see package
// slapd): one shared per test package (RunMain, Shared, OU) or one per test (Private).
package ldaptest
