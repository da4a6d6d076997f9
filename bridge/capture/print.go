package capture

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/scimbridge/scimbridge/bridge/config"
	"github.com/scimbridge/scimbridge/bridge/state"
	"github.com/scimbridge/scimbridge/ldapstore"
	"github.com/scimbridge/scimbridge/mapping"
)

// PrintedEvent is one line of `scimbridge changes`.
type PrintedEvent struct {
	Kind     ldapstore.EventKind `json:"kind"`
	ID       string              `json:"id"`
	DN       string              `json:"dn"`
	OldDN    string              `json:"old_dn,omitempty"`
	Object   Object              `json:"object"`
	Origin   ldapstore.Origin    `json:"origin"`
	Actor    string              `json:"actor,omitempty"`
	Time     time.Time           `json:"time"`
	Position string              `json:"position"`
}

// StoredCursor reads the Reader's cursor from the state file without keeping it open. ok
// is false when there is none, when the file does not exist, or when another process (the
// daemon) holds it.
func StoredCursor(dir string) (cursor string, ok bool) {
	db, err := state.OpenWith(dir, state.Options{ReadOnly: true, Timeout: 200 * time.Millisecond})
	if err != nil {
		return "", false
	}
	defer db.Close()
	_ = db.View(func(tx *state.Tx) error {
		c, found, err := tx.Cursor("changes")
		if err == nil && found {
			cursor, ok = c.Value, true
		}
		return nil
	})
	return cursor, ok
}

// PrintChanges writes the change stream as the bridge reads it, one JSON line per event
// touching the users or groups bases: kind, id, dn, old_dn, object (user or group, from
// re-reading the entry by id with the configured filters, or from its base when it is
// gone), origin, actor, time and position.
//
// It starts at the cursor stored in the state file when that can be read (so it shows what
// the daemon has not consumed yet), otherwise at the oldest event the change log retains
// (for the timestamp source: every entry). It never writes the state file and holds it only
// for the instant it reads the cursor. Without follow it returns once the log is drained;
// with follow it keeps polling every changes.poll_interval until ctx is cancelled, and then
// returns nil.
func PrintChanges(ctx context.Context, cfg *config.Config, store *ldapstore.Store, w io.Writer, follow bool) error {
	src, err := NewSource(ctx, cfg, store)
	if err != nil {
		return err
	}
	d, err := store.Dialect(ctx)
	if err != nil {
		return err
	}
	p := &printer{src: src, dir: store, scope: ScopeFromConfig(cfg, d), enc: json.NewEncoder(w), dns: map[string]string{}}
	for _, q := range []*ldapstore.Search{&p.scope.Users, &p.scope.Groups} {
		q.Attrs = []string{p.scope.IDAttribute}
	}
	if !reportsRenames(src) {
		// The log tells no renames: compare each entry's DN with the one it had, starting
		// from what the directory holds now.
		if err := p.seed(ctx); err != nil {
			return err
		}
	}
	cursor, _ := StoredCursor(cfg.State.Dir)
	interval := cfg.Changes.PollInterval.Duration
	if interval <= 0 {
		interval = time.Second
	}
	return p.run(ctx, cursor, follow, interval)
}

type printer struct {
	src   Source
	dir   Directory
	scope Scope
	enc   *json.Encoder
	// dns is the DN of each id seen, so that an upsert at another DN prints as a rename
	// for sources whose log does not say (dirsync, usn, timestamp).
	dns map[string]string
}

// reportsRenames tells the sources whose events name renames themselves.
func reportsRenames(src Source) bool {
	switch src.Name() {
	case "accesslog", "changelog":
		return true
	}
	return false
}

// seed records the DN of every user and group in scope now.
func (p *printer) seed(ctx context.Context) error {
	for _, q := range []ldapstore.Search{p.scope.Users, p.scope.Groups} {
		if q.Base == "" {
			continue
		}
		err := p.dir.Walk(ctx, q, func(e mapping.Entry) error {
			if id := e.First(p.scope.IDAttribute); id != "" {
				p.dns[id] = e.DN
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("capture: reading the scope: %w", err)
		}
	}
	return nil
}

func (p *printer) run(ctx context.Context, cursor string, follow bool, interval time.Duration) error {
	for {
		b, err := p.src.Poll(ctx, cursor, defaultBatchSize)
		if errors.Is(err, ldapstore.ErrCursorExpired) && cursor != "" {
			cursor = "" // the stored cursor is stale: show what the log still has
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		for _, ev := range b.Events {
			line, ok, err := p.describe(ctx, ev)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			if !ok {
				continue
			}
			if err := p.enc.Encode(line); err != nil {
				return fmt.Errorf("capture: writing event: %w", err)
			}
		}
		cursor = b.Cursor
		if b.More {
			continue
		}
		if !follow {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(interval):
		}
	}
}

// describe classifies an event; ok is false for events outside the users and groups bases.
func (p *printer) describe(ctx context.Context, ev ldapstore.Event) (PrintedEvent, bool, error) {
	line := PrintedEvent{
		Kind: ev.Kind, ID: ev.ID, DN: ev.DN, OldDN: ev.OldDN, Origin: ev.Origin, Actor: ev.Actor, Time: ev.Time, Position: ev.Position,
	}
	known, wasKnown := p.dns[ev.ID]
	if ev.Kind == ldapstore.EventDelete {
		delete(p.dns, ev.ID)
	} else {
		f, err := lookup(ctx, p.dir, p.scope, ev.ID, ev.DN)
		if err != nil {
			return line, false, err
		}
		if f.entry != nil {
			p.dns[ev.ID] = f.entry.DN
			if ev.Kind == ldapstore.EventUpsert && wasKnown && !ldapstore.DNEqual(known, f.entry.DN) {
				line.Kind, line.OldDN, line.DN = ldapstore.EventRename, known, f.entry.DN
			}
			line.Object = f.object
			return line, true, nil
		}
		delete(p.dns, ev.ID) // out of scope now
	}
	if wasKnown && line.OldDN == "" && !ldapstore.DNEqual(known, line.DN) {
		// Gone, or moved out of scope: say where it was (a tombstone's DN says nothing).
		if line.Kind == ldapstore.EventDelete {
			line.DN = known
		} else {
			line.OldDN = known
		}
	}
	for _, dn := range []string{line.DN, line.OldDN} {
		switch {
		case dn == "":
		case p.scope.Users.Base != "" && ldapstore.DNUnder(dn, p.scope.Users.Base):
			line.Object = ObjectUser
		case p.scope.Groups.Base != "" && ldapstore.DNUnder(dn, p.scope.Groups.Base):
			line.Object = ObjectGroup
		}
		if line.Object != "" {
			return line, true, nil
		}
	}
	return line, false, nil
}
