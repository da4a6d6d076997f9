package integration

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/ldapstore/ldaptest"
	"github.com/scimbridge/scimbridge/targets/targettest"
)

// outEnv is one outbound test's world: its own OU in the shared slapd (people and groups
// below it), a SCIM target, and a state directory.
type outEnv struct {
	t      *testing.T
	s      *ldaptest.Server
	kind   ldaptest.Kind
	ou     string
	people string
	groups string
	dir    string
	token  string
	d      *daemon
	cfg    string
	admin  string
}

const targetToken = "target-token-0123456789abcdef"

func newOutEnv(t *testing.T, name string) *outEnv {
	t.Helper()
	return newOutEnvOn(t, ldaptest.KindOpenLDAP, name)
}

// newOutEnvOn is newOutEnv on the package's server of kind k.
func newOutEnvOn(t *testing.T, k ldaptest.Kind, name string) *outEnv {
	t.Helper()
	s, ou := ldaptest.OUIn(t, k, name)
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "target-token"), []byte(targetToken+"\n"), 0o600))
	return &outEnv{t: t, s: s, kind: k, ou: ou, people: "ou=people," + ou, groups: "ou=groups," + ou, dir: dir, token: targetToken}
}

// strictTarget starts the in-repo strict SCIM server for the test.
func strictTarget(t *testing.T) *targettest.Server {
	t.Helper()
	srv := targettest.NewServer(targettest.Options{BasePath: "/scim/v2", BearerTokens: []string{targetToken}})
	t.Cleanup(srv.Close)
	return srv
}

// provisioner is a [[provisioner]] block for a SCIM target at url; extra lines are appended.
func (o *outEnv) provisioner(name, url string, extra ...string) string {
	return fmt.Sprintf(`
[[provisioner]]
name = %q
type = "scim"
url = %q
auth = "bearer"
token_file = "target-token"
%s
`, name, url, strings.Join(extra, "\n"))
}

// config is the daemon configuration for this OU with the given provisioners.
func (o *outEnv) config(provisioners string) (string, string) {
	extra := fmt.Sprintf(`[inbound]
enabled = false
[ldap.users]
base_dn = %q
[ldap.groups]
base_dn = %q
%s`, o.people, o.groups, provisioners)
	cfg, admin, _ := baseConfig(o.t, o.s, o.dir, extra)
	return cfg, admin
}

func (o *outEnv) start(provisioners string) *daemon {
	o.t.Helper()
	o.cfg, o.admin = o.config(provisioners)
	o.d = startDaemon(o.t, o.dir, o.cfg, o.admin, "")
	return o.d
}

// restart starts the daemon again on the same configuration and state.
func (o *outEnv) restart() *daemon {
	o.t.Helper()
	o.d = startDaemon(o.t, o.dir, o.cfg, o.admin, "")
	return o.d
}

func (o *outEnv) ad() bool { return o.kind == ldaptest.KindAD }

// userDN is the DN of the user with login uid: named by uid, or by cn on AD.
func (o *outEnv) userDN(uid string) string {
	if o.ad() {
		return "CN=" + uid + "," + o.people
	}
	return "uid=" + uid + "," + o.people
}

func (o *outEnv) groupDN(cn string) string { return "cn=" + cn + "," + o.groups }

// userName is what the default outbound mapping sends as userName for the user uid: uid, or
// on AD the userPrincipalName, which is unique in the forest: uid@<the test's OU>.example.org.
func (o *outEnv) userName(uid string) string {
	if o.ad() {
		_, suffix, _ := strings.Cut(strings.SplitN(o.ou, ",", 2)[0], "-")
		return uid + "@" + suffix + ".example.org"
	}
	return uid
}

// sam is a sAMAccountName for name unique to the test's OU (AD's are unique in the domain).
func (o *outEnv) sam(name string) string {
	_, suffix, _ := strings.Cut(strings.SplitN(o.ou, ",", 2)[0], "-")
	if len(name) > 11 {
		name = name[:11]
	}
	return name + "-" + suffix[:8]
}

