package scim_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/mapping"
	"github.com/scimbridge/scimbridge/targets"
	"github.com/scimbridge/scimbridge/targets/scim"
	"github.com/scimbridge/scimbridge/targets/targettest"
)

// Secrets used by the tests; TestNoSecretLeaks looks for them in every error and log line.
const (
	testToken    = "tok-Zq8sWmUu3kP1vX7"
	clientSecret = "cs-Hn4rTe9bQw2LmA6"
	basicPass    = "pw-Yd5cVb8nMx1KsE3"
)

// syncBuffer is a log sink safe for the concurrent writes of a target's workers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newServer(t *testing.T, opts targettest.Options) *targettest.Server {
	t.Helper()
	if opts.BearerTokens == nil && opts.OAuth2 == nil && opts.BasicUsername == "" {
		opts.BearerTokens = []string{testToken}
	}
	srv := targettest.NewServer(opts)
	t.Cleanup(srv.Close)
	return srv
}

// testConfig is a bearer-token config for srv with backoffs small enough for tests.
func testConfig(srv *targettest.Server) *scim.Config {
	c := scim.DefaultConfig()
	c.URL = srv.URL
	c.Token = testToken
	c.MinBackoff = targets.Duration{Duration: time.Millisecond}
	c.MaxBackoff = targets.Duration{Duration: 20 * time.Millisecond}
	c.Timeout = targets.Duration{Duration: 5 * time.Second}
	return c
}

func open(t *testing.T, c *scim.Config) (*scim.Target, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	tg, err := scim.New(c, "test", zerolog.New(logs).Level(zerolog.DebugLevel))
	require.NoError(t, err)
	t.Cleanup(func() { _ = tg.Close() })
	return tg, logs
}

func newTarget(t *testing.T, opts targettest.Options, mod func(*scim.Config)) (*scim.Target, *targettest.Server, *syncBuffer) {
	t.Helper()
	srv := newServer(t, opts)
	c := testConfig(srv)
	if mod != nil {
		mod(c)
	}
	tg, logs := open(t, c)
	return tg, srv, logs
}

func userOp(name string) mapping.Op {
	return mapping.Op{
		Kind: mapping.KindUser, Type: mapping.OpCreate,
		MatchAttribute: "userName", MatchValue: name,
		Resource: map[string]any{"userName": name, "active": true, "externalId": "ext-" + name},
	}
}

func requireRetryable(t *testing.T, err error) time.Duration {
	t.Helper()
	require.Error(t, err)
	after, ok := targets.IsRetryable(err)
	require.Truef(t, ok, "want a RetryableError, got %T: %v", err, err)
	require.False(t, targets.IsPermanent(err))
	return after
}

func requirePermanent(t *testing.T, err error) *targets.PermanentError {
	t.Helper()
	require.Error(t, err)
	pe, ok := errors.AsType[*targets.PermanentError](err)
	require.Truef(t, ok, "want a PermanentError, got %T: %v", err, err)
	_, retry := targets.IsRetryable(err)
	require.False(t, retry)
	return pe
}

func TestLifecycle(t *testing.T) {
	tg, srv, _ := newTarget(t, targettest.Options{}, func(c *scim.Config) {
		c.URL += "/" // A trailing slash is fine.
		c.Headers = map[string]targets.Secret{"X-Tenant": "acme"}
	})
	ctx := t.Context()

	op := userOp("alice@example.com")
	op.Resource["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"] = map[string]any{"department": "R&D"}
	res, err := tg.Apply(ctx, op)
	require.NoError(t, err)
	require.NotEmpty(t, res.ID)
	require.Equal(t, mapping.KindUser, res.Kind)
	require.NotEmpty(t, res.Version)
	require.Equal(t, "alice@example.com", res.Attrs["userName"])
	created := srv.Requests()[len(srv.Requests())-1]
	require.Equal(t, http.MethodPost, created.Method)
	require.Equal(t, "application/scim+json", created.Header.Get("Content-Type"))
	require.Contains(t, created.Header.Get("Accept"), "application/scim+json")
	require.Equal(t, "acme", created.Header.Get("X-Tenant"))
	require.Equal(t, "Bearer "+testToken, created.Header.Get("Authorization"))
	require.Equal(t, "scimbridge", created.Header.Get("User-Agent"))
	require.Equal(t, "/Users", created.Path)
	require.Contains(t, string(created.Body), `"R&D"`, "no HTML escaping")
	var body map[string]any
	require.NoError(t, json.Unmarshal(created.Body, &body))
	require.ElementsMatch(t, []any{scim.SchemaUser, scim.SchemaEnterprise}, body["schemas"])

	_, err = tg.Apply(ctx, mapping.Op{
		Kind: mapping.KindUser, Type: mapping.OpUpdate, TargetID: res.ID,
		Patch: []mapping.PatchOp{{Op: "replace", Path: "displayName", Value: "Alice"}, {Op: "add", Path: "title", Value: "Boss"}},
	})
	require.NoError(t, err)
	u, _ := srv.User(res.ID)
	require.Equal(t, "Alice", u["displayName"])
	require.Equal(t, "Boss", u["title"])

	upd, err := tg.Apply(ctx, mapping.Op{Kind: mapping.KindUser, Type: mapping.OpUpdate, TargetID: res.ID})
	require.NoError(t, err, "an empty update sends nothing")
	require.Equal(t, res.ID, upd.ID)

	_, err = tg.Apply(ctx, mapping.Op{
		Kind: mapping.KindUser, Type: mapping.OpReplace, TargetID: res.ID,
		Resource: map[string]any{"userName": "alice@example.com", "displayName": "Alice A.", "active": true},
	})
	require.NoError(t, err)
	u, _ = srv.User(res.ID)
	require.Equal(t, "Alice A.", u["displayName"])
	require.Nil(t, u["title"], "PUT replaces the whole resource")

	_, err = tg.Apply(ctx, mapping.Op{Kind: mapping.KindUser, Type: mapping.OpDisable, TargetID: res.ID})
	require.NoError(t, err)
	u, _ = srv.User(res.ID)
	require.Equal(t, false, u["active"])

	found, ok, err := tg.Find(ctx, mapping.KindUser, "userName", "ALICE@example.com")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, res.ID, found.ID)

	_, err = tg.Apply(ctx, mapping.Op{Kind: mapping.KindUser, Type: mapping.OpDelete, TargetID: res.ID})
	require.NoError(t, err)
	require.Empty(t, srv.Users())

	_, ok, err = tg.Find(ctx, mapping.KindUser, "userName", "alice@example.com")
	require.NoError(t, err)
	require.False(t, ok)
}

