package outbound

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"slices"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/scimbridge/scimbridge/mapping"
	"github.com/scimbridge/scimbridge/targets"
)

// The adaptive pacer finds a target's capacity by itself, per provisioner, the way TCP finds
// a path's: a slow start that doubles the rate while requests succeed, then a multiplicative
// decrease on a congestion signal (429, 503 and other overload answers, requests that get no
// answer, latency rising well above the target's usual), followed by CUBIC-like growth that
// is slow near the rate that last failed and speeds up away from it; a limit met twice at the
// same rate is a quota, and the growth levels off a little under it. Retry-After pauses the
// whole provisioner for that long; an announced quota (RateLimit-*, X-RateLimit-*) that is
// about to run out spreads what is left over the time to its reset, and a quota at 0 pauses
// until then. rate_limit, when set, caps the rate; without it AdaptiveCeiling does.
const (
	// AdaptiveCeiling is the highest rate, in requests per second, the pacer reaches when
	// rate_limit is not set.
	AdaptiveCeiling = 1000.0
	// DefaultConcurrency is the number of workers, and so the most requests in flight, when
	// concurrency is not set. The pacer's rate keeps the requests in flight at rate × latency.
	DefaultConcurrency = 16
	// startRate is where a new provisioner starts (at most its cap).
	startRate = 20.0
	// minRate is the lowest the pacer goes on congestion signals.
	minRate = 1.0
	// paceWindow is how often the pacer looks at what it observed and moves the rate.
	paceWindow = 250 * time.Millisecond
	// backoffFactor multiplies the accepted rate on a congestion signal.
	backoffFactor = 0.9
	// cubicK is how long, while the provisioner has more work than its rate lets through,
	// the rate takes to grow back to the rate that last failed.
	cubicK = 10 * time.Second
	// latencySamples is how many answers a window needs before its latency is judged.
	latencySamples = 8
	// latencyFloor is added to the threshold: below it, latency noise on a fast target (GC,
	// a loaded machine) is never a congestion signal.
	latencyFloor = 250 * time.Millisecond
	// baselineMaxAge is how long the lowest latency seen stays the baseline.
	baselineMaxAge = 30 * time.Second
	// knownLimitBand: a decrease at a rate within this fraction of the last one found the
	// same limit again (a target's fixed request quota, not passing congestion). The growth
	// then levels off at knownLimitMargin of it rather than at it: at the very limit, jitter
	// between requests alone draws 429s, each of which pauses the whole provisioner for the
	// target's Retry-After (a second at 20 requests/s is 20 requests lost).
	knownLimitBand   = 0.15
	knownLimitMargin = 0.95
	// probeStep is the least growth per window past the rate that last failed, as a fraction
	// of the rate.
	probeStep = 0.005
)

// Reasons the pacer's rate moved, for status, metrics and logs.
const (
	RateStart      = "start"
	RateSlowStart  = "slow_start"
	RateIncrease   = "increase"
	Rate429        = "429"
	Rate503        = "503"
	Rate5xx        = "5xx"
	RateLatency    = "latency"
	RateRetryAfter = "retry_after"
	RateQuota      = "quota"
)

// cubicC is the CUBIC constant for cubicK: rate(t) = wmax·(1 + c·(t-K)³), so that
// rate(0) = backoffFactor·wmax.
var cubicC = (1 - backoffFactor) / math.Pow(cubicK.Seconds(), 3)

// Pacing modes for status.
const (
	PaceAdaptive = "adaptive"
	PaceFixed    = "fixed"
	PaceNone     = "unlimited"
)

