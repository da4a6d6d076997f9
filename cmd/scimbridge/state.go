package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/scimbridge/scimbridge/bridge"
)

func cmdState(ctx context.Context, e *env, args []string) int {
	fs := newFlags(e, "state", "backup --config FILE OUT")
	if len(args) == 0 || args[0] != "backup" {
		return usageErr(e, fs, "state: want the subcommand \"backup\"")
	}
	path := fs.String("config", "", "configuration file (required)")
	if code, ok := parse(fs, args[1:]); !ok {
		return code
	}
	if *path == "" {
		return usageErr(e, fs, "state backup: --config is required")
	}
	if fs.NArg() != 1 {
		return usageErr(e, fs, "state backup: want one output file")
	}
	out := fs.Arg(0)
	cfg, code, ok := loadForCLI(e, "state", *path)
	if !ok {
		return code
	}
	c, err := daemon(ctx, cfg)
	if err != nil {
		return fail(e, "state", err)
	}
	if c == nil {
		if err := bridge.OfflineBackup(cfg, out); err != nil {
			return fail(e, "state", err)
		}
		fmt.Fprintf(e.stdout, "state backed up to %s (no daemon running)\n", out)
		return exitOK
	}
	// The daemon streams a consistent copy; write it atomically.
	tmp, err := os.CreateTemp(filepath.Dir(out), ".scimbridge-backup-*")
	if err != nil {
		return fail(e, "state", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fail(e, "state", err)
	}
	if err := c.Backup(ctx, tmp); err != nil {
		tmp.Close()
		return fail(e, "state", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fail(e, "state", err)
	}
	if err := tmp.Close(); err != nil {
		return fail(e, "state", err)
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return fail(e, "state", err)
	}
	fmt.Fprintf(e.stdout, "state backed up to %s (hot copy from the running daemon)\n", out)
	return exitOK
}
