package bridge_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/scimbridge/scimbridge/bridge"
	"github.com/scimbridge/scimbridge/bridge/config"
	"github.com/scimbridge/scimbridge/ldapstore/ldaptest"
	"github.com/scimbridge/scimbridge/targets"
	"github.com/scimbridge/scimbridge/targets/targettest"
)

func TestMain(m *testing.M) { os.Exit(ldaptest.RunMain(m, ldaptest.Options{})) }

func TestNewNamesMissingDependencies(t *testing.T) {
	_, err := bridge.New(bridge.Options{})
	require.ErrorContains(t, err, "bridge: Options.Config is required")
	require.ErrorContains(t, err, "bridge: Options.Registry is required")
}

func testConfig(t *testing.T, s *ldaptest.Server) *config.Config {
	t.Helper()
	dir := t.TempDir()
	data := `
[state]
dir = "state"
[admin]
listen = "127.0.0.1:0"
[ldap]
url = "` + s.URL + `"
bind_dn = "` + s.ServiceDN + `"
bind_password = "` + s.ServicePW + `"
base_dn = "` + s.Suffix + `"
[inbound]
enabled = false
`
	cfg, err := config.Parse([]byte(data), dir, bridge.Targets)
	require.NoError(t, err)
	return cfg
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestLifecycle starts a bridge on 127.0.0.1:0 with a fresh registry, checks the admin
// endpoints and the readiness notification, and stops it twice.
func TestLifecycle(t *testing.T) {
	s := ldaptest.Shared(t)
	var notified []string
	b, err := bridge.New(bridge.Options{
		Config: testConfig(t, s), Logger: zerolog.Nop(), Registry: prometheus.NewRegistry(),
		Notify: func(state string) bool { notified = append(notified, state); return true },
	})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, b.Start(ctx))
	require.Error(t, b.Start(ctx), "a bridge starts once")

	admin := "http://" + b.AdminAddr()
	code, body := get(t, admin+"/readyz")
	require.Equal(t, http.StatusOK, code, body)
	code, body = get(t, admin+"/metrics")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "scimbridge_ldap_up 1")
	code, body = get(t, admin+"/status")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, `"ready": true`)
	require.NotContains(t, body, s.ServicePW)
	require.Contains(t, strings.Join(notified, "\n"), "READY=1")

	// The control socket is the service user's alone, and the only entry the bridge left in
	// the state directory besides the state file.
	fi, err := os.Stat(filepath.Join(b.Config().State.Dir, bridge.ControlSocket))
	require.NoError(t, err)
	require.Equal(t, os.ModeSocket|0o600, fi.Mode())
	entries, err := os.ReadDir(b.Config().State.Dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	require.ElementsMatch(t, []string{bridge.ControlSocket, "state.db"}, names)

	require.NoError(t, b.Stop(context.Background()))
	require.NoError(t, b.Stop(context.Background()), "Stop is idempotent")
	<-b.Done()
	require.Contains(t, strings.Join(notified, "\n"), "STOPPING=1")
	_, err = http.Get(admin + "/healthz")
	require.Error(t, err, "the admin listener is closed")
}

// TestStartWaitsForTheDirectory: a directory that is down at boot delays readiness (Start
// retries) instead of failing; a cancelled start returns promptly.
func TestStartWaitsForTheDirectory(t *testing.T) {
	s := ldaptest.Private(t, ldaptest.Options{})
	cfg := testConfig(t, s)
	require.NoError(t, s.Stop())
	b, err := bridge.New(bridge.Options{Config: cfg, Logger: zerolog.Nop(), Registry: prometheus.NewRegistry()})
	require.NoError(t, err)
	go func() {
		time.Sleep(time.Second)
		_ = s.Start()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, b.Start(ctx))
	require.NoError(t, b.Store().Ping(ctx))
	require.NoError(t, b.Stop(context.Background()))

	require.NoError(t, s.Stop())
	b2, err := bridge.New(bridge.Options{Config: cfg, Logger: zerolog.Nop(), Registry: prometheus.NewRegistry()})
	require.NoError(t, err)
	short, cancel2 := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel2()
	start := time.Now()
	require.Error(t, b2.Start(short))
	require.Less(t, time.Since(start), 10*time.Second)
	_ = b2.Stop(context.Background())
}

