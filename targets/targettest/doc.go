// Package targettest provides test helpers for targets: a recording fake Target, and the
// strict in-memory SCIM 2.0 server of package scimserver under its tests' names.
package targettest
