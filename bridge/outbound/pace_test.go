package outbound

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
	"golang.org/x/time/rate"

	"github.com/scimbridge/scimbridge/mapping"
	"github.com/scimbridge/scimbridge/targets"
	"github.com/scimbridge/scimbridge/targets/scim"
	"github.com/scimbridge/scimbridge/targets/scimserver"
)

// drive sends requests through p from workers goroutines for d, each answered by answer after
// latency, and returns how many were sent.
func drive(p *pacer, workers int, d, latency time.Duration, answer func(n int64) targets.Observation) int64 {
	var n atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				tk, err := p.Wait(ctx)
				if err != nil {
					return
				}
				time.Sleep(latency)
				o := answer(n.Add(1))
				o.Latency = latency
				p.Done(tk, o)
			}
		})
	}
	wg.Wait()
	return n.Load()
}

func ok200(int64) targets.Observation { return targets.Observation{Status: 200, Remaining: -1} }

// TestPacerFindsTheRate checks the pacer's rules one by one, in synctest's virtual time: slow
// start up to the cap, a decrease on 429 (once per burst of 429s), Retry-After holding every
// request, a quota spread or waited out, and latency rising well above the baseline.
func TestPacerFindsTheRate(t *testing.T) {
	t.Run("slow start stops at the cap", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			p := newPacer(300, true, nil)
			require.InDelta(t, startRate, p.current(), 0)
			sent := drive(p, 8, 10*time.Second, time.Millisecond, ok200)
			st := p.status(time.Now())
			require.Equal(t, PaceAdaptive, st.Mode)
			require.InDelta(t, 300.0, st.Current, 0.001, "reached rate_limit and no further")
			require.LessOrEqual(t, float64(sent), 300.0*10+float64(burstFor(300)), "never faster than the cap")
		})
	})
	t.Run("429 slows down once per burst, Retry-After holds everything", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			p := newPacer(0, true, nil)
			drive(p, 4, 2*time.Second, time.Millisecond, ok200)
			before := p.current()
			require.Greater(t, before, startRate, "slow start raised the rate")
			tk1, err := p.Wait(t.Context())
			require.NoError(t, err)
			tk2, err := p.Wait(t.Context())
			require.NoError(t, err)
			p.Done(tk1, targets.Observation{Status: 429, RetryAfter: 3 * time.Second, Remaining: -1})
			after := p.current()
			require.Less(t, after, before)
			require.LessOrEqual(t, after, backoffFactor*before+0.001)
			require.Equal(t, Rate429, p.status(time.Now()).Reason)
			p.Done(tk2, targets.Observation{Status: 429, RetryAfter: 3 * time.Second, Remaining: -1})
			require.InDelta(t, after, p.current(), 0, "a 429 to a request sent before the decrease does not decrease again")

			start := time.Now()
			_, err = p.Wait(t.Context())
			require.NoError(t, err)
			require.GreaterOrEqual(t, time.Since(start), 3*time.Second, "Retry-After obeyed")
			require.False(t, p.status(time.Now()).PausedUntil.After(time.Now()))

			// Growth resumes, slowly near the rate that failed.
			drive(p, 4, 3*time.Second, time.Millisecond, ok200)
			require.Greater(t, p.current(), after)
			require.Less(t, p.current(), before)
		})
	})
	t.Run("503 and bad gateways slow down, other errors do not", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			for _, code := range []int{503, 502, 504} {
				p := newPacer(0, true, nil)
				tk, _ := p.Wait(t.Context())
				p.Done(tk, targets.Observation{Status: code, Remaining: -1})
				require.Less(t, p.current(), startRate, "status %d", code)
			}
			for _, code := range []int{400, 404, 409, 500} {
				p := newPacer(0, true, nil)
				tk, _ := p.Wait(t.Context())
				p.Done(tk, targets.Observation{Status: code, Remaining: -1})
				require.InDelta(t, startRate, p.current(), 0, "status %d", code)
			}
		})
	})
	t.Run("an announced quota is spread, then waited out", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			p := newPacer(0, true, nil)
			tk, _ := p.Wait(t.Context())
			p.Done(tk, targets.Observation{Status: 200, Remaining: 5, Reset: 10 * time.Second})
			require.InDelta(t, 1.0, p.current(), 0.001, "5 left for 10s: spread at the floor of 1/s")
			require.Equal(t, RateQuota, p.status(time.Now()).Reason)
			tk, _ = p.Wait(t.Context())
			p.Done(tk, targets.Observation{Status: 200, Remaining: 0, Reset: 4 * time.Second})
			start := time.Now()
			_, err := p.Wait(t.Context())
			require.NoError(t, err)
			require.GreaterOrEqual(t, time.Since(start), 4*time.Second, "an exhausted quota waits for its reset")
		})
	})
	t.Run("rising latency slows down", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			var mu sync.Mutex
			var last, before, after float64
			p := newPacer(0, true, nil)
			last = p.current()
			p.moved = func(r float64, reason string) {
				mu.Lock()
				defer mu.Unlock()
				if reason == RateLatency && after == 0 {
					before, after = last, r
				}
				last = r
			}
			drive(p, 4, time.Second, 5*time.Millisecond, ok200)
			drive(p, 16, 2*time.Second, 400*time.Millisecond, ok200)
			mu.Lock()
			defer mu.Unlock()
			require.Positive(t, after, "latency 80 times the baseline slowed the pace")
			require.InDelta(t, backoffFactor*before, after, 0.001, "a step down from the rate, not to the (demand-bound) accepted rate")
		})
	})
	t.Run("a fixed quota found twice levels off below it", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			// A target taking 20 requests/s (bucket of 2), 429 + Retry-After: 1 beyond: after
			// the slow start's overshoot, the pacer meets the same limit again and settles
			// under it, instead of pausing a second for every approach to it.
			quota := rate.NewLimiter(20, 2)
			var limited atomic.Int64
			answer := func(int64) targets.Observation {
				if !quota.Allow() {
					limited.Add(1)
					return targets.Observation{Status: 429, RetryAfter: time.Second, Remaining: -1}
				}
				return targets.Observation{Status: 200, Remaining: -1}
			}
			p := newPacer(0, true, nil)
			drive(p, 16, 20*time.Second, 5*time.Millisecond, answer)
			p.mu.Lock()
			require.InDelta(t, knownLimitMargin*p.lastFail, p.wmax, 0.001, "the second decrease near the first found a known limit")
			p.mu.Unlock()
			limited.Store(0)
			sent := drive(p, 16, 60*time.Second, 5*time.Millisecond, answer)
			accepted := sent - limited.Load()
			require.GreaterOrEqual(t, float64(accepted)/60, 0.85*20, "accepted %d of %d", accepted, sent)
			require.LessOrEqual(t, float64(limited.Load()), 0.02*float64(sent), "429s: %d of %d", limited.Load(), sent)
		})
	})
	t.Run("a fixed cap for targets that report nothing", func(t *testing.T) {
		p := newPacer(25, false, nil)
		tk, _ := p.Wait(t.Context())
		p.Done(tk, targets.Observation{Status: 429, Remaining: -1})
		require.InDelta(t, 25.0, p.current(), 0)
		require.Equal(t, PaceFixed, p.status(time.Now()).Mode)
		require.Equal(t, PaceNone, newPacer(0, false, nil).status(time.Now()).Mode)
	})
}

