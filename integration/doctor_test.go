package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/ldapstore/ldaptest"
)

// TestDoctor runs `scimbridge doctor` through the real binary: a stock test directory passes
// (with warnings: cn=config is not readable, ppolicy is not loaded), a wrong password is one
// FAIL line and exit 1, and a missing --config is a usage error.
func TestDoctor(t *testing.T) {
	s := ldaptest.Shared(t)
	dir := t.TempDir()
	cfg, _, _ := baseConfig(t, s, dir, "")
	cfg += `[inbound]
listen = "` + freePort(t) + `"
[[inbound.token]]
name = "entra"
sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
[[provisioner]]
name = "dry-run"
type = "log"
`
	path := filepath.Join(dir, "scimbridge.toml")
	require.NoError(t, os.WriteFile(path, []byte(cfg), 0o600))

	out, _, code := runCLI(t, "doctor", "--config", path)
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "PASS ldap.bind: ")
	require.Contains(t, out, "PASS ldap.users.base_dn: ")
	require.Contains(t, out, "PASS changes.accesslog: ")
	require.Contains(t, out, "WARN ldap.overlays.ppolicy: ")
	require.NotContains(t, out, "FAIL ")
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		require.Regexp(t, `^(PASS|WARN|SKIP) |^doctor: `, line)
	}

	require.NoError(t, os.WriteFile(filepath.Join(dir, "ldap-password"), []byte("wrong\n"), 0o600))
	out, _, code = runCLI(t, "doctor", "--config", path)
	require.Equal(t, 1, code, out)
	require.Equal(t, 1, strings.Count(out, "FAIL "), out)
	require.Contains(t, out, "FAIL ldap.bind: the directory refused the bind")
	require.Contains(t, out, " — fix: put the service account's password in ldap.bind_password_file")

	_, stderr, code := runCLI(t, "doctor")
	require.Equal(t, 2, code, stderr)
	require.Contains(t, stderr, "--config is required")
}
