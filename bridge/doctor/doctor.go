package doctor

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/scimbridge/scimbridge/bridge/config"
	"github.com/scimbridge/scimbridge/ldapstore"
)

// Status is a check's verdict.
type Status int

// The verdicts, in increasing gravity. A Skip is a check that could not run because an
// earlier one failed (the bind, the change log).
const (
	Pass Status = iota
	Skip
	Warn
	Fail
)

func (s Status) String() string {
	switch s {
	case Pass:
		return "PASS"
	case Skip:
		return "SKIP"
	case Warn:
		return "WARN"
	}
	return "FAIL"
}

// Result is one line of the report.
type Result struct {
	Status Status
	// Check names what was checked ("ldap.bind", `provisioner "okta"`).
	Check string
	// Message says what was found.
	Message string
	// Fix says what to do about a WARN or FAIL.
	Fix string
}

// String is the report line: "FAIL ldap.bind: … — fix: …".
func (r Result) String() string {
	s := fmt.Sprintf("%s %s: %s", r.Status, r.Check, r.Message)
	if r.Fix != "" && r.Status != Pass && r.Status != Skip {
		s += " — fix: " + r.Fix
	}
	return s
}

// Options are what a run needs.
type Options struct {
	// Config is the configuration to check, its secrets loaded (config.LoadSecrets).
	Config *config.Config
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Logger receives what the components log while the checks run (quiet by default).
	Logger zerolog.Logger
}

// run is the state shared by the checks of one Run.
type run struct {
	cfg   *config.Config
	now   func() time.Time
	log   zerolog.Logger
	store *ldapstore.Store // nil when the bind failed
	dse   *ldapstore.RootDSE
	// schema is the directory's subschema (nil until read, or unreadable).
	schema *ldapstore.Schema
	// olc holds cn=config's entries when the service account may read them (OpenLDAP).
	olc      *olcConfig
	olcTried bool
	// logReadable is set once the change log was read successfully.
	logReadable bool
}

// check is one entry of the checklist: it returns its lines (usually one). Adding a check is
// adding one function to checks.
type check struct {
	name string
	// needsLDAP checks are reported as skipped when the bind failed.
	needsLDAP bool
	run       func(ctx context.Context, r *run) []Result
}

// checks is the checklist, in the order of the README's setup steps.
var checks = []check{
	{"ldap.bind", false, checkBind},
	{"ldap.transport", false, checkTransport},
	{"ldap.users.base_dn", true, checkUsersBase},
	{"ldap.groups.base_dn", true, checkGroupsBase},
	{"changes", true, checkChangeLog},
	{"ldap.size_limit", true, checkSizeLimit},
	{"ldap.overlays", true, checkOverlays},
	{"ldap.schema", true, checkSchema},
	{"inbound.tls", false, checkInboundTLS},
	{"inbound.fence", true, checkFence},
	{"admin.listen", false, checkAdmin},
	{"ha.lease", true, checkHA},
	{"provisioner", false, checkProvisioners},
}

// Run runs every check and returns the report lines in order. It never panics on a broken
// setup: every problem is a FAIL line.
func Run(ctx context.Context, o Options) []Result {
	r := &run{cfg: o.Config, now: o.Now, log: o.Logger}
	if r.now == nil {
		r.now = time.Now
	}
	defer func() {
		if r.store != nil {
			r.store.Close()
		}
	}()
	var out []Result
	for _, c := range checks {
		if c.needsLDAP && r.store == nil {
			out = append(out, Result{Status: Skip, Check: c.name, Message: "not checked: the bind failed"})
			continue
		}
		out = append(out, c.run(ctx, r)...)
	}
	return out
}

// Worst is the gravest status among results (Pass for none).
func Worst(results []Result) Status {
	w := Pass
	for _, r := range results {
		if r.Status > w {
			w = r.Status
		}
	}
	return w
}

// Print writes one line per result and a summary line.
func Print(w io.Writer, results []Result) {
	counts := map[Status]int{}
	for _, r := range results {
		fmt.Fprintln(w, r.String())
		counts[r.Status]++
	}
	var parts []string
	for _, s := range []Status{Pass, Warn, Fail, Skip} {
		if counts[s] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[s], strings.ToLower(s.String())))
		}
	}
	fmt.Fprintf(w, "doctor: %s\n", strings.Join(parts, ", "))
}

func pass(check, format string, args ...any) Result {
	return Result{Status: Pass, Check: check, Message: fmt.Sprintf(format, args...)}
}

func warn(check, fix, format string, args ...any) Result {
	return Result{Status: Warn, Check: check, Message: fmt.Sprintf(format, args...), Fix: fix}
}

func fail(check, fix, format string, args ...any) Result {
	return Result{Status: Fail, Check: check, Message: fmt.Sprintf(format, args...), Fix: fix}
}

func skip(check, format string, args ...any) Result {
	return Result{Status: Skip, Check: check, Message: fmt.Sprintf(format, args...)}
}
