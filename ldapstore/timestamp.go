package ldapstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/scimbridge/scimbridge/mapping"
)

// TimestampOptions configure the generic modifyTimestamp change source.
type TimestampOptions struct {
	// Bases are the subtrees polled (the users and groups bases, or the suffix). Required.
	Bases []string
	// Filter narrows the entries polled. Defaults to "(objectClass=*)".
	Filter string
	// IDAttribute holds each entry's stable id. Required.
	IDAttribute string
	// Attribute is the server-maintained change time. Defaults to "modifyTimestamp" (AD:
	// "whenChanged").
	Attribute string
	// Overlap is how far below the newest change delivered each poll reads again: the
	// attribute has one-second granularity and is stamped before the write commits.
	// Defaults to 10s.
	Overlap time.Duration
	// BridgeDNs are the authors (modifiersName) whose changes are tagged OriginBridge.
	// Defaults to the store's bind DN.
	BridgeDNs []string
}

// Timestamp polls entries whose modifyTimestamp is at or after the cursor, by the server's
// clock (never ours). It reports every change as an upsert; it cannot see deletes, which the
// consumer's periodic reconcile finds, nor tell a rename from a modify (the consumer compares
// the DN with its id map).
//
// Its cursor is "timestamp:TIME:SEEN": TIME is the newest modifyTimestamp delivered
// (GeneralizedTime) and SEEN the compact set of (entry, content, time) keys delivered within
// the overlap window below it. Two changes to one entry in the same second differ in content,
// so the second one is still delivered.
type Timestamp struct {
	s    *Store
	opts TimestampOptions
}

const timestampSource = "timestamp"

// NewTimestamp builds the modifyTimestamp source over s.
func NewTimestamp(s *Store, opts TimestampOptions) (*Timestamp, error) {
	if len(opts.Bases) == 0 {
		return nil, errors.New("ldapstore: timestamp source: no base to poll")
	}
	if opts.IDAttribute == "" {
		return nil, errors.New("ldapstore: timestamp source: no id attribute")
	}
	if opts.Filter == "" {
		opts.Filter = "(objectClass=*)"
	}
	if opts.Attribute == "" {
		opts.Attribute = "modifyTimestamp"
	}
	if opts.Overlap <= 0 {
		opts.Overlap = defaultOverlap
	}
	if len(opts.BridgeDNs) == 0 {
		opts.BridgeDNs = []string{s.BindDN()}
	}
	return &Timestamp{s: s, opts: opts}, nil
}

// Name is the source's name, as configured in changes.source.
func (t *Timestamp) Name() string { return timestampSource }

