package ldapstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/scimbridge/scimbridge/mapping"
)

// AccesslogOptions configure the OpenLDAP accesslog change source.
type AccesslogOptions struct {
	// Base is the accesslog database's suffix (slapo-accesslog's logdb). Defaults to
	// "cn=accesslog".
	Base string
	// Overlap is how far below the newest record already delivered each poll reads again,
	// because reqStart is the time an operation started, not when it committed: with
	// concurrent writers a record can appear after a later-starting one was read. It must
	// exceed the longest write (start to commit). Defaults to 10s.
	Overlap time.Duration
	// BridgeDNs are the authors whose changes are tagged OriginBridge. Defaults to the
	// store's bind DN.
	BridgeDNs []string
}

// Accesslog reads OpenLDAP's accesslog (slapo-accesslog, cn=accesslog): successful add,
// modify, modrdn and delete records, keyed by reqEntryUUID.
//
// Its cursor is "accesslog:ANCHOR:FP:SEEN": ANCHOR is the highest reqStart delivered, FP a
// fingerprint of that record (so that another server's log, or a log rebuilt since, is
// recognised), and SEEN the compact set of reqStart values already delivered within the
// overlap window below ANCHOR, which de-duplicates the records read again. A cursor whose
// anchor record is no longer in the log (logpurge, another server) gives ErrCursorExpired.
type Accesslog struct {
	s    *Store
	opts AccesslogOptions

	mu   sync.Mutex
	span time.Duration // adaptive width of the reqStart range read per query
}

const (
	defaultOverlap     = 10 * time.Second
	defaultBatchLimit  = 1000
	accesslogSource    = "accesslog"
	initialAccesslogSp = time.Minute
	maxAccesslogSpan   = 7 * 24 * time.Hour
)

var accesslogAttrs = []string{
	"reqStart", "reqEnd", "reqType", "reqDN", "reqEntryUUID", "reqNewRDN", "reqNewSuperior", "reqNewDN",
	"reqAuthzID", "entryCSN",
}

// NewAccesslog builds the accesslog source over s.
func NewAccesslog(s *Store, opts AccesslogOptions) *Accesslog {
	if opts.Base == "" {
		opts.Base = "cn=accesslog"
	}
	if opts.Overlap <= 0 {
		opts.Overlap = defaultOverlap
	}
	if len(opts.BridgeDNs) == 0 {
		opts.BridgeDNs = []string{s.BindDN()}
	}
	return &Accesslog{s: s, opts: opts, span: initialAccesslogSp}
}

// Name is the source's name, as configured in changes.source.
func (a *Accesslog) Name() string { return accesslogSource }

// alRecord is one accesslog record, parsed.
type alRecord struct {
	start string // reqStart, fixed width: string order is start order
	key   seenKey
	ev    Event
	fp    uint64
}

func parseReqStart(v string) (seenKey, error) {
	sec, frac, _ := strings.Cut(strings.TrimSuffix(v, "Z"), ".")
	t, err := time.Parse("20060102150405", sec)
	if err != nil || !strings.HasSuffix(v, "Z") {
		return seenKey{}, fmt.Errorf("ldapstore: accesslog: reqStart %q is not a generalized time", v)
	}
	var k uint64
	if frac != "" {
		if k, err = strconv.ParseUint(frac, 10, 64); err != nil {
			return seenKey{}, fmt.Errorf("ldapstore: accesslog: reqStart %q is not a generalized time", v)
		}
	}
	return seenKey{sec: t.Unix(), key: k}, nil
}

func formatSec(sec int64) string {
	return time.Unix(sec, 0).UTC().Format("20060102150405") + ".000000Z"
}

func recordFingerprint(e mapping.Entry) uint64 {
	return fingerprint(e.First("reqStart"), e.First("reqType"), e.First("reqEntryUUID"))
}

// parseAccesslog turns a log record into an Event. ok is false for records that are not
// changes to entries (other request types).
func (a *Accesslog) parse(e mapping.Entry) (alRecord, bool, error) {
	start := e.First("reqStart")
	key, err := parseReqStart(start)
	if err != nil {
		return alRecord{}, false, err
	}
	r := alRecord{start: start, key: key, fp: recordFingerprint(e)}
	ev := Event{ID: e.First("reqEntryUUID"), DN: e.First("reqDN"), Position: start, Actor: e.First("reqAuthzID")}
	ev.Origin = originOf(ev.Actor, a.opts.BridgeDNs)
	if t, ok := csnTime(e.First("entryCSN")); ok {
		ev.Time = t
	} else if t, err := parseGenTime(e.First("reqEnd")); err == nil {
		ev.Time = t
	} else {
		ev.Time = time.Unix(key.sec, 0).UTC()
	}
	switch strings.ToLower(e.First("reqType")) {
	case "add", "modify":
		ev.Kind = EventUpsert
	case "modrdn":
		ev.Kind = EventRename
		ev.OldDN = ev.DN
		ev.DN = e.First("reqNewDN")
		if ev.DN == "" {
			ev.DN = newDN(ev.OldDN, e.First("reqNewRDN"), e.First("reqNewSuperior"))
		}
	case "delete":
		ev.Kind = EventDelete
	default:
		return r, false, nil
	}
	r.ev = ev
	return r, true, nil
}