// RateStatus is the pacer's state for status.
type RateStatus struct {
	// Mode is adaptive (the target reports its answers), fixed (at rate_limit) or unlimited.
	Mode string `json:"mode"`
	// Current is the rate in requests per second (0 when unlimited).
	Current float64 `json:"current"`
	// Ceiling is the cap: rate_limit, or AdaptiveCeiling.
	Ceiling float64 `json:"ceiling,omitempty"`
	// Reason is why the rate last moved, and Since when.
	Reason string    `json:"reason,omitempty"`
	Since  time.Time `json:"since,omitzero"`
	// PausedUntil is set while the target asked to wait (Retry-After, an exhausted quota).
	PausedUntil time.Time `json:"paused_until,omitzero"`
}

// pacer paces one provisioner's requests. It implements targets.Pacer.
type pacer struct {
	lim      *rate.Limiter
	adaptive bool
	ceiling  float64
	// moved is called (outside the lock) when the rate moves: metrics and logs.
	moved func(rate float64, reason string)

	mu         sync.Mutex
	rate       float64
	slowStart  bool
	epoch      uint64
	wmax       float64
	lastFail   float64       // the rate the last decrease found (wmax before the margin)
	grow       time.Duration // time spent limited since the last decrease
	k          time.Duration // when the growth reaches wmax again
	pause      time.Time
	pauseStart time.Time
	pausedDone time.Duration // paused time of the pauses over: the accepted-rate clock skips it
	reason     string
	since      time.Time

	quotaCap   float64
	quotaUntil time.Time

	winStart time.Time
	sent     int // requests let go in the window
	waited   int // of which had to wait for the rate
	lat      []time.Duration
	baseline time.Duration
	baseAt   time.Time

	origin  time.Time // of the accepted-rate clock
	acc     [30]int   // accepted answers per 100 ms of unpaused time, the last 3 s
	accSlot int64
}

// newPacer returns a pacer capped at limit requests per second (0: no cap). An adaptive pacer
// starts slow and finds the rate; a fixed one sends at the cap.
func newPacer(limit float64, adaptive bool, moved func(float64, string)) *pacer {
	p := &pacer{adaptive: adaptive, moved: moved, reason: RateStart, since: time.Now()}
	switch {
	case adaptive:
		p.ceiling = AdaptiveCeiling
		if limit > 0 {
			p.ceiling = limit
		}
		p.rate, p.slowStart = min(startRate, p.ceiling), true
	case limit > 0:
		p.ceiling, p.rate = limit, limit
	}
	if p.rate > 0 {
		p.lim = rate.NewLimiter(rate.Limit(p.rate), burstFor(p.rate))
	} else {
		p.lim = rate.NewLimiter(rate.Inf, 1)
	}
	p.winStart, p.origin = p.since, p.since
	return p
}

// burstFor lets through up to 50 ms worth of requests at once.
func burstFor(r float64) int { return max(1, int(r/20)) }

// status reports the pacer for status.
func (p *pacer) status(now time.Time) RateStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := RateStatus{Mode: PaceNone, Current: p.rate, Ceiling: p.ceiling, Reason: p.reason, Since: p.since}
	switch {
	case p.adaptive:
		s.Mode = PaceAdaptive
	case p.rate > 0:
		s.Mode = PaceFixed
	}
	if p.pause.After(now) {
		s.PausedUntil = p.pause
	}
	return s
}

// current is the rate now, 0 when unlimited.
func (p *pacer) current() float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rate
}

// Wait blocks until a request may leave: after any pause the target asked for, at the rate.
func (p *pacer) Wait(ctx context.Context) (targets.Ticket, error) {
	if err := ctx.Err(); err != nil {
		return targets.Ticket{}, fmt.Errorf("outbound: %w", err)
	}
	waited := false
	for {
		p.mu.Lock()
		pause := p.pause
		p.mu.Unlock()
		if d := time.Until(pause); d > 0 {
			if err := sleepCtx(ctx, d); err != nil {
				return targets.Ticket{}, err
			}
			// A turn taken before the pause is spent: the requests held by it leave at the
			// pace afterwards, not all at once when it ends.
			waited = false
			continue
		}
		if waited {
			break
		}
		// Not lim.Wait: it answers "would exceed context deadline" without ctx.Err(), which
		// targets.Pacer's contract needs; a reservation always succeeds (burst ≥ 1, one token).
		r := p.lim.Reserve()
		d := r.Delay()
		if d <= 0 {
			break
		}
		if err := sleepCtx(ctx, d); err != nil {
			r.Cancel()
			return targets.Ticket{}, err
		}
		// A pause that began while this request waited for its turn holds it too.
		waited = true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sent++
	if waited {
		p.waited++
	}
	return targets.Ticket{Epoch: p.epoch}, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return fmt.Errorf("outbound: %w", ctx.Err())
	case <-t.C:
		return nil
	}
}

