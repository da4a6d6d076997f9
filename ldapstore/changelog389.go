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

// ChangelogOptions configure the 389-DS retro changelog source.
type ChangelogOptions struct {
	// Base is the changelog suffix. Defaults to "cn=changelog".
	Base string
	// BridgeDNs are the authors whose changes are tagged OriginBridge. Defaults to the
	// store's bind DN.
	BridgeDNs []string
	// GapGrace is how long a missing change number is waited for once later ones are
	// visible: 389-DS counts a change before its record is readable. Defaults to 10s.
	GapGrace time.Duration
}

// Changelog389 reads 389 Directory Server's retro changelog (cn=changelog). Change numbers
// are assigned at commit, so the log is read in changeNumber order without overlap. The
// plugin must record the entry's id: nsslapd-attribute: nsuniqueid:targetUniqueId.
//
// Its cursor is "changelog:LOG:N:FP": LOG identifies the changelog (the nsUniqueId of its
// cn=changelog entry, which each server, and each re-creation of the changelog, gives anew), N
// is the last changeNumber delivered and FP a fingerprint of that record (its changeTime and
// targetDN, type and changes). Another server's log or a re-created one (LOG differs, or the same number holds
// another record), a trimmed log (firstchangenumber beyond N) and a server restored from a
// backup (lastchangenumber below N) give ErrCursorExpired, answered with a full reconcile.
type Changelog389 struct {
	r    changelogReader
	opts ChangelogOptions
	log  func(msg string, n uint64)
	now  func() time.Time

	warnOnce sync.Once
}

const changelogSource = "changelog"

// changelogReader is what the source needs from the directory; tests answer it from
// recorded entries.
type changelogReader interface {
	// bounds returns firstchangenumber and lastchangenumber (0, 0 for an empty log).
	bounds(ctx context.Context) (first, last uint64, err error)
	// entry returns record n; ok is false when it is not in the log.
	entry(ctx context.Context, n uint64) (e mapping.Entry, ok bool, err error)
	// entries returns the records from <= changeNumber <= to.
	entries(ctx context.Context, from, to uint64) ([]mapping.Entry, error)
	// idOf reads the nsUniqueId of the entry at dn, "" when it is gone.
	idOf(ctx context.Context, dn string) (string, error)
	// identity names this changelog: it differs between servers and re-creations.
	identity(ctx context.Context) (string, error)
}

var changelogAttrs = []string{
	"changeNumber", "targetDN", "changeType", "newRDN", "deleteOldRDN", "newSuperior", "targetUniqueId",
	"changeTime", "changes", "changeInitiatorsName",
}

// NewChangelog389 builds the retro changelog source over s.
func NewChangelog389(s *Store, opts ChangelogOptions) *Changelog389 {
	if opts.Base == "" {
		opts.Base = "cn=changelog"
	}
	if len(opts.BridgeDNs) == 0 {
		opts.BridgeDNs = []string{s.BindDN()}
	}
	c := newChangelog389(&storeChangelog{s: s, base: opts.Base}, opts)
	c.log = func(msg string, n uint64) { s.logger.Warn().Uint64("change_number", n).Msg(msg) }
	return c
}

func newChangelog389(r changelogReader, opts ChangelogOptions) *Changelog389 {
	if opts.Base == "" {
		opts.Base = "cn=changelog"
	}
	if opts.GapGrace <= 0 {
		opts.GapGrace = defaultOverlap
	}
	return &Changelog389{r: r, opts: opts, log: func(string, uint64) {}, now: time.Now}
}

// Name is the source's name, as configured in changes.source.
func (c *Changelog389) Name() string { return changelogSource }

// changelogFingerprint identifies a record beyond its number: what changed where and when.
func changelogFingerprint(e mapping.Entry) uint64 {
	return fingerprint(e.First("changeTime"), strings.ToLower(e.First("targetDN")), strings.ToLower(e.First("changeType")), e.First("changes"))
}

func (c *Changelog389) encode(log string, n, fp uint64) string {
	return changelogSource + ":" + log + ":" + strconv.FormatUint(n, 10) + ":" + strconv.FormatUint(fp, 16)
}

func (c *Changelog389) decode(cursor string) (log string, n, fp uint64, err error) {
	if cursor == "" {
		return "", 0, 0, nil
	}
	f, err := splitCursor(changelogSource, changelogSource, cursor, 3)
	if err != nil {
		// A cursor without the changelog's identity (an older format) cannot be checked.
		return "", 0, 0, expired(changelogSource, "cursor %q does not name its changelog", abbrev(cursor))
	}
	n, err1 := strconv.ParseUint(f[1], 10, 64)
	fp, err2 := strconv.ParseUint(f[2], 16, 64)
	if err1 != nil || err2 != nil {
		return "", 0, 0, fmt.Errorf("ldapstore: changelog: malformed cursor %q", abbrev(cursor))
	}
	return f[0], n, fp, nil
}

