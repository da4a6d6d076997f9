package outbound

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/bridge/state"
	"github.com/scimbridge/scimbridge/mapping"
	"github.com/scimbridge/scimbridge/targets"
)

// names lists the names of plan users.
func names(us []PlanUser) []string {
	var out []string
	for _, u := range us {
		out = append(out, u.Name)
	}
	return out
}

// TestPlanCoversEveryCase: a plan names each user a full sync would create (adopting what
// the target lists), update, disable or delete, reads the filter, the pending work, the
// dead letters and the breaker, and says when the breaker would trip.
func TestPlanCoversEveryCase(t *testing.T) {
	spec := Spec{Groups: []string{"cn=app," + groups}, Filter: "(o=staff)", MaxAttempts: 1, MaxDeletes: 10}
	h := newHarness(t, spec)
	ctx, cancel := context.WithCancel(t.Context())
	staff := func(uid string, extra ...string) mapping.Entry {
		return user(uid, append([]string{"o", "staff"}, extra...)...)
	}
	h.target.SetApplyFunc(func(_ context.Context, op mapping.Op) (targets.Result, error) {
		if op.Resource != nil && op.Resource["userName"] == "dead" {
			return targets.Result{}, &targets.PermanentError{Status: 400, Err: errors.New("no")}
		}
		return targets.Result{ID: "t-" + op.Resource["userName"].(string)}, nil
	})
	h.run(ctx)
	h.change(staff("same"), staff("changes"), staff("leaves"), staff("deleted"), staff("dead"), staff("off"), group("app", "same", "changes", "leaves", "deleted", "dead", "off"))
	h.waitIdle()
	cancel()
	h.e.Wait()
	require.Len(t, mustDeadLetters(t, h), 1)

	// Nothing delivers any more. The directory changes; the target has "listed" already.
	h.dir.put(staff("changes", "title", "New"))
	h.dir.del(user("deleted").DN)
	h.dir.put(staff("new"))
	h.dir.put(staff("listed"))
	h.dir.put(user("contractor", "o", "contractor"))
	marker := mapping.DefaultActiveMarker()
	h.dir.put(staff("off", marker.Attr, marker.Value))
	h.dir.put(group("app", "same", "changes", "dead", "new", "listed", "contractor", "off"))
	h.target.SetApplyFunc(nil)
	listed, err := h.target.Apply(t.Context(), mapping.Op{Kind: mapping.KindUser, Type: mapping.OpCreate, Resource: map[string]any{"userName": "listed"}})
	require.NoError(t, err)
	require.NoError(t, h.db.Update(func(tx *state.Tx) error {
		ob, err := tx.Outbox("app")
		if err != nil {
			return err
		}
		_, err = ob.Put("id-pending", []byte(`{"kind":"User","refresh":true}`))
		return err
	}))

	plan := func(s Spec, listTarget bool) Plan {
		t.Helper()
		s.Name, s.Target = "app", h.target
		plans, err := h.e.Plan(t.Context(), []Spec{s}, listTarget)
		require.NoError(t, err)
		require.Len(t, plans, 1)
		return plans[0]
	}
	pl := plan(spec, true)
	require.ElementsMatch(t, []string{"new", "listed", "dead"}, names(pl.Creates), "contractor fails the filter")
	for _, c := range pl.Creates {
		require.Equal(t, c.Name == "listed", c.Adopt, c.Name)
		if c.Adopt {
			require.Equal(t, listed.ID, c.TargetID)
		}
	}
	require.ElementsMatch(t, []string{"changes", "off"}, names(pl.Updates))
	for _, u := range pl.Updates {
		want := map[string][]string{"changes": {"add title"}, "off": {"replace active"}}[u.Name]
		require.Equal(t, want, u.Changes, u.Name)
	}
	require.ElementsMatch(t, []string{"leaves", "deleted"}, names(pl.Disables))
	require.Empty(t, pl.Deletes)
	require.Equal(t, 1, pl.Unchanged)
	require.Equal(t, 1, pl.Pending)
	require.Equal(t, 1, pl.DeadLetters)
	require.True(t, pl.TargetListed)
	require.False(t, pl.Tripped)
	require.Equal(t, 2, pl.Deprovisions())
	require.False(t, pl.WouldTrip)

	require.False(t, plan(Spec{Groups: spec.Groups, Filter: spec.Filter, MaxDeletes: 2}, true).WouldTrip, "2 deprovisions are not more than max_deletes 2")
	require.True(t, plan(Spec{Groups: spec.Groups, Filter: spec.Filter, MaxDeletes: 1}, true).WouldTrip)
	require.False(t, plan(Spec{Groups: spec.Groups, Filter: spec.Filter, MaxDeletes: 0}, true).WouldTrip, "no breaker")
	del := plan(Spec{Groups: spec.Groups, Filter: spec.Filter, Deprovision: DeprovisionDelete, MaxDeletes: 1}, true)
	require.ElementsMatch(t, []string{"leaves", "deleted"}, names(del.Deletes))
	require.Empty(t, del.Disables)
	require.Equal(t, 2, del.Deprovisions())
	require.True(t, del.WouldTrip)

	h.note("x1", "x2", "x3", "x4", "x5", "x6", "x7", "x8", "x9", "x10", "x11")
	require.True(t, plan(spec, true).Tripped, "the breaker as the file says")

	unlisted := plan(spec, false)
	require.False(t, unlisted.TargetListed)
	for _, c := range unlisted.Creates {
		require.False(t, c.Adopt, "without a listing adoptions are unknown")
	}
	require.Contains(t, names(plan(Spec{Groups: spec.Groups, MaxDeletes: 10}, true).Creates), "contractor", "without the filter")
}

