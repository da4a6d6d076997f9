package scimserver

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"math"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// SCIM URNs the server checks.
const (
	schemaUser         = "urn:ietf:params:scim:schemas:core:2.0:User"
	schemaGroup        = "urn:ietf:params:scim:schemas:core:2.0:Group"
	schemaPatchOp      = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
	schemaListResponse = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
	schemaError        = "urn:ietf:params:scim:api:messages:2.0:Error"
)

// TokenPath is where the server's OAuth2 token endpoint answers (outside BasePath).
const TokenPath = "/oauth2/token"

// maxBody bounds request bodies; larger ones get 413.
const maxBody = 1 << 20

// Options configures a Server. The zero value is a server on 127.0.0.1 that requires no
// authentication.
type Options struct {
	// Addr is the listen address. Defaults to "127.0.0.1:0" (a free port).
	Addr string
	// TLS, when set, makes the server speak HTTPS with this configuration: Certificates (or
	// GetCertificate), and ClientAuth/ClientCAs for mutual TLS.
	TLS *tls.Config
	// BasePath is the prefix of the SCIM endpoints, e.g. "/scim/v2". Defaults to "".
	BasePath string

	// BearerTokens are accepted static bearer tokens.
	BearerTokens []string
	// BasicUsername and BasicPassword, when set, are accepted HTTP Basic credentials.
	BasicUsername, BasicPassword string
	// OAuth2, when set, enables the client-credentials token endpoint at TokenPath and
	// accepts the tokens it issues.
	OAuth2 *OAuth2Options
	// When no credential of any kind is configured, requests need no authentication.

	// MaxPageSize caps the count of a list request, as real servers do. Defaults to 1000.
	MaxPageSize int
	// IgnoreStartIndex makes list requests always answer the first page, like a server that
	// does not implement paging.
	IgnoreStartIndex bool

	// ErrorLog receives the HTTP server's errors (TLS handshake failures, …). Defaults to
	// discarding them.
	ErrorLog *log.Logger
}

// OAuth2Options configures the token endpoint.
type OAuth2Options struct {
	ClientID     string
	ClientSecret string
	// TokenTTL is the lifetime of issued tokens. Defaults to 5 minutes.
	TokenTTL time.Duration
	// OmitExpiresIn leaves expires_in out of token answers: clients then keep a token until
	// the server rejects it.
	OmitExpiresIn bool
}

// Fault is a misbehaviour injected into the next requests matching Method and Path.
type Fault struct {
	// Method restricts the fault to one HTTP method ("" for any).
	Method string
	// Path restricts the fault to paths (relative to BasePath) starting with it, e.g.
	// "/Users". "" matches every SCIM request but not the token endpoint; use TokenPath to
	// target that.
	Path string
	// Times is how many matching requests the fault affects. Defaults to 1.
	Times int
	// Status answers with this status and a SCIM error instead of handling the request.
	Status int
	// RetryAfter, with Status, is sent as the Retry-After header (seconds or HTTP date).
	RetryAfter string
	// Drop hijacks the connection and closes it without answering.
	Drop bool
	// AfterStore handles the request (a create is stored, an update applied) and then
	// answers Status (default 500) instead of the real answer.
	AfterStore bool
	// Latency delays the request before anything else happens.
	Latency time.Duration
}

// Request is a request the server received.
type Request struct {
	Method string
	// Path is relative to BasePath ("/Users/123"); the token endpoint is TokenPath.
	Path   string
	Query  url.Values
	Header http.Header
	Body   []byte
	// Status is what the server answered; 0 when it dropped the connection.
	Status int
	// At is when the server received the request.
	At time.Time
}

// Server is a strict in-memory SCIM 2.0 service provider for the demo and the tests. It is
// safe for concurrent use.
type Server struct {
	// URL is the SCIM base URL (with BasePath), e.g. "http://127.0.0.1:41234/scim/v2".
	URL string
	// TokenURL is the OAuth2 token endpoint's URL (meaningful when Options.OAuth2 is set).
	TokenURL string

	opts  Options
	hs    *http.Server
	tls   *tls.Config
	serve sync.WaitGroup
	done  chan struct{}
	once  sync.Once

	creates   atomic.Int64
	throttled atomic.Int64

	mu       sync.Mutex
	users    *store
	groups   *store
	requests []Request
	// requestsGen counts ResetRequests calls, so that a request in flight across one does
	// not write into the new log.
	requestsGen int
	faults      []*Fault
	latency     time.Duration
	hook        func(http.ResponseWriter, *http.Request) bool
	limiter     *rate.Limiter
	limitHdrs   bool
	issued      map[string]time.Time // OAuth2 token -> expiry
	usesLeft    map[string]int       // token -> remaining uses before it is rejected
	tokenCalls  int
	version     int
}

type store struct {
	kind  string
	byID  map[string]map[string]any
	order []string
	// names indexes the unique attribute (userName, displayName), lower-cased, to the id:
	// the uniqueness check stays O(1) with many resources (benchmarks).
	names map[string]string
}

func newStore(kind string) *store {
	return &store{kind: kind, byID: map[string]map[string]any{}, names: map[string]string{}}
}

// uniqueKey is the attribute the store keeps unique.
func (st *store) uniqueKey() string {
	if st.kind == "Group" {
		return "displayName"
	}
	return "userName"
}

func (st *store) name(res map[string]any) string {
	v, _ := getFold(res, st.uniqueKey())
	s, _ := v.(string)
	return strings.ToLower(s)
}

func (st *store) put(id string, res map[string]any) {
	if old, ok := st.byID[id]; ok {
		if n := st.name(old); st.names[n] == id {
			delete(st.names, n)
		}
	} else {
		st.order = append(st.order, id)
	}
	st.byID[id] = res
	if n := st.name(res); n != "" {
		st.names[n] = id
	}
}

