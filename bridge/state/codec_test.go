package state

import (
	"encoding/json"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
)

func TestRecordCodecRoundTrips(t *testing.T) {
	now := time.Date(2026, 12, 3, 16, 4, 5, 123456789, time.UTC)
	for _, e := range []IDEntry{
		{},
		{DN: "uid=ada,ou=people,dc=example,dc=org", Kind: "user", Hash: "01a36b12", Updated: now},
		{DN: "cn=é ü,ou=x", Kind: "group", Extra: map[string]string{"target_id": "42", "a:emails[type eq \"work\"].value": "a@b", "": "", "state": ""}, Updated: now},
	} {
		got, err := decodeIDEntry(encodeIDEntry(e))
		require.NoError(t, err)
		require.Empty(t, cmp.Diff(e, got), "%+v", e)
	}
	for _, it := range []Item{
		{Key: "k"},
		{
			Key: "8f99c5b0", Seq: 1 << 40, Gen: 7, Attempts: 3, NotBefore: now.Add(time.Minute), LastError: "503: busy",
			Created: now, Updated: now.Add(time.Second), Payload: json.RawMessage(`{"kind":"user","entry":{"cn":["A"]}}`),
		},
	} {
		got, err := decodeItem(encodeItem(it))
		require.NoError(t, err)
		require.Empty(t, cmp.Diff(it, got), "%+v", it)
	}
}

// TestExtraKeysAreOneByte: the keys of the default mappings' records take one byte, others
// are spelled out; the table has no duplicates (a second index would never be written).
func TestExtraKeysAreOneByte(t *testing.T) {
	base := len(encodeIDEntry(IDEntry{Extra: map[string]string{}}))
	require.Len(t, encodeIDEntry(IDEntry{Extra: map[string]string{`a:emails[type eq "work"].value`: "", "target_id": ""}}), base+2*2)
	require.Len(t, encodeIDEntry(IDEntry{Extra: map[string]string{"a:custom": ""}}), base+1+1+len("a:custom")+1)
	seen := map[string]bool{}
	for _, k := range extraKeys {
		require.False(t, seen[k], k)
		seen[k] = true
	}
	_, err := decodeIDEntry([]byte{recordFormat, 0, 0, 0, 0, 1, byte(len(extraKeys) + 1), 0})
	require.ErrorContains(t, err, "unknown key code")
}

// TestRecordCodecRefusesDamage: a cut, a foreign format (a version-1 JSON value) or trailing
// bytes are errors, never a half-read record.
func TestRecordCodecRefusesDamage(t *testing.T) {
	full := encodeIDEntry(IDEntry{DN: "uid=a", Kind: "user", Extra: map[string]string{"k": "v"}})
	for i := range len(full) {
		_, err := decodeIDEntry(full[:i])
		require.Error(t, err, "cut at %d", i)
	}
	_, err := decodeIDEntry(append(full, 0))
	require.ErrorContains(t, err, "1 bytes after the record")
	_, err = decodeIDEntry([]byte(`{"dn":"uid=a"}`))
	require.ErrorContains(t, err, "unknown record format 0x7b")
	// A count of pairs larger than what follows is refused before anything is allocated.
	huge := append([]byte{recordFormat, 0, 0, 0, 0}, 0xff, 0xff, 0xff, 0xff, 0x0f)
	_, err = decodeIDEntry(huge)
	require.ErrorIs(t, err, ErrTruncated)

	item := encodeItem(Item{Key: "k", Seq: 1, Gen: 2, LastError: "x"})
	for i := range len(item) {
		_, err := decodeItem(item[:i])
		require.Error(t, err, "cut at %d", i)
	}
}

