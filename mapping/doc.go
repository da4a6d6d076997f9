// Package mapping holds the pure, I/O-free translations between LDAP entries and SCIM resources.
package mapping
