package watchdog

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/scimbridge/scimbridge/targets"
)

// Monitor watches the loops registered with it. A nil *Monitor watches nothing: its Loop is
// nil, and a nil *Loop's methods do nothing, so components need no "is there a watchdog"
// checks.
type Monitor struct {
	stall time.Duration
	now   func() time.Time

	mu     sync.Mutex
	loops  map[*Loop]struct{}
	checks map[string]func(now time.Time) error
}

// New returns a Monitor that reports a loop stuck when it has been busy without a beat for
// longer than stall.
func New(stall time.Duration) *Monitor {
	return &Monitor{stall: stall, now: time.Now, loops: map[*Loop]struct{}{}, checks: map[string]func(time.Time) error{}}
}

// Stall is the bound after which a busy loop without a beat is stuck (0 for a nil Monitor).
func (m *Monitor) Stall() time.Duration {
	if m == nil {
		return 0
	}
	return m.stall
}

// Loop registers a main loop. It starts busy, as if it had just beaten.
func (m *Monitor) Loop(name string) *Loop {
	if m == nil {
		return nil
	}
	l := &Loop{m: m, name: name}
	l.last.Store(m.now().UnixNano())
	m.mu.Lock()
	m.loops[l] = struct{}{}
	m.mu.Unlock()
	return l
}

// Check registers a condition that must hold for the pings to go on, e.g. "the state file's
// write lock is not held past its bound"; fn returns an error describing the violation. The
// returned function removes it.
func (m *Monitor) Check(name string, fn func(now time.Time) error) (remove func()) {
	if m == nil {
		return func() {}
	}
	m.mu.Lock()
	m.checks[name] = fn
	m.mu.Unlock()
	return func() {
		m.mu.Lock()
		delete(m.checks, name)
		m.mu.Unlock()
	}
}

// Healthy returns nil while every loop is waiting or beat within the stall bound and every
// check holds; otherwise an error naming each stuck loop and failed check.
func (m *Monitor) Healthy() error {
	if m == nil {
		return nil
	}
	now := m.now()
	var problems []string
	m.mu.Lock()
	for l := range m.loops {
		if l.waiting.Load() {
			continue
		}
		if busy := now.Sub(time.Unix(0, l.last.Load())); busy > m.stall {
			problems = append(problems, fmt.Sprintf("loop %q stuck for %s", l.name, busy.Round(time.Second)))
		}
	}
	for name, fn := range m.checks {
		if err := fn(now); err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", name, err))
		}
	}
	m.mu.Unlock()
	if len(problems) == 0 {
		return nil
	}
	sort.Strings(problems)
	return errors.New(strings.Join(problems, "; "))
}

// Run sends "WATCHDOG=1" through notify every interval while Healthy, until ctx ends. When a
// loop gets stuck it logs (once per episode) what is stuck and stops pinging, so that systemd, after
// WatchdogSec, kills the process (SIGABRT: the goroutine dump goes to the journal) and
// restarts it; if the loop recovers first, the pings resume.
func (m *Monitor) Run(ctx context.Context, interval time.Duration, notify func(string) bool, logger zerolog.Logger) {
	if m == nil {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	stuck := false
	for {
		if err := m.Healthy(); err != nil {
			if !stuck {
				logger.Error().Err(err).Msg("watchdog: a main loop is stuck; not pinging systemd, which restarts the service after WatchdogSec")
				notify("STATUS=stuck: " + err.Error())
				stuck = true
			}
		} else {
			if stuck {
				logger.Warn().Msg("watchdog: the main loops turn again; pinging systemd")
				notify("STATUS=running")
				stuck = false
			}
			notify("WATCHDOG=1")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Loop is one main loop's liveness. A loop calls Beat as it makes progress (each iteration,
// each page or entry of a long walk, each HTTP try) and Wait just before it blocks waiting
// for work or for a backoff to pass: a waiting loop is alive however long it waits, since
// only a timer or a channel can wake it; a busy loop that stops beating is stuck.
type Loop struct {
	m       *Monitor
	name    string
	last    atomic.Int64 // UnixNano of the last beat
	waiting atomic.Bool
}

// Beat records progress: the loop is busy and alive now.
func (l *Loop) Beat() {
	if l == nil {
		return
	}
	l.last.Store(l.m.now().UnixNano())
	l.waiting.Store(false)
}

// Wait records that the loop is about to block on a timer or a channel.
func (l *Loop) Wait() {
	if l == nil {
		return
	}
	l.waiting.Store(true)
}

// Stop unregisters the loop (it ended).
func (l *Loop) Stop() {
	if l == nil {
		return
	}
	l.m.mu.Lock()
	delete(l.m.loops, l)
	l.m.mu.Unlock()
}

type loopKey struct{}

// WithLoop returns ctx carrying l, so that code deep in a loop's call (a directory walk, a
// target's HTTP tries) beats it through Beat(ctx) and targets.Progress(ctx).
func WithLoop(ctx context.Context, l *Loop) context.Context {
	if l == nil {
		return ctx
	}
	return targets.WithProgress(context.WithValue(ctx, loopKey{}, l), l.Beat)
}

// Beat beats the loop ctx carries, if any.
func Beat(ctx context.Context) {
	if l, ok := ctx.Value(loopKey{}).(*Loop); ok {
		l.Beat()
	}
}

type monitorKey struct{}

// WithMonitor returns ctx carrying m: the daemon's components find the monitor of the run
// they belong to with From, instead of each constructor taking one.
func WithMonitor(ctx context.Context, m *Monitor) context.Context {
	if m == nil {
		return ctx
	}
	return context.WithValue(ctx, monitorKey{}, m)
}

// From returns the Monitor ctx carries, or nil (no watchdog: every Loop is a no-op).
func From(ctx context.Context) *Monitor {
	m, _ := ctx.Value(monitorKey{}).(*Monitor)
	return m
}

// Wait marks the loop ctx carries, if any, as waiting: for a lock held by another loop that
// beats while it holds it, or for a timer.
func Wait(ctx context.Context) {
	if l, ok := ctx.Value(loopKey{}).(*Loop); ok {
		l.Wait()
	}
}
