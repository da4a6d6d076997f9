package inbound_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/bridge/inbound"
	"github.com/scimbridge/scimbridge/ldapstore"
	"github.com/scimbridge/scimbridge/ldapstore/ldaptest"
)

func (e *env) ldif(text string) {
	e.t.Helper()
	require.NoError(e.t, e.slapd.LDIF(text))
}

// TestIfMatchAndETags: meta.version is the ETag; a stale If-Match is a 412 on PUT, PATCH and
// DELETE and changes nothing; If-None-Match gives 304.
func TestIfMatchAndETags(t *testing.T) {
	e := newEnv(t)
	id := e.createUser("etag", map[string]any{"title": "one"})
	r := e.do("GET", "/Users/"+id, nil)
	e.requireStatus(r, http.StatusOK)
	v1 := r.header.Get("ETag")
	require.True(t, strings.HasPrefix(v1, `W/"`), v1)
	require.Equal(t, v1, r.body["meta"].(map[string]any)["version"])

	r = e.do("GET", "/Users/"+id, nil, "If-None-Match", v1)
	require.Equal(t, http.StatusNotModified, r.status)

	r = e.do("PATCH", "/Users/"+id, patchOps(op("replace", "title", "two")), "If-Match", v1)
	e.requireStatus(r, http.StatusOK)
	v2 := r.header.Get("ETag")
	require.NotEqual(t, v1, v2)

	before := e.snapshot()
	r = e.do("PATCH", "/Users/"+id, patchOps(op("replace", "title", "three")), "If-Match", v1)
	e.requireStatus(r, http.StatusPreconditionFailed)
	r = e.do("PUT", "/Users/"+id, user("etag", map[string]any{"title": "three"}), "If-Match", v1)
	e.requireStatus(r, http.StatusPreconditionFailed)
	r = e.do("DELETE", "/Users/"+id, nil, "If-Match", v1)
	e.requireStatus(r, http.StatusPreconditionFailed)
	e.requireUnchanged(before, e.snapshot(), "a stale If-Match changes nothing")

	r = e.do("PUT", "/Users/"+id, user("etag", map[string]any{"title": "three"}), "If-Match", strings.TrimPrefix(v2, "W/"))
	e.requireStatus(r, http.StatusOK)
	require.Equal(t, "three", r.body["title"])
	r = e.do("PATCH", "/Users/"+id, patchOps(op("replace", "title", "four")), "If-Match", "*")
	e.requireStatus(r, http.StatusOK)
	r = e.do("DELETE", "/Users/"+id, nil, "If-Match", r.header.Get("ETag"))
	e.requireStatus(r, http.StatusNoContent)
}

// TestConcurrentChangeIsNeverLost: an admin's ldapmodify lands between the server's read and
// its write. The Assertion control on entryCSN makes the write fail; with If-Match that is a
// 412, without it the server re-reads and both changes survive.
func TestConcurrentChangeIsNeverLost(t *testing.T) {
	e, f := newFaultyEnv(t, nil)
	id := e.createUser("race", nil)
	dn := "uid=race," + e.people
	r := e.do("GET", "/Users/"+id, nil)
	etag := r.header.Get("ETag")

	f.setBefore("modify", func() {
		e.ldif("dn: " + dn + "\nchangetype: modify\nreplace: description\ndescription: set by an admin\n")
	})
	r = e.do("PATCH", "/Users/"+id, patchOps(op("replace", "title", "from scim")), "If-Match", etag)
	e.requireStatus(r, http.StatusPreconditionFailed)
	en, _ := e.entry(dn)
	require.Empty(t, en.Get("title"), "the stale write was refused by the directory")
	require.Equal(t, "set by an admin", en.First("description"))

	f.setBefore("modify", func() {
		e.ldif("dn: " + dn + "\nchangetype: modify\nreplace: description\ndescription: second admin change\n")
	})
	r = e.do("PATCH", "/Users/"+id, patchOps(op("replace", "title", "from scim")))
	e.requireStatus(r, http.StatusOK)
	en, _ = e.entry(dn)
	require.Equal(t, "from scim", en.First("title"))
	require.Equal(t, "second admin change", en.First("description"), "the concurrent change survives")
}