// read streams the successful write records with from <= reqStart < to ("" = unbounded).
func (a *Accesslog) read(ctx context.Context, from, to string, fn func(mapping.Entry) error) error {
	return a.readAttrs(ctx, from, to, accesslogAttrs, fn)
}

func (a *Accesslog) readAttrs(ctx context.Context, from, to string, attrs []string, fn func(mapping.Entry) error) error {
	f := "(&(objectClass=auditWriteObject)(reqResult=0)"
	if from != "" {
		f += "(reqStart>=" + EscapeFilter(from) + ")"
	}
	if to != "" {
		f += "(!(reqStart>=" + EscapeFilter(to) + "))"
	}
	f += ")"
	return a.s.Walk(ctx, Search{Base: a.opts.Base, Scope: ScopeOne, Filter: f, Attrs: attrs}, fn)
}

// late finds the records of the overlap window below the anchor that were not delivered yet:
// writes that started before the anchor's but committed after the previous poll read it.
// The window is read with reqStart alone (cheap); only the rare late record is read whole.
func (a *Accesslog) late(ctx context.Context, w *window, anchor string, collect func(mapping.Entry) error) error {
	var missing []string
	err := a.readAttrs(ctx, formatSec(w.lower(a.opts.Overlap)), anchor, []string{"reqStart"}, func(e mapping.Entry) error {
		k, err := parseReqStart(e.First("reqStart"))
		if err != nil {
			return err
		}
		if !w.has(k) {
			missing = append(missing, e.First("reqStart"))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, start := range missing {
		f := "(&(objectClass=auditWriteObject)(reqResult=0)(reqStart=" + EscapeFilter(start) + "))"
		if err := a.s.Walk(ctx, Search{Base: a.opts.Base, Scope: ScopeOne, Filter: f, Attrs: accesslogAttrs}, collect); err != nil {
			return err
		}
	}
	return nil
}

// newest returns the time of the latest change the log holds, from the contextCSN of its
// suffix; ok is false when the log does not publish one.
func (a *Accesslog) newest(ctx context.Context) (time.Time, bool, error) {
	e, err := a.s.Get(ctx, a.opts.Base, []string{"contextCSN"})
	if err != nil {
		return time.Time{}, false, err
	}
	var best time.Time
	for _, v := range e.Get("contextCSN") {
		if t, ok := csnTime(v); ok && t.After(best) {
			best = t
		}
	}
	return best, !best.IsZero(), nil
}

// Head returns a cursor at the current end of the log: polling after it returns only
// records written later. Take it before enumerating the directory for a reconcile.
func (a *Accesslog) Head(ctx context.Context) (string, error) {
	w := newWindow()
	var anchor alRecord
	consider := func(e mapping.Entry) error {
		r, err := parseLoose(e)
		if err != nil {
			return err
		}
		if r.start > anchor.start {
			anchor = r
		}
		return nil
	}
	t, ok, err := a.newest(ctx)
	if err != nil {
		return "", err
	}
	if ok {
		from := formatSec(t.Unix() - int64(a.opts.Overlap/time.Second) - 2)
		if err := a.read(ctx, from, "", consider); err != nil {
			return "", err
		}
	}
	if anchor.start == "" {
		// No contextCSN, or no successful write near it: find the newest record the long way.
		if err := a.read(ctx, "", "", consider); err != nil {
			return "", err
		}
	}
	if anchor.start == "" {
		// An empty log: everything that appears later is new.
		return accesslogSource + "::0:", nil
	}
	w.hw = anchor.key.sec
	err = a.read(ctx, formatSec(w.lower(a.opts.Overlap)), "", func(e mapping.Entry) error {
		r, err := parseLoose(e)
		if err != nil {
			return err
		}
		if r.start <= anchor.start {
			w.add(r.key)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	w.prune(a.opts.Overlap)
	return a.encode(anchor.start, anchor.fp, w), nil
}

// parseLoose reads just the position and fingerprint of a record.
func parseLoose(e mapping.Entry) (alRecord, error) {
	start := e.First("reqStart")
	key, err := parseReqStart(start)
	if err != nil {
		return alRecord{}, err
	}
	return alRecord{start: start, key: key, fp: recordFingerprint(e)}, nil
}

func (a *Accesslog) encode(anchor string, fp uint64, w *window) string {
	return accesslogSource + ":" + anchor + ":" + strconv.FormatUint(fp, 16) + ":" + w.encode()
}

func (a *Accesslog) decode(cursor string) (anchor string, fp uint64, w *window, err error) {
	if cursor == "" {
		return "", 0, newWindow(), nil
	}
	f, err := splitCursor(accesslogSource, accesslogSource, cursor, 3)
	if err != nil {
		return "", 0, nil, err
	}
	anchor = f[0]
	if fp, err = strconv.ParseUint(f[1], 16, 64); err != nil {
		return "", 0, nil, fmt.Errorf("ldapstore: accesslog: malformed cursor %q", abbrev(cursor))
	}
	var hw int64
	if anchor != "" {
		k, err := parseReqStart(anchor)
		if err != nil {
			return "", 0, nil, err
		}
		hw = k.sec
	}
	if w, err = decodeWindow(hw, f[2]); err != nil {
		return "", 0, nil, fmt.Errorf("ldapstore: accesslog: malformed cursor: %w", err)
	}
	return anchor, fp, w, nil
}

// checkAnchor makes sure the log still holds the record the cursor stands on. If it does
// not, records after it may have been purged with it, or the log is another server's.
func (a *Accesslog) checkAnchor(ctx context.Context, anchor string, fp uint64) error {
	dn := "reqStart=" + EscapeDN(anchor) + "," + a.opts.Base
	e, err := a.s.Get(ctx, dn, []string{"reqStart", "reqType", "reqEntryUUID"})
	if errors.Is(err, ErrNotFound) {
		return expired(accesslogSource, "the record at the cursor (reqStart %s) is no longer in %s: purged by logpurge, or this is another server's log", anchor, a.opts.Base)
	}
	if err != nil {
		return err
	}
	if recordFingerprint(e) != fp {
		return expired(accesslogSource, "the record at reqStart %s is not the one the cursor was taken at: another server's log, or a rebuilt one", anchor)
	}
	return nil
}

// Poll returns up to limit events recorded after cursor, in reqStart order, and the cursor
// to resume from. An empty cursor reads from the oldest record the log still holds. A
// cursor the log no longer covers gives an error wrapping ErrCursorExpired.
func (a *Accesslog) Poll(ctx context.Context, cursor string, limit int) (Batch, error) {
	if limit <= 0 {
		limit = defaultBatchLimit
	}
	anchor, fp, w, err := a.decode(cursor)
	if err != nil {
		return Batch{}, err
	}
	if anchor != "" {
		if err := a.checkAnchor(ctx, anchor, fp); err != nil {
			return Batch{}, err
		}
	}
	newestT, haveNewest, err := a.newest(ctx)
	if err != nil {
		return Batch{}, err
	}
	a.mu.Lock()
	span := a.span
	a.mu.Unlock()

	var fresh []alRecord
	read := 0
	collect := func(e mapping.Entry) error {
		read++
		r, ok, err := a.parse(e)
		if err != nil {
			return err
		}
		if !ok || w.has(r.key) || (anchor != "" && r.start == anchor) {
			return nil
		}
		fresh = append(fresh, r)
		return nil
	}
	var fromSec int64
	from := ""
	if anchor != "" {
		if err := a.late(ctx, w, anchor, collect); err != nil {
			return Batch{}, err
		}
		// From the anchor on, records are read whole (the anchor itself is in the seen set).
		from = anchor
		k, _ := parseReqStart(anchor)
		fromSec = k.sec
	}
	extended := false
	for {
		to := ""
		// Read a bounded reqStart range while the log reaches beyond it, so a long backlog
		// costs one pass, not one pass per batch.
		if from != "" && haveNewest && fromSec+int64(span/time.Second) <= newestT.Unix() {
			to = formatSec(fromSec + int64(span/time.Second))
		}
		if err := a.read(ctx, from, to, collect); err != nil {
			return Batch{}, err
		}
		if to == "" || len(fresh) >= limit {
			break
		}
		from, fromSec = to, fromSec+int64(span/time.Second)
		span = min(2*span, maxAccesslogSpan)
		extended = true
	}
	a.mu.Lock()
	switch {
	case read > 4*limit && !extended:
		a.span = max(span/2, time.Second)
	case extended:
		a.span = span
	}
	a.mu.Unlock()

	slices.SortFunc(fresh, func(x, y alRecord) int { return strings.Compare(x.start, y.start) })
	more := len(fresh) > limit
	if more {
		fresh = fresh[:limit]
	}
	b := Batch{Events: make([]Event, 0, len(fresh)), More: more}
	for _, r := range fresh {
		if r.ev.ID == "" {
			id, err := a.idOf(ctx, r.ev)
			if err != nil {
				return Batch{}, err
			}
			if id == "" {
				a.s.logger.Warn().Str("req_start", r.start).Str("req_type", string(r.ev.Kind)).
					Msg("accesslog record without reqEntryUUID: left for the reconcile")
			}
			r.ev.ID = id
		}
		if r.ev.ID != "" {
			b.Events = append(b.Events, r.ev)
		}
		w.add(r.key)
		if r.start > anchor {
			anchor, fp = r.start, r.fp
		}
	}
	w.prune(a.opts.Overlap)
	b.Cursor = a.encode(anchor, fp, w)
	return b, nil
}

// idOf finds the id of an entry whose record lacks reqEntryUUID (slapd before 2.5 on some
// operations) by reading the entry where it is now; "" when it is gone.
func (a *Accesslog) idOf(ctx context.Context, ev Event) (string, error) {
	if ev.Kind == EventDelete {
		return "", nil
	}
	e, err := a.s.Get(ctx, ev.DN, []string{"entryUUID"})
	if errors.Is(err, ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return e.First("entryUUID"), nil
}
