package targets

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/rs/zerolog"

	"github.com/scimbridge/scimbridge/mapping"
)

// Result is what a target tells the bridge about one resource after an operation or a lookup.
type Result struct {
	// ID is the target's id of the resource, the value the bridge keeps in its id map.
	ID string
	// Kind says whether the resource is a user or a group.
	Kind mapping.Kind
	// Attrs is the resource as the target returned it (JSON-shaped); it may be nil, for
	// example after a PATCH answered with 204 No Content.
	Attrs map[string]any
	// Version is the target's version of the resource (SCIM meta.version or the ETag), if any.
	Version string
}

// Target is one outbound destination: a SaaS application's SCIM API, or a dry-run logger.
//
// Implementations are safe for concurrent use: a provisioner runs several workers against one
// Target (keeping per-resource order itself).
type Target interface {
	// Apply performs one operation and returns what the id map needs (the target's id).
	//
	// Answers that mean "already done" under at-least-once delivery are successes: deleting a
	// resource that is gone, creating one that exists (the existing one is adopted and
	// returned), removing a member that is absent. Transient failures (network errors, 5xx,
	// 429) return a *RetryableError, failures that will never succeed a *PermanentError.
	//
	// When ctx is cancelled or its deadline passes, Apply aborts the request in flight and any
	// wait between quick retries, and returns an error wrapping ctx.Err() (neither retryable
	// nor permanent): the operation may or may not have reached the target, so the caller
	// must deliver it again later.
	Apply(ctx context.Context, op mapping.Op) (Result, error)

	// Find looks a user or group up by a match attribute (for adoption, and to make a create
	// safe to repeat). It reports found = false, with a nil error, when nothing matches, and
	// an error when more than one resource matches. Errors are classified as for Apply; when
	// ctx is cancelled Find returns an error wrapping ctx.Err().
	Find(ctx context.Context, kind mapping.Kind, attr, value string) (Result, bool, error)
}

// Lister is the optional ability of a Target to enumerate every resource of a kind (reconcile,
// drift reports).
type Lister interface {
	// List calls fn once per resource of kind, page by page, never holding the whole target
	// in memory. It stops at the first error fn returns and returns it. When ctx is cancelled
	// List stops before the next page and returns an error wrapping ctx.Err(); fn may have
	// been called for part of the resources.
	List(ctx context.Context, kind mapping.Kind, fn func(Result) error) error
}

// Closer is the optional ability of a Target to release what it holds (idle connections, token
// refreshers) when the bridge replaces or stops it. Close does not wait for calls in flight.
type Closer interface {
	Close() error
}

// Prober is the optional ability of a Target to check, changing nothing, that it can be
// reached and accepts the configured credentials (`scimbridge doctor`).
type Prober interface {
	// Probe makes one read-only, authenticated request, without quick retries, and returns
	// what the target said about itself. An error wraps ErrUnreachable when no useful answer
	// came (network, TLS, timeout, or an answer meaning "unavailable": 5xx, 429),
	// ErrCredentialsRejected when the target or its token endpoint refused the credentials,
	// and is a *PermanentError for any other unexpected answer.
	// When ctx is cancelled Probe returns an error wrapping ctx.Err().
	Probe(ctx context.Context) (ProbeResult, error)
}

// ProbeResult is a target's answer to a Probe.
type ProbeResult struct {
	// Date is the target's clock, from its HTTP Date header; zero when it sent none.
	Date time.Time
	// Detail says what was asked, e.g. "GET /ServiceProviderConfig: 200".
	Detail string
}

// Errors a Probe wraps.
var (
	// ErrUnreachable means the target did not answer, or answered that it is unavailable.
	ErrUnreachable = errors.New("target unreachable")
	// ErrCredentialsRejected means the target (or its OAuth2 token endpoint) refused the
	// credentials.
	ErrCredentialsRejected = errors.New("credentials rejected")
)

// Progress tells whoever watches ctx (the daemon's watchdog) that a long operation is still
// moving: targets call it before each HTTP try and each listed page, so a slow call with
// retries is told apart from a stuck one. It does nothing when ctx carries no watcher.
func Progress(ctx context.Context) {
	if fn, ok := ctx.Value(progressKey{}).(func()); ok {
		fn()
	}
}

// WithProgress returns ctx carrying fn, which Progress calls.
func WithProgress(ctx context.Context, fn func()) context.Context {
	return context.WithValue(ctx, progressKey{}, fn)
}

type progressKey struct{}

// Allowed reports whether a request may leave now: nil unless ctx carries a gate (WithGate)
// that refuses. Targets consult it right before each HTTP try, quick retries included, so a
// fenced instance sends nothing.
func Allowed(ctx context.Context) error {
	if fn, ok := ctx.Value(gateKey{}).(func() error); ok {
		return fn()
	}
	return nil
}

