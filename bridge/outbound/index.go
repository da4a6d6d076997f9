package outbound

import (
	"fmt"
	"maps"
	"strings"
	"sync"

	"github.com/scimbridge/scimbridge/mapping"
)

// index is the engine's in-memory view of group membership: every group under the groups base
// with its member DNs, and the users those member values name. It answers scope questions
// (is this user a member of these groups, directly or through nested groups?) and group pushes
// without a directory round trip. It mirrors the directory, not the state file: it is loaded
// at start and kept current by every change batch, and since the engine works
// level-triggered (from the current state, never from the change itself), a view slightly
// ahead of the durable cursor is harmless.
//
// It holds only the users some group lists ("tracked" users), not every user the change
// reader knows: memory grows with group membership, not with the directory (a million users
// in no group cost it nothing). A user becomes tracked when a group lists its DN, through the
// resolve function putGroup is given (the state file's DN → id index, userdns.go), or when
// the user is put at a DN a group lists; it is forgotten when no group lists it any more.
// Invariant: every user of the change reader's id map whose DN a group lists is tracked.
type index struct {
	memberAttr string

	mu      sync.RWMutex
	groups  map[string]*groupInfo      // group id → group
	gByDN   map[string]string          // normalised DN → group id
	parents map[string]map[string]bool // normalised member DN → ids of the groups listing it
	uByDN   map[string]string          // normalised DN → user id, for tracked users
	uDN     map[string]string          // user id → normalised DN, for tracked users
}

// resolver finds the user at a normalised DN among those the change reader knows; ok is
// false when it knows none there. An error means it could not tell.
type resolver func(ndn string) (id string, ok bool, err error)

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

// putGroup records (or replaces) group id from its entry. Member DNs no tracked user holds
// are looked up with resolve (nil: not looked up; Load tracks them from the id map instead).
// On an error nothing changes.
func (x *index) putGroup(id string, e mapping.Entry, resolve resolver) error {
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

	// The lookups are made first (they read the state file), so that an error leaves the
	// index as it was.
	var found map[string]string // member DN → user id
	if resolve != nil {
		x.mu.RLock()
		var todo []string
		for _, m := range g.members {
			if _, ok := x.uByDN[m]; !ok && x.gByDN[m] == "" {
				todo = append(todo, m)
			}
		}
		x.mu.RUnlock()
		for _, m := range todo {
			uid, ok, err := resolve(m)
			if err != nil {
				return fmt.Errorf("outbound: resolving member %q of group %q: %w", m, e.DN, err)
			}
			if ok {
				if found == nil {
					found = map[string]string{}
				}
				found[m] = uid
			}
		}
	}

	x.mu.Lock()
	defer x.mu.Unlock()
	old := x.removeGroupLocked(id)
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
	for m, uid := range found {
		if _, ok := x.uByDN[m]; ok {
			continue
		}
		if _, ok := x.uDN[uid]; ok {
			continue // tracked at another DN: that one is current (putUser moves it)
		}
		x.uDN[uid] = m
		x.uByDN[m] = uid
	}
	x.forgetUnlistedLocked(old)
	return nil
}

// removeGroupLocked removes group id and returns its member DNs (for forgetUnlistedLocked).
func (x *index) removeGroupLocked(id string) []string {
	g, ok := x.groups[id]
	if !ok {
		return nil
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
	return g.members
}

// forgetUnlistedLocked stops tracking the users at the DNs no group lists any more.
func (x *index) forgetUnlistedLocked(dns []string) {
	for _, m := range dns {
		if len(x.parents[m]) > 0 {
			continue
		}
		if uid, ok := x.uByDN[m]; ok {
			delete(x.uByDN, m)
			if x.uDN[uid] == m {
				delete(x.uDN, uid)
			}
		}
	}
}

func (x *index) deleteGroup(id string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.forgetUnlistedLocked(x.removeGroupLocked(id))
}

// putUser records the DN of user id. When the user had another DN (a rename), member values
// naming the old DN are rewritten, as the refint overlay does in the directory: a rename keeps
// the user's memberships and so its scope. A user at a DN no group lists is not tracked.
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
		delete(x.uDN, id)
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
	x.trackLocked(id, n)
}

// trackLocked tracks user id at normalised DN n when a group lists n.
func (x *index) trackLocked(id, n string) {
	if len(x.parents[n]) == 0 {
		return
	}
	if prev, ok := x.uByDN[n]; ok && prev != id && x.uDN[prev] == n {
		delete(x.uDN, prev) // another id held the DN: the latest put is the directory's
	}
	x.uDN[id] = n
	x.uByDN[n] = id
}

// trackListed tracks user id at normalised DN n when a group lists it (Load, from the id
// map).
func (x *index) trackListed(id, n string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.trackLocked(id, n)
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

// size reports the number of groups and of users tracked (those groups list).
func (x *index) size() (groups, users int) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.groups), len(x.uDN)
}
