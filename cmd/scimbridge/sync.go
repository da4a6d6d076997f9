package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/scimbridge/scimbridge/bridge"
	"github.com/scimbridge/scimbridge/bridge/outbound"
)

func cmdSync(ctx context.Context, e *env, args []string) int {
	fs := newFlags(e, "sync", "--config FILE [--provisioner NAME]… [--full] [--allow-deletes]")
	path := fs.String("config", "", "configuration file (required)")
	var provs names
	fs.Var(&provs, "provisioner", "sync only this provisioner (repeatable)")
	full := fs.Bool("full", false, "a full reconcile: compare every user and group in scope with what was pushed (and the target where it can be listed)")
	allow := fs.Bool("allow-deletes", false, "let a provisioner stopped by its deletion breaker continue")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if *path == "" {
		return usageErr(e, fs, "sync: --config is required")
	}
	cfg, code, ok := loadForCLI(e, "sync", *path)
	if !ok {
		return code
	}
	req := bridge.SyncRequest{Provisioners: provs, Full: *full, AllowDeletes: *allow}
	bar := newProgress(e.stderr)
	var last bridge.SyncEvent
	emit := func(ev bridge.SyncEvent) {
		if ev.Message != "" {
			bar.clear()
			fmt.Fprintln(e.stdout, ev.Message)
		}
		if len(ev.Progress) > 0 {
			bar.show(ev.Progress)
			last = ev
		}
	}
	c, err := daemon(ctx, cfg)
	if err != nil {
		return fail(e, "sync", err)
	}
	if c != nil {
		err = c.Sync(ctx, req, emit)
	} else {
		logger := cliLogger(e, cfg)
		store, serr := openStore(ctx, cfg, logger)
		if serr != nil {
			return fail(e, "sync", serr)
		}
		defer store.Close()
		err = bridge.OfflineSync(ctx, cfg, store, req, logger, emit)
	}
	bar.clear()
	if err != nil {
		return fail(e, "sync", err)
	}
	result := exitOK
	for _, p := range last.Progress {
		fmt.Fprintf(e.stdout, "provisioner %q: %d delivered, %d failed attempts, %d dead-lettered, %d pending\n",
			p.Provisioner, p.Delivered, p.Failed, p.Dead, p.Pending)
		switch p.Blocked {
		case "breaker":
			fmt.Fprintf(e.stderr, "scimbridge sync: provisioner %q is stopped by its deletion breaker: review with scimbridge plan, then scimbridge sync --provisioner %s --allow-deletes\n", p.Provisioner, p.Provisioner)
			result = exitFail
		case "target":
			fmt.Fprintf(e.stderr, "scimbridge sync: provisioner %q: the target is failing or asked to wait; %d items are retried later\n", p.Provisioner, p.Pending)
			result = exitFail
		case "retry":
			fmt.Fprintf(e.stderr, "scimbridge sync: provisioner %q: %d items wait for a retry (scimbridge status shows the last error)\n", p.Provisioner, p.Pending)
			result = exitFail
		}
		if p.Dead > 0 {
			fmt.Fprintf(e.stderr, "scimbridge sync: provisioner %q: %d items could not be delivered: scimbridge deadletter list --provisioner %s\n", p.Provisioner, p.Dead, p.Provisioner)
			result = exitFail
		}
	}
	return result
}

// progress draws a one-line progress bar on a terminal and nothing elsewhere.
type progress struct {
	w     io.Writer
	tty   bool
	drawn bool
	max   int
}

func newProgress(w io.Writer) *progress {
	p := &progress{w: w}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

func (p *progress) show(ps []outbound.Progress) {
	if !p.tty {
		return
	}
	done, pending, dead, failed := 0, 0, 0, 0
	for _, x := range ps {
		done += x.Delivered
		pending += x.Pending
		dead += x.Dead
		failed += x.Failed
	}
	total := done + dead + pending
	if total > p.max {
		p.max = total
	}
	const width = 30
	filled := 0
	if p.max > 0 {
		filled = (done + dead) * width / p.max
	}
	bar := strings.Repeat("█", filled) + strings.Repeat("░", width-filled)
	fmt.Fprintf(p.w, "\r\x1b[K%s %d/%d delivered  %d pending  %d retried  %d dead", bar, done, p.max, pending, failed, dead)
	p.drawn = true
}

func (p *progress) clear() {
	if p.tty && p.drawn {
		fmt.Fprint(p.w, "\r\x1b[K")
		p.drawn = false
	}
}
