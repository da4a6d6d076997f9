// Package selftest replays the provisioning conversation Microsoft Entra ID documents for
// SCIM 2.0 endpoints against any endpoint, and reports step by step whether the endpoint
// answers the way Entra ID relies on: status codes, media type, ListResponse shape, filters
// that filter, paging that pages, case-insensitive userName uniqueness, PATCH changes that
// persist (in both the default and the aadOptscim062020 request styles), group membership
// that is added and removed without dropping other members, and deletes that delete.
//
// The conversation follows Microsoft's "Tutorial: Develop and plan provisioning for a SCIM
// endpoint in Microsoft Entra ID" (request/response examples) and "Known issues and
// resolutions with SCIM 2.0 protocol compliance of the Microsoft Entra user provisioning
// service" (the requests Entra ID sends with and without the aadOptscim062020 flag).
//
// A run creates real users and groups on the endpoint. Every one of them carries the run's
// prefix in its userName, displayName and externalId, and the run deletes everything it
// created at the end: after a failed step, and also when its context is cancelled (the
// cleanup then runs under a fresh, short deadline). Before deleting, it reads the resource
// back and deletes it only if its name still carries the prefix.
package selftest