// TestVersion1FileIsMigrated: a file written by the JSON layout (version 1) opens with its
// id-map records and outbox items intact, rewritten in the binary form; the dead letters,
// which stay JSON, too.
func TestVersion1FileIsMigrated(t *testing.T) {
	dir := t.TempDir()
	raw, err := bolt.Open(filepath.Join(dir, FileName), 0o600, &bolt.Options{Timeout: time.Second})
	require.NoError(t, err)
	at := time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC)
	rec := IDEntry{
		DN: "uid=ada,ou=people,dc=example,dc=org", Kind: "user", Hash: "h1",
		Extra: map[string]string{"target_id": "t-1", "a:userName": "ada"}, Updated: at,
	}
	item := Item{
		Key: "id-1", Seq: 5, Gen: 9, Attempts: 2, NotBefore: at.Add(time.Hour), LastError: "429",
		Created: at, Updated: at, Payload: json.RawMessage(`{"kind":"user","dn":"uid=ada"}`),
	}
	dead := DeadLetter{Item: Item{Key: "id-2", Seq: 1, Gen: 1, Created: at, Updated: at, Payload: json.RawMessage(`{"kind":"user"}`)}, Error: "400", Failed: at}
	require.NoError(t, raw.Update(func(tx *bolt.Tx) error {
		meta, _ := tx.CreateBucket(bucketMeta)
		require.NoError(t, meta.Put(keyVersion, []byte(strconv.Itoa(1))))
		put := func(top, name, key string, v any) {
			root, err := tx.CreateBucketIfNotExists([]byte(top))
			require.NoError(t, err)
			b, err := root.CreateBucketIfNotExists([]byte(name))
			require.NoError(t, err)
			js, err := json.Marshal(v)
			require.NoError(t, err)
			require.NoError(t, b.Put([]byte(key), js))
		}
		put("idmaps", "provisioner/app", "id-1", rec)
		put("idmaps", "directory", "id-1", IDEntry{DN: rec.DN, Kind: "user", Hash: "h0", Updated: at})
		put("outbox", "app", "id-1", item)
		put("deadletters", "app", "id-2", dead)
		_, err := tx.CreateBucketIfNotExists(bucketCursors)
		return err
	}))
	require.NoError(t, raw.Close())

	db, err := Open(dir)
	require.NoError(t, err)
	defer db.Close()
	v, err := db.SchemaVersion()
	require.NoError(t, err)
	require.Equal(t, SchemaVersion, v)
	require.Equal(t, 1, db.MigratedFrom(), "for the start's log")
	require.NoError(t, db.View(func(tx *Tx) error {
		ids, err := tx.IDMap("provisioner/app")
		require.NoError(t, err)
		got, ok, err := ids.Get("id-1")
		require.NoError(t, err)
		require.True(t, ok)
		require.Empty(t, cmp.Diff(rec, got))
		dir, err := tx.IDMap("directory")
		require.NoError(t, err)
		d, ok, err := dir.Get("id-1")
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, "h0", d.Hash)
		ob, err := tx.Outbox("app")
		require.NoError(t, err)
		it, ok, err := ob.Get("id-1")
		require.NoError(t, err)
		require.True(t, ok)
		require.Empty(t, cmp.Diff(item, it))
		dls, err := tx.DeadLetters("app")
		require.NoError(t, err)
		dl, ok, err := dls.Get("id-2")
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, "400", dl.Error)
		return nil
	}))
}

// TestVersion1MigrationRefusesDamage: a version-1 record that does not decode stops the
// start with its name, and the file stays at version 1.
func TestVersion1MigrationRefusesDamage(t *testing.T) {
	dir := t.TempDir()
	raw, err := bolt.Open(filepath.Join(dir, FileName), 0o600, &bolt.Options{Timeout: time.Second})
	require.NoError(t, err)
	require.NoError(t, raw.Update(func(tx *bolt.Tx) error {
		meta, _ := tx.CreateBucket(bucketMeta)
		require.NoError(t, meta.Put(keyVersion, []byte("1")))
		root, _ := tx.CreateBucket([]byte("outbox"))
		b, _ := root.CreateBucket([]byte("app"))
		return b.Put([]byte("id-9"), []byte(`{"key":`))
	}))
	require.NoError(t, raw.Close())
	_, err = Open(dir)
	require.ErrorContains(t, err, `migrating from version 1: outbox "app": id-9`)
	raw, err = bolt.Open(filepath.Join(dir, FileName), 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: true})
	require.NoError(t, err)
	defer raw.Close()
	require.NoError(t, raw.View(func(tx *bolt.Tx) error {
		v, err := readVersion(tx)
		require.Equal(t, 1, v)
		return err
	}))
}
