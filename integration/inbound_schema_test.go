package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/ldapstore/ldaptest"
	"github.com/scimbridge/scimbridge/mapping"
	"github.com/scimbridge/scimbridge/mapping/mappingtest"
)

// schemaRun is what one daemon made of entraUser: the resource it returns, the user's mapped
// LDAP attributes (names in lower case) and the attributes it reported as unmapped.
type schemaRun struct {
	resource map[string]string
	ldap     map[string][]string
	ignored  []string
}

// TestInboundOptionalSchema: on each directory, with the optional schema's variant loaded as
// the README says, every attribute of Entra ID's default mapping round-trips through the real
// binary (POST then GET), a PATCH of each changes its LDAP attribute and nothing else, and the
// auxiliary class is added where the variant needs it. Without the schema, the same POST
// stores everything but the variant's attributes, which are reported as unmapped, and
// nothing else differs: not the LDAP entry, not the resource returned.
func TestInboundOptionalSchema(t *testing.T) {
	for _, k := range ldaptest.Kinds {
		t.Run(string(k), func(t *testing.T) {
			p := mapping.ProfileFor(string(k))
			var with, without schemaRun
			t.Run("loaded", func(t *testing.T) { with = optionalSchemaRun(t, k, p, true) })
			t.Run("stock", func(t *testing.T) { without = optionalSchemaRun(t, k, p, false) })
			if t.Failed() {
				return
			}
			schemaPaths := slices.Sorted(maps.Keys(p.Schema.UserAttributes))
			require.Equal(t, schemaPaths, without.ignored, "exactly the variant's attributes are unmapped without it")
			require.Empty(t, with.ignored, "every attribute sent has a home with the schema")

			// Nothing else differs: the resource and the entry are those with the schema, less
			// the variant's attributes (and its auxiliary class).
			want := maps.Clone(with.resource)
			for _, path := range schemaPaths {
				delete(want, path)
			}
			// The manager is another entry on each server.
			const manager = scimEnt + ":manager.value"
			require.NotEmpty(t, without.resource[manager])
			delete(want, manager)
			delete(without.resource, manager)
			require.Equal(t, want, without.resource)
			wantLDAP := maps.Clone(with.ldap)
			for _, a := range p.Schema.Attributes {
				delete(wantLDAP, strings.ToLower(a))
			}
			if p.Schema.AuxiliaryClass != "" {
				wantLDAP["objectclass"] = slices.DeleteFunc(slices.Clone(wantLDAP["objectclass"]), func(c string) bool { return strings.EqualFold(c, p.Schema.AuxiliaryClass) })
			}
			require.NotEmpty(t, without.ldap["manager"])
			delete(wantLDAP, "manager")
			delete(without.ldap, "manager")
			require.Equal(t, wantLDAP, without.ldap)
		})
	}
}

