package outbound

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/bridge/capture"
	"github.com/scimbridge/scimbridge/bridge/state"
	"github.com/scimbridge/scimbridge/ldapstore"
	"github.com/scimbridge/scimbridge/mapping"
	"github.com/scimbridge/scimbridge/targets"
)

// TestDeadLetterAdministration: a dead letter is listed with its entry, counted in status,
// replayed (all, or by id; an unknown id is an error naming it) or dropped.
func TestDeadLetterAdministration(t *testing.T) {
	h := newHarness(t, Spec{Concurrency: 1, MaxAttempts: 1})
	h.target.SetApplyFunc(func(_ context.Context, _ mapping.Op) (targets.Result, error) {
		return targets.Result{}, &targets.PermanentError{Status: 400, Err: errors.New("400 invalidValue")}
	})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	h.run(ctx)
	h.change(user("ada"), user("bob"))
	h.waitIdle()

	dls, err := h.e.DeadLetters("app")
	require.NoError(t, err)
	require.Len(t, dls, 2)
	require.Equal(t, string(mapping.KindUser), dls[0].Kind)
	require.Equal(t, user("ada").DN, dls[0].DN)
	require.Equal(t, "id-ada", dls[0].ID)
	require.Equal(t, 2, h.e.Status()[0].DeadLetters)

	_, err = h.e.Replay("app", []string{"id-ada", "id-nobody"})
	require.ErrorContains(t, err, `provisioner "app" has no dead letter id-nobody`)
	dls, _ = h.e.DeadLetters("app")
	require.Len(t, dls, 2, "nothing replayed")

	dropped, err := h.e.Drop("app", []string{"id-bob"})
	require.NoError(t, err)
	require.Equal(t, []string{"id-bob"}, dropped)
	require.Equal(t, 1, h.e.Status()[0].DeadLetters)

	h.target.SetApplyFunc(nil)
	replayed, err := h.e.Replay("app", nil)
	require.NoError(t, err)
	require.Equal(t, []string{"id-ada"}, replayed)
	h.waitIdle()
	require.Zero(t, h.e.Status()[0].DeadLetters)
	_, ok, _ := h.target.Find(ctx, mapping.KindUser, "userName", "ada")
	require.True(t, ok, "the replay delivered ada")
	_, ok, _ = h.target.Find(ctx, mapping.KindUser, "userName", "bob")
	require.False(t, ok, "bob was dropped")
}

// TestReplayOfAnUnreadableItem: a dead letter whose payload cannot be decoded is replayed as
// a user to read again from the directory.
func TestReplayOfAnUnreadableItem(t *testing.T) {
	h := newHarness(t, Spec{MaxAttempts: 1})
	require.NoError(t, h.db.Update(func(tx *state.Tx) error {
		dls, err := tx.DeadLetters("app")
		if err != nil {
			return err
		}
		return dls.Put(state.DeadLetter{Item: state.Item{Key: "id-ada", Payload: []byte(`"not a work item"`)}, Error: "unreadable", Failed: time.Now()})
	}))
	_, err := h.e.Replay("app", nil)
	require.NoError(t, err)
	var w work
	require.NoError(t, h.db.View(func(tx *state.Tx) error {
		ob, err := tx.Outbox("app")
		if err != nil {
			return err
		}
		it, ok, err := ob.Get("id-ada")
		require.True(t, ok)
		w, _ = decodeWork(it)
		return err
	}))
	require.Equal(t, mapping.KindUser, w.Kind)
	require.True(t, w.Refresh)
	require.False(t, w.Gone)
}

// TestReconcileListingAdoptsAndRepairsDrift: a reconcile pass lists the target: an account
// that exists there already is adopted from the listing (no lookup), an attribute changed on
// the target behind the bridge's back is pushed back, and an account the target lost is
// created again.
func TestReconcileListingAdoptsAndRepairsDrift(t *testing.T) {
	h := newHarness(t, Spec{MaxAttempts: 3, MaxDeletes: 10})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	existing, err := h.target.Apply(ctx, mapping.Op{Kind: mapping.KindUser, Type: mapping.OpCreate, Resource: map[string]any{"userName": "ada", "title": "Preexisting"}})
	require.NoError(t, err)
	h.run(ctx)
	require.NoError(t, h.e.PrepareReconcile(ctx, nil))
	require.Zero(t, h.logs.count("target drifted"), "nothing drifted")
	h.change(user("ada", "title", "Analyst"), user("bob", "title", "Builder"), user("cy", "title", "Chief"))
	h.waitIdle()
	require.Empty(t, h.target.Finds(), "the listing answered every lookup")
	ada, _, _ := h.target.Find(ctx, mapping.KindUser, "userName", "ada")
	require.Equal(t, existing.ID, ada.ID, "adopted, not created again")
	require.Equal(t, "Analyst", ada.Attrs["title"])
	h.e.DropListings()

	// Behind the bridge's back: ada's title changes, cy's is removed, bob disappears.
	bob, _, _ := h.target.Find(ctx, mapping.KindUser, "userName", "bob")
	cy, _, _ := h.target.Find(ctx, mapping.KindUser, "userName", "cy")
	_, err = h.target.Apply(ctx, mapping.Op{
		Kind: mapping.KindUser, Type: mapping.OpUpdate, TargetID: ada.ID,
		Patch: []mapping.PatchOp{{Op: "replace", Path: "title", Value: "Changed"}},
	})
	require.NoError(t, err)
	_, err = h.target.Apply(ctx, mapping.Op{
		Kind: mapping.KindUser, Type: mapping.OpUpdate, TargetID: cy.ID,
		Patch: []mapping.PatchOp{{Op: "remove", Path: "title"}},
	})
	require.NoError(t, err)
	_, err = h.target.Apply(ctx, mapping.Op{Kind: mapping.KindUser, Type: mapping.OpDelete, TargetID: bob.ID})
	require.NoError(t, err)

	require.NoError(t, h.e.PrepareReconcile(ctx, nil))
	require.Equal(t, 2, h.e.Status()[0].Users, "bob's account is forgotten")
	require.Equal(t, 1, h.logs.count("target drifted", `"changed_on_target":2`, `"missing_on_target":1`))
	// The reconcile's enumeration: the entries as they are (unchanged in the directory).
	h.reconcileAll(user("ada", "title", "Analyst"), user("bob", "title", "Builder"), user("cy", "title", "Chief"))
	h.waitIdle()
	ada, _, _ = h.target.Find(ctx, mapping.KindUser, "userName", "ada")
	require.Equal(t, "Analyst", ada.Attrs["title"], "the drift is repaired")
	cy, _, _ = h.target.Find(ctx, mapping.KindUser, "userName", "cy")
	require.Equal(t, "Chief", cy.Attrs["title"], "the removed attribute is pushed back")
	newBob, ok, _ := h.target.Find(ctx, mapping.KindUser, "userName", "bob")
	require.True(t, ok, "bob is created again")
	require.NotEqual(t, bob.ID, newBob.ID)
}

