package lease

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/scimbridge/scimbridge/ldapstore"
	"github.com/scimbridge/scimbridge/mapping"
)

// Directory is what the lease needs of the directory server it is kept on.
type Directory interface {
	Get(ctx context.Context, dn string, attrs []string) (mapping.Entry, error)
	Add(ctx context.Context, dn string, attrs map[string][]string) error
	Modify(ctx context.Context, dn string, changes []ldapstore.Change, opts ldapstore.ModifyOptions) error
}

// attr holds the lease's value in the entry: description is allowed by applicationProcess
// (core schema, present on every LDAP server) and may hold any string.
const (
	attr        = "description"
	valuePrefix = "scimbridge-lease "
)

// Value is what the lease entry holds.
type Value struct {
	// Holder is the instance id of the leader; "" once released.
	Holder string `json:"holder"`
	// Term counts the terms: every take of the lease adds one, a renewal keeps it.
	Term uint64 `json:"term"`
	// Expires is when the lease lapses by the holder's wall clock, for people reading the
	// entry. Nobody decides anything from it: clocks of different hosts disagree.
	Expires time.Time `json:"expires"`
	// DurationMS is the holder's lease duration: a standby waits at least this long, on
	// its own monotonic clock, after it last saw the value change.
	DurationMS int64 `json:"duration_ms"`
	// Cursor is the change cursor the holder last committed to its own state file.
	Cursor string `json:"cursor,omitempty"`
}

// Encode is the entry's value for v.
func (v Value) Encode() string {
	raw, _ := json.Marshal(v)
	return valuePrefix + string(raw)
}

// Decode parses an entry's value.
func Decode(s string) (Value, error) {
	var v Value
	rest, ok := strings.CutPrefix(s, valuePrefix)
	if !ok {
		return v, fmt.Errorf("lease: the entry's %s is not a scimbridge lease", attr)
	}
	if err := json.Unmarshal([]byte(rest), &v); err != nil {
		return v, fmt.Errorf("lease: the entry's %s: %w", attr, err)
	}
	return v, nil
}

// Options configure an Elector.
type Options struct {
	Directory Directory
	// DN is the lease entry; its RDN attribute must be cn. It is created when missing (its
	// parent must exist).
	DN string
	// ID is this instance's id (the holder value).
	ID string
	// Duration is how long a lease holds without renewal; Renew how often the holder renews
	// and a standby looks.
	Duration, Renew time.Duration
	Logger          zerolog.Logger
}

// Takeover describes the start of a term: what the lease held when this instance took it.
type Takeover struct {
	// Term is the new term's number.
	Term uint64
	// Previous is the lease's value before the take (zero when the entry was created).
	Previous Value
	// Continued is true when the previous term was this instance's own and nobody held the
	// lease in between: the local state is complete, no takeover work is needed.
	Continued bool
}

// Term is one leadership term. Its context ends when the term does: the lease was lost,
// could not be renewed in time, or the Elector stopped.
type Term struct {
	Takeover
	ctx      context.Context
	cancel   context.CancelCauseFunc
	deadline atomic.Int64 // nanoseconds since epochMono: the fence
	timer    *time.Timer
}

// epochMono anchors monotonic deadlines: time.Since(epochMono) never jumps with the wall clock.
var epochMono = time.Now()

func monoNow() int64 { return int64(time.Since(epochMono)) }

// ErrFenced is the cause of a term's end, and what Allow returns, once this instance may no
// longer push.
var ErrFenced = errors.New("lease: not the leader (the lease lapsed or another instance holds it)")

// errSteppedDown ends a term whose leader returned on its own.
var errSteppedDown = errors.New("lease: the leader stepped down")

// Context ends when the term does.
func (t *Term) Context() context.Context { return t.ctx }

// Allow reports whether the holder may send a request now: nil until the fence, measured on
// the monotonic clock (a process paused past it finds it passed as soon as it runs again).
func (t *Term) Allow() error {
	if monoNow() >= t.deadline.Load() {
		t.end(ErrFenced)
		return ErrFenced
	}
	if err := context.Cause(t.ctx); err != nil {
		return ErrFenced
	}
	return nil
}

// Remaining is how long the term is sure to last without another renewal.
func (t *Term) Remaining() time.Duration { return time.Duration(t.deadline.Load() - monoNow()) }

