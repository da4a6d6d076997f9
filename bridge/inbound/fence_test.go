package inbound_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/bridge/inbound"
	"github.com/scimbridge/scimbridge/ldapstore"
	"github.com/scimbridge/scimbridge/ldapstore/ldaptest"
)

// idOf reads an entry's entryUUID.
func (e *env) idOf(dn string) string {
	e.t.Helper()
	en, ok := e.entry(dn, "entryUUID")
	require.True(e.t, ok, "%s exists", dn)
	return en.First("entryUUID")
}

// deniedEvents counts the audit events with result=denied.
func (e *env) deniedEvents() int {
	n := 0
	for _, ev := range e.auditEvents() {
		if ev["result"] == "denied" {
			n++
		}
	}
	return n
}

// fenceFixture is a directory corner with protected entries of every kind next to visible
// ones:
//
//	ou=people: svc (the "bind DN"), operator (protected_dns), alice (in ldap-admins), bob (in
//	nested, which is in ldap-admins), carol (visible, managed by alice), and a dangling member
//	"ghost" of ldap-admins that does not exist;
//	ou=groups: ldap-admins (protected_groups), nested (inside it), staff (visible: alice, carol).
type fenceFixture struct {
	*env
	svc, operator, alice, bob, carol, admins, nested, staff string // DNs
}

func newFenceFixture(t *testing.T, opts ...envOption) *fenceFixture {
	t.Helper()
	// The OU is created by newEnv; protected DNs name entries in it, so the configuration is
	// completed by a reload once they exist.
	e := newEnv(t, opts...)
	f := &fenceFixture{
		env: e,
		svc: "uid=svc," + e.people, operator: "uid=operator," + e.people, alice: "uid=alice," + e.people,
		bob: "uid=bob," + e.people, carol: "uid=carol," + e.people,
		admins: "cn=ldap-admins," + e.groups, nested: "cn=nested," + e.groups, staff: "cn=staff," + e.groups,
	}
	person := func(uid string, extra string) string {
		return "dn: uid=" + uid + "," + e.people + "\nobjectClass: inetOrgPerson\nuid: " + uid + "\ncn: " + uid + "\nsn: " + uid + "\nuserPassword: before\n" + extra + "\n"
	}
	e.ldif(person("svc", "") + person("operator", "title: root of all\n") + person("alice", "") + person("bob", "") +
		person("carol", "manager: "+f.alice+"\n") +
		"dn: " + f.nested + "\nobjectClass: groupOfNames\ncn: nested\nmember: " + f.bob + "\n\n" +
		"dn: " + f.admins + "\nobjectClass: groupOfNames\ncn: ldap-admins\nmember: " + f.alice + "\nmember: " + f.nested +
		"\nmember: uid=ghost," + e.people + "\n\n" +
		"dn: " + f.staff + "\nobjectClass: groupOfNames\ncn: staff\nmember: " + f.alice + "\nmember: " + f.carol + "\n")
	require.NoError(t, e.srv.Reload(context.Background(), f.config(nil)))
	return f
}

// config is the fixture's configuration, changed by edit.
func (f *fenceFixture) config(edit func(*inbound.Config)) inbound.Config {
	c := inbound.Config{
		BasePath: "/scim/v2", MaxBodyBytes: 64 << 10,
		Users: inbound.Users{BaseDN: f.people}, Groups: inbound.Groups{BaseDN: f.groups},
		Tokens:  []inbound.Token{tokenFor("entra", testToken)},
		Protect: inbound.Protection{BindDN: f.svc, DNs: []string{f.operator, "uid=breakglass," + f.people}, Groups: []string{f.admins}},
	}
	if edit != nil {
		edit(&c)
	}
	return c
}