// reconcileAll hands the engine a reconcile's changes for entries, as the reader does when
// nothing changed in the directory.
func (h *harness) reconcileAll(entries ...mapping.Entry) {
	h.t.Helper()
	var batch []capture.Change
	for _, e := range entries {
		en := e
		id := e.First("entryUUID")
		hash := ldapstore.EntryHash(e)
		batch = append(batch, capture.Change{
			Kind: ldapstore.EventUpsert, Object: capture.ObjectUser, ID: id, DN: e.DN, Entry: &en, Hash: hash,
			Prev: &state.IDEntry{DN: e.DN, Kind: string(capture.ObjectUser), Hash: hash}, Reconcile: true,
		})
	}
	prepared, err := h.e.Sink().PrepareReconcile(h.t.Context())
	require.NoError(h.t, err)
	require.NoError(h.t, h.db.Update(func(tx *state.Tx) error { return h.e.Sink().Commit(h.t.Context(), tx, batch, prepared) }))
}

// TestReconcileCountsScopeLossBeforeSending: a reconcile counts, before anything is sent,
// the active accounts now out of scope — by group or by filter — against the breaker.
func TestReconcileCountsScopeLossBeforeSending(t *testing.T) {
	for name, tc := range map[string]struct {
		spec  Spec
		leave func(h *harness)
	}{
		"filter": {Spec{Filter: "(employeeType=staff)"}, func(h *harness) {
			h.dir.put(user("a", "employeeType", "gone"))
			h.dir.put(user("b", "employeeType", "gone"))
		}},
		"groups": {Spec{Groups: []string{"cn=app," + groups}}, func(h *harness) {
			h.dir.put(group("app", "c"))
			require.NoError(t, h.e.idx.putGroup("gid-app", group("app", "c"), nil))
		}},
	} {
		t.Run(name, func(t *testing.T) {
			spec := tc.spec
			spec.MaxDeletes, spec.MaxAttempts = 1, 3
			h := newHarness(t, spec)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			h.run(ctx)
			h.change(user("a", "employeeType", "staff"), user("b", "employeeType", "staff"), user("c", "employeeType", "staff"), group("app", "a", "b", "c"))
			h.waitIdle()
			require.Len(t, h.target.Resources(mapping.KindUser), 3)
			tc.leave(h) // the directory changes; no batch has told the engine yet
			require.NoError(t, h.e.PrepareReconcile(ctx, nil))
			st := h.e.Status()[0]
			require.True(t, st.Breaker.Tripped, "two deprovisions > max_deletes 1, counted before sending")
			require.Contains(t, st.Breaker.Reason, "reconcile")
		})
	}
}

// TestReconcileForgetsAGroupTheTargetLost: a pushed group the target no longer lists is
// forgotten, its pushed membership with it, so the pass creates it again whole.
func TestReconcileForgetsAGroupTheTargetLost(t *testing.T) {
	h := newHarness(t, Spec{PushGroups: true, MaxAttempts: 3, MaxDeletes: 10})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	h.run(ctx)
	h.change(user("a"), group("app", "a"))
	h.waitIdle()
	time.Sleep(2 * groupDebounce)
	h.waitIdle()
	require.Equal(t, []string{"id-a"}, h.pushedMembers("gid-app"))
	g := h.target.Resources(mapping.KindGroup)
	require.Len(t, g, 1)
	_, err := h.target.Apply(ctx, mapping.Op{Kind: mapping.KindGroup, Type: mapping.OpDelete, TargetID: g[0].ID})
	require.NoError(t, err)

	require.NoError(t, h.e.PrepareReconcile(ctx, nil))
	require.Zero(t, h.e.Status()[0].Groups)
	require.Empty(t, h.pushedMembers("gid-app"), "its membership is forgotten too")
}