// TestReloadRefusesRestartOnlyChanges: a reload changing a restart-only key is refused as a
// whole, naming the keys in the error, /status and the metric; one without is applied.
func TestReloadRefusesRestartOnlyChanges(t *testing.T) {
	s := ldaptest.Shared(t)
	cfg := testConfig(t, s)
	b, logs, _ := startLogged(t, cfg)
	ctx := context.Background()

	next := *cfg
	next.LDAP.URLs = []string{"ldap://127.0.0.1:1"}
	next.LDAP.PoolSize = 3
	next.Log.Level = "debug"
	err := b.Reload(&next)
	require.ErrorContains(t, err, "ldap.urls, ldap.pool_size need a restart")
	_, body := get(t, "http://"+b.AdminAddr()+"/metrics")
	require.Contains(t, body, "scimbridge_config_last_reload_successful 0")
	st := b.Status(ctx)
	require.NotNil(t, st.Reload)
	require.False(t, st.Reload.Successful)
	require.Equal(t, []string{"ldap.urls", "ldap.pool_size"}, st.Reload.NeedsRestart)
	require.Equal(t, cfg, b.Config(), "nothing changed")
	require.Contains(t, logs.String(), `"needs_restart":["ldap.urls","ldap.pool_size"]`)
	require.NotContains(t, logs.String(), `"level":"debug"`, "the log level of the refused file was not applied")

	same := *cfg
	same.Log.Level = "debug"
	require.NoError(t, b.Reload(&same), "a configuration that changes nothing needing a restart reloads")
	_, body = get(t, "http://"+b.AdminAddr()+"/metrics")
	require.Contains(t, body, "scimbridge_config_last_reload_successful 1")
	st = b.Status(ctx)
	require.True(t, st.Reload.Successful)
	require.Empty(t, st.Reload.NeedsRestart)
	require.Equal(t, &same, b.Config())
}

// TestReloadAppliesTheLog: [log] level and format apply to every logger derived from the
// root one (the components'), at once; without a LogOutput a change of [log] is refused.
func TestReloadAppliesTheLog(t *testing.T) {
	s := ldaptest.Shared(t)
	cfg := testConfig(t, s)
	b, logs, out := startLogged(t, cfg)
	component := out.Logger().With().Str("component", "x").Logger()
	var levels []zerolog.Level
	out.OnLevel(func(l zerolog.Level) { levels = append(levels, l) })

	component.Debug().Msg("before")
	require.NotContains(t, logs.String(), "before")
	next := *cfg
	next.Log = config.Log{Level: "debug", Format: "console"}
	require.NoError(t, b.Reload(&next))
	component.Debug().Msg("after")
	line := lastLine(logs.String())
	require.Contains(t, line, "DBG after")
	require.NotContains(t, line, "{", "console format")
	back := *cfg
	back.Log = config.Log{Level: "warn", Format: "json"}
	require.NoError(t, b.Reload(&back))
	component.Info().Msg("hidden")
	component.Warn().Msg("shown")
	require.NotContains(t, logs.String(), "hidden")
	require.Contains(t, lastLine(logs.String()), `"message":"shown"`)
	require.Equal(t, []zerolog.Level{zerolog.InfoLevel, zerolog.DebugLevel, zerolog.WarnLevel}, levels, "the process-wide level follows")

	plain, err := bridge.New(bridge.Options{Config: cfg, Logger: zerolog.Nop(), Registry: prometheus.NewRegistry()})
	require.NoError(t, err)
	require.ErrorContains(t, plain.Reload(&next), "log: this bridge's logger was not built from [log]")
}

// startLogged starts a bridge for cfg whose log (at cfg's [log], changed by reloads) is
// returned with its output; it stops at the end of the test.
func startLogged(t *testing.T, cfg *config.Config) (*bridge.Bridge, *syncBuffer, *bridge.LogOutput) {
	t.Helper()
	logs := &syncBuffer{}
	out, err := bridge.NewLogOutput(logs, cfg.Log)
	require.NoError(t, err)
	b, err := bridge.New(bridge.Options{Config: cfg, Logger: out.Logger(), Log: out, Registry: prometheus.NewRegistry()})
	require.NoError(t, err)
	require.NoError(t, b.Start(context.Background()))
	t.Cleanup(func() { _ = b.Stop(context.Background()) })
	return b, logs, out
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

const targetToken = "target-token-0123456789abcdef"

// provConfig is a configuration with one provisioner "app" pushing the users below ou (the
// test's own OU in s) to the SCIM target at url; extra lines go into the provisioner.
func provConfig(t *testing.T, s *ldaptest.Server, dir, ou, url string, extra ...string) *config.Config {
	t.Helper()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "target-token"), []byte(targetToken+"\n"), 0o600))
	data := `
[state]
dir = "state"
[admin]
listen = "127.0.0.1:0"
[changes]
poll_interval = "100ms"
[ldap]
url = "` + s.URL + `"
bind_dn = "` + s.ServiceDN + `"
bind_password = "` + s.ServicePW + `"
base_dn = "` + s.Suffix + `"
[ldap.users]
base_dn = "ou=people,` + ou + `"
[ldap.groups]
base_dn = "ou=groups,` + ou + `"
[inbound]
enabled = false
[[provisioner]]
name = "app"
url = "` + url + `"
auth = "bearer"
token_file = "target-token"
` + strings.Join(extra, "\n") + "\n"
	cfg, err := config.Parse([]byte(data), dir, bridge.Targets)
	require.NoError(t, err)
	require.NoError(t, cfg.LoadSecrets())
	return cfg
}