// TestFenceHidesProtectedEntriesOnEveryPath: the bind DN, protected_dns, the members of a
// protected group (directly, through a nested group, and a member that does not exist yet)
// and the groups themselves are 404 to every method, absent from filters and lists, refused as
// members, as managers and as the target of a create or rename; each refusal is an audit event
// with result=denied; nothing of them changes in the directory.
func TestFenceHidesProtectedEntriesOnEveryPath(t *testing.T) {
	f := newFenceFixture(t)
	e := f.env
	protectedUsers := map[string]string{"svc": f.svc, "operator": f.operator, "alice": f.alice, "bob": f.bob}
	protectedGroups := map[string]string{"ldap-admins": f.admins, "nested": f.nested}
	before := e.snapshot()

	t.Run("by id, every method", func(t *testing.T) {
		e := e.with(t)
		for name, dn := range protectedUsers {
			id := e.idOf(dn)
			denied := e.deniedEvents()
			for _, r := range []response{
				e.do("GET", "/Users/"+id, nil),
				e.do("PUT", "/Users/"+id, user(name, map[string]any{"title": "pwned"})),
				e.do("PATCH", "/Users/"+id, patchOps(op("replace", "password", "Pwned-12345"))),
				e.do("PATCH", "/Users/"+id, patchOps(op("replace", "active", true))),
				e.do("PATCH", "/Users/"+id, patchOps(op("replace", "title", "pwned"))),
				e.do("DELETE", "/Users/"+id, nil),
				e.do("GET", "/Groups/"+id, nil),
			} {
				e.requireStatus(r, http.StatusNotFound)
			}
			require.Equal(t, denied+6, e.deniedEvents(), "%s: one denied audit event per request on Users", name)
		}
		for _, dn := range protectedGroups {
			id := e.idOf(dn)
			for _, r := range []response{
				e.do("GET", "/Groups/"+id, nil),
				e.do("PUT", "/Groups/"+id, map[string]any{"displayName": "pwned"}),
				e.do("PATCH", "/Groups/"+id, patchOps(op("add", "members", []any{map[string]any{"value": e.idOf(f.carol)}}))),
				e.do("PATCH", "/Groups/"+id, patchOps(op("replace", "displayName", "pwned"))),
				e.do("DELETE", "/Groups/"+id, nil),
			} {
				e.requireStatus(r, http.StatusNotFound)
			}
		}
	})

	t.Run("by filter and in lists", func(t *testing.T) {
		e := e.with(t)
		for name, dn := range protectedUsers {
			for _, filter := range []string{`userName eq "` + name + `"`, `id eq "` + e.idOf(dn) + `"`, `userName sw "` + name[:2] + `"`} {
				r := e.do("GET", "/Users?filter="+q(filter), nil)
				e.requireStatus(r, http.StatusOK)
				require.NotContains(t, userNames(r), name, filter)
			}
		}
		r := e.do("GET", "/Users?count=100", nil)
		require.Equal(t, []string{"carol"}, userNames(r))
		require.EqualValues(t, 1, r.body["totalResults"], "the count leaves them out too")
		r = e.do("POST", "/Users/.search", map[string]any{"filter": `userName pr`, "startIndex": 1, "count": 10})
		require.Equal(t, []string{"carol"}, userNames(r))
		r = e.do("GET", "/Groups?count=100", nil)
		var names []string
		for _, g := range resources(r) {
			names = append(names, g["displayName"].(string))
		}
		require.Equal(t, []string{"staff"}, names)
		r = e.do("GET", "/Groups?filter="+q(`displayName eq "ldap-admins"`), nil)
		require.EqualValues(t, 0, r.body["totalResults"])
	})

	t.Run("as member and manager", func(t *testing.T) {
		e := e.with(t)
		staffID := e.idOf(f.staff)
		// staff shows carol only; alice is a member the client cannot see.
		r := e.do("GET", "/Groups/"+staffID, nil)
		require.Equal(t, []string{e.idOf(f.carol)}, memberIDs(r.body))
		// carol's manager is alice: not shown.
		r = e.do("GET", "/Users/"+e.idOf(f.carol), nil)
		require.NotContains(t, r.raw, "manager")
		for name, dn := range protectedUsers {
			id := e.idOf(dn)
			denied := e.deniedEvents()
			r := e.do("POST", "/Groups", map[string]any{"displayName": "g-" + name, "members": []any{map[string]any{"value": id}}})
			e.requireStatus(r, http.StatusBadRequest, "invalidValue")
			r = e.do("PATCH", "/Groups/"+staffID, patchOps(op("add", "members", []any{map[string]any{"value": id}})))
			e.requireStatus(r, http.StatusBadRequest, "invalidValue")
			r = e.do("POST", "/Users", user("m-"+name, map[string]any{entURN: map[string]any{"manager": id}}))
			e.requireStatus(r, http.StatusBadRequest, "invalidValue")
			r = e.do("PATCH", "/Users/"+e.idOf(f.carol), patchOps(op("replace", entURN+":manager", id)))
			e.requireStatus(r, http.StatusBadRequest, "invalidValue")
			require.Equal(t, denied+4, e.deniedEvents(), "%s: each refusal is a denied event", name)
		}
		// Removing a protected member is refused too (nothing happens to it) …
		r = e.do("PATCH", "/Groups/"+staffID, patchOps(op("remove", `members[value eq "`+e.idOf(f.alice)+`"]`, nil)))
		require.Less(t, r.status, 300, r.raw)
		// … and replacing the membership keeps it.
		r = e.do("PUT", "/Groups/"+staffID, map[string]any{"displayName": "staff", "members": []any{map[string]any{"value": e.idOf(f.carol)}}})
		e.requireStatus(r, http.StatusOK)
		r = e.do("PATCH", "/Groups/"+staffID, patchOps(op("replace", "members", []any{})))
		require.Less(t, r.status, 300, r.raw)
		en, _ := e.entry(f.staff, "member")
		require.True(t, containsDN(en.Get("member"), f.alice), "the protected member stays: %v", en.Get("member"))
	})

	t.Run("as the target of a create or rename", func(t *testing.T) {
		e := e.with(t)
		carolID := e.idOf(f.carol)
		for _, name := range []string{"ghost", "breakglass", "operator", "svc"} {
			denied := e.deniedEvents()
			r := e.do("POST", "/Users", user(name, map[string]any{"password": "Pwned-12345"}))
			e.requireStatus(r, http.StatusConflict, "uniqueness")
			r = e.do("PATCH", "/Users/"+carolID, patchOps(op("replace", "userName", name)))
			e.requireStatus(r, http.StatusConflict, "uniqueness")
			require.Equal(t, denied+2, e.deniedEvents(), name)
		}
		r := e.do("PATCH", "/Groups/"+e.idOf(f.staff), patchOps(op("replace", "displayName", "ldap-admins")))
		e.requireStatus(r, http.StatusConflict, "uniqueness")
		require.Zero(t, e.count(f.people, "(|(uid=ghost)(uid=breakglass))"), "nothing was created where a protected entry is or will be")
	})

	after := e.snapshot()
	for _, dn := range []string{f.svc, f.operator, f.alice, f.bob, f.admins, f.nested} {
		k := strings.ToLower(dn)
		require.Equal(t, before[k], after[k], "%s is untouched", dn)
	}
	// The old password still binds: no SCIM request set it.
	conn, err := ldapstore.Open(context.Background(), ldapstore.Config{URLs: []string{e.slapd.URL}, BindDN: f.operator, BindPassword: "before"}, zerolog.Nop())
	require.NoError(t, err)
	conn.Close()
}

