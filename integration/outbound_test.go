package integration

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/bridge/state"
	"github.com/scimbridge/scimbridge/ldapstore/ldaptest"
)

// TestOutboundLifecycle drives the real binary against each kind of directory and the strict
// in-repo SCIM target with default provisioner settings: a user added to the scoped group
// appears, a modify PATCHes only what changed, a rename keeps the account, the group is pushed
// with membership deltas, a user disabled in the directory is disabled on the target, leaving
// the group disables, an LDAP delete deprovisions, and the CLI reads status, plans and backs up
// through the control socket.
func TestOutboundLifecycle(t *testing.T) {
	for _, k := range ldaptest.Kinds {
		t.Run(string(k), func(t *testing.T) { outboundLifecycle(t, k) })
	}
}

func outboundLifecycle(t *testing.T, k ldaptest.Kind) {
	o := newOutEnvOn(t, k, "outbound")
	target := strictTarget(t)
	o.addUser("ada", "Ada", "Lovelace", "title: Analyst")
	o.addUser("bob", "Bob", "Builder")
	o.addUser("carol", "Carol", "Shannon")
	o.addGroup("app", "ada", "carol")
	o.start(o.provisioner("app", target.URL, `groups = ["`+o.groupDN("app")+`"]`, "push_groups = true"))

	waitFor(t, "ada and carol on the target", func() bool {
		_, a := target.UserByName(o.userName("ada"))
		_, c := target.UserByName(o.userName("carol"))
		return a && c
	})
	_, hasBob := target.UserByName(o.userName("bob"))
	require.False(t, hasBob, "bob is not in scope")
	ada, _ := target.UserByName(o.userName("ada"))
	require.Equal(t, "Analyst", ada["title"])
	require.Equal(t, "Lovelace", ada["name"].(map[string]any)["familyName"])
	adaID := ada["id"].(string)

	// Entering scope: bob joins the group.
	o.modify(o.groupDN("app"), "add: member", "member: "+o.userDN("bob"))
	waitFor(t, "bob on the target", func() bool { _, ok := target.UserByName(o.userName("bob")); return ok })

	// The group is pushed with its members.
	waitFor(t, "group app with three members", func() bool {
		g, ok := target.GroupByName("app")
		return ok && len(memberIDs(g)) == 3
	})

	// A modify PATCHes only what changed.
	target.ResetRequests()
	o.modify(o.userDN("ada"), "replace: title", "title: Countess")
	waitFor(t, "ada's new title", func() bool {
		u, _ := target.User(adaID)
		return u["title"] == "Countess"
	})
	var patches []string
	for _, r := range target.Requests() {
		if r.Method == "PATCH" && strings.HasPrefix(r.Path, "/Users/") {
			patches = append(patches, string(r.Body))
		}
		require.NotEqual(t, "POST", r.Method, "a modify creates nothing")
		require.NotEqual(t, "PUT", r.Method, "a modify replaces nothing")
	}
	require.Len(t, patches, 1)
	var body struct {
		Operations []struct {
			Op, Path string
			Value    any
		}
	}
	require.NoError(t, json.Unmarshal([]byte(patches[0]), &body))
	require.Len(t, body.Operations, 1, "only the title: %s", patches[0])
	require.Equal(t, "title", body.Operations[0].Path)

	// A rename keeps the target account; the mapping's userName follows uid.
	bob, _ := target.UserByName(o.userName("bob"))
	bobID := bob["id"].(string)
	o.rename("bob", "robert")
	// Without the refint overlay the group keeps the old DN: fix it as refint would.
	o.fixMember("app", "bob", "robert")
	waitFor(t, "robert's new userName on the same account", func() bool {
		u, ok := target.User(bobID)
		return ok && u["userName"] == o.userName("robert")
	})
	_, stillBob := target.UserByName(o.userName("bob"))
	require.False(t, stillBob)
	u, _ := target.User(bobID)
	require.True(t, active(u), "a rename does not deprovision")
	creates := target.Creates()

	// Disabled in the directory, the directory's own way: disabled on the target.
	o.disable("ada")
	waitFor(t, "ada disabled on the target", func() bool {
		u, _ := target.User(adaID)
		return !active(u)
	})

	// Leaving the group disables the account and removes it from the pushed group.
	o.modify(o.groupDN("app"), "delete: member", "member: "+o.userDN("carol"))
	carol, _ := target.UserByName(o.userName("carol"))
	carolID := carol["id"].(string)
	waitFor(t, "carol disabled and out of the group", func() bool {
		u, _ := target.User(carolID)
		g, _ := target.GroupByName("app")
		return !active(u) && !contains(strings.Join(memberIDs(g), ","), carolID)
	})

	// An LDAP delete deprovisions.
	o.ldif("dn: " + o.userDN("robert") + "\nchangetype: delete\n")
	waitFor(t, "robert disabled", func() bool {
		u, _ := target.User(bobID)
		return !active(u)
	})
	require.Equal(t, creates, target.Creates(), "no account was created twice")

	// Status, plan and backup go through the control socket.
	st := o.provStatus("app")
	require.EqualValues(t, 0, st["dead_letters"])
	out, errOut, code := o.cli("status")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "running daemon")
	require.Contains(t, out, "app")
	out, errOut, code = o.cli("plan")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, `provisioner "app": 0 creates`, out)
	require.Contains(t, out, "0 disables")
	backup := o.dir + "/backup.db"
	out, errOut, code = o.cli("state", "backup", backup)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "running daemon")

	require.Equal(t, 0, o.d.stop())
	// Without the daemon the same commands read the state file.
	out, errOut, code = o.cli("status")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "state file")
	_ = time.Second
}

