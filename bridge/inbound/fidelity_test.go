package inbound_test

import (
	"net/http"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/bridge/inbound"
	"github.com/scimbridge/scimbridge/ldapstore/ldaptest"
	"github.com/scimbridge/scimbridge/mapping"
	"github.com/scimbridge/scimbridge/mapping/mappingtest"
)

// withOptionalSchema runs the env on a private slapd that loads etc/schema/scimbridge.schema.
func withOptionalSchema(_ *inbound.Config, lo *ldaptest.Options) {
	lo.Schemas = []string{ldaptest.OptionalSchema()}
}

// TestPatchUserNameKeepsFamilyName: issue 9's corruption. POST userName=OMalley with
// name.familyName=OMalley stores sn OMalley; a PATCH of userName alone must leave it.
func TestPatchUserNameKeepsFamilyName(t *testing.T) {
	e := newEnv(t)
	id := e.createUser("OMalley", map[string]any{"name": map[string]any{"familyName": "OMalley", "givenName": "Conan"}})
	en, _ := e.entry("uid=OMalley," + e.people)
	require.Equal(t, []string{"OMalley"}, en.Get("sn"))
	r := e.do("PATCH", "/Users/"+id, patchOps(op("replace", "userName", "newusername")))
	e.requireStatus(r, http.StatusOK)
	en, ok := e.entry("uid=newusername," + e.people)
	require.True(t, ok, "renamed")
	require.Equal(t, []string{"OMalley"}, en.Get("sn"), "sn is what the client sent, not the new userName")
	require.Equal(t, []string{"Conan OMalley"}, en.Get("cn"))
	require.Equal(t, "OMalley", r.body["name"].(map[string]any)["familyName"])
}

// TestEntraDefaultMappingRoundTrips: every attribute Entra ID's default mapping sends (and
// costCenter and division) comes back as it was sent when the optional schema is loaded; on a
// stock directory everything but what has no stock home (the country, the "other" e-mails,
// costCenter, division) does, and those come back as nothing, never as something else.
func TestEntraDefaultMappingRoundTrips(t *testing.T) {
	for name, opts := range map[string][]envOption{"stock": nil, "optional schema": {withOptionalSchema}} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, opts...)
			boss := e.createUser("boss", nil)
			sent := mappingtest.EntraUser("babs@example.com", boss)
			r := e.do("POST", "/Users", sent)
			e.requireStatus(r, http.StatusCreated)
			r = e.do("GET", "/Users/"+r.body["id"].(string), nil)
			e.requireStatus(r, http.StatusOK)
			want, got := mappingtest.Flat(sent), mappingtest.Flat(r.body)
			if name == "stock" {
				for path := range mapping.ProfileFor(mapping.DialectOpenLDAP).Schema.UserAttributes {
					delete(want, path)
				}
				require.NotContains(t, r.raw, "smtp:", "an unstored e-mail comes back as nothing, not as a work address")
				require.NotContains(t, r.raw, "United States")
			}
			require.Equal(t, want, got, "what was sent is what comes back")
			if name != "stock" {
				en, _ := e.entry("uid=babs@example.com," + e.people)
				require.Contains(t, en.Get("objectClass"), "scimbridgePerson")
				require.Equal(t, []string{"United States"}, en.Get("co"))
				require.ElementsMatch(t, mappingtest.EntraOtherEmails, en.Get("scimbridgeOtherMail"))
				var others []string
				for _, m := range r.body["emails"].([]any) {
					if m.(map[string]any)["type"] == "other" {
						others = append(others, m.(map[string]any)["value"].(string))
					}
				}
				require.ElementsMatch(t, mappingtest.EntraOtherEmails, others, "both other e-mails come back")
			}
		})
	}
}

// patchValue is a valid new value for a mapped SCIM path, by the LDAP attribute's syntax.
func patchValue(path, ldap, managerID string) any {
	switch {
	case strings.Contains(path, ":manager"):
		return managerID
	case ldap == "mail" || ldap == "scimbridgeOtherMail":
		return "changed@example.net"
	case strings.Contains(path, "phoneNumbers"):
		return "+1 555 0199"
	case ldap == "labeledURI":
		return "https://example.net/u"
	case path == "userName":
		return "renamed@example.com"
	}
	return "changed " + strings.NewReplacer("[", "", "]", "", `"`, "", " ", "").Replace(path)
}

