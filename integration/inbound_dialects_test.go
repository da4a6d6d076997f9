package integration

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/go-ldap/ldap/v3"
	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/ldapstore/ldaptest"
)

// TestInboundPasswords: a password sent on create is set with the directory's own mechanism
// (Password Modify; unicodePwd over LDAPS on AD, which the daemon reaches over LDAPS, like
// 389-DS) and lets the user bind; it is never returned.
func TestInboundPasswords(t *testing.T) {
	for _, k := range ldaptest.Kinds {
		t.Run(string(k), func(t *testing.T) {
			v := views[k]
			d := startSCIMOn(t, k, "passwords", "", "http")
			const pw = "Corr3ct-Horse-Battery!"
			r := d.call("POST", "/Users", map[string]any{
				"schemas": []any{scimUser}, "userName": "pat@example.org", "password": pw,
				"name": map[string]any{"givenName": "Pat", "familyName": "Jones"},
			})
			d.expect(r, http.StatusCreated, "")
			require.NotContains(t, r.raw, pw)
			dn := v.userDN(d.people, "pat@example.org")
			conn, err := ldap.DialURL(d.slapd.URL)
			require.NoError(t, err)
			defer conn.Close()
			require.NoError(t, conn.Bind(dn, pw), "the user binds with the password sent")
			require.Error(t, conn.Bind(dn, "wrong"+pw))
			require.NotContains(t, d.stderr.String(), pw)
		})
	}
}

// TestInboundActiveDirectoryNaming: AD users are named by a sAMAccountName derived from
// userName, so two people with the same name do not collide, while two userNames that derive
// the same sAMAccountName do (409); a user created inactive has ACCOUNTDISABLE and nothing else.
func TestInboundActiveDirectoryNaming(t *testing.T) {
	d := startSCIMOn(t, ldaptest.KindAD, "adnaming", "", "http")
	person := func(userName string, active bool) map[string]any {
		return map[string]any{
			"schemas": []any{scimUser}, "userName": userName, "active": active, "displayName": "Jane Doe",
			"name": map[string]any{"givenName": "Jane", "familyName": "Doe", "formatted": "Jane Doe"},
		}
	}
	r := d.call("POST", "/Users", person("jane.doe@contoso.com", true))
	d.expect(r, http.StatusCreated, "")
	r = d.call("POST", "/Users", person("jane.doe2@contoso.com", true))
	d.expect(r, http.StatusCreated, "") // the same name is no collision
	e, ok := d.get("CN=jane.doe2," + d.people)
	require.True(t, ok)
	require.Equal(t, "Jane Doe", e.First("displayName"))
	require.Equal(t, "jane.doe2", e.First("sAMAccountName"))

	r = d.call("POST", "/Users", person("jane.doe@fabrikam.com", true))
	d.expect(r, http.StatusConflict, "uniqueness")
	require.Contains(t, r.raw, "jane.doe", "the detail names the account name that is taken")

	r = d.call("POST", "/Users", person("inactive@contoso.com", false))
	d.expect(r, http.StatusCreated, "")
	require.Equal(t, false, r.body["active"])
	e, _ = d.get("CN=inactive," + d.people)
	require.Equal(t, "514", e.First("userAccountControl"))
	r = d.call("PATCH", "/Users/"+r.body["id"].(string), ops(scimOp("replace", "active", true)))
	d.expect(r, http.StatusOK, "")
	e, _ = d.get("CN=inactive," + d.people)
	require.Equal(t, "512", e.First("userAccountControl"))
	require.Equal(t, 0, d.stop())
}

