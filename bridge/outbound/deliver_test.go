package outbound

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/bridge/state"
	"github.com/scimbridge/scimbridge/mapping"
	"github.com/scimbridge/scimbridge/targets"
	"github.com/scimbridge/scimbridge/targets/targettest"
)

// opsOfType lists the target operations of one type, in order.
func (h *harness) opsOfType(kind mapping.Kind, typ mapping.OpType) []mapping.Op {
	var out []mapping.Op
	for _, op := range h.target.Ops() {
		if op.Kind == kind && op.Type == typ {
			out = append(out, op)
		}
	}
	return out
}

// TestAdoptionByLookupPatchesOnlyTheDifference: an account found by its match value (no
// listing) is adopted with what the target holds, so the first delivery PATCHes only what
// differs instead of replacing the account.
func TestAdoptionByLookupPatchesOnlyTheDifference(t *testing.T) {
	h := newHarness(t, Spec{MaxAttempts: 3})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	rendered, err := h.e.Provisioners()[0].userMap.Render(user("ada", "title", "Old title"))
	require.NoError(t, err)
	existing, err := h.target.Apply(ctx, mapping.Op{Kind: mapping.KindUser, Type: mapping.OpCreate, Resource: rendered})
	require.NoError(t, err)
	h.run(ctx)
	h.change(user("ada", "title", "New title"))
	h.waitIdle()
	require.Empty(t, h.opsOfType(mapping.KindUser, mapping.OpReplace), "adopted with its attributes: no PUT")
	patches := h.opsOfType(mapping.KindUser, mapping.OpUpdate)
	require.Len(t, patches, 1)
	require.Equal(t, existing.ID, patches[0].TargetID)
	require.Equal(t, []mapping.PatchOp{{Op: "replace", Path: "title", Value: "New title"}}, patches[0].Patch)
}

// raceTarget is a target on which someone else creates the account between the bridge's
// lookup and its POST: the POST gets 409.
type raceTarget struct {
	*targettest.Fake
	finds atomic.Int32
}

func (r *raceTarget) Find(ctx context.Context, kind mapping.Kind, attr, value string) (targets.Result, bool, error) {
	if r.finds.Add(1) == 1 {
		// Meanwhile, another client creates it.
		if _, err := r.Fake.Apply(ctx, mapping.Op{Kind: kind, Type: mapping.OpCreate, Resource: map[string]any{attr: value}}); err != nil {
			return targets.Result{}, false, err
		}
		return targets.Result{}, false, nil
	}
	return r.Fake.Find(ctx, kind, attr, value)
}

func (r *raceTarget) Apply(ctx context.Context, op mapping.Op) (targets.Result, error) {
	if op.Type == mapping.OpCreate {
		if _, found, _ := r.Fake.Find(ctx, op.Kind, "userName", op.Resource["userName"].(string)); found {
			return targets.Result{}, &targets.PermanentError{Status: 409, Err: errors.New("409 uniqueness")}
		}
	}
	return r.Fake.Apply(ctx, op)
}

// TestCreateConflictAdopts: a POST answered 409 (created meanwhile by someone else) adopts
// the existing account instead of dead-lettering.
func TestCreateConflictAdopts(t *testing.T) {
	target := &raceTarget{Fake: targettest.NewFake()}
	h := newHarness(t, Spec{Target: target, MaxAttempts: 3})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	h.run(ctx)
	h.change(user("ada", "title", "Analyst"))
	h.waitIdle()
	require.Empty(t, mustDeadLetters(t, h))
	users := target.Resources(mapping.KindUser)
	require.Len(t, users, 1, "one account: the one created meanwhile, adopted")
	for _, op := range target.Ops() {
		require.NotEqual(t, mapping.OpReplace, op.Type, "adopted with what the lookup showed: PATCHed, not replaced")
	}
	require.Equal(t, "Analyst", users[0].Attrs["title"], "and brought up to date")
}