// optionalSchemaRun runs the daemon on the package's server of kind k with or without the
// optional schema, POSTs entraUser and GETs it; with the schema, it then PATCHes each attribute.
func optionalSchemaRun(t *testing.T, k ldaptest.Kind, p mapping.Profile, loaded bool) schemaRun {
	var s *ldaptest.Server
	if loaded {
		s = ldaptest.SharedWithSchema(t, k)
	} else {
		s = ldaptest.SharedKind(t, k)
	}
	ou := ldaptest.NewOU(t, s, "optschema")
	d := startSCIMAt(t, s, ou, "", "", "http")
	v := views[k]
	require.Contains(t, d.stderr.String(), map[bool]string{true: `"scimbridge_schema":true`, false: `"scimbridge_schema":false`}[loaded],
		"the daemon found the variant in the subschema (or did not)")

	mapped := maps.Clone(p.UserAttributes)
	if loaded {
		maps.Copy(mapped, p.Schema.UserAttributes)
	}
	attrs := slices.Collect(maps.Values(mapped))
	attrs = append(attrs, "objectClass")
	read := func(id string) (string, map[string][]string) {
		t.Helper()
		dns := d.search(d.people, v.idFilter(t, id))
		require.Len(t, dns, 1)
		e, err := d.root.Get(context.Background(), dns[0], attrs)
		require.NoError(t, err)
		out := map[string][]string{}
		for name, vals := range e.Attrs {
			out[strings.ToLower(name)] = vals
		}
		slices.Sort(out["objectclass"]) // in no particular order on 389-DS
		return dns[0], out
	}

	r := d.call("POST", "/Users", map[string]any{"schemas": []any{scimUser}, "userName": "boss@example.com", "name": map[string]any{"familyName": "Boss"}})
	d.expect(r, http.StatusCreated, "")
	boss := r.body["id"].(string)
	sent := mappingtest.EntraUser("babs@example.com", boss)
	r = d.call("POST", "/Users", sent)
	d.expect(r, http.StatusCreated, "")
	id := r.body["id"].(string)
	r = d.call("GET", "/Users/"+id, nil)
	d.expect(r, http.StatusOK, "")
	run := schemaRun{resource: mappingtest.Flat(r.body)}
	_, run.ldap = read(id)
	run.ignored = unmappedLogged(t, d)
	if !loaded {
		return run
	}

	// Everything sent comes back, both "other" e-mails too (Flat keeps the first of a type,
	// and a directory need not keep the order of values).
	want := mappingtest.Flat(sent)
	delete(want, `emails[type eq "other"].value`)
	got := maps.Clone(run.resource)
	delete(got, `emails[type eq "other"].value`)
	require.Equal(t, want, got, "what was sent is what comes back")
	var others []string
	for _, m := range r.body["emails"].([]any) {
		if m.(map[string]any)["type"] == "other" {
			others = append(others, m.(map[string]any)["value"].(string))
		}
	}
	require.ElementsMatch(t, mappingtest.EntraOtherEmails, others)
	for path, attr := range p.Schema.UserAttributes {
		require.NotEmpty(t, run.ldap[strings.ToLower(attr)], "%s is stored in %s", path, attr)
	}
	if p.Schema.AuxiliaryClass != "" {
		require.Contains(t, run.ldap["objectclass"], p.Schema.AuxiliaryClass, "the class is added to a user that needs it")
		r = d.call("POST", "/Users", map[string]any{"schemas": []any{scimUser}, "userName": "plain@example.com", "name": map[string]any{"familyName": "Plain"}})
		d.expect(r, http.StatusCreated, "")
		plainID := r.body["id"].(string)
		_, plain := read(plainID)
		require.NotContains(t, plain["objectclass"], p.Schema.AuxiliaryClass, "and only to those")
		r = d.call("PATCH", "/Users/"+plainID, ops(scimOp("add", scimEnt+":costCenter", "4131")))
		d.expect(r, http.StatusOK, "")
		_, plain = read(plainID)
		require.Contains(t, plain["objectclass"], p.Schema.AuxiliaryClass, "a PATCH that needs the class adds it")
	}

	// A PATCH of each attribute changes its LDAP attribute and no other mapped one; userName
	// last, as it renames the entry on OpenLDAP and 389-DS.
	r = d.call("POST", "/Users", map[string]any{"schemas": []any{scimUser}, "userName": "boss2@example.com", "name": map[string]any{"familyName": "Boss"}})
	d.expect(r, http.StatusCreated, "")
	boss2 := r.body["id"].(string)
	for i, path := range append(slices.DeleteFunc(slices.Clone(mappingtest.EntraUserPaths), func(p string) bool { return p == "userName" }), "userName") {
		attr := strings.ToLower(mapped[path])
		require.NotEmpty(t, attr, "%s is mapped", path)
		value := patchedValue(path, i, boss2)
		_, before := read(id)
		r := d.call("PATCH", "/Users/"+id, ops(scimOp("replace", path, value)))
		d.expect(r, http.StatusOK, "")
		want := value
		if strings.HasSuffix(path, ":manager") {
			path += ".value"
		}
		got := mappingtest.Flat(r.body)
		require.Equal(t, want, got[path], "PATCH %s: the response shows it", path)
		r = d.call("GET", "/Users/"+id, nil)
		d.expect(r, http.StatusOK, "")
		require.Equal(t, got, mappingtest.Flat(r.body), "PATCH %s: GET shows what the PATCH answered", path)
		_, after := read(id)
		require.NotEqual(t, before[attr], after[attr], "PATCH %s changes %s", path, attr)
		for a := range union(before, after) {
			if a != attr && a != "objectclass" {
				require.Equal(t, before[a], after[a], "PATCH %s changed %s", path, a)
			}
		}
	}
	require.Empty(t, unmappedLogged(t, d), "no PATCH met an unmapped attribute")
	return run
}

// union is the attribute names of a and b.
func union(a, b map[string][]string) map[string]bool {
	out := map[string]bool{}
	for k := range a {
		out[k] = true
	}
	for k := range b {
		out[k] = true
	}
	return out
}

// patchedValue is a new valid value for the i-th SCIM path: an e-mail address, a telephone
// number (PrintableString), the other manager's id, or short text (AD's employeeID takes 16
// characters).
func patchedValue(path string, i int, managerID string) string {
	switch {
	case strings.HasSuffix(path, ":manager"):
		return managerID
	case strings.HasPrefix(path, "emails"):
		return fmt.Sprintf("changed%d@example.net", i)
	case strings.HasPrefix(path, "phoneNumbers"):
		return fmt.Sprintf("+1 555 01%02d", i)
	case path == "userName":
		return "renamed@example.com"
	}
	return fmt.Sprintf("changed %d", i)
}

// unmappedLogged is every SCIM attribute the daemon logged as having no LDAP mapping, sorted.
func unmappedLogged(t *testing.T, d *scimDaemon) []string {
	t.Helper()
	var out []string
	for _, line := range strings.Split(d.stderr.String(), "\n") {
		var ev map[string]any
		if json.Unmarshal([]byte(line), &ev) != nil {
			continue
		}
		if msg, _ := ev["message"].(string); strings.HasPrefix(msg, "scim attribute has no ldap mapping") {
			out = append(out, ev["attribute"].(string))
		}
	}
	slices.Sort(out)
	return out
}