// EntryHash is a stable digest of an entry's attributes (names case-folded, values in
// order-independent form), without the attributes named in skip.
func EntryHash(e mapping.Entry, skip ...string) string {
	names := make([]string, 0, len(e.Attrs))
	for k := range e.Attrs {
		if slices.ContainsFunc(skip, func(s string) bool { return strings.EqualFold(s, k) }) {
			continue
		}
		names = append(names, k)
	}
	sort.Slice(names, func(i, j int) bool { return strings.ToLower(names[i]) < strings.ToLower(names[j]) })
	h := sha256.New()
	for _, n := range names {
		vals := slices.Clone(e.Attrs[n])
		sort.Strings(vals)
		fmt.Fprintf(h, "%s\x00%d\x00", strings.ToLower(n), len(vals))
		for _, v := range vals {
			fmt.Fprintf(h, "%d\x00%s", len(v), v)
		}
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

func (t *Timestamp) attrs() []string {
	return []string{"*", t.opts.IDAttribute, t.opts.Attribute, "modifiersName"}
}

// walk reads every entry in the bases changed at or after from ("" = all), each once even
// when bases overlap.
func (t *Timestamp) walk(ctx context.Context, from string, attrs []string, fn func(mapping.Entry) error) error {
	f := t.opts.Filter
	if from != "" {
		f = "(&" + f + "(" + t.opts.Attribute + ">=" + EscapeFilter(from) + "))"
	}
	done := map[string]bool{}
	for _, base := range t.opts.Bases {
		err := t.s.Walk(ctx, Search{Base: base, Scope: ScopeSub, Filter: f, Attrs: attrs}, func(e mapping.Entry) error {
			k := strings.ToLower(e.DN)
			if done[k] {
				return nil
			}
			done[k] = true
			return fn(e)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// Head returns a cursor at the newest change in the bases now, by the server's clock.
func (t *Timestamp) Head(ctx context.Context) (string, error) {
	var newest time.Time
	err := t.walk(ctx, "", []string{t.opts.Attribute}, func(e mapping.Entry) error {
		if ts, err := parseGenTime(e.First(t.opts.Attribute)); err == nil && ts.After(newest) {
			newest = ts
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	w := newWindow()
	if !newest.IsZero() {
		w.hw = newest.Unix()
	}
	return t.encode(w), nil
}

func (t *Timestamp) encode(w *window) string {
	hw := ""
	if w.hw != 0 {
		hw = time.Unix(w.hw, 0).UTC().Format(genTimeSeconds)
	}
	return timestampSource + ":" + hw + ":" + w.encode()
}

func (t *Timestamp) decode(cursor string) (*window, error) {
	if cursor == "" {
		return newWindow(), nil
	}
	f, err := splitCursor(timestampSource, timestampSource, cursor, 2)
	if err != nil {
		return nil, err
	}
	var hw int64
	if f[0] != "" {
		ts, err := parseGenTime(f[0])
		if err != nil {
			return nil, fmt.Errorf("ldapstore: timestamp: malformed cursor %q", abbrev(cursor))
		}
		hw = ts.Unix()
	}
	w, err := decodeWindow(hw, f[1])
	if err != nil {
		return nil, fmt.Errorf("ldapstore: timestamp: malformed cursor: %w", err)
	}
	return w, nil
}

type tsRecord struct {
	key seenKey
	dn  string
	ev  Event
}

// Poll returns up to limit upserts for entries changed after cursor, oldest first. An empty
// cursor reads every entry in the bases.
func (t *Timestamp) Poll(ctx context.Context, cursor string, limit int) (Batch, error) {
	if limit <= 0 {
		limit = defaultBatchLimit
	}
	w, err := t.decode(cursor)
	if err != nil {
		return Batch{}, err
	}
	from := ""
	if w.hw != 0 {
		from = time.Unix(w.lower(t.opts.Overlap), 0).UTC().Format(genTimeSeconds)
	}
	var fresh []tsRecord
	err = t.walk(ctx, from, t.attrs(), func(e mapping.Entry) error {
		raw := e.First(t.opts.Attribute)
		ts, err := parseGenTime(raw)
		if err != nil {
			return fmt.Errorf("ldapstore: timestamp: %s of %q: %w", t.opts.Attribute, e.DN, err)
		}
		id := e.First(t.opts.IDAttribute)
		if id == "" {
			return fmt.Errorf("ldapstore: timestamp: entry %q has no %s", e.DN, t.opts.IDAttribute)
		}
		key := seenKey{sec: ts.Unix(), key: fingerprint(id, strings.ToLower(e.DN), EntryHash(e, t.opts.Attribute, "modifiersName"))}
		if w.has(key) {
			return nil
		}
		actor := e.First("modifiersName")
		origin := OriginUnknown
		if actor != "" {
			origin = originOf(actor, t.opts.BridgeDNs)
		}
		fresh = append(fresh, tsRecord{key: key, dn: strings.ToLower(e.DN), ev: Event{
			Kind: EventUpsert, ID: id, DN: e.DN, Origin: origin, Actor: actor, Time: ts, Position: raw,
		}})
		return nil
	})
	if err != nil {
		return Batch{}, err
	}
	slices.SortFunc(fresh, func(a, b tsRecord) int {
		if a.key.sec != b.key.sec {
			return int(a.key.sec - b.key.sec)
		}
		return strings.Compare(a.dn, b.dn)
	})
	b := Batch{More: len(fresh) > limit}
	if b.More {
		fresh = fresh[:limit]
	}
	for _, r := range fresh {
		b.Events = append(b.Events, r.ev)
		w.add(r.key)
	}
	w.prune(t.opts.Overlap)
	b.Cursor = t.encode(w)
	return b, nil
}
