package targettest

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/rs/zerolog"

	"github.com/scimbridge/scimbridge/mapping"
	"github.com/scimbridge/scimbridge/targets"
)

var (
	_ targets.Target = (*Fake)(nil)
	_ targets.Lister = (*Fake)(nil)
	_ targets.Config = FakeConfig{}
)

// ApplyFunc answers an Apply in place of the Fake's in-memory behaviour.
type ApplyFunc func(ctx context.Context, op mapping.Op) (targets.Result, error)

// FindCall is a recorded Find.
type FindCall struct {
	Kind        mapping.Kind
	Attr, Value string
}

// Fake is a recording Target for the bridge's tests. It records every operation and lookup and,
// unless told otherwise, behaves like a small in-memory SCIM target: creates get ids
// "fake-1", "fake-2", … (or adopt a resource with the same match value), updates, disables
// and member changes apply to stored resources (404 PermanentError for unknown ids), deletes
// of unknown ids succeed. Queue errors with FailNext or take over with SetApplyFunc. It is
// safe for concurrent use; the zero value is ready.
type Fake struct {
	mu    sync.Mutex
	ops   []mapping.Op
	finds []FindCall
	errs  []error
	apply ApplyFunc
	res   map[mapping.Kind]map[string]targets.Result
	seq   int
}

// NewFake returns an empty Fake.
func NewFake() *Fake { return &Fake{} }

// Apply records op and answers it: a queued error first, then the ApplyFunc, then the
// in-memory behaviour. A cancelled ctx is returned as is, before recording.
func (f *Fake) Apply(ctx context.Context, op mapping.Op) (targets.Result, error) {
	if err := ctx.Err(); err != nil {
		return targets.Result{}, fmt.Errorf("fake: %w", err)
	}
	f.mu.Lock()
	f.ops = append(f.ops, op)
	if len(f.errs) > 0 {
		err := f.errs[0]
		f.errs = f.errs[1:]
		f.mu.Unlock()
		return targets.Result{}, err
	}
	fn := f.apply
	if fn != nil {
		f.mu.Unlock()
		return fn(ctx, op)
	}
	defer f.mu.Unlock()
	return f.memory(op)
}

// Find records the lookup and searches the stored resources (case-insensitive value).
func (f *Fake) Find(ctx context.Context, kind mapping.Kind, attr, value string) (targets.Result, bool, error) {
	if err := ctx.Err(); err != nil {
		return targets.Result{}, false, fmt.Errorf("fake: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.finds = append(f.finds, FindCall{Kind: kind, Attr: attr, Value: value})
	r, ok := f.lookup(kind, attr, value)
	return r, ok, nil
}

// List calls fn for each stored resource of kind, in id order.
func (f *Fake) List(ctx context.Context, kind mapping.Kind, fn func(targets.Result) error) error {
	for _, r := range f.Resources(kind) {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("fake: %w", err)
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

// Ops returns the operations recorded so far, in order.
func (f *Fake) Ops() []mapping.Op {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.ops)
}

// Finds returns the lookups recorded so far, in order.
func (f *Fake) Finds() []FindCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.finds)
}

// FailNext makes the next len(errs) Apply calls return these errors, in order (they are still
// recorded).
func (f *Fake) FailNext(errs ...error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errs = append(f.errs, errs...)
}

// SetApplyFunc makes fn answer every Apply (nil restores the in-memory behaviour). fn runs
// without the Fake's lock held, so it may block.
func (f *Fake) SetApplyFunc(fn ApplyFunc) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.apply = fn
}

// Resources returns the stored resources of kind, in id order.
func (f *Fake) Resources(kind mapping.Kind) []targets.Result {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []targets.Result
	for _, r := range f.res[kind] {
		r.Attrs = maps.Clone(r.Attrs)
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b targets.Result) int { return compareIDs(a.ID, b.ID) })
	return out
}

// Reset forgets recorded calls, queued errors and stored resources.
func (f *Fake) Reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ops, f.finds, f.errs, f.res, f.seq = nil, nil, nil, nil, 0
}

// compareIDs orders "fake-2" before "fake-10".
func compareIDs(a, b string) int {
	na, ea := strconv.Atoi(strings.TrimPrefix(a, "fake-"))
	nb, eb := strconv.Atoi(strings.TrimPrefix(b, "fake-"))
	if ea == nil && eb == nil {
		return na - nb
	}
	return strings.Compare(a, b)
}

func (f *Fake) lookup(kind mapping.Kind, attr, value string) (targets.Result, bool) {
	for _, r := range f.res[kind] {
		for k, v := range r.Attrs {
			if s, ok := v.(string); ok && strings.EqualFold(k, attr) && strings.EqualFold(s, value) {
				r.Attrs = maps.Clone(r.Attrs)
				return r, true
			}
		}
	}
	return targets.Result{}, false
}

