package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// FileName is the state file's name inside the configured [state] dir.
const FileName = "state.db"

// SchemaVersion is the layout this binary writes. Open migrates older files forward and
// refuses newer ones.
const SchemaVersion = 3

// The outbound engine's index of the change reader's users by DN (schema version 3): in
// BucketMembership, the bucket BucketUserDNs maps a normalised DN to the user's id. It is
// derived from the "directory" id map, and the engine that keeps it (outbound's userdns.go)
// repairs it from that map at every start.
const (
	BucketMembership = "membership"
	BucketUserDNs    = "userdns"
)

// Errors callers branch on.
var (
	// ErrInUse means another process holds the state file (the daemon, usually): the file
	// is never opened by two processes at once.
	ErrInUse = errors.New("state file in use by another process")
	// ErrNewerSchema means the file was written by a newer scimbridge.
	ErrNewerSchema = errors.New("state file is newer than this scimbridge")
)

// Top-level buckets. Other files of this package add their own (the outbox); Tx.Bucket
// refuses the reserved names so nothing outside this file writes into them by accident.
var (
	bucketMeta    = []byte("meta")
	bucketCursors = []byte("cursors")
	bucketIDMaps  = []byte("idmaps")
	keyVersion    = []byte("schema_version")
	keyCreated    = []byte("created")
)

var reserved = map[string]bool{"meta": true, "cursors": true, "idmaps": true}

// migrations[i] moves a file from schema version i to i+1, inside one transaction.
var migrations = []func(tx *bolt.Tx) error{
	// 0 → 1: the base layout.
	func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketCursors, bucketIDMaps} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		if meta.Get(keyCreated) == nil {
			return meta.Put(keyCreated, []byte(time.Now().UTC().Format(time.RFC3339)))
		}
		return nil
	},
	// 1 → 2: id-map records and outbox items in the binary form (codec.go).
	migrateRecords,
	// 2 → 3: the outbound engine's DN index (BucketUserDNs), created empty. The engine fills
	// it from the id map when it starts (the DN normalisation is its own). The version
	// matters more than the bucket: a binary that does not keep the index up to date must
	// not write to a file that has one, and an older binary refuses a newer version.
	func(tx *bolt.Tx) error {
		m, err := tx.CreateBucketIfNotExists([]byte(BucketMembership))
		if err != nil {
			return err
		}
		_, err = m.CreateBucketIfNotExists([]byte(BucketUserDNs))
		return err
	},
}

// Options adjust Open.
type Options struct {
	// Timeout bounds the wait for the file lock. Defaults to 1s: a held file is reported
	// quickly instead of hanging (bbolt's own default waits forever).
	Timeout time.Duration
	// ReadOnly opens an existing file with a shared lock, for inspection and backups when no
	// daemon runs. It still cannot be opened while a writer holds the file.
	ReadOnly bool
	// ObserveWrite, when set, is told how long each write transaction held the file's write
	// lock (from the start of its function to the end of its commit): every other writer
	// waits that long.
	ObserveWrite func(time.Duration)
}

// DB is an open state file.
type DB struct {
	db       *bolt.DB
	path     string
	readOnly bool
	observe  func(time.Duration)
	// writing counts the write transactions open now (0 or 1: bbolt has one writer).
	writing atomic.Int32
	// writeSince is when the write transaction in progress took the write lock (UnixNano),
	// 0 when none is: the watchdog reports a lock held past its bound.
	writeSince atomic.Int64
	// migratedFrom is the schema version Open migrated the file from (0: none, or a new file).
	migratedFrom int
}

// MigratedFrom reports the schema version Open migrated the file from, for the start's log;
// 0 when it was already current or new.
func (d *DB) MigratedFrom() int { return d.migratedFrom }

// Open opens (creating it and dir if needed) the state file in dir for writing, migrating
// it to SchemaVersion.
func Open(dir string) (*DB, error) { return OpenWith(dir, Options{}) }

