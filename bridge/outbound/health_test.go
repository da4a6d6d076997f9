package outbound

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestCircuitThreshold: the circuit opens after concurrency+1 consecutive transient
// failures (at least 3) spread over at least two items, not one earlier.
func TestCircuitThreshold(t *testing.T) {
	for concurrency, threshold := range map[int]int{1: 3, 2: 3, 4: 5} {
		h := newHealth(concurrency, time.Second, time.Minute)
		now := time.Now()
		for i := 1; i < threshold; i++ {
			require.True(t, h.report(now, []string{"a", "b"}[i%2], false, true, 0, false), "failure %d counts against its item", i)
			st, _, _ := h.state(now)
			require.Equal(t, CircuitClosed, st, "concurrency %d: %d failures", concurrency, i)
		}
		require.False(t, h.report(now, "c", false, true, 0, false), "the failure that opens the circuit does not count")
		st, until, fails := h.state(now)
		require.Equal(t, CircuitOpen, st, "concurrency %d", concurrency)
		require.Equal(t, threshold, fails)
		require.True(t, until.After(now))
	}
}

// TestJitter: jitter spreads d over [d/2, d); a duration of 1ns or less is left alone.
func TestJitter(t *testing.T) {
	require.Equal(t, time.Duration(1), jitter(1))
	require.Equal(t, time.Duration(0), jitter(0))
	seen := map[time.Duration]bool{}
	for range 1000 {
		j := jitter(time.Second)
		require.GreaterOrEqual(t, j, 500*time.Millisecond)
		require.Less(t, j, time.Second)
		seen[j] = true
	}
	require.Greater(t, len(seen), 10, "spread")
}

// TestRetryDelay: the n-th retry waits min·2^(n-1) plus up to half of it, never beyond max;
// a Retry-After is honoured as is.
func TestRetryDelay(t *testing.T) {
	lo, hi := time.Second, 10*time.Second
	for n, want := range map[int][2]time.Duration{
		1: {time.Second, 1500 * time.Millisecond},
		2: {2 * time.Second, 3 * time.Second},
		3: {4 * time.Second, 6 * time.Second},
		4: {8 * time.Second, hi},
		9: {hi, hi},
	} {
		for range 300 {
			d := retryDelay(n, lo, hi, 0)
			require.GreaterOrEqual(t, d, want[0], "retry %d", n)
			require.LessOrEqual(t, d, want[1], "retry %d", n)
		}
	}
	require.Equal(t, 42*time.Second, retryDelay(3, lo, hi, 42*time.Second), "Retry-After")
}
