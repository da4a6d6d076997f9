package outbound

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/bridge/capture"
	"github.com/scimbridge/scimbridge/bridge/state"
	"github.com/scimbridge/scimbridge/mapping"
)

// TestIndexTracksOnlyListedUsers: the membership index holds the users groups list, found
// through the resolver when a group comes to list them, and forgets them when none does.
func TestIndexTracksOnlyListedUsers(t *testing.T) {
	x := newIndex("member")
	lookups := 0
	known := map[string]string{normDN(user("a").DN): "id-a", normDN(user("b").DN): "id-b"}
	resolve := func(ndn string) (string, bool, error) {
		lookups++
		id, ok := known[ndn]
		return id, ok, nil
	}
	x.putUser("id-a", user("a").DN)
	x.putUser("id-b", user("b").DN)
	_, users := x.size()
	require.Zero(t, users, "no group lists them: not held")

	require.NoError(t, x.putGroup("g", group("app", "a", "nobody"), resolve))
	require.Equal(t, map[string]string{"id-a": normDN(user("a").DN)}, x.usersIn([]string{"g"}, false))
	require.Equal(t, []string{"g"}, x.groupsContaining("id-a", false))
	require.Equal(t, 2, lookups, "a and nobody")

	// Read again with one more member: only the one not held is looked up.
	lookups = 0
	require.NoError(t, x.putGroup("g", group("app", "a", "b"), resolve))
	require.Equal(t, 1, lookups)
	require.Len(t, x.usersIn([]string{"g"}, false), 2)

	// A second group listing a: dropping a from the first keeps it held.
	require.NoError(t, x.putGroup("g2", group("other", "a"), resolve))
	require.NoError(t, x.putGroup("g", group("app", "b"), resolve))
	_, users = x.size()
	require.Equal(t, 2, users)
	x.deleteGroup("g2")
	_, users = x.size()
	require.Equal(t, 1, users, "a is listed by no group any more")
	_, ok := x.userDN("id-a")
	require.False(t, ok)

	// A user put at a DN a group lists is held without a lookup.
	lookups = 0
	require.NoError(t, x.putGroup("g3", group("third", "c"), nil))
	x.putUser("id-c", user("c").DN)
	require.Equal(t, map[string]string{"id-c": normDN(user("c").DN)}, x.usersIn([]string{"g3"}, false))
	require.Zero(t, lookups)

	// A lookup that fails changes nothing.
	boom := errors.New("boom")
	err := x.putGroup("g3", group("third", "a"), func(string) (string, bool, error) { return "", false, boom })
	require.ErrorIs(t, err, boom)
	require.Equal(t, map[string]string{"id-c": normDN(user("c").DN)}, x.usersIn([]string{"g3"}, false), "the group as it was")
}

// TestCommitFindsGroupMembersInTheDNIndex: users the engine saw while no group listed them are
// not in memory; a group that comes to list them (after a create, a rename, or a delete and
// a new entry at the same DN) finds them through the state file's DN index, confirmed by
// the id map.
func TestCommitFindsGroupMembersInTheDNIndex(t *testing.T) {
	h := newHarness(t, Spec{Groups: []string{"cn=app," + groups}})
	h.change(user("a"), user("b"), user("c"), group("app"))
	_, users := h.e.idx.size()
	require.Zero(t, users)

	// b is renamed while no group lists it: its key moves.
	moved := user("b")
	moved.DN = "uid=bee," + people
	h.change(moved)
	// c is deleted and another entry takes its DN.
	h.remove(user("c"))
	other := user("c")
	other.Attrs["entryUUID"] = []string{"id-c2"}
	h.change(other)

	h.change(mapping.Entry{DN: "cn=app," + groups, Attrs: map[string][]string{
		"objectClass": {"groupOfNames"}, "cn": {"app"}, "entryUUID": {"gid-app"},
		"member": {user("a").DN, "UID=Bee, " + people, user("b").DN, user("c").DN},
	}})
	require.Equal(t, map[string]string{
		"id-a":  normDN(user("a").DN),
		"id-b":  "uid=bee," + people,
		"id-c2": normDN(user("c").DN),
	}, h.e.idx.usersIn([]string{"gid-app"}, false), "b's old DN names no one; c's DN is the new entry's")

	require.NoError(t, h.db.View(func(tx *state.Tx) error {
		b, err := userDNBucket(tx)
		require.NoError(t, err)
		require.Nil(t, b.Get([]byte(normDN(user("b").DN))), "the renamed user's old key is gone")
		require.Equal(t, "id-c2", string(b.Get([]byte(normDN(user("c").DN)))))
		return nil
	}))
}

