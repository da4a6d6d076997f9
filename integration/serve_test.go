package integration

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/ldapstore/ldaptest"
)

// TestServeLifecycle runs the real binary against the test slapd: it becomes ready, serves
// health and metrics, keeps running on a SIGHUP with a broken config (and says so in the
// metric), and drains on SIGTERM with exit 0.
func TestServeLifecycle(t *testing.T) {
	s := ldaptest.Shared(t)
	dir := t.TempDir()
	cfg, admin, inbound := baseConfig(t, s, dir, "[inbound]\nenabled = false\n")
	d := startDaemon(t, dir, cfg, admin, inbound)

	code, body := d.get("/healthz")
	require.Equal(t, 200, code)
	require.Contains(t, body, "ok")
	code, body = d.get("/metrics")
	require.Equal(t, 200, code)
	require.Contains(t, body, "scimbridge_config_last_reload_successful 1")
	require.Contains(t, body, `scimbridge_ldap_operation_duration_seconds_count{op="rootdse"}`)
	require.Greater(t, gogcPercent(t, body), 100.0, "the collector has heap headroom (bridge/gctune)")
	code, body = d.get("/status")
	require.Equal(t, 200, code)
	require.Contains(t, body, `"dialect": "openldap"`)
	require.NotContains(t, body, s.ServicePW)

	// A broken config on SIGHUP keeps the old one running.
	require.NoError(t, os.WriteFile(d.cfgPath, []byte("[ldap]\ncolour = 1\n"), 0o600))
	d.signal(syscall.SIGHUP)
	waitFor(t, "reload failure metric", func() bool {
		_, body := d.get("/metrics")
		return contains(body, "scimbridge_config_last_reload_successful 0")
	})
	code, _ = d.get("/readyz")
	require.Equal(t, 200, code)
	waitFor(t, "the reload failure in the log", func() bool { return contains(d.stderr.String(), "reload failed") })

	require.Equal(t, 0, d.stop())
	require.NotContains(t, d.stderr.String(), s.ServicePW, "no secret in the logs")
}

// gogcPercent reads go_gc_gogc_percent from a /metrics body.
func gogcPercent(t *testing.T, metrics string) float64 {
	t.Helper()
	for line := range strings.Lines(metrics) {
		if v, ok := strings.CutPrefix(line, "go_gc_gogc_percent "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			require.NoError(t, err)
			return f
		}
	}
	t.Fatalf("no go_gc_gogc_percent in /metrics")
	return 0
}

// TestServeLeavesGOGCToTheOperator: with GOGC in its environment the daemon does not tune
// the collector.
func TestServeLeavesGOGCToTheOperator(t *testing.T) {
	s := ldaptest.Shared(t)
	dir := t.TempDir()
	cfg, admin, inbound := baseConfig(t, s, dir, "[inbound]\nenabled = false\n")
	d := startDaemonEnv(t, dir, cfg, admin, inbound, []string{"GOGC=100"})
	_, body := d.get("/metrics")
	require.InDelta(t, 100.0, gogcPercent(t, body), 0)
	require.Equal(t, 0, d.stop())
}
