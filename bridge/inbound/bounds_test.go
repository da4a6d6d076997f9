package inbound_test

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/bridge/inbound"
	"github.com/scimbridge/scimbridge/ldapstore"
	"github.com/scimbridge/scimbridge/ldapstore/ldaptest"
	"github.com/scimbridge/scimbridge/mapping"
)

// membersBody is a Group with n member ids: first, then known when it is set, else n-1
// distinct made-up ids.
func membersBody(name, first, known string, n int) map[string]any {
	members := make([]any, 0, n)
	members = append(members, map[string]any{"value": first})
	for i := 1; i < n; i++ {
		id := known
		if id == "" {
			id = fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i)
		}
		members = append(members, map[string]any{"value": id})
	}
	return map[string]any{"displayName": name, "members": members}
}

// TestUnknownMembersFailFast: a group naming 20,000 members, the first of them unknown, costs
// at most two LDAP searches (one per kind that could hold the id) before its 400; more
// members than inbound.max_members_per_request cost none (413).
func TestUnknownMembersFailFast(t *testing.T) {
	e, f := newFaultyEnv(t, nil, func(c *inbound.Config, _ *ldaptest.Options) { c.MaxBodyBytes = 4 << 20 })
	known := e.createUser("known", nil)
	f.reset()
	r := e.do("POST", "/Groups", membersBody("big", "ffffffff-0000-4000-8000-000000000000", "", 20000))
	e.requireStatus(r, http.StatusBadRequest, "invalidValue")
	require.Contains(t, r.raw, "value 1 is not the id")
	require.LessOrEqual(t, f.count("search")+f.count("get"), 2, "LDAP searches before the 400: %v", f.ops)
	require.Zero(t, f.count("add"))

	// The cap: refused before any lookup.
	require.NoError(t, e.srv.Reload(context.Background(), inbound.Config{
		BasePath: "/scim/v2", MaxBodyBytes: 4 << 20, MaxMembers: 100,
		Users: inbound.Users{BaseDN: e.people}, Groups: inbound.Groups{BaseDN: e.groups}, Tokens: []inbound.Token{tokenFor("entra", testToken)},
	}))
	gid := e.createGroup("small")
	f.reset()
	for _, r := range []response{
		e.do("POST", "/Groups", membersBody("capped", known, known, 101)),
		e.do("PUT", "/Groups/"+gid, membersBody("small", known, known, 101)),
		e.do("PATCH", "/Groups/"+gid, patchOps(op("add", "members", membersBody("", known, known, 101)["members"]))),
	} {
		e.requireStatus(r, http.StatusRequestEntityTooLarge)
		require.Contains(t, r.raw, "at most 100")
	}
	require.Zero(t, f.count("search")+f.count("get"), "no lookup before the 413: %v", f.ops)
}

// TestWorkQueue: beyond max_concurrent_requests requests wait in the queue and are answered
// when a slot frees; only a full queue is a 503 with Retry-After.
func TestWorkQueue(t *testing.T) {
	e, f := newFaultyEnv(t, nil, func(c *inbound.Config, _ *ldaptest.Options) {
		c.MaxConcurrent, c.MaxQueued = 1, 1
	})
	entered, release := make(chan struct{}), make(chan struct{})
	f.setBefore("search", func() { close(entered); <-release })
	var wg sync.WaitGroup
	results := make([]response, 2)
	wg.Go(func() { results[0] = e.do("GET", "/Users?filter="+q(`userName eq "a"`), nil) })
	<-entered // the first request holds the only slot
	wg.Go(func() { results[1] = e.do("GET", "/Users?filter="+q(`userName eq "b"`), nil) })
	// Wait until the second one is queued, then a third finds the queue full.
	deadline := time.Now().Add(10 * time.Second)
	for gauge(t, e, "scimbridge_inbound_requests_queued") < 1 {
		require.True(t, time.Now().Before(deadline), "the second request waits in the queue")
		time.Sleep(5 * time.Millisecond)
	}
	r := e.do("GET", "/Users", nil)
	e.requireStatus(r, http.StatusServiceUnavailable)
	require.NotEmpty(t, r.header.Get("Retry-After"))
	close(release)
	wg.Wait()
	for _, r := range results {
		e.requireStatus(r, http.StatusOK)
	}
	require.InDelta(t, 1.0, counter(t, e, "scimbridge_inbound_requests_rejected_total", map[string]string{"reason": "queue_full"}), 0)
}

// gauge reads a gauge of the server's registry.
func gauge(t *testing.T, e *env, name string) float64 {
	t.Helper()
	mfs, err := e.reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				return m.GetGauge().GetValue()
			}
		}
	}
	return 0
}

