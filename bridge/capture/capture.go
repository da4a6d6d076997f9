package capture

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/scimbridge/scimbridge/bridge/idkeys"
	"github.com/scimbridge/scimbridge/bridge/state"
	"github.com/scimbridge/scimbridge/bridge/watchdog"
	"github.com/scimbridge/scimbridge/ldapstore"
	"github.com/scimbridge/scimbridge/mapping"
)

// Source is a change log the Reader follows. ldapstore's Accesslog, Timestamp, Changelog389
// and USN implement it.
type Source interface {
	// Name is the source's configuration name ("accesslog", "timestamp", …).
	Name() string
	// Head returns a cursor at the current end of the log. The Reader takes it before it
	// enumerates the directory for a reconcile, so nothing written meanwhile is missed.
	// Cancelling ctx aborts the read and returns an error.
	Head(ctx context.Context) (string, error)
	// Poll returns up to limit events after cursor ("" = from the oldest the log holds) and
	// the cursor to resume from. A cursor the log no longer covers gives an error wrapping
	// ldapstore.ErrCursorExpired. Cancelling ctx aborts the read and returns an error;
	// nothing is consumed, since only the caller stores cursors.
	Poll(ctx context.Context, cursor string, limit int) (ldapstore.Batch, error)
}

// Pusher is the optional ability of a Source to tell, between polls, that the log has new
// records (ldapstore's Accesslog, with a refreshAndPersist sync search). Watch calls wake for
// each and returns nil when ctx ends, or an error when the directory refuses or drops the
// stream. The Reader then polls at once; it keeps polling every PollInterval as well, and
// the cursor rules are those of Poll, so a record the stream misses is caught by a poll.
type Pusher interface {
	Watch(ctx context.Context, wake func()) error
}

// Directory is how the Reader reads entries. *ldapstore.Store implements it.
type Directory interface {
	// Walk streams the entries matching q; cancelling ctx stops it with an error.
	Walk(ctx context.Context, q ldapstore.Search, fn func(mapping.Entry) error) error
	// FindByID reads the entry with the stable id below q.Base and matching q.Filter;
	// ldapstore.ErrNotFound when there is none.
	FindByID(ctx context.Context, q ldapstore.Search, idAttr, id string) (mapping.Entry, error)
}

var (
	_ Directory = (*ldapstore.Store)(nil)
	_ Source    = (*ldapstore.Accesslog)(nil)
	_ Source    = (*ldapstore.Timestamp)(nil)
	_ Source    = (*ldapstore.Changelog389)(nil)
	_ Source    = (*ldapstore.USN)(nil)
)

// Object is what an entry is to the bridge.
type Object string

// The objects the bridge provisions.
const (
	ObjectUser  Object = "user"
	ObjectGroup Object = "group"
)

// Kind returns the SCIM resource kind of o.
func (o Object) Kind() mapping.Kind {
	if o == ObjectGroup {
		return mapping.KindGroup
	}
	return mapping.KindUser
}

// Scope says which entries are users and which are groups: the configured bases and
// filters, and the attribute holding the stable id.
type Scope struct {
	Users       ldapstore.Search
	Groups      ldapstore.Search
	IDAttribute string
	// Dialect is the directory's; it decides the default outbound mapping.
	Dialect ldapstore.Dialect
	// Attrs are read with every entry besides "*" and IDAttribute: operational attributes
	// the mappings need (389-DS's nsAccountLock).
	Attrs []string
}

// Change is one entry's change as the Reader hands it to the Sink: the entry re-read now,
// compared with what the directory id map knew.
type Change struct {
	// Kind is upsert (created or modified), rename (its DN changed; OldDN is the DN it had)
	// or delete (gone from the directory, or no longer in the users or groups scope).
	Kind   ldapstore.EventKind
	Object Object
	ID     string
	DN     string
	OldDN  string
	// Entry is the entry as read now, for upserts and renames; nil for deletes.
	Entry *mapping.Entry
	// Hash is a digest of Entry; equal to Prev.Hash when nothing the bridge reads changed.
	Hash string
	// Prev is the id map's record before this change; nil when the entry is new to it.
	Prev *state.IDEntry
	// Origin, Actor, Time and Position come from the last log event for the entry in the
	// batch; a reconcile's changes have OriginUnknown.
	Origin   ldapstore.Origin
	Actor    string
	Time     time.Time
	Position string
	// Reconcile is true for changes synthesised by a reconcile rather than read from the log.
	Reconcile bool
}

