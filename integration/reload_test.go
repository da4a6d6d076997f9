package integration

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/ldapstore/ldaptest"
)

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// rewrite replaces old with new in the daemon's configuration file (each must occur).
func (d *daemon) rewrite(pairs ...string) {
	d.t.Helper()
	raw, err := os.ReadFile(d.cfgPath)
	require.NoError(d.t, err)
	cfg := string(raw)
	for i := 0; i+1 < len(pairs); i += 2 {
		require.Contains(d.t, cfg, pairs[i])
		cfg = strings.ReplaceAll(cfg, pairs[i], pairs[i+1])
	}
	require.NoError(d.t, os.WriteFile(d.cfgPath, []byte(cfg), 0o600))
}

// reloadStatus reads the reload section of /status.
func (d *daemon) reloadStatus() map[string]any {
	d.t.Helper()
	_, body := d.get("/status")
	var st struct {
		Reload     map[string]any `json:"reload"`
		Components struct {
			Inbound map[string]any `json:"inbound"`
		} `json:"components"`
	}
	require.NoError(d.t, json.Unmarshal([]byte(body), &st))
	if st.Reload == nil {
		st.Reload = map[string]any{}
	}
	st.Reload["inbound_tokens"] = st.Components.Inbound["tokens"]
	return st.Reload
}

// TestReloadIsAllOrNothing: a SIGHUP that changes admin.listen (restart only) together with
// the inbound tokens is refused as a whole: the old token keeps working, the new one is
// refused, and the log, /status and the metric say why, naming the key. A later SIGHUP
// without the restart-only change applies the tokens.
func TestReloadIsAllOrNothing(t *testing.T) {
	d := startSCIM(t, "reloadall", "", "http")
	const next = "the-replacement-token-0123456789"
	status := func(token string) int {
		return d.call("GET", "/Users?count=1", nil, "Authorization", "Bearer "+token).status
	}
	require.Equal(t, http.StatusOK, status(d.token))

	otherAdmin := freePort(t)
	d.rewrite(
		fmt.Sprintf("[admin]\nlisten = %q", d.admin), fmt.Sprintf("[admin]\nlisten = %q", otherAdmin),
		sha256Hex(d.token), sha256Hex(next),
		`name = "entra"`, `name = "entra-next"`,
	)
	d.signal(syscall.SIGHUP)
	waitFor(t, "the refused reload in the log", func() bool { return contains(d.stderr.String(), "reload failed") })
	require.Equal(t, http.StatusOK, status(d.token), "the old token still works")
	require.Equal(t, http.StatusUnauthorized, status(next), "the new token was not applied")
	require.Contains(t, d.stderr.String(), `"needs_restart":["admin.listen"]`, "the log names the key")
	st := d.reloadStatus()
	require.Equal(t, false, st["successful"])
	require.Equal(t, []any{"admin.listen"}, st["needs_restart"])
	require.Contains(t, st["error"], "admin.listen")
	require.Equal(t, []any{"entra"}, st["inbound_tokens"], "status shows the configuration in force")
	_, metrics := d.daemon.get("/metrics")
	require.Contains(t, metrics, "scimbridge_config_last_reload_successful 0")

	// Without the restart-only change, the same tokens reload.
	d.rewrite(fmt.Sprintf("[admin]\nlisten = %q", otherAdmin), fmt.Sprintf("[admin]\nlisten = %q", d.admin))
	d.signal(syscall.SIGHUP)
	waitFor(t, "the new token", func() bool { return status(next) == http.StatusOK })
	require.Equal(t, http.StatusUnauthorized, status(d.token), "the old token is gone")
	st = d.reloadStatus()
	require.Equal(t, true, st["successful"])
	require.Nil(t, st["needs_restart"])
	require.Equal(t, []any{"entra-next"}, st["inbound_tokens"])
	_, metrics = d.daemon.get("/metrics")
	require.Contains(t, metrics, "scimbridge_config_last_reload_successful 1")
	require.Equal(t, 0, d.stop())
}

// TestReloadAppliesTheLogSettings: [log] level and format change on SIGHUP, without a
// restart: a failed SCIM request is logged at debug, once debug is on, in console format.
func TestReloadAppliesTheLogSettings(t *testing.T) {
	s, ou := ldaptest.OU(t, "reloadlog")
	dir := t.TempDir()
	cfg, admin, inbound := baseConfig(t, s, dir, "")
	cfg = strings.Replace(cfg, `level = "debug"`, `level = "info"`, 1)
	const token = "integration-token-0123456789abcdef"
	cfg += inboundTOML(ou, inbound, token, "")
	d := startDaemon(t, dir, cfg, admin, inbound)
	missing := func() {
		req, err := http.NewRequest(http.MethodGet, "http://"+inbound+"/scim/v2/Users/no-such-id", nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusNotFound, resp.StatusCode)
	}
	missing()
	require.NotContains(t, d.stderr.String(), "scim request failed", "not at info")

	d.rewrite(`level = "info"`, "level = \"debug\"\nformat = \"console\"")
	d.signal(syscall.SIGHUP)
	waitFor(t, "the reload", func() bool { return contains(d.stderr.String(), "configuration reloaded") })
	missing()
	waitFor(t, "a debug line in console format", func() bool {
		for _, line := range strings.Split(d.stderr.String(), "\n") {
			if strings.Contains(line, "scim request failed") && strings.Contains(line, "DBG") && !strings.HasPrefix(line, "{") {
				return true
			}
		}
		return false
	})
	require.Equal(t, 0, d.stop())
}

// TestSIGHUPWithTheSameFileSendsNothing: a SIGHUP that changes nothing for a provisioner
// rebuilds nothing, so its target receives no request (no listing, no lookup) until the
// next directory change, whose PATCH is then the only request.
func TestSIGHUPWithTheSameFileSendsNothing(t *testing.T) {
	o := newOutEnv(t, "samefile")
	target := strictTarget(t)
	o.addUser("ada", "Ada", "Lovelace")
	o.start(o.provisioner("app", target.URL))
	waitFor(t, "ada on the target", func() bool { _, ok := target.UserByName("ada"); return ok })
	waitFor(t, "the first reconcile done", func() bool {
		p := o.provStatus("app")
		return p["last_reconcile"] != nil && p["outbox_depth"] == float64(0)
	})

	target.ResetRequests()
	o.d.signal(syscall.SIGHUP)
	waitFor(t, "the reload", func() bool { return contains(o.d.stderr.String(), "configuration reloaded") })
	o.modify(o.userDN("ada"), "replace: title", "title: Countess")
	waitFor(t, "the PATCH", func() bool { return target.CountRequests(http.MethodPatch, "/Users/") > 0 })
	waitFor(t, "the outbox drained", func() bool { return o.provStatus("app")["outbox_depth"] == float64(0) })
	var got []string
	for _, r := range target.Requests() {
		got = append(got, r.Method+" "+r.Path)
	}
	ada, _ := target.UserByName("ada")
	require.Equal(t, []string{"PATCH /Users/" + ada["id"].(string)}, got)
	require.Equal(t, 0, o.d.stop())
}
