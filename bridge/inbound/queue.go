package inbound

import (
	"context"
	"net/http"
	"sync/atomic"
	"time"
)

// Defaults of the work bounds (Config.MaxConcurrent, MaxQueued, QueueTimeout).
const (
	defaultMaxConcurrent = 16
	defaultMaxQueued     = 1024
	defaultQueueTimeout  = 30 * time.Second
	// queueRetryAfter is what a client refused by a full queue is asked to wait, in seconds.
	queueRetryAfter = 2
)

// workQueue bounds the requests worked on at once. A request beyond the bound waits for its
// turn, in order of arrival, instead of being refused: Entra ID sends a refused operation to
// escrow and retries it only hours later. Only when the queue itself is full, or a request
// has waited longer than the timeout (past it, the answer would arrive after the server's own
// write timeout), is the answer a 503 with Retry-After.
type workQueue struct {
	slots      chan struct{}
	maxWaiting int64
	timeout    time.Duration
	waiting    atomic.Int64
}

func newWorkQueue(concurrent, queued int, timeout time.Duration) *workQueue {
	return &workQueue{slots: make(chan struct{}, concurrent), maxWaiting: int64(queued), timeout: timeout}
}

// sameBounds reports whether q has these bounds (a reload then keeps q and its count).
func (q *workQueue) sameBounds(concurrent, queued int, timeout time.Duration) bool {
	return cap(q.slots) == concurrent && q.maxWaiting == int64(queued) && q.timeout == timeout
}

// acquire waits for a slot; release gives it back. A nil release comes with the error to
// answer.
func (q *workQueue) acquire(ctx context.Context, m *metrics) (release func(), err *apiError) {
	release = func() {
		<-q.slots
		m.inFlight.Dec()
	}
	select {
	case q.slots <- struct{}{}:
		m.inFlight.Inc()
		return release, nil
	default:
	}
	if q.waiting.Add(1) > q.maxWaiting {
		q.waiting.Add(-1)
		m.rejected.WithLabelValues("queue_full").Inc()
		return nil, &apiError{status: http.StatusServiceUnavailable, detail: "the server is busy; retry later", retryAfter: queueRetryAfter}
	}
	m.queued.Inc()
	defer func() {
		q.waiting.Add(-1)
		m.queued.Dec()
	}()
	t := time.NewTimer(q.timeout)
	defer t.Stop()
	select {
	case q.slots <- struct{}{}:
		m.inFlight.Inc()
		return release, nil
	case <-t.C:
		m.rejected.WithLabelValues("queue_timeout").Inc()
		return nil, &apiError{status: http.StatusServiceUnavailable, detail: "the server is busy; retry later", retryAfter: queueRetryAfter}
	case <-ctx.Done():
		return nil, &apiError{status: 499, detail: "request cancelled", cause: context.Cause(ctx)}
	}
}