// TestInboundLargeADGroup: with range_size = 100, a 300-member group is read in ranges and
// every member shows; adding one more (and adding it again) works.
func TestInboundLargeADGroup(t *testing.T) {
	d := startSCIMWith(t, ldaptest.KindAD, "bigroup", "range_size = 100\n", "", "http")
	ctx := context.Background()
	const n = 300
	members := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 4 {
				members[i] = fmt.Sprintf("CN=m%03d,%s", i, d.people)
				errs[i] = d.root.Add(ctx, members[i], map[string][]string{"objectClass": {"user"}, "sAMAccountName": {fmt.Sprintf("bg-%s-%03d", d.ou[3:12], i)}})
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	require.NoError(t, d.root.Add(ctx, "CN=big,"+d.groups, map[string][]string{"objectClass": {"group"}, "member": members}))

	r := d.call("GET", "/Groups?filter="+f(`displayName eq "big"`), nil)
	d.expect(r, http.StatusOK, "")
	require.EqualValues(t, 1, r.body["totalResults"])
	g := listed(r)[0]
	require.Len(t, g["members"], n, "every member, read in ranges of 100")
	gid := g["id"].(string)

	r = d.call("POST", "/Users", map[string]any{"schemas": []any{scimUser}, "userName": "late@example.org"})
	d.expect(r, http.StatusCreated, "")
	uid := r.body["id"].(string)
	for range 2 {
		r = d.call("PATCH", "/Groups/"+gid, ops(scimOp("add", "members", []any{map[string]any{"value": uid}})))
		d.expect(r, http.StatusNoContent, "")
	}
	r = d.call("GET", "/Groups/"+gid, nil)
	d.expect(r, http.StatusOK, "")
	require.Len(t, r.body["members"], n+1)
	require.Contains(t, r.raw, uid)
	require.Equal(t, 0, d.stop())
}

// TestInboundPagingWithoutVLV: 389-DS refuses a VLV search that no VLV index serves once it
// would sort more entries than the bind's look-through limit (adminLimitExceeded); the list
// is then paged from a snapshot instead, with the same answer.
func TestInboundPagingWithoutVLV(t *testing.T) {
	d := startSCIMOn(t, ldaptest.Kind389DS, "novlv", "", "http")
	limit := func(n string) {
		require.NoError(t, d.slapd.LDIF("dn: "+d.slapd.ServiceDN+"\nchangetype: modify\nreplace: nsLookThroughLimit\nnsLookThroughLimit: "+n+"\n-\nreplace: nsPagedLookThroughLimit\nnsPagedLookThroughLimit: -1\n"))
	}
	for _, u := range []string{"erin", "dave", "carl", "bea", "abe"} {
		r := d.call("POST", "/Users", map[string]any{"schemas": []any{scimUser}, "userName": u})
		d.expect(r, http.StatusCreated, "")
	}
	limit("2")
	t.Cleanup(func() { limit("-1") })
	for range 2 {
		r := d.call("GET", "/Users?startIndex=2&count=2", nil)
		d.expect(r, http.StatusOK, "")
		require.EqualValues(t, 5, r.body["totalResults"])
		var names []string
		for _, u := range listed(r) {
			names = append(names, u["userName"].(string))
		}
		require.Equal(t, []string{"bea", "carl"}, names, "sorted by userName, the second page of two")
	}
	require.Equal(t, 1, strings.Count(d.stderr.String(), "the directory refused a VLV search"), "said once")
	require.Equal(t, 0, d.stop())
}

// TestInbound389GroupOfUniqueNames: 389-DS groups of class groupOfUniqueNames keep their
// members in uniqueMember; a group may be created empty and emptied again.
func TestInbound389GroupOfUniqueNames(t *testing.T) {
	d := startSCIMWith(t, ldaptest.Kind389DS, "uniquenames", "", "", "http", func(cfg string) string {
		return strings.Replace(cfg, "[ldap.groups]\n", "[ldap.groups]\nobject_classes = [\"groupOfUniqueNames\"]\n", 1)
	})
	r := d.call("POST", "/Users", map[string]any{"schemas": []any{scimUser}, "userName": "una"})
	d.expect(r, http.StatusCreated, "")
	uid := r.body["id"].(string)
	r = d.call("POST", "/Groups", map[string]any{"schemas": []any{scimGroup}, "displayName": "uniques"})
	d.expect(r, http.StatusCreated, "")
	gid := r.body["id"].(string)
	g, ok := d.get("cn=uniques," + d.groups)
	require.True(t, ok)
	require.Contains(t, g.Get("objectClass"), "groupOfUniqueNames")
	require.Empty(t, g.Get("uniqueMember"))
	r = d.call("PATCH", "/Groups/"+gid, ops(scimOp("add", "members", []any{map[string]any{"value": uid}})))
	d.expect(r, http.StatusNoContent, "")
	g, _ = d.get("cn=uniques," + d.groups)
	require.True(t, hasDN(g.Get("uniqueMember"), "uid=una,"+d.people))
	r = d.call("GET", "/Groups?filter="+f(`members[value eq "`+uid+`"]`), nil)
	d.expect(r, http.StatusOK, "")
	require.EqualValues(t, 1, r.body["totalResults"])
	r = d.call("PATCH", "/Groups/"+gid, ops(scimOp("remove", `members[value eq "`+uid+`"]`, nil)))
	d.expect(r, http.StatusNoContent, "")
	g, _ = d.get("cn=uniques," + d.groups)
	require.Empty(t, g.Get("uniqueMember"))
	require.Equal(t, 0, d.stop())
}
