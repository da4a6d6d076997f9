package outbound

import (
	"container/heap"
	"sync"
	"time"
)

// queue is a provisioner's in-memory schedule of its outbox: which keys have pending work,
// in which order and from when. The state file is the truth; the queue is rebuilt from it at
// start and updated after each commit (state.Tx.OnCommit), so it never runs ahead of what is
// durable. A key is handed to one worker at a time: that is how per-entry order holds with
// several workers.
type queue struct {
	mu    sync.Mutex
	byKey map[string]*qent
	h     qheap
	// wake has room for one signal: a producer never blocks, and a sleeping worker learns
	// that there may be work (prometheus notifier's hasWork pattern).
	wake chan struct{}
	// peak is the most keys byKey held since it was made: a Go map never gives back the
	// room it grew to, so once an initial sync of 100,000 users has drained, byKey and the
	// heap's array are made anew (about 10 MiB of heap otherwise kept for good).
	peak int
	// drained counts the keys that left the queue (their work done), for waitBacklog.
	drained uint64
}

// shrinkAbove is the size past which an emptied queue gives its memory back.
const shrinkAbove = 1024

type qent struct {
	key      string
	seq      uint64
	ready    time.Time
	idx      int // position in the heap, -1 when in flight
	inflight bool
	// again says new work arrived while the key was in flight.
	again bool
}

func newQueue() *queue {
	return &queue{byKey: map[string]*qent{}, wake: make(chan struct{}, 1)}
}

func (q *queue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// push schedules key (a new or replaced item) at ready.
func (q *queue) push(key string, seq uint64, ready time.Time) {
	q.mu.Lock()
	e, ok := q.byKey[key]
	switch {
	case !ok:
		e = &qent{key: key, seq: seq, ready: ready}
		q.byKey[key] = e
		q.peak = max(q.peak, len(q.byKey))
		heap.Push(&q.h, e)
	case e.inflight:
		e.again = true
		if ready.Before(e.ready) || e.ready.IsZero() {
			e.ready = ready
		}
	default:
		if ready.Before(e.ready) {
			e.ready = ready
			heap.Fix(&q.h, e.idx)
		}
	}
	q.mu.Unlock()
	q.signal()
}

// pop hands out the first key that is ready at now, marking it in flight. When none is, it
// returns how long until the next one will be (0 when the queue is empty).
func (q *queue) pop(now time.Time) (key string, wait time.Duration, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.h) == 0 {
		return "", 0, false
	}
	e := q.h[0]
	if e.ready.After(now) {
		return "", e.ready.Sub(now), false
	}
	heap.Pop(&q.h)
	e.inflight, e.again = true, false
	return e.key, 0, true
}

// readyCount reports how many keys could be handed out at now (for a worker deciding whether
// to wake another).
func (q *queue) hasReady(now time.Time) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.h) > 0 && !q.h[0].ready.After(now)
}

// done returns an in-flight key. keep says the item is still in the outbox (failed, or
// replaced during the delivery); it is scheduled at ready, or at once when new work arrived
// meanwhile. Otherwise the key leaves the queue, unless new work arrived meanwhile.
func (q *queue) done(key string, keep bool, ready time.Time) {
	q.mu.Lock()
	e, ok := q.byKey[key]
	if !ok || !e.inflight {
		q.mu.Unlock()
		return
	}
	e.inflight = false
	switch {
	case e.again:
		e.again = false
		if ready.IsZero() || e.ready.Before(ready) {
			ready = e.ready
		}
		if keep && ready.Before(time.Now()) {
			ready = time.Now()
		}
		e.ready = ready
		heap.Push(&q.h, e)
	case keep:
		e.ready = ready
		heap.Push(&q.h, e)
	default:
		delete(q.byKey, key)
		q.drained++
		if len(q.byKey) == 0 && q.peak > shrinkAbove {
			q.byKey, q.h, q.peak = map[string]*qent{}, nil, 0
		}
	}
	q.mu.Unlock()
	q.signal()
}

func (q *queue) backlog() (pending int, drained uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.byKey), q.drained
}

// counts reports the keys pending, ready at now, and in flight.
func (q *queue) counts(now time.Time) (pending, ready, inflight int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, e := range q.h {
		if !e.ready.After(now) {
			ready++
		}
	}
	return len(q.byKey), ready, len(q.byKey) - len(q.h)
}

// qheap orders keys by readiness, then first come first served.
type qheap []*qent

func (h qheap) Len() int { return len(h) }
func (h qheap) Less(i, j int) bool {
	if !h[i].ready.Equal(h[j].ready) {
		return h[i].ready.Before(h[j].ready)
	}
	return h[i].seq < h[j].seq
}

func (h qheap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = i, j
}

func (h *qheap) Push(x any) {
	e := x.(*qent)
	e.idx = len(*h)
	*h = append(*h, e)
}

func (h *qheap) Pop() any {
	old := *h
	n := len(old)
	e := old[n-1]
	old[n-1] = nil
	e.idx = -1
	*h = old[:n-1]
	return e
}