// Unchanged reports whether an upsert carries nothing new (the same content at the same DN):
// reconciles synthesise one for every entry, and the engine may skip these.
func (c Change) Unchanged() bool {
	return c.Kind == ldapstore.EventUpsert && c.Prev != nil && c.Prev.Hash == c.Hash && c.Prev.Kind == string(c.Object)
}

// Sink receives the Reader's changes in two steps, so that no directory round trip ever
// happens inside a state write transaction (which holds the file's only write lock) and no
// directory connection is taken while the Reader holds one:
//
//   - Prepare reads from the directory what Commit will need for a batch (the engine
//     evaluates provisioner filters). The Reader calls it before opening the transaction,
//     holding no directory connection. PrepareReconcile does the same once for a whole
//     reconcile, before the enumeration starts: the reconcile commits its batches while its
//     enumeration holds a connection, so it cannot read per batch.
//   - Commit runs inside the transaction that also advances the cursor and updates the id
//     map, with what the matching Prepare returned: what it writes through tx commits with
//     them, or, when it returns an error, nothing does and the batch is read again later. It
//     must not touch the directory.
//
// Cancelling ctx aborts a Prepare with an error.
type Sink interface {
	Prepare(ctx context.Context, batch []Change) (any, error)
	PrepareReconcile(ctx context.Context) (any, error)
	Commit(ctx context.Context, tx *state.Tx, batch []Change, prepared any) error
}

// Throttler is a Sink that paces a reconcile pass: the Reader calls Throttle after each batch
// of the enumeration is committed, and waits for it, so that the pass does not run far ahead
// of what the Sink does with its work (the outbound engine: a pass over 100,000 users would
// otherwise queue them all within seconds, and hold them in memory and in the state file until
// delivered). The enumeration holds a directory connection while it waits, so Throttle must
// give up when waiting does not help; it returns false when the Reader should stop asking
// for the rest of the pass.
type Throttler interface {
	Throttle(ctx context.Context) bool
}

// CommitFunc is a Sink that needs nothing from the directory: Commit calls it.
type CommitFunc func(ctx context.Context, tx *state.Tx, batch []Change) error

// Prepare reads nothing.
func (CommitFunc) Prepare(context.Context, []Change) (any, error) { return nil, nil }

// PrepareReconcile reads nothing.
func (CommitFunc) PrepareReconcile(context.Context) (any, error) { return nil, nil }

// Commit calls f.
func (f CommitFunc) Commit(ctx context.Context, tx *state.Tx, batch []Change, _ any) error {
	return f(ctx, tx, batch)
}

// Options are a Reader's dependencies and settings.
type Options struct {
	Source    Source
	Directory Directory
	State     *state.DB
	Scope     Scope
	// Sink receives the changes. Required.
	Sink   Sink
	Logger zerolog.Logger
	// PollInterval is the pause between polls once caught up. Defaults to 1s.
	PollInterval time.Duration
	// ReconcileInterval is how often a full reconcile runs. Defaults to 6h.
	ReconcileInterval time.Duration
	// BatchSize bounds the events per poll and the entries per reconcile transaction.
	// Defaults to 1000.
	BatchSize int
	// Registerer receives the Reader's metrics; nil registers none.
	Registerer prometheus.Registerer
	// CursorName is the state key of the cursor. Defaults to "changes".
	CursorName string
	// IDMapName is the id map holding the directory's view. Defaults to "directory".
	IDMapName string
}

// Reader follows the change log and keeps the directory id map.
type Reader struct {
	o       Options
	logger  zerolog.Logger
	metrics *metrics

	runMu sync.Mutex // one poll or reconcile at a time
	wake  chan struct{}

	mu    sync.Mutex
	stats Stats
}

// Stats is the Reader's state for `scimbridge status`.
type Stats struct {
	Source        string
	Cursor        string
	LastPoll      time.Time
	Lag           time.Duration
	Events        map[ldapstore.EventKind]uint64
	Reconciles    uint64
	LastReconcile time.Time
	LastError     string
}

const (
	defaultPollInterval      = time.Second
	defaultReconcileInterval = 6 * time.Hour
	defaultBatchSize         = 1000
	reconcileKey             = "last_reconcile"
	captureBucket            = "capture"
)

