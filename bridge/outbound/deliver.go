package outbound

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/scimbridge/scimbridge/bridge/state"
	"github.com/scimbridge/scimbridge/ldapstore"
	"github.com/scimbridge/scimbridge/mapping"
	"github.com/scimbridge/scimbridge/targets"
)

// outcome is what one delivery did: the target operations it performed, the state changes
// they imply (applied in the completion transaction whatever the final error, since the
// target changed), and the error that ended it.
type outcome struct {
	err     error
	audits  []audit
	effects []func(tx *state.Tx) error
	// after runs once the completion committed (in-memory mirrors).
	after []func()
	// regroup names pushed groups whose membership must be recomputed.
	regroup []string
}

type audit struct {
	op       string
	kind     mapping.Kind
	targetID string
	result   string
}

func (o *outcome) effect(fn func(tx *state.Tx) error) { o.effects = append(o.effects, fn) }

// errBreaker stops a deprovision the deletion breaker refused; the item waits.
var errBreaker = errors.New("deletion breaker tripped: waiting for an admin (scimbridge sync --allow-deletes)")

// directoryError is a failure to read the directory during a delivery: the item waits, and
// it counts neither against the target nor against the item.
type directoryError struct{ err error }

func (e *directoryError) Error() string { return "reading the directory: " + e.err.Error() }
func (e *directoryError) Unwrap() error { return e.err }

// process delivers the pending item of key and hands the result to the committer.
func (p *Provisioner) process(ctx context.Context, key string, probe bool) {
	var (
		it     state.Item
		found  bool
		rec    record
		hasRec bool
	)
	// One read transaction for the item and what was pushed for its entry.
	err := p.e.o.State.View(func(tx *state.Tx) error {
		ob, err := tx.Outbox(p.spec.Name)
		if err != nil {
			return err
		}
		if it, found, err = ob.Get(key); err != nil || !found {
			return err
		}
		ids, err := tx.IDMap(idmapName(p.spec.Name))
		if err != nil {
			return err
		}
		e, ok, err := ids.Get(key)
		if err != nil || !ok {
			return err
		}
		rec, hasRec = recordFrom(e), true
		return nil
	})
	if err != nil || !found {
		if err != nil {
			p.log.Error().Err(err).Msg("reading the outbox")
		}
		if probe {
			p.health.release()
		}
		p.q.done(key, err != nil, time.Now().Add(time.Second))
		return
	}
	start := time.Now()
	var out outcome
	w, err := decodeWork(it)
	if err != nil {
		out.err = &targets.PermanentError{Err: fmt.Errorf("outbound: unreadable outbox item: %w", err)}
	} else {
		out = p.deliver(ctx, key, w, it, rec, hasRec)
	}
	c := &completion{p: p, key: key, it: it, w: w, out: out, probe: probe, started: start}
	c.counted = true
	if out.err != nil && ctx.Err() == nil {
		var de *directoryError
		switch {
		case errors.Is(out.err, errBreaker), errors.As(out.err, &de):
			c.counted = false
			if probe {
				p.health.release()
			}
		default:
			after, transient := targets.IsRetryable(out.err)
			c.after = after
			c.counted = p.health.report(time.Now(), key, false, transient, after, probe)
		}
	} else if out.err == nil {
		p.health.report(time.Now(), key, true, false, 0, probe)
	} else if probe {
		p.health.release()
	}
	p.e.commit(c)
}

func (p *Provisioner) deliver(ctx context.Context, key string, w work, it state.Item, rec record, hasRec bool) outcome {
	if w.Kind == mapping.KindGroup {
		return p.deliverGroup(ctx, key, rec, hasRec)
	}
	return p.deliverUser(ctx, key, w, it, rec, hasRec)
}

