package inbound_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/scimbridge/scimbridge/bridge/inbound"
	"github.com/scimbridge/scimbridge/ldapstore"
	"github.com/scimbridge/scimbridge/ldapstore/ldaptest"
)

// scaleSizes are the directory sizes BenchmarkInboundScale compares, from
// SCIMBRIDGE_BENCH_SCALE: "1" for 100,000 and 1,000,000, or a comma-separated list (the first
// is the reference). Unset, the benchmark is skipped: seeding a million entries takes minutes
// and gigabytes, so it is a mode of its own (make bench-scale), not part of make bench.
func scaleSizes() []int {
	v := os.Getenv("SCIMBRIDGE_BENCH_SCALE")
	if v == "" {
		return nil
	}
	if v == "1" {
		return []int{100_000, 1_000_000}
	}
	var out []int
	for _, f := range strings.Split(v, ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(f)); err == nil && n > 0 {
			out = append(out, n)
		}
	}
	return out
}

type scaleResult struct {
	n                int
	seed             time.Duration
	lookup8, lookup1 time.Duration // userName eq p50, 8 clients and 1 client
	pageFirst        time.Duration // page of 100 at 1, fresh VLV context: slapd sorts every entry
	pageMid          time.Duration // page of 100 at n/2+1, on the context the page at 1 made
	pageMidCold      time.Duration // page of 100 at n/2+1, fresh VLV context
	slapdRSS         int64
	heap             uint64 // the SCIM server's Go heap in use after the measures
}

// BenchmarkInboundScale seeds each size of SCIMBRIDGE_BENCH_SCALE into its own private slapd
// (slapadd, offline; mdb with dbnosync, accesslog and sssvlv as in the tests) and measures,
// through the SCIM server, what must not grow with the directory: the userName eq lookup p50
// (8 clients and 1) and the page of 100 in the middle of the directory (startIndex n/2+1) as a
// client paging through gets it: on the Virtual List View context its first page made. It
// prints each figure ÷ the first size's (goal ≤ 1.5 at 1,000,000 ÷ 100,000), slapd's RSS and
// the server's heap, and for reference the pages on a fresh context, for which slapd's sssvlv
// sorts every entry: those grow as n log n.
func BenchmarkInboundScale(b *testing.B) {
	sizes := scaleSizes()
	if len(sizes) == 0 {
		b.Skip("set SCIMBRIDGE_BENCH_SCALE=1 (100,000 and 1,000,000 users) or a list of sizes: make bench-scale")
	}
	if !ldaptest.Installed() {
		b.Skip(ldaptest.InstallHint)
	}
	var results []scaleResult
	for range b.N {
		results = results[:0]
		for _, n := range sizes {
			results = append(results, scaleRun(b, n))
		}
	}
	ref := results[0]
	ratio := func(a, b time.Duration) float64 { return float64(a) / float64(b) }
	w := os.Stdout
	fmt.Fprintf(w, "\nBenchmarkInboundScale: SCIM over loopback, private slapd per size (mdb dbnosync, sssvlv), %d clients unless noted\n", benchConcurrency)
	fmt.Fprintf(w, "  %-10s %9s %11s %11s %11s %14s %14s %10s %10s\n", "users", "slapadd", "lookup p50", "1 client", "page mid", "page 1, fresh", "mid, fresh", "slapd RSS", "heap")
	for _, r := range results {
		fmt.Fprintf(w, "  %-10d %8.0fs %11s %11s %11s %14s %14s %6.0f MiB %6.1f MiB\n", r.n, r.seed.Seconds(),
			r.lookup8.Round(time.Microsecond), r.lookup1.Round(time.Microsecond), r.pageMid.Round(time.Microsecond),
			r.pageFirst.Round(time.Microsecond), r.pageMidCold.Round(time.Microsecond), float64(r.slapdRSS)/(1<<20), float64(r.heap)/(1<<20))
	}
	for _, r := range results[1:] {
		fmt.Fprintf(w, "  %d ÷ %d: lookup p50 %.2f, 1 client %.2f, page at %d ÷ page at %d %.2f (goal <= 1.5 each); fresh context %.1f\n",
			r.n, ref.n, ratio(r.lookup8, ref.lookup8), ratio(r.lookup1, ref.lookup1), r.n/2+1, ref.n/2+1, ratio(r.pageMid, ref.pageMid), ratio(r.pageMidCold, ref.pageMidCold))
		b.ReportMetric(ratio(r.lookup8, ref.lookup8), fmt.Sprintf("lookup_p50_%d/%d", r.n, ref.n))
		b.ReportMetric(ratio(r.pageMid, ref.pageMid), fmt.Sprintf("page_mid_%d/%d", r.n, ref.n))
	}
}