// TestCommitKeepsADNAnotherUserTook: a batch that puts a new user at a DN and then moves the
// user who held it elsewhere (the rename reached the change log after the add) leaves the
// DN's key to the new user: a rename removes only its own id's key.
func TestCommitKeepsADNAnotherUserTook(t *testing.T) {
	h := newHarness(t, Spec{Groups: []string{"cn=app," + groups}})
	h.change(user("a"), group("app"))

	taker := user("a")
	taker.Attrs["entryUUID"] = []string{"id-taker"}
	moved := user("a")
	moved.DN = "uid=elsewhere," + people
	h.change(taker, moved)

	require.NoError(t, h.db.View(func(tx *state.Tx) error {
		b, err := userDNBucket(tx)
		require.NoError(t, err)
		require.Equal(t, "id-taker", string(b.Get([]byte(normDN(user("a").DN)))))
		require.Equal(t, "id-a", string(b.Get([]byte("uid=elsewhere,"+people))))
		return nil
	}))
	h.change(group("app", "a"))
	require.Equal(t, map[string]string{"id-taker": normDN(user("a").DN)}, h.e.idx.usersIn([]string{"gid-app"}, false))
}

// TestResolveUserConfirmsWithTheIDMap: a key the DN index holds is only a hint; the id map
// decides (a stale key, left by a bug or an older binary, never puts anyone in scope).
func TestResolveUserConfirmsWithTheIDMap(t *testing.T) {
	db, err := state.Open(t.TempDir())
	require.NoError(t, err)
	defer db.Close()
	require.NoError(t, db.Update(func(tx *state.Tx) error {
		ids, err := tx.IDMap(directoryIDMap)
		require.NoError(t, err)
		require.NoError(t, ids.Put("id-a", state.IDEntry{DN: user("a").DN, Kind: string(capture.ObjectUser)}))
		require.NoError(t, ids.Put("id-m", state.IDEntry{DN: user("moved").DN, Kind: string(capture.ObjectUser)}))
		require.NoError(t, ids.Put("gid-x", state.IDEntry{DN: "cn=x," + groups, Kind: string(capture.ObjectGroup)}))
		b, err := userDNBucket(tx)
		require.NoError(t, err)
		for dn, id := range map[string]string{
			user("a").DN:     "id-a",
			user("gone").DN:  "id-gone", // not in the id map
			user("old").DN:   "id-m",    // the id map has it at another DN
			"cn=x," + groups: "gid-x",   // a group
		} {
			require.NoError(t, b.Put([]byte(normDN(dn)), []byte(id)))
		}
		resolve, err := resolveUser(tx)
		require.NoError(t, err)
		for dn, want := range map[string]string{user("a").DN: "id-a", user("gone").DN: "", user("old").DN: "", "cn=x," + groups: "", user("none").DN: ""} {
			id, ok, err := resolve(normDN(dn))
			require.NoError(t, err)
			require.Equal(t, want != "", ok, dn)
			require.Equal(t, want, id, dn)
		}
		return nil
	}))
}

// TestLoadCompletesTheDNIndex: a file whose DN index lacks entries (migrated from version
// 2, or written by an interrupted repair) is completed from the id map at Load, in
// transactions of repairChunk entries, and groups then find those users.
func TestLoadCompletesTheDNIndex(t *testing.T) {
	h := newHarness(t, Spec{Groups: []string{"cn=app," + groups}})
	const n = 7
	require.NoError(t, h.db.Update(func(tx *state.Tx) error {
		ids, err := tx.IDMap(directoryIDMap)
		require.NoError(t, err)
		for i := range n {
			u := user(fmt.Sprint("u", i))
			require.NoError(t, ids.Put(u.First("entryUUID"), state.IDEntry{DN: u.DN, Kind: string(capture.ObjectUser)}))
		}
		b, err := userDNBucket(tx)
		require.NoError(t, err)
		u := user("u3")
		return b.Put([]byte(normDN(u.DN)), []byte(u.First("entryUUID"))) // the one a repair wrote before it stopped
	}))
	defer func(c int) { repairChunk = c }(repairChunk)
	repairChunk = 2
	h.dir.put(group("app", "u1"))
	require.NoError(t, h.e.Load(t.Context()))
	g, users := h.e.idx.size()
	require.Equal(t, 1, g)
	require.Equal(t, 1, users, "only u1 is listed")
	require.Equal(t, 1, h.logs.count("completed from the id map", `"entries":6`), "u3 was there already")

	require.NoError(t, h.db.View(func(tx *state.Tx) error {
		b, err := userDNBucket(tx)
		require.NoError(t, err)
		for i := range n {
			u := user(fmt.Sprint("u", i))
			require.Equal(t, u.First("entryUUID"), string(b.Get([]byte(normDN(u.DN)))), u.DN)
		}
		return nil
	}))
	h.change(group("app", "u1", "u5", "u6"))
	require.Len(t, h.e.idx.usersIn([]string{"gid-app"}, false), 3)

	// Complete now: the next Load writes nothing.
	require.NoError(t, h.e.Load(t.Context()))
	require.Equal(t, 1, h.logs.count("completed from the id map"))
}