// readUser reads user id from the directory now: nil when it is gone, and whether it matches
// the provisioner's filter.
func (p *Provisioner) readUser(ctx context.Context, id string) (*mapping.Entry, bool, error) {
	q := p.e.usersSearch()
	idAttr := p.e.o.Scope.IDAttribute
	e, err := p.e.o.Directory.FindByID(ctx, q, idAttr, id)
	if errors.Is(err, ldapstore.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	if p.spec.Filter == "" {
		return &e, true, nil
	}
	q.Filter = "(&" + q.Filter + p.spec.Filter + ")"
	q.Attrs = []string{idAttr}
	_, err = p.e.o.Directory.FindByID(ctx, q, idAttr, id)
	switch {
	case errors.Is(err, ldapstore.ErrNotFound):
		return &e, false, nil
	case err != nil:
		return nil, false, err
	}
	return &e, true, nil
}

func getFold(m map[string]string, k string) string {
	if v, ok := m[k]; ok {
		return v
	}
	for kk, v := range m {
		if strings.EqualFold(kk, k) {
			return v
		}
	}
	return ""
}

func (p *Provisioner) deliverUser(ctx context.Context, key string, w work, it state.Item, rec record, hasRec bool) outcome {
	var (
		out      outcome
		err      error
		entry    *mapping.Entry
		inFilter = true
		hash     = w.Hash
	)
	switch {
	case w.Gone:
	case w.Refresh || w.Entry == nil || w.Mapping != p.mappingHash || (p.spec.Filter != "" && w.InFilter == nil):
		entry, inFilter, err = p.readUser(ctx, key)
		if err != nil {
			return outcome{err: &directoryError{err: err}}
		}
		if entry != nil {
			hash = ldapstore.EntryHash(*entry)
		}
	default:
		entry = &mapping.Entry{DN: w.DN, Attrs: w.Entry}
		if w.InFilter != nil {
			inFilter = *w.InFilter
		}
	}
	if entry != nil && inFilter && p.inGroups(entry.DN) {
		p.provisionUser(ctx, key, *entry, hash, rec, hasRec, it, &out)
	} else {
		p.deprovisionUser(ctx, key, rec, hasRec, &out)
	}
	return out
}

// heldDeprovision reports, and logs, a deprovision that is not sent because a configured
// scope group is missing (see scope.go); the item completes, and what it would have done is
// decided again once the group is back.
func (p *Provisioner) heldDeprovision(key string, kind string) bool {
	if !p.held() {
		return false
	}
	p.log.Info().Str("id", key).Str("resource", kind).Msg("deprovision not sent: a scope group is missing")
	return true
}

// find looks a resource up on the target by its match value: in the reconcile pass's listing
// when there is one and it can be trusted for key, else with Find — or not at all for a user
// under create_lookup = "conflict" (found is then false and create POSTs first). attrs is
// nil when the listing answered.
//
// The listing is trusted only when no POST for key can have escaped it. Every listing is
// taken in this process, so it is later than anything an earlier process sent (a crash, a
// SIGKILL: those POSTs, answered or not, are on the target when we list it). What it can miss
// is a POST of this process that was in flight while it was taken, or sent after it, and
// whose outcome was not recorded: p.posted holds those keys (set before the POST leaves,
// cleared when a delivery of the key commits successfully, which records the account). The
// persisted attempt count is checked as well (attempts > 0: an earlier delivery failed, its
// POST may have succeeded); it is not enough alone, because failures that the circuit breaker
// or a Retry-After does not count, and shutdowns, leave it at 0.
func (p *Provisioner) find(ctx context.Context, key string, kind mapping.Kind, attr, value string, attempts int) (id string, attrs map[string]any, found, listed bool, err error) {
	p.mu.Lock()
	l := p.listing
	_, posted := p.posted[key]
	_, inherited := p.inherited[key]
	p.mu.Unlock()
	if l != nil && attempts == 0 && !posted {
		m := l.users
		if kind == mapping.KindGroup {
			m = l.groups
		}
		id, ok := m[strings.ToLower(value)]
		return id, nil, ok, true, nil
	}
	if p.spec.CreateLookup == CreateByConflict && kind == mapping.KindUser && attempts == 0 && !posted && !inherited {
		// create_lookup = "conflict": POST first, the target's 409 on a duplicate says the
		// account exists (create adopts it then). Only for a key no POST can have left for
		// without its outcome recorded: not by this process (posted), not by an earlier
		// one or a replaced provisioner (inherited: pending when the state was loaded), and
		// no failed delivery since (attempts) — those are looked up, as by default.
		return "", nil, false, false, nil
	}
	res, ok, err := p.lookup(ctx, kind, attr, value)
	if err != nil || !ok {
		return "", nil, false, false, err
	}
	return res.ID, res.Attrs, true, false, nil
}

// create makes a resource on the target, or adopts the one that already has its match value.
// It returns the target id, and what the target holds when it adopted (nil after a create, or
// when unknown).
func (p *Provisioner) create(ctx context.Context, key string, kind mapping.Kind, res map[string]any, attr, value string, attempts int, out *outcome) (string, map[string]string, bool, error) {
	if value != "" {
		id, attrs, found, _, err := p.find(ctx, key, kind, attr, value, attempts)
		if err != nil {
			return "", nil, false, err
		}
		if found {
			out.audits = append(out.audits, audit{op: "adopt", kind: kind, targetID: id, result: "ok"})
			var have map[string]string
			if attrs != nil {
				have = mapping.Flatten(attrs)
			}
			return id, have, true, nil
		}
	}
	// The lookup just showed the target has no such resource (or create_lookup = "conflict"
	// lets the target's 409 say so): POST without another one. From now on until a delivery
	// of key commits, the outcome of this POST is unknown to any listing (see find).
	p.mu.Lock()
	p.posted[key] = struct{}{}
	p.mu.Unlock()
	r, err := p.apply(ctx, mapping.Op{Kind: kind, Type: mapping.OpCreate, Resource: res})
	if pe, ok := errors.AsType[*targets.PermanentError](err); ok && pe.Status == 409 && value != "" {
		// It exists (created meanwhile by someone else, or create_lookup = "conflict"):
		// adopt it.
		res2, found, ferr := p.lookup(ctx, kind, attr, value)
		if ferr != nil {
			return "", nil, false, ferr
		}
		if found {
			out.audits = append(out.audits, audit{op: "adopt", kind: kind, targetID: res2.ID, result: "ok"})
			var have map[string]string
			if res2.Attrs != nil {
				have = mapping.Flatten(res2.Attrs)
			}
			return res2.ID, have, true, nil
		}
	}
	if err != nil {
		return "", nil, false, err
	}
	out.audits = append(out.audits, audit{op: string(mapping.OpCreate), kind: kind, targetID: r.ID, result: "ok"})
	return r.ID, nil, false, nil
}

func (p *Provisioner) provisionUser(ctx context.Context, key string, entry mapping.Entry, hash string, rec record, hasRec bool, it state.Item, out *outcome) {
	res, err := p.userMap.Render(entry)
	if err != nil {
		out.err = &targets.PermanentError{Err: fmt.Errorf("provisioner %q: %w", p.spec.Name, err)}
		return
	}
	flat := mapping.Flatten(res)
	if getFold(flat, "active") == "" {
		flat["active"] = "true"
	}
	match := getFold(flat, p.spec.MatchAttribute)
	wasActive := hasRec && rec.TargetID != "" && rec.Active
	newAccount := !hasRec || rec.TargetID == ""
	if !hasRec {
		rec = record{Kind: kindUser}
	}
	rec.DN, rec.Kind = entry.DN, kindUser
	for attempt := 0; attempt < 2; attempt++ {
		if rec.TargetID == "" {
			id, have, adopted, err := p.create(ctx, key, mapping.KindUser, res, p.spec.MatchAttribute, match, it.Attempts, out)
			if err != nil {
				out.err = err
				return
			}
			rec.TargetID = id
			if !adopted {
				rec.Attrs = flat
				break
			}
			rec.Attrs = have // nil when unknown: replaced whole below
		}
		var op mapping.Op
		if rec.Attrs == nil {
			op = mapping.Op{Kind: mapping.KindUser, Type: mapping.OpReplace, TargetID: rec.TargetID, Resource: res}
		} else if patch := mapping.DiffPatch(rec.Attrs, flat); len(patch) > 0 {
			op = mapping.Op{Kind: mapping.KindUser, Type: mapping.OpUpdate, TargetID: rec.TargetID, Patch: patch}
		}
		if op.Type == "" {
			break
		}
		_, err := p.apply(ctx, op)
		if targets.IsNotFound(err) && attempt == 0 {
			// The target lost the account our id map points to: create it again (or adopt
			// the one with its match value).
			p.log.Warn().Str("id", key).Str("target_id", rec.TargetID).Msg("target no longer has the account; creating it again")
			rec.TargetID, rec.Attrs = "", nil
			continue
		}
		if err != nil {
			out.audits = append(out.audits, audit{op: string(op.Type), kind: mapping.KindUser, targetID: rec.TargetID, result: "error"})
			out.err = err
			if rec.TargetID != "" && newAccount {
				// The account exists now (created or adopted): remember it, and that what it
				// holds is unknown, so the retry sends every attribute.
				r := rec
				r.Attrs, r.Active, r.Hash, r.Mapping = nil, true, "", ""
				p.putRecord(out, key, r, true)
			}
			return
		}
		out.audits = append(out.audits, audit{op: string(op.Type), kind: mapping.KindUser, targetID: rec.TargetID, result: "ok"})
		rec.Attrs = flat
		break
	}
	rec.Attrs = flat
	rec.Active = getFold(flat, "active") != "false"
	rec.Hash, rec.Mapping = hash, p.mappingHash
	p.putRecord(out, key, rec, true)
	if p.spec.PushGroups && (newAccount || wasActive != rec.Active) {
		out.regroup = append(out.regroup, p.e.idx.groupsContaining(key, p.spec.NestedGroups)...)
	}
}

// putRecord stores rec for key in the completion, and mirrors it.
func (p *Provisioner) putRecord(out *outcome, key string, rec record, user bool) {
	out.effect(func(tx *state.Tx) error {
		ids, err := tx.IDMap(idmapName(p.spec.Name))
		if err != nil {
			return err
		}
		return ids.Put(key, rec.entry())
	})
	out.after = append(out.after, func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if user {
			p.users.set(key, rec.Active)
		} else {
			p.groups[key] = true
		}
	})
}

