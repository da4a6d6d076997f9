package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/ldapstore/ldaptest"
	"github.com/scimbridge/scimbridge/targets/targettest"
)

// The lease of the tests below: short, so that a takeover fits a test. The defaults (30s and
// 10s) behave the same, slower.
const (
	haLease = 6 * time.Second
	haRenew = 2 * time.Second
)

// seen is one request the target received, with when and from which instance.
type seen struct {
	at     time.Time
	agent  string
	method string
	path   string
}

// haTarget is the strict SCIM server, recording the User-Agent of every request.
type haTarget struct {
	*targettest.Server
	mu   sync.Mutex
	reqs []seen
}

func newHATarget(t *testing.T) *haTarget {
	h := &haTarget{Server: strictTarget(t)}
	h.SetHook(func(_ http.ResponseWriter, r *http.Request) bool {
		h.mu.Lock()
		h.reqs = append(h.reqs, seen{at: time.Now(), agent: r.Header.Get("User-Agent"), method: r.Method, path: r.URL.Path})
		h.mu.Unlock()
		return false
	})
	return h
}

// from lists the requests whose User-Agent names instance id, received after since.
func (h *haTarget) from(id string, since time.Time) []seen {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []seen
	for _, r := range h.reqs {
		if strings.Contains(r.agent, "(instance "+id+")") && !r.at.Before(since) {
			out = append(out, r)
		}
	}
	return out
}

func (h *haTarget) all() []seen {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]seen(nil), h.reqs...)
}

// haInstance is one of two daemons on the same configuration but for its state directory
// and admin address.
type haInstance struct {
	name string
	id   string
	dir  string
	cfg  string
	adm  string
	d    *daemon
}

// haPair prepares two instances for o's OU and target. With servers, instance i reads and
// writes through servers[i] and both take the lease on servers[0].
func haPair(t *testing.T, o *outEnv, target string, servers ...*ldaptest.Server) [2]*haInstance {
	t.Helper()
	var pair [2]*haInstance
	for i, name := range []string{"a", "b"} {
		dir := filepath.Join(o.dir, name)
		require.NoError(t, os.MkdirAll(dir, 0o700))
		require.NoError(t, os.WriteFile(filepath.Join(dir, "target-token"), []byte(targetToken+"\n"), 0o600))
		extra := fmt.Sprintf(`[inbound]
enabled = false
[ldap.users]
base_dn = %q
[ldap.groups]
base_dn = %q
[ha]
enabled = true
lease_duration = %q
renew_interval = %q
%s`, o.people, o.groups, haLease, haRenew, o.provisioner("app", target, "rate_limit = 2000", "concurrency = 8", `min_retry_delay = "100ms"`, `max_retry_delay = "1s"`))
		s := o.s
		if len(servers) > i {
			s = servers[i]
			extra = strings.Replace(extra, "[ha]\n", fmt.Sprintf("[ha]\nlease_url = %q\n", servers[0].URL), 1)
		}
		cfg, admin, _ := baseConfig(t, s, dir, extra)
		host, err := os.Hostname()
		require.NoError(t, err)
		pair[i] = &haInstance{name: name, id: host + ":" + filepath.Join(dir, "state"), dir: dir, cfg: cfg, adm: admin}
	}
	return pair
}

func (h *haInstance) start(t *testing.T) {
	t.Helper()
	h.d = startDaemon(t, h.dir, h.cfg, h.adm, "")
}