// TestStopJoinsEverything: Stop returns only once every goroutine the bridge started has
// ended: here the change reader is stuck in a search of a directory that stopped answering
// (SIGSTOP) and the reconcile a reload started is listing a slow target.
func TestStopJoinsEverything(t *testing.T) {
	s := ldaptest.Private(t, ldaptest.Options{Seed: "dn: uid=ada,ou=people," + ldaptest.DefaultSuffix + "\nobjectClass: inetOrgPerson\nuid: ada\ncn: Ada\nsn: Lovelace\n"})
	target := targettest.NewServer(targettest.Options{BasePath: "/scim/v2", BearerTokens: []string{targetToken}})
	ignore := goleak.IgnoreCurrent() // slapd's process waiters, the target's listener
	dir := t.TempDir()
	cfg := func(extra ...string) *config.Config {
		c := provConfig(t, s, dir, s.Suffix, target.URL, extra...)
		c.LDAP.Timeout.Duration = 3 * time.Second
		return c
	}
	b, err := bridge.New(bridge.Options{Config: cfg(), Logger: zerolog.Nop(), Registry: prometheus.NewRegistry()})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, b.Start(ctx))
	waitUntil(t, "ada on the target", func() bool { _, ok := target.UserByName("ada"); return ok })

	// A changed provisioner is rebuilt and reconciled: its listing hangs on the target.
	listing := make(chan struct{}, 1)
	target.SetHook(func(_ http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/Users") {
			select {
			case listing <- struct{}{}:
			default:
			}
		}
		return false
	})
	target.SetLatency(10 * time.Second)
	require.NoError(t, b.Reload(cfg("rate_limit = 40")))
	select {
	case <-listing:
	case <-ctx.Done():
		t.Fatal("the reload's reconcile did not list the target")
	}
	// The directory stops answering: the reader's next poll waits for ldap.timeout.
	require.NoError(t, syscall.Kill(s.PID(), syscall.SIGSTOP))
	t.Cleanup(func() { _ = syscall.Kill(s.PID(), syscall.SIGCONT) })
	time.Sleep(500 * time.Millisecond)

	require.NoError(t, b.Stop(context.Background()))
	target.Close()
	goleak.VerifyNone(t, ignore)
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestReloadOfAnUnchangedProvisionerSendsNothing: a reload with the same file rebuilds no
// provisioner, so its target hears nothing (no listing, no lookup): the next request it
// receives is the PATCH of the next directory change.
func TestReloadOfAnUnchangedProvisionerSendsNothing(t *testing.T) {
	s, ou := ldaptest.OU(t, "samereload")
	require.NoError(t, s.LDIF("dn: uid=ada,ou=people,"+ou+"\nobjectClass: inetOrgPerson\nuid: ada\ncn: Ada\nsn: Lovelace\n"))
	target := targettest.NewServer(targettest.Options{BasePath: "/scim/v2", BearerTokens: []string{targetToken}})
	defer target.Close()
	dir := t.TempDir()
	b, err := bridge.New(bridge.Options{Config: provConfig(t, s, dir, ou, target.URL), Logger: zerolog.Nop(), Registry: prometheus.NewRegistry()})
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, b.Start(ctx))
	defer b.Stop(ctx)
	waitUntil(t, "ada on the target", func() bool { _, ok := target.UserByName("ada"); return ok })
	waitIdle(t, b)

	target.ResetRequests()
	require.NoError(t, b.Reload(provConfig(t, s, dir, ou, target.URL)))
	require.NoError(t, s.LDIF("dn: uid=ada,ou=people,"+ou+"\nchangetype: modify\nreplace: title\ntitle: Countess\n"))
	waitUntil(t, "the PATCH of ada's title", func() bool { return target.CountRequests(http.MethodPatch, "/Users/") > 0 })
	waitIdle(t, b)
	var got []string
	for _, r := range target.Requests() {
		got = append(got, r.Method+" "+r.Path)
	}
	ada, _ := target.UserByName("ada")
	require.Equal(t, []string{"PATCH /Users/" + ada["id"].(string)}, got, "the reload sent nothing")

	_, body := get(t, "http://"+b.AdminAddr()+"/metrics")
	require.Regexp(t, `scimbridge_state_write_transaction_duration_seconds_count [1-9]`, body)
}

