package outbound

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/mapping"
)

// TestKeysIDAndMapped: only a mapping sending the directory id as externalId lets a listing
// rebuild the id map, and a listed account keeps only the attributes the mapping writes.
func TestKeysIDAndMapped(t *testing.T) {
	um := MergeMapping(mapping.DefaultUserMapping("entryUUID", mapping.ActiveMarker{}), nil)
	require.True(t, keysID(um, "entryUUID"))
	require.False(t, keysID(um, "objectGUID"), "another id attribute")
	require.False(t, keysID(MergeMapping(um, map[string]string{"externalId": "{{ .employeeNumber }}"}), "entryUUID"))
	require.False(t, keysID(MergeMapping(um, map[string]string{"externalId": ""}), "entryUUID"))

	p := &Provisioner{userKeys: lowerKeys(um)}
	got := p.mapped(map[string]string{
		"userName": "ada", `emails[type eq "work"].value`: "ada@example.org", `emails[type eq "home"].value`: "a@home",
		"name.givenName": "Ada", "externalId": "u-1", "groups[value eq \"g\"]": "g", "x-target-only": "1",
	})
	require.Equal(t, map[string]string{
		"userName": "ada", `emails[type eq "work"].value`: "ada@example.org", "name.givenName": "Ada", "externalId": "u-1",
	}, got)
}
