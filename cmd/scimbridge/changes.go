package main

import (
	"context"
	"fmt"

	"github.com/rs/zerolog"

	"github.com/scimbridge/scimbridge/bridge/capture"
)

func cmdChanges(ctx context.Context, e *env, args []string) int {
	fs := newFlags(e, "changes", "--config FILE [--follow]")
	path := fs.String("config", "", "configuration file (required)")
	follow := fs.Bool("follow", false, "keep printing new changes until interrupted")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if *path == "" {
		return usageErr(e, fs, "changes: --config is required")
	}
	cfg, err := loadForDaemon(*path)
	if err != nil {
		return fail(e, "changes", err)
	}
	store, err := openStore(ctx, cfg, zerolog.Nop())
	if err != nil {
		return fail(e, "changes", err)
	}
	defer store.Close()
	if c, ok := capture.StoredCursor(cfg.State.Dir); ok {
		fmt.Fprintf(e.stderr, "scimbridge changes: starting from the stored cursor %.40s…\n", c)
	} else {
		fmt.Fprintln(e.stderr, "scimbridge changes: starting from the oldest change the log keeps (no stored cursor, or the daemon holds the state file)")
	}
	if err := capture.PrintChanges(ctx, cfg, store, e.stdout, *follow); err != nil {
		return fail(e, "changes", err)
	}
	return exitOK
}