// New checks the options and builds a Reader; Run starts it.
func New(o Options) (*Reader, error) {
	var errs []error
	if o.Source == nil {
		errs = append(errs, errors.New("capture: Options.Source is required"))
	}
	if o.Directory == nil {
		errs = append(errs, errors.New("capture: Options.Directory is required"))
	}
	if o.State == nil {
		errs = append(errs, errors.New("capture: Options.State is required"))
	}
	if o.Sink == nil {
		errs = append(errs, errors.New("capture: Options.Sink is required"))
	}
	if o.Scope.IDAttribute == "" {
		errs = append(errs, errors.New("capture: Options.Scope.IDAttribute is required"))
	}
	if o.Scope.Users.Base == "" && o.Scope.Groups.Base == "" {
		errs = append(errs, errors.New("capture: Options.Scope needs a users or a groups base"))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if o.PollInterval <= 0 {
		o.PollInterval = defaultPollInterval
	}
	if o.ReconcileInterval <= 0 {
		o.ReconcileInterval = defaultReconcileInterval
	}
	if o.BatchSize <= 0 {
		o.BatchSize = defaultBatchSize
	}
	if o.CursorName == "" {
		o.CursorName = "changes"
	}
	if o.IDMapName == "" {
		o.IDMapName = "directory"
	}
	for _, q := range []*ldapstore.Search{&o.Scope.Users, &o.Scope.Groups} {
		q.Scope = ldapstore.ScopeSub
		q.Attrs = append([]string{"*", o.Scope.IDAttribute}, o.Scope.Attrs...)
		if q.Filter == "" {
			q.Filter = "(objectClass=*)"
		}
	}
	r := &Reader{o: o, wake: make(chan struct{}, 1), logger: o.Logger.With().Str("component", "capture").Str("source", o.Source.Name()).Logger()}
	r.stats.Source = o.Source.Name()
	r.stats.Events = map[ldapstore.EventKind]uint64{}
	r.metrics = newMetrics()
	if o.Registerer != nil {
		if err := r.metrics.register(o.Registerer); err != nil {
			return nil, fmt.Errorf("capture: registering metrics: %w", err)
		}
	}
	return r, nil
}

// Close unregisters the Reader's metrics, so a replacement can register its own.
func (r *Reader) Close() {
	if r.o.Registerer != nil {
		r.metrics.unregister(r.o.Registerer)
	}
}

// Stats returns a copy of the Reader's state.
func (r *Reader) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.stats
	s.Events = make(map[ldapstore.EventKind]uint64, len(r.stats.Events))
	for k, v := range r.stats.Events {
		s.Events[k] = v
	}
	return s
}

func (r *Reader) setError(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err == nil {
		r.stats.LastError = ""
		return
	}
	r.stats.LastError = err.Error()
}

// Run polls every PollInterval and reconciles every ReconcileInterval (and whenever the
// cursor is missing or the log no longer covers it) until ctx is cancelled, then returns
// nil. Failures are logged and retried at the next tick: an unreachable directory delays
// changes, it never loses or invents them.
func (r *Reader) Run(ctx context.Context) error {
	t := time.NewTicker(r.o.PollInterval)
	defer t.Stop()
	loop := watchdog.From(ctx).Loop("changes")
	defer loop.Stop()
	ctx = watchdog.WithLoop(ctx, loop)
	if p, ok := r.o.Source.(Pusher); ok {
		var wg sync.WaitGroup
		wg.Go(func() { r.push(ctx, p) })
		defer wg.Wait()
	}
	var lastErr string
	for {
		loop.Beat()
		_, err := r.Sync(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil && err.Error() != lastErr:
			r.logger.Warn().Err(err).Msg("change capture failed; retrying")
			lastErr = err.Error()
		case err == nil && lastErr != "":
			r.logger.Info().Msg("change capture recovered")
			lastErr = ""
		}
		loop.Wait() // until the next poll, also after a failure: waiting out an outage is not stuck
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-r.wake:
		}
	}
}

// Push stream retry delays: the stream is an optimisation, polling goes on meanwhile.
const (
	pushMinRetry = time.Second
	pushMaxRetry = 5 * time.Minute
)