func (p *Provisioner) deleteRecord(out *outcome, key string, user bool) {
	out.effect(func(tx *state.Tx) error {
		ids, err := tx.IDMap(idmapName(p.spec.Name))
		if err != nil {
			return err
		}
		if !user {
			if err := p.deleteMembers(tx, key); err != nil {
				return err
			}
		}
		return ids.Delete(key)
	})
	out.after = append(out.after, func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if user {
			p.users.remove(key)
		} else {
			delete(p.groups, key)
		}
	})
}

func (p *Provisioner) deprovisionUser(ctx context.Context, key string, rec record, hasRec bool, out *outcome) {
	if !hasRec {
		return
	}
	if rec.TargetID == "" {
		p.deleteRecord(out, key, true)
		return
	}
	if p.spec.Deprovision == DeprovisionDisable && !rec.Active {
		return // already disabled
	}
	if p.heldDeprovision(key, kindUser) {
		return
	}
	if rec.Active {
		if err := p.checkDeprovision(key); err != nil {
			out.err = err
			return
		}
	}
	op := mapping.Op{Kind: mapping.KindUser, Type: mapping.OpDisable, TargetID: rec.TargetID}
	if p.spec.Deprovision == DeprovisionDelete {
		op.Type = mapping.OpDelete
	}
	_, err := p.apply(ctx, op)
	switch {
	case targets.IsNotFound(err):
		p.log.Info().Str("id", key).Str("target_id", rec.TargetID).Msg("account already gone on the target")
		out.audits = append(out.audits, audit{op: string(op.Type), kind: mapping.KindUser, targetID: rec.TargetID, result: "gone"})
		p.deleteRecord(out, key, true)
	case err != nil:
		out.audits = append(out.audits, audit{op: string(op.Type), kind: mapping.KindUser, targetID: rec.TargetID, result: "error"})
		out.err = err
		return
	case op.Type == mapping.OpDelete:
		out.audits = append(out.audits, audit{op: string(op.Type), kind: mapping.KindUser, targetID: rec.TargetID, result: "ok"})
		p.deleteRecord(out, key, true)
	default:
		out.audits = append(out.audits, audit{op: string(op.Type), kind: mapping.KindUser, targetID: rec.TargetID, result: "ok"})
		rec.Active = false
		if rec.Attrs == nil {
			rec.Attrs = map[string]string{}
		}
		rec.Attrs["active"] = "false"
		// No entry digest: whatever the entry holds when it comes back into scope is
		// delivered again.
		rec.Hash = ""
		p.putRecord(out, key, rec, true)
	}
	if p.spec.PushGroups {
		out.regroup = append(out.regroup, p.groupsWithMember(key)...)
	}
}

