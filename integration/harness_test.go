package integration

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/ldapstore/ldaptest"
)

func TestMain(m *testing.M) { os.Exit(ldaptest.RunMain(m, ldaptest.Options{})) }

// builtBinary is one build of the real scimbridge binary.
type builtBinary struct {
	once sync.Once
	path string
	err  error
}

var (
	testBin  builtBinary // with -race when the tests run with it
	benchBin builtBinary // as it ships, for benchmarks
)

func (bb *builtBinary) get(tb testing.TB, race bool) string {
	tb.Helper()
	bb.once.Do(func() {
		dir, err := os.MkdirTemp("", "scimbridge-bin-")
		if err != nil {
			bb.err = err
			return
		}
		bb.path = filepath.Join(dir, "scimbridge")
		args := []string{"build", "-o", bb.path}
		if race {
			args = append(args, "-race")
		}
		out, err := exec.Command("go", append(args, "github.com/scimbridge/scimbridge/cmd/scimbridge")...).CombinedOutput()
		if err != nil {
			bb.err = fmt.Errorf("go build: %w: %s", err, out)
		}
	})
	require.NoError(tb, bb.err)
	return bb.path
}

// binary builds the real scimbridge binary once per test run.
func binary(tb testing.TB) string { return testBin.get(tb, raceEnabled) }

// benchBinary builds the binary as it ships (no race detector).
func benchBinary(tb testing.TB) string { return benchBin.get(tb, false) }

// syncBuffer is a bytes.Buffer safe for a process writing and a test reading.
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

// daemon is a running `scimbridge serve`.
type daemon struct {
	t       *testing.T
	cmd     *exec.Cmd
	dir     string
	cfgPath string
	admin   string
	inbound string
	stderr  *syncBuffer
	exited  chan struct{}
	exitErr error
}

func freePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

// baseConfig is a configuration for the shared slapd with the given extra TOML appended.
// ADMIN and INBOUND addresses are free ports.
func baseConfig(t *testing.T, s *ldaptest.Server, dir, extra string) (string, string, string) {
	t.Helper()
	admin, inbound := freePort(t), freePort(t)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "ldap-password"), []byte(s.ServicePW+"\n"), 0o600))
	cfg := fmt.Sprintf(`[log]
level = "debug"
[state]
dir = %q
[admin]
listen = %q
[ldap]
%s
bind_dn = %q
bind_password_file = "ldap-password"
base_dn = %q
%s`, filepath.Join(dir, "state"), admin, ldapURLTOML(s), s.ServiceDN, s.Suffix, extra)
	return cfg, admin, inbound
}

// ldapURLTOML is how the daemon reaches s: 389-DS and Active Directory take passwords only
// over TLS, so the daemon uses their LDAPS listener, verified with their CA.
func ldapURLTOML(s *ldaptest.Server) string {
	if s.Kind == ldaptest.KindOpenLDAP || s.LDAPSURL == "" {
		return fmt.Sprintf("url = %q", s.URL)
	}
	return fmt.Sprintf("url = %q\nca_file = %q", s.LDAPSURL, s.CAFile)
}

// startDaemon writes cfg to a file and runs `scimbridge serve` on it until /readyz answers.
func startDaemon(t *testing.T, dir, cfg, admin, inbound string) *daemon {
	t.Helper()
	return startDaemonEnv(t, dir, cfg, admin, inbound, nil)
}

// startDaemonEnv is startDaemon with extra environment variables ("NAME=value").
func startDaemonEnv(t *testing.T, dir, cfg, admin, inbound string, env []string) *daemon {
	t.Helper()
	d := &daemon{t: t, dir: dir, cfgPath: filepath.Join(dir, "scimbridge.toml"), admin: admin, inbound: inbound, stderr: &syncBuffer{}, exited: make(chan struct{})}
	require.NoError(t, os.WriteFile(d.cfgPath, []byte(cfg), 0o600))
	d.cmd = exec.Command(binary(t), "serve", "--config", d.cfgPath)
	if env != nil {
		d.cmd.Env = append(os.Environ(), env...)
	}
	d.cmd.Stderr = d.stderr
	d.cmd.Stdout = d.stderr
	require.NoError(t, d.cmd.Start())
	go func() { d.exitErr = d.cmd.Wait(); close(d.exited) }()
	t.Cleanup(func() {
		select {
		case <-d.exited:
		default:
			_ = d.cmd.Process.Kill()
			<-d.exited
		}
		if t.Failed() {
			t.Logf("daemon log:\n%s", d.stderr.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-d.exited:
			t.Fatalf("daemon exited during start: %v\n%s", d.exitErr, d.stderr.String())
		default:
		}
		resp, err := http.Get("http://" + admin + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return d
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon not ready after 30s:\n%s", d.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (d *daemon) signal(sig syscall.Signal) { require.NoError(d.t, d.cmd.Process.Signal(sig)) }

// stop sends SIGTERM and returns the exit code.
func (d *daemon) stop() int {
	d.signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(40 * time.Second):
		d.t.Fatalf("daemon did not stop within 40s")
	}
	if d.exitErr == nil {
		return 0
	}
	ee := &exec.ExitError{}
	if errors.As(d.exitErr, &ee) {
		return ee.ExitCode()
	}
	return -1
}

func (d *daemon) get(path string) (int, string) {
	resp, err := http.Get("http://" + d.admin + path)
	require.NoError(d.t, err)
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	return resp.StatusCode, buf.String()
}

// waitFor polls cond until it holds or the generous bound passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
