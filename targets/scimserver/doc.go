// Package scimserver is a strict in-memory SCIM 2.0 service provider with fault injection:
// the demo's sample application and the outbound tests' target.
package scimserver
