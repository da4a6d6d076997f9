package outbound

import "encoding/hex"

// accounts is a provisioner's set of the users with a target account, by directory id, with
// whether the account is active. It holds one entry per such user, so it is kept small: an id
// in the canonical text form of a UUID (OpenLDAP's entryUUID: 36 characters, lower-case hex)
// is held as its 16 bytes, without a string of its own (about 30 bytes an entry instead of
// about 80: 50 MB less at 1,000,000 users, before the GC's headroom); any other id as its
// string. The zero value is not ready: use newAccounts.
type accounts struct {
	uuids map[[16]byte]bool
	other map[string]bool
}

func newAccounts() accounts {
	return accounts{uuids: map[[16]byte]bool{}, other: map[string]bool{}}
}

// uuidKey parses id when it is a UUID in canonical lower-case form, so that formatting the
// key gives id back exactly; ok is false for any other id.
func uuidKey(id string) (k [16]byte, ok bool) {
	if len(id) != 36 || id[8] != '-' || id[13] != '-' || id[18] != '-' || id[23] != '-' {
		return k, false
	}
	for j, i := range uuidHexAt {
		hi, ok1 := lowerHex(id[i])
		lo, ok2 := lowerHex(id[i+1])
		if !ok1 || !ok2 {
			return k, false
		}
		k[j] = hi<<4 | lo
	}
	return k, true
}

// uuidHexAt is where each byte's two hex digits start in the text form.
var uuidHexAt = [16]int{0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34}

func lowerHex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// uuidString formats a key uuidKey made.
func uuidString(k [16]byte) string {
	var b [36]byte
	hex.Encode(b[0:8], k[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], k[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], k[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], k[8:10])
	b[23] = '-'
	hex.Encode(b[24:], k[10:])
	return string(b[:])
}

func (a accounts) set(id string, active bool) {
	if k, ok := uuidKey(id); ok {
		a.uuids[k] = active
		return
	}
	a.other[id] = active
}

// get returns whether id has an account (ok) and whether it is active.
func (a accounts) get(id string) (active, ok bool) {
	if k, isUUID := uuidKey(id); isUUID {
		active, ok = a.uuids[k]
		return active, ok
	}
	active, ok = a.other[id]
	return active, ok
}

func (a accounts) remove(id string) {
	if k, ok := uuidKey(id); ok {
		delete(a.uuids, k)
		return
	}
	delete(a.other, id)
}

// counts returns how many users have an account, and how many of those are active.
func (a accounts) counts() (users, active int) {
	for _, on := range a.uuids {
		if on {
			active++
		}
	}
	for _, on := range a.other {
		if on {
			active++
		}
	}
	return len(a.uuids) + len(a.other), active
}

// anyActive reports whether some account is active.
func (a accounts) anyActive() bool {
	for _, on := range a.uuids {
		if on {
			return true
		}
	}
	for _, on := range a.other {
		if on {
			return true
		}
	}
	return false
}

// activeOutside calls fn with the id of every active account whose id in is not in; only
// those ids are made into strings.
func (a accounts) activeOutside(in map[string]string, fn func(id string)) {
	var keys map[[16]byte]bool
	for id := range in {
		if k, ok := uuidKey(id); ok {
			if keys == nil {
				keys = make(map[[16]byte]bool, len(in))
			}
			keys[k] = true
		}
	}
	for k, on := range a.uuids {
		if on && !keys[k] {
			fn(uuidString(k))
		}
	}
	for id, on := range a.other {
		if _, ok := in[id]; on && !ok {
			fn(id)
		}
	}
}
