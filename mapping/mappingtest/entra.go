package mappingtest

import (
	"strings"

	"github.com/scimbridge/scimbridge/mapping"
)

// EntraUserPaths are the SCIM attributes of Microsoft Entra ID's default user mapping (its
// "custom SCIM app" defaults), and the enterprise costCenter and division, which the optional
// schema also gives a home: every path EntraUser sets but active.
var EntraUserPaths = []string{
	"userName", "externalId", "displayName", "title", "preferredLanguage",
	"name.givenName", "name.familyName", "name.formatted",
	`emails[type eq "work"].value`, `emails[type eq "other"].value`,
	`phoneNumbers[type eq "work"].value`, `phoneNumbers[type eq "mobile"].value`, `phoneNumbers[type eq "fax"].value`,
	`addresses[type eq "work"].streetAddress`, `addresses[type eq "work"].locality`, `addresses[type eq "work"].region`,
	`addresses[type eq "work"].postalCode`, `addresses[type eq "work"].country`, `addresses[type eq "other"].formatted`,
	mapping.EnterpriseSchemaURN + ":employeeNumber", mapping.EnterpriseSchemaURN + ":department",
	mapping.EnterpriseSchemaURN + ":manager", mapping.EnterpriseSchemaURN + ":costCenter",
	mapping.EnterpriseSchemaURN + ":division",
}

// EntraOtherEmails are the "other" e-mail addresses of EntraUser: Entra ID's proxyAddresses.
var EntraOtherEmails = []string{"SMTP:babs@example.com", "smtp:bjensen@example.org"}

// EntraUser is a user as Entra ID's default mapping sends it, with every attribute of
// EntraUserPaths set: the work e-mail and the "other" ones (EntraOtherEmails), the work address
// with its country, the office as the "other" address, work, mobile and fax phones, and the
// enterprise attributes, the manager as managerID. Each value fits the attribute it maps to in
// every dialect (AD's employeeID takes 16 characters).
func EntraUser(userName, managerID string) map[string]any {
	emails := []any{map[string]any{"type": "work", "value": "babs@example.com", "primary": true}}
	for _, e := range EntraOtherEmails {
		emails = append(emails, map[string]any{"type": "other", "value": e})
	}
	return map[string]any{
		"schemas":           []any{mapping.UserSchemaURN, mapping.EnterpriseSchemaURN},
		"externalId":        "0a21f0f2-8d2a-4f8e-bf98-7371c9e4dc6c",
		"userName":          userName,
		"active":            true,
		"displayName":       "Babs Jensen",
		"title":             "Tour Guide",
		"preferredLanguage": "en-US",
		"name":              map[string]any{"givenName": "Barbara", "familyName": "Jensen", "formatted": "Barbara Jensen"},
		"emails":            emails,
		"addresses": []any{
			map[string]any{"type": "work", "streetAddress": "100 Universal City Plaza", "locality": "Hollywood", "region": "CA", "postalCode": "91608", "country": "United States"},
			map[string]any{"type": "other", "formatted": "Building 7, room 42"},
		},
		"phoneNumbers": []any{
			map[string]any{"type": "work", "value": "+1 555 555 5555"},
			map[string]any{"type": "mobile", "value": "+1 555 555 4444"},
			map[string]any{"type": "fax", "value": "+1 555 555 3333"},
		},
		mapping.EnterpriseSchemaURN: map[string]any{
			"employeeNumber": "701984", "department": "Tour Operations", "manager": managerID,
			"costCenter": "4130", "division": "Studio Tours",
		},
	}
}

// Flat reduces a SCIM user resource to path → value (mapping.Flatten) without what a server
// adds (id, meta, schemas), the manager as its id (the ".value" path, as Entra ID sends a
// plain id). Flatten keeps the first value of each type of a multi-valued attribute: compare
// the others (EntraOtherEmails) apart.
func Flat(res map[string]any) map[string]string {
	out := mapping.Flatten(res)
	for k, v := range out {
		switch {
		case k == "id" || strings.HasPrefix(k, "meta") || strings.HasPrefix(k, "schemas"):
			delete(out, k)
		case strings.HasSuffix(k, ":manager"):
			delete(out, k)
			out[k+".value"] = v
		}
	}
	return out
}
