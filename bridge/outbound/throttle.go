package outbound

import (
	"context"
	"time"
)

// A reconcile pass enumerates the directory faster than most targets take its work: over
// 100,000 users it used to queue them all within seconds, and each waited in the outbox (the
// state file, mapped into memory) and in the queue until delivered. The engine's Sink is a
// capture.Throttler: between the pass's batches it waits while a provisioner has more than
// Options.ReconcileAhead keys pending, until it is down to half, so the pass runs only that
// far ahead of the deliveries. BenchmarkOutbound, 100,000 users, instant target: the live
// heap at its peak went from 50 to 44 MB and the daemon's peak RSS from 176–180 to 168 MiB,
// at the same sync rate (the pass now ends with the sync instead of half-way through it).
//
// The enumeration holds a directory connection and the change reader while it waits, so
// waiting stops for the rest of the pass when it does not help (below).
const (
	// defaultReconcileAhead is Options.ReconcileAhead's default: four batches of the change
	// reader, so the workers never run dry while a batch is read and committed.
	defaultReconcileAhead = 4096
	// reconcileStall: no key left the queue of a provisioner waited on for this long. Its
	// target is down or pausing it, or its workers need the directory connection the
	// enumeration holds (pool_size = 1).
	reconcileStall = 2 * time.Second
	// reconcileMaxWait: one wait took this long. A slow target (a few requests a second)
	// would otherwise hold the enumeration, its connection and the change reader for the
	// hours its backlog takes; the rest of the pass is queued at once, as before.
	reconcileMaxWait = 30 * time.Second
	// throttlePoll is how often a wait looks at the queues.
	throttlePoll = 10 * time.Millisecond
)

// Throttle waits until no running provisioner has more than Options.ReconcileAhead keys
// pending (capture.Throttler). It returns false when the pass should stop asking: the engine
// is not running, ctx ended, or waiting did not help (above).
func (s engineSink) Throttle(ctx context.Context) bool {
	e := s.e
	e.mu.RLock()
	running := e.runCtx != nil && !e.stopped
	e.mu.RUnlock()
	if !running {
		return false
	}
	provs := e.Provisioners()
	qs := make([]backlogger, len(provs))
	for i, p := range provs {
		qs[i] = p.q
	}
	ok, reason := waitBacklog(ctx, qs, e.o.ReconcileAhead, reconcileStall, reconcileMaxWait)
	if !ok && ctx.Err() == nil {
		e.log.Info().Str("reason", reason).Int("ahead", e.o.ReconcileAhead).
			Msg("the reconcile pass stops waiting for deliveries and queues the rest of its work now")
	}
	return ok
}

// backlogger is a provisioner's queue as waitBacklog sees it: the keys pending (in flight
// included), and a count of the keys that ever left it.
type backlogger interface {
	backlog() (pending int, drained uint64)
}

// waitBacklog returns once no queue of qs has more than ahead keys pending, waiting (when
// one has) until each is down to ahead/2. It returns false, with why, when ctx ends, when no
// key left any queue still over ahead/2 for stall, or when it waited maxWait.
func waitBacklog(ctx context.Context, qs []backlogger, ahead int, stall, maxWait time.Duration) (bool, string) {
	over := func(limit int) bool {
		for _, q := range qs {
			if n, _ := q.backlog(); n > limit {
				return true
			}
		}
		return false
	}
	if !over(ahead) {
		return true, ""
	}
	last := make([]uint64, len(qs))
	for i, q := range qs {
		_, last[i] = q.backlog()
	}
	start := time.Now()
	progress := start
	t := time.NewTicker(throttlePoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false, "stopping"
		case <-t.C:
		}
		now, waiting := time.Now(), false
		for i, q := range qs {
			n, drained := q.backlog()
			if n <= ahead/2 {
				continue
			}
			waiting = true
			if drained != last[i] {
				last[i], progress = drained, now
			}
		}
		switch {
		case !waiting:
			return true, ""
		case now.Sub(progress) >= stall:
			return false, "no delivery completed for " + stall.String()
		case now.Sub(start) >= maxWait:
			return false, "the deliveries did not catch up within " + maxWait.String()
		}
	}
}
