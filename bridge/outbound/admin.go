package outbound

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/scimbridge/scimbridge/bridge/state"
	"github.com/scimbridge/scimbridge/mapping"
	"github.com/scimbridge/scimbridge/targets"
)

// Status is one provisioner's state for `scimbridge status` and the admin /status.
type Status struct {
	Name        string `json:"name"`
	Type        string `json:"type,omitempty"`
	Running     bool   `json:"running"`
	OutboxDepth int    `json:"outbox_depth"`
	Ready       int    `json:"ready"`
	InFlight    int    `json:"in_flight"`
	DeadLetters int    `json:"dead_letters"`
	// Users and Groups count the accounts and groups the provisioner keeps on the target
	// (UsersActive of them enabled).
	Users       int           `json:"users"`
	UsersActive int           `json:"users_active"`
	Groups      int           `json:"groups"`
	Breaker     BreakerStatus `json:"breaker"`
	Target      CircuitStatus `json:"target"`
	// Rate is the provisioner's pace: the current rate and why it last moved.
	Rate        *RateStatus    `json:"rate,omitempty"`
	LastError   string         `json:"last_error,omitempty"`
	LastErrorAt time.Time      `json:"last_error_at,omitzero"`
	LastSuccess time.Time      `json:"last_success,omitzero"`
	LastSync    time.Time      `json:"last_reconcile,omitzero"`
	Counters    map[string]int `json:"counters,omitempty"`
	// Scope, when set, says why deprovisioning is held (a configured scope group is missing).
	Scope *ScopeStatus `json:"scope,omitempty"`
}

// BreakerStatus is the deletion breaker.
type BreakerStatus struct {
	Tripped    bool      `json:"tripped"`
	Reason     string    `json:"reason,omitempty"`
	Since      time.Time `json:"since,omitzero"`
	MaxDeletes int       `json:"max_deletes"`
}

// CircuitStatus is the target circuit: closed (delivering), open (paused after failures or a
// Retry-After) or probing.
type CircuitStatus struct {
	State               string    `json:"state"`
	Until               time.Time `json:"until,omitzero"`
	ConsecutiveFailures int       `json:"consecutive_failures,omitempty"`
}

// Status reports every running provisioner.
func (e *Engine) Status() []Status {
	var out []Status
	now := time.Now()
	for _, p := range e.Provisioners() {
		pending, ready, inflight := p.q.counts(now)
		st, until, fails := p.health.state(now)
		rs := p.pace.status(now)
		p.mu.Lock()
		s := Status{
			Name: p.spec.Name, Type: p.spec.Type, Running: true,
			OutboxDepth: pending, Ready: ready, InFlight: inflight,
			Groups:    len(p.groups),
			Breaker:   BreakerStatus{Tripped: p.breaker.Tripped, Reason: p.breaker.Reason, Since: p.breaker.Since, MaxDeletes: p.spec.MaxDeletes},
			Target:    CircuitStatus{State: st, Until: until, ConsecutiveFailures: fails},
			Rate:      &rs,
			LastError: p.lastErr, LastErrorAt: p.lastErrT, LastSuccess: p.lastOK, LastSync: p.lastRec,
			Counters: map[string]int{"delivered": int(p.delivered.Load()), "failed_attempts": int(p.failed.Load()), "dead_lettered": int(p.dead.Load())},
		}
		s.Users, s.UsersActive = p.users.counts()
		p.mu.Unlock()
		_ = e.o.State.View(func(tx *state.Tx) error {
			dl, err := tx.DeadLetters(p.spec.Name)
			if err == nil {
				s.DeadLetters = dl.Len()
			}
			return nil
		})
		s.Scope = p.scopeStatus()
		out = append(out, s)
	}
	return out
}

