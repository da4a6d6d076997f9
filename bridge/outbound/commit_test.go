package outbound

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/bridge/state"
	"github.com/scimbridge/scimbridge/mapping"
	"github.com/scimbridge/scimbridge/targets"
)

// stored is what the state file says about the provisioner (what a restart would load).
func (h *harness) stored() Status {
	h.t.Helper()
	var st []Status
	require.NoError(h.t, h.db.View(func(tx *state.Tx) error {
		var err error
		st, err = StoredStatus(tx, []string{"app"})
		return err
	}))
	require.Len(h.t, st, 1)
	return st[0]
}

// TestCompletionsReachTheFile: what a delivery ended with is in the state file, not only in
// memory: a dead letter (and its item gone from the outbox), the last error and the last
// success; and the audit log, the metrics and the gauges say the same.
func TestCompletionsReachTheFile(t *testing.T) {
	h := newHarness(t, Spec{Concurrency: 1, MaxAttempts: 3})
	h.target.SetApplyFunc(func(_ context.Context, op mapping.Op) (targets.Result, error) {
		if op.Type == mapping.OpUpdate && op.TargetID == "t-bad" || op.Resource != nil && op.Resource["userName"] == "worse" {
			return targets.Result{}, &targets.PermanentError{Status: 400, Err: errors.New("400 invalidValue")}
		}
		return targets.Result{ID: "t-" + op.Resource["userName"].(string)}, nil
	})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	h.run(ctx)
	h.change(user("bad"))
	h.waitIdle()
	h.change(user("bad", "title", "x"), user("good"))
	h.waitIdle()

	st := h.stored()
	require.Zero(t, st.OutboxDepth, "the dead-lettered item left the outbox")
	require.Equal(t, 1, st.DeadLetters)
	require.Contains(t, st.LastError, "400 invalidValue")
	require.False(t, st.LastSuccess.IsZero(), "the success is recorded")
	require.Equal(t, 2, st.Users)
	require.Equal(t, 2, st.UsersActive)

	require.Equal(t, 1, h.logs.count(`"level":"warn"`, `"result":"error"`, `"op":"update"`, "outbound operation"), "a failed operation is audited at warn")
	require.Equal(t, 2, h.logs.count(`"level":"info"`, `"result":"ok"`, `"op":"create"`, "outbound operation"))
	require.InDelta(t, 1, h.metricValue("scimbridge_outbound_dead_letters", map[string]string{"provisioner": "app"}), 0)
	require.InDelta(t, 2, h.metricValue("scimbridge_outbound_operations_total", map[string]string{"provisioner": "app", "op": "create", "result": "ok"}), 0)
	require.InDelta(t, 2, h.metricValue("scimbridge_outbound_delivery_latency_seconds", map[string]string{"provisioner": "app"}), 0,
		"two deliveries reached the target; the dead letter did not")

	// A delivery that sends nothing (the target is up to date) is no latency sample.
	p, _ := h.e.Provisioner("app")
	before := len(h.target.Ops())
	require.NoError(t, h.db.Update(func(tx *state.Tx) error {
		queued, err := p.queueRefresh(tx, []string{"id-good"}, "test")
		tx.OnCommit(queued)
		return err
	}))
	h.waitIdle()
	require.Len(t, h.target.Ops(), before, "nothing was sent for the refresh")
	require.Zero(t, h.stored().OutboxDepth, "the refresh was delivered")

	// The dead-letter gauge follows the last dead letter.
	h.change(user("worse"))
	h.waitIdle()
	require.InDelta(t, 2, h.metricValue("scimbridge_outbound_dead_letters", map[string]string{"provisioner": "app"}), 0)
	require.InDelta(t, 2, h.metricValue("scimbridge_outbound_delivery_latency_seconds", map[string]string{"provisioner": "app"}), 0)
}

