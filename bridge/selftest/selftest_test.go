package selftest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/bridge/selftest"
	"github.com/scimbridge/scimbridge/targets/targettest"
)

const token = "s3cr3t-selftest-token-9f8e7d6c"

// targettestGaps are the steps the bare targettest server fails, and why: it is a strict
// RFC 7644 server for the outbound side, without the Entra ID quirks the inbound server
// must accept. The reference test asserts these fail (and nothing else), so the list stays
// true when targettest changes.
var targettestGaps = map[string]string{
	selftest.StepPatchAddTyped: `answers 400 noTarget to Add phoneNumbers[type eq "mobile"].value when no mobile value exists yet`,
	selftest.StepPatchNoPath:   `stores a path-less replace's "name.givenName" and "urn:…:employeeNumber" keys as literal top-level attributes`,
	selftest.StepDisableS:      `answers 400 invalidValue to "active":"False" (a string)`,
}

// newTarget starts a targettest server accepting token.
func newTarget(t *testing.T, opts targettest.Options) *targettest.Server {
	t.Helper()
	opts.BearerTokens = []string{token}
	ts := targettest.NewServer(opts)
	t.Cleanup(ts.Close)
	return ts
}

// run runs the selftest against url and returns the report and the output.
func run(t *testing.T, url string, mod ...func(*selftest.Options)) (selftest.Report, string, error) {
	t.Helper()
	return runCtx(t.Context(), t, url, mod...)
}

func runCtx(ctx context.Context, t *testing.T, url string, mod ...func(*selftest.Options)) (selftest.Report, string, error) {
	t.Helper()
	var out bytes.Buffer
	opts := selftest.Options{URL: url, Token: token, Out: &out, Timeout: 5 * time.Second}
	for _, m := range mod {
		m(&opts)
	}
	rep, err := selftest.Run(ctx, opts)
	t.Logf("selftest output:\n%s", out.String())
	return rep, out.String(), err
}

func statusOf(t *testing.T, rep selftest.Report, name string) selftest.Step {
	t.Helper()
	s, ok := rep.Step(name)
	require.True(t, ok, "no step %q in the report", name)
	return s
}

// requireClean checks the server holds no user and no group: every test server starts
// empty, so anything left is the selftest's.
func requireClean(t *testing.T, ts *targettest.Server) {
	t.Helper()
	require.Empty(t, ts.Users(), "users left behind")
	require.Empty(t, ts.Groups(), "groups left behind")
}

func TestReferenceServer(t *testing.T) {
	ts := newTarget(t, targettest.Options{BasePath: "/scim/v2"})
	rep, _, err := run(t, ts.URL)
	require.NoError(t, err)
	for _, s := range rep.Steps {
		if reason, gap := targettestGaps[s.Name]; gap {
			require.Equal(t, selftest.Fail, s.Status, "%s: targettest %s; it passes now: drop it from targettestGaps", s.Name, reason)
			continue
		}
		require.Equal(t, selftest.Pass, s.Status, "%s: %s", s.Name, s.Detail)
	}
	require.Equal(t, len(targettestGaps), rep.Failed)
	requireClean(t, ts)
}

func TestEntraCompatibleServerPassesEveryStep(t *testing.T) {
	ts := newTarget(t, targettest.Options{})
	p := newProxy(t, ts)
	rep, out, err := run(t, p.URL)
	require.NoError(t, err)
	for _, s := range rep.Steps {
		require.Equal(t, selftest.Pass, s.Status, "%s: %s", s.Name, s.Detail)
	}
	require.True(t, rep.OK())
	require.Zero(t, rep.Failed)
	require.Zero(t, rep.Skipped)
	require.GreaterOrEqual(t, rep.Passed, 36)
	requireClean(t, ts)

	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, len(rep.Steps)+1)
	require.Regexp(t, `^PASS  auth: no token is rejected with 401 \(401, \d+ms\)$`, lines[0])
	require.Regexp(t, `^PASS  create user \(201, \d+ms\)$`, lines[4])
	require.Regexp(t, `^PASS  cleanup: delete group `, out[strings.Index(out, "PASS  cleanup"):])
	last := lines[len(lines)-1]
	require.Regexp(t, `^selftest summary: \d+ passed, 0 failed, 0 skipped$`, last)
	// CI parsers read a bare "N passed, M failed" line as a test run's result.
	require.NotRegexp(t, `(?m)^\d+ passed, \d+ failed`, out)
}