func mustDeadLetters(t *testing.T, h *harness) []DeadLetterView {
	t.Helper()
	dls, err := h.e.DeadLetters("app")
	require.NoError(t, err)
	return dls
}

// TestDisabledInTheDirectory: a user carrying the inbound disable marker is pushed with
// active false; in a pushed group, such a user is no member on the target.
func TestDisabledInTheDirectory(t *testing.T) {
	h := newHarness(t, Spec{Groups: []string{"cn=app," + groups}, PushGroups: true, MaxAttempts: 3, MaxDeletes: 10})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	h.run(ctx)
	h.change(user("a"), user("b"), group("app", "a", "b"))
	h.waitIdle()
	time.Sleep(2 * groupDebounce)
	h.waitIdle()
	g := h.target.Resources(mapping.KindGroup)
	require.Len(t, g, 1)
	require.Len(t, g[0].Attrs["members"], 2)

	marker := mapping.DefaultActiveMarker()
	h.change(user("a", marker.Attr, marker.Value))
	h.waitIdle()
	time.Sleep(2 * groupDebounce)
	h.waitIdle()
	a, _, _ := h.target.Find(ctx, mapping.KindUser, "userName", "a")
	require.Equal(t, false, a.Attrs["active"], "disabled in the directory, disabled on the target")
	g = h.target.Resources(mapping.KindGroup)
	require.Len(t, g[0].Attrs["members"], 1, "a disabled account is no member of the pushed group")
}

// TestTargetLostTheAccount: when the target answers 404 for the account the id map points
// to, the account is created again (once) rather than dead-lettered.
func TestTargetLostTheAccount(t *testing.T) {
	h := newHarness(t, Spec{MaxAttempts: 3})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	h.run(ctx)
	h.change(user("ada"))
	h.waitIdle()
	old, _, _ := h.target.Find(ctx, mapping.KindUser, "userName", "ada")
	_, err := h.target.Apply(ctx, mapping.Op{Kind: mapping.KindUser, Type: mapping.OpDelete, TargetID: old.ID})
	require.NoError(t, err)

	h.change(user("ada", "title", "Back"))
	h.waitIdle()
	now, ok, _ := h.target.Find(ctx, mapping.KindUser, "userName", "ada")
	require.True(t, ok)
	require.NotEqual(t, old.ID, now.ID)
	require.Equal(t, "Back", now.Attrs["title"])
	require.Len(t, h.opsOfType(mapping.KindUser, mapping.OpCreate), 2)
	require.Empty(t, mustDeadLetters(t, h))
}

// TestDeleteModeDeletesADisabledAccount: with deprovision = "delete", an account that was
// disabled (the directory's marker) is deleted when its user is deleted; with "disable"
// nothing more is sent for it.
func TestDeleteModeDeletesADisabledAccount(t *testing.T) {
	for mode, want := range map[string]int{DeprovisionDelete: 1, DeprovisionDisable: 0} {
		t.Run(mode, func(t *testing.T) {
			h := newHarness(t, Spec{Deprovision: mode, MaxAttempts: 3, MaxDeletes: 10})
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			h.run(ctx)
			marker := mapping.DefaultActiveMarker()
			h.change(user("ada", marker.Attr, marker.Value))
			h.waitIdle()
			require.Len(t, h.target.Resources(mapping.KindUser), 1)
			h.remove(user("ada"))
			h.waitIdle()
			require.Len(t, h.opsOfType(mapping.KindUser, mapping.OpDelete), want)
			require.Empty(t, h.opsOfType(mapping.KindUser, mapping.OpDisable))
			if want == 1 {
				require.Zero(t, h.stored().Users, "the deleted account is forgotten in the file")
			}
		})
	}
}

