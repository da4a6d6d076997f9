package scim

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/scimbridge/scimbridge/targets"
)

var _ targets.Prober = (*Target)(nil)

// Probe asks for the target's /ServiceProviderConfig with the configured credentials (an
// OAuth2 token is fetched first), once, without quick retries, and reports the target's clock
// from its Date header. RFC 7644 lets a server serve that endpoint without authentication, so
// a 2xx proves the credentials only when the target checks them there; most SaaS APIs do.
func (t *Target) Probe(ctx context.Context) (targets.ProbeResult, error) {
	const path = "/ServiceProviderConfig"
	ctx = context.WithValue(ctx, ctxKeyNoRetry{}, true)
	r, err := t.do(ctx, http.MethodGet, path, nil, nil)
	if err != nil {
		if ctx.Err() != nil {
			return targets.ProbeResult{}, err
		}
		if targets.IsPermanent(err) {
			// A token endpoint refusing the client credentials (transportError).
			return targets.ProbeResult{}, fmt.Errorf("%w: %w", targets.ErrCredentialsRejected, err)
		}
		return targets.ProbeResult{}, fmt.Errorf("%w: %w", targets.ErrUnreachable, err)
	}
	res := targets.ProbeResult{Detail: fmt.Sprintf("GET %s: %d", path, r.status)}
	if d, err := http.ParseTime(r.header.Get("Date")); err == nil {
		res.Date = d.UTC()
	}
	if err := t.statusError(r); err != nil {
		if r.status == http.StatusUnauthorized || r.status == http.StatusForbidden {
			return res, fmt.Errorf("%w: %w", targets.ErrCredentialsRejected, err)
		}
		var re *targets.RetryableError
		if errors.As(err, &re) {
			return res, fmt.Errorf("%w: %w", targets.ErrUnreachable, err)
		}
		return res, err
	}
	return res, nil
}
