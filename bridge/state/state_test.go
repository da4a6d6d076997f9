package state

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
)

func TestReopenKeepsEverything(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	db, err := Open(dir)
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *Tx) error {
		require.NoError(t, tx.SetCursor("changes", "accesslog:20240101000000.000001Z:abc:"))
		ids, err := tx.IDMap("directory")
		require.NoError(t, err)
		require.NoError(t, ids.Put("id-1", IDEntry{DN: "uid=ada,ou=people,dc=example,dc=org", Kind: "user", Hash: "h1", Extra: map[string]string{"target_id": "t-1"}}))
		require.NoError(t, ids.Put("id-2", IDEntry{DN: "cn=team,ou=groups,dc=example,dc=org", Kind: "group"}))
		out, err := tx.Bucket("outbox", "okta")
		require.NoError(t, err)
		seq, err := out.NextSequence()
		require.NoError(t, err)
		return out.PutJSON([]byte(strconv.FormatUint(seq, 10)), map[string]string{"op": "create"})
	}))
	require.NoError(t, db.Close())
	info, err := os.Stat(filepath.Join(dir, FileName))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), info.Mode().Perm())

	db, err = Open(dir)
	require.NoError(t, err)
	defer db.Close()
	v, err := db.SchemaVersion()
	require.NoError(t, err)
	require.Equal(t, SchemaVersion, v)
	require.NoError(t, db.View(func(tx *Tx) error {
		c, ok, err := tx.Cursor("changes")
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, "accesslog:20240101000000.000001Z:abc:", c.Value)
		require.WithinDuration(t, time.Now(), c.Updated, time.Minute)
		_, ok, err = tx.Cursor("other")
		require.NoError(t, err)
		require.False(t, ok)
		ids, err := tx.IDMap("directory")
		require.NoError(t, err)
		require.Equal(t, 2, ids.Len())
		e, ok, err := ids.Get("id-1")
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, "uid=ada,ou=people,dc=example,dc=org", e.DN)
		require.Equal(t, "user", e.Kind)
		require.Equal(t, "h1", e.Hash)
		require.Equal(t, map[string]string{"target_id": "t-1"}, e.Extra)
		var seen []string
		require.NoError(t, ids.ForEach(func(id string, _ IDEntry) error { seen = append(seen, id); return nil }))
		require.Equal(t, []string{"id-1", "id-2"}, seen)
		seen = nil
		require.NoError(t, ids.ForEachID(func(id string) error { seen = append(seen, id); return nil }))
		require.Equal(t, []string{"id-1", "id-2"}, seen)
		out, err := tx.Bucket("outbox", "okta")
		require.NoError(t, err)
		var item map[string]string
		ok, err = out.GetJSON([]byte("1"), &item)
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, "create", item["op"])
		// A View never creates anything.
		empty, err := tx.Bucket("nothing", "here")
		require.NoError(t, err)
		require.Nil(t, empty.Get([]byte("k")))
		require.Error(t, empty.Put([]byte("k"), []byte("v")))
		return nil
	}))
}

func TestUpdateIsAllOrNothing(t *testing.T) {
	db, err := Open(t.TempDir())
	require.NoError(t, err)
	defer db.Close()
	boom := errors.New("sink failed")
	err = db.Update(func(tx *Tx) error {
		require.NoError(t, tx.SetCursor("changes", "c2"))
		ids, err := tx.IDMap("directory")
		require.NoError(t, err)
		require.NoError(t, ids.Put("x", IDEntry{DN: "uid=x"}))
		return boom
	})
	require.ErrorIs(t, err, boom)
	require.NoError(t, db.View(func(tx *Tx) error {
		_, ok, err := tx.Cursor("changes")
		require.NoError(t, err)
		require.False(t, ok, "the cursor did not advance without its work")
		ids, err := tx.IDMap("directory")
		require.NoError(t, err)
		require.Zero(t, ids.Len())
		return nil
	}))
}

func TestSecondOpenFailsFastWithAClearError(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir)
	require.NoError(t, err)
	defer db.Close()

	start := time.Now()
	_, err = Open(dir)
	require.ErrorIs(t, err, ErrInUse)
	require.Contains(t, err.Error(), "state file "+filepath.Join(dir, FileName)+" is in use by another process (is scimbridge serve running?)")
	require.Less(t, time.Since(start), 3*time.Second, "fails fast instead of waiting for the lock")

	_, err = OpenWith(dir, Options{ReadOnly: true, Timeout: 100 * time.Millisecond})
	require.ErrorIs(t, err, ErrInUse, "a reader cannot share the file with the daemon either")
}