// TestLoadKeepsTheLiveHolderOfADN: two ids of the id map at one DN (an entry deleted and
// made again, the old id not yet confirmed gone) leave the DN index as Commit wrote it: a
// repair passing over the other id does not take the DN from the one the map confirms.
func TestLoadKeepsTheLiveHolderOfADN(t *testing.T) {
	h := newHarness(t, Spec{Groups: []string{"cn=app," + groups}})
	dn := user("x").DN
	require.NoError(t, h.db.Update(func(tx *state.Tx) error {
		ids, err := tx.IDMap(directoryIDMap)
		require.NoError(t, err)
		require.NoError(t, ids.Put("id-0", state.IDEntry{DN: user("other").DN, Kind: string(capture.ObjectUser)})) // missing: a repair runs
		require.NoError(t, ids.Put("id-a", state.IDEntry{DN: dn, Kind: string(capture.ObjectUser)}))
		require.NoError(t, ids.Put("id-b", state.IDEntry{DN: dn, Kind: string(capture.ObjectUser)}))
		b, err := userDNBucket(tx)
		require.NoError(t, err)
		return b.Put([]byte(normDN(dn)), []byte("id-a"))
	}))
	require.NoError(t, h.e.Load(t.Context()))
	require.NoError(t, h.db.View(func(tx *state.Tx) error {
		b, err := userDNBucket(tx)
		require.NoError(t, err)
		require.Equal(t, "id-a", string(b.Get([]byte(normDN(dn)))))
		require.Equal(t, "id-0", string(b.Get([]byte(normDN(user("other").DN)))))
		return nil
	}))
}

// BenchmarkLoadUsers measures Load over an id map of SCIMBRIDGE_BENCH_LOAD_USERS users
// (default 100,000) in no group: the first start after a migration from version 2, which
// writes the whole DN index ("repair"), and every later start, which checks it ("check").
func BenchmarkLoadUsers(b *testing.B) {
	n := 100_000
	if v, err := strconv.Atoi(os.Getenv("SCIMBRIDGE_BENCH_LOAD_USERS")); err == nil && v > 0 {
		n = v
	}
	h := newHarness(b, Spec{Groups: []string{"cn=app," + groups}})
	dn := func(i int) string { return fmt.Sprintf("uid=u%07d,%s", i, people) }
	for start := 0; start < n; start += 10_000 {
		require.NoError(b, h.db.Update(func(tx *state.Tx) error {
			ids, err := tx.IDMap(directoryIDMap)
			if err != nil {
				return err
			}
			for i := start; i < min(start+10_000, n); i++ {
				id := fmt.Sprintf("%08x-d9cb-469f-a165-70867728950e", i)
				if err := ids.Put(id, state.IDEntry{DN: dn(i), Kind: string(capture.ObjectUser), Hash: "47b712bffd5d467d"}); err != nil {
					return err
				}
			}
			return nil
		}))
	}
	h.dir.put(group("app", "u0000001"))
	b.Run("repair", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			require.NoError(b, h.db.Update(func(tx *state.Tx) error {
				dns, err := userDNBucket(tx)
				if err != nil {
					return err
				}
				for i := range n {
					if err := dns.Delete([]byte(normDN(dn(i)))); err != nil {
						return err
					}
				}
				return nil
			}))
			b.StartTimer()
			require.NoError(b, h.e.Load(b.Context()))
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/user")
	})
	b.Run("check", func(b *testing.B) {
		for b.Loop() {
			require.NoError(b, h.e.Load(b.Context()))
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/user")
	})
}
