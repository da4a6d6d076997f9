// Package ldapstore is scimbridge's only door to the directory: a bounded, self-healing pool of
// go-ldap connections, dialect detection, paged searches and writes that return neutral types.
package ldapstore
