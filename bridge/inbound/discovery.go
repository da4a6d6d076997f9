package inbound

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/elimity-com/scim"
	"github.com/elimity-com/scim/optional"
	"github.com/elimity-com/scim/schema"

	"github.com/scimbridge/scimbridge/mapping"
)

// discoveryHandler is elimity-com/scim's server for /Schemas and /ResourceTypes (with their
// /{id} forms and filters), built from the mapping's schema definitions cut down to what the
// maps store (ServedSchema): an attribute, sub-attribute or type that is not stored is not
// advertised, though a write may carry it (it is ignored, as Entra ID needs). It is only ever given
// those two endpoints: the resource endpoints are this package's (see the package
// documentation for why), so its resource types carry no handler.
func discoveryHandler(st *state) (http.Handler, error) {
	user, err := toElimity(st.umap.ServedSchema())
	if err != nil {
		return nil, err
	}
	group, err := toElimity(st.gmap.ServedSchema())
	if err != nil {
		return nil, err
	}
	var userExts []scim.SchemaExtension
	for _, x := range st.umap.ServedSchema().Extensions {
		es, err := toElimity(x)
		if err != nil {
			return nil, err
		}
		userExts = append(userExts, scim.SchemaExtension{Schema: es})
	}
	srv, err := scim.NewServer(&scim.ServerArgs{
		ServiceProviderConfig: &scim.ServiceProviderConfig{MaxResults: st.cfg.MaxResults, SupportFiltering: true, SupportPatch: true},
		ResourceTypes: []scim.ResourceType{
			{ID: optional.NewString("User"), Name: "User", Endpoint: "/Users", Description: optional.NewString("User Account"), Schema: user, SchemaExtensions: userExts},
			{ID: optional.NewString("Group"), Name: "Group", Endpoint: "/Groups", Description: optional.NewString("Group"), Schema: group},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("inbound: discovery endpoints: %w", err)
	}
	return srv, nil
}

// toElimity converts a mapping schema into elimity's, through the JSON form of RFC 7643 §7.
// The common attributes id, externalId and meta are left out, as RFC 7643 §8.7.1 does.
func toElimity(s mapping.Schema) (schema.Schema, error) {
	attrs := []any{}
	for _, a := range s.Attributes {
		switch a.Name {
		case "id", "externalId", "meta":
			continue
		}
		attrs = append(attrs, attrJSON(s, a, false))
	}
	raw, err := json.Marshal(map[string]any{
		"id": s.URN, "name": s.Name, "description": describe(s), "attributes": attrs,
	})
	if err != nil {
		return schema.Schema{}, fmt.Errorf("inbound: schema %s: %w", s.URN, err)
	}
	var out schema.Schema
	if err := json.Unmarshal(raw, &out); err != nil {
		return schema.Schema{}, fmt.Errorf("inbound: schema %s: %w", s.URN, err)
	}
	return out, nil
}

func describe(s mapping.Schema) string {
	switch s.URN {
	case mapping.UserSchemaURN:
		return "User Account"
	case mapping.GroupSchemaURN:
		return "Group"
	case mapping.EnterpriseSchemaURN:
		return "Enterprise User"
	}
	return "Custom extension " + s.Name
}

func attrJSON(s mapping.Schema, a mapping.Attribute, sub bool) map[string]any {
	mut := a.Mutability
	if mut == "" {
		mut = mapping.ReadWrite
	}
	returned := "default"
	if a.Mutability == mapping.WriteOnly {
		returned = "never"
	}
	uniqueness := "none"
	if !sub && ((s.URN == mapping.UserSchemaURN && a.Name == "userName") || (s.URN == mapping.GroupSchemaURN && a.Name == "displayName")) {
		uniqueness = "server"
	}
	m := map[string]any{
		"name": a.Name, "type": a.Type, "multiValued": a.MultiValued, "required": a.Required,
		"caseExact": a.CaseExact, "mutability": mut, "returned": returned, "uniqueness": uniqueness,
	}
	if len(a.CanonicalValues) > 0 {
		m["canonicalValues"] = a.CanonicalValues
	}
	if a.Type == mapping.TypeReference {
		m["referenceTypes"] = []string{"external"}
		if a.Name == "$ref" {
			m["referenceTypes"] = []string{"User", "Group"}
		}
	}
	if a.Type == mapping.TypeComplex {
		subs := []any{}
		for _, sa := range a.SubAttributes {
			subs = append(subs, attrJSON(s, sa, true))
		}
		m["subAttributes"] = subs
	}
	return m
}

// serviceProviderConfig is RFC 7643 §5 as this server implements it. elimity-com/scim's own
// hard-codes etag and changePassword as unsupported, so it is written here.
func serviceProviderConfig(st *state) map[string]any {
	return map[string]any{
		"schemas":          []string{"urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"},
		"documentationUri": "https://github.com/scimbridge/scimbridge#inbound-scim-server",
		"patch":            map[string]any{"supported": true},
		"bulk":             map[string]any{"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
		"filter":           map[string]any{"supported": true, "maxResults": st.cfg.MaxResults},
		"changePassword":   map[string]any{"supported": true},
		"sort":             map[string]any{"supported": false},
		"etag":             map[string]any{"supported": true},
		"authenticationSchemes": []any{map[string]any{
			"type": "oauthbearertoken", "name": "Bearer token",
			"description": "A static bearer token (RFC 6750), configured as [[inbound.token]]", "primary": true,
		}},
		"meta": map[string]any{"resourceType": "ServiceProviderConfig"},
	}
}

func (q *request) serviceProviderConfig() {
	spc := map[string]any{}
	for k, v := range q.st.spc {
		spc[k] = v
	}
	spc["meta"] = map[string]any{"resourceType": "ServiceProviderConfig", "location": q.baseURL + "/ServiceProviderConfig"}
	q.writeJSON(http.StatusOK, spc, "", "")
}

// discovery hands /Schemas and /ResourceTypes to elimity-com/scim, with the path made
// relative to the base path as it expects.
func (q *request) discovery() {
	r2 := q.r.Clone(q.ctx())
	r2.URL.Path = q.rel
	r2.URL.RawPath = ""
	q.st.disco.ServeHTTP(q.w, r2)
}