// StoredStatus reads what the state file says about each provisioner (and those only found in
// the file), for `scimbridge status` when no daemon runs.
func StoredStatus(tx *state.Tx, names []string) ([]Status, error) {
	found, err := tx.OutboxNames()
	if err != nil {
		return nil, err
	}
	for _, n := range found {
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	var out []Status
	for _, name := range names {
		s := Status{Name: name, Target: CircuitStatus{State: "unknown"}}
		ob, err := tx.Outbox(name)
		if err != nil {
			return nil, err
		}
		s.OutboxDepth = ob.Len()
		dl, err := tx.DeadLetters(name)
		if err != nil {
			return nil, err
		}
		s.DeadLetters = dl.Len()
		meta, err := tx.Bucket("outbound", name, "meta")
		if err != nil {
			return nil, err
		}
		var br breakerState
		if _, err := meta.GetJSON([]byte("breaker"), &br); err != nil {
			return nil, err
		}
		s.Breaker = BreakerStatus{Tripped: br.Tripped, Reason: br.Reason, Since: br.Since}
		var le lastError
		if ok, _ := meta.GetJSON([]byte("last_error"), &le); ok {
			s.LastError, s.LastErrorAt = le.Error, le.At
		}
		_, _ = meta.GetJSON([]byte("last_success"), &s.LastSuccess)
		_, _ = meta.GetJSON([]byte("last_reconcile"), &s.LastSync)
		ids, err := tx.IDMap(idmapName(name))
		if err != nil {
			return nil, err
		}
		err = ids.ForEach(func(_ string, e state.IDEntry) error {
			r := recordFrom(e)
			switch {
			case r.TargetID == "":
			case r.Kind == kindGroup:
				s.Groups++
			default:
				s.Users++
				if r.Active {
					s.UsersActive++
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// DeadLetterView is a dead letter as the CLI lists it.
type DeadLetterView struct {
	ID       string    `json:"id"`
	Kind     string    `json:"kind"`
	DN       string    `json:"dn,omitempty"`
	Attempts int       `json:"attempts"`
	Failed   time.Time `json:"failed"`
	Status   int       `json:"status,omitempty"`
	Error    string    `json:"error"`
	Body     string    `json:"body,omitempty"`
}

// ListDeadLetters lists provisioner name's dead letters.
func ListDeadLetters(tx *state.Tx, name string) ([]DeadLetterView, error) {
	dl, err := tx.DeadLetters(name)
	if err != nil {
		return nil, err
	}
	var out []DeadLetterView
	err = dl.ForEach(func(d state.DeadLetter) error {
		v := DeadLetterView{ID: d.Item.Key, Attempts: d.Item.Attempts, Failed: d.Failed, Status: d.Status, Error: d.Error, Body: d.Body}
		if w, err := decodeWork(d.Item); err == nil {
			v.Kind, v.DN = string(w.Kind), w.DN
		}
		out = append(out, v)
		return nil
	})
	return out, err
}

// ReplayDeadLetters moves dead letters of provisioner name back to its outbox (all when ids
// is empty) with their attempts reset; the entry is read again from the directory at
// delivery, so what is delivered is its current state. It returns the ids moved.
func ReplayDeadLetters(tx *state.Tx, name string, ids []string) ([]string, error) {
	done, _, err := moveDeadLetters(tx, name, ids, true)
	return done, err
}

// DropDeadLetters deletes dead letters of provisioner name (all when ids is empty).
func DropDeadLetters(tx *state.Tx, name string, ids []string) ([]string, error) {
	done, _, err := moveDeadLetters(tx, name, ids, false)
	return done, err
}

// pushedItem is an item written to an outbox, for the queue once committed.
type pushedItem struct {
	Key string
	Seq uint64
}

func moveDeadLetters(tx *state.Tx, name string, ids []string, replay bool) ([]string, []pushedItem, error) {
	dls, err := tx.DeadLetters(name)
	if err != nil {
		return nil, nil, err
	}
	var all []state.DeadLetter
	err = dls.ForEach(func(d state.DeadLetter) error {
		if len(ids) == 0 || slices.Contains(ids, d.Item.Key) {
			all = append(all, d)
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	if len(ids) > 0 && len(all) != len(ids) {
		var missing []string
		for _, id := range ids {
			if !slices.ContainsFunc(all, func(d state.DeadLetter) bool { return d.Item.Key == id }) {
				missing = append(missing, id)
			}
		}
		return nil, nil, fmt.Errorf("provisioner %q has no dead letter %s", name, strings.Join(missing, ", "))
	}
	ob, err := tx.Outbox(name)
	if err != nil {
		return nil, nil, err
	}
	var done []string
	var pushes []pushedItem
	for _, d := range all {
		if replay {
			w, _ := decodeWork(d.Item)
			nw := work{Kind: w.Kind, DN: w.DN, Refresh: true, Changed: time.Now().UTC(), Reason: "replay"}
			if w.Kind == "" {
				nw.Kind = mapping.KindUser
			}
			if w.Gone {
				// The entry was deleted: there is nothing to read again.
				nw.Refresh, nw.Gone = false, true
			}
			it, err := ob.Put(d.Item.Key, encodeWork(nw))
			if err != nil {
				return nil, nil, err
			}
			it.Attempts, it.NotBefore, it.LastError = 0, time.Time{}, ""
			if err := ob.Save(it); err != nil {
				return nil, nil, err
			}
			pushes = append(pushes, pushedItem{Key: it.Key, Seq: it.Seq})
		}
		if err := dls.Delete(d.Item.Key); err != nil {
			return nil, nil, err
		}
		done = append(done, d.Item.Key)
	}
	return done, pushes, nil
}

// Replay is ReplayDeadLetters on the running engine: the items are scheduled at once.
func (e *Engine) Replay(name string, ids []string) ([]string, error) {
	p, ok := e.Provisioner(name)
	if !ok {
		return nil, fmt.Errorf("no provisioner %q is running", name)
	}
	var done []string
	err := e.o.State.Update(func(tx *state.Tx) error {
		var pushes []pushedItem
		var err error
		done, pushes, err = moveDeadLetters(tx, name, ids, true)
		if err != nil {
			return err
		}
		tx.OnCommit(func() {
			for _, ps := range pushes {
				p.q.push(ps.Key, ps.Seq, time.Time{})
			}
		})
		return nil
	})
	e.refreshDeadGauge(p)
	return done, err
}

// Drop is DropDeadLetters on the running engine.
func (e *Engine) Drop(name string, ids []string) ([]string, error) {
	p, ok := e.Provisioner(name)
	var done []string
	err := e.o.State.Update(func(tx *state.Tx) error {
		var err error
		done, err = DropDeadLetters(tx, name, ids)
		return err
	})
	if ok {
		e.refreshDeadGauge(p)
	}
	return done, err
}

// DeadLetters lists a provisioner's dead letters from the running engine's state.
func (e *Engine) DeadLetters(name string) ([]DeadLetterView, error) {
	var out []DeadLetterView
	err := e.o.State.View(func(tx *state.Tx) error {
		var err error
		out, err = ListDeadLetters(tx, name)
		return err
	})
	return out, err
}

// AllowDeletes releases the deletion breaker of the named provisioners (all when names is
// empty). It returns the names of those that were tripped.
func (e *Engine) AllowDeletes(names []string) ([]string, error) {
	var released []string
	err := e.o.State.Update(func(tx *state.Tx) error {
		released = released[:0]
		for _, p := range e.Provisioners() {
			if len(names) > 0 && !slices.Contains(names, p.spec.Name) {
				continue
			}
			was, err := p.releaseBreaker(tx)
			if err != nil {
				return err
			}
			if was {
				released = append(released, p.spec.Name)
			}
		}
		return nil
	})
	return released, err
}

// Progress is a snapshot of a provisioner's work for sync's progress bar.
type Progress struct {
	Provisioner string `json:"provisioner"`
	Pending     int    `json:"pending"`
	Ready       int    `json:"ready"`
	InFlight    int    `json:"in_flight"`
	Delivered   int    `json:"delivered"`
	Failed      int    `json:"failed_attempts"`
	Dead        int    `json:"dead_lettered"`
	// Blocked says why nothing more will happen now: "breaker" (deletion breaker),
	// "target" (the target is failing or asked to wait), "retry" (items wait for their
	// backoff) or "".
	Blocked string `json:"blocked,omitempty"`
}

// Progress reports the named provisioners (all when empty), counters relative to base.
func (e *Engine) Progress(names []string, base map[string]Progress) []Progress {
	var out []Progress
	now := time.Now()
	for _, p := range e.Provisioners() {
		if len(names) > 0 && !slices.Contains(names, p.spec.Name) {
			continue
		}
		pending, ready, inflight := p.q.counts(now)
		pr := Progress{
			Provisioner: p.spec.Name, Pending: pending, Ready: ready, InFlight: inflight,
			Delivered: int(p.delivered.Load()), Failed: int(p.failed.Load()), Dead: int(p.dead.Load()),
		}
		if b, ok := base[p.spec.Name]; ok {
			pr.Delivered -= b.Delivered
			pr.Failed -= b.Failed
			pr.Dead -= b.Dead
		}
		st, _, _ := p.health.state(now)
		tripped, _ := p.breakerTripped()
		switch {
		case pending == 0:
		case tripped:
			pr.Blocked = "breaker"
		case st != CircuitClosed && inflight == 0:
			pr.Blocked = "target"
		case ready == 0 && inflight == 0:
			pr.Blocked = "retry"
		}
		out = append(out, pr)
	}
	return out
}

// Idle reports whether no named provisioner can make progress now (everything delivered, or
// what is left waits for a retry, the target or an admin).
func Idle(ps []Progress) bool {
	for _, p := range ps {
		if p.Pending > 0 && p.Blocked == "" {
			return false
		}
	}
	return true
}

// PrepareReconcile readies the named provisioners (all when empty) for a full reconcile pass:
// it lists the target where it can (accounts our id map points to that the target lost are
// forgotten so they are created again; attributes changed on the target behind our back are
// noted so the pass pushes them back; existing accounts are adopted without a lookup each),
// and counts the deprovisions the pass will make against the deletion breaker before any is
// sent.
func (e *Engine) PrepareReconcile(ctx context.Context, names []string) error {
	for _, p := range e.Provisioners() {
		if len(names) > 0 && !slices.Contains(names, p.spec.Name) {
			continue
		}
		if err := p.prepareReconcile(ctx); err != nil {
			return fmt.Errorf("outbound: provisioner %q: %w", p.spec.Name, err)
		}
	}
	return nil
}

// FinishReconcile records a completed pass and drops the pass's target listing.
func (e *Engine) FinishReconcile(names []string) error {
	now := time.Now().UTC()
	return e.o.State.Update(func(tx *state.Tx) error {
		for _, p := range e.Provisioners() {
			if len(names) > 0 && !slices.Contains(names, p.spec.Name) {
				continue
			}
			meta, err := tx.Bucket("outbound", p.spec.Name, "meta")
			if err != nil {
				return err
			}
			if err := meta.PutJSON([]byte("last_reconcile"), now); err != nil {
				return err
			}
			tx.OnCommit(func() {
				p.mu.Lock()
				p.lastRec = now
				p.mu.Unlock()
			})
		}
		return nil
	})
}

// DropListings forgets the target listings of the last pass (once its work is delivered).
func (e *Engine) DropListings() {
	for _, p := range e.Provisioners() {
		p.mu.Lock()
		p.listing = nil
		p.mu.Unlock()
	}
}

// NeedsReconcile lists the provisioners that never completed a reconcile pass, or whose last
// one is older than interval.
func (e *Engine) NeedsReconcile(interval time.Duration) []string {
	var out []string
	for _, p := range e.Provisioners() {
		p.mu.Lock()
		last := p.lastRec
		p.mu.Unlock()
		if last.IsZero() || time.Since(last) >= interval {
			out = append(out, p.spec.Name)
		}
	}
	return out
}

func (p *Provisioner) prepareReconcile(ctx context.Context) error {
	l := &listing{users: map[string]string{}, groups: map[string]string{}, at: time.Now()}
	lister, canList := p.spec.Target.(targets.Lister)
	var targetUsers, targetGroups map[string]map[string]string
	if canList {
		targetUsers, targetGroups = map[string]map[string]string{}, map[string]map[string]string{}
		err := lister.List(p.listCtx(ctx), mapping.KindUser, func(r targets.Result) error {
			flat := mapping.Flatten(r.Attrs)
			targetUsers[r.ID] = flat
			if v := getFold(flat, p.spec.MatchAttribute); v != "" {
				l.users[strings.ToLower(v)] = r.ID
			}
			return nil
		})
		if err != nil {
			p.log.Warn().Err(err).Msg("listing the target's users failed; reconciling without it")
			canList, l = false, nil
		}
		if canList && p.spec.PushGroups {
			err = lister.List(p.listCtx(ctx), mapping.KindGroup, func(r targets.Result) error {
				flat := mapping.Flatten(r.Attrs)
				targetGroups[r.ID] = flat
				if v := getFold(flat, "displayName"); v != "" {
					l.groups[strings.ToLower(v)] = r.ID
				}
				return nil
			})
			if err != nil {
				p.log.Warn().Err(err).Msg("listing the target's groups failed; reconciling without it")
				canList, l = false, nil
			}
		}
	} else {
		l = nil
	}
	// Who is in scope now, for the breaker's count. It only matters for users with an active
	// account: with none (an initial sync) the enumeration is skipped; should one appear
	// before the transaction below, it runs then.
	// While a scope group is missing nothing is deprovisioned (scope.go): none is predicted.
	held := p.held()
	var inScope map[string]bool
	p.mu.Lock()
	anyActive := p.users.anyActive()
	p.mu.Unlock()
	if anyActive && !held {
		var err error
		if inScope, err = p.scopeNow(ctx); err != nil {
			return err
		}
	}
	var drift, lost int
	update := func(tx *state.Tx) error {
		drift, lost = 0, 0
		adopted, err := p.adoptListed(tx, targetUsers)
		if err != nil {
			return err
		}
		ids, err := tx.IDMap(idmapName(p.spec.Name))
		if err != nil {
			return err
		}
		type upd struct {
			id  string
			rec record
		}
		var updates []upd
		var predicted []string
		err = ids.ForEach(func(id string, en state.IDEntry) error {
			r := recordFrom(en)
			if r.TargetID == "" {
				return nil
			}
			if r.Kind != kindGroup && r.Active && !held {
				if inScope == nil {
					return errNeedScope
				}
				if !inScope[id] {
					predicted = append(predicted, id)
				}
			}
			if !canList {
				return nil
			}
			have, ok := targetUsers[r.TargetID]
			if r.Kind == kindGroup {
				have, ok = targetGroups[r.TargetID]
				if !p.spec.PushGroups {
					return nil
				}
			}
			if !ok {
				lost++
				r.TargetID, r.Attrs, r.Hash = "", nil, ""
				updates = append(updates, upd{id, r})
				return nil
			}
			changed := false
			for k, v := range r.Attrs {
				if tv, ok := have[k]; !ok && v != "" || ok && tv != v {
					if ok {
						r.Attrs[k] = tv
					} else {
						delete(r.Attrs, k)
					}
					changed = true
				}
			}
			if changed {
				drift++
				r.Hash = ""
				updates = append(updates, upd{id, r})
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, u := range updates {
			if err := ids.Put(u.id, u.rec.entry()); err != nil {
				return err
			}
			if u.rec.TargetID == "" && u.rec.Kind == kindGroup {
				if err := p.deleteMembers(tx, u.id); err != nil {
					return err
				}
			}
		}
		// An active account out of scope is read again and deprovisioned: the pass's
		// enumeration only covers the users the directory still shows, and one deleted
		// while its deprovision was held (scope.go) is no longer there.
		// Counted first: a trip's commit callback (the breaker's mirror) then runs before
		// the one that schedules the items.
		if _, err := p.noteDeprovisions(tx, predicted, "reconcile"); err != nil {
			return err
		}
		refresh, err := p.queueRefresh(tx, predicted, "reconcile")
		if err != nil {
			return err
		}
		tx.OnCommit(func() {
			p.mu.Lock()
			for id, active := range adopted {
				p.users.set(id, active)
			}
			for _, u := range updates {
				if u.rec.TargetID == "" {
					p.users.remove(u.id)
					delete(p.groups, u.id)
				}
			}
			p.mu.Unlock()
			refresh()
		})
		return nil
	}
	err := p.e.o.State.Update(update)
	if errors.Is(err, errNeedScope) {
		if inScope, err = p.scopeNow(ctx); err != nil {
			return err
		}
		err = p.e.o.State.Update(update)
	}
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.listing = l
	p.mu.Unlock()
	if drift > 0 || lost > 0 {
		p.log.Warn().Int("changed_on_target", drift).Int("missing_on_target", lost).Msg("target drifted from what was pushed; the reconcile repairs it")
	}
	return nil
}

// queueRefresh writes a work item for each user of ids asking the worker to read the entry
// again and bring the target in line, keeping an item already queued for it (which is read
// again at delivery anyway, or carries newer content). The function it returns schedules the
// items; call it once tx committed.
func (p *Provisioner) queueRefresh(tx *state.Tx, ids []string, reason string) (func(), error) {
	if len(ids) == 0 {
		return func() {}, nil
	}
	ob, err := tx.Outbox(p.spec.Name)
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	var pushes []pushed
	for _, id := range ids {
		if _, had, err := ob.Get(id); err != nil {
			return nil, err
		} else if had {
			continue
		}
		it, err := ob.Put(id, encodeWork(work{Kind: mapping.KindUser, Refresh: true, Changed: now, Reason: reason}))
		if err != nil {
			return nil, err
		}
		pushes = append(pushes, pushed{key: id, seq: it.Seq, ready: it.NotBefore})
	}
	return func() {
		for _, ps := range pushes {
			p.q.push(ps.key, ps.seq, ps.ready)
		}
		p.e.m.enqueued.WithLabelValues(p.spec.Name).Add(float64(len(pushes)))
	}, nil
}

// errNeedScope aborts a reconcile preparation that found an active account without having
// read the scope.
var errNeedScope = errors.New("outbound: the scope is needed")

// scopeNow returns the ids of the users in scope now, from a complete enumeration of the
// directory (an error, never a partial set).
func (p *Provisioner) scopeNow(ctx context.Context) (map[string]bool, error) {
	q := p.e.usersSearch()
	if p.spec.Filter != "" {
		q.Filter = "(&" + q.Filter + p.spec.Filter + ")"
	}
	idAttr := p.e.o.Scope.IDAttribute
	q.Attrs = []string{idAttr}
	scope, _ := p.scopeGroups()
	out := map[string]bool{}
	err := p.e.o.Directory.Walk(ctx, q, func(en mapping.Entry) error {
		if len(p.spec.Groups) == 0 || p.e.idx.memberOfAny(en.DN, scope, p.spec.NestedGroups) {
			out[en.First(idAttr)] = true
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading the scope: %w", err)
	}
	return out, nil
}
