package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestSystemdUnit: systemd/scimbridge.service passes `systemd-analyze verify` (with the real
// binary as ExecStart) alone and with its drop-ins, its `systemd-analyze security` exposure
// stays at or below 1.7 either way, it grants no capability by itself, and the port-443 drop-in
// grants CAP_NET_BIND_SERVICE as an ambient capability (what a User= service needs to bind).
func TestSystemdUnit(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("SKIP: systemd-analyze is not installed (apt-get install systemd) — the unit is not checked")
	}
	unit, err := os.ReadFile("../systemd/scimbridge.service")
	require.NoError(t, err)
	require.Regexp(t, `(?m)^CapabilityBoundingSet=$`, string(unit), "no capability without the drop-in")
	require.Regexp(t, `(?m)^AmbientCapabilities=$`, string(unit))
	for _, want := range []string{"ProtectProc=invisible", "ProcSubset=pid", "PrivateMounts=yes", "RemoveIPC=yes", "IPAddressDeny=any", "IPAddressAllow=localhost", "Type=notify"} {
		require.Contains(t, string(unit), want+"\n")
	}
	dropin, err := os.ReadFile("../systemd/scimbridge.service.d/bind-privileged-port.conf")
	require.NoError(t, err)
	require.Contains(t, string(dropin), "AmbientCapabilities=CAP_NET_BIND_SERVICE\n")
	require.Contains(t, string(dropin), "CapabilityBoundingSet=CAP_NET_BIND_SERVICE\n")

	bin := binary(t)
	for _, withDropins := range []bool{false, true} {
		dir := t.TempDir()
		text := regexp.MustCompile(`(?m)^ExecStart=\S+ `).ReplaceAllLiteralString(string(unit), "ExecStart="+bin+" ")
		require.NoError(t, os.WriteFile(filepath.Join(dir, "scimbridge.service"), []byte(text), 0o644))
		if withDropins {
			d := filepath.Join(dir, "scimbridge.service.d")
			require.NoError(t, os.MkdirAll(d, 0o755))
			for _, f := range []string{"bind-privileged-port.conf", "allow-network.conf"} {
				data, err := os.ReadFile(filepath.Join("../systemd/scimbridge.service.d", f))
				require.NoError(t, err)
				require.NoError(t, os.WriteFile(filepath.Join(d, f), data, 0o644))
			}
		}
		env := append(os.Environ(), "SYSTEMD_UNIT_PATH="+dir+":")
		cmd := exec.Command(analyze, "verify", filepath.Join(dir, "scimbridge.service"))
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "systemd-analyze verify: %s", out)
		require.Empty(t, strings.TrimSpace(string(out)), "no warning from systemd-analyze verify")

		cmd = exec.Command(analyze, "security", "--offline=yes", "--root=/", filepath.Join(dir, "scimbridge.service"))
		cmd.Env = env
		out, err = cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
		m := regexp.MustCompile(`Overall exposure level for scimbridge\.service: ([0-9.]+)`).FindSubmatch(out)
		require.NotNil(t, m, "%s", out)
		score, err := strconv.ParseFloat(string(m[1]), 64)
		require.NoError(t, err)
		t.Logf("systemd-analyze security (drop-ins %v): %.1f", withDropins, score)
		require.LessOrEqual(t, score, 1.7)
		bind := regexp.MustCompile(`(?m)^(\S+) CapabilityBoundingSet=~CAP_NET_\(BIND_SERVICE`).FindSubmatch(out)
		require.NotNil(t, bind, "%s", out)
		require.Equal(t, map[bool]string{false: "✓", true: "✗"}[withDropins], string(bind[1]), "the drop-in, and only it, grants binding below 1024")
	}
}
