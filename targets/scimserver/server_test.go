package scimserver_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/targets/scimserver"
)

const userSchema = "urn:ietf:params:scim:schemas:core:2.0:User"

type client struct {
	t     *testing.T
	srv   *scimserver.Server
	token string
}

// call sends a request and decodes the JSON answer (nil for an empty one).
func (c client) call(method, path string, body any) (int, map[string]any, http.Header) {
	c.t.Helper()
	var rd io.Reader
	if s, ok := body.(string); ok {
		rd = strings.NewReader(s)
	} else if body != nil {
		b, err := json.Marshal(body)
		require.NoError(c.t, err)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(c.t.Context(), method, c.srv.URL+path, rd)
	require.NoError(c.t, err)
	if rd != nil {
		req.Header.Set("Content-Type", "application/scim+json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(c.t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(c.t, err)
	var out map[string]any
	if len(bytes.TrimSpace(raw)) > 0 {
		require.NoError(c.t, json.Unmarshal(raw, &out), string(raw))
	}
	return resp.StatusCode, out, resp.Header
}

func newClient(t *testing.T, opts scimserver.Options) client {
	srv := scimserver.NewServer(opts)
	t.Cleanup(srv.Close)
	return client{t: t, srv: srv}
}

func user(name string, extra ...any) map[string]any {
	u := map[string]any{"schemas": []string{userSchema}, "userName": name}
	for i := 0; i+1 < len(extra); i += 2 {
		u[extra[i].(string)] = extra[i+1]
	}
	return u
}

func patch(ops ...map[string]any) map[string]any {
	return map[string]any{"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:PatchOp"}, "Operations": ops}
}

func TestServerUsers(t *testing.T) {
	c := newClient(t, scimserver.Options{BasePath: "/scim/v2/"})
	require.True(t, strings.HasSuffix(c.srv.URL, "/scim/v2"))

	st, u, h := c.call("POST", "/Users", user("Ann", "active", true, "emails", []any{map[string]any{"value": "ann@x.org", "type": "work"}}))
	require.Equal(t, 201, st)
	id := u["id"].(string)
	require.NotEmpty(t, id)
	require.Equal(t, c.srv.URL+"/Users/"+id, h.Get("Location"))
	require.NotEmpty(t, h.Get("ETag"))
	require.EqualValues(t, 1, c.srv.Creates())

	for name, tc := range map[string]struct {
		method, path string
		body         any
		status       int
		scimType     string
	}{
		"duplicate userName":        {"POST", "/Users", user("ANN"), 409, "uniqueness"},
		"no schemas":                {"POST", "/Users", map[string]any{"userName": "x"}, 400, "invalidValue"},
		"no userName":               {"POST", "/Users", map[string]any{"schemas": []string{userSchema}}, 400, "invalidValue"},
		"active as string":          {"POST", "/Users", user("y", "active", "False"), 400, "invalidValue"},
		"bad JSON":                  {"POST", "/Users", "{", 400, "invalidSyntax"},
		"unknown id":                {"GET", "/Users/nope", nil, 404, ""},
		"unknown endpoint":          {"GET", "/Devices", nil, 404, ""},
		"unsupported filter":        {"GET", "/Users?filter=" + url.QueryEscape(`userName co "a"`), nil, 400, "invalidFilter"},
		"unfilterable attr":         {"GET", "/Users?filter=" + url.QueryEscape(`title eq "a"`), nil, 400, "invalidFilter"},
		"PUT with other id":         {"PUT", "/Users/" + id, user("Ann", "id", "other"), 400, "mutability"},
		"PATCH without schemas":     {"PATCH", "/Users/" + id, map[string]any{"Operations": []any{}}, 400, "invalidValue"},
		"PATCH remove without path": {"PATCH", "/Users/" + id, patch(map[string]any{"op": "remove"}), 400, "noTarget"},
		"PATCH id":                  {"PATCH", "/Users/" + id, patch(map[string]any{"op": "replace", "path": "id", "value": "x"}), 400, "mutability"},
		"PATCH unknown op":          {"PATCH", "/Users/" + id, patch(map[string]any{"op": "move", "path": "title"}), 400, "invalidSyntax"},
		"PATCH filter no match":     {"PATCH", "/Users/" + id, patch(map[string]any{"op": "replace", "path": `emails[type eq "home"].value`, "value": "h@x.org"}), 400, "noTarget"},
		"PATCH bad path":            {"PATCH", "/Users/" + id, patch(map[string]any{"op": "replace", "path": `emails[type co "w"]`, "value": "x"}), 400, "invalidPath"},
	} {
		t.Run(name, func(t *testing.T) {
			st, body, _ := c.call(tc.method, tc.path, tc.body)
			require.Equal(t, tc.status, st, body)
			if tc.scimType != "" {
				require.Equal(t, tc.scimType, body["scimType"], body)
			}
			require.Equal(t, []any{"urn:ietf:params:scim:api:messages:2.0:Error"}, body["schemas"])
		})
	}

	// A failed PATCH changes nothing, even its valid first operation.
	st, _, _ = c.call("PATCH", "/Users/"+id, patch(
		map[string]any{"op": "replace", "path": "title", "value": "CEO"},
		map[string]any{"op": "remove", "path": `emails[type eq "home"]`}))
	require.Equal(t, 400, st)
	got, _ := c.srv.User(id)
	require.Nil(t, got["title"])

	st, u, _ = c.call("PATCH", "/Users/"+id, patch(
		map[string]any{"op": "Replace", "value": map[string]any{
			"active": false, "displayName": "Ann A",
			"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": map[string]any{"department": "Ops"},
		}},
		map[string]any{"op": "replace", "path": `emails[type eq "work"].value`, "value": "ann@y.org"},
		map[string]any{"op": "add", "path": "name.givenName", "value": "Ann"},
		map[string]any{"op": "add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber", "value": "42"},
		map[string]any{"op": "add", "path": "emails", "value": []any{map[string]any{"value": "a2@y.org", "type": "home"}}},
	))
	require.Equal(t, 200, st, u)
	require.Equal(t, false, u["active"])
	require.Equal(t, "Ann A", u["displayName"])
	require.Equal(t, map[string]any{"givenName": "Ann"}, u["name"])
	require.Equal(t, map[string]any{"department": "Ops", "employeeNumber": "42"}, u["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"])
	require.Len(t, u["emails"], 2)
	require.Equal(t, "ann@y.org", u["emails"].([]any)[0].(map[string]any)["value"])

	st, u, _ = c.call("PATCH", "/Users/"+id, patch(
		map[string]any{"op": "remove", "path": `emails[type eq "home"]`},
		map[string]any{"op": "remove", "path": "name.givenName"},
		map[string]any{"op": "remove", "path": "displayName"}))
	require.Equal(t, 200, st, u)
	require.Len(t, u["emails"], 1)
	require.Nil(t, u["displayName"])

	// Filters and paging.
	for i := range 4 {
		st, _, _ = c.call("POST", "/Users", user(fmt.Sprintf("p%d", i), "externalId", "E"))
		require.Equal(t, 201, st)
	}
	st, l, _ := c.call("GET", "/Users?filter="+url.QueryEscape(`emails.value eq "ANN@y.org"`), nil)
	require.Equal(t, 200, st)
	require.EqualValues(t, 1, l["totalResults"])
	st, l, _ = c.call("GET", "/Users?filter="+url.QueryEscape(`externalId eq "e"`), nil)
	require.Equal(t, 200, st)
	require.EqualValues(t, 0, l["totalResults"], "externalId is case-exact")
	st, l, _ = c.call("GET", "/Users?filter="+url.QueryEscape(`externalId eq "E"`)+"&startIndex=2&count=2", nil)
	require.Equal(t, 200, st)
	require.EqualValues(t, 4, l["totalResults"])
	require.EqualValues(t, 2, l["itemsPerPage"])
	require.EqualValues(t, 2, l["startIndex"])
	require.Equal(t, "p1", l["Resources"].([]any)[0].(map[string]any)["userName"])

	st, _, _ = c.call("DELETE", "/Users/"+id, nil)
	require.Equal(t, 204, st)
	st, _, _ = c.call("DELETE", "/Users/"+id, nil)
	require.Equal(t, 404, st)
	require.Len(t, c.srv.Users(), 4)
}

func TestServerGroups(t *testing.T) {
	c := newClient(t, scimserver.Options{})
	u1, err := c.srv.AddUser(map[string]any{"userName": "u1"})
	require.NoError(t, err)
	u2, err := c.srv.AddUser(map[string]any{"userName": "u2"})
	require.NoError(t, err)
	gs := []string{"urn:ietf:params:scim:schemas:core:2.0:Group"}

	st, g, _ := c.call("POST", "/Groups", map[string]any{"schemas": gs, "displayName": "Eng", "members": []any{map[string]any{"value": u1}}})
	require.Equal(t, 201, st, g)
	gid := g["id"].(string)
	st, body, _ := c.call("POST", "/Groups", map[string]any{"schemas": gs, "displayName": "eng"})
	require.Equal(t, 409, st)
	require.Equal(t, "uniqueness", body["scimType"])
	st, body, _ = c.call("POST", "/Groups", map[string]any{"schemas": gs, "displayName": "X", "members": []any{map[string]any{"value": "ghost"}}})
	require.Equal(t, 400, st)
	require.Equal(t, "invalidValue", body["scimType"])

	st, g, _ = c.call("PATCH", "/Groups/"+gid, patch(map[string]any{
		"op": "add", "path": "members",
		"value": []any{map[string]any{"value": u2}, map[string]any{"value": u1}},
	}))
	require.Equal(t, 200, st, g)
	require.Len(t, g["members"], 2, "adding an existing member is a no-op")

	st, body, _ = c.call("PATCH", "/Groups/"+gid, patch(map[string]any{"op": "remove", "path": `members[value eq "ghost"]`}))
	require.Equal(t, 400, st)
	require.Equal(t, "noTarget", body["scimType"])

	st, g, _ = c.call("PATCH", "/Groups/"+gid, patch(map[string]any{"op": "remove", "path": fmt.Sprintf(`members[value eq %q]`, u1)}))
	require.Equal(t, 200, st, g)
	require.Len(t, g["members"], 1)

	st, g, _ = c.call("GET", "/Groups/"+gid+"?excludedAttributes=members", nil)
	require.Equal(t, 200, st)
	require.NotContains(t, g, "members")

	// Entra ID style remove with a value list, and deleting a user drops its memberships.
	st, _, _ = c.call("PATCH", "/Groups/"+gid, patch(map[string]any{"op": "add", "path": "members", "value": []any{map[string]any{"value": u1}}}))
	require.Equal(t, 200, st)
	st, g, _ = c.call("PATCH", "/Groups/"+gid, patch(map[string]any{"op": "remove", "path": "members", "value": []any{map[string]any{"value": u2}}}))
	require.Equal(t, 200, st)
	require.Len(t, g["members"], 1)
	st, _, _ = c.call("DELETE", "/Users/"+u1, nil)
	require.Equal(t, 204, st)
	grp, _ := c.srv.Group(gid)
	require.Empty(t, grp["members"])
	found, ok := c.srv.GroupByName("ENG")
	require.True(t, ok)
	require.Equal(t, gid, found["id"])
}

func TestServerAuth(t *testing.T) {
	c := newClient(t, scimserver.Options{
		BearerTokens: []string{"static"}, BasicUsername: "svc", BasicPassword: "pw",
		OAuth2: &scimserver.OAuth2Options{ClientID: "id", ClientSecret: "secret", TokenTTL: time.Hour},
	})
	st, body, h := c.call("GET", "/Users", nil)
	require.Equal(t, 401, st, body)
	require.Contains(t, h.Get("WWW-Authenticate"), "Bearer")

	c.token = "static"
	st, _, _ = c.call("GET", "/Users", nil)
	require.Equal(t, 200, st)
	c.srv.ExpireToken("static", 1)
	st, _, _ = c.call("GET", "/Users", nil)
	require.Equal(t, 200, st)
	st, _, _ = c.call("GET", "/Users", nil)
	require.Equal(t, 401, st, "expired after one more use")

	req, err := http.NewRequestWithContext(t.Context(), "GET", c.srv.URL+"/Users", nil)
	require.NoError(t, err)
	req.SetBasicAuth("svc", "pw")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)

	token := func(id, secret string) (int, map[string]any) {
		resp, err := http.PostForm(c.srv.TokenURL, url.Values{"grant_type": {"client_credentials"}, "client_id": {id}, "client_secret": {secret}})
		require.NoError(t, err)
		defer resp.Body.Close()
		var out map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
		return resp.StatusCode, out
	}
	st, body = token("id", "wrong")
	require.Equal(t, 401, st)
	require.Equal(t, "invalid_client", body["error"])
	st, body = token("id", "secret")
	require.Equal(t, 200, st)
	require.EqualValues(t, 3600, body["expires_in"])
	c.token = body["access_token"].(string)
	st, _, _ = c.call("GET", "/Users", nil)
	require.Equal(t, 200, st)
	c.srv.RevokeTokens()
	st, _, _ = c.call("GET", "/Users", nil)
	require.Equal(t, 401, st)
	require.Equal(t, 2, c.srv.TokenRequests())
	require.Len(t, c.srv.IssuedTokens(), 1)
}

func TestServerFaults(t *testing.T) {
	c := newClient(t, scimserver.Options{})

	c.srv.FailNext(1, 503)
	st, _, _ := c.call("GET", "/Users", nil)
	require.Equal(t, 503, st)
	st, _, _ = c.call("GET", "/Users", nil)
	require.Equal(t, 200, st)

	c.srv.RateLimitNext(1, "2")
	st, _, h := c.call("GET", "/Users", nil)
	require.Equal(t, 429, st)
	require.Equal(t, "2", h.Get("Retry-After"))

	// Faults match method and path, and are consumed in order.
	c.srv.Inject(scimserver.Fault{Method: "POST", Path: "/Groups", Status: 500})
	st, _, _ = c.call("POST", "/Users", user("a"))
	require.Equal(t, 201, st)

	c.srv.FailAfterStoreNext(1)
	st, _, _ = c.call("POST", "/Users", user("b"))
	require.Equal(t, 500, st)
	_, ok := c.srv.UserByName("b")
	require.True(t, ok, "stored despite the 500")
	require.EqualValues(t, 2, c.srv.Creates())

	c.srv.DropNext(1)
	req, err := http.NewRequestWithContext(t.Context(), "GET", c.srv.URL+"/Users", nil)
	require.NoError(t, err)
	// A fresh connection: net/http silently retries a GET whose reused connection was closed.
	resp, err := (&http.Transport{DisableKeepAlives: true}).RoundTrip(req)
	if err == nil {
		resp.Body.Close()
	}
	require.Error(t, err, "connection closed without an answer")

	c.srv.Inject(scimserver.Fault{Latency: 150 * time.Millisecond})
	start := time.Now()
	st, _, _ = c.call("GET", "/Users", nil)
	require.Equal(t, 200, st)
	require.GreaterOrEqual(t, time.Since(start), 150*time.Millisecond)

	c.srv.SetHook(func(w http.ResponseWriter, _ *http.Request) bool {
		w.WriteHeader(http.StatusTeapot)
		return true
	})
	st, _, _ = c.call("GET", "/Users", nil)
	require.Equal(t, http.StatusTeapot, st)
	c.srv.ClearFaults()

	reqs := c.srv.Requests()
	var codes []int
	for _, r := range reqs {
		codes = append(codes, r.Status)
	}
	require.Equal(t, []int{503, 200, 429, 201, 500, 0, 200, 418}, codes)
	require.Equal(t, 2, c.srv.CountRequests("POST", "/Users"))
	require.Equal(t, "b", func() string {
		var b map[string]any
		require.NoError(t, json.Unmarshal(reqs[4].Body, &b))
		return b["userName"].(string)
	}())

	// Close cuts an injected latency short.
	c.srv.SetLatency(time.Hour)
	go func() {
		resp, err := http.Get(c.srv.URL + "/Users")
		if err == nil {
			resp.Body.Close()
		}
	}()
	time.Sleep(50 * time.Millisecond)
	done := make(chan struct{})
	go func() { c.srv.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close blocked on a sleeping request")
	}
}

// TestResetRequestsWhileARequestIsInFlight: a test resetting the request log while the bridge
// still talks to the server (the request began before, answers after) neither panics nor
// leaves the server locked.
func TestResetRequestsWhileARequestIsInFlight(t *testing.T) {
	c := newClient(t, scimserver.Options{})
	c.srv.Inject(scimserver.Fault{Latency: 300 * time.Millisecond})
	done := make(chan int, 1)
	go func() {
		resp, err := http.Get(c.srv.URL + "/Users")
		if err != nil {
			done <- 0
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	time.Sleep(100 * time.Millisecond)
	c.srv.ResetRequests()
	select {
	case code := <-done:
		require.Equal(t, http.StatusOK, code)
	case <-time.After(5 * time.Second):
		t.Fatal("no answer")
	}
	answered := make(chan int, 1)
	go func() { answered <- len(c.srv.Users()) + len(c.srv.Requests()) }()
	select {
	case n := <-answered:
		require.Zero(t, n)
	case <-time.After(5 * time.Second):
		t.Fatal("the server stayed locked")
	}
}