// rateLimitedTarget is a real SCIM server on loopback accepting perSecond requests per second
// (429 + Retry-After beyond), and the scim target type talking to it.
func rateLimitedTarget(t testing.TB, perSecond float64, burst int) (*scimserver.Server, targets.Target) {
	srv := scimserver.NewServer(scimserver.Options{BearerTokens: []string{"tok"}})
	t.Cleanup(srv.Close)
	srv.SetRateLimit(perSecond, burst, false)
	c := scim.DefaultConfig()
	c.URL, c.Token = srv.URL, "tok"
	c.Timeout = targets.Duration{Duration: 10 * time.Second}
	tg, err := c.Open("app", zerolog.Nop())
	require.NoError(t, err)
	t.Cleanup(func() { _ = tg.(targets.Closer).Close() })
	return srv, tg
}

// TestAdaptivePaceAgainstARateLimitedTarget runs the engine, without rate_limit, against a
// real SCIM server that answers 429 with Retry-After beyond 40 requests/s: the 429s and their
// Retry-After reach the pacer and slow it down, and every user arrives exactly once. With rate_limit set, the requests never go faster than it. (The pacer's rules
// themselves are checked in virtual time by TestPacerFindsTheRate: timing on a loaded
// machine says nothing reliable.)
func TestAdaptivePaceAgainstARateLimitedTarget(t *testing.T) {
	srv, tg := rateLimitedTarget(t, 40, 4)
	h := newHarness(t, Spec{Target: tg, MaxAttempts: 50, MinRetryDelay: 10 * time.Millisecond, MaxRetryDelay: 2 * time.Second})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	h.run(ctx)
	const n = 150
	for i := range n {
		h.change(user(fmt.Sprintf("u%03d", i)))
	}
	h.waitIdleFor(2 * time.Minute)
	require.Len(t, srv.Users(), n, "every user created once")
	require.Empty(t, mustDeadLetters(t, h))
	require.Positive(t, srv.Throttled(), "the pace went past the target's limit at first")
	p := h.e.Provisioners()[0]
	st := p.pace.status(time.Now())
	require.Equal(t, PaceAdaptive, st.Mode)
	require.Positive(t, metricValue(t, h, "scimbridge_outbound_rate_changes_total", "429"), "a 429 slowed the pace down")

	require.Positive(t, metricValue(t, h, "scimbridge_outbound_rate_changes_total", RateRetryAfter), "the target's Retry-After reached the pacer")

	t.Run("rate_limit caps", func(t *testing.T) {
		srv, tg := rateLimitedTarget(t, 0, 0)
		h := newHarness(t, Spec{Target: tg, RateLimit: 20, MaxAttempts: 3})
		start := time.Now()
		h.run(t.Context())
		for i := range 60 {
			h.change(user(fmt.Sprintf("c%03d", i)))
		}
		h.waitIdleFor(time.Minute)
		elapsed := time.Since(start)
		require.Len(t, srv.Users(), 60)
		// Every request left after start and arrived before now: however the machine's load
		// bunched them on the way, no more than the cap allows in that time.
		require.LessOrEqual(t, float64(len(srv.Requests())), 20*elapsed.Seconds()+float64(burstFor(20)))
		require.LessOrEqual(t, h.e.Provisioners()[0].pace.current(), 20.0)
	})
}

