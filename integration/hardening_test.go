package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/ldapstore"
	"github.com/scimbridge/scimbridge/ldapstore/ldaptest"
)

// TestProtectedEntriesThroughTheBinary (issue 9, must show): an operator account made by hand
// in ou=people and listed in protected_dns, and the bridge's own bind DN placed in ou=people,
// are 404 to GET, PATCH (password) and DELETE by their entryUUID and absent from
// filter=userName eq …; each refusal is an audit event with result=denied, and neither entry
// changes (the operator's password still binds).
func TestProtectedEntriesThroughTheBinary(t *testing.T) {
	s := ldaptest.Private(t, ldaptest.Options{ServiceDN: "uid=scimbridge-svc,ou=people," + ldaptest.DefaultSuffix})
	operator := "uid=operator,ou=people," + s.Suffix
	require.NoError(t, s.LDIF("dn: "+operator+"\nobjectClass: inetOrgPerson\nuid: operator\ncn: Operator\nsn: Operator\nuserPassword: operator-secret\n"))
	d := startSCIMAt(t, s, s.Suffix, "", fmt.Sprintf("protected_dns = [%q]\n", operator), "http")
	waitFor(t, "the warning about the bind DN in the users base", func() bool {
		return contains(d.stderr.String(), "contains the bridge's own account (ldap.bind_dn)")
	})
	visible := d.call("POST", "/Users", map[string]any{"schemas": []any{scimUser}, "userName": "visible"})
	d.expect(visible, http.StatusCreated, "")
	before := d.dump()
	for name, dn := range map[string]string{"operator": operator, "scimbridge-svc": s.ServiceDN} {
		e, ok := d.get(dn)
		require.True(t, ok, dn)
		id := e.First("entryUUID")
		d.expect(d.call("GET", "/Users/"+id, nil), http.StatusNotFound, "")
		d.expect(d.call("PATCH", "/Users/"+id, ops(scimOp("replace", "password", "Pwned-0123456789"))), http.StatusNotFound, "")
		d.expect(d.call("PATCH", "/Users/"+id, ops(scimOp("replace", "active", false))), http.StatusNotFound, "")
		d.expect(d.call("DELETE", "/Users/"+id, nil), http.StatusNotFound, "")
		r := d.call("GET", "/Users?filter="+urlQ(`userName eq "`+name+`"`), nil)
		d.expect(r, http.StatusOK, "")
		require.EqualValues(t, 0, r.body["totalResults"], name)
	}
	r := d.call("GET", "/Users?count=50", nil)
	require.EqualValues(t, 1, r.body["totalResults"], "only the user SCIM made: %s", r.raw)
	require.Equal(t, before, d.dump(), "nothing changed in the directory")
	waitFor(t, "the denied audit events", func() bool {
		return strings.Count(d.stderr.String(), `"result":"denied"`) >= 8
	})
	conn, err := ldapstore.Open(context.Background(), ldapstore.Config{URLs: []string{s.URL}, BindDN: operator, BindPassword: "operator-secret"}, zerolog.Nop())
	require.NoError(t, err, "the operator's password is still its own")
	conn.Close()
}

// TestManagedOnlyThroughTheBinary (must show): with managed_only an entry made by hand is
// invisible, one created through SCIM is not.
func TestManagedOnlyThroughTheBinary(t *testing.T) {
	d := startSCIM(t, "managed", "managed_only = true\n", "http")
	require.NoError(t, d.slapd.LDIF("dn: uid=handmade,"+d.people+"\nobjectClass: inetOrgPerson\nuid: handmade\ncn: h\nsn: h\n"))
	hand, ok := d.get("uid=handmade," + d.people)
	require.True(t, ok)
	d.expect(d.call("GET", "/Users/"+hand.First("entryUUID"), nil), http.StatusNotFound, "")
	r := d.call("GET", "/Users?filter="+urlQ(`userName eq "handmade"`), nil)
	require.EqualValues(t, 0, r.body["totalResults"])
	r = d.call("POST", "/Users", map[string]any{"schemas": []any{scimUser}, "userName": "scimmade"})
	d.expect(r, http.StatusCreated, "")
	id := r.body["id"].(string)
	d.expect(d.call("GET", "/Users/"+id, nil), http.StatusOK, "")
	r = d.call("GET", "/Users?filter="+urlQ(`userName eq "scimmade"`), nil)
	require.EqualValues(t, 1, r.body["totalResults"])
	e, _ := d.get("uid=scimmade," + d.people)
	require.Contains(t, e.Get("employeeType"), "scimbridge:managed")
}