func TestOperationErrors(t *testing.T) {
	tg, srv, _ := newTarget(t, targettest.Options{}, nil)
	for name, op := range map[string]mapping.Op{
		"no target id":    {Kind: mapping.KindUser, Type: mapping.OpReplace},
		"unknown kind":    {Kind: "Device", Type: mapping.OpDelete, TargetID: "x"},
		"unknown op":      {Kind: mapping.KindUser, Type: "rename", TargetID: "x"},
		"disable a group": {Kind: mapping.KindGroup, Type: mapping.OpDisable, TargetID: "x"},
		"bad members op":  {Kind: mapping.KindGroup, Type: mapping.OpMembers, TargetID: "x", Patch: []mapping.PatchOp{{Op: "replace", Path: "members"}}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := tg.Apply(t.Context(), op)
			requirePermanent(t, err)
			require.True(t, strings.HasPrefix(err.Error(), "scim: "), err.Error())
		})
	}
	require.Zero(t, srv.CountRequests("", "/"), "nothing was sent")
}

// TestStatusClassification answers every HTTP status to a PUT and a DELETE and checks how the
// target classifies it.
func TestStatusClassification(t *testing.T) {
	status := 0
	tg, srv, _ := newTarget(t, targettest.Options{}, func(c *scim.Config) { c.MaxRetries = 0 })
	srv.SetHook(func(w http.ResponseWriter, _ *http.Request) bool {
		if status == http.StatusNoContent {
			w.WriteHeader(status)
			return true
		}
		w.Header().Set("Content-Type", "application/scim+json")
		if status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "7")
		}
		if status >= 300 && status < 400 {
			w.Header().Set("Location", "https://elsewhere.example/login?session=s3cr3t")
		}
		w.WriteHeader(status)
		if status < 300 {
			_, _ = fmt.Fprint(w, `{"id":"u1","userName":"x","meta":{"version":"W/\"3\""}}`)
			return true
		}
		_, _ = fmt.Fprintf(w, `{"schemas":[%q],"status":"%d","scimType":"invalidValue","detail":"detail for %d"}`, scim.SchemaError, status, status)
		return true
	})

	const (
		ok = iota
		retryable
		permanent
	)
	want := func(code int) int {
		switch {
		case code < 300:
			return ok
		case code == 408 || code == 429:
			return retryable
		case code == 501 || code == 505:
			return permanent
		case code >= 500:
			return retryable
		}
		return permanent
	}
	// Spot checks of the rule above, written out.
	for code, w := range map[int]int{
		200: ok, 201: ok, 204: ok, 302: permanent, 400: permanent, 401: permanent,
		403: permanent, 404: permanent, 409: permanent, 422: permanent, 408: retryable, 429: retryable,
		500: retryable, 501: permanent, 502: retryable, 503: retryable, 504: retryable,
	} {
		require.Equal(t, want(code), w, "rule for %d", code)
	}

	replace := mapping.Op{Kind: mapping.KindUser, Type: mapping.OpReplace, TargetID: "u1", Resource: map[string]any{"userName": "x"}}
	for code := 200; code < 600; code++ {
		if http.StatusText(code) == "" {
			continue
		}
		status = code
		srv.ResetRequests()
		res, err := tg.Apply(t.Context(), replace)
		switch want(code) {
		case ok:
			require.NoError(t, err, "status %d", code)
			require.Equal(t, "u1", res.ID, "status %d", code)
		case retryable:
			after := requireRetryable(t, err)
			require.Contains(t, err.Error(), fmt.Sprintf("detail for %d", code))
			if code == 429 || code == 503 {
				require.Equal(t, 7*time.Second, after)
			}
		case permanent:
			pe := requirePermanent(t, err)
			require.Equal(t, code, pe.Status)
			if code != http.StatusNotModified { // A 304 has no body.
				require.Contains(t, pe.Body, fmt.Sprintf("detail for %d", code))
			}
			require.Contains(t, err.Error(), fmt.Sprintf("%d", code))
			require.NotContains(t, err.Error(), "s3cr3t", "redirect URLs are redacted")
		}
		tries := 1
		if code == http.StatusUnauthorized {
			tries = 2 // One refresh of the credentials.
		}
		require.Equal(t, tries, srv.CountRequests(http.MethodPut, "/Users/u1"), "status %d", code)

		_, err = tg.Apply(t.Context(), mapping.Op{Kind: mapping.KindUser, Type: mapping.OpDelete, TargetID: "u1"})
		if code == http.StatusNotFound || want(code) == ok {
			require.NoError(t, err, "DELETE answered %d", code)
		} else {
			require.Error(t, err, "DELETE answered %d", code)
		}
	}
	status = http.StatusNotFound
	_, err := tg.Apply(t.Context(), replace)
	require.True(t, targets.IsNotFound(err))
}

func TestPostNeverRetried(t *testing.T) {
	tg, srv, _ := newTarget(t, targettest.Options{}, func(c *scim.Config) { c.MaxRetries = 5 })
	for name, f := range map[string]targettest.Fault{
		"503":         {Method: http.MethodPost, Status: 503, Times: 10},
		"429":         {Method: http.MethodPost, Status: 429, RetryAfter: "0", Times: 10},
		"dropped":     {Method: http.MethodPost, Drop: true, Times: 10},
		"after store": {Method: http.MethodPost, AfterStore: true, Times: 10},
	} {
		t.Run(name, func(t *testing.T) {
			srv.ClearFaults()
			srv.ResetRequests()
			srv.Inject(f)
			op := userOp("post-" + strings.ReplaceAll(name, " ", "-"))
			_, err := tg.Apply(t.Context(), op)
			requireRetryable(t, err)
			require.Equal(t, 1, srv.CountRequests(http.MethodPost, "/Users"), "a POST is sent once")
		})
	}
}