// push keeps the source's push stream open until ctx ends, waking Run for every record it
// announces, and reopens it with backoff when the directory refuses or drops it.
func (r *Reader) push(ctx context.Context, p Pusher) {
	wake := func() {
		select {
		case r.wake <- struct{}{}:
		default: // a poll is due already
		}
	}
	delay := pushMinRetry
	var lastErr string
	for ctx.Err() == nil {
		start := time.Now()
		r.metrics.push.Set(1)
		err := p.Watch(ctx, wake)
		r.metrics.push.Set(0)
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) > pushMaxRetry {
			delay, lastErr = pushMinRetry, "" // it ran a good while: the failure is new
		}
		if err != nil && err.Error() != lastErr {
			r.logger.Info().Err(err).Dur("retry_in", delay).Msg("change log push stream unavailable; polling every poll_interval")
			lastErr = err.Error()
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		delay = min(delay*2, pushMaxRetry)
	}
}

// Sync brings the id map and the Sink up to date now: a reconcile when there is no cursor,
// when the log no longer covers it or when ReconcileInterval has passed, then polls until
// the log is drained. It returns the number of changes handed to the Sink.
func (r *Reader) Sync(ctx context.Context) (int, error) {
	watchdog.Wait(ctx) // behind another poll or reconcile, which beats its own loop
	r.runMu.Lock()
	watchdog.Beat(ctx)
	defer r.runMu.Unlock()
	n, err := r.sync(ctx)
	r.setError(err)
	if err != nil {
		r.metrics.errors.Inc()
	}
	return n, err
}

func (r *Reader) sync(ctx context.Context) (int, error) {
	var (
		cur    state.Cursor
		ok     bool
		lastRc time.Time
	)
	err := r.o.State.View(func(tx *state.Tx) error {
		var err error
		if cur, ok, err = tx.Cursor(r.o.CursorName); err != nil {
			return err
		}
		lastRc, err = lastReconcile(tx)
		return err
	})
	if err != nil {
		return 0, err
	}
	if !ok {
		r.logger.Info().Msg("no stored cursor: reconciling with the directory first")
		return r.reconcile(ctx, true)
	}
	total := 0
	if time.Since(lastRc) >= r.o.ReconcileInterval {
		n, err := r.reconcile(ctx, false)
		total += n
		if err != nil {
			return total, err
		}
	}
	cursor := cur.Value
	for {
		b, err := r.o.Source.Poll(ctx, cursor, r.o.BatchSize)
		if errors.Is(err, ldapstore.ErrCursorExpired) {
			r.logger.Warn().Err(err).Msg("the change log no longer covers the cursor: full reconcile")
			n, err := r.reconcile(ctx, true)
			return total + n, err
		}
		if err != nil {
			return total, err
		}
		n, err := r.apply(ctx, cursor, b)
		total += n
		if err != nil {
			return total, err
		}
		cursor = b.Cursor
		if !b.More {
			return total, nil
		}
	}
}

func lastReconcile(tx *state.Tx) (time.Time, error) {
	b, err := tx.Bucket(captureBucket)
	if err != nil {
		return time.Time{}, err
	}
	var t time.Time
	if _, err := b.GetJSON([]byte(reconcileKey), &t); err != nil {
		return time.Time{}, fmt.Errorf("capture: last reconcile: %w", err)
	}
	return t, nil
}

// found is an entry re-read by id.
type found struct {
	entry  *mapping.Entry
	object Object
}

// lookup re-reads the entry with id in the users and then the groups scope (the one the DN
// hint points at first). A nil entry means it is gone or out of scope.
func (r *Reader) lookup(ctx context.Context, id, dnHint string) (found, error) {
	return lookup(ctx, r.o.Directory, r.o.Scope, id, dnHint)
}

func lookup(ctx context.Context, dir Directory, sc Scope, id, dnHint string) (found, error) {
	type cand struct {
		q   ldapstore.Search
		obj Object
	}
	cands := []cand{{sc.Users, ObjectUser}, {sc.Groups, ObjectGroup}}
	if dnHint != "" && sc.Groups.Base != "" && ldapstore.DNUnder(dnHint, sc.Groups.Base) &&
		(sc.Users.Base == "" || !ldapstore.DNUnder(dnHint, sc.Users.Base)) {
		cands[0], cands[1] = cands[1], cands[0]
	}
	for _, c := range cands {
		if c.q.Base == "" {
			continue
		}
		e, err := dir.FindByID(ctx, c.q, sc.IDAttribute, id)
		if errors.Is(err, ldapstore.ErrNotFound) {
			continue
		}
		if err != nil {
			return found{}, err
		}
		return found{entry: &e, object: c.obj}, nil
	}
	return found{}, nil
}

