// Command scimbridge makes an LDAP directory the hub of identity provisioning: a SCIM 2.0
// server into the directory, and provisioners that push its changes to SaaS SCIM APIs.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

// command is one subcommand. run returns the exit code; it reports its own errors.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, env *env, args []string) int
}

// env is what commands share: the streams, so tests can capture them.
type env struct {
	stdout, stderr io.Writer
	stdin          io.Reader
	// reload receives SIGHUP (serve only).
	reload <-chan struct{}
}

// commands lists only what works today.
var commands = []command{
	{"serve", "run the daemon: the directory pool, admin listener, inbound SCIM server and provisioners", cmdServe},
	{"demo", "run a private directory, a sample SCIM target and the bridge between them", cmdDemo},
	{"check-config", "validate a configuration file without connecting anywhere", cmdCheckConfig},
	{"doctor", "check online everything the setup needs (bind, access, change log, limits, schema, TLS, targets): PASS/WARN/FAIL with the fix", cmdDoctor},
	{"plan", "show what a full sync would do now, per provisioner, with the users named; writes nothing", cmdPlan},
	{"sync", "one provisioning pass now (--full: full reconcile; --allow-deletes: release the deletion breaker)", cmdSync},
	{"status", "per provisioner: cursor, lag, outbox depth, dead letters, breakers, last error", cmdStatus},
	{"deadletter", "list | retry | drop what could not be delivered", cmdDeadLetter},
	{"state", "state backup: a consistent hot copy of the state file", cmdState},
	{"changes", "print the directory's change stream as the bridge reads it, one JSON line per event", cmdChanges},
	{"selftest", "replay Entra ID's provisioning conversation against a SCIM endpoint", cmdSelftest},
	{"token", "token new: make an inbound bearer token and its config line", cmdToken},
	{"version", "print version information", cmdVersion},
}

func main() { os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	name := args[0]
	for _, c := range commands {
		if c.name != name {
			continue
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		reload := make(chan struct{}, 1)
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		done := make(chan struct{})
		forwarded := make(chan struct{})
		defer func() {
			signal.Stop(hup)
			close(done)
			<-forwarded
		}()
		go func() {
			defer close(forwarded)
			for {
				select {
				case <-done:
					return
				case <-hup:
					select {
					case reload <- struct{}{}:
					default: // a reload is already pending
					}
				}
			}
		}()
		return c.run(ctx, &env{stdout: stdout, stderr: stderr, stdin: stdin, reload: reload}, args[1:])
	}
	fmt.Fprintf(stderr, "scimbridge: unknown command %q\n", name)
	usage(stderr)
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: scimbridge <command> [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "commands:")
	cs := append([]command(nil), commands...)
	sort.Slice(cs, func(i, j int) bool { return cs[i].name < cs[j].name })
	for _, c := range cs {
		fmt.Fprintf(w, "  %-14s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'scimbridge <command> -h' for a command's flags.")
}

// newFlags builds a command's flag set; parse errors are usage errors (exit 2).
func newFlags(e *env, name, args string) *flag.FlagSet {
	fs := flag.NewFlagSet("scimbridge "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "usage: scimbridge %s %s\n", name, args)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses flags; it returns an exit code and false when the command must stop.
func parse(fs *flag.FlagSet, args []string) (int, bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK, false
		}
		return exitUsage, false
	}
	return exitOK, true
}

// fail prints each line of err (errors.Join puts one problem per line) prefixed with the
// command, and returns exitFail.
func fail(e *env, cmd string, err error) int {
	for _, line := range strings.Split(err.Error(), "\n") {
		if line != "" {
			fmt.Fprintf(e.stderr, "scimbridge %s: %s\n", cmd, line)
		}
	}
	return exitFail
}

func usageErr(e *env, fs *flag.FlagSet, msg string) int {
	fmt.Fprintf(e.stderr, "scimbridge: %s\n", msg)
	fs.Usage()
	return exitUsage
}
