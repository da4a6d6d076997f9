package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/scimbridge/scimbridge/bridge"
	"github.com/scimbridge/scimbridge/bridge/config"
	"github.com/scimbridge/scimbridge/bridge/outbound"
)

// loadForCLI loads a configuration and its secrets for a command that talks to the daemon
// or opens the state file.
func loadForCLI(e *env, cmd, path string) (*config.Config, int, bool) {
	cfg, err := loadForDaemon(path)
	if err != nil {
		return nil, fail(e, cmd, err), false
	}
	return cfg, exitOK, true
}

// daemon returns a client of the running daemon, or nil when none runs.
func daemon(ctx context.Context, cfg *config.Config) (*bridge.Control, error) {
	c, err := bridge.DialControl(ctx, cfg.State.Dir)
	if errors.Is(err, bridge.ErrNoDaemon) {
		return nil, nil
	}
	return c, err
}

func cmdStatus(ctx context.Context, e *env, args []string) int {
	fs := newFlags(e, "status", "--config FILE [--json]")
	path := fs.String("config", "", "configuration file (required)")
	asJSON := fs.Bool("json", false, "print the status as JSON")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if *path == "" {
		return usageErr(e, fs, "status: --config is required")
	}
	cfg, code, ok := loadForCLI(e, "status", *path)
	if !ok {
		return code
	}
	c, err := daemon(ctx, cfg)
	if err != nil {
		return fail(e, "status", err)
	}
	var (
		st     bridge.ProvisioningStatus
		reload *bridge.ReloadStatus
		ha     *bridge.HAStatus
		raw    json.RawMessage
		source = "state file (no daemon running)"
	)
	if c != nil {
		source = "running daemon"
		if raw, err = c.Status(ctx); err != nil {
			return fail(e, "status", err)
		}
		var full struct {
			Reload     *bridge.ReloadStatus `json:"reload"`
			Components struct {
				Outbound bridge.ProvisioningStatus `json:"outbound"`
				HA       *bridge.HAStatus          `json:"ha"`
			} `json:"components"`
		}
		if err := json.Unmarshal(raw, &full); err != nil {
			return fail(e, "status", err)
		}
		st = full.Components.Outbound
		reload = full.Reload
		ha = full.Components.HA
	} else {
		if st, err = bridge.OfflineStatus(cfg); err != nil {
			return fail(e, "status", err)
		}
		raw, _ = json.MarshalIndent(map[string]any{"ready": false, "components": map[string]any{"outbound": st}}, "", "  ")
	}
	if *asJSON {
		fmt.Fprintln(e.stdout, strings.TrimSpace(string(raw)))
		return exitOK
	}
	if ha != nil {
		printHA(e.stdout, ha)
		if ha.Role != "leader" {
			fmt.Fprintf(e.stdout, "from: running daemon (standing by: the outbound side runs on %s)\n", orDash(ha.Holder))
			return exitOK
		}
	}
	printStatus(e.stdout, source, st)
	if reload != nil && !reload.Successful {
		fmt.Fprintf(e.stdout, "\nthe last reload (%s) failed; the configuration before it keeps running: %s\n", reload.At.Local().Format(time.RFC3339), reload.Error)
		if len(reload.NeedsRestart) > 0 {
			fmt.Fprintf(e.stdout, "  these keys need a restart: %s\n", strings.Join(reload.NeedsRestart, ", "))
		}
	}
	return exitOK
}

func printHA(w io.Writer, ha *bridge.HAStatus) {
	fmt.Fprintf(w, "ha: %s (instance %s), lease holder %s", ha.Role, ha.Instance, orDash(ha.Holder))
	if !ha.Expires.IsZero() {
		fmt.Fprintf(w, ", expires %s by the holder's clock", ha.Expires.Local().Format(time.RFC3339))
	}
	fmt.Fprintf(w, ", last takeover %s", ago(ha.LastTakeover))
	if ha.LastError != "" {
		fmt.Fprintf(w, ", last error: %s", ha.LastError)
	}
	fmt.Fprintln(w)
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return time.Since(t).Round(time.Second).String() + " ago"
}

func printStatus(w io.Writer, source string, st bridge.ProvisioningStatus) {
	fmt.Fprintf(w, "from: %s\n", source)
	if ch := st.Changes; ch != nil {
		fmt.Fprintf(w, "changes: source %s, cursor %s (advanced %s), lag %.1fs", orDash(ch.Source), orDash(abbrev(ch.Cursor, 40)), ago(ch.CursorUpdated), ch.LagSeconds)
		if ch.LastError != "" {
			fmt.Fprintf(w, ", last error: %s", ch.LastError)
		}
		fmt.Fprintln(w)
	} else {
		fmt.Fprintln(w, "changes: no cursor yet")
	}
	if len(st.Provisioners) == 0 {
		fmt.Fprintln(w, "no provisioners")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PROVISIONER\tTYPE\tOUTBOX\tDEAD\tUSERS (ACTIVE)\tGROUPS\tBREAKER\tTARGET\tRATE\tLAST SUCCESS\tLAST ERROR")
	for _, p := range st.Provisioners {
		breaker := "ok"
		if p.Breaker.Tripped {
			breaker = "TRIPPED"
		}
		target := p.Target.State
		if !p.Target.Until.IsZero() && p.Target.State != outbound.CircuitClosed {
			target += " until " + p.Target.Until.Local().Format("15:04:05")
		}
		lastErr := "-"
		rateCol := "-"
		if r := p.Rate; r != nil {
			rateCol = formatRate(*r)
		}
		if p.LastError != "" {
			lastErr = abbrev(p.LastError, 80) + " (" + ago(p.LastErrorAt) + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d (%d)\t%d\t%s\t%s\t%s\t%s\t%s\n", p.Name, orDash(p.Type), p.OutboxDepth, p.DeadLetters,
			p.Users, p.UsersActive, p.Groups, breaker, target, rateCol, ago(p.LastSuccess), lastErr)
	}
	_ = tw.Flush()
	for _, p := range st.Provisioners {
		if p.Scope != nil {
			fmt.Fprintf(w, "\nprovisioner %q deprovisions nobody: %s\n  fix: restore the group under its configured DN, or change the provisioner's groups and reload\n", p.Name, p.Scope.Error)
		}
		if p.Breaker.Tripped {
			fmt.Fprintf(w, "\nprovisioner %q is stopped by its deletion breaker since %s: %s\n  review with: scimbridge plan --provisioner %s\n  then let it continue with: scimbridge sync --provisioner %s --allow-deletes\n",
				p.Name, p.Breaker.Since.Local().Format(time.RFC3339), p.Breaker.Reason, p.Name, p.Name)
		}
	}
}

// formatRate shows a provisioner's pace: "120/s adaptive (429 12s ago)".
func formatRate(r outbound.RateStatus) string {
	if r.Mode == outbound.PaceNone {
		return "unlimited"
	}
	s := fmt.Sprintf("%.0f/s %s", r.Current, r.Mode)
	if r.Mode == outbound.PaceAdaptive && r.Reason != "" {
		s += " (" + r.Reason + " " + ago(r.Since) + ")"
	}
	if !r.PausedUntil.IsZero() {
		s += ", paused until " + r.PausedUntil.Local().Format("15:04:05")
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func abbrev(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > n {
		return s[:n-1] + "…"
	}
	return s
}