// apply re-reads the entries a batch names and commits the changes, the id map and the new
// cursor in one transaction. cursorBefore guards against another writer of the cursor.
func (r *Reader) apply(ctx context.Context, cursorBefore string, b ldapstore.Batch) (int, error) {
	// One change per entry: the Sink works from the entry's current state, so the last
	// event names it and the earlier ones add nothing.
	last := map[string]int{}
	for i, ev := range b.Events {
		last[ev.ID] = i
	}
	order := make([]int, 0, len(last))
	for i, ev := range b.Events {
		if last[ev.ID] == i {
			order = append(order, i)
		}
	}
	reads := make(map[string]found, len(order))
	for _, i := range order {
		ev := b.Events[i]
		if ev.Kind == ldapstore.EventDelete {
			continue
		}
		f, err := r.lookup(ctx, ev.ID, ev.DN)
		if err != nil {
			return 0, err
		}
		reads[ev.ID] = f
	}
	// What the Sink needs from the directory is read now, outside the transaction: the
	// entries as re-read, in the shape of the changes they become.
	preview := make([]Change, 0, len(reads))
	for _, i := range order {
		ev := b.Events[i]
		if f := reads[ev.ID]; f.entry != nil {
			preview = append(preview, Change{Kind: ldapstore.EventUpsert, Object: f.object, ID: ev.ID, DN: f.entry.DN, Entry: f.entry})
		}
	}
	prepared, err := r.o.Sink.Prepare(ctx, preview)
	if err != nil {
		return 0, fmt.Errorf("capture: sink: %w", err)
	}
	var changes []Change
	err = r.o.State.Update(func(tx *state.Tx) error {
		cur, ok, err := tx.Cursor(r.o.CursorName)
		if err != nil {
			return err
		}
		if !ok || cur.Value != cursorBefore {
			return errors.New("capture: the stored cursor moved under this reader (two readers on one state file?)")
		}
		ids, err := tx.IDMap(r.o.IDMapName)
		if err != nil {
			return err
		}
		changes = changes[:0]
		for _, i := range order {
			ev := b.Events[i]
			ch, keep, err := r.change(ids, ev, reads[ev.ID])
			if err != nil {
				return err
			}
			if keep {
				changes = append(changes, ch)
			}
		}
		if len(changes) > 0 {
			if err := r.o.Sink.Commit(ctx, tx, changes, prepared); err != nil {
				return fmt.Errorf("capture: sink: %w", err)
			}
		}
		return tx.SetCursor(r.o.CursorName, b.Cursor)
	})
	if err != nil {
		return 0, err
	}
	r.observe(b, len(changes))
	return len(changes), nil
}

// change compares a re-read entry with the id map, updates the map and builds the Change.
// keep is false when the entry is neither known nor in scope.
func (r *Reader) change(ids *state.IDMap, ev ldapstore.Event, f found) (Change, bool, error) {
	prev, known, err := ids.Get(ev.ID)
	if err != nil {
		return Change{}, false, err
	}
	ch := Change{ID: ev.ID, Origin: ev.Origin, Actor: ev.Actor, Time: ev.Time, Position: ev.Position}
	if known {
		p := prev
		ch.Prev = &p
	}
	if f.entry == nil {
		if !known {
			return Change{}, false, nil
		}
		ch.Kind, ch.Object, ch.DN = ldapstore.EventDelete, Object(prev.Kind), prev.DN
		return ch, true, ids.Delete(ev.ID)
	}
	ch.Entry, ch.Object, ch.DN = f.entry, f.object, f.entry.DN
	ch.Hash = ldapstore.EntryHash(*f.entry)
	ch.Kind = ldapstore.EventUpsert
	if known && !ldapstore.DNEqual(prev.DN, f.entry.DN) {
		ch.Kind, ch.OldDN = ldapstore.EventRename, prev.DN
	}
	rec := state.IDEntry{DN: f.entry.DN, Kind: string(f.object), Hash: ch.Hash}
	if known {
		rec.Extra = prev.Extra
	}
	return ch, true, ids.Put(ev.ID, rec)
}