// TestCleartextPasswords: over a directory connection that is not encrypted, SCIM passwords
// are refused (nothing is written) unless allow_cleartext_passwords says otherwise.
func TestCleartextPasswords(t *testing.T) {
	e := newEnv(t, func(c *inbound.Config, _ *ldaptest.Options) { c.CleartextDirectory = true })
	before := e.snapshot()
	r := e.do("POST", "/Users", user("pw", map[string]any{"password": "Secret-123456"}))
	e.requireStatus(r, http.StatusBadRequest, "invalidValue")
	require.Contains(t, r.raw, "not encrypted")
	e.requireUnchanged(before, e.snapshot(), "a refused password writes nothing")
	id := e.createUser("pw", nil)
	r = e.do("PATCH", "/Users/"+id, patchOps(op("replace", "password", "Secret-123456")))
	e.requireStatus(r, http.StatusBadRequest, "invalidValue")

	require.NoError(t, e.srv.Reload(context.Background(), inbound.Config{
		BasePath: "/scim/v2", Users: inbound.Users{BaseDN: e.people}, Groups: inbound.Groups{BaseDN: e.groups},
		Tokens: []inbound.Token{tokenFor("entra", testToken)}, CleartextDirectory: true, AllowCleartextPasswords: true,
	}))
	r = e.do("PATCH", "/Users/"+id, patchOps(op("replace", "password", "Secret-123456")))
	e.requireStatus(r, http.StatusOK)
}

// TestLinksTrustOnlyConfiguredProxies: Location and meta.location come from public_url when it
// is set; otherwise from the request, where X-Forwarded-Proto and X-Forwarded-Host count only
// from a trusted proxy.
func TestLinksTrustOnlyConfiguredProxies(t *testing.T) {
	e := newEnv(t)
	base := inbound.Config{
		BasePath: "/scim/v2", Users: inbound.Users{BaseDN: e.people}, Groups: inbound.Groups{BaseDN: e.groups},
		Tokens: []inbound.Token{tokenFor("entra", testToken)},
	}
	fwd := []string{"X-Forwarded-Proto", "https", "X-Forwarded-Host", "evil.example"}
	r := e.do("POST", "/Users", user("links1", nil), fwd...)
	e.requireStatus(r, http.StatusCreated)
	require.True(t, strings.HasPrefix(r.header.Get("Location"), e.url+"/Users/"), "an untrusted client's headers are ignored: %s", r.header.Get("Location"))

	trusted := base
	trusted.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	require.NoError(t, e.srv.Reload(context.Background(), trusted))
	r = e.do("POST", "/Users", user("links2", nil), fwd...)
	e.requireStatus(r, http.StatusCreated)
	require.True(t, strings.HasPrefix(r.header.Get("Location"), "https://evil.example/scim/v2/Users/"), r.header.Get("Location"))

	public := trusted
	public.PublicURL = "https://scim.example.org/scim/v2/"
	require.NoError(t, e.srv.Reload(context.Background(), public))
	r = e.do("POST", "/Users", user("links3", nil), fwd...)
	e.requireStatus(r, http.StatusCreated)
	id := r.body["id"].(string)
	require.Equal(t, "https://scim.example.org/scim/v2/Users/"+id, r.header.Get("Location"))
	require.Equal(t, "https://scim.example.org/scim/v2/Users/"+id, r.body["meta"].(map[string]any)["location"])
}

