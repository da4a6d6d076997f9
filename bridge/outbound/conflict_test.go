package outbound

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/targets/scimserver"
)

// userRequests lists the method of every request the server got for /Users, in order.
func userRequests(srv *scimserver.Server) []string {
	var out []string
	for _, r := range srv.Requests() {
		if strings.HasPrefix(r.Path, "/Users") {
			out = append(out, r.Method)
		}
	}
	return out
}

// TestCreateLookupConflict: with create_lookup = "conflict" a new user costs one POST, an
// existing account is adopted on the target's 409, and a key whose POST may have left without
// its outcome recorded — a failed delivery, or an item found pending when the provisioner
// loaded the state file (a restart, a reload) — is looked up first, as by default.
func TestCreateLookupConflict(t *testing.T) {
	srv, tg := rateLimitedTarget(t, 0, 0)
	spec := Spec{Target: tg, CreateLookup: CreateByConflict, MaxAttempts: 5, MinRetryDelay: time.Millisecond, MaxRetryDelay: time.Millisecond}
	h := newHarness(t, spec)

	// Pending before the provisioner is (re)built: inherited, looked up.
	h.change(user("dan"))
	spec.Name, spec.Hash = "app", "rebuilt"
	_, err := h.e.SetProvisioners([]Spec{spec})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	h.run(ctx)
	h.waitIdle()
	require.Equal(t, []string{"GET", "POST"}, userRequests(srv), "an item pending at load is looked up before its POST")

	srv.ResetRequests()
	h.change(user("ada"))
	h.waitIdle()
	require.Equal(t, []string{"POST"}, userRequests(srv), "a new user: one request")

	id, err := srv.AddUser(map[string]any{
		"schemas": []any{"urn:ietf:params:scim:schemas:core:2.0:User"}, "userName": "bob", "title": "Old",
		"emails": []any{map[string]any{"type": "work", "value": "bob@x", "primary": true}},
	})
	require.NoError(t, err)
	srv.ResetRequests()
	h.change(user("bob", "title", "New"))
	h.waitIdle()
	methods := userRequests(srv)
	require.Equal(t, []string{"POST", "GET"}, methods[:2], "409, then the lookup that adopts")
	bob, ok := srv.UserByName("bob")
	require.True(t, ok)
	require.Equal(t, id, bob["id"], "adopted, not created twice")
	require.Equal(t, "New", bob["title"])
	require.Len(t, srv.Users(), 3)

	// The POST reaches the target but its answer is lost: the retry looks up and adopts.
	srv.ResetRequests()
	srv.FailAfterStoreNext(1)
	h.change(user("cyd"))
	h.waitIdle()
	methods = userRequests(srv)
	require.Equal(t, "POST", methods[0])
	require.Equal(t, "GET", methods[1], "the retry of a POST with no recorded outcome looks up first")
	require.NotContains(t, methods[1:], "POST")
	require.Len(t, srv.Users(), 4)

	// The same with an answer that does not count as a failed attempt (an overloaded target's
	// 503 with Retry-After): this process's own POST, not the attempt count, sends the retry to
	// the lookup.
	srv.ResetRequests()
	srv.Inject(scimserver.Fault{Method: "POST", Path: "/Users", AfterStore: true, Status: 503, RetryAfter: "1"})
	h.change(user("dee"))
	h.waitIdle()
	methods = userRequests(srv)
	require.Equal(t, "POST", methods[0])
	require.Equal(t, "GET", methods[1], "the retry of a POST with no recorded outcome looks up first")
	require.NotContains(t, methods[1:], "POST")
	require.Len(t, srv.Users(), 5)
	require.Empty(t, mustDeadLetters(t, h))
}

// TestCreateLookupConflictLooksGroupsUp: groups are looked up before their POST even with
// create_lookup = "conflict" — a group's displayName need not be unique, so a 409 would not
// say the group exists.
func TestCreateLookupConflictLooksGroupsUp(t *testing.T) {
	srv, tg := rateLimitedTarget(t, 0, 0)
	h := newHarness(t, Spec{Target: tg, CreateLookup: CreateByConflict, PushGroups: true, MaxAttempts: 5, MinRetryDelay: time.Millisecond, MaxRetryDelay: time.Millisecond})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	h.run(ctx)
	h.change(group("team"))
	h.waitIdle()
	var methods []string
	for _, r := range srv.Requests() {
		if strings.HasPrefix(r.Path, "/Groups") {
			methods = append(methods, r.Method)
		}
	}
	require.Equal(t, []string{"GET", "POST"}, methods)
}