// ha reads the instance's /status ha section.
func (h *haInstance) ha(t *testing.T) map[string]any {
	t.Helper()
	resp, err := http.Get("http://" + h.adm + "/status")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var st struct {
		Components struct {
			HA map[string]any `json:"ha"`
		} `json:"components"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&st))
	return st.Components.HA
}

// cli runs a scimbridge command on the instance's configuration.
func (h *haInstance) cli(args ...string) (string, string, int) {
	o := &outEnv{t: h.d.t, dir: h.dir}
	return o.cli(args...)
}

func (h *haInstance) leads(t *testing.T) bool { return h.ha(t)["role"] == "leader" }

// audits returns the audit events of the instance's log, each as its JSON fields.
func (h *haInstance) audits(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(h.d.stderr.String()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil && m["audit"] == true {
			out = append(out, m)
		}
	}
	return out
}

// TestHAPausedLeaderSendsNothing: two instances on one slapd; only the leader pushes. The
// leader is paused (SIGSTOP) for longer than the lease: the standby takes over and pushes
// what changed meanwhile; the old leader, resumed, sends no request at all and stands by.
func TestHAPausedLeaderSendsNothing(t *testing.T) {
	o := newOutEnv(t, "ha-pause")
	target := newHATarget(t)
	pair := haPair(t, o, target.URL)
	a, b := pair[0], pair[1]
	for i := range 5 {
		o.addUser(fmt.Sprintf("p%d", i), "P", fmt.Sprintf("User%d", i))
	}
	a.start(t)
	waitFor(t, "a leads", func() bool { return a.leads(t) })
	b.start(t)
	waitLong(t, "the first users", 60*time.Second, func() bool { return len(target.Users()) == 5 })
	require.Equal(t, "standby", b.ha(t)["role"])
	require.Empty(t, target.from(b.id, time.Time{}), "the standby pushes nothing")
	require.NotEmpty(t, target.from(a.id, time.Time{}))
	st := b.ha(t)
	require.Equal(t, a.id, st["holder"], "the standby shows the holder")
	_, metrics := b.d.get("/metrics")
	require.Contains(t, metrics, "scimbridge_ha_leader 0")
	require.Contains(t, metrics, fmt.Sprintf("scimbridge_ha_lease_holder_info{holder=%q} 1", a.id))
	_, metrics = a.d.get("/metrics")
	require.Contains(t, metrics, "scimbridge_ha_leader 1")
	out, _, code := b.cli("status")
	require.Zero(t, code)
	require.Contains(t, out, "ha: standby (instance "+b.id+"), lease holder "+a.id)
	_, errOut, code := b.cli("sync")
	require.NotZero(t, code, "a sync asked of the standby is refused")
	require.Contains(t, errOut, "stands by")

	a.d.signal(syscall.SIGSTOP)
	paused := time.Now()
	o.addUser("during", "Du", "Ring")
	waitLong(t, "b takes over and pushes what changed", 60*time.Second, func() bool {
		_, ok := target.UserByName("during")
		return ok
	})
	require.True(t, b.leads(t))
	// a renewed at most renew_interval before the pause; b waits a whole lease from then.
	require.GreaterOrEqual(t, time.Since(paused), haLease-haRenew, "b waited for the lease to lapse")
	require.NotEmpty(t, b.ha(t)["last_takeover"])

	a.d.signal(syscall.SIGCONT)
	resumed := time.Now()
	o.addUser("after", "Af", "Ter")
	o.modify(o.userDN("p1"), "replace: title", "title: Resumed")
	waitLong(t, "b pushes the changes after the resume", 60*time.Second, func() bool {
		u, ok := target.UserByName("p1")
		_, after := target.UserByName("after")
		return after && ok && u["title"] == "Resumed"
	})
	waitFor(t, "a stands by", func() bool { st := a.ha(t); return st != nil && st["role"] == "standby" })
	time.Sleep(2 * haRenew) // room for anything the resumed instance would still send
	require.Empty(t, target.from(a.id, paused), "the paused leader sent requests after it was paused")
	require.NotEmpty(t, target.from(b.id, resumed))
	for _, r := range target.all() {
		require.True(t, strings.Contains(r.agent, "(instance "+a.id+")") || strings.Contains(r.agent, "(instance "+b.id+")"), "user agent %q", r.agent)
	}
	require.Equal(t, b.id, a.ha(t)["holder"])

	// b dies: a, the same process that was fenced, leads again (a second term of its own).
	require.NoError(t, b.d.cmd.Process.Kill())
	<-b.d.exited
	o.addUser("back", "Ba", "Ck")
	waitLong(t, "a leads again and pushes", 60*time.Second, func() bool {
		_, ok := target.UserByName("back")
		return ok
	})
	require.True(t, a.leads(t))
	require.NotEmpty(t, target.from(a.id, resumed))
	require.Equal(t, "up", metricValue(t, a, "scimbridge_ha_leader"))
	names := map[string]int{}
	for _, u := range target.Users() {
		names[u["userName"].(string)]++
	}
	require.Len(t, target.Users(), 8, "%v", names)
}

// metricValue is "up" when the instance's metric is 1, else what it is.
func metricValue(t *testing.T, h *haInstance, name string) string {
	t.Helper()
	_, body := h.d.get("/metrics")
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			if v == "1" {
				return "up"
			}
			return v
		}
	}
	return "absent"
}

// TestHABurstLeaderKilled: a 2,000-change burst with the leader SIGKILLed in the middle. The
// standby takes over once the lease lapses, from the lease's cursor and a full reconcile:
// the target ends complete, with no duplicate account; a user deleted while no instance led
// is deprovisioned; only the leader of the moment appears in User-Agents and audit events.
func TestHABurstLeaderKilled(t *testing.T) {
	haBurstLeaderKilled(t, newOutEnv(t, "ha-burst"))
}

// TestHAMirrorPair: the same on a multi-provider (mirror-mode) OpenLDAP pair, each instance
// talking to its own provider, the lease taken on the first: the burst is written to the
// first provider, and the new leader reads it from the second, replicated, with the lease's
// cursor from the first provider's log.
func TestHAMirrorPair(t *testing.T) {
	p1, p2 := freePortNumber(t), freePortNumber(t)
	s1 := ldaptest.Private(t, ldaptest.Options{ServerID: 1, Port: p1, MirrorPeer: fmt.Sprintf("ldap://127.0.0.1:%d", p2)})
	s2 := ldaptest.Private(t, ldaptest.Options{ServerID: 2, Port: p2, MirrorPeer: fmt.Sprintf("ldap://127.0.0.1:%d", p1), NoSeed: true})
	ou := ldaptest.NewOU(t, s1, "ha-mirror")
	waitLong(t, "the pair replicates", 60*time.Second, func() bool {
		return exec.Command("ldapsearch", "-x", "-H", s2.URL, "-D", s2.ServiceDN, "-w", s2.ServicePW, "-b", "ou=people,"+ou, "-s", "base", "1.1").Run() == nil
	})
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "target-token"), []byte(targetToken+"\n"), 0o600))
	o := &outEnv{t: t, s: s1, kind: ldaptest.KindOpenLDAP, ou: ou, people: "ou=people," + ou, groups: "ou=groups," + ou, dir: dir, token: targetToken}
	haBurstLeaderKilled(t, o, s1, s2)
}

func freePortNumber(t *testing.T) int {
	t.Helper()
	_, port, err := net.SplitHostPort(freePort(t))
	require.NoError(t, err)
	n, err := strconv.Atoi(port)
	require.NoError(t, err)
	return n
}

func haBurstLeaderKilled(t *testing.T, o *outEnv, servers ...*ldaptest.Server) {
	target := newHATarget(t)
	pair := haPair(t, o, target.URL, servers...)
	a, b := pair[0], pair[1]
	o.addUser("doomed", "Doo", "Med")
	a.start(t)
	waitFor(t, "a leads", func() bool { return a.leads(t) })
	b.start(t)
	waitLong(t, "the first user", 60*time.Second, func() bool { _, ok := target.UserByName("doomed"); return ok })

	const n = 2000
	var ldif strings.Builder
	for i := range n {
		ldif.WriteString(o.userLDIF(fmt.Sprintf("burst%04d", i), "Burst", fmt.Sprintf("User%d", i)))
		ldif.WriteString("\n")
	}
	written := make(chan error, 1)
	go func() { written <- o.s.LDIF(ldif.String()) }()
	waitLong(t, "a pushes part of the burst", 120*time.Second, func() bool { return len(target.Users()) > 200 })
	require.NoError(t, a.d.cmd.Process.Kill())
	<-a.d.exited
	killed := time.Now()
	pushedByA := len(target.Users()) - 1
	require.NoError(t, <-written)
	// Deleted while no instance leads: b is still waiting for the lease to lapse.
	require.Equal(t, "standby", b.ha(t)["role"])
	o.ldif(fmt.Sprintf("dn: %s\nchangetype: delete\n", o.userDN("doomed")))

	waitLong(t, "b takes over and completes the target", 180*time.Second, func() bool {
		if len(target.Users()) < n+1 {
			return false
		}
		u, ok := target.UserByName("doomed")
		return ok && !active(u)
	})
	require.True(t, b.leads(t))
	t.Logf("a pushed %d of %d users before it was killed", pushedByA, n)
	names := map[string]int{}
	for _, u := range target.Users() {
		names[u["userName"].(string)]++
	}
	require.Len(t, names, n+1, "every user, once")
	for name, c := range names {
		require.Equal(t, 1, c, "%s has %d accounts", name, c)
	}

	// Only the leader of the moment pushed: a until it was killed, b after the lease lapsed.
	// a renewed at most renew_interval before it was killed; b waits a whole lease from then.
	took := killed.Add(haLease - haRenew)
	for _, r := range target.from(b.id, time.Time{}) {
		require.False(t, r.at.Before(took), "b sent %s %s before it could hold the lease", r.method, r.path)
	}
	require.Empty(t, target.from(a.id, killed))
	for _, r := range target.all() {
		require.True(t, strings.Contains(r.agent, "(instance "+a.id+")") || strings.Contains(r.agent, "(instance "+b.id+")"), "user agent %q", r.agent)
	}
	var takeoverRequests int
	for _, r := range target.from(b.id, time.Time{}) {
		if r.method != http.MethodGet || !strings.Contains(r.path, "/Users") {
			takeoverRequests++
		}
	}
	t.Logf("b sent %d requests (%d not listing GETs) for the %d users a had not pushed", len(target.from(b.id, time.Time{})), takeoverRequests, n-pushedByA)
	for _, ev := range a.audits(t) {
		require.Equal(t, a.id, ev["instance"])
	}
	bAudits := b.audits(t)
	require.NotEmpty(t, bAudits)
	for _, ev := range bAudits {
		require.Equal(t, b.id, ev["instance"])
		at, err := time.Parse(time.RFC3339Nano, ev["time"].(string))
		require.NoError(t, err)
		require.False(t, at.Before(took), "b audited %v before it could hold the lease", ev)
	}
}

// TestHAInboundActiveActive: two instances serve SCIM on one directory at once, as behind a
// load balancer. Writes to the same entries through both lose nothing (each PATCH without
// If-Match is re-read and retried), an If-Match raced through both lets exactly one through
// (the Assertion control), and either instance serves what the other wrote, with the same
// ETag: nothing inbound depends on one instance's memory.
func TestHAInboundActiveActive(t *testing.T) {
	s := ldaptest.Shared(t)
	ou := ldaptest.NewOU(t, s, "ha-inbound")
	withHA := func(cfg string) string { return cfg + "\n[ha]\nenabled = true\n" }
	a := startSCIMAt(t, s, ou, "", "", "http", withHA)
	b := startSCIMAt(t, s, ou, "", "", "http", withHA)
	via := func(i int) *scimDaemon {
		if i%2 == 0 {
			return a
		}
		return b
	}

	const n = 16
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			r := via(i).call("POST", "/Users", map[string]any{"schemas": []any{scimUser}, "userName": fmt.Sprintf("aa%02d", i), "name": map[string]any{"familyName": "Aa"}})
			require.Equal(t, http.StatusCreated, r.status, r.raw)
			ids[i] = r.body["id"].(string)
		})
	}
	wg.Wait()
	g := a.call("POST", "/Groups", map[string]any{"schemas": []any{scimGroup}, "displayName": "aa-team"})
	require.Equal(t, http.StatusCreated, g.status, g.raw)
	gid := g.body["id"].(string)

	// Members added through both instances at once, and attributes of one user changed
	// through both at once: nothing is lost.
	for i := range n {
		wg.Go(func() {
			r := via(i).call("PATCH", "/Groups/"+gid, ops(scimOp("Add", "members", []any{map[string]any{"value": ids[i]}})))
			require.Contains(t, []int{http.StatusOK, http.StatusNoContent}, r.status, r.raw)
		})
		wg.Go(func() {
			r := via(i+1).call("PATCH", "/Users/"+ids[0], ops(scimOp("Replace", scimEnt+":employeeNumber", fmt.Sprintf("%d", 1000+i)), scimOp("Add", "title", "t"+fmt.Sprint(i))))
			require.Equal(t, http.StatusOK, r.status, r.raw)
		})
	}
	wg.Wait()
	for _, d := range []*scimDaemon{a, b} {
		r := d.call("GET", "/Groups/"+gid, nil)
		require.Equal(t, http.StatusOK, r.status)
		require.Len(t, r.body["members"], n, "every member added through either instance")
	}
	ua, ub := a.call("GET", "/Users/"+ids[0], nil), b.call("GET", "/Users/"+ids[0], nil)
	require.Equal(t, ua.header.Get("ETag"), ub.header.Get("ETag"), "one version, whichever instance answers")
	require.Equal(t, ua.body["title"], ub.body["title"])

	// The same version raced through both: one wins, the other gets 412.
	etag := ua.header.Get("ETag")
	statuses := make([]int, 2)
	for i, d := range []*scimDaemon{a, b} {
		wg.Go(func() {
			statuses[i] = d.call("PATCH", "/Users/"+ids[0], ops(scimOp("Replace", "title", "winner-"+fmt.Sprint(i))), "If-Match", etag).status
		})
	}
	wg.Wait()
	require.ElementsMatch(t, []int{http.StatusOK, http.StatusPreconditionFailed}, statuses)
	en, ok := a.get("uid=aa00," + a.people)
	require.True(t, ok)
	require.Len(t, en.Attrs["title"], 1)
	require.Regexp(t, `^winner-[01]$`, en.Attrs["title"][0])
}

// TestHATakeoverCost: what a takeover costs the target when the old leader had delivered
// everything: the listing (⌈N/100⌉ GETs, the target's page size) and nothing else — each
// account is adopted from the listing with what it holds, which matches the directory.
// SCIMBRIDGE_TAKEOVER_USERS sets N (default 1,000; the README quotes 10,000).
func TestHATakeoverCost(t *testing.T) {
	n := 1000
	if v, err := strconv.Atoi(os.Getenv("SCIMBRIDGE_TAKEOVER_USERS")); err == nil && v > 0 {
		n = v
	}
	o := newOutEnv(t, "ha-cost")
	target := newHATarget(t)
	pair := haPair(t, o, target.URL)
	a, b := pair[0], pair[1]
	var ldif strings.Builder
	for i := range n {
		ldif.WriteString(o.userLDIF(fmt.Sprintf("cost%06d", i), "Cost", fmt.Sprintf("User%d", i), "title: Engineer"))
		ldif.WriteString("\n")
	}
	o.ldif(ldif.String())
	a.start(t)
	waitFor(t, "a leads", func() bool { return a.leads(t) })
	b.start(t)
	waitLong(t, "a pushes every user", 30*time.Minute, func() bool { return len(target.Users()) == n })
	require.NoError(t, a.d.cmd.Process.Kill())
	<-a.d.exited
	killed := time.Now()
	waitLong(t, "b takes over", 120*time.Second, func() bool { return b.leads(t) })
	o2 := &outEnv{t: t, admin: b.adm}
	waitLong(t, "b's takeover pass is delivered", 30*time.Minute, func() bool {
		ps, _ := o2.status()["provisioners"].([]any) // absent until b's provisioning started
		for _, p := range ps {
			if p := p.(map[string]any); p["name"] == "app" {
				return p["last_reconcile"] != nil && p["outbox_depth"] == float64(0)
			}
		}
		return false
	})
	time.Sleep(2 * time.Second)
	var gets, others int
	for _, r := range target.from(b.id, killed) {
		if r.method == http.MethodGet {
			gets++
		} else {
			others++
			t.Logf("takeover request %s %s", r.method, r.path)
		}
	}
	t.Logf("takeover of %d users in line: %d GETs, %d other requests", n, gets, others)
	require.Equal(t, (n+99)/100, gets, "the listing's pages")
	require.Zero(t, others, "accounts in line cost nothing")

	// Adopting from the listing was for the takeover's pass: an account the directory never
	// had (another bridge's, on a shared target) is left alone by the passes that follow.
	foreign, err := target.AddUser(map[string]any{
		"schemas": []any{"urn:ietf:params:scim:schemas:core:2.0:User"}, "userName": "foreign",
		"externalId": "0b9e7c1e-5b1a-4c53-9f55-5d3c0e0e0e0e", "active": true,
	})
	require.NoError(t, err)
	since := time.Now()
	o2.dir = b.dir
	_, stderr, code := o2.cli("sync", "--full")
	require.Zero(t, code, stderr)
	for _, r := range target.from(b.id, since) {
		require.NotContains(t, r.path, foreign, "%s %s: the foreign account was taken for one of ours", r.method, r.path)
	}
}
