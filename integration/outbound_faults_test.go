package integration

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// burstLDIF adds users u0000…u(n-1), then changes the title of the first m of them.
func (o *outEnv) burstLDIF(n, m int) string {
	var b strings.Builder
	for i := range n {
		b.WriteString(o.userLDIF(fmt.Sprintf("u%04d", i), "User", fmt.Sprintf("Number%d", i)))
		b.WriteString("\n")
	}
	for i := range m {
		fmt.Fprintf(&b, "dn: %s\nchangetype: modify\nreplace: title\ntitle: changed-%d\n\n", o.userDN(fmt.Sprintf("u%04d", i)), i)
	}
	return b.String()
}

// TestOutboundSIGKILLDuringBurst kills the daemon with SIGKILL in the middle of a
// 2,000-change burst (1,600 adds and 400 modifies) and restarts it: every change reaches the
// target and no account is created twice.
func TestOutboundSIGKILLDuringBurst(t *testing.T) {
	if testing.Short() {
		t.Skip("a 2,000-change burst")
	}
	o := newOutEnv(t, "sigkill")
	target := strictTarget(t)
	o.start(o.provisioner("app", target.URL, "rate_limit = 5000", "concurrency = 8", `min_retry_delay = "100ms"`, `max_retry_delay = "1s"`))

	const adds, mods = 1600, 400
	burstDone := make(chan error, 1)
	go func() { burstDone <- o.s.LDIF(o.burstLDIF(adds, mods)) }()

	waitLong(t, "the first deliveries", 2*time.Minute, func() bool { return target.Creates() >= 200 })
	require.NoError(t, o.d.cmd.Process.Signal(syscall.SIGKILL))
	<-o.d.exited
	killedAt := target.Creates()
	t.Logf("SIGKILL after %d creates", killedAt)
	o.restart()

	require.NoError(t, <-burstDone)
	waitLong(t, "every change on the target", 3*time.Minute, func() bool {
		users := target.Users()
		if len(users) < adds {
			return false
		}
		for _, u := range users {
			var i int
			if _, err := fmt.Sscanf(fmt.Sprint(u["userName"]), "u%04d", &i); err == nil && i < mods && u["title"] != fmt.Sprintf("changed-%d", i) {
				return false
			}
		}
		return true
	})
	users := target.Users()
	require.Len(t, users, adds)
	require.EqualValues(t, adds, target.Creates(), "no account was created twice")
	seen := map[string]bool{}
	for _, u := range users {
		name := fmt.Sprint(u["userName"])
		require.False(t, seen[name], "duplicate %s", name)
		seen[name] = true
	}
	st := o.provStatus("app")
	require.EqualValues(t, 0, st["dead_letters"])
	require.Equal(t, 0, o.d.stop())
}

