package targettest_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/mapping"
	"github.com/scimbridge/scimbridge/targets"
	"github.com/scimbridge/scimbridge/targets/targettest"
)

func TestFake(t *testing.T) {
	f := targettest.NewFake()
	ctx := t.Context()
	create := mapping.Op{
		Kind: mapping.KindUser, Type: mapping.OpCreate, MatchAttribute: "userName", MatchValue: "ann",
		Resource: map[string]any{"userName": "ann"},
	}
	res, err := f.Apply(ctx, create)
	require.NoError(t, err)
	require.Equal(t, "fake-1", res.ID)
	again, err := f.Apply(ctx, create)
	require.NoError(t, err)
	require.Equal(t, "fake-1", again.ID, "a repeated create adopts")

	found, ok, err := f.Find(ctx, mapping.KindUser, "userName", "ANN")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, "fake-1", found.ID)

	_, err = f.Apply(ctx, mapping.Op{
		Kind: mapping.KindUser, Type: mapping.OpUpdate, TargetID: "fake-1",
		Patch: []mapping.PatchOp{{Op: "replace", Path: "title", Value: "x"}},
	})
	require.NoError(t, err)
	_, err = f.Apply(ctx, mapping.Op{Kind: mapping.KindUser, Type: mapping.OpDisable, TargetID: "fake-1"})
	require.NoError(t, err)
	require.Equal(t, map[string]any{"userName": "ann", "id": "fake-1", "title": "x", "active": false}, f.Resources(mapping.KindUser)[0].Attrs)

	_, err = f.Apply(ctx, mapping.Op{Kind: mapping.KindUser, Type: mapping.OpReplace, TargetID: "nope"})
	require.True(t, targets.IsNotFound(err))

	g, err := f.Apply(ctx, mapping.Op{Kind: mapping.KindGroup, Type: mapping.OpCreate, Resource: map[string]any{"displayName": "G"}})
	require.NoError(t, err)
	_, err = f.Apply(ctx, mapping.Op{Kind: mapping.KindGroup, Type: mapping.OpMembers, TargetID: g.ID, Patch: []mapping.PatchOp{
		{Op: "add", Path: "members", Value: []string{"fake-1", "u2"}},
		{Op: "remove", Path: `members[value eq "u2"]`},
	}})
	require.NoError(t, err)
	require.Equal(t, []string{"fake-1"}, f.Resources(mapping.KindGroup)[0].Attrs["members"])

	var listed []string
	require.NoError(t, f.List(ctx, mapping.KindUser, func(r targets.Result) error { listed = append(listed, r.ID); return nil }))
	require.Equal(t, []string{"fake-1"}, listed)

	_, err = f.Apply(ctx, mapping.Op{Kind: mapping.KindUser, Type: mapping.OpDelete, TargetID: "fake-1"})
	require.NoError(t, err)
	require.Empty(t, f.Resources(mapping.KindUser))

	boom := &targets.RetryableError{Err: errors.New("boom")}
	f.FailNext(boom, nil)
	_, err = f.Apply(ctx, create)
	require.ErrorIs(t, err, boom)
	_, err = f.Apply(ctx, create)
	require.NoError(t, err, "a queued nil answers success without the in-memory behaviour")

	f.SetApplyFunc(func(_ context.Context, op mapping.Op) (targets.Result, error) {
		return targets.Result{ID: "custom-" + op.MatchValue}, nil
	})
	res, err = f.Apply(ctx, create)
	require.NoError(t, err)
	require.Equal(t, "custom-ann", res.ID)
	f.SetApplyFunc(nil)

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_, err = f.Apply(cancelled, create)
	require.ErrorIs(t, err, context.Canceled)

	ops := f.Ops()
	require.Len(t, ops, 11, "every Apply but the cancelled one")
	require.Equal(t, mapping.OpCreate, ops[0].Type)
	require.Equal(t, []targettest.FindCall{{Kind: mapping.KindUser, Attr: "userName", Value: "ANN"}}, f.Finds())

	f.Reset()
	require.Empty(t, f.Ops())

	tg, err := targettest.FakeConfig{Target: f}.Open("p", zerolog.Nop())
	require.NoError(t, err)
	require.Same(t, f, tg)
}

func TestFakeConcurrent(t *testing.T) {
	f := targettest.NewFake()
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			_, err := f.Apply(context.Background(), mapping.Op{
				Kind: mapping.KindUser, Type: mapping.OpCreate,
				MatchAttribute: "userName", MatchValue: fmt.Sprint(i),
			})
			require.NoError(t, err)
			_, _, err = f.Find(context.Background(), mapping.KindUser, "userName", fmt.Sprint(i))
			require.NoError(t, err)
		})
	}
	wg.Wait()
	require.Len(t, f.Ops(), 50)
	require.Len(t, f.Resources(mapping.KindUser), 50)
}
