// Package mappingtest holds fixtures for tests of the SCIM side: what Microsoft Entra ID sends
// with its default user mapping, and a flat form of a resource to compare what was sent with
// what comes back.
package mappingtest
