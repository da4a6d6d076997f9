// Package doctor is `scimbridge doctor`: an online preflight of everything the README asks an
// admin to set up (the bind, write access, the change log, limits, schema, the inbound
// certificate, each provisioner's target), one PASS, WARN or FAIL line per check with the fix.
package doctor
