package scim

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-cleanhttp"
	"github.com/hashicorp/go-retryablehttp"
	"github.com/rs/zerolog"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/scimbridge/scimbridge/targets"
)

// This file holds the HTTP plumbing: the client built once in Open, credentials, the retry
// policy and backoff of the quick in-delivery retries, and the classification of answers.

const (
	// maxSuccessBody bounds what we read of a 2xx answer (a list page of full resources).
	maxSuccessBody = 32 << 20
	// maxErrorRead bounds what we read of an error answer; PermanentError keeps less.
	maxErrorRead = 64 << 10
	// maxDrain is how much of an unread body we consume so the connection can be reused;
	// beyond that closing is cheaper.
	maxDrain = 1 << 20
	// maxRetryAfter caps a Retry-After handed to the outbox: a target asking for more than an
	// hour is more likely broken than busy, and the outbox's own backoff takes over.
	maxRetryAfter = time.Hour
)

// ctxKeyIdempotent marks, in a request's context, whether the request may be repeated
// blindly. retryablehttp's CheckRetry sees the context but not the request.
type ctxKeyIdempotent struct{}

// ctxKeyNoRetry marks a request that must get no quick retry (a probe: the admin waits).
type ctxKeyNoRetry struct{}

// authenticator puts credentials on requests and reacts to a 401.
type authenticator interface {
	// apply sets the credentials on h (no-op for oauth2: its transport does it).
	apply(h http.Header)
	// invalidate is called after a 401 answered a request that carried the Authorization
	// value used. It drops or reloads the credential and reports whether one more try is
	// worth it.
	invalidate(used string) bool
}

type noAuth struct{}

func (noAuth) apply(http.Header)      {}
func (noAuth) invalidate(string) bool { return false }

type basicAuth struct{ user, password string }

func (a basicAuth) apply(h http.Header) {
	r := http.Request{Header: h}
	r.SetBasicAuth(a.user, a.password)
}

// invalidate reports true: one more try costs little and rides out a glitch on the target.
func (basicAuth) invalidate(string) bool { return true }

// bearerAuth holds a static token, reloaded from its file (if any) after a 401 so a token
// rotated on disk (systemd LoadCredential) is picked up without a reload.
type bearerAuth struct {
	file string
	mu   sync.RWMutex
	tok  string
}

func (a *bearerAuth) apply(h http.Header) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	h.Set("Authorization", "Bearer "+a.tok)
}

func (a *bearerAuth) invalidate(string) bool {
	if a.file != "" {
		if tok, err := readSecretFile(a.file); err == nil {
			a.mu.Lock()
			a.tok = tok
			a.mu.Unlock()
		}
	}
	return true
}

// tokenSource caches an OAuth2 client-credentials token and fetches a new one when it has
// expired or a 401 invalidated it. Fetches are serialised: workers waiting for a token share
// the one fetched. Its errors are *tokenError, so the retry policy knows the request never
// left.
type tokenSource struct {
	cc  *clientcredentials.Config
	ctx context.Context // long-lived; carries oauth2.HTTPClient, a timeout-bounded client.

	mu  sync.Mutex
	tok *oauth2.Token
}

func (s *tokenSource) Token() (*oauth2.Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tok.Valid() {
		return s.tok, nil
	}
	tok, err := s.cc.Token(s.ctx)
	if err != nil {
		return nil, &tokenError{err: err}
	}
	s.tok = tok
	return tok, nil
}

func (s *tokenSource) apply(http.Header) {}

// invalidate drops the cached token if it is the one the rejected request carried (a token
// fetched meanwhile by another worker is kept), and reports true: the next try fetches anew.
func (s *tokenSource) invalidate(used string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tok != nil && (used == "" || strings.HasSuffix(used, " "+s.tok.AccessToken)) {
		s.tok = nil
	}
	return true
}

// tokenError is a failure to obtain an OAuth2 token: the SCIM request was never sent.
type tokenError struct{ err error }

