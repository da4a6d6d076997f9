package ldapstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/scimbridge/scimbridge/mapping"
)

// USNOptions configure the Active Directory uSNChanged source.
type USNOptions struct {
	// Bases are the subtrees polled for changed objects. Defaults to the domain's
	// defaultNamingContext, so that an object moved out of the users or groups base is still
	// seen (and leaves scope).
	Bases []string
	// Filter narrows the objects polled. Defaults to "(|(objectClass=user)(objectClass=group))".
	Filter string
	// DeletedBase is where tombstones live. Defaults to "CN=Deleted Objects,<defaultNamingContext>".
	DeletedBase string
}

// USN follows one pinned domain controller through uSNChanged: every object written on or
// replicated to that DC gets a new, higher update sequence number. Deletes are read from the
// tombstones (isDeleted=TRUE under CN=Deleted Objects, with the show-deleted control). AD
// records no author, so the origin is unknown, and no renames: the consumer compares the DN
// with its id map.
//
// USNs belong to one DC's database, so the cursor "usn:INVOCATIONID:N" names the DC's
// invocationId (from its NTDS Settings object): another DC, or this DC restored from a backup
// (which gets a new invocationId), gives ErrCursorExpired.
//
// It is the fallback of the DirSync source (which AD deployments should prefer), for an
// account without the Replicating Directory Changes right. Tested against a Samba AD DC.
type USN struct {
	r usnReader
}

const usnSource = "usn"

// usnReader is what the source needs from the DC; tests answer it from recorded entries.
type usnReader interface {
	// server returns the DC's invocationId and highestCommittedUSN.
	server(ctx context.Context) (invocationID string, highest uint64, err error)
	// changed returns the live objects with from <= uSNChanged <= to.
	changed(ctx context.Context, from, to uint64) ([]mapping.Entry, error)
	// deleted returns the tombstones with from <= uSNChanged <= to.
	deleted(ctx context.Context, from, to uint64) ([]mapping.Entry, error)
}

// NewUSN builds the uSNChanged source over s, which should name one domain controller (a
// failover to another DC is detected and answered with a reconcile).
func NewUSN(ctx context.Context, s *Store, opts USNOptions) (*USN, error) {
	if len(opts.Bases) == 0 || opts.DeletedBase == "" {
		e, err := s.Get(ctx, "", []string{"defaultNamingContext"})
		if err != nil {
			return nil, err
		}
		nc := e.First("defaultNamingContext")
		if nc == "" {
			return nil, &Error{Op: "usn source", Err: errors.New("the root DSE has no defaultNamingContext: not an Active Directory DC"), kind: ErrUnsupported}
		}
		if len(opts.Bases) == 0 {
			opts.Bases = []string{nc}
		}
		if opts.DeletedBase == "" {
			opts.DeletedBase = "CN=Deleted Objects," + nc
		}
	}
	if opts.Filter == "" {
		opts.Filter = "(|(objectClass=user)(objectClass=group))"
	}
	return &USN{r: &storeUSN{s: s, opts: opts}}, nil
}

// Name is the source's name, as configured in changes.source.
func (u *USN) Name() string { return usnSource }

func (u *USN) encode(inv string, n uint64) string {
	return usnSource + ":" + inv + ":" + strconv.FormatUint(n, 10)
}

func (u *USN) decode(cursor string) (string, uint64, error) {
	if cursor == "" {
		return "", 0, nil
	}
	f, err := splitCursor(usnSource, usnSource, cursor, 2)
	if err != nil {
		return "", 0, err
	}
	n, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil {
		return "", 0, fmt.Errorf("ldapstore: usn: malformed cursor %q", abbrev(cursor))
	}
	return f[0], n, nil
}

// Head returns a cursor at the DC's highestCommittedUSN.
func (u *USN) Head(ctx context.Context) (string, error) {
	inv, highest, err := u.r.server(ctx)
	if err != nil {
		return "", err
	}
	return u.encode(inv, highest), nil
}

