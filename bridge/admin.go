package bridge

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/scimbridge/scimbridge/bridge/config"
)

// adminAuth is the bearer token that /metrics and /status require when admin.token_file is
// set (Prometheus sends it with authorization.credentials_file). It is read at start and
// replaced by every reload, so the token rotates with `systemctl reload`.
type adminAuth struct {
	sum atomic.Pointer[[sha256.Size]byte] // nil: no token, the endpoints are open
}

// set installs the token of cfg (none when admin.token_file is empty).
func (a *adminAuth) set(cfg *config.Config) {
	if cfg.Admin.Token == "" {
		a.sum.Store(nil)
		return
	}
	sum := sha256.Sum256([]byte(cfg.Admin.Token.Reveal()))
	a.sum.Store(&sum)
}

// require wraps h: with a token configured, a request without it is a 401.
func (a *adminAuth) require(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		want := a.sum.Load()
		if want == nil {
			h.ServeHTTP(w, r)
			return
		}
		scheme, tok, _ := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
		got := sha256.Sum256([]byte(strings.TrimSpace(tok)))
		if !strings.EqualFold(scheme, "Bearer") || subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="scimbridge admin"`)
			http.Error(w, "a valid bearer token (admin.token_file) is required\n", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// prepareAdmin applies a new admin token (admin.token_file, read when the configuration
// loaded). admin.listen itself is a restart rule.
func prepareAdmin(b *Bridge, old, cfg *config.Config) (*reloadStep, error) {
	if old.Admin.Token == cfg.Admin.Token {
		return nil, nil
	}
	return &reloadStep{name: "admin", commit: func() { b.admin.set(cfg) }}, nil
}