func notFound(op mapping.Op) error {
	return &targets.PermanentError{Status: 404, Err: fmt.Errorf("fake: %s %s %s: not found", op.Type, op.Kind, op.TargetID)}
}

// memory is the in-memory behaviour. Callers hold f.mu.
func (f *Fake) memory(op mapping.Op) (targets.Result, error) {
	if f.res == nil {
		f.res = map[mapping.Kind]map[string]targets.Result{}
	}
	if f.res[op.Kind] == nil {
		f.res[op.Kind] = map[string]targets.Result{}
	}
	store := f.res[op.Kind]
	cur, known := store[op.TargetID]
	switch op.Type {
	case mapping.OpCreate:
		if op.MatchAttribute != "" && op.MatchValue != "" {
			if r, ok := f.lookup(op.Kind, op.MatchAttribute, op.MatchValue); ok {
				return r, nil
			}
		}
		f.seq++
		id := "fake-" + strconv.Itoa(f.seq)
		attrs := maps.Clone(op.Resource)
		if attrs == nil {
			attrs = map[string]any{}
		}
		if op.MatchAttribute != "" {
			if _, ok := attrs[op.MatchAttribute]; !ok {
				attrs[op.MatchAttribute] = op.MatchValue
			}
		}
		attrs["id"] = id
		r := targets.Result{ID: id, Kind: op.Kind, Attrs: attrs, Version: "1"}
		store[id] = r
		return withClone(r), nil
	case mapping.OpDelete:
		delete(store, op.TargetID)
		return targets.Result{ID: op.TargetID, Kind: op.Kind}, nil
	}
	if !known {
		return targets.Result{}, notFound(op)
	}
	attrs := maps.Clone(cur.Attrs)
	switch op.Type {
	case mapping.OpReplace:
		attrs = maps.Clone(op.Resource)
		if attrs == nil {
			attrs = map[string]any{}
		}
		attrs["id"] = op.TargetID
	case mapping.OpUpdate:
		for _, p := range op.Patch {
			switch {
			case strings.EqualFold(p.Op, "remove"):
				delete(attrs, p.Path)
			case p.Path == "":
				if m, ok := p.Value.(map[string]any); ok {
					maps.Copy(attrs, m)
				}
			default:
				attrs[p.Path] = p.Value
			}
		}
	case mapping.OpDisable:
		attrs["active"] = false
	case mapping.OpMembers:
		members, _ := attrs["members"].([]string)
		for _, p := range op.Patch {
			ids := idsOf(p.Value)
			if m := memberPathRe.FindStringSubmatch(p.Path); m != nil {
				var id string
				if json.Unmarshal([]byte(m[1]), &id) == nil {
					ids = append(ids, id)
				}
			}
			if strings.EqualFold(p.Op, "remove") {
				members = slices.DeleteFunc(members, func(m string) bool { return slices.Contains(ids, m) })
				continue
			}
			for _, id := range ids {
				if !slices.Contains(members, id) {
					members = append(members, id)
				}
			}
		}
		attrs["members"] = members
	default:
		return targets.Result{}, &targets.PermanentError{Err: fmt.Errorf("fake: unknown operation type %q", op.Type)}
	}
	n, _ := strconv.Atoi(cur.Version)
	r := targets.Result{ID: op.TargetID, Kind: op.Kind, Attrs: attrs, Version: strconv.Itoa(n + 1)}
	store[op.TargetID] = r
	return withClone(r), nil
}

func withClone(r targets.Result) targets.Result {
	r.Attrs = maps.Clone(r.Attrs)
	return r
}

var memberPathRe = regexp.MustCompile(`(?i)^members\[\s*value\s+eq\s+("(?:[^"\\]|\\.)*")\s*\]$`)

// idsOf reads member ids from a patch value: an id, {"value": id}, or a list of either.
func idsOf(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []string:
		return v
	case map[string]any:
		s, _ := v["value"].(string)
		return []string{s}
	case map[string]string:
		return []string{v["value"]}
	case []map[string]string:
		var out []string
		for _, m := range v {
			out = append(out, m["value"])
		}
		return out
	case []map[string]any:
		var out []string
		for _, m := range v {
			out = append(out, idsOf(m)...)
		}
		return out
	case []any:
		var out []string
		for _, m := range v {
			out = append(out, idsOf(m)...)
		}
		return out
	}
	return nil
}

// FakeConfig is a targets.Config whose Open returns Target, for registering a fake in the
// bridge's target registry in tests.
type FakeConfig struct {
	Target targets.Target
}

// Open returns c.Target (a new Fake when nil).
func (c FakeConfig) Open(string, zerolog.Logger) (targets.Target, error) {
	if c.Target == nil {
		return NewFake(), nil
	}
	return c.Target, nil
}
