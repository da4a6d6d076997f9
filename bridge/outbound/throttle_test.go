package outbound

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/bridge/capture"
	"github.com/scimbridge/scimbridge/mapping"
	"github.com/scimbridge/scimbridge/targets"
	"github.com/scimbridge/scimbridge/targets/targettest"
)

type fakeBacklog struct {
	pending atomic.Int64
	drained atomic.Uint64
}

func (f *fakeBacklog) backlog() (int, uint64) { return int(f.pending.Load()), f.drained.Load() }

// drain takes one key off every period until the backlog is down to floor.
func (f *fakeBacklog) drain(ctx context.Context, period time.Duration, floor int64) {
	for f.pending.Load() > floor {
		select {
		case <-ctx.Done():
			return
		case <-time.After(period):
		}
		f.pending.Add(-1)
		f.drained.Add(1)
	}
}

func TestWaitBacklog(t *testing.T) {
	const ahead, stall, maxWait = 100, 2 * time.Second, 30 * time.Second
	t.Run("under the mark it does not wait", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			q := &fakeBacklog{}
			q.pending.Store(ahead)
			start := time.Now()
			ok, _ := waitBacklog(t.Context(), []backlogger{q}, ahead, stall, maxWait)
			require.True(t, ok)
			require.Zero(t, time.Since(start))
		})
	})
	t.Run("over the mark it waits down to half", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			idle, busy := &fakeBacklog{}, &fakeBacklog{}
			busy.pending.Store(ahead + 1)
			go busy.drain(t.Context(), 10*time.Millisecond, 0)
			start := time.Now()
			ok, _ := waitBacklog(t.Context(), []backlogger{idle, busy}, ahead, stall, maxWait)
			require.True(t, ok)
			require.LessOrEqual(t, busy.pending.Load(), int64(ahead/2))
			require.Greater(t, busy.pending.Load(), int64(ahead/2-3), "it returns as soon as half is reached")
			require.GreaterOrEqual(t, time.Since(start), 500*time.Millisecond)
		})
	})
	t.Run("a stalled queue stops the waiting", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			q := &fakeBacklog{}
			q.pending.Store(ahead * 2)
			// It drains a little, then stops (a target gone down, a worker waiting for the
			// directory connection the enumeration holds).
			go q.drain(t.Context(), 100*time.Millisecond, ahead*2-5)
			start := time.Now()
			ok, reason := waitBacklog(t.Context(), []backlogger{q}, ahead, stall, maxWait)
			require.False(t, ok)
			require.Contains(t, reason, "no delivery completed")
			took := time.Since(start)
			require.GreaterOrEqual(t, took, 500*time.Millisecond+stall, "counted from the last key that left")
			require.Less(t, took, 500*time.Millisecond+stall+time.Second)
		})
	})
	t.Run("a queue draining too slowly stops the waiting at maxWait", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			q := &fakeBacklog{}
			q.pending.Store(ahead * 10)
			go q.drain(t.Context(), time.Second, 0) // one key a second: progress, never enough
			start := time.Now()
			ok, reason := waitBacklog(t.Context(), []backlogger{q}, ahead, stall, maxWait)
			require.False(t, ok)
			require.Contains(t, reason, "did not catch up")
			require.InDelta(t, maxWait.Seconds(), time.Since(start).Seconds(), 0.1)
		})
	})
	t.Run("a queue under half does not keep it waiting on another that stalls", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			fast, stuck := &fakeBacklog{}, &fakeBacklog{}
			fast.pending.Store(ahead * 2)
			stuck.pending.Store(ahead * 2)
			go fast.drain(t.Context(), time.Millisecond, 0)
			ok, reason := waitBacklog(t.Context(), []backlogger{fast, stuck}, ahead, stall, maxWait)
			require.False(t, ok, "the fast queue's progress does not count for the stuck one")
			require.Contains(t, reason, "no delivery completed")
		})
	})
	t.Run("cancelled", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			q := &fakeBacklog{}
			q.pending.Store(ahead * 2)
			ctx, cancel := context.WithCancel(t.Context())
			time.AfterFunc(time.Second, cancel)
			ok, _ := waitBacklog(ctx, []backlogger{q}, ahead, stall, maxWait)
			require.False(t, ok)
		})
	})
}

// slowTarget takes its time over every request, as a real target does.
type slowTarget struct {
	*targettest.Fake
	d time.Duration
}

func (s slowTarget) Apply(ctx context.Context, op mapping.Op) (targets.Result, error) {
	time.Sleep(s.d)
	return s.Fake.Apply(ctx, op)
}

// TestReconcileThrottleBoundsTheBacklog: batches handed to the engine with Throttle between
// them, as a reconcile pass does, never leave more than ReconcileAhead keys pending before a
// batch (without it, the whole pass would be pending at once), and every user is delivered.
func TestReconcileThrottleBoundsTheBacklog(t *testing.T) {
	const ahead, batch, batches = 100, 50, 12
	fake := targettest.NewFake()
	h := newHarness(t, Spec{Target: slowTarget{fake, 2 * time.Millisecond}, Concurrency: 2, MaxAttempts: 3},
		func(o *Options) { o.ReconcileAhead = ahead })
	th, ok := h.e.Sink().(capture.Throttler)
	require.True(t, ok)
	require.False(t, th.Throttle(t.Context()), "an engine not running is not waited for")

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	h.run(ctx)
	peak := 0
	for b := range batches {
		var users []mapping.Entry
		for i := range batch {
			users = append(users, user(fmt.Sprintf("u%02d%03d", b, i)))
		}
		h.change(users...)
		peak = max(peak, h.pending())
		require.True(t, th.Throttle(ctx))
		require.LessOrEqual(t, h.pending(), ahead)
	}
	require.LessOrEqual(t, peak, ahead+batch)
	h.waitIdle()
	creates := 0
	for _, op := range fake.Ops() {
		if op.Type == mapping.OpCreate {
			creates++
		}
	}
	require.Equal(t, batch*batches, creates)
}
