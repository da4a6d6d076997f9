package outbound

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/scimbridge/scimbridge/bridge/state"
	"github.com/scimbridge/scimbridge/mapping"
	"github.com/scimbridge/scimbridge/targets"
)

// Plan is what a full sync of one provisioner would do now.
type Plan struct {
	Provisioner string `json:"provisioner"`
	// Creates are users the target gets (Adopt set when the target already has an account
	// with the match value, listed).
	Creates  []PlanUser `json:"creates"`
	Updates  []PlanUser `json:"updates"`
	Disables []PlanUser `json:"disables"`
	Deletes  []PlanUser `json:"deletes"`
	// Unchanged counts users in scope whose target account is up to date.
	Unchanged    int         `json:"unchanged"`
	Groups       []PlanGroup `json:"groups,omitempty"`
	Pending      int         `json:"pending"`
	DeadLetters  int         `json:"dead_letters"`
	MaxDeletes   int         `json:"max_deletes"`
	WouldTrip    bool        `json:"would_trip_breaker"`
	Tripped      bool        `json:"breaker_tripped"`
	TargetListed bool        `json:"target_listed"`
	// Warnings are problems found while planning (configured groups that do not exist,
	// entries whose mapping fails, a target that could not be listed).
	Warnings []string `json:"warnings,omitempty"`
}

// PlanUser is one user a sync would touch.
type PlanUser struct {
	ID       string   `json:"id"`
	Name     string   `json:"name"`
	DN       string   `json:"dn,omitempty"`
	TargetID string   `json:"target_id,omitempty"`
	Adopt    bool     `json:"adopt,omitempty"`
	Changes  []string `json:"changes,omitempty"`
}

// PlanGroup is one pushed group a sync would touch.
type PlanGroup struct {
	ID            string `json:"id"`
	Name          string `json:"name"`
	Op            string `json:"op"` // create, update, delete, members
	MembersAdd    int    `json:"members_add,omitempty"`
	MembersRemove int    `json:"members_remove,omitempty"`
}

// Deprovisions is the number of disables and deletes.
func (p Plan) Deprovisions() int { return len(p.Disables) + len(p.Deletes) }