func (st *store) del(id string) {
	if old, ok := st.byID[id]; ok {
		if n := st.name(old); st.names[n] == id {
			delete(st.names, n)
		}
	}
	delete(st.byID, id)
	st.order = slices.DeleteFunc(st.order, func(x string) bool { return x == id })
}

func (st *store) all() []map[string]any {
	out := make([]map[string]any, 0, len(st.order))
	for _, id := range st.order {
		out = append(out, st.byID[id])
	}
	return out
}

// NewServer starts a server. It panics if it cannot listen (as httptest.NewServer does).
func NewServer(opts Options) *Server {
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	if opts.MaxPageSize <= 0 {
		opts.MaxPageSize = 1000
	}
	opts.BasePath = "/" + strings.Trim(opts.BasePath, "/")
	if opts.BasePath == "/" {
		opts.BasePath = ""
	}
	if opts.OAuth2 != nil && opts.OAuth2.TokenTTL <= 0 {
		o := *opts.OAuth2
		o.TokenTTL = 5 * time.Minute
		opts.OAuth2 = &o
	}
	s := &Server{
		opts:     opts,
		done:     make(chan struct{}),
		users:    newStore("User"),
		groups:   newStore("Group"),
		issued:   map[string]time.Time{},
		usesLeft: map[string]int{},
	}
	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		panic(fmt.Sprintf("scimserver: listen on %s: %v", opts.Addr, err))
	}
	scheme := "http"
	if opts.TLS != nil {
		if len(opts.TLS.Certificates) == 0 && opts.TLS.GetCertificate == nil {
			_ = ln.Close()
			panic("scimserver: Options.TLS has no certificate")
		}
		s.tls = opts.TLS.Clone()
		ln = tls.NewListener(ln, s.tls)
		scheme = "https"
	}
	errorLog := opts.ErrorLog
	if errorLog == nil {
		errorLog = log.New(io.Discard, "", 0)
	}
	s.hs = &http.Server{Handler: http.HandlerFunc(s.serveHTTP), ReadHeaderTimeout: 10 * time.Second, ErrorLog: errorLog}
	s.serve.Add(1)
	go func() {
		defer s.serve.Done()
		_ = s.hs.Serve(ln)
	}()
	base := scheme + "://" + ln.Addr().String()
	s.URL = base + opts.BasePath
	s.TokenURL = base + TokenPath
	return s
}

// Close stops the server: it cuts short injected latencies, closes every connection and
// returns once the listener's goroutine has ended.
func (s *Server) Close() {
	s.once.Do(func() {
		close(s.done)
		_ = s.hs.Close()
		s.serve.Wait()
	})
}

// Certificate returns the server's TLS certificate (the first of Options.TLS), or nil for
// plain HTTP.
func (s *Server) Certificate() *tls.Certificate {
	if s.tls == nil || len(s.tls.Certificates) == 0 {
		return nil
	}
	return &s.tls.Certificates[0]
}

// Inject queues a fault. Faults are consumed in the order injected.
func (s *Server) Inject(f Fault) {
	if f.Times <= 0 {
		f.Times = 1
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &f)
}

// FailNext answers the next n SCIM requests with status.
func (s *Server) FailNext(n, status int) { s.Inject(Fault{Times: n, Status: status}) }

// RateLimitNext answers the next n SCIM requests with 429 and a Retry-After of retryAfter.
func (s *Server) RateLimitNext(n int, retryAfter string) {
	s.Inject(Fault{Times: n, Status: http.StatusTooManyRequests, RetryAfter: retryAfter})
}

// DropNext closes the connection of the next n SCIM requests without answering.
func (s *Server) DropNext(n int) { s.Inject(Fault{Times: n, Drop: true}) }

// FailAfterStoreNext handles the next n SCIM requests, then answers 500 as if it had failed.
func (s *Server) FailAfterStoreNext(n int) { s.Inject(Fault{Times: n, AfterStore: true}) }

// ClearFaults drops every fault not yet consumed, and the latency and hook.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults, s.latency, s.hook = nil, 0, nil
}

// SetRateLimit makes the server accept perSecond SCIM requests per second (bursts of burst)
// and answer the others 429 with a Retry-After of the whole seconds until one would be
// accepted, as a SaaS rate limit does. With headers, every answer also carries
// RateLimit-Limit, RateLimit-Remaining and RateLimit-Reset. perSecond <= 0 removes the limit.
func (s *Server) SetRateLimit(perSecond float64, burst int, headers bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limiter, s.limitHdrs = nil, false
	if perSecond > 0 {
		s.limiter, s.limitHdrs = rate.NewLimiter(rate.Limit(perSecond), max(burst, 1)), headers
	}
}

// Throttled is the number of requests SetRateLimit's limit answered with 429.
func (s *Server) Throttled() int64 { return s.throttled.Load() }

// throttle applies the rate limit to a SCIM request: the 429 to send, or nil, and the
// RateLimit headers for the answer. Callers hold s.mu.
func (s *Server) throttle(now time.Time) (*reply, http.Header) {
	if s.limiter == nil {
		return nil, nil
	}
	var hdr http.Header
	r := s.limiter.ReserveN(now, 1)
	wait := r.DelayFrom(now)
	if wait > 0 {
		r.CancelAt(now)
	}
	if s.limitHdrs {
		left := int(s.limiter.TokensAt(now))
		reset := 1
		if left <= 0 {
			left, reset = 0, int(math.Ceil(max(wait, time.Second).Seconds()))
		}
		hdr = http.Header{
			"Ratelimit-Limit":     {strconv.Itoa(s.limiter.Burst())},
			"Ratelimit-Remaining": {strconv.Itoa(left)},
			"Ratelimit-Reset":     {strconv.Itoa(reset)},
		}
	}
	if wait <= 0 {
		return nil, hdr
	}
	s.throttled.Add(1)
	rep := scimErr(http.StatusTooManyRequests, "", "rate limit exceeded")
	rep.header = http.Header{"Retry-After": {strconv.Itoa(int(math.Ceil(wait.Seconds())))}}
	for k, v := range hdr {
		rep.header[k] = v
	}
	return &rep, nil
}

