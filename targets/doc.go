// Package targets defines the contract between the bridge and its outbound provisioning destinations.
package targets