func TestIdempotentRequestsRetried(t *testing.T) {
	tg, srv, _ := newTarget(t, targettest.Options{}, nil)
	id, err := srv.AddUser(map[string]any{"userName": "bob"})
	require.NoError(t, err)
	for _, tc := range []struct {
		method string
		op     mapping.Op
	}{
		{http.MethodPut, mapping.Op{Kind: mapping.KindUser, Type: mapping.OpReplace, TargetID: id, Resource: map[string]any{"userName": "bob"}}},
		{http.MethodPatch, mapping.Op{Kind: mapping.KindUser, Type: mapping.OpDisable, TargetID: id}},
		{http.MethodGet, mapping.Op{}},
		{http.MethodDelete, mapping.Op{Kind: mapping.KindUser, Type: mapping.OpDelete, TargetID: id}},
	} {
		t.Run(tc.method, func(t *testing.T) {
			srv.ResetRequests()
			srv.Inject(targettest.Fault{Method: tc.method, Status: 502, Times: 1})
			srv.Inject(targettest.Fault{Method: tc.method, Drop: true, Times: 1})
			srv.Inject(targettest.Fault{Method: tc.method, Status: 503, Times: 1})
			var err error
			if tc.method == http.MethodGet {
				_, _, err = tg.Find(t.Context(), mapping.KindUser, "userName", "bob")
			} else {
				_, err = tg.Apply(t.Context(), tc.op)
			}
			require.NoError(t, err)
			require.Equal(t, 4, srv.CountRequests(tc.method, "/Users"))
		})
	}

	// Retries run out: the last answer's body is kept for the dead letter.
	srv.ResetRequests()
	srv.Inject(targettest.Fault{Method: http.MethodGet, Status: 500, Times: 10})
	_, _, err = tg.Find(t.Context(), mapping.KindUser, "userName", "bob")
	requireRetryable(t, err)
	require.Contains(t, err.Error(), "injected fault")
	require.Equal(t, 4, srv.CountRequests(http.MethodGet, "/Users"), "1 try + max_retries")
	srv.ClearFaults()
}

func TestRetryAfter(t *testing.T) {
	tg, srv, _ := newTarget(t, targettest.Options{}, func(c *scim.Config) {
		c.MaxBackoff = targets.Duration{Duration: 300 * time.Millisecond}
	})
	find := func() time.Duration {
		start := time.Now()
		_, _, err := tg.Find(t.Context(), mapping.KindUser, "userName", "nobody")
		require.NoError(t, err)
		return time.Since(start)
	}

	srv.RateLimitNext(1, "3600")
	d := find()
	require.GreaterOrEqual(t, d, 300*time.Millisecond, "capped at max_backoff, but waited")
	require.Less(t, d, 2*time.Second)

	srv.Inject(targettest.Fault{Status: 503, RetryAfter: time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)})
	d = find()
	require.GreaterOrEqual(t, d, 300*time.Millisecond, "HTTP date form, capped")
	require.Less(t, d, 2*time.Second)

	tg2, _ := open(t, func() *scim.Config {
		c := testConfig(srv)
		c.MaxBackoff = targets.Duration{Duration: 5 * time.Second}
		return c
	}())
	srv.RateLimitNext(1, "1")
	start := time.Now()
	_, _, err := tg2.Find(t.Context(), mapping.KindUser, "userName", "nobody")
	require.NoError(t, err)
	require.GreaterOrEqual(t, time.Since(start), 950*time.Millisecond, "Retry-After honoured below the cap")

	// When the quick retries are exhausted, the outbox gets the target's Retry-After.
	srv.Inject(targettest.Fault{Method: http.MethodPost, Status: 429, RetryAfter: "42"})
	_, err = tg.Apply(t.Context(), userOp("carol"))
	require.Equal(t, 42*time.Second, requireRetryable(t, err))
	srv.ClearFaults()
}

func TestCreateAdoptsExisting(t *testing.T) {
	tg, srv, _ := newTarget(t, targettest.Options{}, nil)
	id, err := srv.AddUser(map[string]any{"userName": "Dave"})
	require.NoError(t, err)

	res, err := tg.Apply(t.Context(), userOp("dave"))
	require.NoError(t, err)
	require.Equal(t, id, res.ID, "found by the lookup before the POST")
	require.Zero(t, srv.CountRequests(http.MethodPost, "/Users"))

	// The lookup misses (the resource appears between lookup and POST): 409 → adopt.
	gets := 0
	srv.SetHook(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodGet {
			return false
		}
		gets++
		if gets > 1 {
			return false
		}
		w.Header().Set("Content-Type", "application/scim+json")
		_, _ = fmt.Fprintf(w, `{"schemas":[%q],"totalResults":0,"Resources":[]}`, scim.SchemaListResponse)
		return true
	})
	res, err = tg.Apply(t.Context(), userOp("dave"))
	require.NoError(t, err)
	require.Equal(t, id, res.ID)
	require.Equal(t, 1, srv.CountRequests(http.MethodPost, "/Users"))
	require.Len(t, srv.Users(), 1)
	srv.SetHook(nil)

	// 409 on another attribute with nothing matching: permanent, with the target's detail.
	_, err = srv.AddUser(map[string]any{"userName": "erin"})
	require.NoError(t, err)
	op := userOp("erin")
	op.MatchAttribute, op.MatchValue = "externalId", "ext-erin-2"
	_, err = tg.Apply(t.Context(), op)
	pe := requirePermanent(t, err)
	require.Equal(t, http.StatusConflict, pe.Status)
	require.Contains(t, err.Error(), "uniqueness")
	require.Contains(t, err.Error(), `no User matches externalId eq "ext-erin-2"`)
}

func TestCreateLostAnswerIsFoundNextTime(t *testing.T) {
	tg, srv, _ := newTarget(t, targettest.Options{}, nil)
	srv.Inject(targettest.Fault{Method: http.MethodPost, AfterStore: true})
	_, err := tg.Apply(t.Context(), userOp("frank"))
	requireRetryable(t, err)
	require.EqualValues(t, 1, srv.Creates(), "the server stored it")

	res, err := tg.Apply(t.Context(), userOp("frank"))
	require.NoError(t, err)
	require.Len(t, srv.Users(), 1, "no duplicate")
	require.Equal(t, srv.Users()[0]["id"], res.ID)
	require.Equal(t, 1, srv.CountRequests(http.MethodPost, "/Users"))
}

