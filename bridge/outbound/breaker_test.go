package outbound

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/bridge/state"
)

// note records deprovision decisions for ids in one transaction, as the Sink does.
func (h *harness) note(ids ...string) bool {
	h.t.Helper()
	p, ok := h.e.Provisioner("app")
	require.True(h.t, ok)
	var tripped bool
	require.NoError(h.t, h.db.Update(func(tx *state.Tx) error {
		var err error
		tripped, err = p.noteDeprovisions(tx, ids, "test")
		return err
	}))
	return tripped
}

// windowLen is the number of decisions in the provisioner's deletion window.
func (h *harness) windowLen() int {
	h.t.Helper()
	n := 0
	require.NoError(h.t, h.db.View(func(tx *state.Tx) error {
		b, err := tx.Bucket("outbound", "app", "deletes")
		n = b.Len()
		return err
	}))
	return n
}

// TestBreakerWindow: a user counts once while its decision is in the window and again once
// the window has passed (exactly); decisions older than the window no longer count.
func TestBreakerWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, Spec{MaxDeletes: 1, DeleteWindow: time.Hour})
		require.False(t, h.note("a"))
		require.False(t, h.note("a"), "the same user counts once within the window")
		require.Equal(t, 1, h.windowLen())

		time.Sleep(time.Hour) // a's decision is exactly one window old: it no longer stands
		require.True(t, h.note("a", "b"), "a counts again, and with b that is 2 > max_deletes 1")
	})
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, Spec{MaxDeletes: 1, DeleteWindow: time.Hour})
		require.False(t, h.note("a"))
		time.Sleep(time.Hour)
		require.False(t, h.note("b"), "a expired: only b counts")
		require.Equal(t, 1, h.windowLen(), "the expired decision is pruned")
		time.Sleep(time.Hour)
		require.True(t, h.note("c", "d"), "b expired; c and d are 2 > max_deletes 1")
	})
}

// TestBreakerOff: with max_deletes = 0 nothing is counted or recorded.
func TestBreakerOff(t *testing.T) {
	h := newHarness(t, Spec{MaxDeletes: 0})
	ids := make([]string, 100)
	for i := range ids {
		ids[i] = string(rune('a'+i%26)) + string(rune('a'+i/26))
	}
	require.False(t, h.note(ids...))
	require.Zero(t, h.windowLen())
	p, _ := h.e.Provisioner("app")
	require.NoError(t, p.checkDeprovision("x"))
	require.Zero(t, h.windowLen())
}

// TestCheckDeprovision: a deprovision decided at delivery that no batch predicted is counted
// then; one over max_deletes is refused, and once tripped every deprovision waits.
func TestCheckDeprovision(t *testing.T) {
	h := newHarness(t, Spec{MaxDeletes: 1, DeleteWindow: time.Hour})
	p, _ := h.e.Provisioner("app")
	require.NoError(t, p.checkDeprovision("a"))
	require.Equal(t, 1, h.windowLen(), "counted at delivery")
	require.NoError(t, p.checkDeprovision("a"), "already counted")
	require.ErrorIs(t, p.checkDeprovision("b"), errBreaker, "2 > max_deletes 1")
	tripped, _ := p.breakerTripped()
	require.True(t, tripped)
	require.ErrorIs(t, p.checkDeprovision("a"), errBreaker, "a tripped breaker stops every deprovision")
}

// TestCheckDeprovisionReadsTheCommittedBreaker: a breaker tripped in the state file holds a
// deprovision even before its in-memory mirror is set (the commit that tripped it may also
// have scheduled the item, and its callbacks run one after the other).
func TestCheckDeprovisionReadsTheCommittedBreaker(t *testing.T) {
	h := newHarness(t, Spec{MaxDeletes: 1, DeleteWindow: time.Hour})
	p, _ := h.e.Provisioner("app")
	require.NoError(t, h.db.Update(func(tx *state.Tx) error {
		_, err := p.noteDeprovisions(tx, []string{"a", "b"}, "test")
		return err
	}))
	p.mu.Lock()
	p.breaker = breakerState{} // the mirror not yet set: its callback has not run
	p.mu.Unlock()
	require.ErrorIs(t, p.checkDeprovision("a"), errBreaker, "a is known, the breaker is tripped in the file")
}

// TestBreakerReleaseAllowsWhatWasCounted: sync --allow-deletes lets every counted decision
// through: they no longer count, so the next deprovision does not trip it again.
func TestBreakerReleaseAllowsWhatWasCounted(t *testing.T) {
	h := newHarness(t, Spec{MaxDeletes: 3, DeleteWindow: time.Hour})
	require.True(t, h.note("a", "b", "c", "d", "e"))
	released, err := h.e.AllowDeletes(nil)
	require.NoError(t, err)
	require.Equal(t, []string{"app"}, released)
	require.False(t, h.note("f"), "a, b, c, d and e were allowed: f alone counts")
	require.False(t, h.note("g", "h"), "three decisions are not more than max_deletes 3")
	require.True(t, h.note("i"))
	released, err = h.e.AllowDeletes([]string{"other"})
	require.NoError(t, err)
	require.Empty(t, released, "only the named provisioners")
}