// TestReenableAfterDisableSendsOnlyActive: a user disabled for leaving scope and coming back
// unchanged gets a PATCH of active alone: what was pushed is remembered across the disable.
func TestReenableAfterDisableSendsOnlyActive(t *testing.T) {
	h := newHarness(t, Spec{Groups: []string{"cn=app," + groups}, MaxAttempts: 3, MaxDeletes: 10})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	h.run(ctx)
	h.change(user("ada", "title", "Analyst"), user("bob"), group("app", "ada", "bob"))
	h.waitIdle()
	h.change(group("app", "bob"))
	h.waitIdle()
	require.Len(t, h.opsOfType(mapping.KindUser, mapping.OpDisable), 1)
	h.change(group("app", "ada", "bob"))
	h.waitIdle()
	patches := h.opsOfType(mapping.KindUser, mapping.OpUpdate)
	require.Len(t, patches, 1)
	require.Equal(t, []mapping.PatchOp{{Op: "replace", Path: "active", Value: true}}, patches[0].Patch)
}

// TestCircuitRecovers: a target failing everything opens the circuit; once it answers
// again, the probe closes it and everything is delivered.
func TestCircuitRecovers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, Spec{Concurrency: 2, MaxAttempts: 50, MinRetryDelay: time.Second, MaxRetryDelay: 4 * time.Second})
		var down atomic.Bool
		down.Store(true)
		h.target.SetApplyFunc(func(_ context.Context, op mapping.Op) (targets.Result, error) {
			if down.Load() {
				return targets.Result{}, &targets.RetryableError{Err: errors.New("503 from target")}
			}
			return targets.Result{ID: "t-" + op.Resource["userName"].(string)}, nil
		})
		ctx, cancel := context.WithCancel(t.Context())
		h.run(ctx)
		h.change(user("a"), user("b"), user("c"), user("d"))
		time.Sleep(30 * time.Second)
		synctest.Wait()
		require.NotEqual(t, CircuitClosed, h.e.Status()[0].Target.State, "the circuit is open")
		down.Store(false)
		time.Sleep(5 * time.Minute)
		synctest.Wait()
		st := h.e.Status()[0]
		require.Equal(t, CircuitClosed, st.Target.State)
		require.Equal(t, 4, st.UsersActive, "everything delivered once the target is back")
		require.Zero(t, st.OutboxDepth)
		cancel()
		h.e.Wait()
	})
}

// TestGroupMembershipDeltas: a membership PATCH carries exactly the removes and adds that
// changed (an add-only change has no remove operation), nothing is sent when membership did
// not change, and what was removed is forgotten in the state file. Every user is in scope
// (no groups configured), so membership changes move no account.
func TestGroupMembershipDeltas(t *testing.T) {
	h := newHarness(t, Spec{PushGroups: true, MaxAttempts: 3, MaxDeletes: 10})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	h.run(ctx)
	settle := func() {
		h.waitIdle()
		time.Sleep(2 * groupDebounce)
		h.waitIdle()
	}
	h.change(user("a"), user("b"), user("c"), group("app", "a"))
	settle()
	members := func() []mapping.Op { return h.opsOfType(mapping.KindGroup, mapping.OpMembers) }
	n := len(members())

	h.change(group("app", "a", "b"))
	settle()
	require.Len(t, members(), n+1)
	last := members()[n]
	require.Len(t, last.Patch, 1, "an add alone")
	require.Equal(t, "add", last.Patch[0].Op)

	h.change(group("app", "b", "c"))
	settle()
	last = members()[len(members())-1]
	require.Len(t, last.Patch, 2)
	require.Equal(t, "remove", last.Patch[0].Op)
	require.Equal(t, "add", last.Patch[1].Op)
	require.ElementsMatch(t, []string{"id-b", "id-c"}, h.pushedMembers("gid-app"), "a is forgotten as a member")

	h.change(group("app", "c"))
	settle()
	last = members()[len(members())-1]
	require.Len(t, last.Patch, 1, "a remove alone")
	require.Equal(t, "remove", last.Patch[0].Op)

	before := len(members())
	h.change(group("app", "c")) // the same membership
	settle()
	require.Len(t, members(), before, "nothing to send")
}

