package outbound

import (
	"math/rand/v2"
	"sync"
	"time"
)

// health is a provisioner's circuit breaker on its target: after a run of transient failures
// with no success between them (the target is down, or answers 5xx to everything), the
// provisioner pauses with jittered exponential backoff instead of burning every item's
// attempts; then one probe delivery decides whether to resume. A Retry-After from the target
// pauses the whole provisioner for that long: a rate limit applies to every request.
type health struct {
	threshold  int
	min, max   time.Duration
	mu         sync.Mutex
	failures   int
	keys       map[string]bool // the items in the current run of failures
	open       bool
	until      time.Time
	backoff    time.Duration
	probing    bool
	throttled  time.Time // a Retry-After pause
	ch         chan struct{}
	lastChange time.Time
}

// Circuit states for status and metrics.
const (
	CircuitClosed  = "closed"
	CircuitOpen    = "open"
	CircuitProbing = "probing"
)

func newHealth(concurrency int, lo, hi time.Duration) *health {
	return &health{threshold: max(3, concurrency+1), min: lo, max: hi, ch: make(chan struct{})}
}

// changed returns a channel closed at the next state change (pause ends early, resume).
func (h *health) changed() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.ch
}

func (h *health) notifyLocked() {
	close(h.ch)
	h.ch = make(chan struct{})
	h.lastChange = time.Now()
}

// acquire says whether a worker may deliver now: wait > 0 means pause that long; probe means
// this delivery decides whether the circuit closes again (one at a time).
func (h *health) acquire(now time.Time) (probe bool, wait time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if now.Before(h.throttled) {
		return false, h.throttled.Sub(now)
	}
	if !h.open {
		return false, 0
	}
	if now.Before(h.until) {
		return false, h.until.Sub(now)
	}
	if h.probing {
		return false, h.min
	}
	h.probing = true
	return true, 0
}

// release gives back a probe that found no work.
func (h *health) release() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.probing = false
}

// report records a delivery's outcome for item key. transient is a retryable failure
// (network, 5xx, 429); after is the target's Retry-After. counted says whether the failure
// should count against the item's attempts: not when the target as a whole is failing or
// asked to wait, so an outage costs each item at most one attempt. A run of failures of one
// item alone does not open the circuit: that item may be the problem, and its attempts count
// towards the dead letters.
func (h *health) report(now time.Time, key string, ok, transient bool, after time.Duration, probe bool) (counted bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if probe {
		h.probing = false
	}
	switch {
	case ok || !transient:
		// Any answer that is not a transient failure shows the target is up.
		h.failures, h.keys = 0, nil
		if h.open {
			h.open, h.backoff = false, 0
			h.notifyLocked()
		}
		return true
	case after > 0:
		if after > h.max {
			after = h.max
		}
		if t := now.Add(after); t.After(h.throttled) {
			h.throttled = t
		}
		return false
	}
	wasOpen := h.open
	h.failures++
	if h.keys == nil {
		h.keys = map[string]bool{}
	}
	if len(h.keys) < 2 {
		h.keys[key] = true
	}
	if !h.open && (h.failures < h.threshold || len(h.keys) < 2) {
		return true
	}
	if h.backoff == 0 {
		h.backoff = h.min
	} else {
		h.backoff = min(h.backoff*2, h.max)
	}
	h.open = true
	h.until = now.Add(jitter(h.backoff))
	if !wasOpen {
		h.notifyLocked()
	}
	return false
}

// state reports the circuit for status.
func (h *health) state(now time.Time) (string, time.Time, int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.open && h.probing:
		return CircuitProbing, h.until, h.failures
	case h.open:
		return CircuitOpen, h.until, h.failures
	case now.Before(h.throttled):
		return CircuitOpen, h.throttled, h.failures
	}
	return CircuitClosed, time.Time{}, h.failures
}

// jitter spreads d over [d/2, d) so that items and provisioners failing together do not
// retry in lockstep (tailscale's backoff does the same).
func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	half := d / 2
	return half + rand.N(d-half)
}

// retryDelay is the wait before the n-th retry of an item (n ≥ 1): exponential from min,
// jittered upwards by up to half, capped at max; the target's Retry-After wins when it gave
// one.
func retryDelay(n int, lo, hi, after time.Duration) time.Duration {
	if after > 0 {
		return after
	}
	d := lo
	for i := 1; i < n && d < hi; i++ {
		d *= 2
	}
	if d > hi {
		d = hi
	}
	if j := d + rand.N(d/2+1); j < hi {
		return j
	}
	return hi
}
