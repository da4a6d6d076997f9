package gctune_test

import (
	"os"
	"runtime"
	"runtime/metrics"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/bridge/gctune"
)

func TestPercentFor(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		live, headroom uint64
		want           int
	}{
		{0, 32 * mib, 800},        // no collection yet: the runtime's 4 MiB minimum scaled to 32 MiB
		{1 * mib, 32 * mib, 800},  // a tiny heap: never a goal above the headroom
		{8 * mib, 32 * mib, 400},  // 8 MiB may grow by 32 MiB
		{16 * mib, 32 * mib, 200}, //
		{32 * mib, 32 * mib, 100}, // from there on, GOGC=100
		{300 * mib, 32 * mib, 100},
		{1 * mib, 2 * mib, 100}, // a headroom under the runtime's minimum changes nothing
	} {
		require.Equal(t, c.want, gctune.PercentFor(c.live, c.headroom), "live %d MiB, headroom %d MiB", c.live/mib, c.headroom/mib)
	}
}

// gogc reads the collector's current GOGC.
func gogc() uint64 {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// unsetGOGC clears GOGC from the environment for the test (and restores it after).
func unsetGOGC(t *testing.T) {
	t.Setenv("GOGC", "")
	require.NoError(t, os.Unsetenv("GOGC"))
}

// TestTunerFollowsTheLiveHeap starts a tuner and checks GOGC after collections: high while
// the live heap is small, 100 while it is larger than the headroom, high again once it
// shrank — so the tuner runs after every collection, not once.
func TestTunerFollowsTheLiveHeap(t *testing.T) {
	unsetGOGC(t)
	const headroom = 32 << 20
	tu, ok := gctune.Start(headroom)
	require.True(t, ok)
	defer tu.Stop()
	collect := func() { runtime.GC(); runtime.GC() } // the finalizer runs after the cycle that found the sentinel
	collect()
	require.Eventually(t, func() bool { return gogc() > 200 }, 10*time.Second, 10*time.Millisecond, "a small live heap gets headroom (GOGC %d)", gogc())

	big := make([]byte, 64<<20)
	for i := range big {
		big[i] = 1
	}
	require.Eventually(t, func() bool { collect(); return gogc() == 100 }, 10*time.Second, 10*time.Millisecond, "a live heap over the headroom: GOGC 100 (GOGC %d)", gogc())
	runtime.KeepAlive(big)
	big = nil //nolint:ineffassign,wastedassign // released for the next collection
	require.Eventually(t, func() bool { collect(); return gogc() > 200 }, 10*time.Second, 10*time.Millisecond, "the headroom comes back once the heap shrank (GOGC %d)", gogc())

	tu.Stop()
	collect()
	collect()
	require.EqualValues(t, 100, gogc(), "Stop puts GOGC back to 100 and tuning ends")
}

func TestStartLeavesAnOperatorsGOGCAlone(t *testing.T) {
	t.Setenv("GOGC", "100")
	tu, ok := gctune.Start(32 << 20)
	require.False(t, ok)
	require.Nil(t, tu)
	tu.Stop() // a nil Tuner's Stop does nothing

	unsetGOGC(t)
	_, ok = gctune.Start(0)
	require.False(t, ok, "no headroom, no tuning")
}