// Done learns from one answer.
func (p *pacer) Done(t targets.Ticket, o targets.Observation) {
	if o.Canceled || !p.adaptive {
		return
	}
	now := time.Now()
	p.mu.Lock()
	var moved []string
	signal := ""
	switch o.Status {
	case http.StatusTooManyRequests:
		signal = Rate429
	case http.StatusServiceUnavailable:
		signal = Rate503
	case http.StatusBadGateway, http.StatusGatewayTimeout:
		signal = Rate5xx
	case 0:
		// No answer: a target that is down (the circuit breaker's business) or one too
		// busy to answer in time, which its latency tells.
		p.sample(t, o.Latency)
	default:
		p.accept(now)
		p.sample(t, o.Latency)
	}
	decreased := signal != "" && t.Epoch == p.epoch
	if decreased {
		// Before the pause below: what the target accepted lately is measured on the clock
		// that skips paused time.
		p.decrease(signal, now)
		moved = append(moved, signal)
	}
	if o.RetryAfter > 0 && o.Status >= 300 { // every signal is a status ≥ 429
		if p.pauseUntil(now, now.Add(o.RetryAfter)) {
			if !decreased {
				p.setReason(RateRetryAfter, now)
			}
			moved = append(moved, RateRetryAfter)
		}
	}
	if o.Remaining >= 0 && o.Reset > 0 {
		switch {
		case o.Remaining == 0:
			if p.pauseUntil(now, now.Add(o.Reset)) {
				p.setReason(RateQuota, now)
				moved = append(moved, RateQuota)
			}
		case float64(o.Remaining) < p.rate:
			// Less than a second's worth is left: spread it over the time to the reset.
			p.quotaCap = max(minRate, float64(o.Remaining)/o.Reset.Seconds())
			p.quotaUntil = now.Add(o.Reset)
			if p.rate > p.quotaCap {
				p.setRate(p.quotaCap, RateQuota, now)
				moved = append(moved, RateQuota)
			}
		}
	}
	if r := p.tick(now); r != "" {
		moved = append(moved, r)
	}
	rt := p.rate
	p.mu.Unlock()
	if p.moved != nil {
		for _, r := range moved {
			p.moved(rt, r)
		}
	}
}

// sample keeps the latency of a request sent at the current pace: answers to requests sent
// before the last decrease say nothing about it (and would slow it down again and again).
func (p *pacer) sample(t targets.Ticket, d time.Duration) {
	if t.Epoch == p.epoch && len(p.lat) < 64 {
		p.lat = append(p.lat, d)
	}
}

// pauseUntil holds every request until t; it reports whether the pause grew.
func (p *pacer) pauseUntil(now, t time.Time) bool {
	if !t.After(p.pause) {
		return false
	}
	if !p.pause.After(now) {
		// The last pause is over: its time is spent; a new one starts now.
		p.pausedDone += p.pause.Sub(p.pauseStart)
		p.pauseStart = now
	}
	p.pause = t
	return true
}

