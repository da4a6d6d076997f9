package inbound_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/bridge/inbound"
	"github.com/scimbridge/scimbridge/ldapstore"
	"github.com/scimbridge/scimbridge/ldapstore/ldaptest"
	"github.com/scimbridge/scimbridge/mapping"
)

func TestMain(m *testing.M) { os.Exit(ldaptest.RunMain(m, ldaptest.Options{})) }

const (
	testToken = "test-token-0123456789abcdef"
	userURN   = "urn:ietf:params:scim:schemas:core:2.0:User"
	groupURN  = "urn:ietf:params:scim:schemas:core:2.0:Group"
	entURN    = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
	patchURN  = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
)

// env is one inbound server on its own OU of the shared slapd.
type env struct {
	t      *testing.T
	slapd  *ldaptest.Server
	ou     string
	people string
	groups string
	store  *ldapstore.Store
	srv    *inbound.Server
	http   *httptest.Server
	url    string
	reg    *prometheus.Registry
	logs   *syncBuf
}

type syncBuf struct {
	mu  chanMutex
	buf bytes.Buffer
}

type chanMutex chan struct{}

func (m chanMutex) lock()   { m <- struct{}{} }
func (m chanMutex) unlock() { <-m }

func (b *syncBuf) Write(p []byte) (int, error) {
	b.mu.lock()
	defer b.mu.unlock()
	return b.buf.Write(p)
}

func (b *syncBuf) String() string {
	b.mu.lock()
	defer b.mu.unlock()
	return b.buf.String()
}

// with returns a copy of e that reports to t (a subtest).
func (e *env) with(t *testing.T) *env {
	c := *e
	c.t = t
	return &c
}

type envOption func(*inbound.Config, *ldaptest.Options)

func newEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	return newEnvOn(t, nil, opts...)
}

// newEnvOn builds an env on slapd (nil: the shared one) and wraps the directory with wrap
// (nil: none), for fault injection.
func newEnvOn(t *testing.T, wrap func(inbound.Directory) inbound.Directory, opts ...envOption) *env {
	t.Helper()
	cfg := inbound.Config{BasePath: "/scim/v2", MaxBodyBytes: 64 << 10}
	var lo ldaptest.Options
	for _, o := range opts {
		o(&cfg, &lo)
	}
	var s *ldaptest.Server
	if lo.PPolicy || len(lo.Schemas) > 0 {
		s = ldaptest.Private(t, lo)
	} else {
		s = ldaptest.Shared(t)
	}
	ou := ldaptest.NewOU(t, s, strings.ReplaceAll(t.Name(), "/", "-"))
	e := &env{t: t, slapd: s, ou: ou, people: "ou=people," + ou, groups: "ou=groups," + ou, logs: &syncBuf{mu: make(chanMutex, 1)}}
	var err error
	e.store, err = ldapstore.Open(context.Background(), ldapstore.Config{
		URLs: []string{s.URL}, BindDN: s.ServiceDN, BindPassword: s.ServicePW, PoolSize: 8, Timeout: 10 * time.Second, PageSize: 200,
	}, zerolog.Nop())
	require.NoError(t, err)
	t.Cleanup(e.store.Close)
	cfg.Users.BaseDN = e.people
	cfg.Groups.BaseDN = e.groups
	cfg.Tokens = append(cfg.Tokens, inbound.Token{Name: "entra", SHA256: sha256.Sum256([]byte(testToken))})
	if cfg.Disable == inbound.DisableMove {
		cfg.DisabledBaseDN = "ou=disabled," + ou
		require.NoError(t, s.LDIF("dn: "+cfg.DisabledBaseDN+"\nobjectClass: organizationalUnit\nou: disabled\n"))
	}
	var dir inbound.Directory = e.store
	if wrap != nil {
		dir = wrap(e.store)
	}
	e.reg = prometheus.NewRegistry()
	logger := zerolog.New(e.logs).Level(zerolog.DebugLevel)
	e.srv, err = inbound.New(context.Background(), inbound.Options{
		Config: cfg, Directory: dir, Logger: logger, Registry: e.reg,
		AuthLimits: inbound.AuthLimits{Burst: 8, Every: 100 * time.Millisecond, MaxDelay: 250 * time.Millisecond},
	})
	require.NoError(t, err)
	t.Cleanup(e.srv.Close)
	e.http = httptest.NewServer(e.srv)
	t.Cleanup(e.http.Close)
	e.url = e.http.URL + "/scim/v2"
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log:\n%s", e.logs.String())
		}
	})
	return e
}

func httptestServer(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s
}

// response is a decoded answer.
type response struct {
	status int
	header http.Header
	raw    string
	body   map[string]any
}

func (e *env) do(method, path string, body any, headers ...string) response {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		require.NoError(e.t, err)
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, e.url+path, rd)
	require.NoError(e.t, err)
	req.Header.Set("Authorization", "Bearer "+testToken)
	if rd != nil {
		req.Header.Set("Content-Type", "application/scim+json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
		} else {
			req.Header.Set(headers[i], headers[i+1])
		}
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(e.t, err)
	r := response{status: resp.StatusCode, header: resp.Header, raw: string(data)}
	if len(data) > 0 {
		_ = json.Unmarshal(data, &r.body)
	}
	return r
}