func (e *tokenError) Error() string { return "oauth2 token request: " + e.err.Error() }
func (e *tokenError) Unwrap() error { return e.err }

// timeoutError is the cause of a per-request timeout.
type timeoutError struct{ d time.Duration }

func (e *timeoutError) Error() string { return fmt.Sprintf("request timed out after %s", e.d) }
func (e *timeoutError) Timeout() bool { return true }

// timeoutTransport bounds each try (not the whole retried call) with its own deadline, kept
// until the body is closed.
type timeoutTransport struct {
	next    http.RoundTripper
	timeout time.Duration
}

func (t *timeoutTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	// The last moment before the wire: an instance fenced off (its lease lapsed) sends nothing.
	if err := targets.Allowed(req.Context()); err != nil {
		return nil, err
	}
	targets.Progress(req.Context())
	ctx, cancel := context.WithTimeoutCause(req.Context(), t.timeout, &timeoutError{t.timeout})
	resp, err := t.next.RoundTrip(req.WithContext(ctx))
	if err != nil {
		if req.Context().Err() == nil && ctx.Err() != nil {
			if cause := context.Cause(ctx); !errors.Is(err, cause) {
				err = fmt.Errorf("%w: %w", cause, err)
			}
		}
		cancel()
		return nil, err
	}
	resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelOnClose) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// retryLogger adapts zerolog to retryablehttp's LeveledLogger. Everything goes to debug: the
// outcome that matters is reported by the caller. retryablehttp logs method, URL (without
// password) and errors, never headers.
type retryLogger struct{ log zerolog.Logger }

func (l retryLogger) Error(msg string, kv ...any) { l.event(msg, kv) }
func (l retryLogger) Warn(msg string, kv ...any)  { l.event(msg, kv) }
func (l retryLogger) Info(msg string, kv ...any)  { l.event(msg, kv) }
func (l retryLogger) Debug(msg string, kv ...any) { l.event(msg, kv) }

func (l retryLogger) event(msg string, kv []any) {
	e := l.log.Debug()
	if !e.Enabled() {
		return
	}
	for i := 0; i+1 < len(kv); i += 2 {
		key, _ := kv[i].(string)
		switch v := kv[i+1].(type) {
		case error:
			e = e.AnErr(key, redactError(v))
		case string:
			e = e.Str(key, v)
		case time.Duration:
			e = e.Dur(key, v)
		case int:
			e = e.Int(key, v)
		default:
			e = e.Str(key, fmt.Sprint(v))
		}
	}
	e.Msg("http client: " + msg)
}

// checkRetry decides the quick retries inside one delivery: network errors, 5xx and 429, for
// idempotent requests only. A POST is never repeated blindly (a lost answer to a create
// would create twice); the outbox delivers it again later, and Apply looks it up first.
func checkRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	if noRetry, _ := ctx.Value(ctxKeyNoRetry{}).(bool); noRetry {
		return false, nil
	}
	idempotent, _ := ctx.Value(ctxKeyIdempotent{}).(bool)
	if err != nil {
		if te, ok := errors.AsType[*tokenError](err); ok {
			// The SCIM request never left, so retrying is safe whatever its method, except
			// that a token endpoint refusing our credentials will refuse them again.
			if re, ok := errors.AsType[*oauth2.RetrieveError](te); ok && re.Response != nil {
				return retryableStatus(re.Response.StatusCode), nil
			}
			return true, nil
		}
		if _, ok := errors.AsType[*tls.CertificateVerificationError](err); ok {
			return false, nil
		}
		return idempotent, nil
	}
	return idempotent && retryableStatus(resp.StatusCode), nil
}

// retryableStatus reports whether an HTTP status means "try again later": 5xx except those
// that say the server will never do it (501, 505), 429, and 408.
func retryableStatus(code int) bool {
	switch code {
	case http.StatusTooManyRequests, http.StatusRequestTimeout:
		return true
	case http.StatusNotImplemented, http.StatusHTTPVersionNotSupported:
		return false
	}
	return code >= 500 && code <= 599
}