// OpenWith is Open with options.
func OpenWith(dir string, o Options) (*DB, error) {
	if o.Timeout <= 0 {
		o.Timeout = time.Second
	}
	path := filepath.Join(dir, FileName)
	if o.ReadOnly {
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("state: opening %s: %w", path, err)
		}
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state: creating %s: %w", dir, err)
	}
	// The free-page list is not written at every commit (NoFreelistSync): at 100,000 users
	// the outbox's churn leaves thousands of free pages, and writing their list made every
	// commit larger; it is rebuilt by a scan when the file opens (as etcd does), which takes
	// milliseconds. The hashmap free list finds runs of pages in constant time.
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout: o.Timeout, ReadOnly: o.ReadOnly,
		NoFreelistSync: true, FreelistType: bolt.FreelistMapType,
	})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("state file %s is in use by another process (is scimbridge serve running?): %w", path, ErrInUse)
	}
	if err != nil {
		return nil, fmt.Errorf("state: opening %s: %w", path, err)
	}
	d := &DB{db: bdb, path: path, readOnly: o.ReadOnly, observe: o.ObserveWrite}
	if err := d.prepare(); err != nil {
		_ = bdb.Close()
		return nil, err
	}
	return d, nil
}

func readVersion(tx *bolt.Tx) (int, error) {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		return 0, nil
	}
	v := meta.Get(keyVersion)
	if v == nil {
		return 0, nil
	}
	n, err := strconv.Atoi(string(v))
	if err != nil || n < 0 {
		return 0, fmt.Errorf("bad schema version %q", v)
	}
	return n, nil
}

// prepare checks the schema version and migrates forward (writable files only).
func (d *DB) prepare() error {
	var version int
	err := d.db.View(func(tx *bolt.Tx) error {
		var err error
		version, err = readVersion(tx)
		return err
	})
	if err != nil {
		return fmt.Errorf("state: %s: %w", d.path, err)
	}
	if version > SchemaVersion {
		return fmt.Errorf("state: %s has schema version %d but this scimbridge knows up to %d: upgrade scimbridge or restore a backup taken by this version: %w",
			d.path, version, SchemaVersion, ErrNewerSchema)
	}
	if version == SchemaVersion {
		return nil
	}
	if d.readOnly {
		if version == 0 {
			return nil // an empty file: nothing to read, nothing to migrate
		}
		return fmt.Errorf("state: %s has schema version %d: start scimbridge serve once to migrate it to %d", d.path, version, SchemaVersion)
	}
	err = d.db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		for v := version; v < SchemaVersion; v++ {
			if err := migrations[v](tx); err != nil {
				return fmt.Errorf("migrating from version %d: %w", v, err)
			}
		}
		return meta.Put(keyVersion, []byte(strconv.Itoa(SchemaVersion)))
	})
	if err != nil {
		return fmt.Errorf("state: %s: %w", d.path, err)
	}
	d.migratedFrom = version
	return nil
}

// Path is the state file's path.
func (d *DB) Path() string { return d.path }

// Close releases the file.
func (d *DB) Close() error { return d.db.Close() }

// Update runs fn in one read-write transaction: everything fn writes commits together, or,
// when fn returns an error, nothing does. The transaction holds the file's only write lock:
// fn must not wait for the network (no directory round trip) or for anything that may wait
// for another write transaction.
func (d *DB) Update(fn func(tx *Tx) error) error {
	var start time.Time
	var since int64
	err := d.db.Update(func(btx *bolt.Tx) error {
		start = time.Now()
		since = start.UnixNano()
		d.writeSince.Store(since)
		d.writing.Add(1)
		return fn(&Tx{tx: btx})
	})
	if !start.IsZero() {
		// Only this transaction's mark: the next writer may have taken the lock already.
		d.writeSince.CompareAndSwap(since, 0)
		d.writing.Add(-1)
		if d.observe != nil {
			d.observe(time.Since(start))
		}
	}
	return err
}

// WriteHeld returns how long the write transaction in progress has held the write lock at
// now (including its commit), or 0 when none is in progress.
func (d *DB) WriteHeld(now time.Time) time.Duration {
	since := d.writeSince.Load()
	if since == 0 {
		return 0
	}
	return now.Sub(time.Unix(0, since))
}