// rename gives the user uid the login to: a modrdn and, on AD, the new userPrincipalName
// (AD's names are independent of the RDN).
func (o *outEnv) rename(uid, to string) {
	o.t.Helper()
	rdn := "uid=" + to
	if o.ad() {
		rdn = "CN=" + to
	}
	o.ldif("dn: " + o.userDN(uid) + "\nchangetype: modrdn\nnewrdn: " + rdn + "\ndeleteoldrdn: 1\n")
	if o.ad() {
		o.modify(o.userDN(to), "replace: userPrincipalName", "userPrincipalName: "+o.userName(to))
	}
}

// fixMember does what the refint overlay would after a rename: AD keeps member values right
// itself, OpenLDAP and 389-DS (without their referential integrity plugins) do not.
func (o *outEnv) fixMember(group, oldUID, newUID string) {
	o.t.Helper()
	if o.ad() {
		return
	}
	o.modify(o.groupDN(group), "delete: member", "member: "+o.userDN(oldUID), "-", "add: member", "member: "+o.userDN(newUID))
}

// disable marks the user disabled the directory's own way.
func (o *outEnv) disable(uid string) {
	o.t.Helper()
	switch o.kind {
	case ldaptest.Kind389DS:
		o.modify(o.userDN(uid), "replace: nsAccountLock", "nsAccountLock: true")
	case ldaptest.KindAD:
		o.modify(o.userDN(uid), "replace: userAccountControl", "userAccountControl: 514")
	default:
		o.modify(o.userDN(uid), "add: employeeType", "employeeType: scimbridge:disabled")
	}
}

func (o *outEnv) ldif(text string) {
	o.t.Helper()
	require.NoError(o.t, o.s.LDIF(text))
}

// userLDIF is an inetOrgPerson entry, or an enabled AD user.
func (o *outEnv) userLDIF(uid, given, sn string, extra ...string) string {
	if o.ad() {
		return fmt.Sprintf("dn: %s\nobjectClass: user\nsAMAccountName: %s\nuserPrincipalName: %s\ngivenName: %s\nsn: %s\nmail: %s@example.org\nuserAccountControl: 512\n%s\n",
			o.userDN(uid), o.sam(uid), o.userName(uid), given, sn, uid, strings.Join(append(extra, ""), "\n"))
	}
	return fmt.Sprintf("dn: %s\nobjectClass: inetOrgPerson\nuid: %s\ncn: %s %s\ngivenName: %s\nsn: %s\nmail: %s@example.org\n%s\n",
		o.userDN(uid), uid, given, sn, given, sn, uid, strings.Join(append(extra, ""), "\n"))
}

func (o *outEnv) addUser(uid, given, sn string, extra ...string) {
	o.t.Helper()
	o.ldif(o.userLDIF(uid, given, sn, extra...))
}

func (o *outEnv) addGroup(cn string, members ...string) {
	o.t.Helper()
	var b strings.Builder
	if o.ad() {
		fmt.Fprintf(&b, "dn: %s\nobjectClass: group\nsAMAccountName: %s\n", o.groupDN(cn), o.sam(cn))
	} else {
		fmt.Fprintf(&b, "dn: %s\nobjectClass: groupOfNames\ncn: %s\n", o.groupDN(cn), cn)
	}
	for _, m := range members {
		fmt.Fprintf(&b, "member: %s\n", o.userDN(m))
	}
	o.ldif(b.String())
}

func (o *outEnv) modify(dn string, lines ...string) {
	o.t.Helper()
	o.ldif(fmt.Sprintf("dn: %s\nchangetype: modify\n%s\n", dn, strings.Join(lines, "\n")))
}