func (t *Term) extend(deadline int64) {
	t.deadline.Store(deadline)
	t.timer.Reset(time.Duration(deadline - monoNow()))
}

func (t *Term) end(cause error) {
	t.timer.Stop()
	t.cancel(cause)
}

// Guard is how long before the lease can lapse for the others that the holder stops: the
// time an aborted request may still need to reach its target.
func Guard(duration time.Duration) time.Duration { return max(duration/6, 500*time.Millisecond) }

// Elector takes, renews and releases the lease.
type Elector struct {
	o   Options
	log zerolog.Logger
	rdn string

	mu sync.Mutex
	// written is the value this instance last wrote (the compare of its next swap).
	written string
	// observed is the value last read and when it was first seen (monotonic).
	observed   string
	observedAt int64
	current    Value
	term       *Term
	cursor     func() string
	status     Status
}

// Status is what the Elector knows, for /status and metrics.
type Status struct {
	Role         string    `json:"role"` // "leader" or "standby"
	Instance     string    `json:"instance"`
	Holder       string    `json:"holder,omitempty"`
	Term         uint64    `json:"term,omitempty"`
	Expires      time.Time `json:"expires,omitzero"`
	LastTakeover time.Time `json:"last_takeover,omitzero"`
	LastError    string    `json:"last_error,omitempty"`
}

// New checks the options.
func New(o Options) (*Elector, error) {
	cn, err := ldapstore.RDNValue(o.DN, "cn")
	if err != nil || cn == "" {
		return nil, fmt.Errorf("lease: ha.lease_dn %q: the RDN must be cn=…", o.DN)
	}
	if o.ID == "" || o.Duration <= 0 || o.Renew <= 0 || o.Renew > o.Duration/3 {
		return nil, errors.New("lease: an instance id, a duration and a renew interval of at most a third of it are required")
	}
	return &Elector{
		o: o, log: o.Logger.With().Str("component", "lease").Logger(), rdn: cn,
		status: Status{Role: "standby", Instance: o.ID},
	}, nil
}

// SetCursor sets where renewals read the committed change cursor from (nil: none).
func (e *Elector) SetCursor(fn func() string) {
	e.mu.Lock()
	e.cursor = fn
	e.mu.Unlock()
}

// Status is the Elector's view now.
func (e *Elector) Status() Status {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := e.status
	if e.term != nil && e.term.ctx.Err() == nil {
		st.Role = "leader"
	} else {
		st.Role = "standby"
	}
	return st
}