func TestBearerTokenRefreshedOnce(t *testing.T) {
	dir := t.TempDir()
	tokFile := filepath.Join(dir, "token")
	require.NoError(t, os.WriteFile(tokFile, []byte("old-token\n"), 0o600))
	tg, srv, _ := newTarget(t, targettest.Options{BearerTokens: []string{"old-token", "new-token"}}, func(c *scim.Config) {
		c.Token = ""
		c.TokenFile = "token"
		c.SetDirectory(dir)
	})
	_, err := tg.Apply(t.Context(), userOp("gina"))
	require.NoError(t, err)
	require.Equal(t, "Bearer old-token", srv.Requests()[0].Header.Get("Authorization"), "trailing newline trimmed")

	// The token is revoked and rotated on disk: the 401 makes the target reload it.
	srv.ExpireToken("old-token", 0)
	require.NoError(t, os.WriteFile(tokFile, []byte("new-token\n"), 0o600))
	srv.ResetRequests()
	_, _, err = tg.Find(t.Context(), mapping.KindUser, "userName", "gina")
	require.NoError(t, err)
	reqs := srv.Requests()
	require.Len(t, reqs, 2)
	require.Equal(t, http.StatusUnauthorized, reqs[0].Status)
	require.Equal(t, "Bearer new-token", reqs[1].Header.Get("Authorization"))

	// Persistent 401: one more try, then permanent with a clear message.
	srv.ExpireToken("new-token", 0)
	srv.ResetRequests()
	_, err = tg.Apply(t.Context(), userOp("hank"))
	pe := requirePermanent(t, err)
	require.Equal(t, http.StatusUnauthorized, pe.Status)
	require.Contains(t, err.Error(), "rejected the credentials even after refreshing them")
	require.Equal(t, 2, srv.CountRequests("", "/Users"))
}

func TestBasicAuth(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "pw"), []byte(basicPass+"\r\n"), 0o600))
	tg, _, _ := newTarget(t, targettest.Options{BasicUsername: "svc", BasicPassword: basicPass}, func(c *scim.Config) {
		c.Auth, c.Token, c.Username, c.PasswordFile = scim.AuthBasic, "", "svc", filepath.Join(dir, "pw")
	})
	_, err := tg.Apply(t.Context(), userOp("ivan"))
	require.NoError(t, err)

	tgNone, _, _ := newTarget(t, targettest.Options{}, func(c *scim.Config) { c.Auth, c.Token = scim.AuthNone, "" })
	_, err = tgNone.Apply(t.Context(), userOp("ivan"))
	pe := requirePermanent(t, err)
	require.Equal(t, http.StatusUnauthorized, pe.Status)
	require.Contains(t, err.Error(), `auth = "none"`)
}

func oauthConfig(srv *targettest.Server, secretFile string) func(*scim.Config) {
	return func(c *scim.Config) {
		c.Auth, c.Token = scim.AuthOAuth2, ""
		c.TokenURL = srv.TokenURL
		c.ClientID = "bridge"
		c.ClientSecretFile = secretFile
		c.Scopes = []string{"scim.write"}
	}
}

func TestOAuth2(t *testing.T) {
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "secret")
	require.NoError(t, os.WriteFile(secretFile, []byte(clientSecret+"\n"), 0o600))

	for _, style := range []string{scim.TokenAuthHeader, scim.TokenAuthParams} {
		for _, omitExpiry := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/omit_expires_in=%v", style, omitExpiry), func(t *testing.T) {
				srv := newServer(t, targettest.Options{OAuth2: &targettest.OAuth2Options{
					ClientID: "bridge", ClientSecret: clientSecret, OmitExpiresIn: omitExpiry,
				}})
				c := testConfig(srv)
				oauthConfig(srv, secretFile)(c)
				c.TokenAuthStyle = style
				tg, _ := open(t, c)

				_, err := tg.Apply(t.Context(), userOp("judy"))
				require.NoError(t, err)
				_, err = tg.Apply(t.Context(), userOp("kim"))
				require.NoError(t, err)
				require.Equal(t, 1, srv.TokenRequests(), "the token is reused")
				tok := srv.Requests()[0]
				require.Equal(t, targettest.TokenPath, tok.Path)
				if style == scim.TokenAuthHeader {
					require.NotEmpty(t, tok.Header.Get("Authorization"))
					require.NotContains(t, string(tok.Body), "client_secret")
				} else {
					require.Empty(t, tok.Header.Get("Authorization"))
					require.Contains(t, string(tok.Body), "client_secret")
				}

				// The server revokes the token: 401 → new token → success.
				srv.RevokeTokens()
				srv.ResetRequests()
				_, _, err = tg.Find(t.Context(), mapping.KindUser, "userName", "kim")
				require.NoError(t, err)
				require.Equal(t, 2, srv.TokenRequests())
				require.Equal(t, []int{401, 200, 200}, statuses(srv.Requests()))
			})
		}
	}

	t.Run("bad secret", func(t *testing.T) {
		srv := newServer(t, targettest.Options{OAuth2: &targettest.OAuth2Options{ClientID: "bridge", ClientSecret: "the-right-one"}})
		c := testConfig(srv)
		oauthConfig(srv, secretFile)(c)
		c.MaxRetries = 5
		c.MinBackoff = targets.Duration{Duration: 200 * time.Millisecond}
		c.MaxBackoff = targets.Duration{Duration: time.Second}
		tg, _ := open(t, c)
		start := time.Now()
		for _, op := range []mapping.Op{userOp("lee"), {Kind: mapping.KindUser, Type: mapping.OpDelete, TargetID: "x"}} {
			_, err := tg.Apply(t.Context(), op)
			pe := requirePermanent(t, err)
			require.Equal(t, http.StatusUnauthorized, pe.Status)
			require.Contains(t, err.Error(), "oauth2 token endpoint rejected client credentials: 401 invalid_client")
		}
		require.Less(t, time.Since(start), 150*time.Millisecond, "no retry loop")
		require.Equal(t, 2, srv.TokenRequests(), "one token request per operation")
		require.Zero(t, srv.CountRequests("", "/Users"))
	})

	t.Run("token endpoint down", func(t *testing.T) {
		srv := newServer(t, targettest.Options{OAuth2: &targettest.OAuth2Options{ClientID: "bridge", ClientSecret: clientSecret}})
		c := testConfig(srv)
		oauthConfig(srv, secretFile)(c)
		tg, _ := open(t, c)
		srv.Inject(targettest.Fault{Path: targettest.TokenPath, Status: 503, Times: 2})
		// Even a POST is retried: the SCIM request never left.
		_, err := tg.Apply(t.Context(), mapping.Op{Kind: mapping.KindUser, Type: mapping.OpCreate, Resource: map[string]any{"userName": "mo"}})
		require.NoError(t, err)
		require.Equal(t, 3, srv.TokenRequests())

		srv.Inject(targettest.Fault{Path: targettest.TokenPath, Status: 503, Times: 10})
		srv.RevokeTokens()
		_, err = tg.Apply(t.Context(), mapping.Op{Kind: mapping.KindUser, Type: mapping.OpDelete, TargetID: "x"})
		requireRetryable(t, err)
		require.Contains(t, err.Error(), "oauth2 token endpoint failed: 503")
	})
}

