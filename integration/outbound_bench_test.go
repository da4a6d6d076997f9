package integration

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/ldapstore/ldaptest"
	"github.com/scimbridge/scimbridge/mapping"
	"github.com/scimbridge/scimbridge/targets/scim"
)

// benchUsers is the size of the initial sync: 100,000 by default (make bench), or
// SCIMBRIDGE_BENCH_USERS (make bench-scale: 1,000,000, with SCIMBRIDGE_BENCH_INSTANT_ONLY to
// skip the 20 ms target). SCIMBRIDGE_BENCH_TRACE prints the progress every half second.
func benchUsers() int {
	if v, err := strconv.Atoi(os.Getenv("SCIMBRIDGE_BENCH_USERS")); err == nil && v > 0 {
		return v
	}
	return 100_000
}

// BenchmarkOutbound measures, with the real binary, a real slapd and an in-memory SCIM target
// on loopback, all on the same machine:
//
//   - the target's raw accept rate: the SCIM client creating the same number of users with
//     the same concurrency, nothing else running;
//   - the initial sync rate of a new provisioner over a directory of that many users, from
//     the daemon's start to the last account created, and its ratio to the raw rate (goal
//     ≥ 0.8);
//   - the daemon's CPU time per user over the initial sync (user + system, from its start to
//     the last create), and its peak RSS, split at the end into anonymous memory and
//     file-backed pages (the state file, which bbolt maps), with the state file's size;
//   - LDAP write → target received latency (p50, p99) with the default poll_interval (1s).
//
// It runs two targets: one that answers at once (the ratio then compares the bridge's CPU
// with a bare HTTP client's on the same two cores) and one with a SaaS-like 20 ms service
// time, where the question is whether the bridge keeps the target busy.
//
// For looking into a run: SCIMBRIDGE_BENCH_TRACE prints the progress, the daemon's CPU and
// its RSS (anonymous, file-backed, peak) every quarter second; SCIMBRIDGE_BENCH_GCTRACE=F
// runs the daemon with GODEBUG=gctrace=1 and writes its stderr to F;
// SCIMBRIDGE_BENCH_KEEP_STATE=F copies the state file to F once the daemon stopped.
func BenchmarkOutbound(b *testing.B) {
	n := benchUsers()
	var seed strings.Builder
	// Each entry gets a random entryUUID, as a directory's users have: slapd's own are
	// time-based and begin with the clock's low 32 bits, so the ones slapadd makes in a minute
	// sort in the order it made them unless that counter wrapped (every 7 minutes), and the
	// state file's id maps, keyed by entryUUID, would be filled in key order — the best case.
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range n {
		u := [2]uint64{rng.Uint64(), rng.Uint64()}
		id := fmt.Sprintf("%08x-%04x-4%03x-%04x-%012x", u[0]>>32, u[0]>>16&0xffff, u[0]&0xfff, 0x8000|u[1]>>48&0x3fff, u[1]&0xffffffffffff)
		fmt.Fprintf(&seed, "dn: uid=b%06d,ou=people,dc=example,dc=org\nobjectClass: inetOrgPerson\nuid: b%06d\ncn: Bench %d\ngivenName: Bench\nsn: User%d\nmail: b%06d@example.org\ntitle: Engineer\nentryUUID: %s\n\n", i, i, i, i, i, id)
	}
	seedStart := time.Now()
	s := ldaptest.Private(b, ldaptest.Options{Seed: seed.String()})
	b.Logf("slapd seeded with %d users in %s", n, time.Since(seedStart).Round(time.Millisecond))
	fmt.Printf("outbound benchmark, %d users:\n", n)
	for _, sc := range []struct {
		name        string
		latency     time.Duration
		concurrency int
		measureLag  bool
		goal        float64
	}{
		{"instant target", 0, 8, true, 0.8},
		{"20ms target", 20 * time.Millisecond, 16, false, 0.95},
	} {
		if sc.latency > 0 && os.Getenv("SCIMBRIDGE_BENCH_INSTANT_ONLY") != "" {
			continue // make bench-scale: a million users at 700/s would take 25 minutes more
		}
		r := runOutboundScenario(b, s, n, sc.latency, sc.concurrency, sc.measureLag)
		ratio := r.syncRate / r.rawRate
		fmt.Printf("  %s, concurrency %d:\n", sc.name, sc.concurrency)
		fmt.Printf("    target raw accept rate     %8.0f creates/s\n", r.rawRate)
		fmt.Printf("    initial sync (bridge)      %8.0f users/s  (%s from daemon start to the last create)\n", r.syncRate, r.syncTime.Round(time.Millisecond))
		fmt.Printf("    ratio sync/raw             %8.2f  (goal >= %.2f)\n", ratio, sc.goal)
		fmt.Printf("    daemon CPU per user        %8.0f µs  (%.1f s of CPU for the sync)\n", r.cpu.Seconds()*1e6/float64(n), r.cpu.Seconds())
		perUser := func(d time.Duration) float64 { return d.Seconds() * 1e6 / float64(n) }
		fmt.Printf("    CPU per user, all processes %7.0f µs  sync: daemon %.0f + slapd %.0f + target %.0f; raw: client and target %.0f µs\n",
			perUser(r.cpu+r.slapdCPU+r.targetCPU), perUser(r.cpu), perUser(r.slapdCPU), perUser(r.targetCPU), perUser(r.rawCPU))
		fmt.Printf("    daemon peak RSS            %8.1f MiB  (at the end: %.1f MiB anonymous, %.1f MiB file-backed; state file %.1f MiB)\n",
			float64(r.rss)/(1<<20), float64(r.anon)/(1<<20), float64(r.file)/(1<<20), float64(r.stateFile)/(1<<20))
		if sc.measureLag {
			fmt.Printf("    LDAP write -> target       p50 %s  p99 %s  (%d single writes, poll_interval 1s)\n", r.p50.Round(time.Millisecond), r.p99.Round(time.Millisecond), r.writes)
			b.ReportMetric(float64(r.p50.Milliseconds()), "p50_ms")
			b.ReportMetric(float64(r.p99.Milliseconds()), "p99_ms")
			b.ReportMetric(ratio, "sync/raw_instant")
		} else {
			b.ReportMetric(ratio, "sync/raw_20ms")
		}
		b.ReportMetric(float64(r.rss)/(1<<20), "peak_rss_MiB")
		b.ReportMetric(r.cpu.Seconds()*1e6/float64(n), "cpu_us/user")
	}
}

