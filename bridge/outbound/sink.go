package outbound

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/scimbridge/scimbridge/bridge/capture"
	"github.com/scimbridge/scimbridge/bridge/state"
	"github.com/scimbridge/scimbridge/ldapstore"
	"github.com/scimbridge/scimbridge/mapping"
)

// Sink is the engine as the change reader's capture.Sink. Its only directory access is the
// evaluation of provisioner filters, in Prepare (one search per 100 users of the batch) or
// PrepareReconcile (one search per filter for the whole reconcile), never while the reader
// holds a connection or the state file's write lock: an unreachable directory fails the
// batch, it never turns into a deprovision. Commit runs inside the transaction that advances
// the cursor, so the work items it writes commit with it, or, when anything fails, neither
// does and the batch is read again.
func (e *Engine) Sink() capture.Sink { return engineSink{e} }

type engineSink struct{ e *Engine }

var (
	_ capture.Sink      = engineSink{}
	_ capture.Throttler = engineSink{}
)

// filterResults is what a Prepare read: for each provisioner filter, the ids of the users
// matching it, among the batch's users (Prepare) or among every user (PrepareReconcile).
type filterResults struct {
	matches map[string]map[string]bool // filter → user id → true
}

// filters lists the distinct filters of the running provisioners.
func (e *Engine) filters() []string {
	var out []string
	for _, p := range e.Provisioners() {
		if f := p.spec.Filter; f != "" && !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}

// Prepare evaluates the provisioners' filters for the batch's users.
func (s engineSink) Prepare(ctx context.Context, batch []capture.Change) (any, error) {
	res := filterResults{matches: map[string]map[string]bool{}}
	var cands []string
	for _, ch := range batch {
		if ch.Object == capture.ObjectUser && ch.Kind != ldapstore.EventDelete && ch.Entry != nil {
			cands = append(cands, ch.ID)
		}
	}
	for _, f := range s.e.filters() {
		m := map[string]bool{}
		if len(cands) > 0 {
			var err error
			if m, err = s.e.filterMatches(ctx, f, cands); err != nil {
				return nil, err
			}
		}
		res.matches[f] = m
	}
	return res, nil
}

// PrepareReconcile reads, for each provisioner filter, every user matching it.
func (s engineSink) PrepareReconcile(ctx context.Context) (any, error) {
	res := filterResults{matches: map[string]map[string]bool{}}
	idAttr := s.e.o.Scope.IDAttribute
	for _, f := range s.e.filters() {
		q := s.e.usersSearch()
		q.Filter = "(&" + q.Filter + f + ")"
		q.Attrs = []string{idAttr}
		m := map[string]bool{}
		err := s.e.o.Directory.Walk(ctx, q, func(en mapping.Entry) error {
			if id := en.First(idAttr); id != "" {
				m[id] = true
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("evaluating filter: %w", err)
		}
		res.matches[f] = m
	}
	return res, nil
}

// Commit turns a batch into work items, with the filter results Prepare read. A provisioner
// whose filter Prepare did not evaluate (built by a reload meanwhile) is left out of this
// batch: every provisioner a reload builds is reconciled afterwards, which covers it.
func (s engineSink) Commit(_ context.Context, tx *state.Tx, batch []capture.Change, prepared any) error {
	e := s.e
	res, _ := prepared.(filterResults)
	groupsChanged := false
	// The DN index first, for the whole batch: a group may list a user the batch creates or
	// moves after it.
	if err := noteUserDNs(tx, batch); err != nil {
		return err
	}
	var resolve resolver
	for _, ch := range batch {
		switch ch.Object {
		case capture.ObjectGroup:
			if ch.Kind == ldapstore.EventDelete || ch.Entry == nil {
				e.idx.deleteGroup(ch.ID)
			} else {
				if resolve == nil {
					var err error
					if resolve, err = resolveUser(tx); err != nil {
						return err
					}
				}
				if err := e.idx.putGroup(ch.ID, *ch.Entry, resolve); err != nil {
					return err
				}
			}
			if !ch.Unchanged() {
				groupsChanged = true
			}
		default:
			if ch.Kind == ldapstore.EventDelete || ch.Entry == nil {
				e.idx.deleteUser(ch.ID)
			} else {
				e.idx.putUser(ch.ID, ch.DN)
			}
		}
	}
	for _, p := range e.Provisioners() {
		var inFilter map[string]bool
		if p.spec.Filter != "" {
			m, ok := res.matches[p.spec.Filter]
			if !ok {
				p.log.Debug().Int("changes", len(batch)).Msg("batch left out: the provisioner was built after it was read; its reconcile covers it")
				continue
			}
			inFilter = m
		}
		if err := p.enqueue(tx, batch, groupsChanged, inFilter); err != nil {
			return fmt.Errorf("outbound: provisioner %q: %w", p.spec.Name, err)
		}
	}
	return nil
}

// markOrder lists the keys of marks in the order their items are queued: the batch's
// (the change log's, or a reconcile's enumeration), then the keys a scope change added, in
// id order. The queue hands out items first come first served, so this is the order of
// delivery; map order would shuffle each batch, and with it the writes to the outbox and the
// provisioner's id map, which bbolt then spreads over half-empty pages (state.fillFor).
func markOrder(batch []capture.Change, marks map[string]work) []string {
	keys := make([]string, 0, len(marks))
	listed := make(map[string]bool, len(marks))
	for _, ch := range batch {
		if _, ok := marks[ch.ID]; ok && !listed[ch.ID] {
			listed[ch.ID] = true
			keys = append(keys, ch.ID)
		}
	}
	if len(keys) == len(marks) {
		return keys
	}
	rest := make([]string, 0, len(marks)-len(keys))
	for k := range marks {
		if !listed[k] {
			rest = append(rest, k)
		}
	}
	slices.Sort(rest)
	return append(keys, rest...)
}

// filterMatches evaluates filter for the users ids: the ids whose entry matches it.
func (e *Engine) filterMatches(ctx context.Context, filter string, ids []string) (map[string]bool, error) {
	out := map[string]bool{}
	idAttr := e.o.Scope.IDAttribute
	q := e.usersSearch()
	base := q.Filter
	q.Attrs = []string{idAttr}
	for chunk := range slices.Chunk(ids, 100) {
		var or strings.Builder
		for _, id := range chunk {
			f, err := ldapstore.IDFilter(idAttr, id)
			if err != nil {
				return nil, err
			}
			or.WriteString(f)
		}
		q.Filter = "(&" + base + filter + "(|" + or.String() + "))"
		err := e.o.Directory.Walk(ctx, q, func(en mapping.Entry) error {
			out[en.First(idAttr)] = true
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("evaluating filter: %w", err)
		}
	}
	return out, nil
}

// snapshot keeps the attributes the mapping reads.
func (p *Provisioner) snapshot(en *mapping.Entry) map[string][]string {
	out := make(map[string][]string, len(p.snapAttrs))
	for _, a := range p.snapAttrs {
		if v := en.Get(a); len(v) > 0 {
			out[a] = v
		}
	}
	return out
}

// enqueue turns a batch into this provisioner's work items; inFilter holds the ids of the
// batch's users matching the provisioner's filter (nil without one).
func (p *Provisioner) enqueue(tx *state.Tx, batch []capture.Change, groupsChanged bool, inFilter map[string]bool) error {
	ids, err := tx.IDMap(idmapName(p.spec.Name))
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	marks := map[string]work{}
	var predicted []string
	// The batch updated the index: is a configured scope group missing now? Then nothing is
	// deprovisioned (scope.go); when one just came back, every pushed group is recomputed,
	// since removals were held meanwhile.
	scope, missing := p.scopeGroups()
	held := len(missing) > 0
	released := p.noteScope(missing)
	reason := "live changes"
	for _, ch := range batch {
		if ch.Reconcile {
			reason = "reconcile"
		}
		if ch.Object != capture.ObjectUser {
			continue
		}
		e, has, err := ids.Get(ch.ID)
		if err != nil {
			return err
		}
		rec := recordFrom(e)
		provisioned := has && rec.TargetID != ""
		active := provisioned && rec.Active
		changed := ch.Time
		if changed.IsZero() || ch.Reconcile {
			changed = now
		}
		if ch.Kind == ldapstore.EventDelete || ch.Entry == nil {
			if provisioned && (active || p.spec.Deprovision == DeprovisionDelete) && !held {
				marks[ch.ID] = work{Kind: mapping.KindUser, DN: ch.DN, Gone: true, Changed: changed, Reason: "deleted"}
				if active {
					predicted = append(predicted, ch.ID)
				}
			}
			continue
		}
		in := len(p.spec.Groups) == 0 || p.e.idx.memberOfAny(ch.DN, scope, p.spec.NestedGroups)
		var fm *bool
		if p.spec.Filter != "" {
			b := inFilter[ch.ID]
			fm = &b
			in = in && b
		}
		switch {
		case !in && (!provisioned || held):
			continue
		case !in && !active && p.spec.Deprovision == DeprovisionDisable:
			continue // out of scope and already disabled
		case in && provisioned && rec.Hash != "" && rec.Hash == ch.Hash && rec.Mapping == p.mappingHash:
			continue // pushed from this very content with this mapping
		}
		marks[ch.ID] = work{
			Kind: mapping.KindUser, DN: ch.DN, Entry: p.snapshot(ch.Entry), InFilter: fm,
			Hash: ch.Hash, Mapping: p.mappingHash, Changed: changed, Reason: string(ch.Kind),
		}
		if !in && active {
			predicted = append(predicted, ch.ID)
		}
	}
	if p.spec.PushGroups {
		pushedSet := p.pushedGroups()
		for _, ch := range batch {
			if ch.Object != capture.ObjectGroup {
				continue
			}
			p.mu.Lock()
			known := p.groups[ch.ID]
			p.mu.Unlock()
			if pushedSet[ch.ID] || known && !held {
				marks[ch.ID] = work{Kind: mapping.KindGroup, DN: ch.DN, Changed: now, Reason: string(ch.Kind)}
			}
		}
		// A change of scope groups can change which groups are pushed; removals held while a
		// scope group was missing are made once it is back.
		if groupsChanged && !held || released {
			p.mu.Lock()
			for gid := range p.groups {
				if !pushedSet[gid] || released {
					if _, ok := marks[gid]; !ok {
						marks[gid] = work{Kind: mapping.KindGroup, Changed: now, Reason: "scope"}
					}
				}
			}
			p.mu.Unlock()
		}
		if groupsChanged {
			for gid := range pushedSet {
				p.mu.Lock()
				known := p.groups[gid]
				p.mu.Unlock()
				if _, ok := marks[gid]; !ok && !known {
					marks[gid] = work{Kind: mapping.KindGroup, Changed: now, Reason: "scope"}
				}
			}
		}
	}
	if groupsChanged && len(p.spec.Groups) > 0 {
		roots := make([]string, 0, len(scope))
		for id := range scope {
			roots = append(roots, id)
		}
		members := p.e.idx.usersIn(roots, p.spec.NestedGroups)
		p.mu.Lock()
		for uid := range members {
			if active, ok := p.users.get(uid); ok && active {
				continue
			}
			if _, ok := marks[uid]; !ok {
				marks[uid] = work{Kind: mapping.KindUser, Refresh: true, Changed: now, Reason: "scope"}
			}
		}
		if !held {
			p.users.activeOutside(members, func(uid string) {
				if _, ok := marks[uid]; !ok {
					marks[uid] = work{Kind: mapping.KindUser, Refresh: true, Changed: now, Reason: "scope"}
				}
				predicted = append(predicted, uid)
			})
		}
		p.mu.Unlock()
	}
	if len(predicted) > 0 {
		if _, err := p.noteDeprovisions(tx, predicted, reason); err != nil {
			return err
		}
	}
	if len(marks) == 0 {
		return nil
	}
	ob, err := tx.Outbox(p.spec.Name)
	if err != nil {
		return err
	}
	pushes := make([]pushed, 0, len(marks))
	for _, key := range markOrder(batch, marks) {
		w := marks[key]
		if old, had, err := ob.Get(key); err != nil {
			return err
		} else if had {
			if ow, err := decodeWork(old); err == nil && !ow.Changed.IsZero() && ow.Changed.Before(w.Changed) {
				w.Changed = ow.Changed
			}
		}
		it, err := ob.Put(key, encodeWork(w))
		if err != nil {
			return err
		}
		ready := it.NotBefore
		if w.Kind == mapping.KindGroup && w.Reason == "scope" {
			ready = now.Add(groupDebounce)
		}
		pushes = append(pushes, pushed{key: key, seq: it.Seq, ready: ready})
	}
	tx.OnCommit(func() {
		for _, ps := range pushes {
			p.q.push(ps.key, ps.seq, ps.ready)
		}
		p.e.m.enqueued.WithLabelValues(p.spec.Name).Add(float64(len(pushes)))
	})
	return nil
}
