// Package gctune gives Go's garbage collector a floor of headroom: the heap may grow by at
// least a fixed number of bytes past the live heap before the next collection, instead of by
// the live heap's size (GOGC=100) only.
//
// A daemon whose live heap is small but which allocates fast — the outbound sync holds a few
// megabytes live while it decodes, renders and sends tens of thousands of users a minute —
// otherwise collects dozens of times a second: at 100,000 users the collector took 14% of the
// daemon's CPU, and each collection emptied the sync.Pools (bbolt's page buffers, net/http's,
// encoding/json's), so that what they would have recycled was allocated again. With a floor,
// collections are rarer while the heap is small, and GOGC=100 takes over once the live heap
// exceeds the headroom: memory stays bounded by live + max(live, headroom).
//
// The collector is left alone when the operator set GOGC in the environment. GOMEMLIMIT, when
// set, still caps the heap as the runtime documents.
package gctune

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

const liveMetric = "/gc/heap/live:bytes"

// DefaultHeadroom is the daemon's headroom (scimbridge serve). At 100,000 users the outbound
// initial sync took 20% less CPU with it at the same peak RSS; 32 MiB saved a little more CPU
// but raised the peak past the 150 MiB the daemon is held to at that size.
const DefaultHeadroom = 16 << 20

// heapMinimum is the runtime's smallest heap goal at GOGC=100 (it scales with GOGC): with
// GOGC at p, no collection starts below heapMinimum·p/100, however small the live heap.
const heapMinimum = 4 << 20

// Tuner moves GOGC after every collection. Stop ends it.
type Tuner struct {
	headroom uint64
	mu       sync.Mutex
	stopped  bool
	percent  int // the GOGC value last set, so that an unchanged one is not set again
	sample   []metrics.Sample
}

// sentinel is garbage from its birth: its finalizer runs after the collection that found it,
// which makes one call per collection. It holds a pointer, so it is never a tiny allocation
// (whose finalizers may never run).
type sentinel struct{ t *Tuner }

// Start begins tuning for headroom bytes and reports whether it did: not when GOGC is set in
// the environment (the operator's choice stands) or headroom is 0.
func Start(headroom uint64) (*Tuner, bool) {
	if _, set := os.LookupEnv("GOGC"); set || headroom == 0 {
		return nil, false
	}
	t := &Tuner{headroom: headroom, percent: 100, sample: []metrics.Sample{{Name: liveMetric}}}
	t.tune()
	t.arm()
	return t, true
}

// Stop ends the tuning and puts GOGC back to 100. A nil Tuner does nothing.
func (t *Tuner) Stop() {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.stopped {
		t.stopped = true
		t.percent = 100
		debug.SetGCPercent(100)
	}
}

func (t *Tuner) arm() {
	runtime.SetFinalizer(&sentinel{t: t}, func(s *sentinel) {
		if s.t.tune() {
			s.t.arm()
		}
	})
}

// tune sets GOGC for the live heap the last collection left, and reports whether tuning goes
// on.
func (t *Tuner) tune() bool {
	metrics.Read(t.sample)
	var live uint64
	if t.sample[0].Value.Kind() == metrics.KindUint64 {
		live = t.sample[0].Value.Uint64()
	}
	p := PercentFor(live, t.headroom)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return false
	}
	if p != t.percent {
		debug.SetGCPercent(p)
		t.percent = p
	}
	return true
}

// PercentFor is the GOGC value that lets a heap of live bytes grow by max(live, headroom)
// before the next collection. It is never above what keeps the runtime's heap minimum (which
// GOGC scales) at headroom, so that before the first collection, with no live heap measured
// yet, the heap goal is headroom and not more.
func PercentFor(live, headroom uint64) int {
	ceiling := headroom * 100 / heapMinimum
	p := ceiling
	if live > 0 {
		p = min(ceiling, headroom*100/live)
	}
	return int(max(p, 100))
}