// TestShutdownIsNoFailure: a delivery cut short by the engine's shutdown is no attempt, no
// error and no dead letter: the item stays for the next start.
func TestShutdownIsNoFailure(t *testing.T) {
	h := newHarness(t, Spec{Concurrency: 1, MaxAttempts: 1})
	var calls atomic.Int32
	h.target.SetApplyFunc(func(ctx context.Context, _ mapping.Op) (targets.Result, error) {
		calls.Add(1)
		<-ctx.Done() // slower than the drain
		return targets.Result{}, ctx.Err()
	})
	ctx, cancel := context.WithCancel(t.Context())
	h.run(ctx)
	h.change(user("ada"))
	deadline := time.Now().Add(10 * time.Second)
	for calls.Load() == 0 {
		require.True(t, time.Now().Before(deadline), "the delivery did not start")
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	h.e.Wait()

	st := h.stored()
	require.Equal(t, 1, st.OutboxDepth, "the item waits for the next start")
	require.Zero(t, st.DeadLetters)
	require.Empty(t, st.LastError)
	require.NoError(t, h.db.View(func(tx *state.Tx) error {
		ob, err := tx.Outbox("app")
		if err != nil {
			return err
		}
		it, ok, err := ob.Get("id-ada")
		require.True(t, ok)
		require.Zero(t, it.Attempts, "no attempt counted")
		require.Empty(t, it.LastError)
		return err
	}))
}

// TestFailureDuringShutdownCounts: a delivery that fails for its own reason while the engine
// shuts down is a failure like any other (here its last attempt: a dead letter); only the
// shutdown's own cancellation is not.
func TestFailureDuringShutdownCounts(t *testing.T) {
	h := newHarness(t, Spec{Concurrency: 1, MaxAttempts: 1})
	var calls atomic.Int32
	h.target.SetApplyFunc(func(ctx context.Context, _ mapping.Op) (targets.Result, error) {
		calls.Add(1)
		<-ctx.Done()
		return targets.Result{}, &targets.RetryableError{Err: errors.New("503 from target")}
	})
	ctx, cancel := context.WithCancel(t.Context())
	h.run(ctx)
	h.change(user("ada"))
	deadline := time.Now().Add(10 * time.Second)
	for calls.Load() == 0 {
		require.True(t, time.Now().Before(deadline), "the delivery did not start")
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	h.e.Wait()
	st := h.stored()
	require.Equal(t, 1, st.DeadLetters)
	require.Contains(t, st.LastError, "503 from target")
}

// TestRetryAfterSchedulesTheItem: a failure answered with Retry-After is not counted against
// the item, and the item waits that long (not the minimum retry delay).
func TestRetryAfterSchedulesTheItem(t *testing.T) {
	h := newHarness(t, Spec{Concurrency: 1, MaxAttempts: 3, MinRetryDelay: time.Second, MaxRetryDelay: 5 * time.Minute})
	var calls atomic.Int32
	h.target.SetApplyFunc(func(context.Context, mapping.Op) (targets.Result, error) {
		calls.Add(1)
		return targets.Result{}, &targets.RetryableError{Err: errors.New("429 slow down"), After: time.Minute}
	})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	h.run(ctx)
	start := time.Now()
	h.change(user("ada"))
	deadline := time.Now().Add(10 * time.Second)
	for {
		var it state.Item
		require.NoError(t, h.db.View(func(tx *state.Tx) error {
			ob, err := tx.Outbox("app")
			if err != nil {
				return err
			}
			it, _, err = ob.Get("id-ada")
			return err
		}))
		if it.LastError != "" {
			require.Zero(t, it.Attempts, "not counted against the item")
			require.GreaterOrEqual(t, it.NotBefore.Sub(start), 50*time.Second, "it waits what the target asked")
			break
		}
		require.True(t, time.Now().Before(deadline), "the failure was not recorded")
		time.Sleep(10 * time.Millisecond)
	}
	require.EqualValues(t, 1, calls.Load())
}