// requireStatus checks the status and, for errors, that the body is a SCIM error that leaks
// no DN and no LDAP diagnostic.
func (e *env) requireStatus(r response, status int, scimType ...string) {
	e.t.Helper()
	require.Equal(e.t, status, r.status, "body: %s", r.raw)
	if status >= 400 {
		requireSCIMError(e.t, r, status, scimType...)
		require.NotContains(e.t, strings.ToLower(r.raw), strings.ToLower(e.ou), "no DN in an error")
		require.NotContains(e.t, strings.ToLower(r.raw), "dc=example", "no DN in an error")
	}
}

func requireSCIMError(t *testing.T, r response, status int, scimType ...string) {
	t.Helper()
	require.Contains(t, r.header.Get("Content-Type"), "application/scim+json")
	require.Equal(t, []any{"urn:ietf:params:scim:api:messages:2.0:Error"}, r.body["schemas"], "SCIM error body: %s", r.raw)
	require.Equal(t, strconv.Itoa(status), r.body["status"])
	if len(scimType) > 0 {
		require.Equal(t, scimType[0], r.body["scimType"], "body: %s", r.raw)
	}
	lower := strings.ToLower(r.raw)
	for _, leak := range []string{"ldap result", "ldapstore", "diagnostic", "uid=", "cn=", "ou=", "entrycsn", "objectclass violation"} {
		require.NotContains(t, lower, leak, "no LDAP detail in an error")
	}
}

// entry reads an entry as the rootdn would see it.
func (e *env) entry(dn string, attrs ...string) (mapping.Entry, bool) {
	e.t.Helper()
	if len(attrs) == 0 {
		attrs = []string{"*", "+"}
	}
	got, err := e.store.Get(context.Background(), dn, attrs)
	if err != nil {
		require.ErrorIs(e.t, err, ldapstore.ErrNotFound)
		return mapping.Entry{}, false
	}
	return got, true
}

// count returns how many entries below base match filter.
func (e *env) count(base, filter string) int {
	e.t.Helper()
	got, err := e.store.SearchAll(context.Background(), ldapstore.Search{Base: base, Scope: ldapstore.ScopeSub, Filter: filter, Attrs: []string{"1.1"}})
	require.NoError(e.t, err)
	return len(got)
}

// snapshot returns every entry below the OU with all attributes, to prove a request changed
// nothing.
func (e *env) snapshot() map[string]string {
	e.t.Helper()
	got, err := e.store.SearchAll(context.Background(), ldapstore.Search{Base: e.ou, Scope: ldapstore.ScopeSub, Attrs: []string{"*", "entryCSN"}})
	require.NoError(e.t, err)
	out := map[string]string{}
	for _, en := range got {
		data, _ := json.Marshal(en.Attrs)
		out[strings.ToLower(en.DN)] = string(data)
	}
	return out
}

func tokenFor(name, token string) inbound.Token {
	return inbound.Token{Name: name, SHA256: sha256.Sum256([]byte(token))}
}

// requireUnchanged compares two snapshots and names only the entries that differ.
func (e *env) requireUnchanged(before, after map[string]string, msg string) {
	e.t.Helper()
	var diffs []string
	for dn, v := range before {
		if w, ok := after[dn]; !ok {
			diffs = append(diffs, "removed "+dn)
		} else if w != v {
			diffs = append(diffs, "changed "+dn+": "+v+" → "+w)
		}
	}
	for dn := range after {
		if _, ok := before[dn]; !ok {
			diffs = append(diffs, "added "+dn)
		}
	}
	require.Empty(e.t, diffs, msg)
}

func user(userName string, extra map[string]any) map[string]any {
	u := map[string]any{"schemas": []any{userURN, entURN}, "userName": userName, "active": true}
	for k, v := range extra {
		u[k] = v
	}
	return u
}

func patchOps(ops ...map[string]any) map[string]any {
	list := make([]any, len(ops))
	for i, o := range ops {
		list[i] = o
	}
	return map[string]any{"schemas": []any{patchURN}, "Operations": list}
}

func op(name, path string, value any) map[string]any {
	m := map[string]any{"op": name}
	if path != "" {
		m["path"] = path
	}
	if value != nil {
		m["value"] = value
	}
	return m
}

// create POSTs a user and returns its id.
func (e *env) createUser(userName string, extra map[string]any) string {
	e.t.Helper()
	r := e.do("POST", "/Users", user(userName, extra))
	e.requireStatus(r, http.StatusCreated)
	id, _ := r.body["id"].(string)
	require.NotEmpty(e.t, id)
	return id
}

func (e *env) createGroup(name string, memberIDs ...string) string {
	e.t.Helper()
	var members []any
	for _, id := range memberIDs {
		members = append(members, map[string]any{"value": id})
	}
	body := map[string]any{"schemas": []any{groupURN}, "displayName": name}
	if members != nil {
		body["members"] = members
	}
	r := e.do("POST", "/Groups", body)
	e.requireStatus(r, http.StatusCreated)
	id, _ := r.body["id"].(string)
	require.NotEmpty(e.t, id)
	return id
}

func resources(r response) []map[string]any {
	list, _ := r.body["Resources"].([]any)
	out := make([]map[string]any, 0, len(list))
	for _, x := range list {
		m, _ := x.(map[string]any)
		out = append(out, m)
	}
	return out
}
