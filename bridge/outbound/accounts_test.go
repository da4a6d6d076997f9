package outbound

import (
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestAccountsHoldsUUIDsCompactly: canonical UUIDs are held as 16 bytes and come back as the
// same strings; every other id (upper case, another layout, AD's or 389-DS's forms) is held
// as given; the set answers the same either way.
func TestAccountsHoldsUUIDsCompactly(t *testing.T) {
	a := newAccounts()
	ids := map[string]bool{
		"0f8fad5b-d9cb-469f-a165-70867728950e": true,
		"7c9e6679-7425-40de-944b-e07fc1f90ae7": false,
		"0F8FAD5B-D9CB-469F-A165-70867728950E": true,  // upper case: formatting would not give it back
		"66446001-1dd211b2-800000ed-9a4fd1f6":  true,  // 389-DS nsUniqueId
		"0f8fad5b-d9cb-469f-a165-70867728950":  false, // too short
		"0f8fad5b-d9cb-469f-a165-70867728950g": true,  // not hex
		"0f8fad5bd-9cb-469f-a165-70867728950e": true,  // dash misplaced
		"id-a":                                 true,
	}
	for id, on := range ids {
		a.set(id, on)
	}
	require.Len(t, a.uuids, 2)
	require.Len(t, a.other, len(ids)-2)
	for id, on := range ids {
		active, ok := a.get(id)
		require.True(t, ok, id)
		require.Equal(t, on, active, id)
	}
	_, ok := a.get("1f8fad5b-d9cb-469f-a165-70867728950e")
	require.False(t, ok)
	users, active := a.counts()
	require.Equal(t, len(ids), users)
	require.Equal(t, 6, active)
	require.True(t, a.anyActive())

	var outside []string
	a.activeOutside(map[string]string{"0f8fad5b-d9cb-469f-a165-70867728950e": "", "id-a": ""}, func(id string) { outside = append(outside, id) })
	slices.Sort(outside)
	require.Equal(t, []string{"0F8FAD5B-D9CB-469F-A165-70867728950E", "0f8fad5b-d9cb-469f-a165-70867728950g", "0f8fad5bd-9cb-469f-a165-70867728950e", "66446001-1dd211b2-800000ed-9a4fd1f6"}, outside)
	outside = nil
	a.activeOutside(nil, func(id string) { outside = append(outside, id) })
	require.Contains(t, outside, "0f8fad5b-d9cb-469f-a165-70867728950e", "formatted back exactly")
	require.Len(t, outside, 6)

	for id := range ids {
		a.remove(id)
	}
	users, _ = a.counts()
	require.Zero(t, users)
	require.False(t, a.anyActive())
}

// FuzzUUIDKey: a key is made only from an id it formats back to exactly.
func FuzzUUIDKey(f *testing.F) {
	f.Add("0f8fad5b-d9cb-469f-a165-70867728950e")
	f.Add("0F8FAD5B-D9CB-469F-A165-70867728950E")
	f.Add(strings.Repeat("-", 36))
	f.Fuzz(func(t *testing.T, id string) {
		if k, ok := uuidKey(id); ok {
			require.Equal(t, id, uuidString(k))
		}
	})
}
