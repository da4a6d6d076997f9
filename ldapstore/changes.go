package ldapstore

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/scimbridge/scimbridge/bridge/watchdog"
	"github.com/scimbridge/scimbridge/mapping"
)

// EventKind says what happened to an entry.
type EventKind string

// The kinds of change events. A source reports what its log says; consumers re-read the
// current entry by id rather than parsing the change itself.
const (
	// EventUpsert: the entry was added or modified (its content may have changed).
	EventUpsert EventKind = "upsert"
	// EventRename: the entry's DN changed (modrdn, with or without newSuperior); OldDN is
	// the DN before, DN the DN after.
	EventRename EventKind = "rename"
	// EventDelete: the entry is gone; DN is the DN it had.
	EventDelete EventKind = "delete"
)

// Origin says who made a change, as far as the change log tells.
type Origin string

// Origins of a change.
const (
	// OriginBridge: the bridge's own bind DN made the change (its inbound SCIM side).
	OriginBridge Origin = "bridge"
	// OriginExternal: someone else (an admin, another tool).
	OriginExternal Origin = "external"
	// OriginUnknown: the source does not record who made changes (AD's uSNChanged, deletes
	// found by a reconcile).
	OriginUnknown Origin = "unknown"
)

// Event is one change read from the directory's change log, keyed by the entry's stable id.
type Event struct {
	Kind EventKind
	// ID is the entry's stable id (entryUUID, nsUniqueId, objectGUID in text form).
	ID string
	// DN is the entry's DN after the change (for a delete, the DN it had).
	DN string
	// OldDN is the DN before a rename; empty otherwise.
	OldDN  string
	Origin Origin
	// Actor is the DN the change log names as the author, when it records one.
	Actor string
	// Time is when the directory made the change (its own clock).
	Time time.Time
	// Position is where the log recorded the event (reqStart, changeNumber, uSNChanged,
	// modifyTimestamp): for display and debugging. Resume from Batch.Cursor, not from it.
	Position string
}

// Batch is what one Poll returns: the events in log order and the cursor to resume from.
type Batch struct {
	Events []Event
	// Cursor is an opaque string to store and pass to the next Poll. It covers exactly the
	// events returned: storing it together with their effects is what makes capture durable.
	Cursor string
	// More is true when the log holds further events that were left for the next Poll
	// because of its limit.
	More bool
}

// ErrCursorExpired means the change log no longer covers a cursor: it was purged or trimmed,
// it belongs to another server or another source, or the server was restored from a backup.
// The caller must fall back to a full reconcile; polling on would lose changes.
var ErrCursorExpired = errors.New("change log no longer covers the cursor")

func expired(source, format string, args ...any) error {
	return fmt.Errorf("ldapstore: %s: %w: %s", source, ErrCursorExpired, fmt.Sprintf(format, args...))
}

// originOf compares an actor DN with the bridge's DNs, DN-normalised.
func originOf(actor string, bridgeDNs []string) Origin {
	actor = strings.TrimSpace(actor)
	if actor == "" {
		return OriginUnknown
	}
	if len(actor) > 3 && strings.EqualFold(actor[:3], "dn:") {
		actor = actor[3:]
	}
	for _, b := range bridgeDNs {
		if b != "" && DNEqual(actor, b) {
			return OriginBridge
		}
	}
	return OriginExternal
}

// DNEqual reports whether two DNs name the same entry (case-insensitive, whitespace- and
// escaping-normalised); strings that are not DNs are equal when they are equal but for case.
func DNEqual(a, b string) bool {
	return strings.EqualFold(a, b) || SameDN(a, b)
}

// DNUnder reports whether dn is base or below it.
func DNUnder(dn, base string) bool {
	if base == "" {
		return true
	}
	if IsSimpleDN(dn) && IsSimpleDN(base) {
		return simpleInScope(dn, base)
	}
	pd, err1 := ldap.ParseDN(dn)
	pb, err2 := ldap.ParseDN(base)
	if err1 != nil || err2 != nil {
		d, b := strings.ToLower(dn), strings.ToLower(base)
		return d == b || strings.HasSuffix(d, ","+b)
	}
	return pd.EqualFold(pb) || pb.AncestorOfFold(pd)
}