// WithGate returns ctx carrying allow, which Allowed calls: with several instances, the
// leader's lease (an instance whose lease may have lapsed must not push).
func WithGate(ctx context.Context, allow func() error) context.Context {
	return context.WithValue(ctx, gateKey{}, allow)
}

type gateKey struct{}

// Config is a target type's configuration: the bridge decodes a provisioner's type-specific
// TOML keys into the value its registry's factory returns, then opens it.
type Config interface {
	// Open builds the Target. It reads the files the configuration names (secrets,
	// certificates) but connects nowhere: a target that is down must not stop the daemon.
	// name is the provisioner's name; logger is already scoped to the provisioner.
	Open(name string, logger zerolog.Logger) (Target, error)
}

// Validator is implemented by configs that can check themselves without touching files or
// the network (check-config). Validate reports every problem at once, combined with
// errors.Join, each prefixed with the key it is about.
type Validator interface {
	Validate() error
}

// Warner is implemented by configs that can name settings which work but deserve the admin's
// attention, such as a credential sent over plain HTTP. Each warning is prefixed with its key.
type Warner interface {
	Warnings() []string
}

// IsLoopbackHost reports whether host (a name or an IP address, without port) is this machine
// itself: "localhost" or a loopback address. Traffic to it never crosses a network.
func IsLoopbackHost(host string) bool {
	host = strings.TrimSuffix(strings.Trim(host, "[]"), ".")
	if strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// DirectorySetter is implemented by configs holding file paths: the bridge calls SetDirectory
// with the directory of the configuration file before Open, and relative paths resolve
// against it.
type DirectorySetter interface {
	SetDirectory(dir string)
}

// InstanceSetter is implemented by configs of targets that name the bridge instance in what
// they send (the HTTP User-Agent): the bridge calls SetInstance with ha.instance_id before
// Open, so a target's logs tell which of several instances pushed.
type InstanceSetter interface {
	SetInstance(id string)
}

// ResolvePath returns p made absolute against dir when p is relative and dir is set, and p
// unchanged otherwise (including the empty string).
func ResolvePath(dir, p string) string {
	if p == "" || dir == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

// RetryableError is a failure that may succeed if the operation is delivered again later:
// network errors, timeouts, 5xx and 429 answers.
type RetryableError struct {
	Err error
	// After is how long the target asked us to wait (Retry-After), or 0 when it did not say.
	After time.Duration
}

func (e *RetryableError) Error() string {
	if e.After > 0 {
		return fmt.Sprintf("%v (retry after %s)", e.Err, e.After)
	}
	return e.Err.Error()
}

func (e *RetryableError) Unwrap() error { return e.Err }

// PermanentError is a failure that delivering the same operation again will not fix (a 4xx
// other than those meaning "already done", rejected credentials): the item goes to the
// dead-letter store with Body for the admin.
type PermanentError struct {
	// Status is the HTTP status the target answered, or 0 when the failure is ours (an
	// operation the target type cannot perform, a bad configuration).
	Status int
	// Body is the target's answer, truncated to MaxErrorBody bytes.
	Body string
	Err  error
}

func (e *PermanentError) Error() string { return e.Err.Error() }

func (e *PermanentError) Unwrap() error { return e.Err }

// MaxErrorBody is how much of a target's error answer a PermanentError keeps.
const MaxErrorBody = 2048

// IsRetryable reports whether err (or an error it wraps) is a *RetryableError, and how long
// the target asked to wait before the next attempt (0 if it did not say).
func IsRetryable(err error) (time.Duration, bool) {
	if re, ok := errors.AsType[*RetryableError](err); ok {
		return re.After, true
	}
	return 0, false
}

// IsPermanent reports whether err (or an error it wraps) is a *PermanentError.
func IsPermanent(err error) bool {
	_, ok := errors.AsType[*PermanentError](err)
	return ok
}

// IsNotFound reports whether err is a *PermanentError for a 404 answer: the target no longer
// has the resource the bridge's id map points to (replace, update, disable, members).
func IsNotFound(err error) bool {
	pe, ok := errors.AsType[*PermanentError](err)
	return ok && pe.Status == 404
}

// Truncate returns s cut to at most n bytes on a rune boundary, with "…" appended when it was
// cut. Targets use it for error bodies.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strings.TrimSpace(s[:cut]) + "…"
}

// Duration is a time.Duration that decodes from TOML strings such as "30s" or "1m30s".
type Duration struct {
	time.Duration
}

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(text []byte) error {
	v, err := time.ParseDuration(string(text))
	if err != nil {
		return fmt.Errorf("invalid duration %q (want e.g. \"30s\" or \"1m\")", text)
	}
	d.Duration = v
	return nil
}

// MarshalText formats the duration as a Go duration string.
func (d Duration) MarshalText() ([]byte, error) {
	return []byte(d.String()), nil
}