// TestPartialWritesAreUndone: a write that needs several LDAP operations puts the entry back
// when a later one fails.
func TestPartialWritesAreUndone(t *testing.T) {
	e, f := newFaultyEnv(t, nil)

	// Create, then the password is refused: the new entry is removed.
	f.setFail("password", injected(ldapstore.ErrInvalid))
	before := e.snapshot()
	r := e.do("POST", "/Users", user("pwfail", map[string]any{"password": "short"}))
	e.requireStatus(r, http.StatusBadRequest, "invalidValue")
	require.NotContains(t, r.raw, "quality", "the directory's diagnostic is not shown")
	e.requireUnchanged(before, e.snapshot(), "nothing is left behind")
	f.setFail("password", nil)

	id := e.createUser("renameme", map[string]any{"title": "before"})
	dn := "uid=renameme," + e.people
	before = stripCSN(e.snapshot())

	// Modify, rename, then the password fails: rename back and undo the modify.
	f.setFail("password", injected(ldapstore.ErrInvalid))
	r = e.do("PATCH", "/Users/"+id, patchOps(op("replace", "userName", "renamed"), op("replace", "title", "after"), op("replace", "password", "Secret123!")))
	e.requireStatus(r, http.StatusBadRequest, "invalidValue")
	e.requireUnchanged(before, stripCSN(e.snapshot()), "the entry is back as it was")
	require.Positive(t, f.count("modifydn"))
	f.setFail("password", nil)

	// Modify, then the rename fails: the modify is undone.
	f.setFail("modifydn", injected(ldapstore.ErrUnavailable))
	r = e.do("PATCH", "/Users/"+id, patchOps(op("replace", "userName", "renamed"), op("replace", "title", "after")))
	e.requireStatus(r, http.StatusServiceUnavailable)
	require.Equal(t, "5", r.header.Get("Retry-After"))
	e.requireUnchanged(before, stripCSN(e.snapshot()), "unchanged")
	f.setFail("modifydn", nil)

	en, ok := e.entry(dn)
	require.True(t, ok)
	require.Equal(t, "before", en.First("title"))
}

// stripCSN drops entryCSN, which an undo necessarily changes, keeping every other value.
func stripCSN(m map[string]string) map[string]string {
	out := map[string]string{}
	for dn, attrs := range m {
		var a map[string][]string
		_ = json.Unmarshal([]byte(attrs), &a)
		for k := range a {
			if strings.EqualFold(k, "entryCSN") {
				delete(a, k)
			}
		}
		data, _ := json.Marshal(a)
		out[dn] = string(data)
	}
	return out
}

// TestUniqueness: userName and group displayName are unique, case-insensitively, on create
// and on rename.
func TestUniqueness(t *testing.T) {
	e := newEnv(t)
	e.createUser("Ada", nil)
	id := e.createUser("grace", nil)
	before := e.snapshot()
	r := e.do("POST", "/Users", user("ADA", nil))
	e.requireStatus(r, http.StatusConflict, "uniqueness")
	r = e.do("PATCH", "/Users/"+id, patchOps(op("replace", "userName", "ada")))
	e.requireStatus(r, http.StatusConflict, "uniqueness")
	r = e.do("PUT", "/Users/"+id, user("aDa", nil))
	e.requireStatus(r, http.StatusConflict, "uniqueness")
	e.requireUnchanged(before, e.snapshot(), "unchanged")

	e.createGroup("Staff")
	r = e.do("POST", "/Groups", map[string]any{"schemas": []any{groupURN}, "displayName": "staff"})
	e.requireStatus(r, http.StatusConflict, "uniqueness")

	// A userName that is not the RDN value but collides on the DN (created outside SCIM with
	// another uid) is still a 409, from the directory's entryAlreadyExists.
	e.ldif("dn: uid=taken," + e.people + "\nobjectClass: inetOrgPerson\nuid: taken\nuid: alias\ncn: t\nsn: t\n")
	r = e.do("POST", "/Users", user("alias", nil))
	e.requireStatus(r, http.StatusConflict, "uniqueness")
}