// SetLatency delays every request by d (0 to stop).
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

// SetHook installs fn, called for every request before anything else; when it returns true it
// has answered and the server does nothing more. nil removes it.
func (s *Server) SetHook(fn func(http.ResponseWriter, *http.Request) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hook = fn
}

// ExpireToken makes token (a static bearer token or an issued OAuth2 one) be rejected with 401
// after it has been accepted afterUses more times.
func (s *Server) ExpireToken(token string, afterUses int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.usesLeft[token] = max(afterUses, 0)
}

// RevokeTokens makes every OAuth2 token issued so far be rejected with 401.
func (s *Server) RevokeTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for tok := range s.issued {
		s.usesLeft[tok] = 0
	}
}

// IssuedTokens returns the OAuth2 tokens issued so far.
func (s *Server) IssuedTokens() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.issued))
	for tok := range s.issued {
		out = append(out, tok)
	}
	slices.Sort(out)
	return out
}

// TokenRequests returns how many requests reached the token endpoint.
func (s *Server) TokenRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokenCalls
}

// Creates returns how many creates (POST answered 201) the server accepted.
func (s *Server) Creates() int64 { return s.creates.Load() }

// Requests returns a copy of every request received, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// CountRequests counts the requests with method ("" for any) whose path starts with prefix.
func (s *Server) CountRequests(method, prefix string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.requests {
		if (method == "" || r.Method == method) && strings.HasPrefix(r.Path, prefix) {
			n++
		}
	}
	return n
}

// ResetRequests forgets the requests recorded so far.
func (s *Server) ResetRequests() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = nil
	s.requestsGen++
}

// Users returns copies of the stored users in creation order.
func (s *Server) Users() []map[string]any { return s.snapshot(s.users) }

// Groups returns copies of the stored groups in creation order.
func (s *Server) Groups() []map[string]any { return s.snapshot(s.groups) }

func (s *Server) snapshot(st *store) []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]map[string]any, 0, len(st.order))
	for _, r := range st.all() {
		out = append(out, clone(r))
	}
	return out
}

// User returns a copy of the user with id.
func (s *Server) User(id string) (map[string]any, bool) { return s.get(s.users, id) }

// Group returns a copy of the group with id.
func (s *Server) Group(id string) (map[string]any, bool) { return s.get(s.groups, id) }

func (s *Server) get(st *store, id string) (map[string]any, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := st.byID[id]
	if !ok {
		return nil, false
	}
	return clone(r), true
}

// UserByName returns a copy of the user whose userName is name (case-insensitive).
func (s *Server) UserByName(name string) (map[string]any, bool) {
	return s.byAttr(s.users, "userName", name)
}

// GroupByName returns a copy of the group whose displayName is name (case-insensitive).
func (s *Server) GroupByName(name string) (map[string]any, bool) {
	return s.byAttr(s.groups, "displayName", name)
}

func (s *Server) byAttr(st *store, attr, v string) (map[string]any, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range st.all() {
		if x, _ := getFold(r, attr); x != nil && strings.EqualFold(fmt.Sprint(x), v) {
			return clone(r), true
		}
	}
	return nil, false
}

// AddUser stores a user directly (test setup), as if created over SCIM, and returns its id.
func (s *Server) AddUser(res map[string]any) (string, error) { return s.add(s.users, res) }

// AddGroup stores a group directly (test setup) and returns its id.
func (s *Server) AddGroup(res map[string]any) (string, error) { return s.add(s.groups, res) }

func (s *Server) add(st *store, res map[string]any) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	doc := clone(res)
	if _, ok := getFold(doc, "schemas"); !ok {
		schema := schemaUser
		if st == s.groups {
			schema = schemaGroup
		}
		doc["schemas"] = []any{schema}
	}
	rep := s.create(st, doc)
	if rep.status != http.StatusCreated {
		return "", fmt.Errorf("scimserver: add %s: %d %s", st.kind, rep.status, rep.body)
	}
	return rep.body.(map[string]any)["id"].(string), nil
}

// reply is an answer built by a handler, written out (or replaced by a fault) afterwards.
type reply struct {
	status int
	header http.Header
	body   any
}

func scimErr(status int, scimType, format string, args ...any) reply {
	body := map[string]any{
		"schemas": []string{schemaError},
		"status":  strconv.Itoa(status),
		"detail":  fmt.Sprintf(format, args...),
	}
	if scimType != "" {
		body["scimType"] = scimType
	}
	return reply{status: status, body: body}
}