// TestOutboundTargetDown takes the target away (every connection dropped) while users are
// added: the provisioner pauses instead of burning attempts (max_attempts = 3, so nothing may
// be dead-lettered), status says so, and everything is delivered when the target returns.
func TestOutboundTargetDown(t *testing.T) {
	o := newOutEnv(t, "down")
	target := strictTarget(t)
	var down atomic.Bool
	target.SetHook(func(w http.ResponseWriter, _ *http.Request) bool {
		if !down.Load() {
			return false
		}
		if hj, ok := w.(http.Hijacker); ok {
			if c, _, err := hj.Hijack(); err == nil {
				_ = c.Close()
				return true
			}
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		return true
	})
	o.addUser("first", "First", "User")
	o.start(o.provisioner("app", target.URL, "max_attempts = 3", `min_retry_delay = "200ms"`, `max_retry_delay = "1s"`))
	waitFor(t, "first on the target", func() bool { _, ok := target.UserByName("first"); return ok })

	down.Store(true)
	for i := range 12 {
		o.addUser(fmt.Sprintf("late%02d", i), "Late", fmt.Sprint(i))
	}
	waitFor(t, "the provisioner pausing on the target", func() bool {
		tg, _ := o.provStatus("app")["target"].(map[string]any)
		return tg["state"] != "closed"
	})
	time.Sleep(6 * time.Second) // several backoff rounds: nobody's attempts may run out
	st := o.provStatus("app")
	require.EqualValues(t, 0, st["dead_letters"], "an outage must not dead-letter items")
	require.NotEmpty(t, st["last_error"])
	out, _, code := o.cli("status")
	require.Equal(t, 0, code)
	require.Contains(t, out, "app")

	down.Store(false)
	waitFor(t, "every user delivered after the target returned", func() bool { return len(target.Users()) == 13 })
	waitFor(t, "the circuit closing", func() bool {
		tg, _ := o.provStatus("app")["target"].(map[string]any)
		return tg["state"] == "closed" && o.provStatus("app")["outbox_depth"] == float64(0)
	})
	require.EqualValues(t, 13, target.Creates())
	require.EqualValues(t, 0, o.provStatus("app")["dead_letters"])
	require.Equal(t, 0, o.d.stop())
}

// TestOutboundStormAndDeadLetters answers 30% of the requests with 5xx or 429 (Retry-After)
// and refuses one user for good with a 400: everything else is delivered, the refused one is
// dead-lettered with the target's error, blocks nothing, and is delivered when retried once
// the target accepts it.
func TestOutboundStormAndDeadLetters(t *testing.T) {
	o := newOutEnv(t, "storm")
	target := strictTarget(t)
	var (
		mu     sync.Mutex
		rng    = rand.New(rand.NewPCG(1, 2))
		reject atomic.Bool
		storm  atomic.Bool
	)
	reject.Store(true)
	storm.Store(true)
	target.SetHook(func(w http.ResponseWriter, r *http.Request) bool {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		if reject.Load() && r.Method == http.MethodPost && bytes.Contains(body, []byte(`"rejected"`)) {
			w.Header().Set("Content-Type", "application/scim+json")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"400","scimType":"invalidValue","detail":"userName rejected is reserved"}`))
			return true
		}
		if !storm.Load() {
			return false
		}
		mu.Lock()
		p := rng.Float64()
		mu.Unlock()
		switch {
		case p < 0.15:
			w.WriteHeader(http.StatusServiceUnavailable)
			return true
		case p < 0.30:
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return true
		}
		return false
	})
	o.addUser("rejected", "Re", "Jected")
	for i := range 30 {
		o.addUser(fmt.Sprintf("s%02d", i), "Storm", fmt.Sprint(i))
	}
	o.start(o.provisioner("app", target.URL, `min_retry_delay = "100ms"`, `max_retry_delay = "2s"`, "rate_limit = 100"))
	for i := range 10 {
		o.modify(o.userDN(fmt.Sprintf("s%02d", i)), "replace: title", fmt.Sprintf("title: title-%d", i))
	}
	waitLong(t, "every storm user delivered", 2*time.Minute, func() bool {
		n := 0
		for _, u := range target.Users() {
			name := fmt.Sprint(u["userName"])
			if strings.HasPrefix(name, "s") {
				var i int
				_, _ = fmt.Sscanf(name, "s%02d", &i)
				if i >= 10 || u["title"] == fmt.Sprintf("title-%d", i) {
					n++
				}
			}
		}
		return n == 30
	})
	waitFor(t, "the refused user dead-lettered", func() bool { return o.provStatus("app")["dead_letters"] == float64(1) })
	out, errOut, code := o.cli("deadletter", "list", "--provisioner", "app")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "userName rejected is reserved", "the target's error is kept")
	require.Contains(t, out, "uid=rejected")
	id := strings.Fields(strings.Split(out, "\n")[1])[0]

	storm.Store(false)
	reject.Store(false)
	out, errOut, code = o.cli("deadletter", "retry", "--provisioner", "app", id)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "1 dead letters queued again")
	waitFor(t, "the retried user delivered", func() bool { _, ok := target.UserByName("rejected"); return ok })
	waitFor(t, "no dead letters left", func() bool { return o.provStatus("app")["dead_letters"] == float64(0) })
	out, _, code = o.cli("deadletter", "list", "--provisioner", "app")
	require.Equal(t, 0, code)
	require.Contains(t, out, "no dead letters")
	require.EqualValues(t, 31, target.Creates(), "storms and retries created nobody twice")
	require.Equal(t, 0, o.d.stop())
}

// TestOutboundDeletionBreaker changes a provisioner's scope so that more than max_deletes
// accounts would be disabled: plan shows it beforehand, the reload trips the breaker (nothing
// is disabled; status and metrics say so), and sync --allow-deletes lets it continue.
func TestOutboundDeletionBreaker(t *testing.T) {
	o := newOutEnv(t, "breaker")
	target := strictTarget(t)
	var members []string
	for i := range 6 {
		uid := fmt.Sprintf("b%d", i)
		o.addUser(uid, "Breaker", fmt.Sprint(i))
		members = append(members, uid)
	}
	o.addGroup("old", members...)
	o.addGroup("new", "b0")
	prov := func(group string) string {
		return o.provisioner("app", target.URL, `groups = ["`+o.groupDN(group)+`"]`, "max_deletes = 3")
	}
	o.start(prov("old"))
	waitFor(t, "six accounts", func() bool { return len(target.Users()) == 6 })

	// The admin prepares a new scope and looks before loading it.
	newCfg, _ := o.config(prov("new"))
	// Keep the running daemon's admin address: only the provisioner changes.
	newCfg = replaceAdmin(newCfg, o.admin)
	planPath := filepath.Join(o.dir, "new.toml")
	require.NoError(t, os.WriteFile(planPath, []byte(newCfg), 0o600))
	out, errOut, code := runCLI(t, "plan", "--config", planPath)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "5 disables")
	for _, uid := range members[1:] {
		require.Contains(t, out, "disable  "+uid)
	}
	require.Contains(t, out, "exceed max_deletes 3")

	require.NoError(t, os.WriteFile(o.d.cfgPath, []byte(newCfg), 0o600))
	o.d.signal(syscall.SIGHUP)
	waitFor(t, "the breaker tripping", func() bool {
		br, _ := o.provStatus("app")["breaker"].(map[string]any)
		return br["tripped"] == true
	})
	waitFor(t, "the breaker metric", func() bool {
		_, metrics := o.d.get("/metrics")
		return contains(metrics, `scimbridge_outbound_breaker_open{breaker="deletes",provisioner="app"} 1`)
	})
	out, _, _ = o.cli("status")
	require.Contains(t, out, "TRIPPED")
	require.Contains(t, out, "--allow-deletes")
	waitFor(t, "the breaker's log line", func() bool { return contains(o.d.stderr.String(), "deletion breaker tripped") })
	time.Sleep(2 * time.Second)
	for _, u := range target.Users() {
		require.True(t, active(u), "nothing is disabled while the breaker holds: %v", u["userName"])
	}

	out, errOut, code = o.cli("sync", "--provisioner", "app", "--allow-deletes")
	require.Equal(t, 0, code, out+errOut)
	require.Contains(t, out, "deletion breaker released")
	waitFor(t, "five accounts disabled", func() bool {
		n := 0
		for _, u := range target.Users() {
			if !active(u) {
				n++
			}
		}
		return n == 5
	})
	u, _ := target.UserByName("b0")
	require.True(t, active(u), "b0 stays in scope")
	require.Equal(t, 0, o.d.stop())
}

// replaceAdmin sets the [admin] listen address of a configuration.
func replaceAdmin(cfg, admin string) string {
	lines := strings.Split(cfg, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "listen = ") && i > 0 && strings.TrimSpace(lines[i-1]) == "[admin]" {
			lines[i] = fmt.Sprintf("listen = %q", admin)
		}
	}
	return strings.Join(lines, "\n")
}

// runCLI runs the binary with args as given.
func runCLI(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(binary(t), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if err != nil {
		code = cmd.ProcessState.ExitCode()
	}
	return stdout.String(), stderr.String(), code
}
