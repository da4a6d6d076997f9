package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/ldapstore/ldaptest"
)

// TestChangesCommand: an admin's ldapmodify shows up in `scimbridge changes` as JSON lines,
// with --follow printing changes made after it started.
func TestChangesCommand(t *testing.T) {
	s := ldaptest.Shared(t)
	ou, err := s.NewOU("changes")
	require.NoError(t, err)
	dir := t.TempDir()
	cfg, _, _ := baseConfig(t, s, dir, "[inbound]\nenabled = false\n")
	cfg += "[ldap.users]\nbase_dn = \"ou=people," + ou + "\"\n[ldap.groups]\nbase_dn = \"ou=groups," + ou + "\"\n"
	path := filepath.Join(dir, "scimbridge.toml")
	require.NoError(t, os.WriteFile(path, []byte(cfg), 0o600))

	require.NoError(t, s.LDIF("dn: uid=ann,ou=people,"+ou+"\nobjectClass: inetOrgPerson\nuid: ann\ncn: Ann\nsn: A\n"))
	out, err := exec.Command(binary(t), "changes", "--config", path).Output()
	require.NoError(t, err)
	ev := findEvent(t, out, "uid=ann,ou=people,"+ou)
	require.Equal(t, "upsert", ev["kind"])
	require.Equal(t, "user", ev["object"])
	require.NotEmpty(t, ev["id"])

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary(t), "changes", "--config", path, "--follow")
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	time.Sleep(300 * time.Millisecond)
	require.NoError(t, s.LDIF("dn: uid=ann,ou=people,"+ou+"\nchangetype: modrdn\nnewrdn: uid=anna\ndeleteoldrdn: 1\n"))
	for line := range lines {
		if strings.Contains(line, "uid=anna,ou=people,"+ou) {
			var ev map[string]any
			require.NoError(t, json.Unmarshal([]byte(line), &ev))
			require.Equal(t, "rename", ev["kind"])
			require.Equal(t, "uid=ann,ou=people,"+ou, ev["old_dn"])
			return
		}
	}
	t.Fatal("the rename never appeared in changes --follow")
}

func findEvent(t *testing.T, out []byte, dn string) map[string]any {
	t.Helper()
	for _, line := range bytes.Split(bytes.TrimSpace(out), []byte("\n")) {
		var ev map[string]any
		require.NoError(t, json.Unmarshal(line, &ev), string(line))
		if ev["dn"] == dn {
			return ev
		}
	}
	t.Fatalf("no event for %s in:\n%s", dn, out)
	return nil
}