// TestEveryMappedAttributeRoundTrips: for each mapped SCIM attribute, a PATCH that replaces it
// changes its LDAP attribute and nothing else; a PUT of the resource as read changes nothing.
func TestEveryMappedAttributeRoundTrips(t *testing.T) {
	e := newEnv(t, withOptionalSchema)
	boss, boss2 := e.createUser("boss", nil), e.createUser("boss2", nil)
	r := e.do("POST", "/Users", mappingtest.EntraUser("babs@example.com", boss))
	e.requireStatus(r, http.StatusCreated)
	id := r.body["id"].(string)
	dn := "uid=babs@example.com," + e.people
	userAttrs := func(dn string) map[string][]string {
		en, ok := e.entry(dn, "*")
		require.True(t, ok, dn)
		return en.Attrs
	}
	maps := mapping.DefaultUserAttributes()
	for k, v := range mapping.ProfileFor(mapping.DialectOpenLDAP).Schema.UserAttributes {
		maps[k] = v
	}
	paths := make([]string, 0, len(maps))
	for p := range maps {
		paths = append(paths, p)
	}
	sort.Strings(paths)

	// PUT of what GET returns: nothing changes.
	before := userAttrs(dn)
	r = e.do("GET", "/Users/"+id, nil)
	r = e.do("PUT", "/Users/"+id, r.body)
	e.requireStatus(r, http.StatusOK)
	require.Equal(t, before, userAttrs(dn), "a PUT of the resource as read is no change")

	for _, path := range paths {
		ldapAttr := maps[path]
		if path == "userName" {
			continue // last: it renames the entry
		}
		t.Run(path, func(t *testing.T) {
			e := e.with(t)
			before := userAttrs(dn)
			r := e.do("PATCH", "/Users/"+id, patchOps(op("replace", path, patchValue(path, ldapAttr, boss2))))
			e.requireStatus(r, http.StatusOK)
			after := userAttrs(dn)
			for a, vals := range after {
				if !strings.EqualFold(a, ldapAttr) && !strings.EqualFold(a, "objectClass") {
					require.Equal(t, before[a], vals, "PATCH %s changed %s", path, a)
				}
			}
			for a := range before {
				if !strings.EqualFold(a, ldapAttr) {
					require.Contains(t, after, a, "PATCH %s removed %s", path, a)
				}
			}
			require.NotEqual(t, before[ldapAttr], after[ldapAttr], "PATCH %s changed %s", path, ldapAttr)
		})
	}
	before = userAttrs(dn)
	r = e.do("PATCH", "/Users/"+id, patchOps(op("replace", "userName", "renamed@example.com")))
	e.requireStatus(r, http.StatusOK)
	after := userAttrs("uid=renamed@example.com," + e.people)
	delete(before, "uid")
	delete(after, "uid")
	require.Equal(t, before, after, "a rename changes uid and nothing else")
}

// TestSchemasAdvertiseWhatIsStored: /Schemas lists exactly what the maps store: types of
// emails and addresses as canonical values, no phone primary, no country or other e-mails on a
// stock directory, and those once the optional schema is loaded.
func TestSchemasAdvertiseWhatIsStored(t *testing.T) {
	type attr = map[string]any
	sub := func(a attr, name string) attr {
		for _, s := range a["subAttributes"].([]any) {
			if s.(attr)["name"] == name {
				return s.(attr)
			}
		}
		return nil
	}
	find := func(r response, name string) attr {
		for _, a := range r.body["attributes"].([]any) {
			if a.(attr)["name"] == name {
				return a.(attr)
			}
		}
		return nil
	}
	for name, opts := range map[string][]envOption{"stock": nil, "optional schema": {withOptionalSchema}} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, opts...)
			r := e.do("GET", "/Schemas/"+userURN, nil)
			e.requireStatus(r, http.StatusOK)
			for _, unmapped := range []string{"nickName", "userType", "locale", "timezone", "groups", "entitlements", "roles", "x509Certificates", "ims", "photos"} {
				require.Nil(t, find(r, unmapped), unmapped)
			}
			emails, phones, addresses := find(r, "emails"), find(r, "phoneNumbers"), find(r, "addresses")
			require.Nil(t, sub(emails, "display"))
			require.NotNil(t, sub(emails, "primary"), "the primary work address is stored first")
			require.Nil(t, sub(phones, "primary"), "nothing stores a phone number's primary")
			require.ElementsMatch(t, []any{"work", "mobile", "home", "fax", "pager"}, sub(phones, "type")["canonicalValues"])
			require.ElementsMatch(t, []any{"work", "home", "other"}, sub(addresses, "type")["canonicalValues"])
			ent := e.do("GET", "/Schemas/"+entURN, nil)
			if name == "stock" {
				require.Equal(t, []any{"work"}, sub(emails, "type")["canonicalValues"])
				require.Nil(t, sub(addresses, "country"))
				require.Nil(t, find(ent, "costCenter"))
			} else {
				require.Equal(t, []any{"work", "other"}, sub(emails, "type")["canonicalValues"])
				require.NotNil(t, sub(addresses, "country"))
				require.NotNil(t, find(ent, "costCenter"))
			}
			require.Equal(t, []any{"value"}, names(find(ent, "manager")["subAttributes"]))
		})
	}
}

func names(list any) []any {
	var out []any
	for _, a := range list.([]any) {
		out = append(out, a.(map[string]any)["name"])
	}
	return out
}

// TestEntraEmailMatchingFilter: with the work e-mail as a matching attribute Entra ID sends
// `emails[type eq "work"].value eq "…"`, which is not RFC grammar; it finds the user.
func TestEntraEmailMatchingFilter(t *testing.T) {
	e := newEnv(t)
	e.createUser("matched", map[string]any{"emails": []any{map[string]any{"type": "work", "value": "matched@example.com"}}})
	e.createUser("other", map[string]any{"emails": []any{map[string]any{"type": "work", "value": "other@example.com"}}})
	r := e.do("GET", "/Users?filter="+q(`emails[type eq "work"].value eq "matched@example.com"`), nil)
	e.requireStatus(r, http.StatusOK)
	require.Equal(t, []string{"matched"}, userNames(r))
	r = e.do("GET", "/Users?filter="+q(`emails[type eq "work"].value eq "nobody@example.com"`), nil)
	e.requireStatus(r, http.StatusOK)
	require.EqualValues(t, 0, r.body["totalResults"])
}