func TestNewerSchemaIsRefused(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir)
	require.NoError(t, err)
	require.NoError(t, db.Close())
	raw, err := bolt.Open(filepath.Join(dir, FileName), 0o600, &bolt.Options{Timeout: time.Second})
	require.NoError(t, err)
	require.NoError(t, raw.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keyVersion, []byte(strconv.Itoa(SchemaVersion+1)))
	}))
	require.NoError(t, raw.Close())

	_, err = Open(dir)
	require.ErrorIs(t, err, ErrNewerSchema)
	require.Contains(t, err.Error(), "upgrade scimbridge")
	_, err = OpenWith(dir, Options{ReadOnly: true})
	require.ErrorIs(t, err, ErrNewerSchema)
}

func TestOldFileIsMigrated(t *testing.T) {
	dir := t.TempDir()
	// A version-0 file: no meta bucket at all.
	raw, err := bolt.Open(filepath.Join(dir, FileName), 0o600, &bolt.Options{Timeout: time.Second})
	require.NoError(t, err)
	require.NoError(t, raw.Close())
	db, err := Open(dir)
	require.NoError(t, err)
	defer db.Close()
	v, err := db.SchemaVersion()
	require.NoError(t, err)
	require.Equal(t, SchemaVersion, v)
	require.NoError(t, db.Update(func(tx *Tx) error { return tx.SetCursor("changes", "x") }))
}

func TestBackupIsOpenable(t *testing.T) {
	db, err := Open(t.TempDir())
	require.NoError(t, err)
	defer db.Close()
	require.NoError(t, db.Update(func(tx *Tx) error {
		ids, err := tx.IDMap("directory")
		require.NoError(t, err)
		for i := range 500 {
			require.NoError(t, ids.Put(strconv.Itoa(i), IDEntry{DN: "uid=u" + strconv.Itoa(i)}))
		}
		return tx.SetCursor("changes", "c1")
	}))
	var buf bytes.Buffer
	n, err := db.Backup(&buf)
	require.NoError(t, err)
	require.Equal(t, int64(buf.Len()), n)

	// The file copy is taken while the database stays open and writable.
	out := filepath.Join(t.TempDir(), "copy")
	require.NoError(t, os.MkdirAll(out, 0o700))
	require.NoError(t, db.BackupFile(filepath.Join(out, FileName)))
	require.NoError(t, db.Update(func(tx *Tx) error { return tx.SetCursor("changes", "c2") }))

	cp, err := OpenWith(out, Options{ReadOnly: true})
	require.NoError(t, err)
	defer cp.Close()
	require.NoError(t, cp.View(func(tx *Tx) error {
		c, ok, err := tx.Cursor("changes")
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, "c1", c.Value, "the copy is the state when it was taken")
		ids, err := tx.IDMap("directory")
		require.NoError(t, err)
		require.Equal(t, 500, ids.Len())
		return nil
	}))
}

func TestReservedBucketsAndMissingFiles(t *testing.T) {
	dir := t.TempDir()
	_, err := OpenWith(dir, Options{ReadOnly: true})
	require.ErrorIs(t, err, os.ErrNotExist, "a read-only open never creates the file")
	db, err := Open(dir)
	require.NoError(t, err)
	defer db.Close()
	require.NoError(t, db.Update(func(tx *Tx) error {
		for _, name := range []string{"meta", "cursors", "idmaps"} {
			_, err := tx.Bucket(name)
			require.Error(t, err, name)
		}
		_, err := tx.Bucket()
		require.Error(t, err)
		return nil
	}))
}

// TestWriteTransactionsAreObserved: Writing is true exactly while a write transaction is open
// (a read does not count), and ObserveWrite hears of each one, failed ones included.
func TestWriteTransactionsAreObserved(t *testing.T) {
	var seen []time.Duration
	db, err := OpenWith(t.TempDir(), Options{ObserveWrite: func(d time.Duration) { seen = append(seen, d) }})
	require.NoError(t, err)
	defer db.Close()
	require.False(t, db.Writing())
	require.NoError(t, db.View(func(*Tx) error {
		require.False(t, db.Writing(), "a read is not a write")
		return nil
	}))
	require.NoError(t, db.Update(func(tx *Tx) error {
		require.True(t, db.Writing())
		time.Sleep(5 * time.Millisecond)
		return tx.SetCursor("c", "1")
	}))
	require.False(t, db.Writing())
	require.Error(t, db.Update(func(*Tx) error { return errors.New("rolled back") }))
	require.False(t, db.Writing())
	require.Len(t, seen, 2)
	require.GreaterOrEqual(t, seen[0], 5*time.Millisecond)
}