// TestPasswordIsSetAndNeverShown: the password is set with the Password Modify operation (the
// user can bind with it), never returned, never logged.
func TestPasswordIsSetAndNeverShown(t *testing.T) {
	e := newEnv(t)
	const pw = "Corr3ct-Horse-Battery"
	r := e.do("POST", "/Users", user("binder", map[string]any{"password": pw}))
	e.requireStatus(r, http.StatusCreated)
	require.NotContains(t, r.raw, pw)
	require.NotContains(t, r.raw, "password")
	id := r.body["id"].(string)
	dn := "uid=binder," + e.people
	bind := func(p string) error {
		st, err := ldapstore.Open(context.Background(), ldapstore.Config{URLs: []string{e.slapd.URL}, BindDN: dn, BindPassword: p}, zerolog.Nop())
		if err == nil {
			st.Close()
		}
		return err
	}
	require.NoError(t, bind(pw))
	en, _ := e.entry(dn, "userPassword")
	require.NotContains(t, en.First("userPassword"), pw, "not stored in clear")

	const pw2 = "An0ther-Secret-Value"
	r = e.do("PATCH", "/Users/"+id, patchOps(op("replace", "password", pw2)))
	e.requireStatus(r, http.StatusOK)
	require.NotContains(t, r.raw, pw2)
	require.NoError(t, bind(pw2))
	require.Error(t, bind(pw))
	r = e.do("GET", "/Users/"+id, nil)
	require.NotContains(t, r.raw, "password")
	require.NotContains(t, e.logs.String(), pw)
	require.NotContains(t, e.logs.String(), pw2)
}

// TestReferencesFollowRenamesAndDeletes: OpenLDAP without refint keeps member and manager DNs
// as they were; the server rewrites them after a rename and removes them after a delete, and
// readers skip DNs that no longer resolve.
func TestReferencesFollowRenamesAndDeletes(t *testing.T) {
	e := newEnv(t)
	boss := e.createUser("boss", nil)
	emp := e.createUser("emp", map[string]any{entURN: map[string]any{"manager": map[string]any{"value": boss}}})
	gid := e.createGroup("team", boss, emp)

	r := e.do("PATCH", "/Users/"+boss, patchOps(op("replace", "userName", "chief")))
	e.requireStatus(r, http.StatusOK)
	g, _ := e.entry("cn=team," + e.groups)
	require.True(t, containsDN(g.Get("member"), "uid=chief,"+e.people), "group member follows the rename: %v", g.Get("member"))
	require.False(t, containsDN(g.Get("member"), "uid=boss,"+e.people))
	en, _ := e.entry("uid=emp," + e.people)
	require.True(t, ldapstore.SameDN("uid=chief,"+e.people, en.First("manager")))
	r = e.do("GET", "/Users/"+emp, nil)
	require.Equal(t, boss, r.body[entURN].(map[string]any)["manager"].(map[string]any)["value"])

	// An admin deletes a member with ldapmodify: the DN dangles and is skipped.
	e.ldif("dn: uid=emp," + e.people + "\nchangetype: delete\n")
	r = e.do("GET", "/Groups/"+gid, nil)
	e.requireStatus(r, http.StatusOK)
	require.Equal(t, []string{boss}, memberIDs(r.body))

	// Deleting through SCIM removes the user from its groups.
	r = e.do("DELETE", "/Users/"+boss, nil)
	e.requireStatus(r, http.StatusNoContent)
	g, _ = e.entry("cn=team," + e.groups)
	require.False(t, containsDN(g.Get("member"), "uid=chief,"+e.people))
}