// TestFenceFollowsProtectedGroupMembership: someone added to a protected group by hand becomes
// invisible within protectedTTL; a protected group that disappears stops the SCIM side (503)
// rather than exposing its members; one that does not exist refuses the configuration.
func TestFenceFollowsProtectedGroupMembership(t *testing.T) {
	f := newFenceFixture(t)
	e := f.env
	carolID := e.idOf(f.carol)
	e.requireStatus(e.do("GET", "/Users/"+carolID, nil), http.StatusOK)
	e.ldif("dn: " + f.nested + "\nchangetype: modify\nadd: member\nmember: " + f.carol + "\n")
	deadline := time.Now().Add(10 * time.Second)
	for e.do("GET", "/Users/"+carolID, nil).status != http.StatusNotFound {
		require.True(t, time.Now().Before(deadline), "carol, now in a nested protected group, becomes invisible")
		time.Sleep(100 * time.Millisecond)
	}

	e.ldif("dn: " + f.admins + "\nchangetype: delete\n")
	deadline = time.Now().Add(10 * time.Second)
	for {
		r := e.do("GET", "/Users", nil)
		if r.status == http.StatusServiceUnavailable {
			require.NotEmpty(t, r.header.Get("Retry-After"))
			require.NotContains(t, r.raw, "ldap-admins")
			break
		}
		require.True(t, time.Now().Before(deadline), "a vanished protected group stops the SCIM side: %d %s", r.status, r.raw)
		time.Sleep(100 * time.Millisecond)
	}
	// While the group is gone, requests fail fast and the log says so once per period, not
	// once per request.
	for range 30 {
		e.requireStatus(e.do("GET", "/Users", nil), http.StatusServiceUnavailable)
	}
	require.LessOrEqual(t, strings.Count(e.logs.String(), "cannot read the protected groups"), 3)
	err := e.srv.Reload(context.Background(), f.config(nil))
	require.ErrorContains(t, err, "inbound.protected_groups")
	require.ErrorContains(t, err, "does not exist")
}