// newDN computes the DN after a modrdn from the old DN, the new RDN and the optional new
// superior.
func newDN(oldDN, newRDN, newSuperior string) string {
	if newSuperior != "" {
		return newRDN + "," + newSuperior
	}
	if p, err := ldap.ParseDN(oldDN); err == nil && len(p.RDNs) > 0 {
		parent := &ldap.DN{RDNs: p.RDNs[1:]}
		if len(parent.RDNs) == 0 {
			return newRDN
		}
		return newRDN + "," + parent.String()
	}
	if _, parent, ok := strings.Cut(oldDN, ","); ok {
		return newRDN + "," + parent
	}
	return newRDN
}

// IDFilter is the equality filter matching an entry by its stable id. AD's objectGUID is
// binary on the wire, so its text form is turned back into bytes first.
func IDFilter(idAttr, id string) (string, error) {
	if strings.EqualFold(idAttr, "objectGUID") {
		b, err := ParseGUID(id)
		if err != nil {
			return "", &Error{Op: "search by id", Err: err, kind: ErrInvalid}
		}
		return "(" + idAttr + "=" + ldap.EscapeFilter(string(b)) + ")", nil
	}
	return "(" + idAttr + "=" + ldap.EscapeFilter(id) + ")", nil
}

// FindByID reads the entry whose idAttr is id below q.Base (scope and filter from q; the id
// filter is ANDed with q.Filter). ErrNotFound when no entry matches, ErrInvalid when more than
// one does.
func (s *Store) FindByID(ctx context.Context, q Search, idAttr, id string) (mapping.Entry, error) {
	f, err := IDFilter(idAttr, id)
	if err != nil {
		return mapping.Entry{}, err
	}
	if q.Filter != "" {
		f = "(&" + q.Filter + f + ")"
	}
	q.Filter = f
	if q.Scope == ScopeBase && q.Base != "" {
		q.Scope = ScopeSub
	}
	return s.FindOne(ctx, q)
}

// SearchOptions carry server-side controls for WalkWith.
type SearchOptions struct {
	// ShowDeleted asks Active Directory to return deleted objects (tombstones).
	ShowDeleted bool
	// SizeLimit asks the server for at most this many entries; reaching it is not an error.
	SizeLimit int
}

// WalkWith is Walk with server-side controls. With SizeLimit set it does not page: the
// server stops after SizeLimit entries and WalkWith returns what it sent without error.
func (s *Store) WalkWith(ctx context.Context, q Search, opts SearchOptions, fn func(mapping.Entry) error) error {
	if q.Filter == "" {
		q.Filter = "(objectClass=*)"
	}
	var extra []ldap.Control
	if opts.ShowDeleted {
		extra = append(extra, ldap.NewControlMicrosoftShowDeleted())
	}
	q.Attrs = s.rangeRequest(q.Attrs)
	var fnErr error
	seen := false
	err := s.withConn(ctx, "search", true, func(c *ldap.Conn) error {
		if seen {
			return &Error{Op: "search", DN: q.Base, kind: ErrUnavailable, Err: errors.New("connection lost during a paged search")}
		}
		if opts.SizeLimit > 0 {
			req := ldap.NewSearchRequest(q.Base, q.Scope.ldap(), ldap.NeverDerefAliases, opts.SizeLimit, 0, false, q.Filter, q.Attrs, extra)
			res, err := c.Search(req)
			if err != nil && !ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) {
				return wrap("search", q.Base, err)
			}
			if res == nil {
				return nil
			}
			for _, e := range res.Entries {
				seen = true
				if err := s.completeRanges(c, e); err != nil {
					return err
				}
				if err := fn(toEntry(e)); err != nil {
					fnErr = err
					return nil
				}
			}
			return nil
		}
		paging := ldap.NewControlPaging(uint32(s.cfg.PageSize))
		for {
			if err := ctx.Err(); err != nil {
				return err
			}
			watchdog.Beat(ctx) // a long walk is progress, page by page
			req := ldap.NewSearchRequest(q.Base, q.Scope.ldap(), ldap.NeverDerefAliases, 0, 0, false,
				q.Filter, q.Attrs, append([]ldap.Control{paging}, extra...))
			res, err := c.Search(req)
			if err != nil {
				return wrap("search", q.Base, err)
			}
			for _, e := range res.Entries {
				seen = true
				if err := s.completeRanges(c, e); err != nil {
					return err
				}
				if err := fn(toEntry(e)); err != nil {
					fnErr = err
					return nil
				}
			}
			ctrl, _ := ldap.FindControl(res.Controls, ldap.ControlTypePaging).(*ldap.ControlPaging)
			if ctrl == nil || len(ctrl.Cookie) == 0 {
				return nil
			}
			paging.SetCookie(ctrl.Cookie)
		}
	})
	if fnErr != nil {
		return fnErr
	}
	return err
}