// TestOutboundScimmy runs the same story against a SCIM server not written here (SCIMMY on
// node), with deprovision = "delete".
func TestOutboundScimmy(t *testing.T) {
	target := startScimmy(t)
	o := newOutEnv(t, "scimmy")
	o.addUser("ada", "Ada", "Lovelace", "title: Analyst")
	o.addUser("bob", "Bob", "Builder")
	o.addUser("carol", "Carol", "Shannon")
	o.addGroup("app", "ada", "carol")
	o.start(o.provisioner("scimmy", target.URL, `groups = ["`+o.groupDN("app")+`"]`, "push_groups = true", `deprovision = "delete"`))

	waitFor(t, "ada and carol on the target", func() bool {
		_, a := target.user("ada")
		_, c := target.user("carol")
		return a && c
	})
	_, hasBob := target.user("bob")
	require.False(t, hasBob)
	ada, _ := target.user("ada")
	adaID := ada["id"].(string)
	require.Equal(t, "Analyst", ada["title"])

	o.modify(o.groupDN("app"), "add: member", "member: "+o.userDN("bob"))
	waitFor(t, "bob on the target", func() bool { _, ok := target.user("bob"); return ok })
	waitFor(t, "group app with three members", func() bool {
		g, ok := target.group("app")
		return ok && len(memberIDs(g)) == 3
	})

	o.modify(o.userDN("ada"), "replace: title", "title: Countess")
	waitFor(t, "ada's new title", func() bool {
		u, _ := target.userByID(adaID)
		return u["title"] == "Countess"
	})
	u, _ := target.userByID(adaID)
	require.Equal(t, "ada", u["userName"], "the rest is untouched")
	require.Equal(t, "ada@example.org", u["emails"].([]any)[0].(map[string]any)["value"])

	bob, _ := target.user("bob")
	bobID := bob["id"].(string)
	o.ldif("dn: " + o.userDN("bob") + "\nchangetype: modrdn\nnewrdn: uid=robert\ndeleteoldrdn: 1\n")
	o.modify(o.groupDN("app"), "delete: member", "member: "+o.userDN("bob"), "-", "add: member", "member: "+o.userDN("robert"))
	waitFor(t, "robert on the same account", func() bool {
		u, ok := target.userByID(bobID)
		return ok && u["userName"] == "robert"
	})

	carol, _ := target.user("carol")
	carolID := carol["id"].(string)
	o.modify(o.groupDN("app"), "delete: member", "member: "+o.userDN("carol"))
	waitFor(t, "carol deleted and out of the group", func() bool {
		_, ok := target.userByID(carolID)
		g, _ := target.group("app")
		return !ok && !contains(strings.Join(memberIDs(g), ","), carolID)
	})

	o.ldif("dn: " + o.userDN("robert") + "\nchangetype: delete\n")
	waitFor(t, "robert deleted", func() bool { _, ok := target.userByID(bobID); return !ok })
	require.Equal(t, 3, target.state().Creates["User"], "every account was created once")
	require.Equal(t, 0, o.d.stop())
}