func statuses(reqs []targettest.Request) []int {
	var out []int
	for _, r := range reqs {
		out = append(out, r.Status)
	}
	return out
}

func TestFind(t *testing.T) {
	tg, srv, _ := newTarget(t, targettest.Options{}, nil)
	tricky := `o"brien\x@example.com`
	id, err := srv.AddUser(map[string]any{
		"userName": tricky, "externalId": "dup",
		"emails": []any{map[string]any{"value": "ob@example.com", "type": "work"}},
	})
	require.NoError(t, err)
	_, err = srv.AddUser(map[string]any{"userName": "other", "externalId": "dup"})
	require.NoError(t, err)

	res, ok, err := tg.Find(t.Context(), mapping.KindUser, "userName", tricky)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, id, res.ID)
	req := srv.Requests()[len(srv.Requests())-1]
	require.Equal(t, `userName eq "o\"brien\\x@example.com"`, req.Query.Get("filter"))
	require.Equal(t, "2", req.Query.Get("count"))

	res, ok, err = tg.Find(t.Context(), mapping.KindUser, "emails.value", "OB@example.com")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, id, res.ID)

	_, _, err = tg.Find(t.Context(), mapping.KindUser, "externalId", "dup")
	requirePermanent(t, err)
	require.Contains(t, err.Error(), "ambiguous: 2 resources match")

	_, _, err = tg.Find(t.Context(), mapping.KindUser, `userName eq "x" or userName`, "y")
	requirePermanent(t, err)

	// A server that ignores the filter must not make us adopt a stranger.
	srv.SetHook(func(w http.ResponseWriter, _ *http.Request) bool {
		w.Header().Set("Content-Type", "application/scim+json")
		_, _ = fmt.Fprintf(w, `{"totalResults":1,"Resources":[{"id":%q,"userName":"other"}]}`, id)
		return true
	})
	_, _, err = tg.Find(t.Context(), mapping.KindUser, "userName", "someone")
	requirePermanent(t, err)
	require.Contains(t, err.Error(), "ignored the filter")

	// Some servers answer an empty search with 404.
	srv.SetHook(func(w http.ResponseWriter, _ *http.Request) bool {
		w.WriteHeader(http.StatusNotFound)
		return true
	})
	_, ok, err = tg.Find(t.Context(), mapping.KindUser, "userName", "someone")
	require.NoError(t, err)
	require.False(t, ok)
}

func TestDroppedConnectionOnGetRetried(t *testing.T) {
	tg, srv, _ := newTarget(t, targettest.Options{}, nil)
	srv.DropNext(2)
	_, ok, err := tg.Find(t.Context(), mapping.KindUser, "userName", "nobody")
	require.NoError(t, err)
	require.False(t, ok)
	require.Equal(t, 3, srv.CountRequests(http.MethodGet, "/Users"))
	require.Equal(t, []int{0, 0, 200}, statuses(srv.Requests()))
}

func TestTimeouts(t *testing.T) {
	tg, srv, _ := newTarget(t, targettest.Options{}, func(c *scim.Config) {
		c.Timeout = targets.Duration{Duration: 100 * time.Millisecond}
	})
	// A slow try is cut short and retried.
	srv.Inject(targettest.Fault{Method: http.MethodGet, Latency: time.Second})
	_, _, err := tg.Find(t.Context(), mapping.KindUser, "userName", "nobody")
	require.NoError(t, err)
	require.Equal(t, 2, srv.CountRequests(http.MethodGet, "/Users"))

	// A slow POST is not retried: retryable for the outbox, naming the timeout.
	srv.Inject(targettest.Fault{Method: http.MethodPost, Latency: time.Second})
	_, err = tg.Apply(t.Context(), mapping.Op{Kind: mapping.KindUser, Type: mapping.OpCreate, Resource: map[string]any{"userName": "slow"}})
	requireRetryable(t, err)
	require.Contains(t, err.Error(), "request timed out after 100ms")

	// The caller's context wins: cancellation is neither retryable nor permanent.
	srv.SetLatency(time.Second)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err = tg.Apply(ctx, mapping.Op{Kind: mapping.KindUser, Type: mapping.OpDelete, TargetID: "x"})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	_, retry := targets.IsRetryable(err)
	require.False(t, retry)
	require.False(t, targets.IsPermanent(err))

	cancelled, cancel2 := context.WithCancel(t.Context())
	cancel2()
	_, err = tg.Apply(cancelled, userOp("x"))
	require.ErrorIs(t, err, context.Canceled)
	srv.SetLatency(0)
}

