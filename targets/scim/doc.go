// Package scim is the SCIM 2.0 client target: it provisions users and groups into a SaaS application's SCIM API.
package scim
