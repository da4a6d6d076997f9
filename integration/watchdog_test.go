package integration

import (
	"net"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/ldapstore/ldaptest"
)

// notifySocket is a service manager's notification socket: a Unix datagram socket collecting
// what the daemon sends (READY=1, WATCHDOG=1, STATUS=…), in order.
type notifySocket struct {
	path string
	conn *net.UnixConn
	mu   sync.Mutex
	msgs []string
}

func listenNotify(t *testing.T) *notifySocket {
	t.Helper()
	n := &notifySocket{path: filepath.Join(t.TempDir(), "notify.sock")}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: n.path, Net: "unixgram"})
	require.NoError(t, err)
	n.conn = conn
	t.Cleanup(func() { _ = conn.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			k, err := conn.Read(buf)
			if err != nil {
				return
			}
			n.mu.Lock()
			n.msgs = append(n.msgs, strings.Split(strings.TrimSpace(string(buf[:k])), "\n")...)
			n.mu.Unlock()
		}
	}()
	return n
}

// count is how many lines so far start with prefix.
func (n *notifySocket) count(prefix string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := 0
	for _, m := range n.msgs {
		if strings.HasPrefix(m, prefix) {
			c++
		}
	}
	return c
}

// since returns the lines after the first index lines.
func (n *notifySocket) since(index int) []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.msgs[index:]...)
}

func (n *notifySocket) len() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.msgs)
}

// TestWatchdog runs the real daemon under a fake systemd: NOTIFY_SOCKET and WATCHDOG_USEC (1s).
// It pings WATCHDOG=1 while its loops turn, also while the directory is down (the change
// reader waits 2s between polls, longer than the watchdog's bound), stops pinging when the change reader is stuck in a call (slapd
// frozen with SIGSTOP, LDAP timeouts of an hour), and pings again once the call returns.
func TestWatchdog(t *testing.T) {
	s := ldaptest.Private(t, ldaptest.Options{})
	dir := t.TempDir()
	cfg, admin, inbound := baseConfig(t, s, dir, `timeout = "1h"
dial_timeout = "1h"
[changes]
poll_interval = "2s"
[inbound]
enabled = false
[[provisioner]]
name = "dry-run"
type = "log"
`)
	sock := listenNotify(t)
	d := startDaemonEnv(t, dir, cfg, admin, inbound, []string{"NOTIFY_SOCKET=" + sock.path, "WATCHDOG_USEC=1000000"})
	waitFor(t, "READY=1", func() bool { return sock.count("READY=1") == 1 })
	waitFor(t, "watchdog pings", func() bool { return sock.count("WATCHDOG=1") >= 3 })

	// The directory is down: the reader fails fast and waits out its backoff. Still alive.
	require.NoError(t, s.Stop())
	pings := sock.count("WATCHDOG=1")
	waitFor(t, "the reader to see the outage", func() bool { return contains(d.stderr.String(), "change capture failed") })
	waitFor(t, "pings during the outage", func() bool { return sock.count("WATCHDOG=1") >= pings+4 })
	require.Zero(t, sock.count("STATUS=stuck"))
	require.NoError(t, s.Start())
	waitFor(t, "the reader to recover", func() bool { return contains(d.stderr.String(), "change capture recovered") })

	// Frozen: the reader's next search never gets an answer and its timeouts are an hour.
	require.NoError(t, syscall.Kill(s.PID(), syscall.SIGSTOP))
	thawed := false
	thaw := func() {
		if !thawed {
			thawed = true
			_ = syscall.Kill(s.PID(), syscall.SIGCONT)
		}
	}
	t.Cleanup(thaw)
	waitFor(t, "the stuck report", func() bool { return sock.count("STATUS=stuck") == 1 })
	stuckAt := sock.len()
	require.Contains(t, d.stderr.String(), `loop \"changes\" stuck`)
	// Every round of the watchdog from now on finds the loop stuck: no ping while slapd is
	// frozen (three rounds of 500ms, at least).
	time.Sleep(1500 * time.Millisecond)
	for _, m := range sock.since(stuckAt) {
		require.NotEqual(t, "WATCHDOG=1", m, "pinged while a loop was stuck")
	}

	thaw()
	waitFor(t, "pings again", func() bool {
		after := sock.since(stuckAt)
		return len(after) >= 2 && after[0] == "STATUS=running" && after[1] == "WATCHDOG=1"
	})
	require.Equal(t, 0, d.stop())
}