// TestMetricsBoundedThroughTheBinary (must show): 1,000 requests with made-up methods and
// paths leave /metrics within a fixed size and the inbound series within a fixed count.
func TestMetricsBoundedThroughTheBinary(t *testing.T) {
	d := startSCIM(t, "cardinality", "", "http")
	_, before := d.get2("/metrics")
	rnd := rand.New(rand.NewPCG(9, 9))
	word := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte('A' + rnd.IntN(26))
		}
		return string(b)
	}
	type call struct {
		method, path string
		auth         bool
	}
	calls := make(chan call, 1000)
	for i := range 1000 {
		c := call{method: word(1 + rnd.IntN(4096)), path: "/" + strings.ToLower(word(1+rnd.IntN(4096))), auth: rnd.IntN(2) == 0}
		if i%2 == 0 {
			c.path = "/scim/v2/Users" + c.path
		}
		calls <- c
	}
	close(calls)
	base := strings.TrimSuffix(d.base, "/scim/v2")
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for c := range calls {
				req, err := http.NewRequest(c.method, base+c.path, nil)
				if err != nil {
					t.Error(err)
					return
				}
				if c.auth {
					req.Header.Set("Authorization", "Bearer "+d.token)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
			}
		})
	}
	wg.Wait()
	_, after := d.get2("/metrics")
	series := 0
	for _, line := range strings.Split(after, "\n") {
		if strings.HasPrefix(line, "scimbridge_inbound_") {
			series++
			require.Less(t, len(line), 300, "no label carries a client's text: %.200s", line)
		}
	}
	t.Logf("/metrics: %d bytes before, %d after 1,000 made-up requests; %d inbound series", len(before), len(after), series)
	require.Less(t, len(after), len(before)+32<<10, "/metrics grew by less than 32 KiB (from %d to %d bytes)", len(before), len(after))
	require.Less(t, series, 150, "inbound series")
}

// get2 is daemon.get returning the status too (t-safe from the test goroutine).
func (d *scimDaemon) get2(path string) (int, string) { return d.daemon.get(path) }

// ldapOps sums the LDAP operations of the given kinds from the daemon's metrics.
func (d *scimDaemon) ldapOps(kinds ...string) int {
	d.t.Helper()
	_, m := d.get2("/metrics")
	n := 0
	for _, k := range kinds {
		re := regexp.MustCompile(`(?m)^scimbridge_ldap_operation_duration_seconds_count\{op="` + k + `"\} ([0-9]+)$`)
		if mm := re.FindStringSubmatch(m); mm != nil {
			v, _ := strconv.Atoi(mm[1])
			n += v
		}
	}
	return n
}

// TestHugeUnknownMemberListThroughTheBinary (must show): a POST /Groups naming 20,000 members,
// the first unknown, costs at most two LDAP searches before its 400.
func TestHugeUnknownMemberListThroughTheBinary(t *testing.T) {
	d := startSCIM(t, "members", "max_body_bytes = 4194304\n", "http")
	members := make([]any, 20000)
	for i := range members {
		members[i] = map[string]any{"value": fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i)}
	}
	before := d.ldapOps("search", "get")
	start := time.Now()
	r := d.call("POST", "/Groups", map[string]any{"schemas": []any{scimGroup}, "displayName": "big", "members": members})
	d.expect(r, http.StatusBadRequest, "invalidValue")
	took := time.Since(start)
	require.LessOrEqual(t, d.ldapOps("search", "get")-before, 2, "LDAP searches before the 400")
	t.Logf("20,000 unknown members answered 400 in %s", took)
}

// TestEntraPaceThroughTheBinary (must show): 50 concurrent clients for 30 s (5 s with
// -short), each about one request a second — Entra ID's pace and more — get no rejection and
// no 5xx with the default bounds.
func TestEntraPaceThroughTheBinary(t *testing.T) {
	d := startSCIM(t, "pace", "", "http")
	duration := 30 * time.Second
	if testing.Short() {
		duration = 5 * time.Second
	}
	const clients = 50
	maxPerClient := int(duration/time.Second) * 2 // the loop's bound besides the clock
	group := d.call("POST", "/Groups", map[string]any{"schemas": []any{scimGroup}, "displayName": "pace"})
	d.expect(group, http.StatusCreated, "")
	gid := group.body["id"].(string)
	deadline := time.Now().Add(duration)
	var (
		mu       sync.Mutex
		statuses = map[int]int{}
		total    int
	)
	record := func(status int) {
		mu.Lock()
		statuses[status]++
		total++
		mu.Unlock()
	}
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			rnd := rand.New(rand.NewPCG(uint64(c), 7))
			name := fmt.Sprintf("pace-%02d", c)
			var id string
			for i := 0; i < maxPerClient && time.Now().Before(deadline); i++ {
				var r scimResp
				switch {
				case id == "":
					r = d.callNoFail("POST", "/Users", map[string]any{"schemas": []any{scimUser}, "userName": name, "active": true})
					if r.status == http.StatusCreated {
						id, _ = r.body["id"].(string)
					}
				case i%4 == 1:
					r = d.callNoFail("GET", "/Users?filter="+urlQ(`userName eq "`+name+`"`), nil)
				case i%4 == 2:
					r = d.callNoFail("PATCH", "/Users/"+id, ops(scimOp("Replace", "title", fmt.Sprintf("t%d", i))))
				case i%8 == 3:
					r = d.callNoFail("PATCH", "/Groups/"+gid, ops(scimOp("Add", "members", []any{map[string]any{"value": id}})))
				case i%8 == 7:
					r = d.callNoFail("PATCH", "/Groups/"+gid, ops(scimOp("Remove", `members[value eq "`+id+`"]`, nil)))
				default:
					r = d.callNoFail("GET", "/Users/"+id, nil)
				}
				record(r.status)
				time.Sleep(time.Duration(700+rnd.IntN(600)) * time.Millisecond)
			}
		})
	}
	wg.Wait()
	t.Logf("%d requests from %d clients in %s: %v", total, clients, duration, statuses)
	require.Greater(t, total, clients*int(duration/time.Second)/2, "the clients kept their pace")
	for status, n := range statuses {
		require.Less(t, status, 300, "%d answers with status %d: none rejected, none failed", n, status)
	}
	_, m := d.get2("/metrics")
	require.NotContains(t, m, "scimbridge_inbound_requests_rejected_total{", "nothing was turned away")
}