// TestSensitiveAttributesAreRefused: mapping a SCIM attribute to an attribute that controls
// logins is refused, by name and by OID, in the user map, the group map and the extensions,
// unless the admin allows it by name.
func TestSensitiveAttributesAreRefused(t *testing.T) {
	s := ldaptest.Shared(t)
	store, err := ldapstore.Open(context.Background(), ldapstore.Config{URLs: []string{s.URL}, BindDN: s.ServiceDN, BindPassword: s.ServicePW}, zerolog.Nop())
	require.NoError(t, err)
	t.Cleanup(store.Close)
	cfg := func(edit func(*inbound.Config)) inbound.Config {
		c := inbound.Config{
			BasePath: "/scim/v2", Users: inbound.Users{BaseDN: s.PeopleDN}, Groups: inbound.Groups{BaseDN: s.GroupsDN},
			Tokens: []inbound.Token{tokenFor("entra", testToken)},
		}
		edit(&c)
		return c
	}
	ext := func(ldap string) []mapping.ExtensionSchema {
		return []mapping.ExtensionSchema{{URN: "urn:example:ext:2.0:User", Attributes: []mapping.ExtAttr{{Name: "shell", Type: "string", LDAP: ldap}}}}
	}
	for name, c := range map[string]inbound.Config{
		"user map by name":     cfg(func(c *inbound.Config) { c.UserAttributes = map[string]string{"nickName": "loginShell"} }),
		"user map by OID":      cfg(func(c *inbound.Config) { c.UserAttributes = map[string]string{"nickName": "1.3.6.1.1.1.1.0"} }),
		"user map, any case":   cfg(func(c *inbound.Config) { c.UserAttributes = map[string]string{"title": "AUTHZTO"} }),
		"an extension":         cfg(func(c *inbound.Config) { c.Extensions = ext("homeDirectory") }),
		"an extension, by OID": cfg(func(c *inbound.Config) { c.Extensions = ext("1.3.6.1.1.1.1.4") }),
		"the group map":        cfg(func(c *inbound.Config) { c.GroupAttributes = map[string]string{"externalId": "gidNumber"} }),
		"389-DS roles":         cfg(func(c *inbound.Config) { c.UserAttributes = map[string]string{"userType": "nsRoleDN"} }),
		"another one allowed": cfg(func(c *inbound.Config) {
			c.UserAttributes = map[string]string{"userType": "uidNumber"}
			c.AllowSensitive = []string{"loginShell"}
		}),
		"sudo rules by any way": cfg(func(c *inbound.Config) { c.UserAttributes = map[string]string{"userType": "sudoUser;x-tag"} }),
	} {
		_, err := inbound.New(context.Background(), inbound.Options{Config: c, Directory: store, Logger: zerolog.Nop()})
		require.ErrorContains(t, err, "allow_sensitive_attributes", name)
	}
	allowed := cfg(func(c *inbound.Config) {
		c.UserAttributes = map[string]string{"nickName": "loginShell"}
		c.AllowSensitive = []string{"LoginShell"}
	})
	srv, err := inbound.New(context.Background(), inbound.Options{Config: allowed, Directory: store, Logger: zerolog.Nop()})
	require.NoError(t, err, "an explicit opt-in allows it")
	srv.Close()
}

// TestSensitiveOIDsMatchSlapd: every sensitive attribute OpenLDAP knows (core, cosine, nis and
// its built-in ones) is refused by its OID and by each of its names, as slapd's subschema
// spells them: the table's OIDs are the server's.
func TestSensitiveOIDsMatchSlapd(t *testing.T) {
	e := newEnv(t)
	got, err := e.store.SearchAll(context.Background(), ldapstore.Search{Base: "cn=Subschema", Scope: ldapstore.ScopeBase, Filter: "(objectClass=subschema)", Attrs: []string{"attributeTypes"}})
	require.NoError(t, err)
	require.Len(t, got, 1)
	defRE := regexp.MustCompile(`^\(\s*([0-9.]+)\s+NAME\s+(?:'([^']+)'|\(\s*((?:'[^']+'\s*)+)\))`)
	checked := 0
	for _, def := range got[0].Get("attributeTypes") {
		m := defRE.FindStringSubmatch(def)
		if m == nil {
			continue
		}
		names := []string{m[2]}
		if m[3] != "" {
			names = strings.Fields(strings.ReplaceAll(m[3], "'", " "))
		}
		for _, n := range names {
			if _, sensitive := mapping.SensitiveAttribute(n); !sensitive {
				continue
			}
			checked++
			_, byOID := mapping.SensitiveAttribute(m[1])
			require.True(t, byOID, "%s is sensitive but its OID %s is not: %s", n, m[1], def)
			for _, alias := range names {
				_, ok := mapping.SensitiveAttribute(alias)
				require.True(t, ok, "%s is sensitive, its alias %s too", n, alias)
			}
		}
	}
	require.GreaterOrEqual(t, checked, 15, "slapd knows the POSIX, authz and certificate attributes")
}

// TestConcurrentMemberPatchesOnOneGroup: Entra ID adds members to one group from many
// requests at once; membership-only PATCHes commute, so none of them fails for another's sake.
func TestConcurrentMemberPatchesOnOneGroup(t *testing.T) {
	e := newEnv(t)
	gid := e.createGroup("busy")
	ids := make([]string, 24)
	for i := range ids {
		ids[i] = e.createUser(fmt.Sprintf("member%02d", i), nil)
	}
	statuses := make([]int, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Go(func() {
			r := e.do("PATCH", "/Groups/"+gid, patchOps(op("Add", "members", []any{map[string]any{"value": id}})))
			statuses[i] = r.status
		})
	}
	wg.Wait()
	for i, s := range statuses {
		require.Equal(t, http.StatusNoContent, s, "member %d", i)
	}
	en, _ := e.entry("cn=busy," + e.groups)
	require.Len(t, en.Get("member"), len(ids), "every member is in, the placeholder is gone")
}