func TestBrokenServers(t *testing.T) {
	for _, tc := range []struct {
		name    string
		opts    targettest.Options
		broken  func(p *proxy)
		want    []string // steps that must FAIL
		noClean bool
	}{
		{
			name: "duplicate userName accepted",
			broken: func(p *proxy) {
				p.mutate = acceptDuplicateUserNames(p.ts, func(_, _ string) bool { return true })
			},
			want: []string{selftest.StepDuplicateUser, selftest.StepDuplicateUserCase},
		},
		{
			name: "userName uniqueness case-sensitive",
			broken: func(p *proxy) {
				p.mutate = acceptDuplicateUserNames(p.ts, func(sent, existing string) bool { return sent != existing })
			},
			want: []string{selftest.StepDuplicateUserCase},
		},
		{
			name: "startIndex ignored",
			opts: targettest.Options{IgnoreStartIndex: true},
			want: []string{selftest.StepPaging},
		},
		{
			name: "count ignored",
			broken: func(p *proxy) {
				p.mutate = func(_ http.ResponseWriter, r *http.Request, body []byte) ([]byte, bool) {
					if r.Method == http.MethodGet && r.URL.Path == "/Users" {
						q := r.URL.Query()
						q.Del("count")
						r.URL.RawQuery = q.Encode()
					}
					return body, false
				}
			},
			want: []string{selftest.StepPaging},
		},
		{
			name: "PATCH add members replaces the member list",
			broken: func(p *proxy) {
				p.mutate = rewriteOps(func(r *http.Request, op map[string]any) []map[string]any {
					if strings.HasPrefix(r.URL.Path, "/Groups/") && strings.EqualFold(op["op"].(string), "add") && op["path"] == "members" {
						op["op"] = "replace"
					}
					return []map[string]any{op}
				})
			},
			want: []string{selftest.StepAddMemberKeeps},
		},
		{
			name: `"active":"False" string ignored`,
			broken: func(p *proxy) {
				p.mutate = rewriteOps(func(_ *http.Request, op map[string]any) []map[string]any {
					if _, isString := op["value"].(string); isString && op["path"] == "active" {
						return nil
					}
					return []map[string]any{op}
				})
			},
			want: []string{selftest.StepDisableS},
		},
		{
			name: "Users filter returns everyone",
			broken: func(p *proxy) {
				p.mutate = func(_ http.ResponseWriter, r *http.Request, body []byte) ([]byte, bool) {
					if r.Method == http.MethodGet && r.URL.Path == "/Users" {
						q := r.URL.Query()
						q.Del("filter")
						r.URL.RawQuery = q.Encode()
					}
					return body, false
				}
			},
			want: []string{selftest.StepQueryUserName, selftest.StepQueryExternalID, selftest.StepQueryUserNameCase, selftest.StepGetDeletedUser},
		},
		{
			name: "excludedAttributes ignored",
			broken: func(p *proxy) {
				p.mutate = func(_ http.ResponseWriter, r *http.Request, body []byte) ([]byte, bool) {
					q := r.URL.Query()
					q.Del("excludedAttributes")
					r.URL.RawQuery = q.Encode()
					return body, false
				}
			},
			want: []string{selftest.StepGetGroup, selftest.StepQueryGroup},
		},
		{
			name: "answers application/json",
			broken: func(p *proxy) {
				p.header = func(h http.Header) {
					if h.Get("Content-Type") != "" {
						h.Set("Content-Type", "application/json")
					}
				}
			},
			want: []string{selftest.StepTestConnectionUsers, selftest.StepTestConnectionGroups, selftest.StepCreateUser, selftest.StepCreateGroup},
		},
		{
			name: "DELETE answers 204 but keeps the user",
			broken: func(p *proxy) {
				p.mutate = func(w http.ResponseWriter, r *http.Request, body []byte) ([]byte, bool) {
					if r.Method == http.MethodDelete && strings.HasPrefix(r.URL.Path, "/Users/") {
						w.WriteHeader(http.StatusNoContent)
						return nil, true
					}
					return body, false
				}
			},
			want:    []string{selftest.StepGetDeletedUser},
			noClean: true, // the endpoint cannot delete users at all
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTarget(t, tc.opts)
			p := newProxy(t, ts)
			if tc.broken != nil {
				tc.broken(p)
			}
			rep, _, err := run(t, p.URL)
			require.NoError(t, err)
			for _, name := range tc.want {
				s := statusOf(t, rep, name)
				require.Equal(t, selftest.Fail, s.Status, "%s: %s", name, s.Detail)
			}
			require.False(t, rep.OK(), "a broken server must make the run fail (exit code 1)")
			if !tc.noClean {
				requireClean(t, ts)
			}
		})
	}
}