// cli runs a scimbridge command with --config and returns stdout, stderr and the exit code.
func (o *outEnv) cli(args ...string) (string, string, int) {
	o.t.Helper()
	n := 1
	if args[0] == "state" || args[0] == "deadletter" {
		n = 2 // the subcommand comes before the flags
	}
	full := append(append(append([]string(nil), args[:n]...), "--config", filepath.Join(o.dir, "scimbridge.toml")), args[n:]...)
	cmd := exec.Command(binary(o.t), full...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	ee := &exec.ExitError{}
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else {
		require.NoError(o.t, err)
	}
	return stdout.String(), stderr.String(), code
}

// status reads the daemon's /status outbound section.
func (o *outEnv) status() map[string]any {
	o.t.Helper()
	resp, err := http.Get("http://" + o.admin + "/status")
	require.NoError(o.t, err)
	defer resp.Body.Close()
	var st struct {
		Components struct {
			Outbound map[string]any `json:"outbound"`
		} `json:"components"`
	}
	require.NoError(o.t, json.NewDecoder(resp.Body).Decode(&st))
	return st.Components.Outbound
}

// provStatus returns one provisioner's status.
func (o *outEnv) provStatus(name string) map[string]any {
	o.t.Helper()
	ps, _ := o.status()["provisioners"].([]any)
	for _, p := range ps {
		m := p.(map[string]any)
		if m["name"] == name {
			return m
		}
	}
	o.t.Fatalf("no provisioner %q in status", name)
	return nil
}

// waitLong polls cond with a bound fit for bursts and restarts.
func waitLong(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// active reads a SCIM user's active flag (absent = true).
func active(u map[string]any) bool {
	a, ok := u["active"].(bool)
	return !ok || a
}

// memberIDs lists the member ids of a SCIM group.
func memberIDs(g map[string]any) []string {
	var out []string
	ms, _ := g["members"].([]any)
	for _, m := range ms {
		if mm, ok := m.(map[string]any); ok {
			if v, ok := mm["value"].(string); ok {
				out = append(out, v)
			}
		}
	}
	return out
}

// scimmy is the SCIMMY-based SCIM server of testdata/scimmy, run with node.
type scimmy struct {
	URL  string
	base string
	t    *testing.T
}

type scimmyState struct {
	Users   []map[string]any `json:"users"`
	Groups  []map[string]any `json:"groups"`
	Creates map[string]int   `json:"creates"`
}

// startScimmy runs the SCIMMY server; it skips the test, saying how to run it, when node or
// the npm packages are missing.
func startScimmy(t *testing.T) *scimmy {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed: the tests against the SCIMMY target need node (v18+) and `make test`, which runs npm ci in integration/testdata/scimmy")
	}
	dir, err := filepath.Abs("testdata/scimmy")
	require.NoError(t, err)
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "scimmy-routers")); err != nil {
		t.Skip("the SCIMMY target's packages are not installed: run `make test` (or `npm ci` in integration/testdata/scimmy)")
	}
	cmd := exec.Command(node, "server.mjs", targetToken)
	cmd.Dir = dir
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	var stderr syncBuffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	var hello struct {
		Port int `json:"port"`
	}
	dec := json.NewDecoder(stdout)
	done := make(chan error, 1)
	go func() { done <- dec.Decode(&hello) }()
	select {
	case err := <-done:
		require.NoError(t, err, "scimmy server: %s", stderr.String())
	case <-time.After(20 * time.Second):
		t.Fatalf("scimmy server did not start: %s", stderr.String())
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", hello.Port)
	return &scimmy{URL: base + "/scim/v2", base: base, t: t}
}

func (s *scimmy) state() scimmyState {
	s.t.Helper()
	resp, err := http.Get(s.base + "/_state")
	require.NoError(s.t, err)
	defer resp.Body.Close()
	var st scimmyState
	require.NoError(s.t, json.NewDecoder(resp.Body).Decode(&st))
	return st
}

func (s *scimmy) user(name string) (map[string]any, bool) {
	for _, u := range s.state().Users {
		if strings.EqualFold(fmt.Sprint(u["userName"]), name) {
			return u, true
		}
	}
	return nil, false
}

func (s *scimmy) userByID(id string) (map[string]any, bool) {
	for _, u := range s.state().Users {
		if u["id"] == id {
			return u, true
		}
	}
	return nil, false
}

func (s *scimmy) group(name string) (map[string]any, bool) {
	for _, g := range s.state().Groups {
		if strings.EqualFold(fmt.Sprint(g["displayName"]), name) {
			return g, true
		}
	}
	return nil, false
}