// TestLDAPModifyIsVisible: the directory is the only store; an admin's edit shows on the next
// GET.
func TestLDAPModifyIsVisible(t *testing.T) {
	e := newEnv(t)
	id := e.createUser("visible", map[string]any{"title": "Engineer"})
	e.ldif("dn: uid=visible," + e.people + "\nchangetype: modify\nreplace: title\ntitle: Countess\n-\nreplace: mail\nmail: ada@example.org\n")
	r := e.do("GET", "/Users/"+id, nil)
	e.requireStatus(r, http.StatusOK)
	require.Equal(t, "Countess", r.body["title"])
	require.Equal(t, "ada@example.org", r.body["emails"].([]any)[0].(map[string]any)["value"])
}

// TestDisableMove: with disable = "move" an inactive user lives below the disabled base, is
// still found by id and filter, and comes back when re-enabled.
func TestDisableMove(t *testing.T) {
	e := newEnv(t, func(c *inbound.Config, _ *ldaptest.Options) { c.Disable = inbound.DisableMove })
	id := e.createUser("mover", nil)
	r := e.do("PATCH", "/Users/"+id, patchOps(op("Replace", "active", "False")))
	e.requireStatus(r, http.StatusOK)
	require.Equal(t, false, r.body["active"])
	_, ok := e.entry("uid=mover,ou=disabled," + e.ou)
	require.True(t, ok, "moved to the disabled base")
	r = e.do("GET", "/Users/"+id, nil)
	e.requireStatus(r, http.StatusOK)
	r = e.do("GET", "/Users?filter="+q(`userName eq "mover"`), nil)
	require.EqualValues(t, 1, r.body["totalResults"])
	r = e.do("GET", "/Users", nil)
	require.EqualValues(t, 1, r.body["totalResults"])
	r = e.do("PATCH", "/Users/"+id, patchOps(op("Replace", "active", true)))
	e.requireStatus(r, http.StatusOK)
	_, ok = e.entry("uid=mover," + e.people)
	require.True(t, ok, "back in the users base")

	r = e.do("POST", "/Users", user("born-disabled", map[string]any{"active": false}))
	e.requireStatus(r, http.StatusCreated)
	_, ok = e.entry("uid=born-disabled,ou=disabled," + e.ou)
	require.True(t, ok)
}

// TestDisableDelete: with disable = "delete", active=false deletes the user.
func TestDisableDelete(t *testing.T) {
	e := newEnv(t, func(c *inbound.Config, _ *ldaptest.Options) { c.Disable = inbound.DisableDelete })
	id := e.createUser("leaver", nil)
	gid := e.createGroup("g", id)
	r := e.do("PATCH", "/Users/"+id, patchOps(op("Replace", "active", "False")))
	e.requireStatus(r, http.StatusNoContent)
	_, ok := e.entry("uid=leaver," + e.people)
	require.False(t, ok)
	r = e.do("GET", "/Groups/"+gid, nil)
	require.Empty(t, memberIDs(r.body))
	before := e.snapshot()
	r = e.do("POST", "/Users", user("inactive", map[string]any{"active": false}))
	e.requireStatus(r, http.StatusBadRequest, "invalidValue")
	e.requireUnchanged(before, e.snapshot(), "unchanged")
}

// TestPPolicyLock: where the ppolicy overlay is loaded (detected from the subschema), a
// disabled user also gets the permanent pwdAccountLockedTime and, under a policy with
// pwdLockout TRUE (OpenLDAP ignores the lock otherwise), cannot bind.
func TestPPolicyLock(t *testing.T) {
	e := newEnv(t, func(_ *inbound.Config, o *ldaptest.Options) { o.PPolicy = true })
	const pw = "Lock3d-Out-Soon"
	r := e.do("POST", "/Users", user("locked", map[string]any{"password": pw}))
	e.requireStatus(r, http.StatusCreated)
	id := r.body["id"].(string)
	dn := "uid=locked," + e.people
	policy := "cn=lockout," + e.ou
	e.ldif("dn: " + policy + "\nobjectClass: organizationalRole\nobjectClass: pwdPolicy\ncn: lockout\npwdAttribute: userPassword\npwdLockout: TRUE\n\n" +
		"dn: " + dn + "\nchangetype: modify\nadd: pwdPolicySubentry\npwdPolicySubentry: " + policy + "\n")
	bind := func() error {
		st, err := ldapstore.Open(context.Background(), ldapstore.Config{URLs: []string{e.slapd.URL}, BindDN: dn, BindPassword: pw, DialTimeout: 2 * time.Second}, zerolog.Nop())
		if err == nil {
			st.Close()
		}
		return err
	}
	require.NoError(t, bind())
	r = e.do("PATCH", "/Users/"+id, patchOps(op("Replace", "active", "False")))
	e.requireStatus(r, http.StatusOK)
	en, _ := e.entry(dn)
	require.Equal(t, "000001010000Z", en.First("pwdAccountLockedTime"))
	require.Error(t, bind(), "a disabled user cannot bind")
	r = e.do("PATCH", "/Users/"+id, patchOps(op("Replace", "active", "True")))
	e.requireStatus(r, http.StatusOK)
	en, _ = e.entry(dn)
	require.Empty(t, en.Get("pwdAccountLockedTime"))
	require.NoError(t, bind())
}

