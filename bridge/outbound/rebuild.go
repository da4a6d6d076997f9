package outbound

import (
	"strings"

	"github.com/scimbridge/scimbridge/bridge/state"
	"github.com/scimbridge/scimbridge/mapping"
)

// AdoptListed turns on (or off again) the rebuilding of the id map from the target listings
// in reconcile passes (adoptListed): on for the pass after this instance took the [ha] lease
// over from another, off once that pass completed.
func (e *Engine) AdoptListed(on bool) { e.adoptListed.Store(on) }

// keysID reports whether the user mapping sends the directory id as externalId (the default):
// then every account the bridge made carries its key, and a target listing can rebuild the
// id map (adoptListed).
func keysID(um map[string]string, idAttr string) bool {
	return idAttr != "" && um["externalId"] == mapping.DefaultUserMapping(idAttr, mapping.ActiveMarker{})["externalId"]
}

// adoptListed adds to the id map, during a reconcile pass, every listed account whose
// externalId names a directory id the map lacks: accounts another instance created (a
// takeover of the [ha] lease) or that a lost state file forgot. What the target holds becomes
// what was last pushed, limited to the attributes the mapping writes, so an account already
// in line gets no request and one whose user was deleted meanwhile is deprovisioned (it is
// active and out of scope). It returns the ids added and whether each is active; the mirror
// is set once tx commits.
//
// It only runs once the engine was told to (AdoptListed): on a target shared with another
// directory's bridge, accounts keyed by ids of that directory would look deleted.
func (p *Provisioner) adoptListed(tx *state.Tx, targetUsers map[string]map[string]string) (map[string]bool, error) {
	if !p.keysID || len(targetUsers) == 0 || !p.e.adoptListed.Load() {
		return nil, nil
	}
	ids, err := tx.IDMap(idmapName(p.spec.Name))
	if err != nil {
		return nil, err
	}
	added := map[string]bool{}
	for tid, flat := range targetUsers {
		key := getFold(flat, "externalId")
		if key == "" {
			continue
		}
		if _, ok, err := ids.Get(key); err != nil {
			return nil, err
		} else if ok {
			continue
		}
		r := record{Kind: kindUser, TargetID: tid, Active: getFold(flat, "active") != "false", Attrs: p.mapped(flat)}
		if err := ids.Put(key, r.entry()); err != nil {
			return nil, err
		}
		added[key] = r.Active
	}
	if len(added) > 0 {
		p.log.Info().Int("accounts", len(added)).Msg("id map rebuilt from the target listing (accounts by externalId)")
	}
	return added, nil
}

func lowerKeys(m map[string]string) map[string]bool {
	out := make(map[string]bool, len(m))
	for k := range m {
		out[strings.ToLower(k)] = true
	}
	return out
}

// mapped keeps of a listed account's attributes those the user mapping writes: an attribute
// only the target sets is neither compared nor removed.
func (p *Provisioner) mapped(flat map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range flat {
		lk := strings.ToLower(k)
		for mk := range p.userKeys {
			if lk == mk || strings.HasPrefix(lk, mk+"[") {
				out[k] = v
				break
			}
		}
	}
	return out
}