// waitIdle waits until the bridge's provisioners have nothing left to deliver and no
// reconcile is due.
func waitIdle(t *testing.T, b *bridge.Bridge) {
	t.Helper()
	waitUntil(t, "the provisioners idle", func() bool {
		var st struct {
			Components struct {
				Outbound bridge.ProvisioningStatus `json:"outbound"`
			} `json:"components"`
		}
		raw, err := json.Marshal(b.Status(context.Background()))
		require.NoError(t, err)
		require.NoError(t, json.Unmarshal(raw, &st))
		for _, p := range st.Components.Outbound.Provisioners {
			if p.OutboxDepth > 0 || p.LastSync.IsZero() {
				return false
			}
		}
		return len(st.Components.Outbound.Provisioners) > 0
	})
}

// TestReloadIsAllOrNothing: whatever makes a reload fail — a restart-only key, or a part that
// cannot be prepared (here a provisioner whose token file is missing) — nothing of it is
// applied: the SCIM server keeps its old tokens, /status its old names.
func TestReloadIsAllOrNothing(t *testing.T) {
	s, ou := ldaptest.OU(t, "allornothing")
	dir := t.TempDir()
	const oldToken, newToken = "the-old-token-0123456789abcdef", "the-new-token-0123456789abcdef"
	withTokens := func(name, token string, extra ...string) *config.Config {
		cfg := provConfig(t, s, dir, ou, "http://127.0.0.1:1/scim/v2", extra...)
		sum := sha256.Sum256([]byte(token))
		cfg.Inbound.Enabled, cfg.Inbound.Listen = true, "127.0.0.1:0"
		cfg.Inbound.Tokens = []config.Token{{Name: name, SHA256: hex.EncodeToString(sum[:])}}
		return cfg
	}
	cfg := withTokens("entra", oldToken)
	b, err := bridge.New(bridge.Options{Config: cfg, Logger: zerolog.Nop(), Registry: prometheus.NewRegistry()})
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, b.Start(ctx))
	defer b.Stop(ctx)
	status := func(token string) int {
		req, err := http.NewRequest(http.MethodGet, "http://"+b.InboundAddr()+"/scim/v2/Users?count=1", nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	inboundTokens := func() any {
		return b.Status(ctx).Extra["inbound"].(map[string]any)["tokens"]
	}
	require.Equal(t, http.StatusOK, status(oldToken))

	for name, next := range map[string]*config.Config{
		"admin.listen": func() *config.Config {
			c := withTokens("entra-next", newToken)
			c.Admin.Listen = "127.0.0.1:1"
			return c
		}(),
		"a provisioner fails": withTokens("entra-next", newToken, "deprovision = \"delete\""),
	} {
		if name == "a provisioner fails" {
			next.Provisioners[0].Target = brokenTarget(t)
		}
		require.Error(t, b.Reload(next), name)
		require.Equal(t, http.StatusOK, status(oldToken), name)
		require.Equal(t, http.StatusUnauthorized, status(newToken), name)
		require.Equal(t, []string{"entra"}, inboundTokens(), name)
		require.Same(t, cfg, b.Config(), name)
	}
	require.NoError(t, b.Reload(withTokens("entra-next", newToken)))
	require.Equal(t, http.StatusUnauthorized, status(oldToken))
	require.Equal(t, http.StatusOK, status(newToken))
	require.Equal(t, []string{"entra-next"}, inboundTokens())
}

// brokenTarget is a provisioner's target configuration with a token file that does not
// exist: it passes validation, and Open fails.
func brokenTarget(t *testing.T) targets.Config {
	t.Helper()
	data := `
[ldap]
url = "ldap://127.0.0.1:1"
bind_dn = "cn=x"
bind_password = "x"
base_dn = "dc=example,dc=org"
[inbound]
enabled = false
[[provisioner]]
name = "app"
url = "` + "http://127.0.0.1:1/scim/v2" + `"
auth = "bearer"
token_file = "no-such-token-file"
`
	c, err := config.Parse([]byte(data), t.TempDir(), bridge.Targets)
	require.NoError(t, err)
	return c.Provisioners[0].Target
}