// TestIDMapFillFollowsTheWrites: ids written in ascending order, a batch per transaction as
// an initial sync writes them, fill the map's pages to about 90% (bbolt's default would
// leave them half empty); ids written in random order fill them as well as the default does
// (90% would leave them about half empty too).
func TestIDMapFillFollowsTheWrites(t *testing.T) {
	fill := func(order []int, batch int) float64 {
		db, err := Open(t.TempDir())
		require.NoError(t, err)
		defer db.Close()
		for b := 0; b < len(order); b += batch {
			require.NoError(t, db.Update(func(tx *Tx) error {
				m, err := tx.IDMap("directory")
				if err != nil {
					return err
				}
				for _, k := range order[b:min(b+batch, len(order))] {
					id := fmt.Sprintf("%08x-8393-1041-95c8-f7cded181142", k)
					if err := m.Put(id, IDEntry{DN: "uid=u" + id[:8] + ",ou=people,dc=example,dc=org", Kind: "user", Hash: "47b712bffd5d467dc3fb1c59f305226f"}); err != nil {
						return err
					}
				}
				return nil
			}))
		}
		return leafFill(t, db, bucketIDMaps, "directory")
	}
	const n = 20000
	ascending := make([]int, n)
	for i := range ascending {
		ascending[i] = i
	}
	asc := fill(ascending, 500)
	random := rand.New(rand.NewPCG(1, 2)).Perm(n)
	rnd := fill(random, 50)
	t.Logf("ascending %.2f, random %.2f", asc, rnd)
	require.Greater(t, asc, 0.85)
	require.Greater(t, rnd, 0.62)
}

// TestVersion2FileGetsTheDNIndexBucket: a version-2 file keeps its records and gains the
// outbound engine's DN index bucket, empty (the engine fills it from the id map at start).
func TestVersion2FileGetsTheDNIndexBucket(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir)
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *Tx) error {
		ids, err := tx.IDMap("directory")
		require.NoError(t, err)
		return ids.Put("id-1", IDEntry{DN: "uid=a,dc=x", Kind: "user"})
	}))
	require.NoError(t, db.Close())
	raw, err := bolt.Open(filepath.Join(dir, FileName), 0o600, &bolt.Options{Timeout: time.Second})
	require.NoError(t, err)
	require.NoError(t, raw.Update(func(tx *bolt.Tx) error {
		require.NoError(t, tx.DeleteBucket([]byte(BucketMembership)))
		return tx.Bucket(bucketMeta).Put(keyVersion, []byte("2"))
	}))
	require.NoError(t, raw.Close())

	db, err = Open(dir)
	require.NoError(t, err)
	defer db.Close()
	require.Equal(t, 2, db.MigratedFrom())
	v, err := db.SchemaVersion()
	require.NoError(t, err)
	require.Equal(t, 3, v)
	require.NoError(t, db.View(func(tx *Tx) error {
		require.NotNil(t, tx.tx.Bucket([]byte(BucketMembership)).Bucket([]byte(BucketUserDNs)), "created by the migration")
		ids, err := tx.IDMap("directory")
		require.NoError(t, err)
		got, ok, err := ids.Get("id-1")
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, "uid=a,dc=x", got.DN)
		return nil
	}))
}

// TestIDMapForEachFrom: the walk starts at the given id (or the first) and stops when told.
func TestIDMapForEachFrom(t *testing.T) {
	db, err := Open(t.TempDir())
	require.NoError(t, err)
	defer db.Close()
	require.NoError(t, db.Update(func(tx *Tx) error {
		ids, err := tx.IDMap("m")
		require.NoError(t, err)
		for _, id := range []string{"a", "b", "c", "d"} {
			require.NoError(t, ids.Put(id, IDEntry{DN: "uid=" + id}))
		}
		return nil
	}))
	walk := func(from string, upTo int) (seen []string) {
		require.NoError(t, db.View(func(tx *Tx) error {
			ids, err := tx.IDMap("m")
			require.NoError(t, err)
			return ids.ForEachFrom(from, func(id string, e IDEntry) (bool, error) {
				require.Equal(t, "uid="+id, e.DN)
				seen = append(seen, id)
				return len(seen) < upTo, nil
			})
		}))
		return seen
	}
	require.Equal(t, []string{"a", "b", "c", "d"}, walk("", 10))
	require.Equal(t, []string{"b", "c"}, walk("b", 2))
	require.Equal(t, []string{"c", "d"}, walk("bb", 10), "from an id it does not hold: the next one")
}

