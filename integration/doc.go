// Package integration holds the end-to-end tests that drive the real scimbridge binary against
// a real slapd and real SCIM servers on 127.0.0.1, and the repository-wide dependency rules.
package integration