// statusRecorder remembers the status a hook wrote.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (w *statusRecorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusRecorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	tooLarge := err != nil

	rel, inBase := strings.CutPrefix(r.URL.Path, s.opts.BasePath)
	isToken := r.URL.Path == TokenPath
	if isToken {
		rel = TokenPath
	}
	s.mu.Lock()
	s.requests = append(s.requests, Request{
		Method: r.Method, Path: rel, Query: r.URL.Query(), Header: r.Header.Clone(), Body: body, At: time.Now(),
	})
	idx, gen := len(s.requests)-1, s.requestsGen
	if isToken {
		s.tokenCalls++
	}
	hook := s.hook
	fault := s.takeFault(r.Method, rel, isToken)
	latency := s.latency
	var limited *reply
	var limitHdr http.Header
	if !isToken && inBase {
		limited, limitHdr = s.throttle(time.Now())
	}
	s.mu.Unlock()
	setStatus := func(code int) {
		s.mu.Lock()
		defer s.mu.Unlock()
		// ResetRequests may have dropped the log since (a test resetting it while the bridge
		// still talks): then this request's entry is gone.
		if gen == s.requestsGen && idx < len(s.requests) {
			s.requests[idx].Status = code
		}
	}

	if hook != nil {
		r.Body = io.NopCloser(bytes.NewReader(body))
		rec := &statusRecorder{ResponseWriter: w}
		if hook(rec, r) {
			setStatus(rec.status)
			return
		}
	}
	if fault != nil {
		latency += fault.Latency
	}
	if latency > 0 {
		t := time.NewTimer(latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		case <-s.done:
			t.Stop()
			return
		}
	}
	if fault != nil && fault.Drop {
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				_ = conn.Close()
				return
			}
		}
		panic(http.ErrAbortHandler)
	}
	var rep reply
	switch {
	case limited != nil:
		rep = *limited
	case fault != nil && fault.Status != 0 && !fault.AfterStore:
		rep = scimErr(fault.Status, "", "injected fault")
		if fault.RetryAfter != "" {
			rep.header = http.Header{"Retry-After": {fault.RetryAfter}}
		}
	case tooLarge:
		rep = scimErr(http.StatusRequestEntityTooLarge, "", "request body over %d bytes", maxBody)
	case isToken && s.opts.OAuth2 != nil:
		rep = s.token(r, body)
	case isToken || !inBase:
		rep = scimErr(http.StatusNotFound, "", "no such endpoint %s", r.URL.Path)
	default:
		if ok, rp := s.authorized(r); !ok {
			rep = rp
			break
		}
		s.mu.Lock()
		rep = s.handle(r.Method, rel, r.URL.Query(), r.Header.Get("Content-Type"), body)
		s.mu.Unlock()
	}
	if fault != nil && fault.AfterStore {
		code := fault.Status
		if code == 0 {
			code = http.StatusInternalServerError
		}
		rep = scimErr(code, "", "injected fault after the request was applied")
		if fault.RetryAfter != "" {
			rep.header = http.Header{"Retry-After": {fault.RetryAfter}}
		}
	}
	for k, v := range limitHdr {
		if rep.header == nil {
			rep.header = http.Header{}
		}
		rep.header[k] = v
	}
	setStatus(rep.status)
	s.write(w, rep, isToken)
}

func (s *Server) write(w http.ResponseWriter, rep reply, isToken bool) {
	for k, v := range rep.header {
		w.Header()[k] = v
	}
	if rep.body == nil {
		w.WriteHeader(rep.status)
		return
	}
	ct := "application/scim+json"
	if isToken {
		ct = "application/json"
	}
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(rep.status)
	_ = json.NewEncoder(w).Encode(rep.body)
}

// takeFault returns the first queued fault matching the request and consumes one of its
// times. Callers hold s.mu.
func (s *Server) takeFault(method, rel string, isToken bool) *Fault {
	for i, f := range s.faults {
		if f.Method != "" && !strings.EqualFold(f.Method, method) {
			continue
		}
		if f.Path == "" && isToken || !strings.HasPrefix(rel, f.Path) {
			continue
		}
		f.Times--
		if f.Times <= 0 {
			s.faults = slices.Delete(s.faults, i, i+1)
		}
		c := *f
		return &c
	}
	return nil
}

func (s *Server) authRequired() bool {
	return len(s.opts.BearerTokens) > 0 || s.opts.BasicUsername != "" || s.opts.OAuth2 != nil
}

