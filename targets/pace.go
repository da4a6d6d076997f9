package targets

import (
	"context"
	"time"
)

// Pacer paces the requests a Target sends and learns from their answers: the provisioner
// puts one in the context of every call (WithPacer), and a Target that talks HTTP calls Wait
// before each request it sends (quick retries included) and Done with what the answer said.
// The bridge's pacer finds the target's capacity by itself from these observations.
type Pacer interface {
	// Wait blocks until the next request may leave, and returns a ticket to hand to Done.
	// It returns an error wrapping ctx.Err() when ctx ends first.
	Wait(ctx context.Context) (Ticket, error)
	// Done reports the answer to the request Wait let go.
	Done(t Ticket, o Observation)
}

// Ticket identifies one paced request between Wait and Done.
type Ticket struct {
	// Epoch is the pacer's generation when the request left: an answer to a request sent
	// before the pacer last slowed down does not slow it down again.
	Epoch uint64
}

// Observation is what the answer to one request told about the target's capacity.
type Observation struct {
	// Status is the HTTP status, or 0 when no answer came (network error, timeout).
	Status int
	// Canceled says the caller gave up (its context ended): the observation says nothing
	// about the target.
	Canceled bool
	// Latency is the time from sending the request to its answer.
	Latency time.Duration
	// RetryAfter is the target's Retry-After, 0 when absent.
	RetryAfter time.Duration
	// Remaining is what the target announced is left of its request quota
	// (RateLimit-Remaining, X-RateLimit-Remaining), or -1 when it said nothing.
	Remaining int
	// Reset is the time until that quota is renewed (RateLimit-Reset, X-RateLimit-Reset), 0
	// when unknown.
	Reset time.Duration
}

// WithPacer returns ctx carrying p.
func WithPacer(ctx context.Context, p Pacer) context.Context {
	return context.WithValue(ctx, pacerKey{}, p)
}

// PacerFrom returns the Pacer ctx carries, or nil.
func PacerFrom(ctx context.Context) Pacer {
	p, _ := ctx.Value(pacerKey{}).(Pacer)
	return p
}

type pacerKey struct{}

// Paced is the optional ability of a Target to call the Pacer in its context around every
// request it sends. The bridge adapts the pace of such targets to their answers; it sends to
// other targets (the log target, in-memory fakes) at the configured cap only.
type Paced interface {
	Paced() bool
}