func TestFailureDetails(t *testing.T) {
	ts := newTarget(t, targettest.Options{IgnoreStartIndex: true})
	p := newProxy(t, ts)
	p.mutate = acceptDuplicateUserNames(p.ts, func(_, _ string) bool { return true })
	rep, out, err := run(t, p.URL)
	require.NoError(t, err)
	require.Contains(t, out, "FAIL  paging: startIndex and count: startIndex=2 returned the same user as startIndex=1 (startIndex ignored?)\n")
	s := statusOf(t, rep, selftest.StepDuplicateUser)
	require.Contains(t, s.Detail, "POST /Users: 201 Created")
	require.Contains(t, s.Detail, "was accepted; Entra ID relies on 409")
	require.Regexp(t, `(?m)^selftest summary: \d+ passed, 3 failed, 0 skipped$`, out)
	requireClean(t, ts)
}

func TestDependentStepsAreSkipped(t *testing.T) {
	ts := newTarget(t, targettest.Options{})
	p := newProxy(t, ts)
	p.mutate = func(w http.ResponseWriter, r *http.Request, body []byte) ([]byte, bool) {
		if r.Method == http.MethodPost && r.URL.Path == "/Groups" {
			scimError(w, http.StatusForbidden, "groups are not provisioned here")
			return nil, true
		}
		return body, false
	}
	rep, out, err := run(t, p.URL)
	require.NoError(t, err)
	require.Equal(t, selftest.Fail, statusOf(t, rep, selftest.StepCreateGroup).Status)
	s := statusOf(t, rep, selftest.StepAddMember)
	require.Equal(t, selftest.Skip, s.Status)
	require.Equal(t, `needs "create group", which did not pass`, s.Detail)
	require.Contains(t, out, "SKIP  update group: add member: needs \"create group\", which did not pass\n")
	require.Equal(t, selftest.Skip, statusOf(t, rep, selftest.StepGetDeletedGroup).Status)
	// The user side is unaffected.
	require.Equal(t, selftest.Pass, statusOf(t, rep, selftest.StepGetDeletedUser).Status)
	require.Equal(t, 2, rep.Failed) // create group, create second group
	requireClean(t, ts)
}

func TestTestConnectionGatesTheRest(t *testing.T) {
	ts := newTarget(t, targettest.Options{})
	var out bytes.Buffer
	rep, err := selftest.Run(t.Context(), selftest.Options{URL: ts.URL, Token: "not-the-token", Out: &out})
	require.NoError(t, err)
	require.Equal(t, selftest.Pass, statusOf(t, rep, selftest.StepNoToken).Status)
	s := statusOf(t, rep, selftest.StepTestConnectionUsers)
	require.Equal(t, selftest.Fail, s.Status)
	require.Contains(t, s.Detail, "401 Unauthorized, want 200")
	s = statusOf(t, rep, selftest.StepCreateUser)
	require.Equal(t, selftest.Skip, s.Status)
	require.Equal(t, "the endpoint failed Entra ID's Test Connection query", s.Detail)
	require.Equal(t, 3, rep.Passed+rep.Failed, "only the auth steps and Test Connection run")
	require.Zero(t, ts.Creates())
	require.False(t, rep.OK())
}

func TestUnreachableEndpoint(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	rep, out, err := run(t, url)
	require.NoError(t, err)
	require.False(t, rep.OK())
	require.Contains(t, statusOf(t, rep, selftest.StepTestConnectionUsers).Detail, "connection refused")
	require.Regexp(t, `(?m)^selftest summary: 0 passed, 3 failed, \d+ skipped$`, out)
}

func TestSlowEndpointTimesOut(t *testing.T) {
	ts := newTarget(t, targettest.Options{})
	ts.Inject(targettest.Fault{Method: http.MethodGet, Path: "/Groups", Latency: 5 * time.Second})
	rep, _, err := run(t, ts.URL, func(o *selftest.Options) { o.Timeout = time.Second })
	require.NoError(t, err)
	s := statusOf(t, rep, selftest.StepTestConnectionGroups)
	require.Equal(t, selftest.Fail, s.Status)
	require.Contains(t, s.Detail, "no answer within 1s")
	requireClean(t, ts)
}