func (r *Reader) observe(b ldapstore.Batch, changes int) {
	now := time.Now()
	var lag time.Duration
	if len(b.Events) > 0 {
		if t := b.Events[len(b.Events)-1].Time; !t.IsZero() {
			lag = max(now.Sub(t), 0)
		}
	}
	for _, ev := range b.Events {
		r.metrics.events.WithLabelValues(string(ev.Kind)).Inc()
	}
	r.metrics.lastPoll.Set(float64(now.UnixNano()) / 1e9)
	r.metrics.lag.Set(lag.Seconds())
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ev := range b.Events {
		r.stats.Events[ev.Kind]++
	}
	r.stats.Cursor, r.stats.LastPoll, r.stats.Lag = b.Cursor, now, lag
	if changes > 0 {
		r.logger.Debug().Int("events", len(b.Events)).Int("changes", changes).Msg("change batch committed")
	}
}

// ReconcileResult counts what a reconcile found.
type ReconcileResult struct {
	Entries int // entries in scope
	Changed int // upserts and renames whose content or DN differed from the id map
	Deleted int // ids in the map no longer in scope
}

// Reconcile compares every user and group in scope with the directory id map now, and hands
// the Sink an upsert for each entry (Change.Unchanged tells the ones with nothing new) and a
// delete for each id the map has but the directory no longer shows. The cursor is kept (it
// is set when there is none). Deletes are only derived from an enumeration that completed:
// an unreachable directory or a partial result is an error, never a delete.
func (r *Reader) Reconcile(ctx context.Context) (ReconcileResult, error) {
	watchdog.Wait(ctx) // behind another poll or reconcile, which beats its own loop
	r.runMu.Lock()
	watchdog.Beat(ctx)
	defer r.runMu.Unlock()
	var has bool
	err := r.o.State.View(func(tx *state.Tx) error {
		var err error
		_, has, err = tx.Cursor(r.o.CursorName)
		return err
	})
	if err != nil {
		return ReconcileResult{}, err
	}
	res, err := r.reconcileResult(ctx, !has)
	r.setError(err)
	return res, err
}

func (r *Reader) reconcile(ctx context.Context, resetCursor bool) (int, error) {
	res, err := r.reconcileResult(ctx, resetCursor)
	return res.Changed + res.Deleted, err
}