func scaleRun(b *testing.B, n int) scaleResult {
	res := scaleResult{n: n}
	start := time.Now()
	// Seeded in the form BenchmarkInbound uses, with enough digits for the size.
	width := max(6, len(strconv.Itoa(n-1)))
	uid := func(i int) string { return fmt.Sprintf("u%0*d", width, i) }
	var seed strings.Builder
	seed.Grow(n * 200)
	for i := range n {
		u := uid(i)
		fmt.Fprintf(&seed, "dn: uid=%s,ou=people,dc=example,dc=org\nobjectClass: inetOrgPerson\nuid: %s\ncn: User %d\nsn: %d\ngivenName: User\nmail: %s@example.org\ntitle: Engineer\n\n", u, u, i, i, u)
	}
	slapd, err := ldaptest.Start(ldaptest.Options{Seed: seed.String()})
	if err != nil {
		b.Fatal(err)
	}
	defer slapd.Close()
	seed = strings.Builder{}
	res.seed = time.Since(start)

	ctx := context.Background()
	store := benchStore(b, slapd)
	defer store.Close()
	const token = "benchmark-token-0123456789"
	serve := func(pager ldapstore.PagerOptions) string {
		srv, err := inbound.New(ctx, inbound.Options{Directory: store, Logger: zerolog.Nop(), Pager: pager, Config: inbound.Config{
			BasePath: "/scim/v2", Users: inbound.Users{BaseDN: slapd.PeopleDN}, Groups: inbound.Groups{BaseDN: slapd.GroupsDN},
			Tokens: []inbound.Token{{Name: "bench", SHA256: sha256.Sum256([]byte(token))}},
		}})
		if err != nil {
			b.Fatal(err)
		}
		hs := httptest.NewServer(srv)
		b.Cleanup(func() { hs.Close(); srv.Close() })
		return hs.URL
	}
	warmURL, coldURL := serve(ldapstore.PagerOptions{}), serve(ldapstore.PagerOptions{Reuse: -1})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: benchConcurrency * 2}}
	base := warmURL
	get := func(path string) (int, []byte) {
		req, _ := http.NewRequest(http.MethodGet, base+"/scim/v2"+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, data
	}
	lookups := func(conc int) time.Duration {
		lat := latencies(conc, benchLookups, func(int) {
			code, data := get("/Users?filter=" + urlQuery(`userName eq "`+uid(rand.IntN(n))+`"`))
			if code != http.StatusOK || !bytes.Contains(data, []byte(`"totalResults":1`)) {
				b.Errorf("lookup: %d %.200s", code, data)
			}
		})
		sortDurations(lat)
		return pct(lat, 50)
	}
	lookups(benchConcurrency) // warm-up: the indexes' pages into slapd's memory
	res.lookup8 = lookups(benchConcurrency)
	res.lookup1 = lookups(1)
	page := func(startIndex int, before func()) time.Duration {
		var ds []time.Duration
		for range benchPageRepeats {
			if before != nil {
				before()
			}
			t0 := time.Now()
			code, data := get(fmt.Sprintf("/Users?startIndex=%d&count=100", startIndex))
			ds = append(ds, time.Since(t0))
			if code != http.StatusOK || !bytes.Contains(data, []byte(`"itemsPerPage":100`)) {
				b.Errorf("page %d: %d %.200s", startIndex, code, data)
			}
		}
		slices.Sort(ds)
		return ds[len(ds)/2]
	}
	first := func() { get("/Users?startIndex=1&count=100") }
	res.pageMid = page(n/2+1, first)
	base = coldURL
	res.pageFirst = page(1, nil)
	res.pageMidCold = page(n/2+1, nil)
	res.slapdRSS = processRSS(slapd.PID())
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	res.heap = ms.HeapInuse
	return res
}

// processRSS reads a process's resident set size in bytes (0 when unknown).
func processRSS(pid int) int64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}
