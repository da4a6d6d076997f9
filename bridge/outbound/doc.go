// Package outbound is the provisioning engine: it turns the directory's changes into durable
// per-provisioner work items and delivers them to SCIM targets with retries, dead letters,
// scope and mapping, group pushes and a mass-deletion breaker.
package outbound