// TestPlanGroups: with push_groups, a plan says which pushed groups are created, updated,
// have members added or removed, or are deleted (no longer pushed).
func TestPlanGroups(t *testing.T) {
	spec := Spec{Groups: []string{"cn=app," + groups, "cn=other," + groups}, NestedGroups: true, PushGroups: true, MaxAttempts: 3, MaxDeletes: 10}
	h := newHarness(t, spec)
	ctx, cancel := context.WithCancel(t.Context())
	h.run(ctx)
	h.change(user("a"), user("b"), user("c"), group("app", "a", "b"), group("other", "c"))
	h.waitIdle()
	time.Sleep(2 * groupDebounce)
	h.waitIdle()
	require.Len(t, h.target.Resources(mapping.KindGroup), 2)
	cancel()
	h.e.Wait()

	sub := group("sub", "d")
	app := group("app", "a", "d")
	app.Attrs["member"] = append(app.Attrs["member"], sub.DN)
	h.dir.put(user("d"))
	h.dir.put(sub)
	h.dir.put(app)
	renamed := group("other", "c")
	renamed.Attrs["description"] = []string{"changed"}
	h.dir.put(renamed)

	plans, err := h.e.Plan(t.Context(), []Spec{{
		Name: "app", Target: h.target, Groups: []string{"cn=app," + groups}, NestedGroups: true, PushGroups: true,
		GroupMapping: map[string]string{"externalId": "{{ .description | default .cn }}"},
	}}, true)
	require.NoError(t, err)
	got := map[string]PlanGroup{}
	for _, g := range plans[0].Groups {
		got[g.Name] = g
	}
	require.Equal(t, PlanGroup{ID: "gid-app", Name: "app", Op: "update", MembersAdd: 1, MembersRemove: 1}, got["app"],
		"the mapping changed (externalId); d comes in, b leaves scope and is disabled")
	require.Equal(t, PlanGroup{ID: "gid-sub", Name: "sub", Op: "create", MembersAdd: 1}, got["sub"])
	require.Equal(t, PlanGroup{ID: "gid-other", Name: "other", Op: "delete"}, got["other"], "no longer pushed")
	require.Len(t, got, 3)
	require.Equal(t, []string{"b", "c"}, names(plans[0].Disables))

	plans, err = h.e.Plan(t.Context(), []Spec{{Name: "app", Target: h.target, Groups: spec.Groups, NestedGroups: true, PushGroups: true}}, true)
	require.NoError(t, err)
	got = map[string]PlanGroup{}
	for _, g := range plans[0].Groups {
		got[g.Name] = g
	}
	require.Equal(t, PlanGroup{ID: "gid-app", Name: "app", Op: "members", MembersAdd: 1, MembersRemove: 1}, got["app"], "only membership")
	_, hasOther := got["other"]
	require.False(t, hasOther, "other is up to date")
}
