package inbound_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/ldapstore"
)

func q(filter string) string { return url.QueryEscape(filter) }

// TestEntraConversation follows the requests of Microsoft Entra ID's documented provisioning
// sequence (request shapes as Entra sends them) and checks the directory after each step.
func TestEntraConversation(t *testing.T) {
	e := newEnv(t)

	// Test Connection: a random userName.
	r := e.do("GET", "/Users?filter="+q(`userName eq "5d48a0a8-e3ba-4a8d-a8e5-3e1f6e2a9c1b"`), nil)
	e.requireStatus(r, http.StatusOK)
	require.EqualValues(t, 0, r.body["totalResults"])
	require.Empty(t, resources(r))

	// Create User, exactly as Entra's documentation shows it.
	r = e.do("POST", "/Users", `{
		"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
		"externalId": "0a21f0f2-8d2a-4f8e-bf98-7371c9e4dc6c",
		"userName": "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1",
		"active": true,
		"emails": [{"primary": true, "type": "work", "value": "Test_User_fd0ea19b-0777-472c-9f96-4f70d2226f2e@testuser.com"}],
		"meta": {"resourceType": "User"},
		"name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
		"roles": []
	}`)
	e.requireStatus(r, http.StatusCreated)
	id := r.body["id"].(string)
	require.Equal(t, e.url+"/Users/"+id, r.header.Get("Location"))
	require.NotEmpty(t, r.header.Get("ETag"))
	dn := "uid=Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1," + e.people
	en, ok := e.entry(dn)
	require.True(t, ok, "the user is an entry named by its userName")
	require.Equal(t, id, en.First("entryUUID"), "id is the entryUUID")
	require.Equal(t, []string{"inetOrgPerson"}, en.Get("objectClass"))
	require.Equal(t, "givenName familyName", en.First("cn"))
	require.Equal(t, "familyName", en.First("sn"))
	require.Equal(t, "givenName", en.First("givenName"))
	require.Equal(t, "Test_User_fd0ea19b-0777-472c-9f96-4f70d2226f2e@testuser.com", en.First("mail"))
	require.Equal(t, "0a21f0f2-8d2a-4f8e-bf98-7371c9e4dc6c", en.First("businessCategory"))

	// Get User, and by query on userName and externalId.
	r = e.do("GET", "/Users/"+id, nil)
	e.requireStatus(r, http.StatusOK)
	require.Equal(t, "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1", r.body["userName"])
	require.Equal(t, true, r.body["active"])
	r = e.do("GET", "/Users?filter="+q(`userName eq "test_user_AB6490EE-1e48-479e-a20b-2d77186b5dd1"`), nil)
	e.requireStatus(r, http.StatusOK)
	require.EqualValues(t, 1, r.body["totalResults"], "userName compares case-insensitively")
	require.Equal(t, id, resources(r)[0]["id"])
	r = e.do("GET", "/Users?filter="+q(`externalId eq "0a21f0f2-8d2a-4f8e-bf98-7371c9e4dc6c"`), nil)
	e.requireStatus(r, http.StatusOK)
	require.EqualValues(t, 1, r.body["totalResults"])

	// Update User: multi-valued and single-valued properties, capitalised ops.
	r = e.do("PATCH", "/Users/"+id, patchOps(
		op("Replace", `emails[type eq "work"].value`, "updatedEmail@microsoft.com"),
		op("Replace", "name.familyName", "updatedFamilyName"),
	))
	e.requireStatus(r, http.StatusOK)
	en, _ = e.entry(dn)
	require.Equal(t, []string{"updatedEmail@microsoft.com"}, en.Get("mail"))
	require.Equal(t, []string{"updatedFamilyName"}, en.Get("sn"))

	// A path-less Add with dotted and URN-qualified keys, and the manager as a plain string.
	mgr := e.createUser("manager.one", nil)
	r = e.do("PATCH", "/Users/"+id, patchOps(op("Add", "", map[string]any{
		"title":                    "Tour guide",
		"name.givenName":           "Barbara",
		entURN + ":department":     "Tour Operations",
		entURN + ":employeeNumber": "701984",
	}), op("Add", entURN+":manager", mgr)))
	e.requireStatus(r, http.StatusOK)
	en, _ = e.entry(dn)
	require.Equal(t, "Tour guide", en.First("title"))
	require.Equal(t, "Barbara", en.First("givenName"))
	require.Equal(t, "Tour Operations", en.First("departmentNumber"))
	require.Equal(t, "701984", en.First("employeeNumber"))
	require.True(t, ldapstore.SameDN("uid=manager.one,"+e.people, en.First("manager")), "manager holds the manager's DN")
	ent := r.body[entURN].(map[string]any)
	require.Equal(t, mgr, ent["manager"].(map[string]any)["value"], "and comes back as the manager's id")

	// Rename: userName is the RDN; the id stays.
	r = e.do("PATCH", "/Users/"+id, patchOps(op("Replace", "userName", "5b50642d-79fc-4410-9e90-4c077cdd1a59@testuser.com")))
	e.requireStatus(r, http.StatusOK)
	require.Equal(t, id, r.body["id"])
	_, ok = e.entry(dn)
	require.False(t, ok, "the old DN is gone")
	dn = "uid=5b50642d-79fc-4410-9e90-4c077cdd1a59@testuser.com," + e.people
	en, ok = e.entry(dn)
	require.True(t, ok)
	require.Equal(t, []string{"5b50642d-79fc-4410-9e90-4c077cdd1a59@testuser.com"}, en.Get("uid"), "the old RDN value is removed")
	require.Equal(t, id, en.First("entryUUID"))

	// Disable with a string boolean, as Entra sends it.
	r = e.do("PATCH", "/Users/"+id, patchOps(op("Replace", "active", "False")))
	e.requireStatus(r, http.StatusOK)
	require.Equal(t, false, r.body["active"])
	en, _ = e.entry(dn)
	require.Contains(t, en.Get("employeeType"), "scimbridge:disabled")
	r = e.do("GET", "/Users?filter="+q(`active eq false`), nil)
	e.requireStatus(r, http.StatusOK)
	require.EqualValues(t, 1, r.body["totalResults"])
	r = e.do("PATCH", "/Users/"+id, patchOps(op("Replace", "", map[string]any{"active": "True"})))
	e.requireStatus(r, http.StatusOK)
	require.Equal(t, true, r.body["active"])
	en, _ = e.entry(dn)
	require.NotContains(t, en.Get("employeeType"), "scimbridge:disabled")

	// Groups: create (with Entra's extra schema URN), get without members, find by name.
	r = e.do("POST", "/Groups", `{
		"externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
		"displayName": "displayName",
		"meta": {"resourceType": "Group"},
		"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"]
	}`)
	e.requireStatus(r, http.StatusCreated)
	gid := r.body["id"].(string)
	gdn := "cn=displayName," + e.groups
	g, ok := e.entry(gdn)
	require.True(t, ok, "a group without members is created")
	require.Equal(t, []string{""}, g.Get("member"), "with the placeholder member groupOfNames requires")
	r = e.do("GET", "/Groups/"+gid+"?excludedAttributes=members", nil)
	e.requireStatus(r, http.StatusOK)
	require.Equal(t, "displayName", r.body["displayName"])
	require.NotContains(t, r.body, "members")
	r = e.do("GET", "/Groups?excludedAttributes=members&filter="+q(`displayName eq "displayName"`), nil)
	e.requireStatus(r, http.StatusOK)
	require.EqualValues(t, 1, r.body["totalResults"])

	// Update group: rename, add members, remove members (Entra's value-list form and the
	// filter form).
	r = e.do("PATCH", "/Groups/"+gid, patchOps(op("Replace", "displayName", "1879db59-3bdf-4490-ad68-ab880a269474updatedDisplayName")))
	require.Contains(t, []int{http.StatusOK, http.StatusNoContent}, r.status, r.raw)
	gdn = "cn=1879db59-3bdf-4490-ad68-ab880a269474updatedDisplayName," + e.groups
	_, ok = e.entry(gdn)
	require.True(t, ok, "the group entry is renamed")
	r = e.do("PATCH", "/Groups/"+gid, patchOps(op("Add", "members", []any{map[string]any{"$ref": nil, "value": id}, map[string]any{"value": mgr}})))
	e.requireStatus(r, http.StatusNoContent)
	g, _ = e.entry(gdn)
	require.Len(t, g.Get("member"), 2, "two members, the placeholder gone: %v", g.Get("member"))
	require.True(t, containsDN(g.Get("member"), dn))
	r = e.do("GET", "/Groups/"+gid, nil)
	e.requireStatus(r, http.StatusOK)
	require.ElementsMatch(t, []string{id, mgr}, memberIDs(r.body))
	r = e.do("PATCH", "/Groups/"+gid, patchOps(op("Remove", "members", []any{map[string]any{"$ref": nil, "value": mgr}})))
	e.requireStatus(r, http.StatusNoContent)
	r = e.do("PATCH", "/Groups/"+gid, patchOps(op("Remove", `members[value eq "`+id+`"]`, nil)))
	e.requireStatus(r, http.StatusNoContent)
	g, _ = e.entry(gdn)
	require.Equal(t, []string{""}, g.Get("member"), "the last member removed: the placeholder is back")

	// Delete.
	r = e.do("DELETE", "/Users/"+id, nil)
	e.requireStatus(r, http.StatusNoContent)
	_, ok = e.entry(dn)
	require.False(t, ok)
	r = e.do("GET", "/Users/"+id, nil)
	e.requireStatus(r, http.StatusNotFound)
	r = e.do("DELETE", "/Groups/"+gid, nil)
	e.requireStatus(r, http.StatusNoContent)
	_, ok = e.entry(gdn)
	require.False(t, ok)
}

func containsDN(values []string, dn string) bool {
	for _, v := range values {
		if ldapstore.SameDN(v, dn) {
			return true
		}
	}
	return false
}

func memberIDs(group map[string]any) []string {
	var out []string
	list, _ := group["members"].([]any)
	for _, m := range list {
		mm, _ := m.(map[string]any)
		if v, ok := mm["value"].(string); ok {
			out = append(out, v)
		}
	}
	return out
}

var _ = strings.ToLower
