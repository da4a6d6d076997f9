package capture_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/bridge/capture"
	"github.com/scimbridge/scimbridge/ldapstore/ldaptest"
)

// TestPushStreamTriggersAPoll: with the accesslog's refreshAndPersist stream open, a write
// reaches the Sink although the next poll is an hour away, and the push metric says the
// stream is in use.
func TestPushStreamTriggersAPoll(t *testing.T) {
	s, ou := ldaptest.OU(t, "push")
	e := newEnv(t, s, ou, accesslog)
	e.r.Close() // its metrics make room for r's
	r, err := capture.New(capture.Options{
		Source: e.src, Directory: e.st, State: e.db, Sink: capture.CommitFunc(e.rec.sink), Logger: zerolog.Nop(),
		Registerer: e.reg, Scope: e.scope, PollInterval: time.Hour,
	})
	require.NoError(t, err)
	t.Cleanup(r.Close)
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() { _ = r.Run(ctx) })
	defer wg.Wait()
	defer cancel()

	// The first Sync reconciles (nothing in scope yet); then only the stream can wake Run.
	deadline := time.Now().Add(30 * time.Second)
	for gaugeValue(t, e, "scimbridge_changes_push_active") != 1 || r.Stats().LastReconcile.IsZero() {
		require.True(t, time.Now().Before(deadline), "the push stream never opened")
		time.Sleep(20 * time.Millisecond)
	}
	ada := "uid=ada," + e.people
	for i := 0; ; i++ {
		// The stream may open on the server an instant after the gauge says so: write again
		// until one write is announced.
		if i == 0 {
			require.NoError(t, s.LDIF("dn: "+ada+"\nobjectClass: inetOrgPerson\nuid: ada\ncn: Ada\nsn: Lovelace\n"))
		} else {
			require.NoError(t, s.LDIF("dn: "+ada+"\nchangetype: modify\nreplace: sn\nsn: L"+string(rune('a'+i%26))+"\n"))
		}
		got := false
		for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
			if len(e.rec.take()) > 0 {
				got = true
				break
			}
		}
		if got {
			break
		}
		require.True(t, time.Now().Before(deadline), "no write reached the Sink before the next poll")
	}
}

// gaugeValue reads a gauge from the env's registry (0 when absent).
func gaugeValue(t *testing.T, e *env, name string) float64 {
	t.Helper()
	mfs, err := e.reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	return 0
}
