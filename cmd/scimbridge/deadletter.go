package main

import (
	"context"
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/scimbridge/scimbridge/bridge"
	"github.com/scimbridge/scimbridge/bridge/outbound"
)

func cmdDeadLetter(ctx context.Context, e *env, args []string) int {
	const use = "list|retry|drop --config FILE --provisioner NAME [--all] [--json] [ID…]"
	fs := newFlags(e, "deadletter", use)
	if len(args) == 0 || (args[0] != "list" && args[0] != "retry" && args[0] != "drop") {
		return usageErr(e, fs, "deadletter: want the subcommand list, retry or drop")
	}
	action := args[0]
	path := fs.String("config", "", "configuration file (required)")
	prov := fs.String("provisioner", "", "the provisioner (required)")
	all := fs.Bool("all", false, "retry or drop every dead letter of the provisioner")
	asJSON := fs.Bool("json", false, "list as JSON (with the target's error bodies)")
	if code, ok := parse(fs, args[1:]); !ok {
		return code
	}
	ids := fs.Args()
	switch {
	case *path == "":
		return usageErr(e, fs, "deadletter: --config is required")
	case *prov == "":
		return usageErr(e, fs, "deadletter: --provisioner is required")
	case action != "list" && len(ids) == 0 && !*all:
		return usageErr(e, fs, "deadletter "+action+": name the dead letters (IDs from deadletter list) or pass --all")
	case action != "list" && len(ids) > 0 && *all:
		return usageErr(e, fs, "deadletter "+action+": IDs and --all do not go together")
	}
	cfg, code, ok := loadForCLI(e, "deadletter", *path)
	if !ok {
		return code
	}
	c, err := daemon(ctx, cfg)
	if err != nil {
		return fail(e, "deadletter", err)
	}
	var (
		list []outbound.DeadLetterView
		done []string
	)
	if c != nil {
		switch action {
		case "list":
			list, err = c.DeadLetters(ctx, *prov)
		case "retry":
			done, err = c.Retry(ctx, *prov, ids)
		case "drop":
			done, err = c.Drop(ctx, *prov, ids)
		}
	} else {
		known := false
		for _, p := range cfg.Provisioners {
			known = known || p.Name == *prov
		}
		if !known {
			return fail(e, "deadletter", fmt.Errorf("no provisioner %q in %s", *prov, *path))
		}
		list, done, err = bridge.OfflineDeadLetters(cfg, action, *prov, ids)
	}
	if err != nil {
		return fail(e, "deadletter", err)
	}
	switch action {
	case "list":
		if *asJSON {
			if list == nil {
				list = []outbound.DeadLetterView{}
			}
			out, _ := json.MarshalIndent(list, "", "  ")
			fmt.Fprintln(e.stdout, string(out))
			return exitOK
		}
		if len(list) == 0 {
			fmt.Fprintf(e.stdout, "provisioner %q has no dead letters\n", *prov)
			return exitOK
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tKIND\tDN\tATTEMPTS\tFAILED\tSTATUS\tERROR")
		for _, d := range list {
			status := "-"
			if d.Status != 0 {
				status = fmt.Sprint(d.Status)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", d.ID, orDash(d.Kind), orDash(d.DN), d.Attempts,
				d.Failed.Local().Format(time.DateTime), status, abbrev(d.Error, 120))
		}
		_ = tw.Flush()
	case "retry":
		fmt.Fprintf(e.stdout, "provisioner %q: %d dead letters queued again (delivered with the entries' current state)\n", *prov, len(done))
		if c == nil && len(done) > 0 {
			fmt.Fprintln(e.stdout, "no daemon is running: they are delivered when it starts, or now with scimbridge sync")
		}
	case "drop":
		fmt.Fprintf(e.stdout, "provisioner %q: %d dead letters dropped\n", *prov, len(done))
	}
	return exitOK
}
