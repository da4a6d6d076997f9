package outbound

import (
	"fmt"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestAccounts: counts, the active check and the scope sweep's question (the active accounts
// outside a set of ids), over UUID ids and others alike.
func TestAccounts(t *testing.T) {
	var a accounts
	require.False(t, a.anyActive())
	ids := map[string]bool{
		"0f8fad5b-d9cb-469f-a165-70867728950e": true,
		"7c9e6679-7425-40de-944b-e07fc1f90ae7": false,
		"0F8FAD5B-D9CB-469F-A165-70867728950E": true,
		"66446001-1dd211b2-800000ed-9a4fd1f6":  true,
		"id-a":                                 true,
		"id-b":                                 false,
	}
	for id, on := range ids {
		a.set(id, on)
	}
	for id, on := range ids {
		active, ok := a.get(id)
		require.True(t, ok, id)
		require.Equal(t, on, active, id)
	}
	users, active := a.counts()
	require.Equal(t, len(ids), users)
	require.Equal(t, 4, active)
	require.True(t, a.anyActive())

	var outside []string
	a.activeOutside(map[string]string{"0f8fad5b-d9cb-469f-a165-70867728950e": "", "id-a": "", "7c9e6679-7425-40de-944b-e07fc1f90ae7": ""}, func(id string) { outside = append(outside, id) })
	slices.Sort(outside)
	require.Equal(t, []string{"0F8FAD5B-D9CB-469F-A165-70867728950E", "66446001-1dd211b2-800000ed-9a4fd1f6"}, outside)
	outside = nil
	a.activeOutside(nil, func(id string) { outside = append(outside, id) })
	slices.Sort(outside)
	require.Equal(t, []string{"0F8FAD5B-D9CB-469F-A165-70867728950E", "0f8fad5b-d9cb-469f-a165-70867728950e", "66446001-1dd211b2-800000ed-9a4fd1f6", "id-a"}, outside, "formatted back exactly")

	for id := range ids {
		if ids[id] {
			a.set(id, false)
		}
	}
	require.False(t, a.anyActive())
	for i := range 20 {
		a.set(fmt.Sprintf("0f8fad5b-d9cb-469f-a165-%012d", i), false)
	}
	a.set("id-b", true)
	require.True(t, a.anyActive(), "one active among many")
	a.set("id-b", false)
	for i := range 20 {
		a.remove(fmt.Sprintf("0f8fad5b-d9cb-469f-a165-%012d", i))
	}
	for id := range ids {
		a.remove(id)
	}
	users, _ = a.counts()
	require.Zero(t, users)
}