// TestOutboundFromInbound: users that Entra ID (or any SCIM client) provisions into each kind
// of directory through the inbound server reach the outbound target too — created, changed,
// disabled and deleted.
func TestOutboundFromInbound(t *testing.T) {
	for _, k := range ldaptest.Kinds {
		t.Run(string(k), func(t *testing.T) { outboundFromInbound(t, k) })
	}
}

func outboundFromInbound(t *testing.T, k ldaptest.Kind) {
	o := newOutEnvOn(t, k, "inout")
	target := strictTarget(t)
	cfg, admin, inboundAddr := baseConfig(t, o.s, o.dir, "")
	const token = "integration-token-0123456789abcdef"
	cfg += inboundTOML(o.ou, inboundAddr, token, "") + o.provisioner("app", target.URL)
	o.cfg, o.admin = cfg, admin
	o.d = startDaemon(t, o.dir, cfg, admin, inboundAddr)
	base := "http://" + inboundAddr + "/scim/v2"
	call := func(method, path, body string) (int, map[string]any) {
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/scim+json")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	code, created := call("POST", "/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"linus",
		"name":{"givenName":"Linus","familyName":"Torvalds"},"title":"Kernel","emails":[{"value":"linus@example.org","type":"work","primary":true}],"active":true}`)
	require.Equal(t, http.StatusCreated, code, "%v", created)
	id := created["id"].(string)

	waitFor(t, "linus on the target", func() bool { _, ok := target.UserByName("linus"); return ok })
	u, _ := target.UserByName("linus")
	require.Equal(t, "Kernel", u["title"])
	require.Equal(t, id, u["externalId"], "the target's externalId is the directory's stable id")
	tid := u["id"].(string)

	code, _ = call("PATCH", "/Users/"+id, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","path":"title","value":"Maintainer"}]}`)
	require.Equal(t, http.StatusOK, code)
	waitFor(t, "the new title on the target", func() bool { u, _ := target.User(tid); return u["title"] == "Maintainer" })

	code, _ = call("PATCH", "/Users/"+id, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","path":"active","value":"False"}]}`)
	require.Equal(t, http.StatusOK, code)
	waitFor(t, "linus disabled on the target", func() bool { u, _ := target.User(tid); return !active(u) })

	code, _ = call("DELETE", "/Users/"+id, "")
	require.Equal(t, http.StatusNoContent, code)
	time.Sleep(2 * time.Second)
	u, ok := target.User(tid)
	require.True(t, ok, "deprovision = disable keeps the account")
	require.False(t, active(u))
	require.EqualValues(t, 1, target.Creates())
	require.Equal(t, 0, o.d.stop())
}

// TestOutboundReloadAndOfflineSync adds a second provisioner with SIGHUP (it gets a full
// sync of its own, the first one is left alone), then, with the daemon stopped, runs
// `scimbridge sync` in-process on the state file.
func TestOutboundReloadAndOfflineSync(t *testing.T) {
	o := newOutEnv(t, "reload")
	first, second := strictTarget(t), strictTarget(t)
	o.addUser("ada", "Ada", "Lovelace")
	o.addUser("bob", "Bob", "Builder")
	o.start(o.provisioner("first", first.URL))
	waitFor(t, "two users on the first target", func() bool { return len(first.Users()) == 2 })

	both := o.provisioner("first", first.URL) + o.provisioner("second", second.URL, `min_retry_delay = "200ms"`)
	cfg, _ := o.config(both)
	cfg = replaceAdmin(cfg, o.admin)
	require.NoError(t, os.WriteFile(o.d.cfgPath, []byte(cfg), 0o600))
	o.d.signal(syscall.SIGHUP)
	waitFor(t, "two users on the second target", func() bool { return len(second.Users()) == 2 })
	require.EqualValues(t, 2, first.Creates(), "the unchanged provisioner is left alone")
	require.Equal(t, 0, o.d.stop())

	// No daemon: sync runs the engine in this process, on the state file.
	o.addUser("carol", "Carol", "Shannon")
	out, errOut, code := o.cli("sync")
	require.Equal(t, 0, code, out+errOut)
	require.Contains(t, out, `provisioner "second": 1 delivered`)
	_, ok1 := first.UserByName("carol")
	_, ok2 := second.UserByName("carol")
	require.True(t, ok1 && ok2)
	out, errOut, code = o.cli("sync", "--full", "--provisioner", "first")
	require.Equal(t, 0, code, out+errOut)
	require.Contains(t, out, `provisioner "first": 0 delivered`, "a full pass finds nothing to do")
	require.EqualValues(t, 3, first.Creates())
	out, errOut, code = o.cli("deadletter", "list", "--provisioner", "second")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "no dead letters")
	out, errOut, code = o.cli("plan", "--provisioner", "second")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, `provisioner "second": 0 creates, 0 updates, 0 disables, 0 deletes, 3 unchanged`)
	backupDir := t.TempDir()
	out, errOut, code = o.cli("state", "backup", filepath.Join(backupDir, "state.db"))
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "no daemon running")
	copyDB, err := state.OpenWith(backupDir, state.Options{ReadOnly: true})
	require.NoError(t, err, "the backup is a state file")
	require.NoError(t, copyDB.View(func(tx *state.Tx) error {
		ids, err := tx.IDMap("provisioner/second")
		require.NoError(t, err)
		require.Equal(t, 3, ids.Len())
		return nil
	}))
	require.NoError(t, copyDB.Close())
}