// slot is the accepted-rate clock's 100 ms slot for now: wall time less the time spent
// paused, so that a pause does not count as time in which the target accepted nothing.
func (p *pacer) slot(now time.Time) int64 {
	paused := p.pausedDone
	if now.After(p.pauseStart) {
		end := p.pause
		if now.Before(end) {
			end = now
		}
		paused += end.Sub(p.pauseStart)
	}
	return int64((now.Sub(p.origin) - paused) / (100 * time.Millisecond))
}

func (p *pacer) advance(now time.Time) {
	s := p.slot(now)
	if s <= p.accSlot {
		return
	}
	if s-p.accSlot >= int64(len(p.acc)) {
		clear(p.acc[:])
	} else {
		for i := p.accSlot + 1; i <= s; i++ {
			p.acc[i%int64(len(p.acc))] = 0
		}
	}
	p.accSlot = s
}

func (p *pacer) accept(now time.Time) {
	p.advance(now)
	p.acc[p.accSlot%int64(len(p.acc))]++
}

// accepted is the rate of answers accepted lately, on the clock that skips paused time: over
// the last half second at high rates — recent enough to tell, at the end of a slow start, the
// rate the target took rather than the ramp that led there — and over up to 3 s at low rates,
// so that about 30 answers smooth the count. The current slot, partly over, is left out.
func (p *pacer) accepted(now time.Time) float64 {
	p.advance(now)
	slots := int64(5)
	if p.rate > 0 {
		slots = min(max(int64(math.Ceil(300/p.rate)), slots), int64(len(p.acc))-1)
	}
	n := 0
	for i := int64(1); i <= slots; i++ {
		n += p.acc[(p.accSlot-i+int64(len(p.acc)))%int64(len(p.acc))]
	}
	return float64(n) * 10 / float64(slots) // per second
}

// decrease slows down after a congestion signal: to backoffFactor of what the target
// accepted lately (or of the rate, when that is lower). The rate to grow back to (CUBIC's
// wmax) is that accepted rate (at the end of the slow start at least the last rate that
// passed); when the target accepted nothing (an outage rather than congestion) it stays what it was, so the
// rate comes back quickly once the target does.
func (p *pacer) decrease(reason string, now time.Time) {
	base := p.rate
	acc := p.accepted(now)
	if reason == RateLatency {
		// Slow answers say the target (or the path to it, or this machine) is busy, not
		// what it accepts: the accepted rate is the demand, and following it down would
		// spiral. Step down from the rate.
		acc = 0
	}
	switch {
	case acc >= minRate && p.slowStart:
		// The accepted rate still lags the ramp: the rate before the one that failed (half
		// of it, which passed) bounds the target's from below.
		base = max(min(base, acc), base/2)
		p.wmax = base
	case acc >= minRate:
		base = min(base, acc)
		p.wmax = base
		// (Latency decreases never get here: acc is 0 for them, so they never find a quota.)
		if p.lastFail > 0 && math.Abs(base-p.lastFail) <= knownLimitBand*p.lastFail {
			p.wmax = knownLimitMargin * base
		}
		p.lastFail = base
	case p.wmax == 0:
		p.wmax = base
	}
	p.slowStart = false
	p.grow = 0
	p.epoch++
	r := max(minRate, backoffFactor*base)
	// Growth starts at r and reaches wmax after k: rate(t) = wmax·(1 + c·(t-k)³).
	p.k = time.Duration(math.Cbrt(max(0, 1-r/p.wmax)/cubicC) * float64(time.Second))
	p.setRate(r, reason, now)
	p.resetWindow(now)
}

