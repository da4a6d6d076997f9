package inbound_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/bridge/inbound"
	"github.com/scimbridge/scimbridge/ldapstore"
	"github.com/scimbridge/scimbridge/ldapstore/ldaptest"
	"github.com/scimbridge/scimbridge/mapping"
)

// auditEvents returns the audit events of the server log.
func (e *env) auditEvents() []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(e.logs.String(), "\n") {
		var ev map[string]any
		if json.Unmarshal([]byte(line), &ev) == nil && ev["audit"] == true {
			out = append(out, ev)
		}
	}
	return out
}

// TestAuditMetricsAndIgnoredAttributes: one audit event per write with actor, resource, id, op
// and result; request metrics by endpoint, method and status; attributes without a mapping
// accepted and logged once per name.
func TestAuditMetricsAndIgnoredAttributes(t *testing.T) {
	e := newEnv(t)
	extra := map[string]any{
		"nickName": "Babs", "userType": "Employee", "locale": "en-US", "timezone": "Europe/Paris",
		entURN:      map[string]any{"costCenter": "4130", "division": "Theme Park"},
		"addresses": []any{map[string]any{"type": "work", "country": "US", "locality": "Paris"}},
	}
	id := e.createUser("audited", extra)
	e.createUser("audited2", extra)
	r := e.do("PATCH", "/Users/"+id, patchOps(op("replace", "title", "x")))
	e.requireStatus(r, http.StatusOK)
	r = e.do("PATCH", "/Users/"+id, patchOps(op("replace", "active", "perhaps")))
	e.requireStatus(r, http.StatusBadRequest)
	r = e.do("DELETE", "/Users/"+id, nil)
	e.requireStatus(r, http.StatusNoContent)

	events := e.auditEvents()
	require.Len(t, events, 5, "one event per write, failures included")
	for i, want := range []struct{ op, result string }{{"create", "success"}, {"create", "success"}, {"patch", "success"}, {"patch", "failure"}, {"delete", "success"}} {
		require.Equal(t, want.op, events[i]["op"])
		require.Equal(t, want.result, events[i]["result"])
		require.Equal(t, "entra", events[i]["actor"])
		require.Equal(t, "User", events[i]["resource"])
	}
	require.Equal(t, id, events[4]["id"])

	var ignored []string
	for _, line := range strings.Split(e.logs.String(), "\n") {
		var ev map[string]any
		if json.Unmarshal([]byte(line), &ev) == nil && strings.HasPrefix(ev["message"].(string), "scim attribute has no ldap mapping") {
			ignored = append(ignored, ev["attribute"].(string))
		}
	}
	joined := strings.Join(ignored, " ")
	for _, attr := range []string{"nickName", "userType", "locale", "timezone", "costCenter", "division", "country"} {
		require.Equal(t, 1, strings.Count(joined, attr), "%s logged once, though sent twice: %v", attr, ignored)
	}
	require.InDelta(t, 14.0, counter(t, e, "scimbridge_inbound_ignored_attributes_total", nil), 0, "but counted each time")

	require.InDelta(t, 2.0, counter(t, e, "scimbridge_inbound_requests_total", map[string]string{"endpoint": "Users", "method": "POST", "status": "201"}), 0)
	require.InDelta(t, 1.0, counter(t, e, "scimbridge_inbound_requests_total", map[string]string{"endpoint": "Users/{id}", "method": "PATCH", "status": "400"}), 0)
	mfs, err := e.reg.Gather()
	require.NoError(t, err)
	var observed uint64
	for _, mf := range mfs {
		if mf.GetName() == "scimbridge_inbound_request_duration_seconds" {
			for _, m := range mf.GetMetric() {
				observed += m.GetHistogram().GetSampleCount()
			}
		}
	}
	require.EqualValues(t, 5, observed, "every request is timed")
}

