package outbound

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/bridge/state"
	"github.com/scimbridge/scimbridge/mapping"
)

func TestWorkCodecRoundTrips(t *testing.T) {
	yes, no := true, false
	at := time.Date(2026, 12, 3, 17, 30, 1, 234567890, time.UTC)
	for _, w := range []work{
		{},
		{Kind: mapping.KindGroup, Changed: at, Reason: "membership"},
		{Kind: mapping.KindUser, Refresh: true, Changed: at, Reason: "scope"},
		{Kind: mapping.KindUser, DN: "uid=a,ou=people", Gone: true, Reason: "deleted"},
		{
			Kind: mapping.KindUser, DN: "uid=ada,ou=people,dc=example,dc=org", InFilter: &yes, Hash: "01a36b12", Mapping: "b8962caf",
			Changed: at, Reason: "reconcile",
			Entry: map[string][]string{"cn": {"Ada Lovelace"}, "mail": {"ada@example.org", "al@example.org"}, "empty": {}, "é": {"ü\x00"}},
		},
		{Kind: mapping.KindUser, InFilter: &no},
	} {
		raw := encodeWork(w)
		require.Equal(t, byte(workFormat), raw[0])
		got, err := decodeWorkBytes(raw)
		require.NoError(t, err)
		require.Empty(t, cmp.Diff(w, got), "%+v", w)
	}
}

// TestWorkCodecReadsJSON: items queued as JSON (schema version 1, and replays from dead
// letters) decode as before, and an empty entry reads as none in both forms (the worker
// then reads the entry again).
func TestWorkCodecReadsJSON(t *testing.T) {
	w := work{Kind: mapping.KindUser, DN: "uid=b", Entry: map[string][]string{"uid": {"b"}}, Hash: "h", Changed: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Reason: "add"}
	js, err := json.Marshal(w)
	require.NoError(t, err)
	got, err := decodeWorkBytes(js)
	require.NoError(t, err)
	require.Empty(t, cmp.Diff(w, got))

	empty := work{Kind: mapping.KindUser, Entry: map[string][]string{}}
	got, err = decodeWorkBytes(encodeWork(empty))
	require.NoError(t, err)
	require.Nil(t, got.Entry)
}

func TestWorkCodecRefusesDamage(t *testing.T) {
	raw := encodeWork(work{Kind: mapping.KindUser, DN: "uid=c", Entry: map[string][]string{"cn": {"C"}}, Changed: time.Now()})
	for i := range len(raw) {
		_, err := decodeWorkBytes(raw[:i])
		require.Error(t, err, "cut at %d", i)
	}
	_, err := decodeWorkBytes(append(raw, 7))
	require.ErrorContains(t, err, "work item: 1 bytes after the record")
	_, err = decodeWorkBytes([]byte(`"not a work item"`))
	require.ErrorContains(t, err, "unknown work item format")
	// An attribute count larger than what follows is refused before anything is allocated.
	huge := append(encodeWork(work{Kind: mapping.KindUser})[:0:0], workFormat, 0, 0, 0, 0, 0, workHasEntry, 0, 0xff, 0xff, 0xff, 0xff, 0x0f)
	_, err = decodeWorkBytes(huge)
	require.ErrorIs(t, err, state.ErrTruncated)
}

// TestDeadLetterPayloadIsJSON: a dead letter keeps its work item as JSON (the state file
// stores dead letters as JSON); what does not decode is kept as a string.
func TestDeadLetterPayloadIsJSON(t *testing.T) {
	w := work{Kind: mapping.KindUser, DN: "uid=d", Entry: map[string][]string{"cn": {"D"}}, Reason: "add"}
	js := jsonPayload(encodeWork(w))
	require.True(t, json.Valid(js))
	got, err := decodeWorkBytes(js)
	require.NoError(t, err)
	require.Empty(t, cmp.Diff(w, got))
	same := json.RawMessage(`{"kind":"user"}`)
	require.Equal(t, same, jsonPayload(same))
	bad := jsonPayload([]byte{workFormat, 9})
	require.True(t, json.Valid(bad))
	var s string
	require.NoError(t, json.Unmarshal(bad, &s))
}
