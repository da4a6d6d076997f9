package state_test

import (
	"encoding/json"
	"errors"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/bridge/state"
)

func TestOutboxCoalescesAndKeepsOrder(t *testing.T) {
	db, err := state.Open(t.TempDir())
	require.NoError(t, err)
	defer db.Close()

	var first state.Item
	require.NoError(t, db.Update(func(tx *state.Tx) error {
		ob, err := tx.Outbox("okta")
		require.NoError(t, err)
		first, err = ob.Put("u1", json.RawMessage(`{"v":1}`))
		require.NoError(t, err)
		_, err = ob.Put("u2", json.RawMessage(`{"v":1}`))
		return err
	}))
	committed := false
	require.NoError(t, db.Update(func(tx *state.Tx) error {
		tx.OnCommit(func() { committed = true })
		ob, err := tx.Outbox("okta")
		require.NoError(t, err)
		it, _, err := ob.Get("u1")
		require.NoError(t, err)
		it.Attempts, it.LastError = 3, "boom"
		require.NoError(t, ob.Save(it))
		again, err := ob.Put("u1", json.RawMessage(`{"v":2}`))
		require.NoError(t, err)
		require.Equal(t, first.Seq, again.Seq, "a replaced payload keeps its place")
		require.Greater(t, again.Gen, first.Gen)
		require.Equal(t, 3, again.Attempts, "and its attempt count")
		require.JSONEq(t, `{"v":2}`, string(again.Payload))
		return nil
	}))
	require.True(t, committed)

	rolledBack := false
	err = db.Update(func(tx *state.Tx) error {
		tx.OnCommit(func() { rolledBack = true })
		return errors.New("no")
	})
	require.Error(t, err)
	require.False(t, rolledBack, "OnCommit never runs for a rolled back transaction")

	require.NoError(t, db.Update(func(tx *state.Tx) error {
		ob, _ := tx.Outbox("okta")
		it, ok, err := ob.Get("u2")
		require.NoError(t, err)
		require.True(t, ok)
		dl, _ := tx.DeadLetters("okta")
		require.NoError(t, dl.Put(state.DeadLetter{Item: it, Error: "400 bad", Status: 400, Body: `{"detail":"bad"}`}))
		return ob.Delete("u2")
	}))
	require.NoError(t, db.View(func(tx *state.Tx) error {
		ob, _ := tx.Outbox("okta")
		require.Equal(t, 1, ob.Len())
		dl, _ := tx.DeadLetters("okta")
		require.Equal(t, 1, dl.Len())
		got, ok, err := dl.Get("u2")
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, 400, got.Status)
		names, err := tx.OutboxNames()
		require.NoError(t, err)
		require.Equal(t, []string{"okta"}, names)
		none, _ := tx.Outbox("never")
		require.Equal(t, 0, none.Len())
		return none.ForEach(func(state.Item) error { return errors.New("empty") })
	}))
}

func TestBatchCombinesWriters(t *testing.T) {
	db, err := state.Open(t.TempDir())
	require.NoError(t, err)
	defer db.Close()
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			require.NoError(t, db.Batch(func(tx *state.Tx) error {
				ob, err := tx.Outbox("p")
				if err != nil {
					return err
				}
				_, err = ob.Put(string(rune('a'+i%26))+string(rune('a'+i/26)), json.RawMessage(`{}`))
				return err
			}))
		})
	}
	wg.Wait()
	require.NoError(t, db.View(func(tx *state.Tx) error {
		ob, _ := tx.Outbox("p")
		require.Equal(t, 50, ob.Len())
		return nil
	}))
}