// Head returns a cursor at the last change number the log holds now.
func (c *Changelog389) Head(ctx context.Context) (string, error) {
	log, err := c.r.identity(ctx)
	if err != nil {
		return "", err
	}
	_, last, err := c.r.bounds(ctx)
	if err != nil {
		return "", err
	}
	if last == 0 {
		return c.encode(log, 0, 0), nil
	}
	e, ok, err := c.r.entry(ctx, last)
	if err != nil {
		return "", err
	}
	var fp uint64
	if ok {
		fp = changelogFingerprint(e)
	}
	return c.encode(log, last, fp), nil
}

// Poll returns the events of up to limit change numbers after cursor, in order. An empty
// cursor reads from the first record the log holds.
func (c *Changelog389) Poll(ctx context.Context, cursor string, limit int) (Batch, error) {
	if limit <= 0 {
		limit = defaultBatchLimit
	}
	log, n, fp, err := c.decode(cursor)
	if err != nil {
		return Batch{}, err
	}
	cur, err := c.r.identity(ctx)
	if err != nil {
		return Batch{}, err
	}
	if cursor != "" && log != cur {
		return Batch{}, expired(changelogSource, "the changelog is %s, the cursor's %s: another server's, or re-created", cur, log)
	}
	first, last, err := c.r.bounds(ctx)
	if err != nil {
		return Batch{}, err
	}
	if n > 0 {
		switch {
		case last < n:
			return Batch{}, expired(changelogSource, "the log ends at change %d, before the cursor's %d: restored from a backup, or another server", last, n)
		case first > n+1:
			return Batch{}, expired(changelogSource, "the log now starts at change %d: changes %d to %d were trimmed", first, n+1, first-1)
		case first <= n && fp != 0:
			e, ok, err := c.r.entry(ctx, n)
			if err != nil {
				return Batch{}, err
			}
			if !ok {
				return Batch{}, expired(changelogSource, "change %d is no longer in the log", n)
			}
			if changelogFingerprint(e) != fp {
				return Batch{}, expired(changelogSource, "change %d is not the change the cursor was taken at: another server's log", n)
			}
		}
	}
	from := max(n+1, first)
	if last == 0 || from > last {
		return Batch{Cursor: c.encode(cur, n, fp)}, nil
	}
	to := min(last, from+uint64(limit)-1)
	recs, err := c.r.entries(ctx, from, to)
	if err != nil {
		return Batch{}, err
	}
	type rec struct {
		n uint64
		e mapping.Entry
	}
	sorted := make([]rec, 0, len(recs))
	for _, e := range recs {
		cn, err := strconv.ParseUint(strings.TrimSpace(e.First("changeNumber")), 10, 64)
		if err != nil {
			return Batch{}, fmt.Errorf("ldapstore: changelog: record %q: bad changeNumber: %w", e.DN, err)
		}
		sorted = append(sorted, rec{cn, e})
	}
	slices.SortFunc(sorted, func(a, b rec) int {
		switch {
		case a.n < b.n:
			return -1
		case a.n > b.n:
			return 1
		}
		return 0
	})
	// Deliver in changeNumber order, and only as far as the numbers run without a gap: 389-DS
	// counts a change (lastchangenumber) before its record is visible in cn=changelog, so a
	// number missing now may appear a moment later and must not be stepped over. A gap is
	// only taken for good (an aborted operation's number) once a later record is older than
	// the gap grace.
	b := Batch{}
	next, nextFP := n, fp
	expected := from
	now := c.now()
	for _, r := range sorted {
		if r.n < expected {
			continue
		}
		if r.n > expected {
			t, err := parseGenTime(r.e.First("changeTime"))
			if err != nil || now.Sub(t) < c.opts.GapGrace {
				break
			}
		}
		ev, ok, err := c.parse(ctx, r.n, r.e)
		if err != nil {
			return Batch{}, err
		}
		if ok {
			b.Events = append(b.Events, ev)
		}
		next, nextFP = r.n, changelogFingerprint(r.e)
		expected = r.n + 1
	}
	b.More = next < last && next == to
	b.Cursor = c.encode(cur, next, nextFP)
	return b, nil
}

