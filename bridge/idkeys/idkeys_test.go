package idkeys

import (
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestMapHoldsUUIDsCompactly: canonical UUIDs are held as 16 bytes and come back as the same
// strings; every other id (upper case, another layout, 389-DS's nsUniqueId, not hex) is
// held as given; the map answers the same either way.
func TestMapHoldsUUIDsCompactly(t *testing.T) {
	var m Map[bool]
	_, ok := m.Get("anything")
	require.False(t, ok, "the zero value is an empty map")
	ids := map[string]bool{
		"0f8fad5b-d9cb-469f-a165-70867728950e": true,
		"7c9e6679-7425-40de-944b-e07fc1f90ae7": false,
		"0F8FAD5B-D9CB-469F-A165-70867728950E": true,  // upper case: String would not give it back
		"66446001-1dd211b2-800000ed-9a4fd1f6":  true,  // 389-DS nsUniqueId
		"0f8fad5b-d9cb-469f-a165-70867728950":  false, // too short
		"0f8fad5b-d9cb-469f-a165-70867728950g": true,  // not hex
		"0f8fad5bd-9cb-469f-a165-70867728950e": true,  // a dash misplaced
		"id-a":                                 true,
	}
	for id, v := range ids {
		m.Set(id, v)
	}
	require.Len(t, m.uuids, 2)
	require.Len(t, m.other, len(ids)-2)
	require.Equal(t, len(ids), m.Len())
	for id, want := range ids {
		v, ok := m.Get(id)
		require.True(t, ok, id)
		require.Equal(t, want, v, id)
		require.True(t, m.Has(id))
	}
	require.False(t, m.Has("1f8fad5b-d9cb-469f-a165-70867728950e"))

	var all []string
	m.All(func(k Key, v bool) bool {
		require.Equal(t, ids[k.String()], v)
		all = append(all, k.String())
		return true
	})
	slices.Sort(all)
	want := make([]string, 0, len(ids))
	for id := range ids {
		want = append(want, id)
	}
	slices.Sort(want)
	require.Equal(t, want, all, "every id comes back exactly")
	n := 0
	m.All(func(Key, bool) bool { n++; return n < 3 })
	require.Equal(t, 3, n, "stops when told")

	for id := range ids {
		m.Delete(id)
	}
	require.Zero(t, m.Len())
}

// FuzzKey: an id's key gives the id back, and a UUID key is made only from an id it formats
// back to exactly.
func FuzzKey(f *testing.F) {
	f.Add("0f8fad5b-d9cb-469f-a165-70867728950e")
	f.Add("0F8FAD5B-D9CB-469F-A165-70867728950E")
	f.Add(strings.Repeat("-", 36))
	f.Fuzz(func(t *testing.T, id string) {
		require.Equal(t, id, Of(id).String())
	})
}
