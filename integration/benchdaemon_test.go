package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/ldapstore/ldaptest"
)

// benchDaemon is the real binary serving one provisioner to a fastTarget, for benchmarks.
type benchDaemon struct {
	cmd   *exec.Cmd
	logs  *syncBuffer
	admin string
	dir   string // holds the configuration and the state dir
}

// startBenchDaemon writes a configuration (inbound off, one provisioner named name of type
// scim to targetURL, plus provisionerExtra lines) and starts `scimbridge serve` on it. The
// process is killed when b ends unless stopped before.
func startBenchDaemon(b *testing.B, s *ldaptest.Server, name, targetURL, provisionerExtra string) *benchDaemon {
	dir := b.TempDir()
	require.NoError(b, os.WriteFile(filepath.Join(dir, "ldap-password"), []byte(s.ServicePW+"\n"), 0o600))
	d := &benchDaemon{logs: &syncBuffer{}, admin: freePort(b), dir: dir}
	conf := fmt.Sprintf(`[log]
level = "warn"
[state]
dir = %q
[admin]
listen = %q
[ldap]
url = %q
bind_dn = %q
bind_password_file = "ldap-password"
base_dn = %q
[inbound]
enabled = false
[[provisioner]]
name = %q
type = "scim"
url = %q
auth = "none"
%s`, filepath.Join(dir, "state"), d.admin, s.URL, s.ServiceDN, s.Suffix, name, targetURL, provisionerExtra)
	cfgPath := filepath.Join(dir, "scimbridge.toml")
	require.NoError(b, os.WriteFile(cfgPath, []byte(conf), 0o600))
	d.cmd = exec.Command(benchBinary(b), "serve", "--config", cfgPath)
	d.cmd.Stderr, d.cmd.Stdout = d.logs, d.logs
	if f := os.Getenv("SCIMBRIDGE_BENCH_GCTRACE"); f != "" {
		out, err := os.Create(f)
		require.NoError(b, err)
		d.cmd.Env = append(os.Environ(), "GODEBUG=gctrace=1")
		d.cmd.Stderr = out
	}
	require.NoError(b, d.cmd.Start())
	b.Cleanup(func() {
		_ = d.cmd.Process.Kill()
		_ = d.cmd.Wait()
	})
	return d
}

// tagRecorder notes when a fastTarget first received each "lat-N" tag in a PATCH.
type tagRecorder struct {
	mu sync.Mutex
	at map[string]time.Time
}

func recordTags(t *fastTarget) *tagRecorder {
	r := &tagRecorder{at: map[string]time.Time{}}
	t.onPatch = func(body []byte) {
		i := strings.Index(string(body), "lat-")
		if i < 0 {
			return
		}
		tag := string(body[i:])
		tag = tag[:strings.IndexByte(tag, '"')]
		r.mu.Lock()
		defer r.mu.Unlock()
		if _, ok := r.at[tag]; !ok {
			r.at[tag] = time.Now()
		}
	}
	return r
}

// writeLatency sets the title of writes entries (dn(i)) to "lat-i" one at a time, 25 ms
// apart, waits until the target received every one, and returns the latencies, sorted.
func writeLatency(b *testing.B, conn *ldap.Conn, rec *tagRecorder, writes int, dn func(i int) string) []time.Duration {
	wrote := make(map[string]time.Time, writes)
	for i := range writes {
		tag := fmt.Sprintf("lat-%d", i)
		req := ldap.NewModifyRequest(dn(i), nil)
		req.Replace("title", []string{tag})
		require.NoError(b, conn.Modify(req))
		wrote[tag] = time.Now()
		time.Sleep(25 * time.Millisecond)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		rec.mu.Lock()
		got := len(rec.at)
		rec.mu.Unlock()
		if got >= writes {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("only %d of %d latency writes reached the target", got, writes)
		}
		time.Sleep(20 * time.Millisecond)
	}
	lat := make([]time.Duration, 0, writes)
	rec.mu.Lock()
	for tag, t0 := range wrote {
		lat = append(lat, rec.at[tag].Sub(t0))
	}
	rec.mu.Unlock()
	slices.Sort(lat)
	return lat
}