type scenarioResult struct {
	rawRate, syncRate float64
	syncTime          time.Duration
	rss               int64
	anon, file        int64
	stateFile         int64
	cpu               time.Duration
	// slapdCPU and targetCPU are what slapd and this process (the target, and the loop
	// waiting for it) used over the sync; rawCPU is what this process (the client and the
	// target) used over the raw runs, per run.
	slapdCPU, targetCPU, rawCPU time.Duration
	p50, p99                    time.Duration
	writes                      int
}

func runOutboundScenario(b *testing.B, s *ldaptest.Server, n int, latency time.Duration, concurrency int, measureLag bool) scenarioResult {
	var res scenarioResult

	// 1. Raw accept rate.
	res.rawRate, res.rawCPU = rawAcceptRate(b, n, latency, concurrency)

	// 2. Initial sync through the bridge.
	target, err := newFastTarget(latency)
	require.NoError(b, err)
	defer target.Close()
	rec := recordTags(target)
	benchBinary(b) // built before the clock starts
	syncStart := time.Now()
	slapd0, self0 := ldaptest.ProcessCPU(s.PID()), ldaptest.ProcessCPU(os.Getpid())
	d := startBenchDaemon(b, s, "bench", target.URL, fmt.Sprintf("concurrency = %d\nrate_limit = 1000000\n", concurrency))
	deadline := time.Now().Add(45 * time.Minute)
	trace, lastTrace := os.Getenv("SCIMBRIDGE_BENCH_TRACE") != "", time.Now()
	for target.creates.Load() < int64(n) {
		if trace && time.Since(lastTrace) >= 250*time.Millisecond {
			lastTrace = time.Now()
			st := procStatus(d.cmd.Process.Pid)
			fmt.Printf("      %5.1fs  %d created, daemon CPU %.1f s, RSS anon %.1f MiB file %.1f MiB, peak %.1f MiB\n", time.Since(syncStart).Seconds(), target.creates.Load(), ldaptest.ProcessCPU(d.cmd.Process.Pid).Seconds(), float64(st["RssAnon"])/(1<<20), float64(st["RssFile"])/(1<<20), float64(st["VmHWM"])/(1<<20))
		}
		if time.Now().After(deadline) {
			b.Fatalf("initial sync incomplete: %d of %d\n%s", target.creates.Load(), n, d.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	res.syncTime = time.Since(syncStart)
	res.cpu = ldaptest.ProcessCPU(d.cmd.Process.Pid)
	res.slapdCPU = ldaptest.ProcessCPU(s.PID()) - slapd0
	res.targetCPU = ldaptest.ProcessCPU(os.Getpid()) - self0
	res.syncRate = float64(n) / res.syncTime.Seconds()
	require.Equal(b, n, target.count("Users"))
	require.EqualValues(b, n, target.creates.Load(), "every user created once")

	// 3. Latency: single writes, one at a time, on the running daemon.
	if measureLag {
		conn, err := s.Root()
		require.NoError(b, err)
		defer conn.Close()
		const writes = 300
		lat := writeLatency(b, conn, rec, writes, func(i int) string {
			return fmt.Sprintf("uid=b%06d,ou=people,dc=example,dc=org", (i*7919)%n)
		})
		res.p50, res.p99, res.writes = lat[len(lat)/2], lat[len(lat)*99/100], writes
	}
	res.rss = peakRSS(d.cmd.Process.Pid)
	st := procStatus(d.cmd.Process.Pid)
	res.anon, res.file = st["RssAnon"], st["RssFile"]
	if fi, err := os.Stat(filepath.Join(d.dir, "state", "state.db")); err == nil {
		res.stateFile = fi.Size()
	}
	require.NoError(b, d.cmd.Process.Signal(os.Interrupt))
	_ = d.cmd.Wait()
	if keep := os.Getenv("SCIMBRIDGE_BENCH_KEEP_STATE"); keep != "" {
		data, err := os.ReadFile(filepath.Join(d.dir, "state", "state.db"))
		require.NoError(b, err)
		require.NoError(b, os.WriteFile(keep, data, 0o600))
	}
	return res
}

// rawAcceptRate measures how fast a fresh fastTarget accepts n creates from the SCIM client
// with concurrency workers: the request the bridge sends for a new user (POST of a rendered
// default-mapping user, over one reused client, no lookup first since a listed-empty target
// needs none). A run shorter than rawMinTime (the instant target below ~100k users: about a
// second) is repeated on a fresh target, up to rawMaxRuns times, and the median rate is kept,
// so one run's warm-up or a GC cycle does not decide the baseline.
//
// It also returns the CPU this process (the client and the target) used per run.
func rawAcceptRate(b *testing.B, n int, latency time.Duration, concurrency int) (float64, time.Duration) {
	const (
		rawMinTime = 5 * time.Second
		rawMaxRuns = 5
	)
	var (
		rates []float64
		spent time.Duration
	)
	cpu0 := ldaptest.ProcessCPU(os.Getpid())
	for len(rates) < rawMaxRuns && (len(rates) == 0 || spent < rawMinTime) {
		d := rawRun(b, n, latency, concurrency)
		spent += d
		rates = append(rates, float64(n)/d.Seconds())
	}
	cpu := (ldaptest.ProcessCPU(os.Getpid()) - cpu0) / time.Duration(len(rates))
	slices.Sort(rates)
	if len(rates) > 1 {
		b.Logf("raw accept rate, %d runs: %.0f", len(rates), rates)
	}
	return rates[len(rates)/2], cpu
}

func rawRun(b *testing.B, n int, latency time.Duration, concurrency int) time.Duration {
	ctx := context.Background()
	raw, err := newFastTarget(latency)
	require.NoError(b, err)
	defer raw.Close()
	cfg := scim.DefaultConfig()
	cfg.URL, cfg.Auth = raw.URL, scim.AuthNone
	client, err := scim.New(cfg, "raw", zerolog.Nop())
	require.NoError(b, err)
	defer client.Close()
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range concurrency {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				uid := fmt.Sprintf("b%06d", i)
				// What the default user mapping renders for a seeded entry.
				_, err := client.Apply(ctx, mapping.Op{Kind: mapping.KindUser, Type: mapping.OpCreate, Resource: map[string]any{
					"userName":    uid,
					"externalId":  fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i),
					"name":        map[string]any{"givenName": "Bench", "familyName": fmt.Sprintf("User%d", i), "formatted": fmt.Sprintf("Bench %d", i)},
					"displayName": fmt.Sprintf("Bench %d", i), "title": "Engineer", "active": true,
					"emails": []any{map[string]any{"type": "work", "value": uid + "@example.org"}},
				}})
				if err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	return time.Since(start)
}

// peakRSS reads a process's high-water resident set size in bytes.
func peakRSS(pid int) int64 { return procStatus(pid)["VmHWM"] }

// procStatus reads the sizes (kB fields, returned in bytes) of a process's /proc status.
func procStatus(pid int) map[string]int64 {
	out := map[string]int64{}
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return out
	}
	for _, line := range strings.Split(string(raw), "\n") {
		name, rest, ok := strings.Cut(line, ":")
		f := strings.Fields(rest)
		if !ok || len(f) != 2 || f[1] != "kB" {
			continue
		}
		kb, _ := strconv.ParseInt(f[0], 10, 64)
		out[name] = kb << 10
	}
	return out
}