// callNoFail is call for goroutines other than the test's (no require): a request that cannot
// be made or answered is a status 0.
func (d *scimDaemon) callNoFail(method, path string, body any) scimResp {
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return scimResp{}
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, d.base+path, rd)
	if err != nil {
		return scimResp{}
	}
	req.Header.Set("Authorization", "Bearer "+d.token)
	req.Header.Set("Content-Type", "application/scim+json")
	resp, err := d.client.Do(req)
	if err != nil {
		return scimResp{}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return scimResp{}
	}
	r := scimResp{status: resp.StatusCode, header: resp.Header, raw: string(data)}
	_ = json.Unmarshal(data, &r.body)
	return r
}

func urlQ(filter string) string { return url.QueryEscape(filter) }

// TestPatchUserNameKeepsFamilyNameThroughTheBinary (must show).
func TestPatchUserNameKeepsFamilyNameThroughTheBinary(t *testing.T) {
	d := startSCIM(t, "omalley", "", "http")
	r := d.call("POST", "/Users", map[string]any{"schemas": []any{scimUser}, "userName": "OMalley", "name": map[string]any{"familyName": "OMalley"}})
	d.expect(r, http.StatusCreated, "")
	e, _ := d.get("uid=OMalley," + d.people)
	require.Equal(t, []string{"OMalley"}, e.Get("sn"))
	d.expect(d.call("PATCH", "/Users/"+r.body["id"].(string), ops(scimOp("replace", "userName", "newusername"))), http.StatusOK, "")
	e, ok := d.get("uid=newusername," + d.people)
	require.True(t, ok)
	require.Equal(t, []string{"OMalley"}, e.Get("sn"))
}

// TestFenceReloadThroughTheBinary: SIGHUP applies a new protected_dns at once; a reload naming
// a protected group that does not exist is refused whole (the old fence keeps serving and
// scimbridge_config_last_reload_successful says 0).
func TestFenceReloadThroughTheBinary(t *testing.T) {
	d := startSCIM(t, "fencereload", "", "http")
	r := d.call("POST", "/Users", map[string]any{"schemas": []any{scimUser}, "userName": "soon-protected"})
	d.expect(r, http.StatusCreated, "")
	id := r.body["id"].(string)
	rewrite := func(inboundKeys string) {
		cfg, err := os.ReadFile(d.cfgPath)
		require.NoError(t, err)
		text := regexp.MustCompile(`(?m)^(protected_dns|protected_groups) = .*\n`).ReplaceAllString(string(cfg), "")
		text = strings.Replace(text, "[inbound]\n", "[inbound]\n"+inboundKeys, 1)
		require.NoError(t, os.WriteFile(d.cfgPath, []byte(text), 0o600))
		d.signal(syscall.SIGHUP)
	}
	rewrite(fmt.Sprintf("protected_dns = [%q]\n", "uid=soon-protected,"+d.people))
	waitFor(t, "the new protected entry", func() bool { return d.call("GET", "/Users/"+id, nil).status == http.StatusNotFound })
	waitFor(t, "the reload to succeed", func() bool {
		_, m := d.get2("/metrics")
		return strings.Contains(m, "scimbridge_config_last_reload_successful 1")
	})

	rewrite(fmt.Sprintf("protected_groups = [%q]\n", "cn=no-such-group,"+d.groups))
	waitFor(t, "the refused reload", func() bool {
		_, m := d.get2("/metrics")
		return strings.Contains(m, "scimbridge_config_last_reload_successful 0")
	})
	require.Contains(t, d.stderr.String(), "does not exist")
	d.expect(d.call("GET", "/Users/"+id, nil), http.StatusNotFound, "")
	d.expect(d.call("GET", "/Users?count=5", nil), http.StatusOK, "")
}
