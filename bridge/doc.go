// Package bridge wires the directory, the inbound SCIM server, change capture and the
// outbound provisioners into one daemon with a New/Start/Stop/Reload lifecycle.
package bridge