func (c *Changelog389) parse(ctx context.Context, n uint64, e mapping.Entry) (Event, bool, error) {
	ev := Event{
		ID:       strings.TrimSpace(e.First("targetUniqueId")),
		DN:       e.First("targetDN"),
		Position: strconv.FormatUint(n, 10),
	}
	if t, err := parseGenTime(e.First("changeTime")); err == nil {
		ev.Time = t
	}
	changes := strings.TrimRight(e.First("changes"), "\x00")
	ev.Actor = e.First("changeInitiatorsName")
	if ev.Actor == "" {
		ev.Actor = ldifValue(changes, "modifiersName")
	}
	if ev.Actor == "" {
		ev.Actor = ldifValue(changes, "creatorsName")
	}
	ev.Origin = originOf(ev.Actor, c.opts.BridgeDNs)
	switch strings.ToLower(strings.TrimSpace(e.First("changeType"))) {
	case "add", "modify":
		ev.Kind = EventUpsert
	case "modrdn", "moddn":
		ev.Kind = EventRename
		ev.OldDN = ev.DN
		ev.DN = newDN(ev.OldDN, e.First("newRDN"), e.First("newSuperior"))
	case "delete":
		ev.Kind = EventDelete
	default:
		return Event{}, false, nil
	}
	if ev.ID == "" {
		c.warnOnce.Do(func() {
			c.log("retro changelog records carry no targetUniqueId: add nsslapd-attribute: nsuniqueid:targetUniqueId to the plugin", n)
		})
		if ev.Kind == EventDelete {
			c.log("delete without targetUniqueId: left for the reconcile", n)
			return Event{}, false, nil
		}
		id, err := c.r.idOf(ctx, ev.DN)
		if err != nil {
			return Event{}, false, err
		}
		if id == "" {
			return Event{}, false, nil
		}
		ev.ID = id
	}
	return ev, true, nil
}

// ldifValue returns the last value of attr in LDIF change text (the retro changelog's
// "changes"), or "".
func ldifValue(ldif, attr string) string {
	out := ""
	for _, line := range strings.Split(ldif, "\n") {
		line = strings.TrimRight(line, "\r")
		name, val, ok := strings.Cut(line, ":")
		if !ok || !strings.EqualFold(strings.TrimSpace(name), attr) || strings.HasPrefix(val, ":") {
			continue
		}
		out = strings.TrimSpace(val)
	}
	return out
}

// storeChangelog answers changelogReader from the directory.
type storeChangelog struct {
	s    *Store
	base string
}

func (r *storeChangelog) bounds(ctx context.Context) (uint64, uint64, error) {
	e, err := r.s.Get(ctx, "", []string{"firstchangenumber", "lastchangenumber", "changelog"})
	if err != nil {
		return 0, 0, err
	}
	if !e.Has("lastchangenumber") && !e.Has("changelog") {
		return 0, 0, &Error{Op: "read changelog bounds", Err: errors.New("the root DSE has no lastchangenumber: enable the Retro Changelog plugin"), kind: ErrUnsupported}
	}
	first, _ := strconv.ParseUint(strings.TrimSpace(e.First("firstchangenumber")), 10, 64)
	last, _ := strconv.ParseUint(strings.TrimSpace(e.First("lastchangenumber")), 10, 64)
	return first, last, nil
}

func (r *storeChangelog) entry(ctx context.Context, n uint64) (mapping.Entry, bool, error) {
	e, err := r.s.Get(ctx, "changenumber="+strconv.FormatUint(n, 10)+","+r.base, changelogAttrs)
	if errors.Is(err, ErrNotFound) {
		return mapping.Entry{}, false, nil
	}
	return e, err == nil, err
}

func (r *storeChangelog) entries(ctx context.Context, from, to uint64) ([]mapping.Entry, error) {
	f := fmt.Sprintf("(&(objectClass=changeLogEntry)(changeNumber>=%d)(changeNumber<=%d))", from, to)
	return r.s.SearchAll(ctx, Search{Base: r.base, Scope: ScopeOne, Filter: f, Attrs: changelogAttrs})
}

func (r *storeChangelog) idOf(ctx context.Context, dn string) (string, error) {
	e, err := r.s.Get(ctx, dn, []string{"nsUniqueId"})
	if errors.Is(err, ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return e.First("nsUniqueId"), nil
}

func (r *storeChangelog) identity(ctx context.Context) (string, error) {
	e, err := r.s.Get(ctx, r.base, []string{"nsUniqueId"})
	if err != nil {
		return "", err
	}
	id := e.First("nsUniqueId")
	if id == "" {
		return "", &Error{Op: "read changelog identity", DN: r.base, Err: errors.New("no nsUniqueId readable: give the bridge's account read access to it"), kind: ErrDenied}
	}
	return id, nil
}

// compile-time check that the store-backed reader satisfies the interface.
var _ changelogReader = (*storeChangelog)(nil)
