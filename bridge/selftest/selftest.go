package selftest

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"
)

const (
	// defaultTimeout bounds one request when Options.Timeout is zero. Entra ID itself gives
	// up on slow endpoints, so an endpoint slower than this is worth a FAIL.
	defaultTimeout = 15 * time.Second
	// cleanupTimeout bounds the whole cleanup. It runs under a fresh context so that an
	// interrupted run still deletes what it created, but it must not hang an admin's
	// Ctrl-C on an endpoint that stopped answering.
	cleanupTimeout = 30 * time.Second
	// maxResponseBytes bounds every response body read.
	maxResponseBytes = 4 << 20
)

// Options configures a Run.
type Options struct {
	// URL is the SCIM base URL, the "Tenant URL" Entra ID is given, e.g.
	// "https://scim.example.com/scim/v2". Required.
	URL string
	// Token is the bearer token, Entra ID's "Secret Token". Required. It is sent only in the
	// Authorization header and never appears in output or in the report.
	Token string
	// HTTPClient sends the requests. Defaults to a client with its own transport. Redirects
	// are never followed (a copy of the client is used with its redirect policy replaced),
	// and InsecureSkipVerify is ignored when HTTPClient is set.
	HTTPClient *http.Client
	// Out receives one line per step as it completes, then the summary. Nil discards them.
	Out io.Writer
	// Prefix starts the userName, displayName and externalId of everything the run creates.
	// Defaults to "scimbridge-selftest-" and 8 random hex digits. It must be 3 to 40 of
	// A-Z a-z 0-9 . _ - and start with a letter or digit.
	Prefix string
	// Timeout bounds each request. Defaults to 15s.
	Timeout time.Duration
	// InsecureSkipVerify disables verification of the endpoint's TLS certificate (test
	// endpoints with self-signed certificates only).
	InsecureSkipVerify bool
	// Keep leaves the created users and groups on the endpoint, for debugging: the delete
	// steps are skipped and the cleanup lists what it kept instead of deleting it.
	Keep bool
}

var prefixRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{2,39}$`)

// Validate reports every problem with the options at once.
func (o Options) Validate() error {
	var errs []error
	if o.URL == "" {
		errs = append(errs, errors.New("selftest: Options.URL is required"))
	} else if u, err := url.Parse(o.URL); err != nil {
		errs = append(errs, fmt.Errorf("selftest: Options.URL: %w", err))
	} else {
		switch {
		case u.Scheme != "http" && u.Scheme != "https":
			errs = append(errs, fmt.Errorf("selftest: Options.URL: scheme %q (want \"https\" or \"http\")", u.Scheme))
		case u.Host == "":
			errs = append(errs, errors.New("selftest: Options.URL: no host"))
		case u.User != nil:
			errs = append(errs, errors.New("selftest: Options.URL: must not carry credentials (the token goes in Options.Token)"))
		case u.RawQuery != "" || u.Fragment != "":
			errs = append(errs, errors.New("selftest: Options.URL: must not have a query or fragment"))
		}
	}
	switch {
	case o.Token == "":
		errs = append(errs, errors.New("selftest: Options.Token is required"))
	case strings.ContainsAny(o.Token, "\r\n"):
		errs = append(errs, errors.New("selftest: Options.Token contains a line break"))
	}
	if o.Prefix != "" && !prefixRe.MatchString(o.Prefix) {
		errs = append(errs, fmt.Errorf("selftest: Options.Prefix %q: want 3 to 40 of A-Z a-z 0-9 . _ - starting with a letter or digit", o.Prefix))
	}
	if o.Timeout < 0 {
		errs = append(errs, fmt.Errorf("selftest: Options.Timeout %s is negative", o.Timeout))
	}
	return errors.Join(errs...)
}

// Status is the outcome of a step.
type Status int

// Step outcomes.
const (
	// Pass means the endpoint answered as Entra ID relies on.
	Pass Status = iota + 1
	// Fail means it did not; Step.Detail says how.
	Fail
	// Skip means the step did not run: a step it needs did not pass, the run was
	// interrupted, or Options.Keep is set. Step.Detail says which.
	Skip
)

// String returns "PASS", "FAIL" or "SKIP".
func (s Status) String() string {
	switch s {
	case Pass:
		return "PASS"
	case Fail:
		return "FAIL"
	case Skip:
		return "SKIP"
	}
	return fmt.Sprintf("Status(%d)", int(s))
}

// Step is the result of one step of the conversation, or of deleting one resource at the
// end (those steps are named "cleanup: …").
type Step struct {
	Name   string
	Status Status
	// Detail is the status code(s) seen for a pass, what went wrong for a failure, and the
	// reason for a skip.
	Detail   string
	Duration time.Duration
}

// String formats the step as one output line.
func (s Step) String() string {
	switch s.Status {
	case Pass:
		if s.Detail == "" {
			return fmt.Sprintf("PASS  %s (%dms)", s.Name, s.Duration.Milliseconds())
		}
		return fmt.Sprintf("PASS  %s (%s, %dms)", s.Name, s.Detail, s.Duration.Milliseconds())
	default:
		return fmt.Sprintf("%s  %s: %s", s.Status, s.Name, s.Detail)
	}
}

// Report is the result of a Run.
type Report struct {
	Steps                   []Step
	Passed, Failed, Skipped int
}

// OK reports whether at least one step ran and none failed.
func (r Report) OK() bool { return r.Failed == 0 && r.Passed > 0 }

// Step returns the step named name.
func (r Report) Step(name string) (Step, bool) {
	for _, s := range r.Steps {
		if s.Name == name {
			return s, true
		}
	}
	return Step{}, false
}

// Summary is the last line of the output. It starts with "selftest summary:" so that CI
// parsers looking for a bare "N passed, M failed" line do not mistake it for a test run's.
func (r Report) Summary() string {
	return fmt.Sprintf("selftest summary: %d passed, %d failed, %d skipped", r.Passed, r.Failed, r.Skipped)
}

// Run replays the conversation against opts.URL, writing each step's line to opts.Out as it
// completes. Failed steps are in the Report, not the error: the error is for invalid
// options, and for a cancelled ctx, in which case the steps not run are skipped, the
// cleanup still runs (under a fresh deadline of its own), and the Report holds everything
// that happened.
func Run(ctx context.Context, opts Options) (Report, error) {
	if err := opts.Validate(); err != nil {
		return Report{}, err
	}
	r, err := newRunner(opts)
	if err != nil {
		return Report{}, err
	}
	r.conversation(ctx)
	r.cleanup(ctx)
	r.printf("%s\n", r.report.Summary())
	if ctx.Err() != nil {
		return r.report, fmt.Errorf("selftest: interrupted: %w", context.Cause(ctx))
	}
	return r.report, nil
}

// runner holds one run's state. Runs are sequential: a runner is not safe for concurrent use.
type runner struct {
	opts    Options
	base    string // opts.URL without a trailing slash
	prefix  string
	timeout time.Duration
	client  *http.Client
	report  Report
	status  map[string]Status
	// skipAll, when set, skips every remaining step of the conversation with this reason.
	skipAll string

	// owned lists what this run created, or may have created, in creation order.
	owned []*resource
	// The resources the conversation works with.
	alice, bob, carol, group, group2 *resource
}

// resource is a user or group this run created (or tried to).
type resource struct {
	kind string // "Users" or "Groups"
	// id is "" until a create answers with one. A resource without an id may exist all the
	// same (its create got no answer, a server error, or no id): the cleanup looks it up by
	// name.
	id         string
	name       string // the userName or displayName it has now, as far as the run knows
	externalID string
	given      string // a user's givenName
	// gone is set once the resource is known not to exist (deleted, or never created).
	gone bool
}

func (res *resource) noun() string {
	if res.kind == "Groups" {
		return "group"
	}
	return "user"
}

func newRunner(opts Options) (*runner, error) {
	prefix := opts.Prefix
	if prefix == "" {
		suffix, err := randomHex(4)
		if err != nil {
			return nil, err
		}
		prefix = "scimbridge-selftest-" + suffix
	}
	timeout := opts.Timeout
	if timeout == 0 {
		timeout = defaultTimeout
	}
	var client http.Client
	if opts.HTTPClient != nil {
		client = *opts.HTTPClient
	} else {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		if opts.InsecureSkipVerify {
			tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // an explicit opt-in for test endpoints
		}
		client.Transport = tr
	}
	// A SCIM endpoint has no business redirecting; following one would also hide it.
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &runner{
		opts:    opts,
		base:    strings.TrimRight(opts.URL, "/"),
		prefix:  prefix,
		timeout: timeout,
		client:  &client,
		status:  map[string]Status{},
	}, nil
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("selftest: random: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// randomGUID returns a random RFC 4122 version 4 UUID, like the userName Entra ID's Test
// Connection looks for.
func randomGUID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("selftest: random: %w", err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32], nil
}

func (r *runner) printf(format string, args ...any) {
	if r.opts.Out != nil {
		_, _ = fmt.Fprintf(r.opts.Out, format, args...)
	}
}

// redact removes the token from text that may echo it (an endpoint's error body can).
func (r *runner) redact(s string) string {
	if r.opts.Token != "" {
		s = strings.ReplaceAll(s, r.opts.Token, "<redacted>")
	}
	return strings.Join(strings.Fields(s), " ")
}

func (r *runner) record(s Step) {
	s.Detail = r.redact(s.Detail)
	r.report.Steps = append(r.report.Steps, s)
	r.status[s.Name] = s.Status
	switch s.Status {
	case Pass:
		r.report.Passed++
	case Fail:
		r.report.Failed++
	case Skip:
		r.report.Skipped++
	}
	r.printf("%s\n", s)
}

// stepDef is one step of the conversation.
type stepDef struct {
	name string
	// needs names the steps that must have passed for this one to mean anything.
	needs []string
	// deletes marks the steps Options.Keep skips.
	deletes bool
	// fn runs the step: a nil error passes it with the detail, an error fails it with the
	// error's text.
	fn func(ctx context.Context) (string, error)
}

func (r *runner) do(ctx context.Context, d stepDef) {
	if reason := r.skipReason(ctx, d); reason != "" {
		r.record(Step{Name: d.name, Status: Skip, Detail: reason})
		return
	}
	start := time.Now()
	detail, err := d.fn(ctx)
	s := Step{Name: d.name, Status: Pass, Detail: detail, Duration: time.Since(start)}
	if err != nil {
		s.Status, s.Detail = Fail, err.Error()
		if ctx.Err() != nil {
			// Cut short by the caller, not failed by the endpoint.
			s.Status, s.Detail = Skip, "interrupted"
		}
	}
	r.record(s)
}

func (r *runner) skipReason(ctx context.Context, d stepDef) string {
	if ctx.Err() != nil {
		return "interrupted"
	}
	if r.skipAll != "" {
		return r.skipAll
	}
	for _, n := range d.needs {
		if r.status[n] != Pass {
			return fmt.Sprintf("needs %q, which did not pass", n)
		}
	}
	if d.deletes && r.opts.Keep {
		return "kept (deletion disabled)"
	}
	return ""
}

// cleanup deletes what the run created and the conversation did not delete, groups first
// (their members are users). It runs under a fresh context so that a cancelled run still
// cleans up, bounded by cleanupTimeout.
func (r *runner) cleanup(parent context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(parent), cleanupTimeout)
	defer cancel()
	for _, kind := range []string{"Groups", "Users"} {
		for i := len(r.owned) - 1; i >= 0; i-- {
			res := r.owned[i]
			if res.kind != kind || res.gone {
				continue
			}
			name := fmt.Sprintf("cleanup: delete %s %s", res.noun(), res.name)
			start := time.Now()
			if r.opts.Keep {
				r.record(Step{Name: name, Status: Skip, Detail: "kept (deletion disabled), id " + orUnknown(res.id)})
				continue
			}
			detail, err := r.remove(ctx, res)
			s := Step{Name: name, Status: Pass, Detail: detail, Duration: time.Since(start)}
			var notOurs *notOursError
			switch {
			case errors.As(err, &notOurs):
				s.Status, s.Detail = Fail, fmt.Sprintf("%v; check by hand whether a %s %s exists", err, res.noun(), res.name)
			case err != nil:
				s.Status = Fail
				s.Detail = fmt.Sprintf("%v; left behind: %s id %s (%s), delete it by hand", err, res.noun(), orUnknown(res.id), res.name)
			}
			r.record(s)
		}
	}
}

func orUnknown(id string) string {
	if id == "" {
		return "unknown"
	}
	return id
}
