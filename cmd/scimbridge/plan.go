package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/rs/zerolog"

	"github.com/scimbridge/scimbridge/bridge"
	"github.com/scimbridge/scimbridge/bridge/config"
	"github.com/scimbridge/scimbridge/bridge/outbound"
	"github.com/scimbridge/scimbridge/ldapstore"
)

// names is a repeatable string flag.
type names []string

func (n *names) String() string     { return strings.Join(*n, ",") }
func (n *names) Set(v string) error { *n = append(*n, v); return nil }

var _ flag.Value = (*names)(nil)

// cliLogger is the logger of the commands that run the engine in-process: warnings and
// errors only, readable on a terminal.
func cliLogger(e *env, cfg *config.Config) zerolog.Logger {
	c := cfg.Log
	c.Format = "console"
	if c.Level == "info" || c.Level == "debug" {
		c.Level = "warn"
	}
	logger, _ := newLogger(e.stderr, c)
	return logger
}

// openStore connects to the directory for a command that runs without the daemon.
// It settles the configuration's dialect-dependent defaults with the dialect it detects.
func openStore(ctx context.Context, cfg *config.Config, logger zerolog.Logger) (*ldapstore.Store, error) {
	store, err := ldapstore.Open(ctx, bridge.LDAPConfig(cfg), logger)
	if err != nil {
		return nil, err
	}
	if err := bridge.ApplyDialect(ctx, cfg, store); err != nil {
		store.Close()
		return nil, err
	}
	return store, nil
}

func cmdPlan(ctx context.Context, e *env, args []string) int {
	fs := newFlags(e, "plan", "--config FILE [--provisioner NAME]… [--limit N] [--no-target] [--json]")
	path := fs.String("config", "", "configuration file (required): its provisioners are planned, also when the running daemon has another configuration")
	var provs names
	fs.Var(&provs, "provisioner", "plan only this provisioner (repeatable)")
	limit := fs.Int("limit", 50, "users named per category (0: all)")
	noTarget := fs.Bool("no-target", false, "do not list the targets (adoptions of existing accounts are then not shown)")
	asJSON := fs.Bool("json", false, "print the plans as JSON")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if *path == "" {
		return usageErr(e, fs, "plan: --config is required")
	}
	cfg, code, ok := loadForCLI(e, "plan", *path)
	if !ok {
		return code
	}
	abs, err := filepath.Abs(*path)
	if err != nil {
		return fail(e, "plan", err)
	}
	req := bridge.PlanRequest{Config: abs, Provisioners: provs, NoTarget: *noTarget}
	c, err := daemon(ctx, cfg)
	if err != nil {
		return fail(e, "plan", err)
	}
	var plans []outbound.Plan
	if c != nil {
		plans, err = c.Plan(ctx, req)
	} else {
		logger := cliLogger(e, cfg)
		store, serr := openStore(ctx, cfg, logger)
		if serr != nil {
			return fail(e, "plan", serr)
		}
		defer store.Close()
		req.Config = ""
		plans, err = bridge.OfflinePlan(ctx, cfg, store, req, logger)
	}
	if err != nil {
		return fail(e, "plan", err)
	}
	if *asJSON {
		out, _ := json.MarshalIndent(plans, "", "  ")
		fmt.Fprintln(e.stdout, string(out))
		return exitOK
	}
	for i, p := range plans {
		if i > 0 {
			fmt.Fprintln(e.stdout)
		}
		printPlan(e.stdout, p, *limit)
	}
	return exitOK
}

func printPlan(w io.Writer, p outbound.Plan, limit int) {
	adopts := 0
	for _, u := range p.Creates {
		if u.Adopt {
			adopts++
		}
	}
	fmt.Fprintf(w, "provisioner %q: %d creates", p.Provisioner, len(p.Creates))
	if adopts > 0 {
		fmt.Fprintf(w, " (%d adopting an existing account)", adopts)
	}
	fmt.Fprintf(w, ", %d updates, %d disables, %d deletes, %d unchanged\n", len(p.Updates), len(p.Disables), len(p.Deletes), p.Unchanged)
	section := func(verb string, users []outbound.PlanUser) {
		for i, u := range users {
			if limit > 0 && i == limit {
				fmt.Fprintf(w, "  … and %d more %ss (--limit 0 or --json lists them all)\n", len(users)-limit, verb)
				return
			}
			line := fmt.Sprintf("  %-8s %s", verb, u.Name)
			if u.DN != "" && u.DN != u.Name {
				line += "  (" + u.DN + ")"
			}
			if u.Adopt {
				line += "  adopt target account " + u.TargetID
			}
			if len(u.Changes) > 0 {
				line += ": " + strings.Join(u.Changes, ", ")
			}
			fmt.Fprintln(w, line)
		}
	}
	section("create", p.Creates)
	section("update", p.Updates)
	section("disable", p.Disables)
	section("delete", p.Deletes)
	for _, g := range p.Groups {
		line := fmt.Sprintf("  group    %s %q", g.Op, g.Name)
		if g.MembersAdd > 0 || g.MembersRemove > 0 {
			line += fmt.Sprintf(" (+%d −%d members)", g.MembersAdd, g.MembersRemove)
		}
		fmt.Fprintln(w, line)
	}
	if p.Pending > 0 || p.DeadLetters > 0 {
		fmt.Fprintf(w, "  outbox: %d pending, %d dead letters\n", p.Pending, p.DeadLetters)
	}
	for _, warn := range p.Warnings {
		fmt.Fprintf(w, "  warning: %s\n", warn)
	}
	if p.Tripped {
		fmt.Fprintf(w, "  ! the deletion breaker is tripped: nothing is delivered until scimbridge sync --provisioner %s --allow-deletes\n", p.Provisioner)
	} else if p.WouldTrip {
		fmt.Fprintf(w, "  ! %d deprovisions exceed max_deletes %d: a sync would trip the deletion breaker and stop this provisioner until scimbridge sync --provisioner %s --allow-deletes\n",
			p.Deprovisions(), p.MaxDeletes, p.Provisioner)
	}
}
