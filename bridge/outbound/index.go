package outbound

import (
	"maps"
	"strings"
	"sync"

	"github.com/scimbridge/scimbridge/mapping"
)

// index is the engine's in-memory view of group membership: every group under the groups base
// with its member DNs, and the DN of every user the change reader knows. It answers scope
// questions (is this user a member of these groups, directly or through nested groups?) and
// group pushes without a directory round trip. It mirrors the directory, not the state file:
// it is loaded from the directory at start and kept current by every change batch, and since
// the engine works level-triggered (from the current state, never from the change itself), a
// view slightly ahead of the durable cursor is harmless.
type index struct {
	memberAttr string

	mu      sync.RWMutex
	groups  map[string]*groupInfo      // group id → group
	gByDN   map[string]string          // normalised DN → group id
	parents map[string]map[string]bool // normalised member DN → ids of the groups listing it
	uByDN   map[string]string          // normalised DN → user id
	uDN     map[string]string          // user id → normalised DN
}

type groupInfo struct {
	id, dn, ndn string
	// entry holds the group's attributes without its members (for the group mapping).
	entry   mapping.Entry
	members []string // normalised member DNs
}

func newIndex(memberAttr string) *index {
	if memberAttr == "" {
		memberAttr = "member"
	}
	return &index{
		memberAttr: memberAttr,
		groups:     map[string]*groupInfo{},
		gByDN:      map[string]string{},
		parents:    map[string]map[string]bool{},
		uByDN:      map[string]string{},
		uDN:        map[string]string{},
	}
}

// putGroup records (or replaces) group id from its entry.
func (x *index) putGroup(id string, e mapping.Entry) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.removeGroupLocked(id)
	g := &groupInfo{id: id, dn: e.DN, ndn: normDN(e.DN)}
	attrs := make(map[string][]string, len(e.Attrs))
	for k, v := range e.Attrs {
		if strings.EqualFold(k, x.memberAttr) {
			seen := map[string]bool{}
			for _, m := range v {
				n := normDN(memberDN(m))
				if n == "" || seen[n] {
					continue
				}
				seen[n] = true
				g.members = append(g.members, n)
			}
			continue
		}
		attrs[k] = v
	}
	g.entry = mapping.Entry{DN: e.DN, Attrs: attrs}
	x.groups[id] = g
	x.gByDN[g.ndn] = id
	for _, m := range g.members {
		p := x.parents[m]
		if p == nil {
			p = map[string]bool{}
			x.parents[m] = p
		}
		p[id] = true
	}
}

func (x *index) removeGroupLocked(id string) {
	g, ok := x.groups[id]
	if !ok {
		return
	}
	for _, m := range g.members {
		if p := x.parents[m]; p != nil {
			delete(p, id)
			if len(p) == 0 {
				delete(x.parents, m)
			}
		}
	}
	if x.gByDN[g.ndn] == id {
		delete(x.gByDN, g.ndn)
	}
	delete(x.groups, id)
}

func (x *index) deleteGroup(id string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.removeGroupLocked(id)
}

// putUser records the DN of user id. When the user had another DN (a rename), member values
// naming the old DN are rewritten, as the refint overlay does in the directory: a rename keeps
// the user's memberships and so its scope.
func (x *index) putUser(id, dn string) {
	n := normDN(dn)
	x.mu.Lock()
	defer x.mu.Unlock()
	old, had := x.uDN[id]
	if had && old == n {
		return
	}
	if had {
		if x.uByDN[old] == id {
			delete(x.uByDN, old)
		}
		if ps := x.parents[old]; len(ps) > 0 {
			for gid := range ps {
				g := x.groups[gid]
				for i, m := range g.members {
					if m == old {
						g.members[i] = n
					}
				}
			}
			np := x.parents[n]
			if np == nil {
				np = map[string]bool{}
				x.parents[n] = np
			}
			maps.Copy(np, ps)
			delete(x.parents, old)
		}
	}
	x.uDN[id] = n
	x.uByDN[n] = id
}

