package inbound_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/bridge/inbound"
	"github.com/scimbridge/scimbridge/ldapstore/ldaptest"
)

// TestBadInputLeavesTheDirectoryUntouched: every malformed request is a SCIM error with the
// right status and scimType, shows no DN or LDAP diagnostic, and changes nothing.
func TestBadInputLeavesTheDirectoryUntouched(t *testing.T) {
	e := newEnv(t)
	id := e.createUser("target", map[string]any{"title": "unchanged"})
	gid := e.createGroup("team", id)
	for _, tc := range []struct {
		name, method, path string
		body               any
		status             int
		scimType           string
	}{
		{"malformed JSON", "POST", "/Users", `{"userName": "x",`, 400, "invalidSyntax"},
		{"not an object", "POST", "/Users", `["userName"]`, 400, "invalidSyntax"},
		{"two values", "POST", "/Users", `{"userName":"a"} {"userName":"b"}`, 400, "invalidSyntax"},
		{"empty body", "POST", "/Users", ``, 400, "invalidSyntax"},
		{"wrong type: active", "POST", "/Users", `{"userName":"x","active":3}`, 400, "invalidValue"},
		{"wrong type: emails", "POST", "/Users", `{"userName":"x","emails":[{"value":true}]}`, 400, "invalidValue"},
		{"wrong type: userName", "POST", "/Users", `{"userName":42}`, 400, "invalidValue"},
		{"wrong type: name", "POST", "/Users", `{"userName":"x","name":"Ada"}`, 400, "invalidValue"},
		{"name in no schema", "POST", "/Users", `{"userName":"x","colour":"blue"}`, 400, "invalidSyntax"},
		{"unknown extension", "POST", "/Users", `{"userName":"x","urn:example:nope:2.0:User":{"a":"b"}}`, 400, "invalidSyntax"},
		{"missing userName", "POST", "/Users", `{"displayName":"x"}`, 400, "invalidValue"},
		{"NUL in a value", "POST", "/Users", `{"userName":"nul\u0000l"}`, 400, "invalidValue"},
		{"non-UTF-8", "POST", "/Users", []byte("{\"userName\":\"bad\xff\xfe\"}"), 400, "invalidSyntax"},
		{"non-UTF-8 PATCH", "PATCH", "/Users/" + id, []byte(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"title","value":"` + "\xc3\x28" + `"}]}`), 400, "invalidSyntax"},
		{"deep JSON", "POST", "/Users", `{"userName":"x","name":` + strings.Repeat(`{"a":`, 40) + `1` + strings.Repeat(`}`, 41), 400, "invalidSyntax"},
		{"manager injection", "POST", "/Users", `{"userName":"x","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"manager":"*)(uid=*"}}`, 400, "invalidValue"},
		{"member injection", "POST", "/Groups", `{"displayName":"g2","members":[{"value":"*"}]}`, 400, "invalidValue"},
		{"PATCH no operations", "PATCH", "/Users/" + id, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[]}`, 400, "invalidSyntax"},
		{"PATCH bad op", "PATCH", "/Users/" + id, patchOps(op("merge", "title", "x")), 400, "invalidSyntax"},
		{"PATCH bad path", "PATCH", "/Users/" + id, patchOps(op("replace", "title[[", "x")), 400, "invalidPath"},
		{"PATCH unknown path", "PATCH", "/Users/" + id, patchOps(op("replace", "colour", "x")), 400, "invalidPath"},
		{"PATCH wrong type", "PATCH", "/Users/" + id, patchOps(op("replace", "active", "maybe")), 400, "invalidValue"},
		{"PATCH read-only", "PATCH", "/Users/" + id, patchOps(op("replace", "id", "other")), 400, "mutability"},
		{"PATCH remove without path", "PATCH", "/Users/" + id, patchOps(op("remove", "", nil)), 400, "noTarget"},
		{"PATCH member injection", "PATCH", "/Groups/" + gid, patchOps(op("add", "members", []any{map[string]any{"value": "*)(uid=*"}})), 400, "invalidValue"},
		{"PATCH wrong schemas", "PATCH", "/Users/" + id, `{"schemas":["urn:x"],"Operations":[{"op":"replace","path":"title","value":"x"}]}`, 400, "invalidSyntax"},
		{"PUT wrong type", "PUT", "/Users/" + id, `{"userName":"target","title":["a","b"]}`, 400, "invalidValue"},
		{"group members wrong type", "POST", "/Groups", `{"displayName":"g3","members":"everyone"}`, 400, "invalidValue"},
		{"search bad body", "POST", "/Users/.search", `{"filter":`, 400, "invalidSyntax"},
		{"unknown id", "PATCH", "/Users/00000000-0000-0000-0000-000000000000", patchOps(op("replace", "title", "x")), 404, ""},
		{"wildcard id", "DELETE", "/Users/*", nil, 404, ""},
		{"unknown endpoint", "GET", "/Machines", nil, 404, ""},
		{"bulk", "POST", "/Bulk", `{}`, 501, ""},
		{"method", "DELETE", "/Users", nil, 405, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := e.with(t)
			before := e.snapshot()
			r := e.do(tc.method, tc.path, tc.body)
			if tc.scimType == "" {
				e.requireStatus(r, tc.status)
			} else {
				e.requireStatus(r, tc.status, tc.scimType)
			}
			e.requireUnchanged(before, e.snapshot(), "the directory is untouched")
		})
	}
	r := e.do("GET", "/Users/"+id, nil)
	require.Equal(t, "unchanged", r.body["title"])
}

// TestBodyLimit: a body over max_body_bytes is a 413, announced or streamed.
func TestBodyLimit(t *testing.T) {
	e := newEnv(t)
	before := e.snapshot()
	big := `{"userName":"big","title":"` + strings.Repeat("x", 70<<10) + `"}`
	r := e.do("POST", "/Users", big)
	e.requireStatus(r, http.StatusRequestEntityTooLarge)

	// Chunked, with no Content-Length: the limit applies while reading.
	req, err := http.NewRequest("POST", e.url+"/Users", io.MultiReader(strings.NewReader(big)))
	require.NoError(t, err)
	req.ContentLength = -1
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode, string(body))
	require.Contains(t, string(body), "urn:ietf:params:scim:api:messages:2.0:Error")
	e.requireUnchanged(before, e.snapshot(), "unchanged")
}

// TestAuthentication: no token, a wrong one or another scheme is a 401 SCIM error; each of
// several configured tokens works and names the actor in the audit log; a burst of failures
// is slowed down while a valid token keeps answering at once.
func TestAuthentication(t *testing.T) {
	e := newEnv(t, func(c *inbound.Config, _ *ldaptest.Options) {
		c.Tokens = append(c.Tokens, tokenFor("okta", "second-token-abcdefghijkl"))
	})
	before := e.snapshot()
	for name, h := range map[string]string{
		"none": "", "wrong": "Bearer nope", "basic": "Basic dXNlcjpwYXNz", "empty": "Bearer ",
		"prefix": "Bearer " + testToken[:10], "longer": "Bearer " + testToken + "x",
	} {
		t.Run(name, func(t *testing.T) {
			e := e.with(t)
			r := e.do("POST", "/Users", user("intruder", nil), "Authorization", h)
			e.requireStatus(r, http.StatusUnauthorized)
			require.Contains(t, r.header.Get("WWW-Authenticate"), "Bearer")
		})
	}
	e.requireUnchanged(before, e.snapshot(), "unchanged")
	r := e.do("GET", "/ServiceProviderConfig", nil, "Authorization", "")
	e.requireStatus(r, http.StatusUnauthorized)

	r = e.do("POST", "/Users", user("by-okta", nil), "Authorization", "Bearer second-token-abcdefghijkl")
	e.requireStatus(r, http.StatusCreated)
	require.Contains(t, e.logs.String(), `"audit":true,"actor":"okta","resource":"User","id":"`+r.body["id"].(string)+`","op":"create","result":"success"`)

	// A burst of failures from one client: the first few are answered at once, then each
	// waits its turn; many at the same time get a 429. A valid token is never slowed.
	var slowest time.Duration
	for i := range 12 {
		t0 := time.Now()
		r := e.do("GET", "/Users", nil, "Authorization", fmt.Sprintf("Bearer guess-%d", i))
		e.requireStatus(r, http.StatusUnauthorized)
		slowest = max(slowest, time.Since(t0))
	}
	require.GreaterOrEqual(t, slowest, 50*time.Millisecond, "failures past the burst wait")
	statuses := make(chan int, 30)
	var wg sync.WaitGroup
	for i := range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("GET", e.url+"/Users", nil)
			req.Header.Set("Authorization", fmt.Sprintf("Bearer storm-%d", i))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				statuses <- 0
				return
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusTooManyRequests && resp.Header.Get("Retry-After") == "" {
				statuses <- -1 // a 429 without Retry-After: fails the check below
				return
			}
			statuses <- resp.StatusCode
		}()
	}
	wg.Wait()
	close(statuses)
	seen := map[int]int{}
	for s := range statuses {
		seen[s]++
	}
	require.Positive(t, seen[http.StatusTooManyRequests], "a storm of failures is refused: %v", seen)
	require.Equal(t, 30, seen[http.StatusTooManyRequests]+seen[http.StatusUnauthorized], "%v", seen)
	t0 := time.Now()
	r = e.do("GET", "/Users?count=1", nil)
	e.requireStatus(r, http.StatusOK)
	require.Less(t, time.Since(t0), 500*time.Millisecond, "a valid token is never slowed down")
}

// TestInjectionInValuesIsLiteral: filter metacharacters in values are data. A userName of "*"
// or "*)(uid=*" is not a wildcard in the uniqueness check (it collides with nobody), is stored
// as sent, and is found only by itself.
func TestInjectionInValuesIsLiteral(t *testing.T) {
	e := newEnv(t)
	e.createUser("alice", nil)
	e.createUser("bob", nil)
	for _, name := range []string{"*", "*)(uid=*", `back\slash`, "paren(s)"} {
		r := e.do("POST", "/Users", user(name, map[string]any{"title": "*)(objectClass=*"}))
		e.requireStatus(r, http.StatusCreated)
		id := r.body["id"].(string)
		r = e.do("GET", "/Users?filter="+q(`userName eq "`+strings.ReplaceAll(name, `\`, `\\`)+`"`), nil)
		e.requireStatus(r, http.StatusOK)
		require.Equal(t, []string{name}, userNames(r), "found only by itself")
		require.Equal(t, id, resources(r)[0]["id"])
		r = e.do("GET", "/Users?filter="+q(`title eq "*)(objectClass=*"`), nil)
		require.NotContains(t, userNames(r), "alice")
	}
	r := e.do("GET", "/Users?count=0", nil)
	require.EqualValues(t, 6, r.body["totalResults"])
}
