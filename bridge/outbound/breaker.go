package outbound

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/scimbridge/scimbridge/bridge/state"
)

// breakerState is the deletion breaker of one provisioner, persisted so that a restart does
// not let a mass deprovision through.
type breakerState struct {
	Tripped bool      `json:"tripped"`
	Reason  string    `json:"reason,omitempty"`
	Count   int       `json:"count,omitempty"`
	Since   time.Time `json:"since,omitzero"`
}

// storedBreaker reads provisioner name's breaker as committed in the state file.
func storedBreaker(tx *state.Tx, name string) (breakerState, error) {
	var br breakerState
	meta, err := tx.Bucket("outbound", name, "meta")
	if err != nil {
		return br, err
	}
	_, err = meta.GetJSON([]byte("breaker"), &br)
	return br, err
}

// windowEntry is one deprovision decision in the sliding window.
type windowEntry struct {
	At time.Time `json:"at"`
	// Allowed: an admin let this one through (sync --allow-deletes); it no longer counts.
	Allowed bool `json:"allowed,omitempty"`
}

// noteDeprovisions records that the users ids are about to be deprovisioned (disabled or
// deleted on the target) and trips the breaker, in tx, when more than max_deletes decisions
// not allowed by an admin fall within delete_window. An id already in the window counts once.
// It reports whether the breaker is tripped after the call.
func (p *Provisioner) noteDeprovisions(tx *state.Tx, ids []string, reason string) (bool, error) {
	if p.spec.MaxDeletes <= 0 || len(ids) == 0 {
		return false, nil
	}
	win, err := tx.Bucket("outbound", p.spec.Name, "deletes")
	if err != nil {
		return false, err
	}
	now := time.Now().UTC()
	counted := false // a decision not in the window yet
	for _, id := range ids {
		var we windowEntry
		ok, err := win.GetJSON([]byte(id), &we)
		if err != nil {
			return false, err
		}
		if ok && now.Sub(we.At) < p.spec.DeleteWindow {
			continue
		}
		if err := win.PutJSON([]byte(id), windowEntry{At: now}); err != nil {
			return false, err
		}
		counted = true
	}
	meta, err := tx.Bucket("outbound", p.spec.Name, "meta")
	if err != nil {
		return false, err
	}
	var br breakerState
	if _, err := meta.GetJSON([]byte("breaker"), &br); err != nil {
		return false, err
	}
	if br.Tripped {
		return true, nil
	}
	if !counted {
		return false, nil
	}
	count, err := p.countWindow(win, now)
	if err != nil {
		return false, err
	}
	if count <= p.spec.MaxDeletes {
		return false, nil
	}
	br = breakerState{
		Tripped: true, Count: count, Since: now,
		Reason: fmt.Sprintf("%d deprovisions within %s (%s) exceed max_deletes %d", count, p.spec.DeleteWindow, reason, p.spec.MaxDeletes),
	}
	if err := meta.PutJSON([]byte("breaker"), br); err != nil {
		return false, err
	}
	tx.OnCommit(func() { p.setBreaker(br) })
	return true, nil
}

// countWindow prunes expired decisions and counts the ones not allowed.
func (p *Provisioner) countWindow(win *state.Bucket, now time.Time) (int, error) {
	var expired [][]byte
	count := 0
	err := win.Scan(nil, func(k, v []byte) (bool, error) {
		var we windowEntry
		if err := json.Unmarshal(v, &we); err != nil {
			return false, err
		}
		switch {
		case now.Sub(we.At) >= p.spec.DeleteWindow:
			expired = append(expired, append([]byte(nil), k...))
		case !we.Allowed:
			count++
		}
		return true, nil
	})
	if err != nil {
		return 0, err
	}
	for _, k := range expired {
		if err := win.Delete(k); err != nil {
			return 0, err
		}
	}
	return count, nil
}

// checkDeprovision is the last check before a deprovision goes to the target: a decision the
// engine did not predict when it queued the work (the scope moved meanwhile) is counted now,
// and refused when it trips the breaker.
func (p *Provisioner) checkDeprovision(key string) error {
	if p.spec.MaxDeletes <= 0 {
		return nil
	}
	known, stored := false, false
	err := p.e.o.State.View(func(tx *state.Tx) error {
		win, err := tx.Bucket("outbound", p.spec.Name, "deletes")
		if err != nil {
			return err
		}
		var we windowEntry
		ok, err := win.GetJSON([]byte(key), &we)
		if err != nil {
			return err
		}
		known = ok && time.Since(we.At) < p.spec.DeleteWindow
		// The breaker as committed, not only its in-memory mirror: the transaction that
		// tripped it may have scheduled this very item, and a worker can take it before the
		// mirror is set (commit callbacks run one after the other).
		br, err := storedBreaker(tx, p.spec.Name)
		stored = br.Tripped
		return err
	})
	if err != nil {
		return err
	}
	if tripped, _ := p.breakerTripped(); tripped || stored {
		return errBreaker
	}
	if known {
		return nil
	}
	var tripped bool
	err = p.e.o.State.Update(func(tx *state.Tx) error {
		var err error
		tripped, err = p.noteDeprovisions(tx, []string{key}, "live changes")
		return err
	})
	if err != nil {
		return err
	}
	if tripped {
		return errBreaker
	}
	return nil
}

// setBreaker updates the in-memory breaker after a commit, and says so loudly.
func (p *Provisioner) setBreaker(br breakerState) {
	p.mu.Lock()
	was := p.breaker.Tripped
	p.breaker = br
	if was && !br.Tripped {
		close(p.resume)
		p.resume = make(chan struct{})
	}
	p.mu.Unlock()
	p.e.m.breaker.WithLabelValues(p.spec.Name, "deletes").Set(b2f(br.Tripped))
	switch {
	case br.Tripped && !was:
		p.log.Error().Int("count", br.Count).Int("max_deletes", p.spec.MaxDeletes).Str("reason", br.Reason).
			Msg("deletion breaker tripped: provisioner stopped until an admin runs scimbridge sync --provisioner " + p.spec.Name + " --allow-deletes")
	case !br.Tripped && was:
		p.log.Warn().Msg("deletion breaker released by an admin: provisioner continues")
	}
}

// releaseBreaker lets a provisioner stopped by its deletion breaker continue: the decisions in
// the window are marked allowed (they no longer count) and the breaker is cleared.
func (p *Provisioner) releaseBreaker(tx *state.Tx) (bool, error) {
	meta, err := tx.Bucket("outbound", p.spec.Name, "meta")
	if err != nil {
		return false, err
	}
	var br breakerState
	if _, err := meta.GetJSON([]byte("breaker"), &br); err != nil {
		return false, err
	}
	win, err := tx.Bucket("outbound", p.spec.Name, "deletes")
	if err != nil {
		return false, err
	}
	type kv struct {
		k  []byte
		we windowEntry
	}
	var all []kv
	err = win.Scan(nil, func(k, v []byte) (bool, error) {
		var we windowEntry
		if err := json.Unmarshal(v, &we); err != nil {
			return false, err
		}
		if !we.Allowed {
			all = append(all, kv{append([]byte(nil), k...), we})
		}
		return true, nil
	})
	if err != nil {
		return false, err
	}
	for _, e := range all {
		e.we.Allowed = true
		if err := win.PutJSON(e.k, e.we); err != nil {
			return false, err
		}
	}
	if err := meta.PutJSON([]byte("breaker"), breakerState{}); err != nil {
		return false, err
	}
	tx.OnCommit(func() { p.setBreaker(breakerState{}) })
	return br.Tripped, nil
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