// TestCancelCleansUp cancels the run in the middle of a request the server has already
// applied, and checks the cleanup deleted everything all the same.
func TestCancelCleansUp(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cancel  func(r *http.Request, body []byte) bool
		skipped string
	}{
		{
			name: "during a group PATCH",
			cancel: func(r *http.Request, _ []byte) bool {
				return r.Method == http.MethodPatch && strings.HasPrefix(r.URL.Path, "/Groups/")
			},
			skipped: selftest.StepAddMember,
		},
		{
			// The third user is stored but its id never reaches the selftest: the cleanup
			// must find it by userName.
			name: "during a create",
			cancel: func(r *http.Request, body []byte) bool {
				return r.Method == http.MethodPost && bytes.Contains(body, []byte("-carol@"))
			},
			skipped: selftest.StepCreateUser3,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTarget(t, targettest.Options{})
			p := newProxy(t, ts)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			var once sync.Once
			p.after = func(r *http.Request, body []byte) {
				if tc.cancel(r, body) {
					once.Do(func() {
						cancel()
						// Answer only once the client has given up, so it never sees the answer.
						select {
						case <-r.Context().Done():
						case <-time.After(5 * time.Second):
						}
					})
				}
			}
			rep, out, err := runCtx(ctx, t, p.URL)
			require.ErrorIs(t, err, context.Canceled)
			require.ErrorContains(t, err, "selftest: interrupted")
			s := statusOf(t, rep, tc.skipped)
			require.Equal(t, selftest.Skip, s.Status)
			require.Equal(t, "interrupted", s.Detail)
			require.Equal(t, selftest.Skip, statusOf(t, rep, selftest.StepDeleteUser).Status)
			require.Contains(t, out, "PASS  cleanup: delete user ")
			for _, s := range rep.Steps {
				if strings.HasPrefix(s.Name, "cleanup: ") {
					require.Equal(t, selftest.Pass, s.Status, "%s: %s", s.Name, s.Detail)
				}
			}
			requireClean(t, ts)
		})
	}
}

func TestKeep(t *testing.T) {
	ts := newTarget(t, targettest.Options{})
	p := newProxy(t, ts)
	rep, out, err := run(t, p.URL, func(o *selftest.Options) {
		o.Keep = true
		o.Prefix = "keep-test"
	})
	require.NoError(t, err)
	require.True(t, rep.OK(), "skipping deletes is no failure")
	require.Equal(t, selftest.Skip, statusOf(t, rep, selftest.StepDeleteUser).Status)
	require.Contains(t, out, "SKIP  cleanup: delete user keep-test-bob@example.com: kept (deletion disabled), id ")
	require.Len(t, ts.Users(), 3)
	require.Len(t, ts.Groups(), 2)
	for _, u := range ts.Users() {
		require.True(t, strings.HasPrefix(u["userName"].(string), "keep-test-"), "userName %v", u["userName"])
		require.True(t, strings.HasPrefix(u["externalId"].(string), "keep-test-"), "externalId %v", u["externalId"])
	}
}

// TestCleanupDeletesOnlyOurs checks the cleanup does not delete a resource whose name lacks
// the prefix, even when the endpoint claims it created it.
func TestCleanupDeletesOnlyOurs(t *testing.T) {
	ts := newTarget(t, targettest.Options{})
	precious, err := ts.AddUser(map[string]any{"userName": "ceo@example.com"})
	require.NoError(t, err)
	p := newProxy(t, ts)
	// An endpoint that answers the third create with another user's resource.
	p.mutate = func(w http.ResponseWriter, r *http.Request, body []byte) ([]byte, bool) {
		if r.Method == http.MethodPost && bytes.Contains(body, []byte("-carol@")) {
			u, _ := ts.User(precious)
			writeJSON(w, http.StatusCreated, u)
			return nil, true
		}
		return body, false
	}
	rep, out, err := run(t, p.URL)
	require.NoError(t, err)
	require.Contains(t, out, `FAIL  cleanup: delete user `)
	require.Contains(t, out, `not deleting it: GET /Users/`+precious+` says its userName is "ceo@example.com", which lacks the prefix`)
	require.NotContains(t, out, "delete it by hand")
	require.False(t, rep.OK())
	_, ok := ts.User(precious)
	require.True(t, ok, "the cleanup deleted a user that is not the selftest's")
	require.Len(t, ts.Users(), 1)
	require.Empty(t, ts.Groups())
}

