package inbound_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/scimbridge/scimbridge/bridge/gctune"
	"github.com/scimbridge/scimbridge/bridge/inbound"
	"github.com/scimbridge/scimbridge/ldapstore"
	"github.com/scimbridge/scimbridge/ldapstore/ldaptest"
	"github.com/scimbridge/scimbridge/mapping"
)

// Benchmark parameters. SCIMBRIDGE_BENCH_USERS sets the directory size (default 100,000:
// benchmarks only run with -bench, so `make test` never builds it).
const (
	benchCreates     = 2000
	benchLookups     = 4000
	benchPageRepeats = 5
)

// benchConcurrency is the number of concurrent clients of every measure (SCIM and raw alike);
// SCIMBRIDGE_BENCH_CONCURRENCY overrides the default of 8.
var benchConcurrency = func() int {
	if v, err := strconv.Atoi(os.Getenv("SCIMBRIDGE_BENCH_CONCURRENCY")); err == nil && v > 0 {
		return v
	}
	return 8
}()

func benchUsers() int {
	if v, err := strconv.Atoi(os.Getenv("SCIMBRIDGE_BENCH_USERS")); err == nil && v > 0 {
		return v
	}
	return 100_000
}

// BenchmarkInbound measures the SCIM server against the directory it writes to, in one run on
// one private slapd (mdb with dbnosync, or durable with SCIMBRIDGE_BENCH_DURABLE=1; accesslog
// and sssvlv loaded, as in the tests) seeded offline with slapadd, against baselines made in
// the same process with ldapstore (a pool of persistent go-ldap connections) at the same
// concurrency (SCIMBRIDGE_BENCH_CONCURRENCY clients, default 8, and 1 client), raw and SCIM
// taking turns:
//
//   - creates: SCIM POST /Users per second ÷ raw LDAP adds per second of the same entries;
//   - lookups: GET /Users?filter=userName eq "…" latency p50 and p99 ÷ the same indexed LDAP
//     search (same filter, same attributes);
//   - pages: the page of 100 at startIndex 50,001 ÷ the page at 1 (Virtual List View, each
//     with a fresh sort context, and with the context reused as a client paging through does),
//     and ÷ one userName eq lookup; and the same without VLV (snapshot paging) for reference.
func BenchmarkInbound(b *testing.B) {
	if !ldaptest.Installed() {
		b.Skip(ldaptest.InstallHint)
	}
	// The daemon runs with gctune's heap headroom (scimbridge serve); so does this process,
	// which serves SCIM as the daemon does (and runs the raw baseline alongside).
	if t, ok := gctune.Start(gctune.DefaultHeadroom); ok {
		defer t.Stop()
	}
	n := benchUsers()
	start := time.Now()
	var seed strings.Builder
	for i := range n {
		fmt.Fprintf(&seed, "dn: uid=u%06d,ou=people,dc=example,dc=org\nobjectClass: inetOrgPerson\nuid: u%06d\ncn: User %d\nsn: %d\ngivenName: User\nmail: u%06d@example.org\ntitle: Engineer\n\n", i, i, i, i, i)
	}
	durable := os.Getenv("SCIMBRIDGE_BENCH_DURABLE") == "1"
	slapd, err := ldaptest.Start(ldaptest.Options{Seed: seed.String(), Durable: durable})
	if err != nil {
		b.Fatal(err)
	}
	defer slapd.Close()
	seedTime := time.Since(start)

	ctx := context.Background()
	open := func() *ldapstore.Store { return benchStore(b, slapd) }
	raw := open()
	defer raw.Close()
	const token = "benchmark-token-0123456789"
	newServer := func(dir inbound.Directory, pager ldapstore.PagerOptions) (*httptest.Server, func()) {
		srv, err := inbound.New(ctx, inbound.Options{Directory: dir, Logger: zerolog.Nop(), Pager: pager, Config: inbound.Config{
			BasePath: "/scim/v2", Users: inbound.Users{BaseDN: slapd.PeopleDN}, Groups: inbound.Groups{BaseDN: slapd.GroupsDN},
			Tokens: []inbound.Token{{Name: "bench", SHA256: sha256.Sum256([]byte(token))}},
		}})
		if err != nil {
			b.Fatal(err)
		}
		hs := httptest.NewServer(srv)
		return hs, func() { hs.Close(); srv.Close() }
	}
	scimStore := open()
	defer scimStore.Close()
	hs, stop := newServer(scimStore, ldapstore.PagerOptions{})
	defer stop()
	coldHS, stopCold := newServer(scimStore, ldapstore.PagerOptions{Reuse: -1})
	defer stopCold()
	snapHS, stopSnap := newServer(&noVLV{Directory: scimStore}, ldapstore.PagerOptions{})
	defer stopSnap()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: benchConcurrency * 2}}
	call := func(base, method, path string, body []byte) (int, []byte) {
		req, _ := http.NewRequest(method, base+"/scim/v2"+path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/scim+json")
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, data
	}

	attrs := func(uid string) map[string][]string {
		return map[string][]string{
			"objectClass": {"inetOrgPerson"}, "uid": {uid}, "cn": {"Bench User"}, "sn": {"User"},
			"givenName": {"Bench"}, "mail": {uid + "@example.org"}, "title": {"Engineer"},
		}
	}
	userAttrs := mapping.DefaultUserMap().SearchAttributes(mapping.DefaultActiveMarker(), "entryUUID")
	pick := func(i int) string { return fmt.Sprintf("u%06d", (i*7919+rand.IntN(97))%n) }
	run := 0
	// cpu is the CPU time slapd and this process (clients, SCIM server, go-ldap) used.
	type cpu struct{ slapd, self time.Duration }
	var cpuRawAdd, cpuSCIMAdd, cpuRawGet, cpuSCIMGet cpu
	timed := func(into *cpu, f func()) {
		s0, p0 := ldaptest.ProcessCPU(slapd.PID()), ldaptest.ProcessCPU(os.Getpid())
		f()
		into.slapd += ldaptest.ProcessCPU(slapd.PID()) - s0
		into.self += ldaptest.ProcessCPU(os.Getpid()) - p0
	}
	// measure runs the create and lookup comparisons at one concurrency. Raw and SCIM take
	// turns (two rounds each), so that a change in the machine's load hits both alike.
	measure := func(conc int) (rawRate, scimRate float64, rawLat, scimLat []time.Duration) {
		var rawTime, scimTime time.Duration
		for round := range 2 {
			run++
			prefix := fmt.Sprintf("c%d-%d", conc, run)
			t0 := time.Now()
			timed(&cpuRawAdd, func() {
				parallel(conc, benchCreates/2, func(i int) {
					uid := fmt.Sprintf("%s-raw-%05d", prefix, i)
					if err := raw.Add(ctx, "uid="+uid+","+slapd.PeopleDN, attrs(uid)); err != nil {
						b.Error(err)
					}
				})
			})
			rawTime += time.Since(t0)
			t0 = time.Now()
			timed(&cpuSCIMAdd, func() {
				parallel(conc, benchCreates/2, func(i int) {
					uid := fmt.Sprintf("%s-scim-%05d", prefix, i)
					body, _ := json.Marshal(map[string]any{
						"schemas": []any{mapping.UserSchemaURN}, "userName": uid, "title": "Engineer",
						"name":   map[string]any{"givenName": "Bench", "familyName": "User", "formatted": "Bench User"},
						"emails": []any{map[string]any{"value": uid + "@example.org", "type": "work", "primary": true}},
					})
					if code, data := call(hs.URL, "POST", "/Users", body); code != http.StatusCreated {
						b.Errorf("create: %d %s", code, data)
					}
				})
			})
			scimTime += time.Since(t0)
			off := round * benchLookups
			var lat []time.Duration
			timed(&cpuRawGet, func() {
				lat = latencies(conc, benchLookups/2, func(i int) {
					q := ldapstore.Search{
						Base: slapd.PeopleDN, Scope: ldapstore.ScopeSub, Attrs: userAttrs,
						Filter: "(&(objectClass=inetOrgPerson)(uid=" + ldapstore.EscapeFilter(pick(off+i)) + "))",
					}
					got, err := raw.SearchAll(ctx, q)
					if err != nil || len(got) != 1 {
						b.Errorf("raw lookup: %v %d", err, len(got))
					}
				})
			})
			rawLat = append(rawLat, lat...)
			timed(&cpuSCIMGet, func() {
				lat = latencies(conc, benchLookups/2, func(i int) {
					code, data := call(hs.URL, "GET", "/Users?filter="+urlQuery(`userName eq "`+pick(off+i)+`"`), nil)
					if code != http.StatusOK || !bytes.Contains(data, []byte(`"totalResults":1`)) {
						b.Errorf("scim lookup: %d %s", code, data)
					}
				})
			})
			scimLat = append(scimLat, lat...)
		}
		sortDurations(rawLat)
		sortDurations(scimLat)
		return float64(benchCreates) / rawTime.Seconds(), float64(benchCreates) / scimTime.Seconds(), rawLat, scimLat
	}

	b.ResetTimer()
	for iter := 0; iter < b.N; iter++ {
		rawRate1, scimRate1, rawLat1, scimLat1 := measure(1)
		rawRate, scimRate, rawLat, scimLat := measure(benchConcurrency)

		// Pages of 100 at 1 and at 50,001 (or the middle of a smaller directory).
		mid := min(50_001, n/2+1)
		page := func(base string, startIndex int) time.Duration {
			t0 := time.Now()
			code, data := call(base, "GET", fmt.Sprintf("/Users?startIndex=%d&count=100", startIndex), nil)
			d := time.Since(t0)
			if code != http.StatusOK || !bytes.Contains(data, []byte(`"itemsPerPage":100`)) {
				b.Errorf("page %d: %d %.200s", startIndex, code, data)
			}
			return d
		}
		median := func(f func() time.Duration) time.Duration {
			var ds []time.Duration
			for range benchPageRepeats {
				ds = append(ds, f())
			}
			sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
			return ds[len(ds)/2]
		}
		coldFirst := median(func() time.Duration { return page(coldHS.URL, 1) })
		coldMid := median(func() time.Duration { return page(coldHS.URL, mid) })
		warmMid := median(func() time.Duration { page(hs.URL, 1); return page(hs.URL, mid) })
		snapFirst := page(snapHS.URL, 1) // builds the snapshot
		snapMid := median(func() time.Duration { return page(snapHS.URL, mid) })

		p50, p99 := pct(scimLat, 50), pct(scimLat, 99)
		rp50, rp99 := pct(rawLat, 50), pct(rawLat, 99)
		ratio := func(a, b time.Duration) float64 { return float64(a) / float64(b) }
		b.ReportMetric(scimRate/rawRate, "create_ratio")
		b.ReportMetric(ratio(p50, rp50), "lookup_p50_ratio")
		b.ReportMetric(ratio(p99, rp99), "lookup_p99_ratio")
		b.ReportMetric(ratio(coldMid, coldFirst), "page_mid/first_ratio")
		b.ReportMetric(ratio(coldMid, p50), "page_mid/lookup_ratio")
		b.ReportMetric(scimRate, "scim_creates/s")
		b.ReportMetric(scimRate1/rawRate1, "create_ratio_1client")
		b.ReportMetric(ratio(pct(scimLat1, 50), pct(rawLat1, 50)), "lookup_p50_ratio_1client")

		w := os.Stdout
		sync := "dbnosync"
		if durable {
			sync = "durable: fsync per commit"
		}
		fmt.Fprintf(w, "\nBenchmarkInbound: %d users (slapadd %.1fs), one private slapd (mdb %s, accesslog, sssvlv), %d clients, HTTP over loopback\n", n, seedTime.Seconds(), sync, benchConcurrency)
		fmt.Fprintf(w, "  %-44s %12s %12s %8s  %s\n", "measure", "SCIM", "raw LDAP", "ratio", "goal")
		fmt.Fprintf(w, "  %-44s %12.0f %12.0f %8.2f  >= 0.85\n", fmt.Sprintf("creates/s (%d), %d clients", benchCreates, benchConcurrency), scimRate, rawRate, scimRate/rawRate)
		fmt.Fprintf(w, "  %-44s %12s %12s %8.2f  <= 1.3\n", fmt.Sprintf("userName eq lookup p50 (%d), %d clients", benchLookups, benchConcurrency), p50.Round(time.Microsecond), rp50.Round(time.Microsecond), ratio(p50, rp50))
		fmt.Fprintf(w, "  %-44s %12s %12s %8.2f  <= 1.5\n", "userName eq lookup p99", p99.Round(time.Microsecond), rp99.Round(time.Microsecond), ratio(p99, rp99))
		fmt.Fprintf(w, "  %-44s %12.0f %12.0f %8.2f\n", "creates/s, 1 client", scimRate1, rawRate1, scimRate1/rawRate1)
		fmt.Fprintf(w, "  %-44s %12s %12s %8.2f  <= 1.5\n", "userName eq lookup p50, 1 client", pct(scimLat1, 50).Round(time.Microsecond), pct(rawLat1, 50).Round(time.Microsecond), ratio(pct(scimLat1, 50), pct(rawLat1, 50)))
		fmt.Fprintf(w, "  %-44s %12s %12s %8.2f\n", "userName eq lookup p99, 1 client", pct(scimLat1, 99).Round(time.Microsecond), pct(rawLat1, 99).Round(time.Microsecond), ratio(pct(scimLat1, 99), pct(rawLat1, 99)))
		// Both concurrencies ran benchCreates creates and benchLookups lookups on each side.
		perOp := func(d time.Duration, ops int) string {
			return fmt.Sprintf("%d µs", d.Microseconds()/int64(ops))
		}
		fmt.Fprintf(w, "  %-44s %12s %12s %8.2f\n", "CPU per create: slapd", perOp(cpuSCIMAdd.slapd, 2*benchCreates), perOp(cpuRawAdd.slapd, 2*benchCreates), float64(cpuSCIMAdd.slapd)/float64(cpuRawAdd.slapd))
		fmt.Fprintf(w, "  %-44s %12s %12s %8.2f\n", "CPU per create: clients, server, go-ldap", perOp(cpuSCIMAdd.self, 2*benchCreates), perOp(cpuRawAdd.self, 2*benchCreates), float64(cpuSCIMAdd.self)/float64(cpuRawAdd.self))
		fmt.Fprintf(w, "  %-44s %12s %12s %8.2f\n", "CPU per lookup: slapd", perOp(cpuSCIMGet.slapd, 2*benchLookups), perOp(cpuRawGet.slapd, 2*benchLookups), float64(cpuSCIMGet.slapd)/float64(cpuRawGet.slapd))
		fmt.Fprintf(w, "  %-44s %12s %12s %8.2f\n", "CPU per lookup: clients, server, go-ldap", perOp(cpuSCIMGet.self, 2*benchLookups), perOp(cpuRawGet.self, 2*benchLookups), float64(cpuSCIMGet.self)/float64(cpuRawGet.self))
		fmt.Fprintf(w, "  %-44s %12s\n", "page of 100 at 1, VLV fresh context", coldFirst.Round(time.Microsecond))
		fmt.Fprintf(w, "  %-44s %12s %12s %8.2f  <= 3 (÷ page at 1)\n", fmt.Sprintf("page of 100 at %d, VLV fresh context", mid), coldMid.Round(time.Microsecond), "", ratio(coldMid, coldFirst))
		fmt.Fprintf(w, "  %-44s %12s %12s %8.1f  (÷ lookup p50)\n", "", "", "", ratio(coldMid, p50))
		fmt.Fprintf(w, "  %-44s %12s %12s %8.2f  (÷ page at 1, fresh)\n", fmt.Sprintf("page of 100 at %d, VLV context reused", mid), warmMid.Round(time.Microsecond), "", ratio(warmMid, coldFirst))
		fmt.Fprintf(w, "  %-44s %12s %12s %8.1f  (÷ lookup p50)\n", "", "", "", ratio(warmMid, p50))
		fmt.Fprintf(w, "  %-44s %12s\n", "page of 100 at 1, no VLV (builds snapshot)", snapFirst.Round(time.Microsecond))
		fmt.Fprintf(w, "  %-44s %12s %12s %8.2f  (÷ page at 1, fresh VLV)\n", fmt.Sprintf("page of 100 at %d, no VLV (snapshot)", mid), snapMid.Round(time.Microsecond), "", ratio(snapMid, coldFirst))
	}
}