// Plan computes, for each spec, what a full sync would do now, reading the directory, the
// state file and (with listTarget, where the target can list) the target, and writing
// nothing anywhere. The specs need not be the running ones: `scimbridge plan` shows what a
// new configuration would do before it is loaded.
func (e *Engine) Plan(ctx context.Context, specs []Spec, listTarget bool) ([]Plan, error) {
	idx := newIndex(e.o.MemberAttribute)
	if err := loadIndex(ctx, e.o.Directory, e.groupsSearch(), e.o.Scope.IDAttribute, idx); err != nil {
		return nil, err
	}
	idAttr := e.o.Scope.IDAttribute
	// Users are read once; each provisioner evaluates its filter with its own search.
	users := map[string]mapping.Entry{}
	var order []string
	err := e.o.Directory.Walk(ctx, e.usersSearch(), func(en mapping.Entry) error {
		id := en.First(idAttr)
		if id == "" {
			return nil
		}
		idx.putUser(id, en.DN)
		users[id] = en
		order = append(order, id)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("outbound: plan: reading users: %w", err)
	}
	tmp := &Engine{o: e.o, log: e.log, idx: idx, m: e.m}
	var plans []Plan
	for _, s := range specs {
		p, err := tmp.newProvisioner(s)
		if err != nil {
			return nil, err
		}
		pl, err := p.plan(ctx, users, order, listTarget)
		if err != nil {
			return nil, fmt.Errorf("outbound: plan %q: %w", s.Name, err)
		}
		plans = append(plans, pl)
	}
	return plans, nil
}

func (p *Provisioner) plan(ctx context.Context, users map[string]mapping.Entry, order []string, listTarget bool) (Plan, error) {
	pl := Plan{Provisioner: p.spec.Name, MaxDeletes: p.spec.MaxDeletes}
	scope, missing := p.scopeGroups()
	held := len(missing) > 0
	if held {
		pl.Warnings = append(pl.Warnings, "groups: "+heldMessage(missing)+"; nobody is disabled or deleted")
	}
	var inFilter map[string]bool
	if p.spec.Filter != "" {
		var err error
		if inFilter, err = p.scopeNow(ctx); err != nil {
			return pl, err
		}
	}
	listed := map[string]string{}
	if lister, ok := p.spec.Target.(targets.Lister); ok && listTarget {
		err := lister.List(p.listCtx(ctx), mapping.KindUser, func(r targets.Result) error {
			if v := getFold(mapping.Flatten(r.Attrs), p.spec.MatchAttribute); v != "" {
				listed[strings.ToLower(v)] = r.ID
			}
			return nil
		})
		if err != nil {
			pl.Warnings = append(pl.Warnings, "target not listed (adoptions unknown): "+err.Error())
		} else {
			pl.TargetListed = true
		}
	}
	recs := map[string]record{}
	err := p.e.o.State.View(func(tx *state.Tx) error {
		ids, err := tx.IDMap(idmapName(p.spec.Name))
		if err != nil {
			return err
		}
		if err := ids.ForEach(func(id string, e state.IDEntry) error {
			recs[id] = recordFrom(e)
			return nil
		}); err != nil {
			return err
		}
		ob, err := tx.Outbox(p.spec.Name)
		if err != nil {
			return err
		}
		pl.Pending = ob.Len()
		dl, err := tx.DeadLetters(p.spec.Name)
		if err != nil {
			return err
		}
		pl.DeadLetters = dl.Len()
		br, err := storedBreaker(tx, p.spec.Name)
		pl.Tripped = br.Tripped
		return err
	})
	if err != nil {
		return pl, err
	}
	active := map[string]string{} // users active after the sync → target id ("new" for creates)
	seen := map[string]bool{}
	for _, id := range order {
		en := users[id]
		in := (len(p.spec.Groups) == 0 || p.e.idx.memberOfAny(en.DN, scope, p.spec.NestedGroups)) &&
			(p.spec.Filter == "" || inFilter[id])
		rec, has := recs[id]
		seen[id] = true
		if !in {
			if !held {
				p.planOut(&pl, id, en.DN, rec, has)
			}
			continue
		}
		res, err := p.userMap.Render(en)
		if err != nil {
			pl.Warnings = append(pl.Warnings, err.Error())
			continue
		}
		flat := mapping.Flatten(res)
		if getFold(flat, "active") == "" {
			flat["active"] = "true"
		}
		name := getFold(flat, p.spec.MatchAttribute)
		pu := PlanUser{ID: id, Name: name, DN: en.DN}
		if !has || rec.TargetID == "" {
			if tid, ok := listed[strings.ToLower(name)]; ok {
				pu.Adopt, pu.TargetID = true, tid
			}
			pl.Creates = append(pl.Creates, pu)
			active[id] = "new"
			continue
		}
		pu.TargetID = rec.TargetID
		if getFold(flat, "active") != "false" {
			active[id] = rec.TargetID
		}
		patch := mapping.DiffPatch(rec.Attrs, flat)
		if len(patch) == 0 {
			pl.Unchanged++
			continue
		}
		for _, op := range patch {
			pu.Changes = append(pu.Changes, op.Op+" "+op.Path)
		}
		pl.Updates = append(pl.Updates, pu)
	}
	var gone []string
	for id, rec := range recs {
		if !seen[id] && rec.Kind != kindGroup && !held {
			gone = append(gone, id)
		}
	}
	slices.Sort(gone)
	for _, id := range gone {
		rec := recs[id]
		p.planOut(&pl, id, rec.DN, rec, true)
	}
	if p.spec.MaxDeletes > 0 && pl.Deprovisions() > p.spec.MaxDeletes {
		pl.WouldTrip = true
	}
	if p.spec.PushGroups {
		p.planGroups(&pl, recs, active, held)
	}
	return pl, nil
}

func (p *Provisioner) planOut(pl *Plan, id, dn string, rec record, has bool) {
	if !has || rec.TargetID == "" {
		return
	}
	name := getFold(rec.Attrs, p.spec.MatchAttribute)
	if name == "" {
		name = dn
	}
	pu := PlanUser{ID: id, Name: name, DN: dn, TargetID: rec.TargetID}
	switch {
	case p.spec.Deprovision == DeprovisionDelete:
		pl.Deletes = append(pl.Deletes, pu)
	case rec.Active:
		pl.Disables = append(pl.Disables, pu)
	}
}

func (p *Provisioner) planGroups(pl *Plan, recs map[string]record, active map[string]string, held bool) {
	pushedSet := p.pushedGroups()
	gids := make([]string, 0, len(pushedSet))
	for gid := range pushedSet {
		gids = append(gids, gid)
	}
	slices.Sort(gids)
	for _, gid := range gids {
		g, _ := p.e.idx.group(gid)
		_, flat, err := p.renderGroup(g)
		if err != nil {
			pl.Warnings = append(pl.Warnings, err.Error())
			continue
		}
		pg := PlanGroup{ID: gid, Name: getFold(flat, "displayName")}
		rec, has := recs[gid]
		want := 0
		for uid := range p.e.idx.usersIn([]string{gid}, p.spec.NestedGroups) {
			if _, ok := active[uid]; ok {
				want++
			}
		}
		switch {
		case !has || rec.TargetID == "":
			pg.Op, pg.MembersAdd = "create", want
		default:
			have := map[string]string{}
			_ = p.e.o.State.View(func(tx *state.Tx) error {
				b, err := tx.Bucket("outbound", p.spec.Name, "members", gid)
				if err != nil {
					return err
				}
				return b.Scan(nil, func(k, v []byte) (bool, error) {
					have[string(k)] = string(v)
					return true, nil
				})
			})
			for uid := range p.e.idx.usersIn([]string{gid}, p.spec.NestedGroups) {
				if tid, ok := active[uid]; ok && have[uid] != tid {
					pg.MembersAdd++
				}
			}
			for uid, tid := range have {
				if !held && (active[uid] != tid || !p.e.idx.memberOfAny(p.userDNOr(uid, recs), map[string]bool{gid: true}, p.spec.NestedGroups)) {
					pg.MembersRemove++
				}
			}
			if len(mapping.DiffPatch(rec.Attrs, flat)) > 0 {
				pg.Op = "update"
			} else if pg.MembersAdd+pg.MembersRemove > 0 {
				pg.Op = "members"
			}
		}
		if pg.Op != "" {
			pl.Groups = append(pl.Groups, pg)
		}
	}
	for gid, rec := range recs {
		if rec.Kind == kindGroup && rec.TargetID != "" && !pushedSet[gid] && !held {
			pl.Groups = append(pl.Groups, PlanGroup{ID: gid, Name: rec.Attrs["displayName"], Op: "delete"})
		}
	}
}

func (p *Provisioner) userDNOr(uid string, recs map[string]record) string {
	if dn, ok := p.e.idx.userDN(uid); ok {
		return dn
	}
	return recs[uid].DN
}