// backoff is the wait before quick retry number attempt+1: the target's Retry-After (seconds
// or HTTP date) capped at max, otherwise exponential from min, capped at max, with "equal
// jitter" (half fixed, half random) so workers that failed together spread out.
func backoff(minWait, maxWait time.Duration, attempt int, resp *http.Response) time.Duration {
	if resp != nil {
		if d, ok := parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
			return min(d, maxWait)
		}
	}
	return jitter(minWait, maxWait, attempt)
}

func jitter(minWait, maxWait time.Duration, attempt int) time.Duration {
	d := maxWait
	if attempt < 30 {
		if e := minWait << attempt; e > 0 && e < maxWait {
			d = e
		}
	}
	half := d / 2
	return half + rand.N(d-half+1)
}

// parseRetryAfter reads a Retry-After value: delay-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		if secs > int64(maxRetryAfter/time.Second) {
			return maxRetryAfter, true
		}
		return time.Duration(secs) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(t.Sub(now), 0), maxRetryAfter), true
	}
	return 0, false
}

// response is an answer read in full (bounded) with the connection released.
type response struct {
	status int
	header http.Header
	body   []byte
}

// readResponse reads the body through a LimitReader, drains what is left and closes it.
func readResponse(resp *http.Response) (*response, error) {
	defer resp.Body.Close()
	limit := int64(maxErrorRead)
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		limit = maxSuccessBody
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
	if err != nil {
		return nil, err
	}
	return &response{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// redactError removes credentials and query strings (filters carry user names) from the URL
// of every *url.Error in err's chain. It mutates those errors: they are ours, fresh from the
// HTTP client.
func redactError(err error) error {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if ue, ok := e.(*url.Error); ok { //nolint:errorlint // walks the chain itself, redacting every *url.Error in it
			ue.URL = redactRawURL(ue.URL)
		}
	}
	return err
}

func redactRawURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<unparsable URL>"
	}
	u.User = nil
	hasQuery := u.RawQuery != "" || u.ForceQuery
	u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = "", false, "", ""
	s := u.String()
	if hasQuery {
		s += "?<redacted>"
	}
	return s
}

// readSecretFile reads a secret from a file, trimming the trailing newline editors and
// `echo` leave. Errors name the file, never its content.
func readSecretFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		return "", fmt.Errorf("%s: file is empty", path)
	}
	return s, nil
}

// secret resolves a literal/file pair (Validate made sure exactly one is set). The warning
// about a literal secret is the configuration loader's, which sees every Secret field.
func (c *Config) secret(key string, lit targets.Secret, file string) (string, error) {
	if file != "" {
		s, err := readSecretFile(targets.ResolvePath(c.dir, file))
		if err != nil {
			return "", fmt.Errorf("%s_file: %w", key, err)
		}
		return s, nil
	}
	return lit.Reveal(), nil
}