func (r *Reader) reconcileResult(ctx context.Context, resetCursor bool) (res ReconcileResult, err error) {
	start := time.Now()
	defer func() {
		result, level := "ok", zerolog.InfoLevel
		if err != nil {
			result, level = "error", zerolog.WarnLevel
		}
		r.metrics.reconciles.WithLabelValues(result).Inc()
		r.logger.WithLevel(level).Err(err).Int("entries", res.Entries).Int("changed", res.Changed).Int("deleted", res.Deleted).
			Dur("took", time.Since(start)).Bool("cursor_reset", resetCursor).Msg("reconcile")
	}()
	// The cursor is taken before the enumeration: whatever changes while it runs is also
	// after the cursor, so the next polls deliver it.
	var head string
	if resetCursor {
		if head, err = r.o.Source.Head(ctx); err != nil {
			return res, err
		}
	}
	// Everything the Sink needs from the directory for any entry of the enumeration is read
	// now: the batches are committed while the enumeration holds its connection.
	prepared, err := r.o.Sink.PrepareReconcile(ctx)
	if err != nil {
		return res, fmt.Errorf("capture: reconcile: sink: %w", err)
	}
	// mapped counts the ids the map held when the pass began, and seenMapped those of them
	// the enumeration showed: when they are equal no id can be gone, and the check below need
	// not read the whole map (an initial sync, and most passes). Only this pass writes the map
	// meanwhile: it holds runMu, which every poll takes.
	var mapped, seenMapped int
	err = r.o.State.View(func(tx *state.Tx) error {
		ids, err := tx.IDMap(r.o.IDMapName)
		if err != nil {
			return err
		}
		mapped = ids.Len()
		return nil
	})
	if err != nil {
		return res, err
	}
	// The ids the enumeration showed: an entry per user of the directory, held compactly
	// (idkeys: an entryUUID as 16 bytes; at a million users that is about 50 MB less at the
	// end of a pass).
	var present idkeys.Map[struct{}]
	var pending []found
	throttle, throttling := r.o.Sink.(Throttler)
	flush := func() error {
		if len(pending) == 0 {
			return nil
		}
		known := 0
		err := r.o.State.Update(func(tx *state.Tx) error {
			ids, err := tx.IDMap(r.o.IDMapName)
			if err != nil {
				return err
			}
			changes := make([]Change, 0, len(pending))
			for _, f := range pending {
				id := f.entry.First(r.o.Scope.IDAttribute)
				ch, _, err := r.change(ids, ldapstore.Event{ID: id, Origin: ldapstore.OriginUnknown}, f)
				if err != nil {
					return err
				}
				if ch.Prev != nil {
					known++
				}
				ch.Reconcile = true
				if !ch.Unchanged() {
					res.Changed++
				}
				changes = append(changes, ch)
			}
			if err := r.o.Sink.Commit(ctx, tx, changes, prepared); err != nil {
				return fmt.Errorf("capture: sink: %w", err)
			}
			return nil
		})
		if err == nil {
			seenMapped += known
		}
		pending = pending[:0]
		return err
	}
	for _, sc := range []struct {
		q   ldapstore.Search
		obj Object
	}{{r.o.Scope.Users, ObjectUser}, {r.o.Scope.Groups, ObjectGroup}} {
		if sc.q.Base == "" {
			continue
		}
		err := r.o.Directory.Walk(ctx, sc.q, func(e mapping.Entry) error {
			id := e.First(r.o.Scope.IDAttribute)
			if id == "" {
				return fmt.Errorf("capture: reconcile: %q has no %s (can the bridge's account read it?)", e.DN, r.o.Scope.IDAttribute)
			}
			if present.Has(id) {
				return nil // in both scopes: the first one wins, as in lookup
			}
			present.Set(id, struct{}{})
			res.Entries++
			pending = append(pending, found{entry: &e, object: sc.obj})
			if len(pending) < r.o.BatchSize {
				return nil
			}
			if err := flush(); err != nil {
				return err
			}
			if throttling {
				watchdog.Wait(ctx)
				throttling = throttle.Throttle(ctx)
				watchdog.Beat(ctx)
			}
			return nil
		})
		if err != nil {
			return res, fmt.Errorf("capture: reconcile: reading %s: %w", sc.q.Base, err)
		}
	}
	if err := flush(); err != nil {
		return res, err
	}
	// The enumeration completed: ids the map has and the directory did not show are
	// candidates for deletion. Each is looked up once more by id, so an entry that moved
	// during the enumeration (and so was passed over) is not taken for gone.
	var gone []string
	if seenMapped < mapped {
		err = r.o.State.View(func(tx *state.Tx) error {
			ids, err := tx.IDMap(r.o.IDMapName)
			if err != nil {
				return err
			}
			return ids.ForEachID(func(id string) error {
				if !present.Has(id) {
					gone = append(gone, id)
				}
				return nil
			})
		})
		if err != nil {
			return res, err
		}
	}
	present = idkeys.Map[struct{}]{}
	reads := map[string]found{}
	for _, id := range gone {
		f, err := r.lookup(ctx, id, "")
		if err != nil {
			return res, fmt.Errorf("capture: reconcile: confirming %s is gone: %w", id, err)
		}
		reads[id] = f
	}
	err = r.o.State.Update(func(tx *state.Tx) error {
		ids, err := tx.IDMap(r.o.IDMapName)
		if err != nil {
			return err
		}
		var changes []Change
		for _, id := range gone {
			ch, keep, err := r.change(ids, ldapstore.Event{ID: id, Origin: ldapstore.OriginUnknown}, reads[id])
			if err != nil {
				return err
			}
			if !keep {
				continue
			}
			ch.Reconcile = true
			if ch.Kind == ldapstore.EventDelete {
				res.Deleted++
			} else if !ch.Unchanged() {
				res.Changed++
			}
			changes = append(changes, ch)
		}
		if len(changes) > 0 {
			if err := r.o.Sink.Commit(ctx, tx, changes, prepared); err != nil {
				return fmt.Errorf("capture: sink: %w", err)
			}
		}
		if resetCursor {
			if err := tx.SetCursor(r.o.CursorName, head); err != nil {
				return err
			}
		}
		b, err := tx.Bucket(captureBucket)
		if err != nil {
			return err
		}
		return b.PutJSON([]byte(reconcileKey), time.Now().UTC())
	})
	if err != nil {
		return res, err
	}
	r.mu.Lock()
	r.stats.Reconciles++
	r.stats.LastReconcile = time.Now()
	if resetCursor {
		r.stats.Cursor = head
	}
	r.mu.Unlock()
	return res, nil
}
