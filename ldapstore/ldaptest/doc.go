// Package ldaptest gives test packages private directory servers (see package dirserver):
// OpenLDAP's slapd, 389 Directory Server and a Samba AD DC, one of each kind shared per test
// package (RunMain, Shared, SharedKind, OU, OUIn) or one per test (Private).
package ldaptest
