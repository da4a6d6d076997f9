package bridge

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/bridge/state"
	"github.com/scimbridge/scimbridge/ldapstore/ldaptest"
)

// TestWatchdogStateWriteLock: a write transaction of the state file held past the watchdog's
// bound stops the pings, whatever the loops do; they resume when it ends.
func TestWatchdogStateWriteLock(t *testing.T) {
	s := ldaptest.Shared(t)
	cfg := DaemonTestConfig(t, s, "")
	var mu sync.Mutex
	var notified []string
	count := func(prefix string) int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, m := range notified {
			if strings.HasPrefix(m, prefix) {
				n++
			}
		}
		return n
	}
	b, err := New(Options{
		Config: cfg, Logger: zerolog.Nop(), Registry: prometheus.NewRegistry(), Watchdog: 500 * time.Millisecond,
		Notify: func(m string) bool { mu.Lock(); notified = append(notified, m); mu.Unlock(); return true },
	})
	require.NoError(t, err)
	require.NoError(t, b.Start(t.Context()))
	defer func() { require.NoError(t, b.Stop(context.Background())) }()
	eventually := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !cond() {
			require.False(t, time.Now().After(deadline), "timed out waiting for %s", what)
			time.Sleep(10 * time.Millisecond)
		}
	}
	eventually("pings", func() bool { return count("WATCHDOG=1") >= 3 })

	pv := provisioningOf(b)
	require.NotNil(t, pv)
	release, held := make(chan struct{}), make(chan struct{})
	var once sync.Once
	let := func() { once.Do(func() { close(release) }) }
	defer let() // also when the test fails: Stop waits for the transaction
	go func() {
		_ = pv.db.Update(func(*state.Tx) error { close(held); <-release; return nil })
	}()
	<-held
	eventually("the stuck report", func() bool { return count("STATUS=stuck: ") == 1 })
	mu.Lock()
	var stuck string
	for _, m := range notified {
		if strings.HasPrefix(m, "STATUS=stuck: ") {
			stuck = m
		}
	}
	mu.Unlock()
	require.Contains(t, stuck, "state file write lock: held for")
	let()
	eventually("pings again", func() bool { return count("STATUS=running") == 1 })
	pings := count("WATCHDOG=1")
	eventually("more pings", func() bool { return count("WATCHDOG=1") > pings })
}
