package logtarget_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/mapping"
	"github.com/scimbridge/scimbridge/targets"
	"github.com/scimbridge/scimbridge/targets/logtarget"
)

func TestDryRun(t *testing.T) {
	var logs bytes.Buffer
	tg, err := logtarget.DefaultConfig().Open("okta", zerolog.New(&logs))
	require.NoError(t, err)
	ctx := t.Context()

	op := mapping.Op{
		Kind: mapping.KindUser, Type: mapping.OpCreate, MatchAttribute: "userName", MatchValue: "alice",
		Resource: map[string]any{"userName": "alice", "password": "never-logged"},
	}
	res, err := tg.Apply(ctx, op)
	require.NoError(t, err)
	require.Equal(t, logtarget.SyntheticID(mapping.KindUser, "userName", "alice"), res.ID)
	require.Equal(t, res.ID, logtarget.SyntheticID(mapping.KindUser, "USERNAME", "Alice"), "stable and case-insensitive")
	require.NotEqual(t, res.ID, logtarget.SyntheticID(mapping.KindGroup, "userName", "alice"))
	require.True(t, strings.HasPrefix(res.ID, "log-"))

	var ev map[string]any
	require.NoError(t, json.Unmarshal(logs.Bytes(), &ev))
	require.Equal(t, map[string]any{
		"level": "info", "audit": true, "actor": "okta", "resource": "User", "id": res.ID, "op": "create",
		"result": "dry_run", "match_attribute": "userName", "match_value": "alice",
		"attributes": []any{"password", "userName"}, "message": "dry run: operation not sent",
	}, ev)
	require.NotContains(t, logs.String(), "never-logged")

	found, ok, err := tg.Find(ctx, mapping.KindUser, "userName", "ALICE")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, res.ID, found.ID)

	var listed []string
	require.NoError(t, tg.(targets.Lister).List(ctx, mapping.KindUser, func(r targets.Result) error {
		listed = append(listed, r.ID)
		return nil
	}))
	require.Equal(t, []string{res.ID}, listed)

	logs.Reset()
	_, err = tg.Apply(ctx, mapping.Op{
		Kind: mapping.KindUser, Type: mapping.OpUpdate, TargetID: res.ID,
		Patch: []mapping.PatchOp{{Op: "Replace", Path: "displayName", Value: "A"}},
	})
	require.NoError(t, err)
	require.Contains(t, logs.String(), `"changes":["replace displayName"]`)

	_, err = tg.Apply(ctx, mapping.Op{Kind: mapping.KindUser, Type: mapping.OpDelete, TargetID: res.ID})
	require.NoError(t, err)
	_, ok, err = tg.Find(ctx, mapping.KindUser, "userName", "alice")
	require.NoError(t, err)
	require.False(t, ok)

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	logs.Reset()
	_, err = tg.Apply(cancelled, op)
	require.ErrorIs(t, err, context.Canceled)
	require.Empty(t, logs.String())
}

func TestLevel(t *testing.T) {
	var logs bytes.Buffer
	c := logtarget.DefaultConfig()
	c.Level = "debug"
	tg, err := c.Open("p", zerolog.New(&logs).Level(zerolog.InfoLevel))
	require.NoError(t, err)
	_, err = tg.Apply(t.Context(), mapping.Op{Kind: mapping.KindGroup, Type: mapping.OpDelete, TargetID: "g"})
	require.NoError(t, err)
	require.Empty(t, logs.String(), "below the logger's level")

	c.Level = "loud"
	require.EqualError(t, c.Validate(), `level: unknown value "loud" (want "debug", "info" or "warn")`)
	_, err = c.Open("p", zerolog.Nop())
	require.Error(t, err)
}