// Writing reports whether a write transaction is open now (for diagnostics and the tests
// that check nothing slow happens inside one).
func (d *DB) Writing() bool { return d.writing.Load() > 0 }

// View runs fn in a read-only transaction (a consistent snapshot).
func (d *DB) View(fn func(tx *Tx) error) error {
	return d.db.View(func(btx *bolt.Tx) error { return fn(&Tx{tx: btx}) })
}

// FileStats is how much of the disk the state file takes, and how much of that bbolt holds in
// free pages: it reuses them before it grows the file, and a file never shrinks by itself.
type FileStats struct {
	// Size is the file's size as bbolt uses it, in bytes.
	Size int64
	// Free is the bytes in free pages, pending ones (freed by a transaction a reader may
	// still see) included.
	Free int64
}

// FileStats reads the state file's size and free space.
func (d *DB) FileStats() (FileStats, error) {
	var (
		fs       FileStats
		pageSize int
	)
	err := d.db.View(func(tx *bolt.Tx) error {
		fs.Size = tx.Size()
		// Info reads the mapping without a lock of its own: only inside a transaction,
		// which holds off a writer's remap, is that not a data race.
		pageSize = d.db.Info().PageSize
		return nil
	})
	if err != nil {
		return FileStats{}, fmt.Errorf("state: %w", err)
	}
	st := d.db.Stats()
	fs.Free = int64(st.FreePageN+st.PendingPageN) * int64(pageSize)
	return fs, nil
}

