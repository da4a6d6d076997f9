package inbound

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Token is one accepted bearer token, known only by its SHA-256.
type Token struct {
	// Name is the audit actor of every request made with the token.
	Name string
	// SHA256 is the digest of the token.
	SHA256 [sha256.Size]byte
}

// authenticate returns the name of the token the request carries, or "" when it carries none
// that is valid. Every configured digest is compared, in constant time, whatever matches: the
// time taken says nothing about which token was close.
func authenticate(tokens []Token, r *http.Request) string {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	tok = strings.TrimSpace(tok)
	if tok == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(tok))
	name := ""
	for _, t := range tokens {
		if subtle.ConstantTimeCompare(sum[:], t.SHA256[:]) == 1 && name == "" {
			name = t.Name
		}
	}
	return name
}

// failureLimiter slows down bursts of failed authentications, per client address and in
// total, without ever delaying a request that carries a valid token: it is consulted only
// after a token was refused. A few failures pass at once (clients retry, tokens rotate); past
// the burst each failure waits for its turn, up to maxDelay; when too many wait already, the
// answer is an immediate 429 with Retry-After.
type failureLimiter struct {
	perClient rate.Limit
	burst     int
	maxDelay  time.Duration
	waiting   chan struct{}
	global    *rate.Limiter

	mu      sync.Mutex
	clients map[string]*clientLimiter
	sweep   time.Time

	// logs bounds the log lines about failed authentications; unlogged counts the failures
	// that went without one.
	logs     *rate.Limiter
	unlogged atomic.Int64
}

type clientLimiter struct {
	lim  *rate.Limiter
	seen time.Time
}

const (
	maxTrackedClients = 10000
	clientIdle        = 10 * time.Minute
)

// AuthLimits tune how failed authentications are slowed down. The zero value is the default.
type AuthLimits struct {
	// Burst failures per client address pass without delay. Defaults to 10.
	Burst int
	// Every is the sustained interval between failures of one address. Defaults to 1s.
	Every time.Duration
	// MaxDelay is the longest a failure waits; beyond it the answer is a 429. Defaults to 2s.
	MaxDelay time.Duration
}

func newFailureLimiter(l AuthLimits) *failureLimiter {
	if l.Burst <= 0 {
		l.Burst = 10
	}
	if l.Every <= 0 {
		l.Every = time.Second
	}
	if l.MaxDelay <= 0 {
		l.MaxDelay = 2 * time.Second
	}
	return &failureLimiter{
		perClient: rate.Every(l.Every),
		burst:     l.Burst,
		maxDelay:  l.MaxDelay,
		waiting:   make(chan struct{}, 64),
		// All addresses together: 20 failures a second sustained, bursts of 50.
		global:  rate.NewLimiter(rate.Limit(20), 50),
		clients: map[string]*clientLimiter{},
		// One line a second sustained, bursts of 10: enough to see an attack and its source,
		// too little to fill a disk.
		logs: rate.NewLimiter(rate.Limit(1), 10),
	}
}

// logAllowed reports whether a failed authentication at now may be logged, and how many
// failures went unlogged before it (reset when it may).
func (f *failureLimiter) logAllowed(now time.Time) (bool, int64) {
	if !f.logs.AllowN(now, 1) {
		f.unlogged.Add(1)
		return false, 0
	}
	return true, f.unlogged.Swap(0)
}

// delay decides how long a failed request from addr waits before its 401: 0 within the burst.
// ok is false when the request should get a 429 instead.
func (f *failureLimiter) delay(addr string, now time.Time) (time.Duration, bool) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	f.mu.Lock()
	if now.Sub(f.sweep) > time.Minute || len(f.clients) >= maxTrackedClients {
		for k, c := range f.clients {
			if now.Sub(c.seen) > clientIdle || len(f.clients) >= maxTrackedClients {
				delete(f.clients, k)
			}
		}
		f.sweep = now
	}
	c := f.clients[host]
	if c == nil {
		c = &clientLimiter{lim: rate.NewLimiter(f.perClient, f.burst)}
		f.clients[host] = c
	}
	c.seen = now
	rc := c.lim.ReserveN(now, 1)
	rg := f.global.ReserveN(now, 1)
	f.mu.Unlock()
	d := max(rc.DelayFrom(now), rg.DelayFrom(now))
	if d > f.maxDelay {
		rc.CancelAt(now)
		rg.CancelAt(now)
		return 0, false
	}
	return d, true
}

// wait sleeps d (bounded by the number of requests allowed to wait at once and by ctx).
func (f *failureLimiter) wait(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	select {
	case f.waiting <- struct{}{}:
	default:
		return false
	}
	defer func() { <-f.waiting }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
	return true
}