// TestUserNameCaseChange: a change of case only is no rename (uid compares case-insensitively)
// but the new spelling is stored and returned.
func TestUserNameCaseChange(t *testing.T) {
	e := newEnv(t)
	id := e.createUser("ada.lovelace", nil)
	r := e.do("PATCH", "/Users/"+id, patchOps(op("replace", "userName", "Ada.Lovelace")))
	e.requireStatus(r, http.StatusOK)
	require.Equal(t, "Ada.Lovelace", r.body["userName"])
	require.Equal(t, id, r.body["id"])
	en, ok := e.entry("uid=ada.lovelace," + e.people)
	require.True(t, ok)
	require.Equal(t, []string{"Ada.Lovelace"}, en.Get("uid"))
}

// TestWriteAnswersEqualARead: the answer to PUT and PATCH (the entry as the Modify's Post-Read
// control returned it, on slapd) is what a GET right after returns, ETag included; and the same
// without Post-Read (a directory wrapper that lacks it reads the entry back).
func TestWriteAnswersEqualARead(t *testing.T) {
	for name, wrap := range map[string]func(inbound.Directory) inbound.Directory{
		"post-read": nil,
		"read-back": func(d inbound.Directory) inbound.Directory { return struct{ inbound.Directory }{d} },
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnvOn(t, wrap)
			require.Contains(t, e.logs.String(), fmt.Sprintf(`"post_read_control":%t`, wrap == nil))
			id := e.createUser("echo", map[string]any{"title": "one"})
			check := func(r response) {
				t.Helper()
				e.requireStatus(r, http.StatusOK)
				g := e.do("GET", "/Users/"+id, nil)
				e.requireStatus(g, http.StatusOK)
				require.Equal(t, g.header.Get("ETag"), r.header.Get("ETag"))
				require.Equal(t, g.body, r.body)
			}
			check(e.do("PATCH", "/Users/"+id, patchOps(op("replace", "title", "two"))))
			check(e.do("PUT", "/Users/"+id, user("echo", map[string]any{"title": "three", "displayName": "Echo"})))
			// A rename is two writes: the answer is read back.
			check(e.do("PATCH", "/Users/"+id, patchOps(op("replace", "userName", "echo2"))))

			uid := e.createUser("member", nil)
			gid := e.createGroup("echoes")
			r := e.do("PATCH", "/Groups/"+gid, patchOps(op("Add", "members", []any{map[string]any{"value": uid}})))
			e.requireStatus(r, http.StatusNoContent)
			g := e.do("GET", "/Groups/"+gid+"?excludedAttributes=members", nil)
			require.Equal(t, g.header.Get("ETag"), r.header.Get("ETag"), "the 204's ETag is the new version")
			r = e.do("PUT", "/Groups/"+gid, map[string]any{"schemas": []any{groupURN}, "displayName": "echoes", "members": []any{}})
			e.requireStatus(r, http.StatusOK)
			g = e.do("GET", "/Groups/"+gid, nil)
			require.Equal(t, g.header.Get("ETag"), r.header.Get("ETag"))
			require.Equal(t, g.body, r.body)
		})
	}
}
