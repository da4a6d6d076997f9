package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// runCLI runs the CLI in-process and returns its exit code and streams.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func TestUsageAndUnknownCommand(t *testing.T) {
	code, _, stderr := runCLI(t)
	require.Equal(t, exitUsage, code)
	require.Contains(t, stderr, "check-config")
	code, _, stderr = runCLI(t, "frobnicate")
	require.Equal(t, exitUsage, code)
	require.Contains(t, stderr, `unknown command "frobnicate"`)
	code, _, _ = runCLI(t, "--help")
	require.Equal(t, exitOK, code)
}

func TestCheckConfigExample(t *testing.T) {
	code, stdout, stderr := runCLI(t, "check-config", "--config", "../../etc/scimbridge.example.toml")
	require.Equal(t, exitOK, code, stderr)
	require.Contains(t, stdout, "OK")
	// The example's secret files are not shipped: warned about, not an error.
	require.Contains(t, stderr, "warning: ../../etc/scimbridge.example.toml: ldap.bind_password_file")
}

func TestCheckConfigNamesEveryProblem(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bad.toml")
	require.NoError(t, os.WriteFile(path, []byte(`
[ldap]
url = "ldap://127.0.0.1"
bind_dn = "cn=x,dc=example,dc=org"
bind_password_file = "pw"
dialect = "novell"
colour = "blue"
`), 0o600))
	code, _, stderr := runCLI(t, "check-config", "--config", path)
	require.Equal(t, exitFail, code)
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	require.Len(t, lines, 4, stderr) // base_dn, dialect, colour, and no inbound token
	for _, want := range []string{"ldap.colour: unknown key", `ldap.dialect: unknown value "novell"`, "ldap.base_dn: required", "inbound.token"} {
		require.Contains(t, stderr, want)
	}
	code, _, _ = runCLI(t, "check-config")
	require.Equal(t, exitUsage, code)
	code, _, stderr = runCLI(t, "check-config", "--config", filepath.Join(dir, "missing.toml"))
	require.Equal(t, exitFail, code)
	require.Contains(t, stderr, "no such file")
}

func TestTokenNew(t *testing.T) {
	code, stdout, _ := runCLI(t, "token", "new", "--name", "entra")
	require.Equal(t, exitOK, code)
	require.Regexp(t, `sha256 = "[0-9a-f]{64}"`, stdout)
	code, _, _ = runCLI(t, "token")
	require.Equal(t, exitUsage, code)
}

func TestVersion(t *testing.T) {
	code, stdout, _ := runCLI(t, "version")
	require.Equal(t, exitOK, code)
	require.Contains(t, stdout, "scimbridge ")
}

// TestBinaryExitCodes builds nothing: it re-executes this test binary as the CLI, so exit
// codes are checked through a real process boundary.
func TestBinaryExitCodes(t *testing.T) {
	if os.Getenv("SCIMBRIDGE_AS_CLI") == "1" {
		os.Exit(run(strings.Fields(os.Getenv("SCIMBRIDGE_ARGS")), os.Stdin, os.Stdout, os.Stderr))
	}
	for args, want := range map[string]int{
		"version":                     0,
		"check-config":                2,
		"check-config --config /nope": 1,
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestBinaryExitCodes$")
		cmd.Env = append(os.Environ(), "SCIMBRIDGE_AS_CLI=1", "SCIMBRIDGE_ARGS="+args)
		err := cmd.Run()
		code := 0
		ee := &exec.ExitError{}
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else {
			require.NoError(t, err)
		}
		require.Equal(t, want, code, args)
	}
}