// groupsWithMember lists the pushed groups whose pushed membership includes key.
func (p *Provisioner) groupsWithMember(key string) []string {
	p.mu.Lock()
	gids := make([]string, 0, len(p.groups))
	for gid := range p.groups {
		gids = append(gids, gid)
	}
	p.mu.Unlock()
	var out []string
	_ = p.e.o.State.View(func(tx *state.Tx) error {
		for _, gid := range gids {
			b, err := tx.Bucket("outbound", p.spec.Name, "members", gid)
			if err != nil {
				return err
			}
			if b.Get([]byte(key)) != nil {
				out = append(out, gid)
			}
		}
		return nil
	})
	return out
}

// deleteMembers forgets the pushed membership of group gid.
func (p *Provisioner) deleteMembers(tx *state.Tx, gid string) error {
	b, err := tx.Bucket("outbound", p.spec.Name, "members", gid)
	if err != nil {
		return err
	}
	var keys [][]byte
	if err := b.Scan(nil, func(k, _ []byte) (bool, error) {
		keys = append(keys, append([]byte(nil), k...))
		return true, nil
	}); err != nil {
		return err
	}
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// renderGroup renders the group mapping for a group entry.
func (p *Provisioner) renderGroup(g groupInfo) (map[string]any, map[string]string, error) {
	res, err := p.groupMap.Render(g.entry)
	if err != nil {
		return nil, nil, err
	}
	delete(res, "schemas")
	return res, mapping.Flatten(res), nil
}

func (p *Provisioner) deliverGroup(ctx context.Context, key string, rec record, hasRec bool) outcome {
	var out outcome
	g, exists := p.e.idx.group(key)
	if !exists || !p.pushedGroups()[key] {
		if !hasRec || rec.TargetID == "" {
			if hasRec {
				p.deleteRecord(&out, key, false)
			}
			return out
		}
		if p.heldDeprovision(key, kindGroup) {
			return out
		}
		_, err := p.apply(ctx, mapping.Op{Kind: mapping.KindGroup, Type: mapping.OpDelete, TargetID: rec.TargetID})
		if err != nil && !targets.IsNotFound(err) {
			out.audits = append(out.audits, audit{op: string(mapping.OpDelete), kind: mapping.KindGroup, targetID: rec.TargetID, result: "error"})
			out.err = err
			return out
		}
		out.audits = append(out.audits, audit{op: string(mapping.OpDelete), kind: mapping.KindGroup, targetID: rec.TargetID, result: "ok"})
		p.deleteRecord(&out, key, false)
		return out
	}
	res, flat, err := p.renderGroup(g)
	if err != nil {
		return outcome{err: &targets.PermanentError{Err: fmt.Errorf("provisioner %q: group_mapping: %w", p.spec.Name, err)}}
	}
	name := getFold(flat, "displayName")
	if !hasRec {
		rec = record{Kind: kindGroup}
	}
	rec.DN, rec.Kind, rec.Active = g.dn, kindGroup, true
	fresh := rec.TargetID == ""
	for attempt := 0; attempt < 2; attempt++ {
		if rec.TargetID == "" {
			id, have, adopted, err := p.create(ctx, key, mapping.KindGroup, res, "displayName", name, 0, &out)
			if err != nil {
				out.err = err
				return out
			}
			rec.TargetID, fresh = id, true
			if !adopted {
				rec.Attrs = flat
				break
			}
			rec.Attrs = have
			if rec.Attrs != nil {
				// Members are not attributes we diff: they go as deltas below.
				for k := range rec.Attrs {
					if strings.HasPrefix(strings.ToLower(k), "members") {
						delete(rec.Attrs, k)
					}
				}
			}
		}
		var op mapping.Op
		if rec.Attrs == nil {
			op = mapping.Op{Kind: mapping.KindGroup, Type: mapping.OpReplace, TargetID: rec.TargetID, Resource: res}
		} else if patch := mapping.DiffPatch(rec.Attrs, flat); len(patch) > 0 {
			op = mapping.Op{Kind: mapping.KindGroup, Type: mapping.OpUpdate, TargetID: rec.TargetID, Patch: patch}
		}
		if op.Type == "" {
			break
		}
		if op.Type == mapping.OpReplace {
			// A PUT without members would empty the group on many servers: send the
			// attributes as a PATCH instead.
			op = mapping.Op{Kind: mapping.KindGroup, Type: mapping.OpUpdate, TargetID: rec.TargetID, Patch: mapping.DiffPatch(nil, flat)}
		}
		_, err := p.apply(ctx, op)
		if targets.IsNotFound(err) && attempt == 0 {
			rec.TargetID, rec.Attrs = "", nil
			continue
		}
		if err != nil {
			out.audits = append(out.audits, audit{op: string(op.Type), kind: mapping.KindGroup, targetID: rec.TargetID, result: "error"})
			out.err = err
			if fresh {
				r := rec
				r.Attrs = nil
				p.putRecord(&out, key, r, false)
				out.effect(func(tx *state.Tx) error { return p.deleteMembers(tx, key) })
			}
			return out
		}
		out.audits = append(out.audits, audit{op: string(op.Type), kind: mapping.KindGroup, targetID: rec.TargetID, result: "ok"})
		break
	}
	rec.Attrs, rec.Mapping = flat, p.mappingHash
	if fresh {
		out.effect(func(tx *state.Tx) error { return p.deleteMembers(tx, key) })
	}
	p.putRecord(&out, key, rec, false)

	// Membership: what the target should have (members of the group that have an active
	// account there) against what was pushed.
	want, have, err := p.memberSets(key, fresh)
	if err != nil {
		out.err = err
		return out
	}
	var adds, removes []map[string]string
	var addIDs, removeIDs []string
	for uid, tid := range want {
		if have[uid] != tid {
			adds = append(adds, map[string]string{"value": tid})
			addIDs = append(addIDs, uid)
		}
	}
	held := p.held() // no membership removal while a scope group is missing
	for uid, tid := range have {
		if want[uid] != tid && !held {
			removes = append(removes, map[string]string{"value": tid})
			removeIDs = append(removeIDs, uid)
		}
	}
	if len(adds) == 0 && len(removes) == 0 {
		return out
	}
	sortByValue(adds)
	sortByValue(removes)
	var patch []mapping.PatchOp
	if len(removes) > 0 {
		patch = append(patch, mapping.PatchOp{Op: "remove", Path: "members", Value: removes})
	}
	if len(adds) > 0 {
		patch = append(patch, mapping.PatchOp{Op: "add", Path: "members", Value: adds})
	}
	_, err = p.apply(ctx, mapping.Op{Kind: mapping.KindGroup, Type: mapping.OpMembers, TargetID: rec.TargetID, Patch: patch})
	if targets.IsNotFound(err) {
		// The group is gone on the target: forget it; the retry creates it again.
		p.deleteRecord(&out, key, false)
		out.err = &targets.RetryableError{Err: fmt.Errorf("group %s vanished from the target: %w", rec.TargetID, err)}
		return out
	}
	if err != nil {
		out.audits = append(out.audits, audit{op: string(mapping.OpMembers), kind: mapping.KindGroup, targetID: rec.TargetID, result: "error"})
		out.err = err
		return out
	}
	out.audits = append(out.audits, audit{op: string(mapping.OpMembers), kind: mapping.KindGroup, targetID: rec.TargetID, result: fmt.Sprintf("ok +%d -%d", len(adds), len(removes))})
	out.effect(func(tx *state.Tx) error {
		b, err := tx.Bucket("outbound", p.spec.Name, "members", key)
		if err != nil {
			return err
		}
		for _, uid := range removeIDs {
			if err := b.Delete([]byte(uid)); err != nil {
				return err
			}
		}
		for _, uid := range addIDs {
			if err := b.Put([]byte(uid), []byte(want[uid])); err != nil {
				return err
			}
		}
		return nil
	})
	return out
}

func sortByValue(l []map[string]string) {
	slices.SortFunc(l, func(a, b map[string]string) int { return strings.Compare(a["value"], b["value"]) })
}

// memberSets returns, for group gid, the members the target should have (directory id →
// target id of their active account) and those pushed so far (none when the group is new on
// the target).
func (p *Provisioner) memberSets(gid string, fresh bool) (want, have map[string]string, err error) {
	members := p.e.idx.usersIn([]string{gid}, p.spec.NestedGroups)
	want = map[string]string{}
	have = map[string]string{}
	err = p.e.o.State.View(func(tx *state.Tx) error {
		ids, err := tx.IDMap(idmapName(p.spec.Name))
		if err != nil {
			return err
		}
		for uid := range members {
			e, ok, err := ids.Get(uid)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			r := recordFrom(e)
			if r.TargetID != "" && r.Active && r.Kind == kindUser {
				want[uid] = r.TargetID
			}
		}
		if fresh {
			return nil
		}
		b, err := tx.Bucket("outbound", p.spec.Name, "members", gid)
		if err != nil {
			return err
		}
		return b.Scan(nil, func(k, v []byte) (bool, error) {
			have[string(k)] = string(v)
			return true, nil
		})
	})
	return want, have, err
}