// Run keeps the lease until ctx ends: each term it wins is passed to lead, which must return
// once the term's context ends (and only then). When ctx ends while leading, the lease is
// released after lead returned, so a standby takes over at once.
func (e *Elector) Run(ctx context.Context, lead func(*Term)) {
	t := time.NewTicker(e.o.Renew)
	defer t.Stop()
	for {
		if term := e.tryTake(ctx); term != nil {
			done := make(chan struct{})
			go func() {
				defer close(done)
				lead(term)
				term.end(errSteppedDown)
			}()
			e.hold(ctx, term, t.C)
			<-done
			if ctx.Err() != nil {
				e.release()
				return
			}
			if errors.Is(context.Cause(term.ctx), errSteppedDown) {
				// Leading failed (the state file is held by another process, say): hand
				// the lease over rather than holding it without pushing.
				e.release()
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
			}
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// hold renews the term until it ends (lost, lapsed, or ctx done).
func (e *Elector) hold(ctx context.Context, term *Term, tick <-chan time.Time) {
	for {
		select {
		case <-ctx.Done():
			term.end(context.Cause(ctx))
			return
		case <-term.ctx.Done():
			e.log.Warn().Err(context.Cause(term.ctx)).Uint64("term", term.Term).Msg("leadership ended: provisioning stops")
			return
		case <-tick:
		}
		if err := e.renew(ctx, term); err != nil {
			if errors.Is(err, ErrFenced) {
				term.end(err)
				continue
			}
			e.setError(err)
			e.log.Warn().Err(err).Dur("fence_in", term.Remaining()).Msg("renewing the lease failed; retrying")
		}
	}
}

func (e *Elector) setError(err error) {
	e.mu.Lock()
	e.status.LastError = err.Error()
	e.mu.Unlock()
}

// read returns the entry's value ("" and found=false when there is no entry).
func (e *Elector) read(ctx context.Context) (string, bool, error) {
	en, err := e.o.Directory.Get(ctx, e.o.DN, []string{attr})
	if errors.Is(err, ldapstore.ErrNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("lease: reading %s: %w", e.o.DN, err)
	}
	var vals []string
	for _, v := range en.Attrs[attr] {
		if strings.HasPrefix(v, valuePrefix) {
			vals = append(vals, v)
		}
	}
	switch len(vals) {
	case 0:
		return "", true, nil
	case 1:
		return vals[0], true, nil
	}
	return "", true, fmt.Errorf("lease: %s: %w", e.o.DN, errConflict)
}

// errConflict is a lease entry holding several lease values: instances wrote it on different
// servers (ha.lease_url differs between them) and replication merged both. Nobody may lead
// on it: every swap from one value would succeed beside the other.
var errConflict = errors.New("the entry holds several lease values: the instances wrote it on different directory servers; give every instance the same ha.lease_url, then delete the entry")

// swap replaces old by next with one Modify that deletes the old value and adds the new
// one: the server refuses it (noSuchAttribute) when old is no longer there, so of two
// instances racing from the same value only one wins. This works on every LDAP server,
// Active Directory included (no Assertion control needed). An unknown outcome (the
// connection dropped) is settled by reading the value back.
func (e *Elector) swap(ctx context.Context, old, next string) (bool, error) {
	var changes []ldapstore.Change
	if old != "" {
		changes = append(changes, ldapstore.Change{Op: ldapstore.ModDelete, Attr: attr, Values: []string{old}})
	}
	changes = append(changes, ldapstore.Change{Op: ldapstore.ModAdd, Attr: attr, Values: []string{next}})
	err := e.o.Directory.Modify(ctx, e.o.DN, changes, ldapstore.ModifyOptions{})
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, ldapstore.ErrNoSuchAttribute), errors.Is(err, ldapstore.ErrValueExists), errors.Is(err, ldapstore.ErrNotFound):
		return false, nil
	case errors.Is(err, ldapstore.ErrUnavailable):
		cur, _, rerr := e.read(ctx)
		if rerr == nil {
			return cur == next, nil
		}
	}
	return false, fmt.Errorf("lease: writing %s: %w", e.o.DN, err)
}

// tryTake reads the lease and takes it when it is free: absent, released, this instance's
// own unchanged value, or unchanged for a whole lease duration on this host's monotonic clock.
func (e *Elector) tryTake(ctx context.Context) *Term {
	raw, found, err := e.read(ctx)
	if err != nil {
		e.setError(err)
		e.log.Warn().Err(err).Msg("reading the lease failed")
		return nil
	}
	now := monoNow()
	e.mu.Lock()
	if raw != e.observed || e.observedAt == 0 {
		e.observed, e.observedAt = raw, now
	}
	observedFor := time.Duration(now - e.observedAt)
	written := e.written
	e.mu.Unlock()

	if found && raw == "" {
		// An entry without a lease value (created by an admin, on a server where the bridge
		// may not add entries): a placeholder first. Instances adding the same value at once
		// are told apart by the server (attributeOrValueExists for all but one); the take
		// proper is the swap from it, next time round.
		err := e.o.Directory.Modify(ctx, e.o.DN, []ldapstore.Change{{Op: ldapstore.ModAdd, Attr: attr, Values: []string{Value{}.Encode()}}}, ldapstore.ModifyOptions{})
		if err != nil && !errors.Is(err, ldapstore.ErrValueExists) {
			e.setError(fmt.Errorf("lease: writing %s: %w", e.o.DN, err))
			e.log.Warn().Err(err).Msg("preparing the lease entry failed")
		}
		return nil
	}
	var prev Value
	if raw != "" {
		if prev, err = Decode(raw); err != nil {
			e.setError(err)
			e.log.Error().Err(err).Str("dn", e.o.DN).Msg("the lease entry holds something else; not taking it")
			return nil
		}
	}
	wait := max(e.o.Duration, time.Duration(prev.DurationMS)*time.Millisecond)
	own := raw != "" && raw == written
	free := !found || prev.Holder == "" || own || observedFor >= wait
	e.mu.Lock()
	e.current = prev
	e.status.Holder, e.status.Term, e.status.Expires = prev.Holder, prev.Term, prev.Expires
	e.mu.Unlock()
	if !free {
		return nil
	}
	start := monoNow()
	next := Value{Holder: e.o.ID, Term: prev.Term + 1, Expires: time.Now().Add(e.o.Duration).UTC(), DurationMS: e.o.Duration.Milliseconds(), Cursor: prev.Cursor}
	enc := next.Encode()
	var ok bool
	if !found {
		err = e.o.Directory.Add(ctx, e.o.DN, map[string][]string{
			"objectClass": {"top", "applicationProcess"}, "cn": {e.rdn}, attr: {enc},
		})
		switch {
		case err == nil:
			ok = true
		case errors.Is(err, ldapstore.ErrAlreadyExists):
			err = nil
		default:
			err = fmt.Errorf("lease: creating %s: %w", e.o.DN, err)
		}
	} else {
		ok, err = e.swap(ctx, raw, enc)
	}
	if err != nil {
		e.setError(err)
		e.log.Warn().Err(err).Msg("taking the lease failed")
		return nil
	}
	if !ok {
		return nil // someone else changed it first: look again next time
	}
	tctx, cancel := context.WithCancelCause(context.Background())
	term := &Term{Takeover: Takeover{Term: next.Term, Previous: prev, Continued: own}, ctx: tctx, cancel: cancel}
	term.timer = time.AfterFunc(time.Hour, func() { _ = term.Allow() })
	term.extend(start + int64(e.o.Duration-Guard(e.o.Duration)))
	e.mu.Lock()
	e.written, e.observed, e.observedAt, e.current, e.term = enc, enc, monoNow(), next, term
	e.status.Holder, e.status.Term, e.status.Expires, e.status.LastError = next.Holder, next.Term, next.Expires, ""
	if !own {
		e.status.LastTakeover = time.Now().UTC()
	}
	e.mu.Unlock()
	ev := e.log.Info().Uint64("term", next.Term).Str("previous_holder", prev.Holder).Str("cursor", prev.Cursor)
	if own {
		ev.Msg("lease taken again (no other leader in between)")
	} else {
		ev.Msg("lease taken: this instance leads")
	}
	return term
}

// renew extends the term with one compare-and-swap from the value last written; the fence
// moves to the renewal's start plus the duration less the guard. ErrFenced means someone
// else holds the lease now.
func (e *Elector) renew(ctx context.Context, term *Term) error {
	if term.Allow() != nil {
		return ErrFenced
	}
	start := monoNow()
	e.mu.Lock()
	next := e.current
	old := e.written
	if e.cursor != nil {
		if c := e.cursor(); c != "" {
			next.Cursor = c
		}
	}
	e.mu.Unlock()
	next.Expires = time.Now().Add(e.o.Duration).UTC()
	enc := next.Encode()
	rctx, cancel := context.WithTimeout(ctx, time.Duration(term.Remaining()))
	defer cancel()
	ok, err := e.swap(rctx, old, enc)
	if err != nil {
		return err
	}
	if !ok {
		return ErrFenced
	}
	// A swap succeeds beside a value another instance wrote on another server: read back.
	if _, _, err := e.read(rctx); errors.Is(err, errConflict) {
		e.setError(err)
		e.log.Error().Err(err).Msg("the lease is held twice: stopping")
		return ErrFenced
	}
	term.extend(start + int64(e.o.Duration-Guard(e.o.Duration)))
	e.mu.Lock()
	e.written, e.observed, e.observedAt, e.current = enc, enc, monoNow(), next
	e.status.Expires, e.status.LastError = next.Expires, ""
	e.mu.Unlock()
	return nil
}

// release hands the lease over at shutdown, once the term has ended: the value keeps the
// term and the cursor but no holder, so a standby takes it at once.
func (e *Elector) release() {
	e.mu.Lock()
	next, old := e.current, e.written
	if e.cursor != nil {
		if c := e.cursor(); c != "" {
			next.Cursor = c
		}
	}
	e.mu.Unlock()
	if old == "" {
		return
	}
	next.Holder, next.Expires = "", time.Time{}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if ok, err := e.swap(ctx, old, next.Encode()); err != nil || !ok {
		e.log.Warn().Err(err).Msg("releasing the lease failed; a standby takes over when it lapses")
		return
	}
	e.mu.Lock()
	e.written = ""
	e.mu.Unlock()
	e.log.Info().Msg("lease released")
}