// TestScopeFilter: entries outside inbound.scope_filter are invisible like those outside the
// bases, and a create whose entry would not match is a 400 that leaves nothing behind — with
// the Assertion control (the store) and without it (by add, check and delete).
func TestScopeFilter(t *testing.T) {
	for _, withAssertion := range []bool{true, false} {
		name := map[bool]string{true: "assertion on add", false: "add, check, delete"}[withAssertion]
		t.Run(name, func(t *testing.T) {
			opt := func(c *inbound.Config, _ *ldaptest.Options) {
				c.Users.ScopeFilter = "(employeeType=entra)"
				c.Groups.ScopeFilter = "(!(businessCategory=local))"
				c.UserAttributes = map[string]string{"userType": "employeeType"}
			}
			var e *env
			if withAssertion {
				e = newEnv(t, opt)
			} else {
				e, _ = newFaultyEnv(t, nil, opt)
			}
			e.ldif("dn: uid=local," + e.people + "\nobjectClass: inetOrgPerson\nuid: local\ncn: local\nsn: local\n\n" +
				"dn: cn=localgroup," + e.groups + "\nobjectClass: groupOfNames\ncn: localgroup\nbusinessCategory: local\nmember:\n")
			localID := e.idOf("uid=local," + e.people)
			e.requireStatus(e.do("GET", "/Users/"+localID, nil), http.StatusNotFound)
			e.requireStatus(e.do("DELETE", "/Users/"+localID, nil), http.StatusNotFound)
			e.requireStatus(e.do("GET", "/Groups/"+e.idOf("cn=localgroup,"+e.groups), nil), http.StatusNotFound)
			r := e.do("GET", "/Users?filter="+q(`userName eq "local"`), nil)
			require.EqualValues(t, 0, r.body["totalResults"])

			before := e.snapshot()
			r = e.do("POST", "/Users", user("outsider", nil))
			e.requireStatus(r, http.StatusBadRequest, "invalidValue")
			require.Contains(t, r.raw, "scope_filter", "the answer says why")
			e.requireUnchanged(before, e.snapshot(), "no invisible entry is left behind")
			r = e.do("POST", "/Groups", map[string]any{"displayName": "g", "externalId": "local"})
			e.requireStatus(r, http.StatusBadRequest, "invalidValue")

			id := e.createUser("insider", map[string]any{"userType": "entra"})
			r = e.do("GET", "/Users?filter="+q(`userName eq "insider"`), nil)
			require.Equal(t, []string{"insider"}, userNames(r))
			e.requireStatus(e.do("GET", "/Users/"+id, nil), http.StatusOK)
			// A name taken by an entry SCIM cannot see is still taken.
			r = e.do("POST", "/Users", user("local", map[string]any{"userType": "entra"}))
			e.requireStatus(r, http.StatusConflict, "uniqueness")
		})
	}
}

