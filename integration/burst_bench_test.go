package integration

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/ldapstore/ldaptest"
)

// BenchmarkBurstDefaults runs the real binary with a provisioner at its defaults (no
// rate_limit, no concurrency: the adaptive pace) against an instant SCIM target on loopback,
// and measures:
//
//   - a burst of 300 users added to the directory: from the first add to the last account
//     created on the target (goal ≤ 5 s; each is a lookup and a POST, outside a reconcile);
//   - LDAP write → target received for single modifies (p50, p99; goal p99 ≤ 250 ms), with
//     the accesslog's push stream (syncprov on cn=accesslog) and poll_interval at its 1 s
//     default.
func BenchmarkBurstDefaults(b *testing.B) {
	const seeded, burst, writes = 20, 300, 300
	var seed strings.Builder
	for i := range seeded {
		fmt.Fprintf(&seed, "dn: uid=s%04d,ou=people,dc=example,dc=org\nobjectClass: inetOrgPerson\nuid: s%04d\ncn: Seed %d\nsn: Seed\nmail: s%04d@example.org\n\n", i, i, i, i)
	}
	s := ldaptest.Private(b, ldaptest.Options{Seed: seed.String()})
	target, err := newFastTarget(0)
	require.NoError(b, err)
	defer target.Close()
	rec := recordTags(target)
	d := startBenchDaemon(b, s, "burst", target.URL, "")
	waitFor := func(what string, n int64) time.Time {
		deadline := time.Now().Add(5 * time.Minute)
		for target.creates.Load() < n {
			if time.Now().After(deadline) {
				b.Fatalf("%s: %d of %d accounts\n%s", what, target.creates.Load(), n, d.logs.String())
			}
			time.Sleep(5 * time.Millisecond)
		}
		return time.Now()
	}
	waitFor("initial sync", seeded)
	// The push stream opens right after the first sync: give it a moment.
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(scrape(b, d.admin), "scimbridge_changes_push_active 1") {
		require.True(b, time.Now().Before(deadline), "the accesslog push stream never opened")
		time.Sleep(50 * time.Millisecond)
	}

	conn, err := s.Root()
	require.NoError(b, err)
	defer conn.Close()
	start := time.Now()
	for i := range burst {
		req := ldap.NewAddRequest(fmt.Sprintf("uid=n%04d,ou=people,dc=example,dc=org", i), nil)
		req.Attribute("objectClass", []string{"inetOrgPerson"})
		req.Attribute("uid", []string{fmt.Sprintf("n%04d", i)})
		req.Attribute("cn", []string{fmt.Sprintf("New %d", i)})
		req.Attribute("sn", []string{"New"})
		require.NoError(b, conn.Add(req))
	}
	added := time.Since(start)
	took := waitFor("burst", seeded+burst).Sub(start)
	fmt.Printf("burst of %d new users, defaults (adaptive pace, lookup then POST): %s to the target (%s to add them to LDAP), goal <= 5s\n", burst, took.Round(time.Millisecond), added.Round(time.Millisecond))
	b.ReportMetric(took.Seconds(), "burst_s")

	lat := writeLatency(b, conn, rec, writes, func(i int) string {
		return fmt.Sprintf("uid=n%04d,ou=people,dc=example,dc=org", i%burst)
	})
	p50, p99 := lat[len(lat)/2], lat[len(lat)*99/100]
	fmt.Printf("LDAP write -> target, push stream on, poll_interval 1s: p50 %s p99 %s (%d single writes), goal p99 <= 250ms\n", p50.Round(time.Millisecond), p99.Round(time.Millisecond), writes)
	b.ReportMetric(float64(p50.Milliseconds()), "p50_ms")
	b.ReportMetric(float64(p99.Milliseconds()), "p99_ms")
}

// scrape reads the daemon's metrics page.
func scrape(_ testing.TB, admin string) string {
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body)
}