func eq(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// authorized checks the request's credentials and counts a use of its token.
func (s *Server) authorized(r *http.Request) (bool, reply) {
	if !s.authRequired() {
		return true, reply{}
	}
	deny := func(detail string) (bool, reply) {
		rep := scimErr(http.StatusUnauthorized, "", "%s", detail)
		rep.header = http.Header{"Www-Authenticate": {`Bearer realm="scimserver"`}}
		return false, rep
	}
	h := r.Header.Get("Authorization")
	if user, pass, ok := r.BasicAuth(); ok {
		if s.opts.BasicUsername != "" && eq(user, s.opts.BasicUsername) && eq(pass, s.opts.BasicPassword) {
			return true, reply{}
		}
		return deny("invalid credentials")
	}
	scheme, tok, _ := strings.Cut(h, " ")
	if !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return deny("authentication required")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	valid := false
	for _, t := range s.opts.BearerTokens {
		valid = valid || eq(t, tok)
	}
	if exp, ok := s.issued[tok]; ok && time.Now().Before(exp) {
		valid = true
	}
	if !valid {
		return deny("invalid or expired token")
	}
	if left, limited := s.usesLeft[tok]; limited {
		if left <= 0 {
			return deny("invalid or expired token")
		}
		s.usesLeft[tok] = left - 1
	}
	return true, reply{}
}

// token is the OAuth2 client-credentials endpoint (RFC 6749 §4.4).
func (s *Server) token(r *http.Request, body []byte) reply {
	oerr := func(status int, code, desc string) reply {
		rep := reply{status: status, body: map[string]string{"error": code, "error_description": desc}}
		if status == http.StatusUnauthorized {
			rep.header = http.Header{"Www-Authenticate": {`Basic realm="scimserver"`}}
		}
		return rep
	}
	if r.Method != http.MethodPost {
		return oerr(http.StatusMethodNotAllowed, "invalid_request", "POST required")
	}
	form, err := url.ParseQuery(string(body))
	if err != nil || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		return oerr(http.StatusBadRequest, "invalid_request", "form body required")
	}
	id, secret, ok := r.BasicAuth()
	if ok {
		// RFC 6749 §2.3.1: both are form-encoded before going into the header.
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
	} else {
		id, secret = form.Get("client_id"), form.Get("client_secret")
	}
	o := s.opts.OAuth2
	if !eq(id, o.ClientID) || !eq(secret, o.ClientSecret) {
		return oerr(http.StatusUnauthorized, "invalid_client", "client authentication failed")
	}
	if form.Get("grant_type") != "client_credentials" {
		return oerr(http.StatusBadRequest, "unsupported_grant_type", "only client_credentials")
	}
	tok := "tt-" + randomHex(16)
	s.mu.Lock()
	s.issued[tok] = time.Now().Add(o.TokenTTL)
	s.mu.Unlock()
	out := map[string]any{"access_token": tok, "token_type": "Bearer"}
	if !o.OmitExpiresIn {
		out["expires_in"] = int(o.TokenTTL / time.Second)
	}
	if sc := form.Get("scope"); sc != "" {
		out["scope"] = sc
	}
	return reply{status: http.StatusOK, header: http.Header{"Cache-Control": {"no-store"}}, body: out}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// serviceProviderConfig describes what the server supports (RFC 7643 §5).
func (s *Server) serviceProviderConfig() map[string]any {
	var schemes []any
	if len(s.opts.BearerTokens) > 0 || s.opts.OAuth2 != nil {
		schemes = append(schemes, map[string]any{"type": "oauthbearertoken", "name": "OAuth Bearer Token", "description": "Authentication with a bearer token"})
	}
	if s.opts.BasicUsername != "" {
		schemes = append(schemes, map[string]any{"type": "httpbasic", "name": "HTTP Basic", "description": "Authentication with HTTP Basic"})
	}
	return map[string]any{
		"schemas":               []any{"urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"},
		"patch":                 map[string]any{"supported": true},
		"bulk":                  map[string]any{"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
		"filter":                map[string]any{"supported": true, "maxResults": s.opts.MaxPageSize},
		"changePassword":        map[string]any{"supported": false},
		"sort":                  map[string]any{"supported": false},
		"etag":                  map[string]any{"supported": true},
		"authenticationSchemes": schemes,
	}
}

// handle routes a SCIM request. Callers hold s.mu.
func (s *Server) handle(method, rel string, q url.Values, ctype string, body []byte) reply {
	parts := strings.Split(strings.Trim(rel, "/"), "/")
	if len(parts) == 1 && parts[0] == "ServiceProviderConfig" {
		if method != http.MethodGet {
			return scimErr(http.StatusMethodNotAllowed, "", "%s not allowed on %s", method, rel)
		}
		return reply{status: http.StatusOK, body: s.serviceProviderConfig()}
	}
	var st *store
	switch {
	case len(parts) > 0 && parts[0] == "Users":
		st = s.users
	case len(parts) > 0 && parts[0] == "Groups":
		st = s.groups
	default:
		return scimErr(http.StatusNotFound, "", "no such endpoint %s", rel)
	}
	if len(parts) > 2 {
		return scimErr(http.StatusNotFound, "", "no such endpoint %s", rel)
	}
	var doc map[string]any
	if method == http.MethodPost || method == http.MethodPut || method == http.MethodPatch {
		mt := strings.TrimSpace(strings.Split(ctype, ";")[0])
		if mt != "application/scim+json" && mt != "application/json" {
			return scimErr(http.StatusUnsupportedMediaType, "", "Content-Type must be application/scim+json, got %q", ctype)
		}
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		if err := dec.Decode(&doc); err != nil || doc == nil {
			return scimErr(http.StatusBadRequest, "invalidSyntax", "body is not a JSON object")
		}
		doc = normalize(doc).(map[string]any)
	}
	if len(parts) == 1 {
		switch method {
		case http.MethodGet:
			return s.list(st, q)
		case http.MethodPost:
			return s.create(st, doc)
		}
		return scimErr(http.StatusMethodNotAllowed, "", "%s not allowed on %s", method, rel)
	}
	id := parts[1]
	cur, ok := st.byID[id]
	if !ok {
		return scimErr(http.StatusNotFound, "", "%s %s not found", st.kind, id)
	}
	switch method {
	case http.MethodGet:
		return s.resourceReply(http.StatusOK, st, cur, q)
	case http.MethodPut:
		if v, ok := getFold(doc, "id"); ok && v != id {
			return scimErr(http.StatusBadRequest, "mutability", "id %v does not match %s", v, id)
		}
		return s.store(st, id, doc, cur, http.StatusOK)
	case http.MethodPatch:
		next, rep, ok := applyPatch(cur, doc)
		if !ok {
			return rep
		}
		return s.store(st, id, next, cur, http.StatusOK)
	case http.MethodDelete:
		st.del(id)
		for _, g := range s.groups.byID {
			if ms, ok := g["members"].([]any); ok {
				g["members"] = slices.DeleteFunc(ms, func(m any) bool { return memberValue(m) == id })
			}
		}
		return reply{status: http.StatusNoContent}
	}
	return scimErr(http.StatusMethodNotAllowed, "", "%s not allowed on %s", method, rel)
}

func (s *Server) create(st *store, doc map[string]any) reply {
	rep := s.store(st, "", doc, nil, http.StatusCreated)
	if rep.status == http.StatusCreated {
		s.creates.Add(1)
	}
	return rep
}

// store validates doc and stores it under id (a new id when ""), keeping created from prev.
func (s *Server) store(st *store, id string, doc, prev map[string]any, status int) reply {
	if rep, ok := s.validate(st, id, doc); !ok {
		return rep
	}
	res := clone(doc)
	deleteFold(res, "meta")
	deleteFold(res, "id")
	if id == "" {
		id = randomHex(8) + "-" + randomHex(4)
	}
	now := time.Now().UTC().Format(time.RFC3339Nano)
	created := now
	if prev != nil {
		if m, ok := prev["meta"].(map[string]any); ok {
			created, _ = m["created"].(string)
		}
	}
	s.version++
	res["id"] = id
	res["meta"] = map[string]any{
		"resourceType": st.kind,
		"created":      created,
		"lastModified": now,
		"version":      fmt.Sprintf(`W/"%d"`, s.version),
		"location":     s.URL + "/" + st.kind + "s/" + id,
	}
	st.put(id, res)
	return s.resourceReply(status, st, res, nil)
}

func (s *Server) resourceReply(status int, _ *store, res map[string]any, q url.Values) reply {
	out := clone(res)
	if excludes(q, "members") {
		deleteFold(out, "members")
	}
	meta := res["meta"].(map[string]any)
	h := http.Header{"Etag": {meta["version"].(string)}}
	if status == http.StatusCreated {
		h.Set("Location", meta["location"].(string))
	}
	return reply{status: status, header: h, body: out}
}

func excludes(q url.Values, attr string) bool {
	for _, v := range strings.Split(q.Get("excludedAttributes"), ",") {
		if strings.EqualFold(strings.TrimSpace(v), attr) {
			return true
		}
	}
	return false
}

// validate checks a user or group about to be stored under id ("" for a new one).
func (s *Server) validate(st *store, id string, doc map[string]any) (reply, bool) {
	want, key := schemaUser, "userName"
	if st == s.groups {
		want, key = schemaGroup, "displayName"
	}
	schemas, _ := getFold(doc, "schemas")
	list, _ := schemas.([]any)
	found := false
	for _, v := range list {
		if sv, ok := v.(string); ok && strings.EqualFold(sv, want) {
			found = true
		}
	}
	if !found {
		return scimErr(http.StatusBadRequest, "invalidValue", "schemas must include %s", want), false
	}
	name, _ := getFold(doc, key)
	ns, ok := name.(string)
	if !ok || strings.TrimSpace(ns) == "" {
		return scimErr(http.StatusBadRequest, "invalidValue", "%s is required", key), false
	}
	if oid, ok := st.names[strings.ToLower(ns)]; ok && oid != id {
		return scimErr(http.StatusConflict, "uniqueness", "%s %q is already taken", key, ns), false
	}
	if v, ok := getFold(doc, "active"); ok {
		if _, isBool := v.(bool); !isBool {
			return scimErr(http.StatusBadRequest, "invalidValue", "active must be a boolean, got %v", v), false
		}
	}
	if st == s.groups {
		if ms, ok := getFold(doc, "members"); ok && ms != nil {
			list, ok := ms.([]any)
			if !ok {
				return scimErr(http.StatusBadRequest, "invalidValue", "members must be an array"), false
			}
			seen := map[string]bool{}
			uniq := list[:0:0]
			for _, m := range list {
				v := memberValue(m)
				_, isUser := s.users.byID[v]
				_, isGroup := s.groups.byID[v]
				if v == "" || !isUser && !isGroup {
					return scimErr(http.StatusBadRequest, "invalidValue", "member %q is not a known user or group id", v), false
				}
				if !seen[v] {
					seen[v] = true
					uniq = append(uniq, m)
				}
			}
			setFold(doc, "members", uniq)
		}
	}
	return reply{}, true
}

func memberValue(m any) string {
	if mm, ok := m.(map[string]any); ok {
		v, _ := getFold(mm, "value")
		s, _ := v.(string)
		return s
	}
	return ""
}

var filterRe = regexp.MustCompile(`(?i)^\s*([A-Za-z][A-Za-z0-9.]*)\s+eq\s+("(?:[^"\\]|\\.)*")\s*$`)

// list answers a query: an optional `attr eq "value"` filter, startIndex/count paging.
func (s *Server) list(st *store, q url.Values) reply {
	all := st.all()
	if f := q.Get("filter"); f != "" {
		m := filterRe.FindStringSubmatch(f)
		if m == nil {
			return scimErr(http.StatusBadRequest, "invalidFilter", "unsupported filter %q (only attr eq \"value\")", f)
		}
		var val string
		if err := json.Unmarshal([]byte(m[2]), &val); err != nil {
			return scimErr(http.StatusBadRequest, "invalidFilter", "bad string literal in %q", f)
		}
		attr := strings.ToLower(m[1])
		allowed := map[string]bool{"username": true, "externalid": true, "displayname": true, "emails.value": true, "id": true}
		if st == s.groups {
			allowed = map[string]bool{"externalid": true, "displayname": true, "id": true}
		}
		if !allowed[attr] {
			return scimErr(http.StatusBadRequest, "invalidFilter", "filtering on %q is not supported", m[1])
		}
		caseExact := attr == "id" || attr == "externalid"
		var out []map[string]any
		for _, r := range all {
			if matches(r, attr, val, caseExact) {
				out = append(out, r)
			}
		}
		all = out
	}
	start := 1
	if v := q.Get("startIndex"); v != "" && !s.opts.IgnoreStartIndex {
		n, err := strconv.Atoi(v)
		if err != nil {
			return scimErr(http.StatusBadRequest, "invalidValue", "startIndex %q is not an integer", v)
		}
		start = max(n, 1)
	}
	count := s.opts.MaxPageSize
	if v := q.Get("count"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return scimErr(http.StatusBadRequest, "invalidValue", "count %q is not an integer", v)
		}
		count = min(max(n, 0), s.opts.MaxPageSize)
	}
	page := []any{}
	for i := start - 1; i < len(all) && len(page) < count; i++ {
		r := clone(all[i])
		if excludes(q, "members") {
			deleteFold(r, "members")
		}
		page = append(page, r)
	}
	return reply{status: http.StatusOK, body: map[string]any{
		"schemas":      []string{schemaListResponse},
		"totalResults": len(all),
		"startIndex":   start,
		"itemsPerPage": len(page),
		"Resources":    page,
	}}
}

func matches(r map[string]any, attr, val string, caseExact bool) bool {
	var vals []any
	if attr == "emails.value" {
		emails, _ := getFold(r, "emails")
		list, _ := emails.([]any)
		for _, e := range list {
			if em, ok := e.(map[string]any); ok {
				v, _ := getFold(em, "value")
				vals = append(vals, v)
			}
		}
	} else {
		v, _ := getFold(r, attr)
		vals = append(vals, v)
	}
	for _, v := range vals {
		sv, ok := v.(string)
		if ok && (sv == val || !caseExact && strings.EqualFold(sv, val)) {
			return true
		}
	}
	return false
}

// PATCH (RFC 7644 §3.5.2).

// patchPath is a parsed PATCH path: [urn:]attr[.sub] or [urn:]attr[filterAttr eq "v"][.sub].
type patchPath struct {
	urn, attr, sub string
	filterAttr     string
	filterVal      string
	hasFilter      bool
}

var pathRe = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9_$-]*)(?:\[\s*([A-Za-z][A-Za-z0-9_$-]*)\s+(?i:eq)\s+("(?:[^"\\]|\\.)*")\s*\])?(?:\.([A-Za-z][A-Za-z0-9_$-]*))?$`)

func parsePath(p string) (patchPath, bool) {
	var pp patchPath
	rest := p
	if strings.HasPrefix(strings.ToLower(p), "urn:") {
		head := p
		if i := strings.Index(p, "["); i >= 0 {
			head = p[:i]
		}
		i := strings.LastIndex(head, ":")
		pp.urn, rest = p[:i], p[i+1:]
	}
	m := pathRe.FindStringSubmatch(rest)
	if m == nil {
		return pp, false
	}
	pp.attr, pp.sub = m[1], m[4]
	if m[2] != "" {
		pp.hasFilter, pp.filterAttr = true, m[2]
		if err := json.Unmarshal([]byte(m[3]), &pp.filterVal); err != nil {
			return pp, false
		}
	}
	return pp, true
}

var readOnly = map[string]bool{"id": true, "meta": true}

// applyPatch applies a PatchOp document to a copy of cur; on any error nothing changes.
func applyPatch(cur, doc map[string]any) (map[string]any, reply, bool) {
	schemas, _ := getFold(doc, "schemas")
	list, _ := schemas.([]any)
	if !slices.ContainsFunc(list, func(v any) bool { s, _ := v.(string); return strings.EqualFold(s, schemaPatchOp) }) {
		return nil, scimErr(http.StatusBadRequest, "invalidValue", "schemas must be [%q]", schemaPatchOp), false
	}
	opsv, _ := getFold(doc, "Operations")
	ops, ok := opsv.([]any)
	if !ok || len(ops) == 0 {
		return nil, scimErr(http.StatusBadRequest, "invalidSyntax", "Operations must be a non-empty array"), false
	}
	res := clone(cur)
	for i, o := range ops {
		om, ok := o.(map[string]any)
		if !ok {
			return nil, scimErr(http.StatusBadRequest, "invalidSyntax", "operation %d is not an object", i), false
		}
		opv, _ := getFold(om, "op")
		op, _ := opv.(string)
		pathv, _ := getFold(om, "path")
		path, _ := pathv.(string)
		value, hasValue := getFold(om, "value")
		var rep reply
		switch strings.ToLower(op) {
		case "add", "replace":
			if !hasValue {
				return nil, scimErr(http.StatusBadRequest, "invalidValue", "operation %d: value required", i), false
			}
			rep, ok = setPath(res, strings.ToLower(op) == "add", path, value)
		case "remove":
			if path == "" {
				return nil, scimErr(http.StatusBadRequest, "noTarget", "operation %d: remove needs a path", i), false
			}
			rep, ok = removePath(res, path, value)
		default:
			return nil, scimErr(http.StatusBadRequest, "invalidSyntax", "operation %d: unknown op %q", i, op), false
		}
		if !ok {
			return nil, rep, false
		}
	}
	return res, reply{}, true
}

func checkWritable(attr string) (reply, bool) {
	if readOnly[strings.ToLower(attr)] {
		return scimErr(http.StatusBadRequest, "mutability", "%s is read-only", attr), false
	}
	return reply{}, true
}

// container returns the map an attribute lives in: the resource, or its extension object.
func container(res map[string]any, urn string, create bool) map[string]any {
	if urn == "" {
		return res
	}
	if v, ok := getFold(res, urn); ok {
		if m, ok := v.(map[string]any); ok {
			return m
		}
	}
	if !create {
		return nil
	}
	m := map[string]any{}
	setFold(res, urn, m)
	return m
}

func setPath(res map[string]any, add bool, path string, value any) (reply, bool) {
	if path == "" {
		obj, ok := value.(map[string]any)
		if !ok {
			return scimErr(http.StatusBadRequest, "invalidValue", "an operation without path needs an object value"), false
		}
		for k, v := range obj {
			if strings.HasPrefix(strings.ToLower(k), "urn:") {
				if ext, ok := v.(map[string]any); ok {
					c := container(res, k, true)
					for ek, ev := range ext {
						setAttr(c, add, ek, ev)
					}
					continue
				}
			}
			if rep, ok := checkWritable(k); !ok {
				return rep, false
			}
			setAttr(res, add, k, v)
		}
		return reply{}, true
	}
	pp, ok := parsePath(path)
	if !ok {
		return scimErr(http.StatusBadRequest, "invalidPath", "unsupported path %q", path), false
	}
	if rep, ok := checkWritable(pp.attr); !ok {
		return rep, false
	}
	c := container(res, pp.urn, true)
	switch {
	case !pp.hasFilter && pp.sub == "":
		setAttr(c, add, pp.attr, value)
	case !pp.hasFilter:
		v, _ := getFold(c, pp.attr)
		m, ok := v.(map[string]any)
		if !ok {
			m = map[string]any{}
			setFold(c, pp.attr, m)
		}
		setFold(m, pp.sub, value)
	default:
		items := matchingItems(c, pp)
		if len(items) == 0 {
			return scimErr(http.StatusBadRequest, "noTarget", "no value of %s matches %s eq %q", pp.attr, pp.filterAttr, pp.filterVal), false
		}
		for _, it := range items {
			if pp.sub != "" {
				setFold(it, pp.sub, value)
			} else if obj, ok := value.(map[string]any); ok {
				for k, v := range obj {
					setFold(it, k, v)
				}
			} else {
				return scimErr(http.StatusBadRequest, "invalidValue", "value for %q must be an object", path), false
			}
		}
	}
	return reply{}, true
}

// setAttr sets or (add on a multi-valued attribute) appends, skipping values already there.
func setAttr(m map[string]any, add bool, key string, v any) {
	cur, _ := getFold(m, key)
	curList, isList := cur.([]any)
	if add && isList {
		newVals, ok := v.([]any)
		if !ok {
			newVals = []any{v}
		}
		for _, nv := range newVals {
			if !slices.ContainsFunc(curList, func(x any) bool { return sameValue(x, nv) }) {
				curList = append(curList, nv)
			}
		}
		setFold(m, key, curList)
		return
	}
	setFold(m, key, v)
}

func sameValue(a, b any) bool {
	if av, bv := memberValue(a), memberValue(b); av != "" || bv != "" {
		return av == bv
	}
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}

func matchingItems(c map[string]any, pp patchPath) []map[string]any {
	v, _ := getFold(c, pp.attr)
	list, _ := v.([]any)
	var out []map[string]any
	for _, it := range list {
		m, ok := it.(map[string]any)
		if !ok {
			continue
		}
		fv, _ := getFold(m, pp.filterAttr)
		if s, ok := fv.(string); ok && s == pp.filterVal {
			out = append(out, m)
		}
	}
	return out
}

func removePath(res map[string]any, path string, value any) (reply, bool) {
	pp, ok := parsePath(path)
	if !ok {
		return scimErr(http.StatusBadRequest, "invalidPath", "unsupported path %q", path), false
	}
	if rep, ok := checkWritable(pp.attr); !ok {
		return rep, false
	}
	c := container(res, pp.urn, false)
	if c == nil {
		return reply{}, true
	}
	switch {
	case !pp.hasFilter && pp.sub == "":
		cur, _ := getFold(c, pp.attr)
		if list, ok := cur.([]any); ok && value != nil {
			// Entra ID style: remove the listed values from a multi-valued attribute.
			vals, ok := value.([]any)
			if !ok {
				vals = []any{value}
			}
			list = slices.DeleteFunc(list, func(x any) bool {
				return slices.ContainsFunc(vals, func(v any) bool { return sameValue(x, v) })
			})
			setFold(c, pp.attr, list)
			return reply{}, true
		}
		deleteFold(c, pp.attr)
	case !pp.hasFilter:
		if m, ok := c[keyFold(c, pp.attr)].(map[string]any); ok {
			deleteFold(m, pp.sub)
		}
	default:
		items := matchingItems(c, pp)
		if len(items) == 0 {
			return scimErr(http.StatusBadRequest, "noTarget", "no value of %s matches %s eq %q", pp.attr, pp.filterAttr, pp.filterVal), false
		}
		if pp.sub != "" {
			for _, it := range items {
				deleteFold(it, pp.sub)
			}
			return reply{}, true
		}
		cur, _ := getFold(c, pp.attr)
		list, _ := cur.([]any)
		list = slices.DeleteFunc(list, func(x any) bool {
			m, ok := x.(map[string]any)
			return ok && slices.ContainsFunc(items, func(it map[string]any) bool { return sameMap(it, m) })
		})
		setFold(c, pp.attr, list)
	}
	return reply{}, true
}

func sameMap(a, b map[string]any) bool {
	if len(a) != len(b) {
		return false
	}
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}

// Case-insensitive attribute access (SCIM attribute names are case-insensitive).

func keyFold(m map[string]any, key string) string {
	if _, ok := m[key]; ok {
		return key
	}
	for k := range m {
		if strings.EqualFold(k, key) {
			return k
		}
	}
	return key
}

func getFold(m map[string]any, key string) (any, bool) {
	v, ok := m[keyFold(m, key)]
	return v, ok
}

func setFold(m map[string]any, key string, v any) { m[keyFold(m, key)] = v }

func deleteFold(m map[string]any, key string) { delete(m, keyFold(m, key)) }

// normalize turns json.Number into float64 or int64-valued float64 so stored resources look
// like what encoding/json gives without UseNumber (UseNumber only guards against
// precision loss while validating).
func normalize(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			v[k] = normalize(x)
		}
		return v
	case []any:
		for i, x := range v {
			v[i] = normalize(x)
		}
		return v
	case json.Number:
		f, err := v.Float64()
		if err != nil {
			return v.String()
		}
		return f
	}
	return v
}

// clone deep-copies a JSON-shaped value.
func clone(m map[string]any) map[string]any {
	b, err := json.Marshal(m)
	if err != nil {
		panic(errors.New("scimserver: resource is not JSON-shaped: " + err.Error()))
	}
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	return out
}