// waitIdleFor is waitIdle with a longer deadline.
func (h *harness) waitIdleFor(d time.Duration) {
	h.t.Helper()
	deadline := time.Now().Add(d)
	for !Idle(h.e.Progress(nil, nil)) || h.pending() > 0 {
		if time.Now().After(deadline) {
			h.t.Fatalf("not idle: %+v", h.e.Progress(nil, nil))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// metricValue sums the series of a counter whose labels include value.
func metricValue(t testing.TB, h *harness, name, value string) float64 {
	mfs, err := h.reg.Gather()
	require.NoError(t, err)
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetValue() == value {
					sum += m.GetCounter().GetValue()
				}
			}
		}
	}
	return sum
}

// BenchmarkAdaptivePace pushes users with the defaults (no rate_limit, no concurrency) to a
// real SCIM server on loopback that accepts R requests/s and answers 429 with Retry-After
// beyond, for R = 20 and R = 500 (goal: at least 0.8 × R, at most 2% of requests answered
// 429); and, for reference, against the same server without a limit.
// SCIMBRIDGE_BENCH_PACE_USERS sets the number of users (default 10,000 at R = 500 and
// 2,000 at R = 20, 100 s).
func BenchmarkAdaptivePace(b *testing.B) {
	for _, r := range []float64{0, 20, 500} {
		n := 10_000
		if r > 0 && r < 100 {
			n = 2_000
		}
		if v, err := strconv.Atoi(os.Getenv("SCIMBRIDGE_BENCH_PACE_USERS")); err == nil && v > 0 {
			n = v
		}
		name := fmt.Sprintf("R=%.0f", r)
		if r == 0 {
			name = "unlimited"
		}
		b.Run(name, func(b *testing.B) {
			for range b.N {
				srv, tg := rateLimitedTarget(b, r, max(1, int(r/10)))
				h := newHarness(b, Spec{Target: tg, MaxAttempts: 50})
				// The users are known to be new (a reconcile listing would spare the
				// lookups): POST only, one request per user.
				h.e.Provisioners()[0].setListing(&listing{users: map[string]string{}, groups: map[string]string{}, at: time.Now()})
				ctx, cancel := context.WithCancel(b.Context())
				batch := make([]mapping.Entry, 0, 500)
				for i := range n {
					batch = append(batch, user(fmt.Sprintf("b%06d", i)))
					if len(batch) == cap(batch) {
						h.change(batch...)
						batch = batch[:0]
					}
				}
				h.change(batch...)
				start := time.Now()
				h.run(ctx)
				h.waitIdleFor(time.Hour)
				el := time.Since(start)
				cancel()
				total := len(srv.Requests())
				got := float64(total-int(srv.Throttled())) / el.Seconds()
				if r == 0 {
					fmt.Printf("adaptive pace, no rate limit (what the bridge and the server reach on this machine), %d users: %.1f req/s, %s, final pace %.1f/s\n",
						n, got, el.Round(time.Millisecond), h.e.Provisioners()[0].pace.current())
					b.ReportMetric(got, "req/s")
					continue
				}
				fmt.Printf("adaptive pace, R=%.0f req/s, %d users: %.1f accepted req/s = %.2f × R (goal >= 0.8), %d of %d requests answered 429 = %.2f%% (goal <= 2%%), %s, final pace %.1f/s\n",
					r, n, got, got/r, srv.Throttled(), total, 100*float64(srv.Throttled())/float64(total), el.Round(time.Millisecond), h.e.Provisioners()[0].pace.current())
				b.ReportMetric(got/r, "x_R")
				b.ReportMetric(100*float64(srv.Throttled())/float64(total), "pct_429")
				require.Len(b, srv.Users(), n)
			}
		})
	}
}

// setListing installs l as if a reconcile pass had listed the target.
func (p *Provisioner) setListing(l *listing) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.listing = l
}