// tick closes the window when it is over: a window whose latency rose well above the
// baseline slows down; one in which requests waited for the rate, without congestion, speeds
// up. It returns the reason when the rate moved.
func (p *pacer) tick(now time.Time) string {
	if now.Sub(p.winStart) < paceWindow {
		return ""
	}
	defer p.resetWindow(now)
	if len(p.lat) >= latencySamples {
		slices.Sort(p.lat)
		med := p.lat[len(p.lat)/2]
		if p.baseline == 0 || med < p.baseline || now.Sub(p.baseAt) > baselineMaxAge {
			p.baseline, p.baseAt = med, now
		}
		if med > 3*p.baseline+latencyFloor {
			p.decrease(RateLatency, now)
			return RateLatency
		}
	}
	if now.Before(p.pause) || p.sent == 0 || p.waited*4 < p.sent {
		return "" // the rate did not hold anything back: no reason to raise it
	}
	limit := p.ceiling
	if now.Before(p.quotaUntil) {
		limit = min(limit, p.quotaCap)
	}
	if p.rate >= limit {
		return ""
	}
	var next float64
	reason := RateIncrease
	if p.slowStart {
		next, reason = 2*p.rate, RateSlowStart
	} else {
		p.grow += min(now.Sub(p.winStart), 2*paceWindow) // an idle spell is no growth
		t := (p.grow - p.k).Seconds()
		next = p.wmax * (1 + cubicC*t*t*t)
		// Up to wmax the curve alone: it levels off just under the rate that failed. Past it,
		// at least a small step (a proportional one: a fixed quarter request per window took a
		// 20/s target from 18.6 to past its limit in two seconds), at most one and a half times
		// per window.
		step := 0.0
		if t >= 0 {
			step = p.rate * probeStep
		}
		next = min(max(next, p.rate+step), 1.5*p.rate)
	}
	p.setRate(min(next, limit), reason, now)
	return reason
}

func (p *pacer) resetWindow(now time.Time) {
	p.winStart, p.sent, p.waited, p.lat = now, 0, 0, p.lat[:0]
}

func (p *pacer) setRate(r float64, reason string, now time.Time) {
	p.rate = r
	p.lim.SetLimitAt(now, rate.Limit(r))
	p.lim.SetBurstAt(now, burstFor(r))
	p.setReason(reason, now)
}

func (p *pacer) setReason(reason string, now time.Time) {
	p.reason, p.since = reason, now
}

// rateMoved updates the metrics when the pacer moves, and logs decreases (increases are
// frequent and expected).
func (p *Provisioner) rateMoved(r float64, reason string) {
	p.e.m.rate.WithLabelValues(p.spec.Name).Set(r)
	p.e.m.rateMoves.WithLabelValues(p.spec.Name, reason).Inc()
	switch reason {
	case RateSlowStart, RateIncrease:
	default:
		p.log.Debug().Float64("rate", r).Str("reason", reason).Msg("pace slowed down")
	}
}

// paceCtx prepares ctx for one call to the target: a target that reports its requests gets
// the pacer in ctx and waits before each of them; any other waits here, once per call.
func (p *Provisioner) paceCtx(ctx context.Context) (context.Context, error) {
	if p.paced {
		return targets.WithPacer(ctx, p.pace), nil
	}
	if _, err := p.pace.Wait(ctx); err != nil {
		return nil, err
	}
	return ctx, nil
}

// apply sends op to the target at the provisioner's pace.
func (p *Provisioner) apply(ctx context.Context, op mapping.Op) (targets.Result, error) {
	ctx, err := p.paceCtx(ctx)
	if err != nil {
		return targets.Result{}, err
	}
	return p.spec.Target.Apply(ctx, op)
}

// lookup finds a resource on the target at the provisioner's pace.
func (p *Provisioner) lookup(ctx context.Context, kind mapping.Kind, attr, value string) (targets.Result, bool, error) {
	ctx, err := p.paceCtx(ctx)
	if err != nil {
		return targets.Result{}, false, err
	}
	return p.spec.Target.Find(ctx, kind, attr, value)
}

// listCtx is ctx for a listing of the target: paced request by request when the target
// reports them (a listing of a target that does not is not paced).
func (p *Provisioner) listCtx(ctx context.Context) context.Context {
	if p.paced {
		return targets.WithPacer(ctx, p.pace)
	}
	return ctx
}