// tlsConfig builds the TLS settings for the target: roots from ca_file (else the system's),
// the client certificate for mutual TLS.
func (c *Config) tlsConfig(addSystemRoots bool) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: c.InsecureSkipVerify} //nolint:gosec // Opt-in, warned about in Open.
	if c.CAFile != "" {
		pem, err := os.ReadFile(targets.ResolvePath(c.dir, c.CAFile))
		if err != nil {
			return nil, fmt.Errorf("ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if addSystemRoots {
			if sys, err := x509.SystemCertPool(); err == nil {
				pool = sys
			}
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file: %s: no PEM certificate found", c.CAFile)
		}
		cfg.RootCAs = pool
	}
	if c.ClientCertFile != "" {
		cert, err := tls.LoadX509KeyPair(targets.ResolvePath(c.dir, c.ClientCertFile), targets.ResolvePath(c.dir, c.ClientKeyFile))
		if err != nil {
			return nil, fmt.Errorf("client_cert_file and client_key_file: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// isLoopback reports whether host (from a URL) is a loopback name or address.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// build assembles the one HTTP client of a target: retryablehttp outside, then the pacer
// (each try waits for the provisioner's pace and reports its answer), then the per-try
// timeout, then oauth2.Transport (for auth = "oauth2"), then a pooled transport with our TLS
// settings.
func (c *Config) build(t *Target) error {
	var errs []error
	tlsCfg, err := c.tlsConfig(false)
	if err != nil {
		errs = append(errs, err)
	}
	base := cleanhttp.DefaultPooledTransport()
	base.TLSClientConfig = tlsCfg
	// cleanhttp keeps GOMAXPROCS+1 idle connections per host: fewer than a provisioner's
	// workers (concurrency) on a small machine, so every burst closed the surplus and dialled
	// (and TLS-handshook) anew, leaving sockets in TIME_WAIT. A target is one host: keep as
	// many idle connections as the transport allows in total.
	base.MaxIdleConnsPerHost = base.MaxIdleConns
	t.transports = append(t.transports, base)

	var inner http.RoundTripper = base
	switch c.Auth {
	case AuthNone:
		t.auth = noAuth{}
	case AuthBasic:
		pw, err := c.secret("password", c.Password, c.PasswordFile)
		if err != nil {
			errs = append(errs, err)
		}
		t.auth = basicAuth{user: c.Username, password: pw}
	case AuthBearer:
		tok, err := c.secret("token", c.Token, c.TokenFile)
		if err != nil {
			errs = append(errs, err)
		}
		t.auth = &bearerAuth{file: targets.ResolvePath(c.dir, c.TokenFile), tok: tok}
	case AuthOAuth2:
		secret, err := c.secret("client_secret", c.ClientSecret, c.ClientSecretFile)
		if err != nil {
			errs = append(errs, err)
		}
		// The token endpoint is often a public identity provider while the target sits
		// behind a private CA: trust both there.
		tokTLS, err := c.tlsConfig(true)
		if err != nil {
			errs = append(errs, err)
		}
		tokBase := cleanhttp.DefaultPooledTransport()
		tokBase.TLSClientConfig = tokTLS
		t.transports = append(t.transports, tokBase)
		style := oauth2.AuthStyleInHeader
		if c.TokenAuthStyle == TokenAuthParams {
			style = oauth2.AuthStyleInParams
		}
		params := url.Values{}
		for k, v := range c.TokenParams {
			params.Set(k, v)
		}
		cc := &clientcredentials.Config{
			ClientID:       c.ClientID,
			ClientSecret:   secret,
			TokenURL:       c.TokenURL,
			Scopes:         c.Scopes,
			EndpointParams: params,
			AuthStyle:      style,
		}
		// The token source keeps this context for every later refresh: it must outlive any
		// one request, and carry a client whose timeout bounds each token fetch.
		ctx, cancel := context.WithCancel(context.Background())
		t.cancel = cancel
		ctx = context.WithValue(ctx, oauth2.HTTPClient, &http.Client{
			Transport:     tokBase,
			Timeout:       c.Timeout.Duration,
			CheckRedirect: noRedirects,
		})
		ts := &tokenSource{cc: cc, ctx: ctx}
		t.auth = ts
		inner = &oauth2.Transport{Source: ts, Base: base}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}

	t.client = &retryablehttp.Client{
		HTTPClient: &http.Client{
			Transport:     &pacedTransport{next: &timeoutTransport{next: inner, timeout: c.Timeout.Duration}},
			CheckRedirect: noRedirects,
		},
		Logger:       retryLogger{log: t.log},
		RetryWaitMin: c.MinBackoff.Duration,
		RetryWaitMax: c.MaxBackoff.Duration,
		RetryMax:     c.MaxRetries,
		CheckRetry:   checkRetry,
		Backoff:      backoff,
		// Keep the last answer after the retries run out: its body is the target's error,
		// which the dead letter must carry.
		ErrorHandler: retryablehttp.PassthroughErrorHandler,
	}
	return nil
}

// noRedirects refuses to follow redirects: a SCIM API does not redirect, following one would
// turn a POST into a GET, and the answer is reported instead.
func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
