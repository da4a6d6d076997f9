package watchdog

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/targets"
)

// fakeClock is a settable clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func newMonitor(stall time.Duration) (*Monitor, *fakeClock) {
	clock := &fakeClock{now: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)}
	m := New(stall)
	m.now = clock.Now
	return m, clock
}

func TestLoops(t *testing.T) {
	m, clock := newMonitor(time.Minute)
	a, b := m.Loop("a"), m.Loop("b")
	require.NoError(t, m.Healthy())

	// a waits (for work, or in a backoff during an outage) far longer than the bound: alive.
	a.Wait()
	clock.Add(10 * time.Minute)
	err := m.Healthy()
	require.Error(t, err)
	require.NotContains(t, err.Error(), `"a"`)
	require.Contains(t, err.Error(), `loop "b" stuck for 10m0s`, "b stayed busy without a beat")

	b.Beat()
	require.NoError(t, m.Healthy())
	clock.Add(59 * time.Second)
	require.NoError(t, m.Healthy(), "within the bound")
	clock.Add(2 * time.Second)
	require.Error(t, m.Healthy())

	b.Stop()
	require.NoError(t, m.Healthy(), "a stopped loop is not watched")
}

func TestChecks(t *testing.T) {
	m, _ := newMonitor(time.Minute)
	held := time.Duration(0)
	remove := m.Check("lock", func(time.Time) error {
		if held > time.Minute {
			return context.DeadlineExceeded
		}
		return nil
	})
	require.NoError(t, m.Healthy())
	held = 2 * time.Minute
	require.ErrorContains(t, m.Healthy(), "lock: context deadline exceeded")
	remove()
	require.NoError(t, m.Healthy())
}

func TestContext(t *testing.T) {
	m, clock := newMonitor(time.Minute)
	ctx := WithMonitor(context.Background(), m)
	require.Same(t, m, From(ctx))
	require.Nil(t, From(context.Background()))

	l := From(ctx).Loop("walker")
	lctx := WithLoop(ctx, l)
	clock.Add(2 * time.Minute)
	Beat(lctx) // a page of a walk
	require.NoError(t, m.Healthy())
	clock.Add(2 * time.Minute)
	targets.Progress(lctx) // a target's HTTP try
	require.NoError(t, m.Healthy())
	Wait(lctx) // behind a lock another loop holds
	clock.Add(time.Hour)
	require.NoError(t, m.Healthy())

	// Without a monitor everything is a no-op.
	var none *Monitor
	nl := none.Loop("x")
	nl.Beat()
	nl.Wait()
	nl.Stop()
	Beat(WithLoop(context.Background(), nl))
	require.NoError(t, none.Healthy())
	none.Check("x", func(time.Time) error { return context.Canceled })()
}

// recorder collects what Run notifies.
type recorder struct {
	mu    sync.Mutex
	lines []string
}

func (r *recorder) notify(s string) bool {
	r.mu.Lock()
	r.lines = append(r.lines, s)
	r.mu.Unlock()
	return true
}

func (r *recorder) count(s string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, l := range r.lines {
		if strings.HasPrefix(l, s) {
			n++
		}
	}
	return n
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRunPingsOnlyWhileHealthy(t *testing.T) {
	m, clock := newMonitor(time.Minute)
	l := m.Loop("main")
	rec := &recorder{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.Run(ctx, 5*time.Millisecond, rec.notify, zerolog.Nop()); close(done) }()

	eventually(t, "pings", func() bool { return rec.count("WATCHDOG=1") >= 3 })

	clock.Add(2 * time.Minute) // main is busy without a beat: stuck
	eventually(t, "the stuck status", func() bool { return rec.count("STATUS=stuck: ") == 1 })
	before := rec.count("WATCHDOG=1")
	// Run checks every 5ms: twenty rounds with the loop still stuck send no ping (an event
	// count, not a timing assertion: each round that ran found the loop stuck).
	time.Sleep(100 * time.Millisecond)
	require.Equal(t, before, rec.count("WATCHDOG=1"))
	require.Equal(t, 1, rec.count("STATUS=stuck: "), "reported once")

	l.Beat()
	eventually(t, "pings again", func() bool { return rec.count("WATCHDOG=1") >= before+3 })
	require.Equal(t, 1, rec.count("STATUS=running"))
	cancel()
	<-done
}