// Backup writes a consistent copy of the whole file to w while the database stays usable
// (a read transaction; writers are not blocked).
func (d *DB) Backup(w io.Writer) (int64, error) {
	var n int64
	err := d.db.View(func(tx *bolt.Tx) error {
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	if err != nil {
		return n, fmt.Errorf("state: backup: %w", err)
	}
	return n, nil
}

// BackupFile writes a consistent copy to path (mode 0600), atomically: a temporary file in
// the same directory, synced and renamed.
func (d *DB) BackupFile(path string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".scimbridge-backup-*")
	if err != nil {
		return fmt.Errorf("state: backup: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("state: backup: %w", err)
	}
	if _, err := d.Backup(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("state: backup: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("state: backup: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("state: backup: %w", err)
	}
	return nil
}

// SchemaVersion reports the file's schema version.
func (d *DB) SchemaVersion() (int, error) {
	var v int
	err := d.db.View(func(tx *bolt.Tx) error {
		var err error
		v, err = readVersion(tx)
		return err
	})
	return v, err
}

// Tx is one transaction. Its methods are valid only inside the Update or View callback that
// received it. In a View, writes fail with bbolt's read-only error.
type Tx struct {
	tx *bolt.Tx
	// appends counts, per id map written in this transaction, the keys it wrote and how
	// many of them sort after the map's last key before the transaction (fillFor).
	appends map[string]*appendCount
}

// Writable reports whether tx is an Update.
func (t *Tx) Writable() bool { return t.tx.Writable() }

// Cursor is a stored change-log position.
type Cursor struct {
	// Value is the source's opaque cursor.
	Value string `json:"cursor"`
	// Updated is when it was last advanced.
	Updated time.Time `json:"updated"`
}

// Cursor returns the cursor stored under name; ok is false when there is none.
func (t *Tx) Cursor(name string) (c Cursor, ok bool, err error) {
	b := t.tx.Bucket(bucketCursors)
	if b == nil {
		return Cursor{}, false, nil
	}
	v := b.Get([]byte(name))
	if v == nil {
		return Cursor{}, false, nil
	}
	if err := json.Unmarshal(v, &c); err != nil {
		return Cursor{}, false, fmt.Errorf("state: cursor %q: %w", name, err)
	}
	return c, true, nil
}

// SetCursor stores value as the cursor under name.
func (t *Tx) SetCursor(name, value string) error {
	b := t.tx.Bucket(bucketCursors)
	if b == nil {
		return fmt.Errorf("state: cursor %q: %w", name, berrors.ErrTxNotWritable)
	}
	v, err := json.Marshal(Cursor{Value: value, Updated: time.Now().UTC()})
	if err != nil {
		return err
	}
	if err := b.Put([]byte(name), v); err != nil {
		return fmt.Errorf("state: cursor %q: %w", name, err)
	}
	return nil
}

// DeleteCursor forgets the cursor under name (the next run starts with a reconcile).
func (t *Tx) DeleteCursor(name string) error {
	b := t.tx.Bucket(bucketCursors)
	if b == nil {
		return nil
	}
	if err := b.Delete([]byte(name)); err != nil {
		return fmt.Errorf("state: cursor %q: %w", name, err)
	}
	return nil
}

// Cursors lists every stored cursor by name.
func (t *Tx) Cursors() (map[string]Cursor, error) {
	out := map[string]Cursor{}
	b := t.tx.Bucket(bucketCursors)
	if b == nil {
		return out, nil
	}
	err := b.ForEach(func(k, v []byte) error {
		var c Cursor
		if err := json.Unmarshal(v, &c); err != nil {
			return fmt.Errorf("state: cursor %q: %w", k, err)
		}
		out[string(k)] = c
		return nil
	})
	return out, err
}

// IDEntry is what an id map knows about one stable id. It is stored in the binary form of
// codec.go; the JSON tags are for status and inspection output.
type IDEntry struct {
	// DN is the entry's DN when last seen.
	DN string `json:"dn"`
	// Kind is what the entry is to its owner ("user", "group").
	Kind string `json:"kind,omitempty"`
	// Hash is a digest of the entry's content when last seen (or last pushed).
	Hash string `json:"hash,omitempty"`
	// Extra holds owner-specific fields (a target's id for the resource, a digest per pushed
	// attribute).
	Extra map[string]string `json:"extra,omitempty"`
	// Updated is when the record was last written.
	Updated time.Time `json:"updated"`
}

// IDMap maps stable ids to IDEntry records. Each owner has its own: the change reader's
// view of the directory ("directory"), and one per provisioner.
type IDMap struct {
	b    *bolt.Bucket
	name string
	tx   *Tx
}

// appendCount is what fillFor decides from.
type appendCount struct {
	last          []byte // the map's last key when the transaction first wrote it
	ahead, writes int
}

// fillFor returns how full bbolt should fill the pages it splits in a map written as c
// counted. When most of a transaction's writes go past the map's last key (an initial sync:
// a reconcile pass's enumeration, or the deliveries that follow it, over entries created
// together, as by a bulk import: OpenLDAP's entryUUIDs are time-based and begin with the
// clock's low 32 bits, which wrap every 7 minutes, so entries made within minutes of each
// other sort in creation order), 90%: bbolt's default of half leaves every page such a run
// fills half empty for good, and the file and the memory it is mapped into grow by as much
// (BenchmarkOutbound, 100k users with slapadd's own entryUUIDs: the directory's map took
// 7,142 pages at half, 3,847 with this; a provisioner's, written in the order of delivery,
// 11,178 and 8,469). Otherwise bbolt's default: writes in random order (a directory whose
// users were created over months, Active Directory's objectGUIDs, updates; BenchmarkOutbound
// seeds random entryUUIDs and its maps end 67% full) fill pages worse at 90%
// (TestIDMapFillFollowsTheWrites, 20,000 ids: ascending 88% full with this, 49% at half;
// random 68% with this, 40% at 90%).
func fillFor(c *appendCount) float64 {
	if c.writes > 0 && 2*c.ahead >= c.writes {
		return 0.9
	}
	return bolt.DefaultFillPercent
}

// IDMap returns the id map called name, creating it in a writable transaction. In a View of
// a map never written, it is empty.
func (t *Tx) IDMap(name string) (*IDMap, error) {
	root := t.tx.Bucket(bucketIDMaps)
	if root == nil {
		return &IDMap{name: name}, nil
	}
	b := root.Bucket([]byte(name))
	if b == nil && t.tx.Writable() {
		var err error
		if b, err = root.CreateBucket([]byte(name)); err != nil {
			return nil, fmt.Errorf("state: id map %q: %w", name, err)
		}
	}
	return &IDMap{b: b, name: name, tx: t}, nil
}

// Get returns the record of id; ok is false when the map has none.
func (m *IDMap) Get(id string) (e IDEntry, ok bool, err error) {
	if m.b == nil {
		return IDEntry{}, false, nil
	}
	v := m.b.Get([]byte(id))
	if v == nil {
		return IDEntry{}, false, nil
	}
	e, err = decodeIDEntry(v)
	if err != nil {
		return IDEntry{}, false, fmt.Errorf("state: id map %q: %s: %w", m.name, id, err)
	}
	return e, true, nil
}

// Put stores the record of id, stamping Updated.
func (m *IDMap) Put(id string, e IDEntry) error {
	if m.b == nil {
		return fmt.Errorf("state: id map %q: %w", m.name, berrors.ErrTxNotWritable)
	}
	e.Updated = time.Now().UTC()
	m.countWrite(id)
	if err := m.b.Put([]byte(id), encodeIDEntry(e)); err != nil {
		return fmt.Errorf("state: id map %q: %w", m.name, err)
	}
	return nil
}

// countWrite notes a write of id for fillFor, and sets the bucket's fill for this
// transaction's commit accordingly.
func (m *IDMap) countWrite(id string) {
	if m.tx != nil {
		m.tx.countWrite("idmap/"+m.name, m.b, []byte(id))
	}
}

// countWrite notes a write of key to b (called name in this transaction) for fillFor, and
// sets b's fill for this transaction's commit accordingly.
func (t *Tx) countWrite(name string, b *bolt.Bucket, key []byte) {
	if t.appends == nil {
		t.appends = map[string]*appendCount{}
	}
	c := t.appends[name]
	if c == nil {
		last, _ := b.Cursor().Last()
		c = &appendCount{last: append([]byte(nil), last...)}
		t.appends[name] = c
	}
	c.writes++
	if string(key) > string(c.last) {
		c.ahead++
	}
	b.FillPercent = fillFor(c)
}

// Delete removes the record of id (a no-op when there is none).
func (m *IDMap) Delete(id string) error {
	if m.b == nil {
		return nil
	}
	if err := m.b.Delete([]byte(id)); err != nil {
		return fmt.Errorf("state: id map %q: %w", m.name, err)
	}
	return nil
}

// ForEach calls fn for every record in id order; fn's error stops it. fn must not change
// the map (collect, then change).
func (m *IDMap) ForEach(fn func(id string, e IDEntry) error) error {
	if m.b == nil {
		return nil
	}
	return m.b.ForEach(func(k, v []byte) error {
		e, err := decodeIDEntry(v)
		if err != nil {
			return fmt.Errorf("state: id map %q: %s: %w", m.name, k, err)
		}
		return fn(string(k), e)
	})
}

// ForEachFrom calls fn for every record from id from (inclusive; "" = the first) in id
// order, until fn returns false or an error. fn must not change the map.
func (m *IDMap) ForEachFrom(from string, fn func(id string, e IDEntry) (bool, error)) error {
	if m.b == nil {
		return nil
	}
	c := m.b.Cursor()
	var k, v []byte
	if from == "" {
		k, v = c.First()
	} else {
		k, v = c.Seek([]byte(from))
	}
	for ; k != nil; k, v = c.Next() {
		e, err := decodeIDEntry(v)
		if err != nil {
			return fmt.Errorf("state: id map %q: %s: %w", m.name, k, err)
		}
		more, err := fn(string(k), e)
		if err != nil || !more {
			return err
		}
	}
	return nil
}

// ForEachID calls fn for every id in order, without decoding the records (a reconcile's
// check for ids the directory no longer shows reads a million of them at once); fn's error
// stops it.
func (m *IDMap) ForEachID(fn func(id string) error) error {
	if m.b == nil {
		return nil
	}
	c := m.b.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		if err := fn(string(k)); err != nil {
			return err
		}
	}
	return nil
}

// Len is the number of records.
func (m *IDMap) Len() int {
	if m.b == nil {
		return 0
	}
	return m.b.Stats().KeyN
}

// Bucket is a generic key/value bucket for other parts of the package (the outbox, dead
// letters): ordered byte keys, nested buckets and sequences.
type Bucket struct {
	b    *bolt.Bucket
	tx   *Tx
	name string // the path, for PutCounted
}

// Bucket returns the bucket at path (top-level name first), creating missing levels in a
// writable transaction. In a View of a path never written, the bucket is empty. The
// package's own top-level names (meta, cursors, idmaps) are refused.
func (t *Tx) Bucket(path ...string) (*Bucket, error) {
	if len(path) == 0 {
		return nil, errors.New("state: bucket: empty path")
	}
	if reserved[path[0]] {
		return nil, fmt.Errorf("state: bucket %q is reserved", path[0])
	}
	var cur *bolt.Bucket
	for i, name := range path {
		var next *bolt.Bucket
		if i == 0 {
			next = t.tx.Bucket([]byte(name))
		} else {
			next = cur.Bucket([]byte(name))
		}
		if next == nil {
			if !t.tx.Writable() {
				return &Bucket{}, nil
			}
			var err error
			if i == 0 {
				next, err = t.tx.CreateBucket([]byte(name))
			} else {
				next, err = cur.CreateBucket([]byte(name))
			}
			if err != nil {
				return nil, fmt.Errorf("state: bucket %v: %w", path[:i+1], err)
			}
		}
		cur = next
	}
	return &Bucket{b: cur, tx: t, name: strings.Join(path, "/")}, nil
}

// Get returns a copy of the value at key, or nil.
func (b *Bucket) Get(key []byte) []byte {
	if b.b == nil {
		return nil
	}
	v := b.b.Get(key)
	if v == nil {
		return nil
	}
	return append([]byte(nil), v...)
}

// Put stores value at key.
func (b *Bucket) Put(key, value []byte) error {
	if b.b == nil {
		return berrors.ErrTxNotWritable
	}
	return b.b.Put(key, value)
}

// PutCounted is Put for a bucket written like an id map (an index of one): the pages the
// transaction splits are filled as fillFor decides from its writes, 90% when most go past
// the bucket's last key (an initial sync over entries created in order), else bbolt's half.
func (b *Bucket) PutCounted(key, value []byte) error {
	if b.b == nil {
		return berrors.ErrTxNotWritable
	}
	b.tx.countWrite("bucket/"+b.name, b.b, key)
	return b.b.Put(key, value)
}

// Delete removes key.
func (b *Bucket) Delete(key []byte) error {
	if b.b == nil {
		return nil
	}
	return b.b.Delete(key)
}

// GetJSON decodes the value at key into v; ok is false when there is none.
func (b *Bucket) GetJSON(key []byte, v any) (bool, error) {
	raw := b.Get(key)
	if raw == nil {
		return false, nil
	}
	return true, json.Unmarshal(raw, v)
}

// PutJSON stores v encoded as JSON at key.
func (b *Bucket) PutJSON(key []byte, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(key, raw)
}

// NextSequence returns the bucket's next sequence number (for ordered keys such as outbox
// items).
func (b *Bucket) NextSequence() (uint64, error) {
	if b.b == nil {
		return 0, berrors.ErrTxNotWritable
	}
	return b.b.NextSequence()
}

// Scan calls fn for every key at or after start ("" = the first), in key order, until fn
// returns false or an error. Values are valid only during the call. Changing the bucket
// inside fn is not allowed: collect the keys, then change.
func (b *Bucket) Scan(start []byte, fn func(k, v []byte) (bool, error)) error {
	if b.b == nil {
		return nil
	}
	c := b.b.Cursor()
	var k, v []byte
	if len(start) == 0 {
		k, v = c.First()
	} else {
		k, v = c.Seek(start)
	}
	for ; k != nil; k, v = c.Next() {
		more, err := fn(k, v)
		if err != nil || !more {
			return err
		}
	}
	return nil
}

// Len is the number of keys (nested buckets included).
func (b *Bucket) Len() int {
	if b.b == nil {
		return 0
	}
	return b.b.Stats().KeyN
}