func TestTokenNeverInOutput(t *testing.T) {
	ts := newTarget(t, targettest.Options{})
	p := newProxy(t, ts)
	// An endpoint that echoes the Authorization header in an error.
	var echoed atomic.Bool
	p.mutate = func(w http.ResponseWriter, r *http.Request, body []byte) ([]byte, bool) {
		if r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/Users/") && !echoed.Swap(true) {
			scimError(w, http.StatusInternalServerError, "cannot serve "+r.Header.Get("Authorization"))
			return nil, true
		}
		return body, false
	}
	rep, out, err := run(t, p.URL)
	require.NoError(t, err)
	require.NotContains(t, out, token)
	for _, s := range rep.Steps {
		require.NotContains(t, s.Detail, token)
		require.NotContains(t, s.Name, token)
	}
	s := statusOf(t, rep, selftest.StepGetUser)
	require.Equal(t, selftest.Fail, s.Status)
	require.Contains(t, s.Detail, "cannot serve Bearer <redacted>")
	requireClean(t, ts)
}

func TestOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		opts selftest.Options
		want string
	}{
		{selftest.Options{Token: "t"}, "selftest: Options.URL is required"},
		{selftest.Options{URL: "ftp://x", Token: "t"}, `selftest: Options.URL: scheme "ftp" (want "https" or "http")`},
		{selftest.Options{URL: "https://", Token: "t"}, "selftest: Options.URL: no host"},
		{selftest.Options{URL: "https://u:p@x", Token: "t"}, "selftest: Options.URL: must not carry credentials (the token goes in Options.Token)"},
		{selftest.Options{URL: "https://x?a=b", Token: "t"}, "selftest: Options.URL: must not have a query or fragment"},
		{selftest.Options{URL: "https://x"}, "selftest: Options.Token is required"},
		{selftest.Options{URL: "https://x", Token: "a\nb"}, "selftest: Options.Token contains a line break"},
		{selftest.Options{URL: "https://x", Token: "t", Prefix: "a b"}, `selftest: Options.Prefix "a b": want 3 to 40 of A-Z a-z 0-9 . _ - starting with a letter or digit`},
		{selftest.Options{URL: "https://x", Token: "t", Timeout: -time.Second}, "selftest: Options.Timeout -1s is negative"},
	} {
		err := tc.opts.Validate()
		require.EqualError(t, err, tc.want)
		_, err = selftest.Run(t.Context(), tc.opts)
		require.EqualError(t, err, tc.want)
	}
	require.NoError(t, selftest.Options{URL: "https://scim.example.com/scim/v2/", Token: "t"}.Validate())
	err := selftest.Options{}.Validate()
	require.ErrorContains(t, err, "Options.URL is required")
	require.ErrorContains(t, err, "Options.Token is required")
}

// proxy stands in front of a targettest server. Without corruption it makes the server
// accept what Entra ID sends beyond strict RFC 7644 (see entraCompat), so it passes every
// step; mutate, header and after then break one behaviour at a time.
type proxy struct {
	URL string
	ts  *targettest.Server
	// mutate sees each request first, with its body: it may change the request (its URL
	// included) and return the body to forward, or answer it itself and return true.
	mutate func(w http.ResponseWriter, r *http.Request, body []byte) ([]byte, bool)
	// header may change the server's answer's header.
	header func(h http.Header)
	// after runs once the server has answered, before the answer is passed on.
	after func(r *http.Request, body []byte)
}

func newProxy(t *testing.T, ts *targettest.Server) *proxy {
	t.Helper()
	p := &proxy{ts: ts}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	p.URL = srv.URL
	return p
}