// TestManagedMode: with managed_only the SCIM side sees only what it created (marked) and never
// shows or clears the marker; a POST naming an unmarked entry is a 409, or adopts it with
// adopt_existing.
func TestManagedMode(t *testing.T) {
	managed := func(adopt bool) envOption {
		return func(c *inbound.Config, _ *ldaptest.Options) {
			c.ManagedOnly, c.AdoptExisting = true, adopt
			c.UserAttributes = map[string]string{"userType": "employeeType"}
		}
	}
	e := newEnv(t, managed(false))
	e.ldif("dn: uid=handmade," + e.people + "\nobjectClass: inetOrgPerson\nuid: handmade\ncn: handmade\nsn: handmade\ntitle: hand\n\n" +
		"dn: cn=handgroup," + e.groups + "\nobjectClass: groupOfNames\ncn: handgroup\nmember:\n")
	handID := e.idOf("uid=handmade," + e.people)
	e.requireStatus(e.do("GET", "/Users/"+handID, nil), http.StatusNotFound)
	e.requireStatus(e.do("PATCH", "/Users/"+handID, patchOps(op("replace", "title", "x"))), http.StatusNotFound)
	e.requireStatus(e.do("GET", "/Groups/"+e.idOf("cn=handgroup,"+e.groups), nil), http.StatusNotFound)
	r := e.do("GET", "/Users?filter="+q(`userName eq "handmade"`), nil)
	require.EqualValues(t, 0, r.body["totalResults"])

	id := e.createUser("scimmade", map[string]any{"userType": "Employee"})
	en, _ := e.entry("uid=scimmade," + e.people)
	require.ElementsMatch(t, []string{"Employee", "scimbridge:managed"}, en.Get("employeeType"))
	r = e.do("GET", "/Users/"+id, nil)
	e.requireStatus(r, http.StatusOK)
	require.Equal(t, "Employee", r.body["userType"], "the marker is not a SCIM value")
	r = e.do("PATCH", "/Users/"+id, patchOps(op("remove", "userType", nil), op("replace", "active", false)))
	e.requireStatus(r, http.StatusOK)
	en, _ = e.entry("uid=scimmade," + e.people)
	require.ElementsMatch(t, []string{"scimbridge:disabled", "scimbridge:managed"}, en.Get("employeeType"), "no mapping clears the marker")
	e.requireStatus(e.do("GET", "/Users/"+id, nil), http.StatusOK)

	gid := e.createGroup("scimgroup", id)
	r = e.do("PATCH", "/Groups/"+gid, patchOps(op("replace", "externalId", "ext-1")))
	require.Less(t, r.status, 300, r.raw)
	g, _ := e.entry("cn=scimgroup," + e.groups)
	require.ElementsMatch(t, []string{"ext-1", "scimbridge:managed"}, g.Get("businessCategory"))
	r = e.do("GET", "/Groups/"+gid, nil)
	require.Equal(t, "ext-1", r.body["externalId"])

	r = e.do("POST", "/Users", user("handmade", nil))
	e.requireStatus(r, http.StatusConflict, "uniqueness")

	// With adopt_existing the same POST takes the entry over.
	require.NoError(t, e.srv.Reload(context.Background(), inbound.Config{
		BasePath: "/scim/v2", Users: inbound.Users{BaseDN: e.people}, Groups: inbound.Groups{BaseDN: e.groups},
		Tokens: []inbound.Token{tokenFor("entra", testToken)}, ManagedOnly: true, AdoptExisting: true, UserAttributes: map[string]string{"userType": "employeeType"},
	}))
	r = e.do("POST", "/Users", user("handmade", map[string]any{"title": "adopted", "displayName": "Hand Made"}))
	e.requireStatus(r, http.StatusCreated)
	require.Equal(t, handID, r.body["id"], "the existing entry, with its id")
	require.NotEmpty(t, r.header.Get("Location"))
	en, _ = e.entry("uid=handmade," + e.people)
	require.Equal(t, []string{"adopted"}, en.Get("title"))
	require.Contains(t, en.Get("employeeType"), "scimbridge:managed")
	e.requireStatus(e.do("GET", "/Users/"+handID, nil), http.StatusOK)
	r = e.do("POST", "/Groups", map[string]any{"displayName": "handgroup", "members": []any{map[string]any{"value": handID}}})
	e.requireStatus(r, http.StatusCreated)
	g, _ = e.entry("cn=handgroup," + e.groups)
	require.Contains(t, g.Get("businessCategory"), "scimbridge:managed")
	require.True(t, containsDN(g.Get("member"), "uid=handmade,"+e.people))
	// An adopted (visible) entry is the client's own: a second POST is a plain 409.
	e.requireStatus(e.do("POST", "/Users", user("handmade", nil)), http.StatusConflict, "uniqueness")
	events := e.auditEvents()
	require.True(t, slices.ContainsFunc(events, func(ev map[string]any) bool {
		return ev["op"] == "create" && ev["result"] == "success" && ev["id"] == handID
	}), "the adoption is audited as the create it answers")
}
