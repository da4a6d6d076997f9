package outbound

import "github.com/scimbridge/scimbridge/bridge/idkeys"

// accounts is a provisioner's set of the users with a target account, by directory id, with
// whether the account is active. It has an entry per such user, so it holds the ids
// compactly (idkeys: a UUID as 16 bytes). It is not safe for concurrent use (p.mu guards it).
type accounts struct{ m idkeys.Map[bool] }

func (a *accounts) set(id string, active bool) { a.m.Set(id, active) }

// get returns whether id has an account (ok) and whether it is active.
func (a *accounts) get(id string) (active, ok bool) { return a.m.Get(id) }

func (a *accounts) remove(id string) { a.m.Delete(id) }

// counts returns how many users have an account, and how many of those are active.
func (a *accounts) counts() (users, active int) {
	a.m.All(func(_ idkeys.Key, on bool) bool {
		if on {
			active++
		}
		return true
	})
	return a.m.Len(), active
}

// anyActive reports whether some account is active.
func (a *accounts) anyActive() bool {
	found := false
	a.m.All(func(_ idkeys.Key, on bool) bool {
		found = on
		return !on
	})
	return found
}

// activeOutside calls fn with the id of every active account whose id in does not have;
// only those ids are made into strings.
func (a *accounts) activeOutside(in map[string]string, fn func(id string)) {
	var keys idkeys.Map[struct{}]
	for id := range in {
		keys.Set(id, struct{}{})
	}
	a.m.All(func(k idkeys.Key, on bool) bool {
		if _, member := keys.GetKey(k); on && !member {
			fn(k.String())
		}
		return true
	})
}