// pushedMembers reads the membership the state file says was pushed for group gid.
func (h *harness) pushedMembers(gid string) []string {
	h.t.Helper()
	var out []string
	require.NoError(h.t, h.db.View(func(tx *state.Tx) error {
		b, err := tx.Bucket("outbound", "app", "members", gid)
		if err != nil {
			return err
		}
		return b.Scan(nil, func(k, _ []byte) (bool, error) {
			out = append(out, string(k))
			return true, nil
		})
	}))
	return out
}

// TestFailedPatchIsRetriedAsAPatch: an update of an existing account that fails is retried
// as the same PATCH; only a failure right after creating (or adopting) an account makes the
// retry replace it whole, since what it holds is then unknown.
func TestFailedPatchIsRetriedAsAPatch(t *testing.T) {
	h := newHarness(t, Spec{Concurrency: 1, MaxAttempts: 5, MinRetryDelay: time.Millisecond, MaxRetryDelay: time.Millisecond})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	h.run(ctx)
	h.change(user("ada"))
	h.waitIdle()
	h.target.FailNext(&targets.RetryableError{Err: errors.New("503 once")})
	h.change(user("ada", "title", "Countess"))
	h.waitIdle()
	require.Empty(t, h.opsOfType(mapping.KindUser, mapping.OpReplace))
	patches := h.opsOfType(mapping.KindUser, mapping.OpUpdate)
	require.Len(t, patches, 2, "the failed PATCH and its retry")
	require.Equal(t, patches[0].Patch, patches[1].Patch)
}

// TestPushedGroupAttributesAndAdoption: a pushed group that already exists on the target is
// adopted with what it holds (nothing sent when it matches), a change of its attributes is
// PATCHed, and no empty PATCH is ever sent for it.
func TestPushedGroupAttributesAndAdoption(t *testing.T) {
	h := newHarness(t, Spec{
		PushGroups: true, MaxAttempts: 3, MaxDeletes: 10,
		GroupMapping: map[string]string{"externalId": "{{ .description }}"},
	})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	existing, err := h.target.Apply(ctx, mapping.Op{
		Kind: mapping.KindGroup, Type: mapping.OpCreate,
		Resource: map[string]any{"displayName": "app", "externalId": "first"},
	})
	require.NoError(t, err)
	h.run(ctx)
	settle := func() {
		h.waitIdle()
		time.Sleep(2 * groupDebounce)
		h.waitIdle()
	}
	app := group("app", "a")
	app.Attrs["description"] = []string{"first"}
	h.change(user("a"), app)
	settle()
	require.Len(t, h.target.Resources(mapping.KindGroup), 1, "adopted")
	require.Empty(t, h.opsOfType(mapping.KindGroup, mapping.OpUpdate), "it held what the mapping renders")
	require.Empty(t, h.opsOfType(mapping.KindGroup, mapping.OpReplace))

	app.Attrs["description"] = []string{"second"}
	h.change(app)
	settle()
	updates := h.opsOfType(mapping.KindGroup, mapping.OpUpdate)
	require.Len(t, updates, 1)
	require.Equal(t, existing.ID, updates[0].TargetID)
	require.Equal(t, []mapping.PatchOp{{Op: "replace", Path: "externalId", Value: "second"}}, updates[0].Patch)
}

// TestDeletedMemberLeavesPushedGroups: a member deleted from the directory (its group entry
// still names it, as without refint) is deprovisioned and removed from every pushed group it
// was pushed in.
func TestDeletedMemberLeavesPushedGroups(t *testing.T) {
	h := newHarness(t, Spec{PushGroups: true, MaxAttempts: 3, MaxDeletes: 10})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	h.run(ctx)
	settle := func() {
		h.waitIdle()
		time.Sleep(2 * groupDebounce)
		h.waitIdle()
	}
	h.change(user("a"), user("b"), group("app", "a", "b"), group("other", "b"))
	settle()
	require.ElementsMatch(t, []string{"id-a", "id-b"}, h.pushedMembers("gid-app"))
	h.remove(user("a"))
	settle()
	require.Equal(t, []string{"id-b"}, h.pushedMembers("gid-app"))
	for _, g := range h.target.Resources(mapping.KindGroup) {
		if g.Attrs["displayName"] == "app" {
			require.Len(t, g.Attrs["members"], 1)
		}
	}
}

