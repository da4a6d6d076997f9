package outbound

import (
	"fmt"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/bridge/capture"
	"github.com/scimbridge/scimbridge/bridge/state"
	"github.com/scimbridge/scimbridge/ldapstore"
)

// TestEngineDefaults: the drain timeout and the searches' filters default as documented.
func TestEngineDefaults(t *testing.T) {
	db, err := state.Open(t.TempDir())
	require.NoError(t, err)
	defer db.Close()
	e, err := New(Options{State: db, Directory: newFakeDir(), Logger: zerolog.Nop(), Scope: capture.Scope{
		Users: ldapstore.Search{Base: people}, Groups: ldapstore.Search{Base: groups, Filter: "(objectClass=groupOfNames)"}, IDAttribute: "entryUUID",
	}})
	require.NoError(t, err)
	require.Equal(t, 10*time.Second, e.o.DrainTimeout)
	require.Equal(t, "(objectClass=*)", e.usersSearch().Filter)
	require.Equal(t, "(objectClass=groupOfNames)", e.groupsSearch().Filter)
	require.Equal(t, []string{"*", "entryUUID"}, e.usersSearch().Attrs)

	_, err = New(Options{})
	require.ErrorContains(t, err, "Options.State is required")
	require.ErrorContains(t, err, "Options.Directory is required")
	require.ErrorContains(t, err, "Options.Scope.IDAttribute is required")
}

// TestLoadReadsGroupsAndKnownUsers: Load reads every group from the directory and the users
// the change reader knows from the state file, so scope is right before any batch.
func TestLoadReadsGroupsAndKnownUsers(t *testing.T) {
	h := newHarness(t, Spec{Groups: []string{"cn=app," + groups}})
	h.dir.put(group("app", "a"))
	require.NoError(t, h.db.Update(func(tx *state.Tx) error {
		ids, err := tx.IDMap("directory")
		if err != nil {
			return err
		}
		return ids.Put("id-a", state.IDEntry{DN: user("a").DN, Kind: string(capture.ObjectUser)})
	}))
	require.NoError(t, h.e.Load(t.Context()))
	g, u := h.e.idx.size()
	require.Equal(t, 1, g)
	require.Equal(t, 1, u)
	require.Equal(t, map[string]string{"id-a": normDN(user("a").DN)}, h.e.idx.usersIn([]string{"gid-app"}, false))

	h.dir.fail = ldapstore.ErrUnavailable
	require.ErrorIs(t, h.e.Load(t.Context()), ldapstore.ErrUnavailable, "a directory it cannot read is an error, never an empty scope")
	g, _ = h.e.idx.size()
	require.Equal(t, 1, g, "the loaded index stays")
}

// TestSetProvisionersKeepsUnchangedOnes: a spec with the same (non-empty) Hash keeps the
// running provisioner; another Hash, or none, rebuilds it.
func TestSetProvisionersKeepsUnchangedOnes(t *testing.T) {
	h := newHarness(t, Spec{Hash: "h1"})
	p1, _ := h.e.Provisioner("app")
	changed, err := h.e.SetProvisioners([]Spec{{Name: "app", Target: h.target, Hash: "h1"}})
	require.NoError(t, err)
	require.Empty(t, changed)
	p2, _ := h.e.Provisioner("app")
	require.Same(t, p1, p2)

	changed, err = h.e.SetProvisioners([]Spec{{Name: "app", Target: h.target, Hash: "h2"}})
	require.NoError(t, err)
	require.Equal(t, []string{"app"}, changed)
	p3, _ := h.e.Provisioner("app")
	require.NotSame(t, p2, p3)

	changed, err = h.e.SetProvisioners([]Spec{{Name: "app", Target: h.target}})
	require.NoError(t, err)
	require.Equal(t, []string{"app"}, changed, "no hash: always rebuilt")
	changed, err = h.e.SetProvisioners([]Spec{{Name: "app", Target: h.target}})
	require.NoError(t, err)
	require.Equal(t, []string{"app"}, changed)

	changed, err = h.e.SetProvisioners(nil)
	require.NoError(t, err)
	require.Empty(t, changed)
	require.Empty(t, h.e.Provisioners(), "removed")
}

// TestQueueGivesMemoryBackWhenDrained: once a large backlog (an initial sync) has drained,
// the queue's map and heap are made anew; a small one keeps them.
func TestQueueGivesMemoryBackWhenDrained(t *testing.T) {
	q := newQueue()
	now := time.Now()
	drain := func(n int) {
		for i := range n {
			q.push(fmt.Sprintf("k%05d", i), uint64(i), now)
		}
		for range n {
			key, _, ok := q.pop(now)
			require.True(t, ok)
			q.done(key, false, time.Time{})
		}
	}
	drain(shrinkAbove / 2)
	require.Equal(t, shrinkAbove/2, q.peak, "a small backlog keeps its map")
	require.NotZero(t, cap(q.h))
	drain(shrinkAbove + 1)
	require.Zero(t, q.peak)
	require.Zero(t, cap(q.h), "the heap's array is given back")
	require.Empty(t, q.byKey)
	drain(3)
	require.Equal(t, 3, q.peak, "the new map counts from zero")
}