// TestBucketPutCountedFillsLikeAnIDMap: keys written in order through PutCounted fill the
// pages as an id map's do (90%), where Put leaves bbolt's half; in random order both keep
// bbolt's default.
func TestBucketPutCountedFillsLikeAnIDMap(t *testing.T) {
	fill := func(order []int, counted bool) float64 {
		db, err := Open(t.TempDir())
		require.NoError(t, err)
		defer db.Close()
		for b := 0; b < len(order); b += 500 {
			require.NoError(t, db.Update(func(tx *Tx) error {
				bk, err := tx.Bucket("index", "dns")
				if err != nil {
					return err
				}
				for _, k := range order[b:min(b+500, len(order))] {
					key := []byte(fmt.Sprintf("uid=u%08d,ou=people,dc=example,dc=org", k))
					put := bk.Put
					if counted {
						put = bk.PutCounted
					}
					if err := put(key, []byte("0f8fad5b-d9cb-469f-a165-70867728950e")); err != nil {
						return err
					}
				}
				return nil
			}))
		}
		return leafFill(t, db, []byte("index"), "dns")
	}
	ascending := make([]int, 20000)
	for i := range ascending {
		ascending[i] = i
	}
	counted, plain := fill(ascending, true), fill(ascending, false)
	t.Logf("ascending: counted %.2f, plain %.2f", counted, plain)
	require.Greater(t, counted, 0.85)
	require.Less(t, plain, 0.6)
	random := rand.New(rand.NewPCG(1, 2)).Perm(len(ascending))
	require.InDelta(t, fill(random, false), fill(random, true), 0.02, "random order: bbolt's default either way")
}

// leafFill is how full the leaf pages of the bucket top/name are.
func leafFill(t *testing.T, db *DB, top []byte, name string) float64 {
	t.Helper()
	var s bolt.BucketStats
	require.NoError(t, db.View(func(tx *Tx) error {
		s = tx.tx.Bucket(top).Bucket([]byte(name)).Stats()
		return nil
	}))
	return float64(s.LeafInuse) / float64(s.LeafPageN*4096)
}

// TestFileStats: the size is the file's, and what a transaction deleted shows as free space,
// which the next writes reuse instead of growing the file.
func TestFileStats(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	db, err := Open(dir)
	require.NoError(t, err)
	defer db.Close()
	require.NoError(t, putUsers(db, 0, 5000))
	full, err := db.FileStats()
	require.NoError(t, err)
	info, err := os.Stat(filepath.Join(dir, FileName))
	require.NoError(t, err)
	require.Positive(t, full.Size)
	require.LessOrEqual(t, full.Size, info.Size(), "bbolt uses at most the file")
	require.Greater(t, full.Size, int64(5000*60), "5,000 records of 60+ bytes")

	require.NoError(t, db.Update(func(tx *Tx) error {
		ids, err := tx.IDMap("directory")
		require.NoError(t, err)
		for i := range 5000 {
			require.NoError(t, ids.Delete(fmt.Sprintf("id-%06d", i)))
		}
		return nil
	}))
	emptied, err := db.FileStats()
	require.NoError(t, err)
	require.Greater(t, emptied.Free, full.Size/2, "the deleted records' pages are free")

	require.NoError(t, putUsers(db, 0, 5000))
	again, err := db.FileStats()
	require.NoError(t, err)
	require.Less(t, again.Free, emptied.Free, "writes reuse free pages")
	require.Less(t, again.Size, full.Size*3/2, "instead of growing the file")
}

// TestFileStatsWhileTheFileGrows: a scrape may read the stats while a writer grows (and so
// remaps) the file; under -race this fails if FileStats reads the mapping outside a
// transaction.
func TestFileStatsWhileTheFileGrows(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "state"))
	require.NoError(t, err)
	defer db.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 40 {
			if err := putUsers(db, i*500, (i+1)*500); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	var last FileStats
	for {
		select {
		case <-done:
			final, err := db.FileStats()
			require.NoError(t, err)
			require.GreaterOrEqual(t, final.Size, last.Size, "the file only grew")
			require.Greater(t, final.Size, int64(20000*60), "20,000 records of 60+ bytes")
			return
		default:
		}
		fs, err := db.FileStats()
		require.NoError(t, err)
		require.GreaterOrEqual(t, fs.Size, last.Size)
		last = fs
	}
}

// putUsers writes users from to to (exclusive) into the directory's id map in one transaction.
func putUsers(db *DB, from, to int) error {
	return db.Update(func(tx *Tx) error {
		ids, err := tx.IDMap("directory")
		if err != nil {
			return err
		}
		for i := from; i < to; i++ {
			if err := ids.Put(fmt.Sprintf("id-%06d", i), IDEntry{DN: fmt.Sprintf("uid=user%06d,ou=people,dc=example,dc=org", i), Kind: "user", Hash: "0123456789abcdef0123456789abcdef"}); err != nil {
				return err
			}
		}
		return nil
	})
}