// counter reads a counter of the server's registry.
func counter(t *testing.T, e *env, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := e.reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := true
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					match = false
				}
			}
			if match {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// TestDiscoveryEndpoints: ServiceProviderConfig says what this server does (ETags, PATCH,
// filters, no bulk); Schemas and ResourceTypes come from elimity-com/scim with our schemas,
// custom extensions included.
func TestDiscoveryEndpoints(t *testing.T) {
	e := newEnv(t, func(c *inbound.Config, _ *ldaptest.Options) {
		c.Extensions = []mapping.ExtensionSchema{{URN: "urn:example:params:scim:schemas:extension:acme:2.0:User", Attributes: []mapping.ExtAttr{{Name: "badge", Type: "string", LDAP: "carLicense"}}}}
	})
	r := e.do("GET", "/ServiceProviderConfig", nil)
	e.requireStatus(r, http.StatusOK)
	require.Equal(t, true, r.body["etag"].(map[string]any)["supported"])
	require.Equal(t, true, r.body["patch"].(map[string]any)["supported"])
	require.Equal(t, false, r.body["bulk"].(map[string]any)["supported"])
	require.Equal(t, true, r.body["filter"].(map[string]any)["supported"])

	r = e.do("GET", "/ResourceTypes", nil)
	e.requireStatus(r, http.StatusOK)
	require.EqualValues(t, 2, r.body["totalResults"])
	r = e.do("GET", "/Schemas", nil)
	e.requireStatus(r, http.StatusOK)
	var ids []string
	for _, s := range resources(r) {
		ids = append(ids, s["id"].(string))
	}
	require.Contains(t, ids, userURN)
	require.Contains(t, ids, groupURN)
	require.Contains(t, ids, entURN)
	require.Contains(t, ids, "urn:example:params:scim:schemas:extension:acme:2.0:User")
	r = e.do("GET", "/Schemas/"+userURN, nil)
	e.requireStatus(r, http.StatusOK)
	require.Contains(t, r.raw, `"userName"`)

	// The custom extension round-trips through its LDAP attribute.
	r = e.do("POST", "/Users", user("badged", map[string]any{"urn:example:params:scim:schemas:extension:acme:2.0:User": map[string]any{"badge": "B-17"}}))
	e.requireStatus(r, http.StatusCreated)
	en, _ := e.entry("uid=badged," + e.people)
	require.Equal(t, "B-17", en.First("carLicense"))
	r = e.do("GET", "/Users?filter="+q(`urn:example:params:scim:schemas:extension:acme:2.0:User:badge eq "B-17"`), nil)
	require.EqualValues(t, 1, r.body["totalResults"])
}

// TestDirectoryDownIs503: an unreachable directory is a 503 with Retry-After and a SCIM error
// that names nothing of the directory.
func TestDirectoryDownIs503(t *testing.T) {
	s := ldaptest.Private(t, ldaptest.Options{})
	store, err := ldapstore.Open(context.Background(), ldapstore.Config{URLs: []string{s.URL}, BindDN: s.ServiceDN, BindPassword: s.ServicePW, DialTimeout: time.Second, Timeout: 2 * time.Second}, zerolog.Nop())
	require.NoError(t, err)
	t.Cleanup(store.Close)
	srv, err := inbound.New(context.Background(), inbound.Options{Directory: store, Logger: zerolog.Nop(), Config: inbound.Config{
		BasePath: "/scim/v2", Users: inbound.Users{BaseDN: s.PeopleDN}, Groups: inbound.Groups{BaseDN: s.GroupsDN},
		Tokens: []inbound.Token{tokenFor("entra", testToken)},
	}})
	require.NoError(t, err)
	t.Cleanup(srv.Close)
	e := &env{t: t, ou: s.Suffix, logs: &syncBuf{mu: make(chanMutex, 1)}}
	e.http = httptestServer(t, srv)
	e.url = e.http.URL + "/scim/v2"
	require.NoError(t, s.Stop())
	for _, req := range []struct{ method, path string }{{"GET", "/Users"}, {"GET", "/Users/x"}, {"POST", "/Users"}, {"GET", "/Groups?filter=" + q(`displayName eq "x"`)}} {
		var body any
		if req.method == "POST" {
			body = user("x", nil)
		}
		r := e.do(req.method, req.path, body)
		e.requireStatus(r, http.StatusServiceUnavailable)
		require.Equal(t, "5", r.header.Get("Retry-After"))
		require.NotContains(t, r.raw, "127.0.0.1")
	}
	require.NoError(t, s.Start())
	r := e.do("GET", "/Users", nil)
	e.requireStatus(r, http.StatusOK)
}

// TestReloadRotatesTokens: a reload swaps the accepted tokens between requests.
func TestReloadRotatesTokens(t *testing.T) {
	e := newEnv(t)
	cfg := inbound.Config{
		BasePath: "/scim/v2", Users: inbound.Users{BaseDN: e.people}, Groups: inbound.Groups{BaseDN: e.groups},
		Tokens: []inbound.Token{tokenFor("entra-next", "the-next-token-0123456789")},
	}
	require.NoError(t, e.srv.Reload(context.Background(), cfg))
	r := e.do("GET", "/Users", nil)
	e.requireStatus(r, http.StatusUnauthorized)
	r = e.do("GET", "/Users", nil, "Authorization", "Bearer the-next-token-0123456789")
	e.requireStatus(r, http.StatusOK)
	bad := cfg
	bad.UserAttributes = map[string]string{"userName": "in valid"}
	require.Error(t, e.srv.Reload(context.Background(), bad), "a bad configuration is refused")
	r = e.do("GET", "/Users", nil, "Authorization", "Bearer the-next-token-0123456789")
	e.requireStatus(r, http.StatusOK, "and the old one keeps serving")
}