// benchStore opens a pool of benchConcurrency connections to s as its service account.
func benchStore(b *testing.B, s *ldaptest.Server) *ldapstore.Store {
	b.Helper()
	st, err := ldapstore.Open(context.Background(), ldapstore.Config{
		URLs: []string{s.URL}, BindDN: s.ServiceDN, BindPassword: s.ServicePW,
		PoolSize: benchConcurrency, Timeout: time.Minute, PageSize: 500,
	}, zerolog.Nop())
	if err != nil {
		b.Fatal(err)
	}
	return st
}

// noVLV hides the directory's VLV support, to measure snapshot paging.
type noVLV struct{ inbound.Directory }

func (noVLV) SupportsVLV(context.Context) (bool, error) { return false, nil }

func urlQuery(s string) string {
	r := strings.NewReplacer(" ", "%20", `"`, "%22")
	return r.Replace(s)
}

// parallel runs fn(0…count-1) on conc workers and returns the operations per second.
func parallel(conc, count int, fn func(i int)) float64 {
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= count {
					return
				}
				fn(i)
			}
		}()
	}
	wg.Wait()
	return float64(count) / time.Since(start).Seconds()
}

// latencies runs fn like parallel and returns each call's duration.
func latencies(conc, count int, fn func(i int)) []time.Duration {
	out := make([]time.Duration, count)
	parallel(conc, count, func(i int) {
		t0 := time.Now()
		fn(i)
		out[i] = time.Since(t0)
	})
	return out
}

func sortDurations(d []time.Duration) { sort.Slice(d, func(i, j int) bool { return d[i] < d[j] }) }

func pct(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, len(sorted)*p/100)]
}