// window is the de-duplication state shared by the sources whose positions are not commit
// ordered (accesslog's reqStart, modifyTimestamp): the highest position delivered, in whole
// seconds, and the keys of the records already delivered within the overlap window below it.
type window struct {
	hw   int64 // Unix seconds of the highest position delivered; 0 = none yet
	seen map[seenKey]struct{}
}

type seenKey struct {
	sec int64
	key uint64
}

func newWindow() *window { return &window{seen: map[seenKey]struct{}{}} }

func (w *window) has(k seenKey) bool { _, ok := w.seen[k]; return ok }

// add records a delivered key and raises the high-water mark.
func (w *window) add(k seenKey) {
	w.seen[k] = struct{}{}
	if k.sec > w.hw {
		w.hw = k.sec
	}
}

// prune forgets keys older than the overlap window below the high-water mark: a record
// that old is never read again.
func (w *window) prune(overlap time.Duration) {
	low := w.lower(overlap)
	for k := range w.seen {
		if k.sec < low {
			delete(w.seen, k)
		}
	}
}

// lower is the first second the next read must cover.
func (w *window) lower(overlap time.Duration) int64 {
	return w.hw - int64((overlap+time.Second-1)/time.Second)
}

// encode writes the seen keys compactly: sorted (hw-sec, key) pairs as unsigned varints,
// base64url. Ten thousand keys take about 60 KB.
func (w *window) encode() string {
	keys := make([]seenKey, 0, len(w.seen))
	for k := range w.seen {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b seenKey) int {
		if a.sec != b.sec {
			return int(b.sec - a.sec)
		}
		switch {
		case a.key < b.key:
			return -1
		case a.key > b.key:
			return 1
		}
		return 0
	})
	buf := make([]byte, 0, len(keys)*6)
	for _, k := range keys {
		buf = binary.AppendUvarint(buf, uint64(w.hw-k.sec))
		buf = binary.AppendUvarint(buf, k.key)
	}
	return base64.RawURLEncoding.EncodeToString(buf)
}

func decodeWindow(hw int64, s string) (*window, error) {
	w := &window{hw: hw, seen: map[seenKey]struct{}{}}
	buf, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("seen set: %w", err)
	}
	for len(buf) > 0 {
		d, n := binary.Uvarint(buf)
		if n <= 0 {
			return nil, errors.New("seen set: bad varint")
		}
		buf = buf[n:]
		k, n := binary.Uvarint(buf)
		if n <= 0 {
			return nil, errors.New("seen set: bad varint")
		}
		buf = buf[n:]
		w.seen[seenKey{sec: hw - int64(d), key: k}] = struct{}{}
	}
	return w, nil
}

// fingerprint is a short stable hash for cursor anchors and de-duplication keys.
func fingerprint(parts ...string) uint64 {
	h := fnv.New64a()
	for _, p := range parts {
		_, _ = h.Write([]byte(p))
		_, _ = h.Write([]byte{0})
	}
	return h.Sum64()
}

// splitCursor splits "prefix:a:b:…" into exactly n fields after checking the prefix.
func splitCursor(source, prefix, cursor string, n int) ([]string, error) {
	rest, ok := strings.CutPrefix(cursor, prefix+":")
	if !ok {
		return nil, expired(source, "cursor %q is not a %s cursor (the change source changed)", abbrev(cursor), source)
	}
	f := strings.SplitN(rest, ":", n)
	if len(f) != n {
		return nil, fmt.Errorf("ldapstore: %s: malformed cursor %q", source, abbrev(cursor))
	}
	return f, nil
}

func abbrev(s string) string {
	if len(s) > 48 {
		return s[:48] + "…"
	}
	return s
}

// Generalized time layouts used by change logs.
const (
	genTimeSeconds = "20060102150405Z"
	genTimeFrac    = "20060102150405.000000Z"
)

// parseGenTime parses an LDAP GeneralizedTime ("20240102030405Z", with an optional
// fraction or numeric zone).
func parseGenTime(v string) (time.Time, error) {
	for _, layout := range []string{genTimeSeconds, "20060102150405.999999999Z", "20060102150405-0700", "20060102150405.999999999-0700"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("not a generalized time: %q", v)
}

// csnTime reads the timestamp of an OpenLDAP CSN ("20240102030405.123456Z#000000#000#000000").
func csnTime(csn string) (time.Time, bool) {
	ts, _, _ := strings.Cut(csn, "#")
	t, err := parseGenTime(ts)
	return t, err == nil
}
