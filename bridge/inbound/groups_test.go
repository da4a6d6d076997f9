package inbound_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestGroupMemberFastPath: Entra's member PATCHes on a large group never read its member list:
// one Modify adds or deletes the values. Adding a member twice or removing an absent one is a
// success (16/20 are idempotent), and the group stays valid when it empties.
func TestGroupMemberFastPath(t *testing.T) {
	e, f := newFaultyEnv(t, nil)
	names := e.seedUsers(400, "m", nil)
	var b strings.Builder
	fmt.Fprintf(&b, "dn: cn=big,%s\nobjectClass: groupOfNames\ncn: big\n", e.groups)
	for _, n := range names[:399] {
		fmt.Fprintf(&b, "member: uid=%s,%s\n", n, e.people)
	}
	e.ldif(b.String())
	r := e.do("GET", "/Groups?excludedAttributes=members&filter="+q(`displayName eq "big"`), nil)
	e.requireStatus(r, http.StatusOK)
	gid := resources(r)[0]["id"].(string)
	r = e.do("GET", "/Users?filter="+q(`userName eq "m399"`), nil)
	newID := resources(r)[0]["id"].(string)
	r = e.do("GET", "/Users?filter="+q(`userName eq "m000"`), nil)
	oldID := resources(r)[0]["id"].(string)

	f.reset()
	r = e.do("PATCH", "/Groups/"+gid, patchOps(
		op("Add", "members", []any{map[string]any{"value": newID}}),
		op("Remove", "members", []any{map[string]any{"value": oldID}}),
	))
	e.requireStatus(r, http.StatusNoContent)
	require.NotEmpty(t, r.header.Get("ETag"))
	require.False(t, f.readAttribute("member"), "the member list was not read")
	require.Equal(t, 1, f.count("modify"), "one Modify")
	g, _ := e.entry("cn=big," + e.groups)
	require.Len(t, g.Get("member"), 399)
	require.True(t, containsDN(g.Get("member"), "uid=m399,"+e.people))
	require.False(t, containsDN(g.Get("member"), "uid=m000,"+e.people))

	// Replayed (at-least-once delivery): still a success, nothing changes.
	before := stripCSN(e.snapshot())
	r = e.do("PATCH", "/Groups/"+gid, patchOps(
		op("Add", "members", []any{map[string]any{"value": newID}}),
		op("Remove", "members", []any{map[string]any{"value": oldID}}),
	))
	e.requireStatus(r, http.StatusNoContent)
	e.requireUnchanged(before, stripCSN(e.snapshot()), "unchanged")
	r = e.do("PATCH", "/Groups/"+gid, patchOps(op("Remove", `members[value eq "00000000-0000-0000-0000-000000000000"]`, nil)))
	e.requireStatus(r, http.StatusNoContent, "removing an unknown member is done")

	// A member PATCH with If-Match is atomic too.
	r = e.do("GET", "/Groups/"+gid+"?excludedAttributes=members", nil)
	etag := r.header.Get("ETag")
	r = e.do("PATCH", "/Groups/"+gid, patchOps(op("Add", "members", []any{map[string]any{"value": oldID}})), "If-Match", etag)
	e.requireStatus(r, http.StatusNoContent)
	r = e.do("PATCH", "/Groups/"+gid, patchOps(op("Remove", "members", []any{map[string]any{"value": oldID}})), "If-Match", etag)
	e.requireStatus(r, http.StatusPreconditionFailed)

	// Replace the whole membership (which reads the group: members the SCIM side cannot see,
	// here the bridge's own service account, stay), then empty the group.
	e.ldif("dn: cn=big," + e.groups + "\nchangetype: modify\nadd: member\nmember: " + e.slapd.ServiceDN + "\n")
	r = e.do("PATCH", "/Groups/"+gid, patchOps(op("Replace", "members", []any{map[string]any{"value": newID}})))
	e.requireStatus(r, http.StatusOK)
	require.Equal(t, []string{newID}, memberIDs(r.body))
	g, _ = e.entry("cn=big," + e.groups)
	require.Len(t, g.Get("member"), 2)
	require.True(t, containsDN(g.Get("member"), e.slapd.ServiceDN), "an invisible member is kept")
	e.ldif("dn: cn=big," + e.groups + "\nchangetype: modify\ndelete: member\nmember: " + e.slapd.ServiceDN + "\n")
	r = e.do("PATCH", "/Groups/"+gid, patchOps(op("Remove", "members", []any{map[string]any{"value": newID}})))
	e.requireStatus(r, http.StatusNoContent)
	g, _ = e.entry("cn=big," + e.groups)
	require.Equal(t, []string{""}, g.Get("member"), "groupOfNames keeps its placeholder member")
	r = e.do("GET", "/Groups/"+gid, nil)
	require.NotContains(t, r.body, "members", "the placeholder is not a member")
	r = e.do("PATCH", "/Groups/"+gid, patchOps(op("Add", "members", []any{map[string]any{"value": oldID}})))
	e.requireStatus(r, http.StatusNoContent)
	g, _ = e.entry("cn=big," + e.groups)
	require.Len(t, g.Get("member"), 1, "the placeholder goes when a member comes: %q", g.Get("member"))

	// With attributes asked for, the PATCH answers 200 with them.
	r = e.do("PATCH", "/Groups/"+gid+"?attributes=displayName", patchOps(op("Replace", "displayName", "bigger")))
	e.requireStatus(r, http.StatusOK)
	require.Equal(t, "bigger", r.body["displayName"])
	require.NotContains(t, r.body, "members")
}

// TestGroupsHoldGroupsAndFilterOnMembers: nested groups are members with type Group, and
// members can be filtered on.
func TestGroupsHoldGroupsAndFilterOnMembers(t *testing.T) {
	e := newEnv(t)
	u := e.createUser("nested-user", nil)
	inner := e.createGroup("inner", u)
	outer := e.createGroup("outer", inner)
	r := e.do("GET", "/Groups/"+outer, nil)
	e.requireStatus(r, http.StatusOK)
	members := r.body["members"].([]any)
	require.Len(t, members, 1)
	require.Equal(t, inner, members[0].(map[string]any)["value"])
	require.Equal(t, "Group", members[0].(map[string]any)["type"])
	r = e.do("GET", "/Groups?filter="+q(`members[value eq "`+u+`"]`), nil)
	e.requireStatus(r, http.StatusOK)
	require.EqualValues(t, 1, r.body["totalResults"])
	require.Equal(t, inner, resources(r)[0]["id"])

	// PUT replaces the group, members included.
	r = e.do("PUT", "/Groups/"+outer, map[string]any{"schemas": []any{groupURN}, "displayName": "outer", "members": []any{map[string]any{"value": u}}})
	e.requireStatus(r, http.StatusOK)
	require.Equal(t, []string{u}, memberIDs(r.body))

	// Deleting a group removes it from the groups holding it.
	e.do("PATCH", "/Groups/"+outer, patchOps(op("add", "members", []any{map[string]any{"value": inner}})))
	r = e.do("DELETE", "/Groups/"+inner, nil)
	e.requireStatus(r, http.StatusNoContent)
	g, _ := e.entry("cn=outer," + e.groups)
	require.Len(t, g.Get("member"), 1)
}