func TestMembers(t *testing.T) {
	tg, srv, _ := newTarget(t, targettest.Options{}, func(c *scim.Config) { c.MembersPerRequest = 2 })
	var ids []string
	for i := range 5 {
		id, err := srv.AddUser(map[string]any{"userName": fmt.Sprintf("m%d", i)})
		require.NoError(t, err)
		ids = append(ids, id)
	}
	g, err := tg.Apply(t.Context(), mapping.Op{
		Kind: mapping.KindGroup, Type: mapping.OpCreate,
		MatchAttribute: "displayName", MatchValue: "Staff", Resource: map[string]any{"displayName": "Staff"},
	})
	require.NoError(t, err)
	grp, _ := srv.Group(g.ID)
	require.Equal(t, []any{scim.SchemaGroup}, grp["schemas"])

	srv.ResetRequests()
	_, err = tg.Apply(t.Context(), mapping.Op{
		Kind: mapping.KindGroup, Type: mapping.OpMembers, TargetID: g.ID,
		Patch: []mapping.PatchOp{{Op: "add", Path: "members", Value: ids}},
	})
	require.NoError(t, err)
	require.Equal(t, 3, srv.CountRequests(http.MethodPatch, "/Groups/"), "5 members, 2 per request")
	require.Equal(t, ids, memberIDs(t, srv, g.ID))

	// Remove three, one of them already gone (another a {"value": id} object): the batch
	// answered noTarget is redone member by member.
	srv.ResetRequests()
	_, err = tg.Apply(t.Context(), mapping.Op{
		Kind: mapping.KindGroup, Type: mapping.OpMembers, TargetID: g.ID,
		Patch: []mapping.PatchOp{
			{Op: "remove", Path: "members", Value: []any{ids[0], "not-a-member"}},
			{Op: "Remove", Path: "members", Value: map[string]any{"value": ids[1]}},
			{Op: "remove", Path: fmt.Sprintf(`members[value eq %q]`, ids[2])},
			{Op: "add", Value: []any{map[string]any{"value": ids[0]}}},
		},
	})
	require.NoError(t, err)
	require.ElementsMatch(t, []string{ids[3], ids[4], ids[0]}, memberIDs(t, srv, g.ID))
	// Batches: [0, not-a-member] → noTarget → 2 singles; [1, 2] → ok; add [0].
	require.Equal(t, 5, srv.CountRequests(http.MethodPatch, "/Groups/"))
	var body map[string]any
	require.NoError(t, json.Unmarshal(srv.Requests()[0].Body, &body))
	require.Equal(t, []any{scim.SchemaPatchOp}, body["schemas"])
	require.Equal(t, fmt.Sprintf(`members[value eq %q]`, ids[0]), body["Operations"].([]any)[0].(map[string]any)["path"])

	// Repeating the whole operation (at-least-once delivery) succeeds.
	_, err = tg.Apply(t.Context(), mapping.Op{
		Kind: mapping.KindGroup, Type: mapping.OpMembers, TargetID: g.ID,
		Patch: []mapping.PatchOp{{Op: "remove", Path: "members", Value: []string{ids[1], ids[2]}}},
	})
	require.NoError(t, err)

	// An unknown member on add is the target's 400: permanent, with its detail.
	_, err = tg.Apply(t.Context(), mapping.Op{
		Kind: mapping.KindGroup, Type: mapping.OpMembers, TargetID: g.ID,
		Patch: []mapping.PatchOp{{Op: "add", Path: "members", Value: []string{"ghost"}}},
	})
	pe := requirePermanent(t, err)
	require.Equal(t, http.StatusBadRequest, pe.Status)
	require.Contains(t, err.Error(), `member "ghost" is not a known user or group id`)

	// A PATCH that only removes and gets noTarget is done.
	_, err = tg.Apply(t.Context(), mapping.Op{
		Kind: mapping.KindGroup, Type: mapping.OpUpdate, TargetID: g.ID,
		Patch: []mapping.PatchOp{{Op: "remove", Path: `members[value eq "ghost"]`}},
	})
	require.NoError(t, err)
}

func memberIDs(t *testing.T, srv *targettest.Server, gid string) []string {
	t.Helper()
	g, ok := srv.Group(gid)
	require.True(t, ok)
	var out []string
	ms, _ := g["members"].([]any)
	for _, m := range ms {
		out = append(out, m.(map[string]any)["value"].(string))
	}
	return out
}

func TestList(t *testing.T) {
	for name, opts := range map[string]targettest.Options{
		"paged":             {},
		"server caps count": {MaxPageSize: 2},
	} {
		t.Run(name, func(t *testing.T) {
			tg, srv, _ := newTarget(t, opts, func(c *scim.Config) { c.PageSize = 3 })
			var want []string
			for i := range 7 {
				id, err := srv.AddUser(map[string]any{"userName": fmt.Sprintf("l%d", i)})
				require.NoError(t, err)
				want = append(want, id)
			}
			var got []string
			require.NoError(t, tg.List(t.Context(), mapping.KindUser, func(r targets.Result) error {
				got = append(got, r.ID)
				return nil
			}))
			require.Equal(t, want, got)
			pages := 3
			if opts.MaxPageSize == 2 {
				pages = 4
			}
			require.Equal(t, pages, srv.CountRequests(http.MethodGet, "/Users"))

			stop := errors.New("stop")
			require.ErrorIs(t, tg.List(t.Context(), mapping.KindUser, func(targets.Result) error { return stop }), stop)
		})
	}

	t.Run("server ignores startIndex", func(t *testing.T) {
		tg, srv, _ := newTarget(t, targettest.Options{IgnoreStartIndex: true}, func(c *scim.Config) { c.PageSize = 2 })
		for i := range 5 {
			_, err := srv.AddUser(map[string]any{"userName": fmt.Sprintf("r%d", i)})
			require.NoError(t, err)
		}
		n := 0
		err := tg.List(t.Context(), mapping.KindUser, func(targets.Result) error { n++; return nil })
		requirePermanent(t, err)
		require.Contains(t, err.Error(), "ignores startIndex")
		require.Equal(t, 2, n)
		require.Equal(t, 2, srv.CountRequests(http.MethodGet, "/Users"))
	})

	t.Run("empty", func(t *testing.T) {
		tg, _, _ := newTarget(t, targettest.Options{}, nil)
		require.NoError(t, tg.List(t.Context(), mapping.KindGroup, func(targets.Result) error {
			return errors.New("no group expected")
		}))
	})
}