func (p *proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	orig := body
	if p.mutate != nil {
		var done bool
		if body, done = p.mutate(w, r, body); done {
			return
		}
	}
	if r.Method == http.MethodPatch {
		body = entraCompat(p.ts, r.URL.Path, body)
	}
	// The server finishes the request even when the client gives up on it.
	req, err := http.NewRequestWithContext(context.WithoutCancel(r.Context()), r.Method, p.ts.URL+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	req.Header = r.Header.Clone()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(resp.Body)
	if p.after != nil {
		p.after(r, orig)
	}
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	if p.header != nil {
		p.header(w.Header())
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(rb)
}

var typedPathRe = regexp.MustCompile(`^(\w+)\[type eq "(\w+)"\]\.(\w+)$`)

// entraCompat rewrites a PatchOp the way an Entra-compatible server reads it, into what
// targettest (strict RFC 7644) accepts: "True"/"False" strings for active become booleans,
// a path-less value's dotted and extension-URN keys become operations with paths, and an
// Add to a typed value that does not exist yet appends a new value of that type.
func entraCompat(ts *targettest.Server, path string, body []byte) []byte {
	var doc map[string]any
	if json.Unmarshal(body, &doc) != nil {
		return body
	}
	ops, _ := doc["Operations"].([]any)
	var out []any
	for _, o := range ops {
		op, ok := o.(map[string]any)
		if !ok {
			out = append(out, o)
			continue
		}
		name, _ := op["op"].(string)
		p, _ := op["path"].(string)
		switch v := op["value"].(type) {
		case string:
			if strings.EqualFold(p, "active") {
				op["value"] = strings.EqualFold(v, "true")
			}
			if m := typedPathRe.FindStringSubmatch(p); m != nil && strings.EqualFold(name, "add") {
				id := strings.TrimPrefix(path, "/Users/")
				if u, ok := ts.User(id); ok && !hasTyped(u, m[1], m[2]) {
					op["path"] = m[1]
					op["value"] = []any{map[string]any{"type": m[2], m[3]: v}}
				}
			}
		case map[string]any:
			if p != "" {
				break
			}
			for k, kv := range v {
				if _, isMap := kv.(map[string]any); !isMap && (strings.Contains(k, ".") || strings.HasPrefix(k, "urn:")) {
					out = append(out, map[string]any{"op": name, "path": k, "value": kv})
					delete(v, k)
				}
			}
			if len(v) == 0 {
				continue
			}
		}
		out = append(out, op)
	}
	doc["Operations"] = out
	b, err := json.Marshal(doc)
	if err != nil {
		return body
	}
	return b
}

func hasTyped(res map[string]any, attr, typ string) bool {
	list, _ := res[attr].([]any)
	for _, it := range list {
		if m, ok := it.(map[string]any); ok && m["type"] == typ {
			return true
		}
	}
	return false
}

// acceptDuplicateUserNames answers a POST /Users whose userName is taken (ignoring case)
// with 201 and the existing user, like an upsert, when accept says so.
func acceptDuplicateUserNames(ts *targettest.Server, accept func(sent, existing string) bool) func(http.ResponseWriter, *http.Request, []byte) ([]byte, bool) {
	return func(w http.ResponseWriter, r *http.Request, body []byte) ([]byte, bool) {
		if r.Method != http.MethodPost || r.URL.Path != "/Users" {
			return body, false
		}
		var doc struct {
			UserName string `json:"userName"`
		}
		if json.Unmarshal(body, &doc) != nil {
			return body, false
		}
		existing, ok := ts.UserByName(doc.UserName)
		if !ok || !accept(doc.UserName, existing["userName"].(string)) {
			return body, false
		}
		writeJSON(w, http.StatusCreated, existing)
		return nil, true
	}
}

// rewriteOps rewrites each PATCH operation into zero or more; a PATCH left without any is
// answered 204 without reaching the server (an endpoint ignoring what it was sent).
func rewriteOps(fn func(r *http.Request, op map[string]any) []map[string]any) func(http.ResponseWriter, *http.Request, []byte) ([]byte, bool) {
	return func(w http.ResponseWriter, r *http.Request, body []byte) ([]byte, bool) {
		if r.Method != http.MethodPatch {
			return body, false
		}
		var doc map[string]any
		if json.Unmarshal(body, &doc) != nil {
			return body, false
		}
		ops, _ := doc["Operations"].([]any)
		var out []any
		for _, o := range ops {
			for _, n := range fn(r, o.(map[string]any)) {
				out = append(out, n)
			}
		}
		if len(out) == 0 {
			w.WriteHeader(http.StatusNoContent)
			return nil, true
		}
		doc["Operations"] = out
		b, err := json.Marshal(doc)
		if err != nil {
			panic(errors.New("re-encoding a PatchOp: " + err.Error()))
		}
		return b, false
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/scim+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func scimError(w http.ResponseWriter, status int, detail string) {
	writeJSON(w, status, map[string]any{
		"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:Error"},
		"status":  http.StatusText(status),
		"detail":  detail,
	})
}
