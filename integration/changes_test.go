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

	"github.com/scimbridge/scimbridge/ldapstore"
	"github.com/scimbridge/scimbridge/ldapstore/ldaptest"
)

// TestChangesCommand: on each kind of directory, an admin's ldapmodify shows up in
// `scimbridge changes` as JSON lines, with --follow printing changes made after it started,
// a rename as a rename (also where the log reports only upserts: AD) and a delete at the DN
// the entry had.
func TestChangesCommand(t *testing.T) {
	for _, k := range ldaptest.Kinds {
		t.Run(string(k), func(t *testing.T) { changesCommand(t, k) })
	}
}

func changesCommand(t *testing.T, k ldaptest.Kind) {
	o := newOutEnvOn(t, k, "changes")
	cfg, _ := o.config("")
	cfg = strings.Replace(cfg, "[inbound]\nenabled = false\n", "[inbound]\nenabled = false\n[changes]\npoll_interval = \"200ms\"\n", 1)
	path := filepath.Join(o.dir, "scimbridge.toml")
	require.NoError(t, os.WriteFile(path, []byte(cfg), 0o600))

	o.addUser("ann", "Ann", "A")
	out, err := exec.Command(binary(t), "changes", "--config", path).Output()
	require.NoError(t, err)
	ev := findEvent(t, out, o.userDN("ann"))
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
	next := func(what string, match func(map[string]any) bool) map[string]any {
		t.Helper()
		for line := range lines {
			var ev map[string]any
			require.NoError(t, json.Unmarshal([]byte(line), &ev))
			if match(ev) {
				return ev
			}
		}
		t.Fatalf("%s never appeared in changes --follow", what)
		return nil
	}
	// A first change seen means --follow is reading (past its start, which for AD's DirSync
	// records every DN to tell renames).
	o.addUser("bea", "Bea", "B")
	next("the marker", func(ev map[string]any) bool { return ldapstore.DNEqual(ev["dn"].(string), o.userDN("bea")) })
	o.rename("ann", "anna")
	ev = next("the rename", func(ev map[string]any) bool { return ldapstore.DNEqual(ev["dn"].(string), o.userDN("anna")) })
	require.Equal(t, "rename", ev["kind"])
	require.True(t, ldapstore.DNEqual(o.userDN("ann"), ev["old_dn"].(string)), "old_dn %v", ev["old_dn"])
	o.ldif("dn: " + o.userDN("anna") + "\nchangetype: delete\n")
	ev = next("the delete", func(ev map[string]any) bool { return ev["kind"] == "delete" })
	require.True(t, ldapstore.DNEqual(o.userDN("anna"), ev["dn"].(string)), "a delete names the DN the entry had: %v", ev["dn"])
	require.Equal(t, "user", ev["object"])
}

func findEvent(t *testing.T, out []byte, dn string) map[string]any {
	t.Helper()
	for _, line := range bytes.Split(bytes.TrimSpace(out), []byte("\n")) {
		var ev map[string]any
		require.NoError(t, json.Unmarshal(line, &ev), string(line))
		if d, _ := ev["dn"].(string); ldapstore.DNEqual(d, dn) {
			return ev
		}
	}
	t.Fatalf("no event for %s in:\n%s", dn, out)
	return nil
}