// Poll returns the changes of up to limit update sequence numbers after cursor, in USN
// order. An empty cursor starts at USN 0 (every object).
func (u *USN) Poll(ctx context.Context, cursor string, limit int) (Batch, error) {
	if limit <= 0 {
		limit = defaultBatchLimit
	}
	inv, n, err := u.decode(cursor)
	if err != nil {
		return Batch{}, err
	}
	cur, highest, err := u.r.server(ctx)
	if err != nil {
		return Batch{}, err
	}
	if cursor != "" && !strings.EqualFold(inv, cur) {
		return Batch{}, expired(usnSource, "the DC's invocationId is %s, the cursor's %s: another DC, or this one restored from a backup", cur, inv)
	}
	if highest < n {
		return Batch{}, expired(usnSource, "the DC's highestCommittedUSN %d is below the cursor's %d", highest, n)
	}
	if highest == n {
		return Batch{Cursor: u.encode(cur, n)}, nil
	}
	// Each object carries one uSNChanged, so a range of limit USNs holds at most limit objects.
	to := min(highest, n+uint64(limit))
	live, err := u.r.changed(ctx, n+1, to)
	if err != nil {
		return Batch{}, err
	}
	dead, err := u.r.deleted(ctx, n+1, to)
	if err != nil {
		return Batch{}, err
	}
	type rec struct {
		usn uint64
		ev  Event
	}
	var recs []rec
	for _, e := range live {
		usn, ev, err := usnEvent(e, EventUpsert)
		if err != nil {
			return Batch{}, err
		}
		recs = append(recs, rec{usn, ev})
	}
	for _, e := range dead {
		usn, ev, err := usnEvent(e, EventDelete)
		if err != nil {
			return Batch{}, err
		}
		recs = append(recs, rec{usn, ev})
	}
	slices.SortFunc(recs, func(a, b rec) int {
		switch {
		case a.usn < b.usn:
			return -1
		case a.usn > b.usn:
			return 1
		}
		return 0
	})
	b := Batch{Cursor: u.encode(cur, to), More: to < highest}
	for _, r := range recs {
		b.Events = append(b.Events, r.ev)
	}
	return b, nil
}

// usnEvent turns a live object or a tombstone into an event.
func usnEvent(e mapping.Entry, kind EventKind) (uint64, Event, error) {
	usn, err := strconv.ParseUint(strings.TrimSpace(e.First("uSNChanged")), 10, 64)
	if err != nil {
		return 0, Event{}, fmt.Errorf("ldapstore: usn: object %q: bad uSNChanged: %w", e.DN, err)
	}
	id := e.First("objectGUID")
	if id == "" {
		return 0, Event{}, fmt.Errorf("ldapstore: usn: object %q has no objectGUID", e.DN)
	}
	ev := Event{Kind: kind, ID: id, DN: e.DN, Origin: OriginUnknown, Position: strconv.FormatUint(usn, 10)}
	if t, err := parseGenTime(e.First("whenChanged")); err == nil {
		ev.Time = t
	}
	if kind == EventDelete {
		ev.DN = deletedDN(e)
	}
	return usn, ev, nil
}

// storeUSN answers usnReader from a DC.
type storeUSN struct {
	s    *Store
	opts USNOptions
}

var usnAttrs = []string{"objectGUID", "uSNChanged", "whenChanged", "objectClass"}

func (r *storeUSN) server(ctx context.Context) (string, uint64, error) {
	dse, err := r.s.Get(ctx, "", []string{"dsServiceName", "highestCommittedUSN"})
	if err != nil {
		return "", 0, err
	}
	highest, err := strconv.ParseUint(strings.TrimSpace(dse.First("highestCommittedUSN")), 10, 64)
	if err != nil {
		return "", 0, &Error{Op: "usn source", Err: errors.New("the root DSE has no highestCommittedUSN: not an Active Directory DC"), kind: ErrUnsupported}
	}
	svc := dse.First("dsServiceName")
	if svc == "" {
		return "", 0, &Error{Op: "usn source", Err: errors.New("the root DSE has no dsServiceName"), kind: ErrUnsupported}
	}
	ntds, err := r.s.Get(ctx, svc, []string{"invocationId"})
	if err != nil {
		return "", 0, err
	}
	inv := ntds.First("invocationId")
	if len(inv) == 16 {
		inv = FormatGUID([]byte(inv))
	}
	if inv == "" {
		return "", 0, &Error{Op: "usn source", DN: svc, Err: errors.New("no invocationId readable"), kind: ErrDenied}
	}
	return inv, highest, nil
}

func usnRange(from, to uint64) string {
	return fmt.Sprintf("(uSNChanged>=%d)(uSNChanged<=%d)", from, to)
}

func (r *storeUSN) changed(ctx context.Context, from, to uint64) ([]mapping.Entry, error) {
	var out []mapping.Entry
	seen := map[string]bool{}
	for _, base := range r.opts.Bases {
		err := r.s.Walk(ctx, Search{Base: base, Scope: ScopeSub, Filter: "(&" + r.opts.Filter + usnRange(from, to) + ")", Attrs: usnAttrs},
			func(e mapping.Entry) error {
				if id := e.First("objectGUID"); !seen[id] {
					seen[id] = true
					out = append(out, e)
				}
				return nil
			})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (r *storeUSN) deleted(ctx context.Context, from, to uint64) ([]mapping.Entry, error) {
	var out []mapping.Entry
	err := r.s.WalkWith(ctx, Search{
		Base: r.opts.DeletedBase, Scope: ScopeOne, Filter: "(&(isDeleted=TRUE)" + usnRange(from, to) + ")",
		Attrs: append(slices.Clone(usnAttrs), "isDeleted", "lastKnownParent", "msDS-LastKnownRDN"),
	}, SearchOptions{ShowDeleted: true}, func(e mapping.Entry) error {
		out = append(out, e)
		return nil
	})
	return out, err
}