// TestOutboundResumesAndRecovers: on each kind of directory, the daemon stopped and started
// again delivers what changed meanwhile from its cursor; and when the log no longer covers the
// cursor — a 389-DS changelog trimmed past it, an AD DC restored from a backup (a new
// invocationId) — it says so and catches up with a full reconcile, the delete made meanwhile
// included.
func TestOutboundResumesAndRecovers(t *testing.T) {
	for _, k := range ldaptest.Kinds {
		t.Run(string(k), func(t *testing.T) { outboundResumes(t, k) })
	}
}

func outboundResumes(t *testing.T, k ldaptest.Kind) {
	o := newOutEnvOn(t, k, "resume")
	target := strictTarget(t)
	o.addUser("ada", "Ada", "Lovelace")
	o.addGroup("app", "ada")
	o.start(o.provisioner("app", target.URL, `groups = ["`+o.groupDN("app")+`"]`))
	waitFor(t, "ada on the target", func() bool { _, ok := target.UserByName(o.userName("ada")); return ok })
	ada, _ := target.UserByName(o.userName("ada"))
	adaID := ada["id"].(string)
	require.Equal(t, 0, o.d.stop())

	o.addUser("bob", "Bob", "Builder")
	o.modify(o.groupDN("app"), "add: member", "member: "+o.userDN("bob"))
	o.modify(o.userDN("ada"), "replace: title", "title: Countess")
	o.restart()
	waitFor(t, "bob and ada's title on the target", func() bool {
		_, b := target.UserByName(o.userName("bob"))
		u, _ := target.User(adaID)
		return b && u["title"] == "Countess"
	})
	require.NotContains(t, o.d.stderr.String(), "no longer covers the cursor", "resumed from the cursor")
	require.Equal(t, 0, o.d.stop())
	if k == ldaptest.KindOpenLDAP {
		return // a purged accesslog: TestPurgedAccesslogLeadsToAReconcile (bridge/capture)
	}

	o.ldif("dn: " + o.userDN("ada") + "\nchangetype: delete\n")
	o.addUser("carol", "Carol", "Shannon")
	o.modify(o.groupDN("app"), "add: member", "member: "+o.userDN("carol"))
	if k == ldaptest.Kind389DS {
		_, last, err := o.s.ChangelogBounds()
		require.NoError(t, err)
		require.NoError(t, o.s.TrimChangelog(last-1)) // 389-DS keeps the newest record
	} else {
		require.NoError(t, o.s.NewInvocationID())
	}
	o.restart()
	waitFor(t, "carol on the target and ada disabled", func() bool {
		_, c := target.UserByName(o.userName("carol"))
		u, _ := target.User(adaID)
		return c && !active(u)
	})
	require.Contains(t, o.d.stderr.String(), "no longer covers the cursor")
	require.EqualValues(t, 3, target.Creates(), "nobody was created twice")
	require.Equal(t, 0, o.d.stop())
}