// TestGroupLeavingThePushedSet: a pushed group that is no longer pushed (here a nested group
// taken out of the scope group) is deleted on the target and its pushed membership
// forgotten.
func TestGroupLeavingThePushedSet(t *testing.T) {
	h := newHarness(t, Spec{Groups: []string{"cn=app," + groups}, NestedGroups: true, PushGroups: true, MaxAttempts: 3, MaxDeletes: 10})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	h.run(ctx)
	settle := func() {
		h.waitIdle()
		time.Sleep(2 * groupDebounce)
		h.waitIdle()
	}
	app := group("app", "a")
	app.Attrs["member"] = append(app.Attrs["member"], "cn=other,"+groups)
	h.change(user("a"), user("b"), app, group("other", "a", "b"))
	settle()
	require.Len(t, h.target.Resources(mapping.KindGroup), 2)
	require.Len(t, h.pushedMembers("gid-other"), 2)

	h.change(group("app", "a"))
	settle()
	groupsLeft := h.target.Resources(mapping.KindGroup)
	require.Len(t, groupsLeft, 1)
	require.Equal(t, "app", groupsLeft[0].Attrs["displayName"])
	require.Empty(t, h.pushedMembers("gid-other"), "forgotten")
	require.Equal(t, 1, h.stored().Groups)
}

// TestGroupChangesWithoutScopeGroupsDeprovisionNobody: without configured groups everybody
// is in scope, so a group change deprovisions nobody and counts nothing against the
// breaker.
func TestGroupChangesWithoutScopeGroupsDeprovisionNobody(t *testing.T) {
	h := newHarness(t, Spec{MaxDeletes: 1, MaxAttempts: 3})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	h.run(ctx)
	h.change(user("a"), user("b"), user("c"), group("app", "a"))
	h.waitIdle()
	h.change(group("app", "b"))
	h.waitIdle()
	require.False(t, h.e.Status()[0].Breaker.Tripped)
	require.Empty(t, h.opsOfType(mapping.KindUser, mapping.OpDisable))
	require.Zero(t, h.windowLen())
}

// TestFailedPatchAfterAdoptionIsRemembered: when the first update of an account just
// adopted fails, the account is remembered (no second lookup) with its content unknown, so
// the retry sends every attribute again.
func TestFailedPatchAfterAdoptionIsRemembered(t *testing.T) {
	h := newHarness(t, Spec{Concurrency: 1, MaxAttempts: 5, MinRetryDelay: time.Millisecond, MaxRetryDelay: time.Millisecond})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	existing, err := h.target.Apply(ctx, mapping.Op{Kind: mapping.KindUser, Type: mapping.OpCreate, Resource: map[string]any{"userName": "ada"}})
	require.NoError(t, err)
	h.target.FailNext(&targets.RetryableError{Err: errors.New("503 once")})
	h.run(ctx)
	h.change(user("ada", "title", "Analyst"))
	h.waitIdle()
	require.Len(t, h.target.Finds(), 1, "looked up once: the adopted account was remembered")
	patches := h.opsOfType(mapping.KindUser, mapping.OpUpdate)
	require.Len(t, patches, 2, "the failed PATCH and its retry")
	require.Equal(t, existing.ID, patches[1].TargetID)
	require.Subset(t, patches[1].Patch, patches[0].Patch, "every attribute again")
	require.Contains(t, patches[1].Patch, mapping.PatchOp{Op: "add", Path: "userName", Value: "ada"}, "even the one the lookup had shown")
	require.Equal(t, 1, h.stored().Users)
}