func (x *index) deleteUser(id string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if n, ok := x.uDN[id]; ok {
		if x.uByDN[n] == id {
			delete(x.uByDN, n)
		}
		delete(x.uDN, id)
	}
}

// canonicalID returns the index's own copy of user id when it has one, else id: maps keyed
// by user id (a provisioner's pushed users) then share the index's strings instead of
// holding a copy each (48 bytes a user: 5 MiB at 100,000 users, before GC headroom).
func (x *index) canonicalID(id string) string {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if n, ok := x.uDN[id]; ok {
		if s, ok := x.uByDN[n]; ok && s == id {
			return s
		}
	}
	return id
}

// userDN returns the normalised DN of user id.
func (x *index) userDN(id string) (string, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	n, ok := x.uDN[id]
	return n, ok
}

// group returns a copy of the group's data.
func (x *index) group(id string) (groupInfo, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	g, ok := x.groups[id]
	if !ok {
		return groupInfo{}, false
	}
	return *g, true
}

// groupIDs resolves configured group DNs to ids; unknown DNs are returned in missing.
func (x *index) groupIDs(dns []string) (ids []string, missing []string) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	for _, dn := range dns {
		if id, ok := x.gByDN[normDN(dn)]; ok {
			ids = append(ids, id)
		} else {
			missing = append(missing, dn)
		}
	}
	return ids, missing
}

// ancestorsLocked returns the groups containing ndn directly, or through nested groups when
// nested is set.
func (x *index) ancestorsLocked(ndn string, nested bool) map[string]bool {
	out := map[string]bool{}
	queue := []string{ndn}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		for gid := range x.parents[cur] {
			if out[gid] {
				continue
			}
			out[gid] = true
			if nested {
				queue = append(queue, x.groups[gid].ndn)
			}
		}
	}
	return out
}

// memberOfAny reports whether the entry at dn is a member of one of the groups (by id).
func (x *index) memberOfAny(dn string, groups map[string]bool, nested bool) bool {
	n := normDN(dn)
	x.mu.RLock()
	defer x.mu.RUnlock()
	for gid := range x.ancestorsLocked(n, nested) {
		if groups[gid] {
			return true
		}
	}
	return false
}

// groupsContaining returns the groups that contain user id (directly or nested).
func (x *index) groupsContaining(id string, nested bool) []string {
	x.mu.RLock()
	defer x.mu.RUnlock()
	n, ok := x.uDN[id]
	if !ok {
		return nil
	}
	var out []string
	for gid := range x.ancestorsLocked(n, nested) {
		out = append(out, gid)
	}
	return out
}

// closure returns the given groups and, when nested, every group inside them.
func (x *index) closure(roots []string, nested bool) map[string]bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.closureLocked(roots, nested)
}

func (x *index) closureLocked(roots []string, nested bool) map[string]bool {
	out := map[string]bool{}
	queue := append([]string(nil), roots...)
	for len(queue) > 0 {
		gid := queue[0]
		queue = queue[1:]
		if out[gid] {
			continue
		}
		g, ok := x.groups[gid]
		if !ok {
			continue
		}
		out[gid] = true
		if !nested {
			continue
		}
		for _, m := range g.members {
			if sub, ok := x.gByDN[m]; ok && !out[sub] {
				queue = append(queue, sub)
			}
		}
	}
	return out
}

// allGroups lists every group id.
func (x *index) allGroups() map[string]bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	out := make(map[string]bool, len(x.groups))
	for id := range x.groups {
		out[id] = true
	}
	return out
}

// usersIn returns the ids of the users that are members of the groups (through nested
// groups when nested), keyed by id with their normalised DN.
func (x *index) usersIn(roots []string, nested bool) map[string]string {
	x.mu.RLock()
	defer x.mu.RUnlock()
	out := map[string]string{}
	for gid := range x.closureLocked(roots, nested) {
		for _, m := range x.groups[gid].members {
			if uid, ok := x.uByDN[m]; ok {
				out[uid] = m
			}
		}
	}
	return out
}

// size reports the number of groups and users known.
func (x *index) size() (groups, users int) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.groups), len(x.uDN)
}