func TestConcurrentUse(t *testing.T) {
	tg, srv, _ := newTarget(t, targettest.Options{}, nil)
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Go(func() {
			_, err := tg.Apply(context.Background(), userOp(fmt.Sprintf("c%d", i)))
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Len(t, srv.Users(), 20)
}

// TestNoSecretLeaks drives failures of every auth method and checks that no secret shows in
// an error, a debug log line, or the printed and encoded configuration.
func TestNoSecretLeaks(t *testing.T) {
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "secret")
	require.NoError(t, os.WriteFile(secretFile, []byte(clientSecret), 0o600))
	secrets := []string{testToken, clientSecret, basicPass}
	var texts []string

	srv := newServer(t, targettest.Options{
		OAuth2:       &targettest.OAuth2Options{ClientID: "bridge", ClientSecret: "other"},
		BearerTokens: []string{"other"}, BasicUsername: "svc", BasicPassword: "other",
	})
	configs := map[string]*scim.Config{}
	c := testConfig(srv)
	configs["bearer"] = c
	c = testConfig(srv)
	oauthConfig(srv, secretFile)(c)
	configs["oauth2 file"] = c
	c = testConfig(srv)
	oauthConfig(srv, "")(c)
	c.ClientSecret = clientSecret
	configs["oauth2 literal"] = c
	c = testConfig(srv)
	c.Auth, c.Token, c.Username, c.Password = scim.AuthBasic, "", "svc", basicPass
	configs["basic"] = c
	c = testConfig(srv)
	c.Auth, c.Token, c.Headers = scim.AuthNone, "", map[string]targets.Secret{"X-Api-Key": testToken}
	configs["header"] = c
	c = testConfig(srv)
	c.URL = "http://127.0.0.1:1/scim" // Nothing listens there.
	configs["unreachable"] = c

	for name, c := range configs {
		tg, logs := open(t, c)
		_, err := tg.Apply(t.Context(), userOp("leak"))
		require.Error(t, err, name)
		texts = append(texts, err.Error())
		_, _, err = tg.Find(t.Context(), mapping.KindUser, "userName", "leak")
		require.Error(t, err, name)
		texts = append(texts, err.Error(), logs.String())
		require.Contains(t, logs.String(), `"level":"debug"`, "debug logging was on")

		texts = append(texts, fmt.Sprintf("%v|%+v|%#v", c, c, c), fmt.Sprintf("%v|%+v|%#v", *c, *c, *c))
		js, err := json.Marshal(c)
		require.NoError(t, err)
		var tm bytes.Buffer
		require.NoError(t, toml.NewEncoder(&tm).Encode(c))
		texts = append(texts, string(js), tm.String())
	}
	for _, text := range texts {
		for _, s := range secrets {
			require.NotContains(t, text, s)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	srv := newServer(t, targettest.Options{})
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "empty"), []byte("\n"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "notpem"), []byte("hello"), 0o600))
	for name, tc := range map[string]struct {
		mod  func(*scim.Config)
		want string
	}{
		"invalid":        {func(c *scim.Config) { c.URL = "" }, "scim: url: required"},
		"missing token":  {func(c *scim.Config) { c.Token, c.TokenFile = "", "nope" }, "token_file: open " + filepath.Join(dir, "nope")},
		"empty token":    {func(c *scim.Config) { c.Token, c.TokenFile = "", "empty" }, "file is empty"},
		"bad CA":         {func(c *scim.Config) { c.CAFile = "notpem" }, "ca_file: notpem: no PEM certificate found"},
		"bad cert files": {func(c *scim.Config) { c.ClientCertFile, c.ClientKeyFile = "notpem", "notpem" }, "client_cert_file and client_key_file:"},
	} {
		t.Run(name, func(t *testing.T) {
			c := testConfig(srv)
			c.SetDirectory(dir)
			tc.mod(c)
			_, err := c.Open("p", zerolog.Nop())
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestInsecureAndPlainHTTPWarnings(t *testing.T) {
	srv := newServer(t, targettest.Options{})
	c := testConfig(srv)
	c.InsecureSkipVerify = true
	c.URL = "http://scim.example.com/v2"
	_, logs := open(t, c)
	require.Contains(t, logs.String(), "insecure_skip_verify")
	require.Contains(t, logs.String(), "credentials are sent over plain http")
}

// pki is a CA with a server certificate for 127.0.0.1 and a client certificate, written as PEM
// files into a temporary directory.
type pki struct {
	dir                         string
	caFile, certFile, keyFile   string
	otherCertFile, otherKeyFile string // Signed by another CA.
	serverCert                  tls.Certificate
	clientCAs                   *x509.CertPool
}

func newPKI(t *testing.T) pki {
	t.Helper()
	dir := t.TempDir()
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		require.NoError(t, err)
		return k
	}
	serial := int64(1)
	issue := func(tmpl *x509.Certificate, parent *x509.Certificate, parentKey, key *ecdsa.PrivateKey) *x509.Certificate {
		serial++
		tmpl.SerialNumber = big.NewInt(serial)
		tmpl.NotBefore = time.Now().Add(-time.Hour)
		tmpl.NotAfter = time.Now().Add(time.Hour)
		if parent == nil {
			parent, parentKey = tmpl, key
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
		require.NoError(t, err)
		c, err := x509.ParseCertificate(der)
		require.NoError(t, err)
		return c
	}
	writePEM := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600))
		return p
	}
	writeKey := func(name string, k *ecdsa.PrivateKey) string {
		der, err := x509.MarshalECPrivateKey(k)
		require.NoError(t, err)
		return writePEM(name, "EC PRIVATE KEY", der)
	}
	caTmpl := func(cn string) *x509.Certificate {
		return &x509.Certificate{
			Subject: pkix.Name{CommonName: cn}, IsCA: true, BasicConstraintsValid: true,
			KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		}
	}

	caKey, otherCAKey := newKey(), newKey()
	ca := issue(caTmpl("test CA"), nil, nil, caKey)
	otherCA := issue(caTmpl("other CA"), nil, nil, otherCAKey)
	srvKey, cliKey, otherKey := newKey(), newKey(), newKey()
	srv := issue(&x509.Certificate{
		Subject: pkix.Name{CommonName: "127.0.0.1"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
	}, ca, caKey, srvKey)
	cliTmpl := func() *x509.Certificate {
		return &x509.Certificate{
			Subject:     pkix.Name{CommonName: "scimbridge"},
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
		}
	}
	cli := issue(cliTmpl(), ca, caKey, cliKey)
	other := issue(cliTmpl(), otherCA, otherCAKey, otherKey)

	p := pki{dir: dir, clientCAs: x509.NewCertPool()}
	p.clientCAs.AddCert(ca)
	p.caFile = writePEM("ca.pem", "CERTIFICATE", ca.Raw)
	p.certFile = writePEM("client.pem", "CERTIFICATE", cli.Raw)
	p.keyFile = writeKey("client-key.pem", cliKey)
	p.otherCertFile = writePEM("other.pem", "CERTIFICATE", other.Raw)
	p.otherKeyFile = writeKey("other-key.pem", otherKey)
	p.serverCert = tls.Certificate{Certificate: [][]byte{srv.Raw}, PrivateKey: srvKey}
	return p
}

func TestMutualTLS(t *testing.T) {
	p := newPKI(t)
	srv := newServer(t, targettest.Options{TLS: &tls.Config{
		Certificates: []tls.Certificate{p.serverCert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    p.clientCAs,
		MinVersion:   tls.VersionTLS12,
	}})
	require.True(t, strings.HasPrefix(srv.URL, "https://"))

	for name, tc := range map[string]struct {
		mod     func(*scim.Config)
		wantErr string
	}{
		"client certificate": {func(c *scim.Config) {
			c.SetDirectory(p.dir)
			c.CAFile, c.ClientCertFile, c.ClientKeyFile = "ca.pem", "client.pem", "client-key.pem" // Relative to the directory.
		}, ""},
		"no client certificate": {func(c *scim.Config) { c.CAFile = p.caFile }, "certificate required"},
		"certificate of another CA": {func(c *scim.Config) {
			c.CAFile, c.ClientCertFile, c.ClientKeyFile = p.caFile, p.otherCertFile, p.otherKeyFile
		}, "certificate required"}, // Go sends no certificate the server's CAs did not sign.
		"untrusted server": {func(c *scim.Config) { c.ClientCertFile, c.ClientKeyFile = p.certFile, p.keyFile }, "certificate signed by unknown authority"},
	} {
		t.Run(name, func(t *testing.T) {
			c := testConfig(srv)
			tc.mod(c)
			tg, _ := open(t, c)
			_, ok, err := tg.Find(t.Context(), mapping.KindUser, "userName", "nobody")
			if tc.wantErr == "" {
				require.NoError(t, err)
				require.False(t, ok)
				return
			}
			requireRetryable(t, err)
			require.ErrorContains(t, err, tc.wantErr)
			require.NotContains(t, err.Error(), "filter", "the query is redacted")
		})
	}
}

func zeroLogger() zerolog.Logger { return zerolog.Nop() }

// TestGateFencesEveryTry: a request whose context carries a refusing gate (targets.WithGate:
// an [ha] leader whose lease lapsed) never reaches the target, and a gate closing between
// quick retries stops the retries: only the tries before it went out.
func TestGateFencesEveryTry(t *testing.T) {
	tg, srv, _ := newTarget(t, targettest.Options{}, func(c *scim.Config) { c.SetInstance("idm1:/var/lib/scimbridge") })
	fenced := errors.New("fenced")
	closed := targets.WithGate(t.Context(), func() error { return fenced })
	_, err := tg.Apply(closed, userOp("ada"))
	require.ErrorIs(t, err, fenced)
	_, _, err = tg.Find(closed, mapping.KindUser, "userName", "ada")
	require.ErrorIs(t, err, fenced)
	require.Empty(t, srv.Requests(), "a fenced instance sends nothing")

	// Open for the first two tries only: the 5xx answers' quick retries stop at the gate.
	var tries int
	var mu sync.Mutex
	gate := targets.WithGate(t.Context(), func() error {
		mu.Lock()
		defer mu.Unlock()
		tries++
		if tries > 2 {
			return fenced
		}
		return nil
	})
	srv.Inject(targettest.Fault{Method: http.MethodGet, Status: 503, Times: 10})
	_, _, err = tg.Find(gate, mapping.KindUser, "userName", "ada")
	require.Error(t, err)
	require.Equal(t, 2, srv.CountRequests(http.MethodGet, "/Users"))
	srv.ClearFaults()

	// Open: the request goes, naming the instance.
	_, err = tg.Apply(targets.WithGate(t.Context(), func() error { return nil }), userOp("ada"))
	require.NoError(t, err)
	reqs := srv.Requests()
	require.Equal(t, "scimbridge (instance idm1:/var/lib/scimbridge)", reqs[len(reqs)-1].Header.Get("User-Agent"))
}

// recordingPacer lets every request go and records what Done was told.
type recordingPacer struct {
	mu    sync.Mutex
	waits int
	obs   []targets.Observation
}

func (r *recordingPacer) Wait(context.Context) (targets.Ticket, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.waits++
	return targets.Ticket{Epoch: uint64(r.waits)}, nil
}

func (r *recordingPacer) Done(_ targets.Ticket, o targets.Observation) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.obs = append(r.obs, o)
}

// TestPacerSeesEveryTry: with a Pacer in the context, every HTTP try — the quick retry after
// a 429 included — waits for it and reports the answer: status, Retry-After and the quota the
// target announced.
func TestPacerSeesEveryTry(t *testing.T) {
	tg, srv, _ := newTarget(t, targettest.Options{}, nil)
	require.True(t, tg.Paced())
	srv.RateLimitNext(1, "2")
	p := &recordingPacer{}
	_, found, err := tg.Find(targets.WithPacer(t.Context(), p), mapping.KindUser, "userName", "nobody")
	require.NoError(t, err)
	require.False(t, found)
	require.Equal(t, 2, p.waits)
	require.Len(t, p.obs, 2)
	require.Equal(t, http.StatusTooManyRequests, p.obs[0].Status)
	require.Equal(t, 2*time.Second, p.obs[0].RetryAfter)
	require.Equal(t, http.StatusOK, p.obs[1].Status)
	require.Equal(t, -1, p.obs[1].Remaining)

	srv.SetRateLimit(1000, 10, true)
	p = &recordingPacer{}
	_, err = tg.Apply(targets.WithPacer(t.Context(), p), mapping.Op{Kind: mapping.KindUser, Type: mapping.OpCreate, Resource: map[string]any{
		"schemas": []any{"urn:ietf:params:scim:schemas:core:2.0:User"}, "userName": "paced",
	}})
	require.NoError(t, err)
	require.Len(t, p.obs, 1)
	require.Equal(t, http.StatusCreated, p.obs[0].Status)
	require.GreaterOrEqual(t, p.obs[0].Remaining, 0, "RateLimit-Remaining read")
	require.Equal(t, time.Second, p.obs[0].Reset)
}

// TestPacerSamplesOnlyTimeouts: a try that timed out is a latency sample for the pacer; one
// that never left (the gate) or failed at once (connection refused) is not — a window of those
// would shrink its latency baseline and slow the recovered target down.
func TestPacerSamplesOnlyTimeouts(t *testing.T) {
	tg, srv, _ := newTarget(t, targettest.Options{}, func(c *scim.Config) {
		c.Timeout = targets.Duration{Duration: 200 * time.Millisecond}
		c.MaxRetries = 0
	})
	srv.Inject(targettest.Fault{Method: http.MethodGet, Latency: time.Second})
	p := &recordingPacer{}
	_, _, err := tg.Find(targets.WithPacer(t.Context(), p), mapping.KindUser, "userName", "slow")
	require.Error(t, err)
	require.NotEmpty(t, p.obs)
	require.False(t, p.obs[0].Canceled, "a timeout is a sample")
	srv.ClearFaults()

	p = &recordingPacer{}
	fenced := targets.WithGate(targets.WithPacer(t.Context(), p), func() error { return errors.New("fenced") })
	_, _, err = tg.Find(fenced, mapping.KindUser, "userName", "gated")
	require.Error(t, err)
	require.NotEmpty(t, p.obs)
	for _, o := range p.obs {
		require.True(t, o.Canceled, "a request that never left is no sample")
	}

	srv.Close()
	p = &recordingPacer{}
	_, _, err = tg.Find(targets.WithPacer(t.Context(), p), mapping.KindUser, "userName", "refused")
	require.Error(t, err)
	require.NotEmpty(t, p.obs)
	for _, o := range p.obs {
		require.True(t, o.Canceled, "a refused connection is no sample")
	}
}
