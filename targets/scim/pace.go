package scim

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/scimbridge/scimbridge/targets"
)

// Paced reports true: every request the target sends, quick retries included, waits for the
// Pacer in its context and reports its answer to it.
func (t *Target) Paced() bool { return true }

// pacedTransport asks the request context's Pacer (if any) before each try and tells it what
// the answer said: status, latency, Retry-After and the announced quota.
type pacedTransport struct {
	next http.RoundTripper
}

func (t *pacedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	p := targets.PacerFrom(req.Context())
	if p == nil {
		return t.next.RoundTrip(req)
	}
	tk, err := p.Wait(req.Context())
	if err != nil {
		if req.Body != nil {
			_ = req.Body.Close()
		}
		return nil, err
	}
	start := time.Now()
	resp, err := t.next.RoundTrip(req)
	o := targets.Observation{Latency: time.Since(start), Remaining: -1}
	switch {
	case err != nil:
		// Only a try that timed out says something of the target's capacity (a slow answer).
		// One that never left (the gate, the token endpoint, a cancelled request) or failed at
		// once (connection refused) is no latency sample: a window of those would shrink the
		// baseline and read the recovered target's normal latency as a rise.
		te, ok := errors.AsType[timeouter](err)
		o.Canceled = req.Context().Err() != nil || !ok || !te.Timeout()
	default:
		o.Status = resp.StatusCode
		now := time.Now()
		o.RetryAfter, _ = parseRetryAfter(resp.Header.Get("Retry-After"), now)
		o.Remaining, o.Reset = quota(resp.Header, now)
	}
	p.Done(tk, o)
	return resp, err
}

// timeouter is an error that says whether it is a timeout: net.Error, and the try's own
// deadline (timeoutError).
type timeouter interface {
	error
	Timeout() bool
}

// quota reads what the target announced of its request quota: the IETF RateLimit fields,
// either as separate RateLimit-Remaining / RateLimit-Reset headers (draft 06 and earlier) or
// as one structured RateLimit header ("…;r=REMAINING;t=RESET", draft 07 on), then the
// widespread X-RateLimit-Remaining / X-RateLimit-Reset (the reset in seconds, or as a Unix
// time when it is large enough to be one). remaining is -1 when nothing was announced.
func quota(h http.Header, now time.Time) (remaining int, reset time.Duration) {
	remaining = -1
	if v := h.Get("RateLimit-Remaining"); v != "" {
		if n, ok := firstInt(v); ok {
			remaining = n
		}
		if n, ok := firstInt(h.Get("RateLimit-Reset")); ok {
			reset = resetAt(n, now)
		}
		return remaining, reset
	}
	if v := h.Get("RateLimit"); v != "" {
		// Structured field, `"policy";r=N;t=S` items (draft 07 on), or the older
		// `limit=N, remaining=N, reset=S`: the first remaining and reset found count.
		haveReset := false
		for _, param := range strings.FieldsFunc(v, func(r rune) bool { return r == ';' || r == ',' }) {
			k, val, ok := strings.Cut(strings.TrimSpace(param), "=")
			if !ok {
				continue
			}
			n, err := strconv.Atoi(strings.Trim(strings.TrimSpace(val), `"`))
			if err != nil || n < 0 {
				continue
			}
			switch strings.ToLower(k) {
			case "r", "remaining":
				if remaining < 0 {
					remaining = n
				}
			case "t", "reset":
				if !haveReset {
					reset, haveReset = min(time.Duration(n)*time.Second, maxRetryAfter), true
				}
			}
		}
		if remaining >= 0 {
			return remaining, reset
		}
		reset = 0
	}
	if v := h.Get("X-RateLimit-Remaining"); v != "" {
		if n, ok := firstInt(v); ok {
			remaining = n
		}
		if n, ok := firstInt(h.Get("X-RateLimit-Reset")); ok {
			reset = resetAt(n, now)
		}
	}
	return remaining, reset
}

// resetAt turns a reset value into a duration: seconds from now, or a Unix time (GitHub's
// X-RateLimit-Reset) when the value is past 2001, capped at maxRetryAfter.
func resetAt(n int, now time.Time) time.Duration {
	d := time.Duration(n) * time.Second
	if n > 1_000_000_000 {
		d = time.Unix(int64(n), 0).Sub(now)
	}
	return min(max(d, 0), maxRetryAfter)
}

// firstInt parses the first comma-separated element of v as a non-negative integer (some
// servers repeat the value per policy: "100, 100;w=60").
func firstInt(v string) (int, bool) {
	v, _, _ = strings.Cut(v, ",")
	v, _, _ = strings.Cut(v, ";")
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}
