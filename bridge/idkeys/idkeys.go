// Package idkeys holds directory ids compactly in memory. The bridge keeps a few sets with an
// entry per user (a provisioner's accounts, the ids a reconcile pass saw), and at a million
// users the ids' strings were most of them. An id in the canonical text form of a UUID
// (OpenLDAP's entryUUID: 36 characters, lower-case hex and dashes) is held as its 16 bytes,
// without a string of its own: about 30 bytes an entry in a map instead of about 80. Any
// other id (upper case, 389-DS's nsUniqueId, anything an id attribute holds) is held as its
// string, so every id comes back exactly as it was given.
package idkeys

import "encoding/hex"

// Key is an id in the form a Map holds it.
type Key struct {
	uuid   [16]byte
	str    string
	isUUID bool
}

// Of returns the key of id.
func Of(id string) Key {
	if u, ok := parseUUID(id); ok {
		return Key{uuid: u, isUUID: true}
	}
	return Key{str: id}
}

// String returns the id (a new string for a UUID).
func (k Key) String() string {
	if !k.isUUID {
		return k.str
	}
	var b [36]byte
	hex.Encode(b[0:8], k.uuid[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], k.uuid[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], k.uuid[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], k.uuid[8:10])
	b[23] = '-'
	hex.Encode(b[24:], k.uuid[10:])
	return string(b[:])
}

// parseUUID parses id when it is a UUID in canonical lower-case form, so that String gives
// id back exactly; ok is false for any other id.
func parseUUID(id string) (u [16]byte, ok bool) {
	if len(id) != 36 || id[8] != '-' || id[13] != '-' || id[18] != '-' || id[23] != '-' {
		return u, false
	}
	for j, i := range hexAt {
		hi, ok1 := lowerHex(id[i])
		lo, ok2 := lowerHex(id[i+1])
		if !ok1 || !ok2 {
			return u, false
		}
		u[j] = hi<<4 | lo
	}
	return u, true
}

// hexAt is where each byte's two hex digits start in the text form.
var hexAt = [16]int{0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34}

func lowerHex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// Map maps ids to values of type V. The zero value is an empty map ready to use; it is not
// safe for concurrent use.
type Map[V any] struct {
	uuids map[[16]byte]V
	other map[string]V
}

// Set stores v for id.
func (m *Map[V]) Set(id string, v V) { m.SetKey(Of(id), v) }

// SetKey stores v for k.
func (m *Map[V]) SetKey(k Key, v V) {
	if k.isUUID {
		if m.uuids == nil {
			m.uuids = map[[16]byte]V{}
		}
		m.uuids[k.uuid] = v
		return
	}
	if m.other == nil {
		m.other = map[string]V{}
	}
	m.other[k.str] = v
}

// Get returns the value of id; ok is false when the map has none.
func (m *Map[V]) Get(id string) (v V, ok bool) { return m.GetKey(Of(id)) }

// GetKey returns the value of k; ok is false when the map has none.
func (m *Map[V]) GetKey(k Key) (v V, ok bool) {
	if k.isUUID {
		v, ok = m.uuids[k.uuid]
	} else {
		v, ok = m.other[k.str]
	}
	return v, ok
}

// Has reports whether the map has id.
func (m *Map[V]) Has(id string) bool {
	_, ok := m.Get(id)
	return ok
}

// Delete removes id.
func (m *Map[V]) Delete(id string) {
	k := Of(id)
	if k.isUUID {
		delete(m.uuids, k.uuid)
		return
	}
	delete(m.other, k.str)
}

// Len is the number of ids.
func (m *Map[V]) Len() int { return len(m.uuids) + len(m.other) }

// All calls fn for every id, in no particular order, until fn returns false. fn gets the
// key: k.String() makes the id's string only when fn needs it. fn must not change the map.
func (m *Map[V]) All(fn func(k Key, v V) bool) {
	for u, v := range m.uuids {
		if !fn(Key{uuid: u, isUUID: true}, v) {
			return
		}
	}
	for s, v := range m.other {
		if !fn(Key{str: s}, v) {
			return
		}
	}
}
