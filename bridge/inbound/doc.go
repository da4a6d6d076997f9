// Package inbound is the SCIM 2.0 server through which Microsoft Entra ID and other SCIM
// clients provision users and groups into the directory.
package inbound
