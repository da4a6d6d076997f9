package inbound

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/scimbridge/scimbridge/ldapstore"
	"github.com/scimbridge/scimbridge/mapping"
)

const contentType = "application/scim+json"

// Disable modes: what active=false does to a user.
const (
	// DisableAttribute sets the active marker (and the ppolicy lock when the directory has
	// ppolicy); the entry stays where it is.
	DisableAttribute = "attribute"
	// DisableMove sets the marker and moves the entry below Config.DisabledBaseDN;
	// active=true moves it back.
	DisableMove = "move"
	// DisableDelete deletes the entry.
	DisableDelete = "delete"
)

// Config is what the inbound server serves and where. The bridge translates its TOML
// [inbound] and [ldap.users]/[ldap.groups] sections into it.
type Config struct {
	// BasePath is the URL path the SCIM endpoints live under, e.g. "/scim/v2".
	BasePath string
	// MaxBodyBytes bounds a request body; a larger one is a 413.
	MaxBodyBytes int64
	// Tokens are the accepted bearer tokens.
	Tokens []Token
	Users  Users
	Groups Groups
	// UserAttributes and GroupAttributes override the default SCIM path → LDAP attribute maps
	// ("" unmaps).
	UserAttributes  map[string]string
	GroupAttributes map[string]string
	// Extensions are custom user extension schemas.
	Extensions []mapping.ExtensionSchema
	// Disable is DisableAttribute, DisableMove or DisableDelete; "" means DisableAttribute.
	Disable string
	// DisabledBaseDN receives disabled users with DisableMove.
	DisabledBaseDN string
	// MaxResults caps count in list requests. Defaults to 1000.
	MaxResults int
	// DefaultCount is the page size of a list request without count. Defaults to 100.
	DefaultCount int
	// Protect is what the SCIM side never sees or touches (see Protection).
	Protect Protection
	// ManagedOnly makes the SCIM side see and change only the entries that carry the managed
	// marker, which the bridge adds to what it creates.
	ManagedOnly bool
	// AdoptExisting lets a POST whose name is taken by an unmarked entry adopt it (mark and
	// update it) in managed mode, instead of answering 409.
	AdoptExisting bool
	// MaxMembers caps the member ids of one request (POST, PUT or PATCH of a group); more is a
	// 413. Defaults to 20000.
	MaxMembers int
	// AllowSensitive names the sensitive LDAP attributes (mapping.SensitiveAttribute) the
	// attribute maps may use all the same.
	AllowSensitive []string
	// MaxConcurrent bounds the requests worked on at once (defaults to 16); MaxQueued the
	// requests waiting for their turn beyond it (0 defaults to 1024; negative queues none); a request
	// that waited QueueTimeout (defaults to 30s) or finds the queue full is a 503.
	MaxConcurrent int
	MaxQueued     int
	QueueTimeout  time.Duration
	// PublicURL is the absolute URL of the base path as clients reach it, for Location and
	// meta.location; "" builds it from the request.
	PublicURL string
	// TrustedProxies are the client addresses whose X-Forwarded-Proto and X-Forwarded-Host
	// headers are believed.
	TrustedProxies []netip.Prefix
	// CleartextDirectory says the connection to the directory is neither TLS nor local, so a
	// password sent to it crosses the network in clear: SCIM passwords are then refused, unless
	// AllowCleartextPasswords.
	CleartextDirectory      bool
	AllowCleartextPasswords bool
}

// Users says where users live and what a new one looks like.
type Users struct {
	BaseDN        string
	ObjectClasses []string
	RDNAttribute  string
	// Filter selects users below BaseDN; every search is ANDed with it.
	Filter string
	// ScopeFilter is ANDed with Filter for the SCIM side only (inbound.scope_filter.users):
	// what it does not match, SCIM neither sees nor changes, and a user created through SCIM
	// must match it.
	ScopeFilter string
	// IDAttribute is the stable id; "" uses the dialect's (entryUUID, nsUniqueId, objectGUID).
	IDAttribute string
}

// Groups says where groups live and what a new one looks like.
type Groups struct {
	BaseDN        string
	ObjectClasses []string
	RDNAttribute  string
	Filter        string
	// ScopeFilter is ANDed with Filter for the SCIM side only (inbound.scope_filter.groups).
	ScopeFilter     string
	MemberAttribute string
}

// Directory is what the inbound server needs from the directory; *ldapstore.Store is one.
// Every method honours ctx while waiting for a connection; a request in flight is bounded by
// the store's request timeout.
type Directory interface {
	Walk(ctx context.Context, q ldapstore.Search, fn func(mapping.Entry) error) error
	Get(ctx context.Context, dn string, attrs []string) (mapping.Entry, error)
	Add(ctx context.Context, dn string, attrs map[string][]string) error
	Modify(ctx context.Context, dn string, changes []ldapstore.Change, opts ldapstore.ModifyOptions) error
	ModifyDN(ctx context.Context, dn, newRDN string, deleteOldRDN bool, newSuperior string) error
	Delete(ctx context.Context, dn string) error
	SetPassword(ctx context.Context, dn, password string) error
	RootDSE(ctx context.Context) (*ldapstore.RootDSE, error)
	HasAttributeType(ctx context.Context, name string) (bool, error)
	SupportsVLV(ctx context.Context) (bool, error)
	NewPager(o ldapstore.PagerOptions) *ldapstore.Pager
}

var _ Directory = (*ldapstore.Store)(nil)

// Options are a Server's dependencies.
type Options struct {
	Config    Config
	Directory Directory
	Logger    zerolog.Logger
	// Registry receives the inbound metrics; nil registers nothing.
	Registry prometheus.Registerer
	// Pager tunes the VLV pager; the zero value is sensible.
	Pager ldapstore.PagerOptions
	// AuthLimits tune the slowing down of failed authentications; the zero value is sensible.
	AuthLimits AuthLimits
}

// Server is the SCIM 2.0 HTTP handler. It is safe for concurrent use; Reload swaps its
// configuration between requests.
type Server struct {
	dir          Directory
	logger       zerolog.Logger
	metrics      *metrics
	limiter      *failureLimiter
	caps         capabilities
	pager        *ldapstore.Pager // nil without VLV: lists use snapshots
	snaps        *snapshotCache
	state        atomic.Pointer[state]
	guards       guardCache
	ignored      sync.Map // SCIM attribute paths already logged as unmapped
	ignoredCount atomic.Int64
	// noVLV holds the queries whose VLV search the directory refused (see refuseVLV).
	noVLV      sync.Map
	noVLVCount atomic.Int64
}

// maxIgnoredLogged bounds the unmapped attribute paths remembered (and logged).
const maxIgnoredLogged = 1000

// capabilities are what the directory offers, read once at start.
type capabilities struct {
	dialect   ldapstore.Dialect
	assertion bool
	vlv       bool
	ppolicy   bool
	// postRead: the directory returns the entry as a Modify left it (RFC 4527), which saves
	// reading it back for the response.
	postRead bool
	// dnAttr is the attribute a filter can match an entry's DN with ("" when none).
	dnAttr string
	// schema: the directory has scimbridge's optional schema (etc/schema) in its dialect's
	// variant, whose attributes then map by default (mapping.Profile.Schema).
	schema bool
	// domainNC is Active Directory's domain naming context, where account names must be
	// unique.
	domainNC string
}

// postReader is the optional ability of a Directory to return the entry with the Modify that
// changed it; *ldapstore.Store has it.
type postReader interface {
	ModifyWithPostRead(ctx context.Context, dn string, changes []ldapstore.Change, opts ldapstore.ModifyOptions, readAttrs []string) (mapping.Entry, bool, error)
}

var _ postReader = (*ldapstore.Store)(nil)

// New reads what the directory supports (dialect, Assertion control, VLV, ppolicy in the
// subschema), builds the attribute maps and returns the server. A bad mapping or base is an
// error naming the configuration key.
func New(ctx context.Context, o Options) (*Server, error) {
	if o.Directory == nil {
		return nil, errors.New("inbound: Options.Directory is required")
	}
	dse, err := o.Directory.RootDSE(ctx)
	if err != nil {
		return nil, fmt.Errorf("inbound: reading the root DSE: %w", err)
	}
	caps := capabilities{dialect: dse.Dialect, assertion: dse.Supports(ldapstore.OIDAssertion), domainNC: domainNC(dse)}
	if _, ok := o.Directory.(postReader); ok {
		caps.postRead = dse.Supports(ldapstore.OIDPostRead)
	}
	if caps.vlv, err = o.Directory.SupportsVLV(ctx); err != nil {
		return nil, fmt.Errorf("inbound: %w", err)
	}
	if caps.ppolicy, err = o.Directory.HasAttributeType(ctx, "pwdAccountLockedTime"); err != nil {
		return nil, fmt.Errorf("inbound: reading the subschema: %w", err)
	}
	if caps.dnAttr, err = dnAttribute(ctx, o.Directory, caps.dialect); err != nil {
		return nil, fmt.Errorf("inbound: reading the subschema: %w", err)
	}
	if caps.schema, err = o.Directory.HasAttributeType(ctx, mapping.ProfileFor(string(caps.dialect)).Schema.Detect); err != nil {
		return nil, fmt.Errorf("inbound: reading the subschema: %w", err)
	}
	s := &Server{
		dir:     o.Directory,
		logger:  o.Logger,
		metrics: newMetrics(o.Registry),
		limiter: newFailureLimiter(o.AuthLimits),
		caps:    caps,
		snaps:   newSnapshotCache(),
	}
	st, err := s.prepare(ctx, o.Config)
	if err != nil {
		return nil, err
	}
	s.state.Store(st)
	if caps.vlv {
		s.pager = o.Directory.NewPager(o.Pager)
	}
	ev := o.Logger.Info().Str("dialect", string(caps.dialect)).Bool("assertion_control", caps.assertion).
		Bool("vlv", caps.vlv).Bool("ppolicy", caps.ppolicy).Bool("post_read_control", caps.postRead).Str("disabled_marker", st.marker.String()).
		Bool("scimbridge_schema", caps.schema)
	if st.marker.LockAttr != "" {
		ev = ev.Str("lock_attribute", st.marker.LockAttr)
	}
	ev.Msg("inbound scim server configured")
	if !caps.assertion {
		o.Logger.Warn().Msg("the directory does not support the assertion control: If-Match is checked before writing, not atomically")
	}
	return s, nil
}

// Reload applies a new configuration to the requests that follow: tokens, limits, bases,
// fences and attribute maps. On error the old configuration stays. It is Prepare followed by
// the returned commit.
func (s *Server) Reload(ctx context.Context, cfg Config) error {
	commit, err := s.Prepare(ctx, cfg)
	if err != nil {
		return err
	}
	commit()
	return nil
}

// Prepare checks a new configuration completely — maps, filters, the protected groups, read
// from the directory — without applying it, and returns the function that applies it to the
// requests that follow. Nothing changes until commit is called; a configuration Prepare
// refuses is never half applied.
func (s *Server) Prepare(ctx context.Context, cfg Config) (commit func(), err error) {
	st, err := s.prepare(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return func() {
		s.state.Store(st)
		s.invalidate()
	}, nil
}

// prepare builds the state of cfg and, when it protects groups, reads them once, so that a
// missing group refuses the configuration.
func (s *Server) prepare(ctx context.Context, cfg Config) (*state, error) {
	st, err := s.newState(cfg)
	if err != nil {
		return nil, err
	}
	if len(st.prot.groups) > 0 {
		g, err := s.buildGuard(ctx, st)
		if err != nil {
			return nil, err
		}
		s.guards.mu.Lock()
		s.guards.cur = g
		s.guards.mu.Unlock()
	}
	return st, nil
}

// dnAttribute names the attribute a filter can match entries' DNs with: distinguishedName on
// Active Directory, entryDN where the subschema has it (OpenLDAP, 389-DS), else "".
func dnAttribute(ctx context.Context, d Directory, dialect ldapstore.Dialect) (string, error) {
	if dialect == ldapstore.DialectAD {
		return "distinguishedName", nil
	}
	ok, err := d.HasAttributeType(ctx, "entryDN")
	if err != nil || !ok {
		return "", err
	}
	return "entryDN", nil
}

// Close releases the VLV pager's connections.
func (s *Server) Close() {
	if s.pager != nil {
		s.pager.Close()
	}
}

// ServeHTTP answers one SCIM request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	st := s.state.Load()
	rec := &statusRecorder{ResponseWriter: w}
	rel, ok := st.relPath(r.URL.Path)
	endpoint := "other"
	if ok {
		endpoint = endpointLabel(rel)
	}
	defer func() {
		status := rec.status
		if status == 0 {
			status = http.StatusOK
		}
		s.metrics.observe(endpoint, r.Method, status, time.Since(start))
	}()
	if !ok {
		writeError(rec, notFound("endpoint"))
		return
	}
	actor := authenticate(st.tokens, r)
	if actor == "" {
		s.refuse(rec, r)
		return
	}
	ctx := r.Context()
	release, aerr := st.queue.acquire(ctx, s.metrics)
	if aerr != nil {
		writeError(rec, aerr)
		return
	}
	defer release()
	g, err := s.guard(ctx, st)
	if err != nil {
		writeError(rec, errGuard(err))
		return
	}
	if r.ContentLength > st.cfg.MaxBodyBytes {
		writeError(rec, tooLarge(st.cfg.MaxBodyBytes))
		return
	}
	if r.Body != nil {
		r.Body = http.MaxBytesReader(rec, r.Body, st.cfg.MaxBodyBytes)
	}
	// The answer is buffered and sent once the handler is done, so that the audit event of a
	// write is logged before the client can see the result.
	buf := &bufferedWriter{header: http.Header{}}
	q := &request{s: s, st: st, g: g, w: buf, r: r, actor: actor, rel: rel, baseURL: st.baseURL(r)}
	q.route()
	buf.flushTo(rec)
}

// bufferedWriter holds a response until the handler has finished.
type bufferedWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedWriter) Header() http.Header { return b.header }

func (b *bufferedWriter) WriteHeader(status int) {
	if b.status == 0 {
		b.status = status
	}
}

func (b *bufferedWriter) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.body.Write(p)
}

func (b *bufferedWriter) flushTo(w http.ResponseWriter) {
	h := w.Header()
	for k, v := range b.header {
		h[k] = v
	}
	if b.status == 0 {
		b.status = http.StatusOK
	}
	w.WriteHeader(b.status)
	_, _ = w.Write(b.body.Bytes())
}

// refuse answers a request without a valid token: 401 with a SCIM error, slowed down when
// failures come in bursts.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	d, ok := s.limiter.delay(r.RemoteAddr, now)
	if ok {
		ok = s.limiter.wait(r.Context(), d)
	}
	// The path and the number of failures are the client's choice: the line is capped in
	// length and in rate, and says how many failures went unlogged since the last one.
	logged, suppressed := s.limiter.logAllowed(now)
	if !ok {
		if logged {
			s.logger.Warn().Str("remote", r.RemoteAddr).Int64("unlogged_failures", suppressed).Msg("authentication failures: too many; answering 429")
		}
		writeError(w, &apiError{status: http.StatusTooManyRequests, detail: "too many failed authentications; retry later", retryAfter: 2})
		return
	}
	if logged {
		s.logger.Info().Str("remote", r.RemoteAddr).Str("path", truncate(r.URL.Path, maxLoggedPath)).Int64("unlogged_failures", suppressed).Msg("authentication failed")
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="scim"`)
	writeError(w, &apiError{status: http.StatusUnauthorized, detail: "a valid bearer token is required"})
}

// maxLoggedPath bounds the request path written into log lines about unauthenticated requests.
const maxLoggedPath = 128

// truncate cuts s to at most n bytes, on a rune boundary, marking the cut with "…".
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func tooLarge(limit int64) *apiError {
	return &apiError{status: http.StatusRequestEntityTooLarge, detail: fmt.Sprintf("the request body exceeds %d bytes", limit)}
}

// baseURL is the absolute URL of the SCIM base path, for meta.location and Location:
// inbound.public_url when set; otherwise the scheme and Host the request came with, where the
// X-Forwarded-Proto and X-Forwarded-Host of a proxy count only when the request comes from one
// of inbound.trusted_proxies.
func (st *state) baseURL(r *http.Request) string {
	if st.cfg.PublicURL != "" {
		return strings.TrimRight(st.cfg.PublicURL, "/")
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	host := r.Host
	if st.trusted(r.RemoteAddr) {
		if p := strings.ToLower(strings.TrimSpace(r.Header.Get("X-Forwarded-Proto"))); p == "https" || p == "http" {
			scheme = p
		}
		if h := strings.TrimSpace(r.Header.Get("X-Forwarded-Host")); validHost(h) {
			host = h
		}
	}
	if !validHost(host) {
		host = "localhost"
	}
	return scheme + "://" + host + strings.TrimRight(st.cfg.BasePath, "/")
}

// trusted reports whether the peer at remoteAddr is one of the trusted proxies.
func (st *state) trusted(remoteAddr string) bool {
	if len(st.cfg.TrustedProxies) == 0 {
		return false
	}
	ap, err := netip.ParseAddrPort(remoteAddr)
	if err != nil {
		return false
	}
	a := ap.Addr().Unmap()
	for _, p := range st.cfg.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// validHost accepts a host[:port] as a Host header may carry it, and nothing that could break
// out of a URL.
func validHost(h string) bool {
	if h == "" || len(h) > 255 {
		return false
	}
	for _, c := range h {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.ContainsRune(".-:[]_", c):
		default:
			return false
		}
	}
	return true
}

// request is one SCIM request being answered.
type request struct {
	s  *Server
	st *state
	// g is the protected set this request is answered with.
	g *guard
	// denied is set when the fence refused something the request named (why: bind_dn,
	// protected_dns, protected_groups): its audit event says result=denied.
	denied  string
	w       http.ResponseWriter
	r       *http.Request
	actor   string
	rel     string
	baseURL string
	// written is the entry as this request's last write left it, with the attributes
	// writtenAttrs, when the directory returned it (Post-Read): the response needs no re-read.
	written      *mapping.Entry
	writtenAttrs []string
}

func (q *request) ctx() context.Context { return q.r.Context() }

// route dispatches on the path below the base path.
func (q *request) route() {
	first, rest, _ := strings.Cut(strings.TrimPrefix(q.rel, "/"), "/")
	var k *kind
	switch first {
	case "Users":
		k = q.st.users
	case "Groups":
		k = q.st.groups
	case "ServiceProviderConfig":
		if q.r.Method != http.MethodGet {
			q.fail(methodNotAllowed())
			return
		}
		q.serviceProviderConfig()
		return
	case "Schemas", "ResourceTypes":
		if q.r.Method != http.MethodGet {
			q.fail(methodNotAllowed())
			return
		}
		q.discovery()
		return
	case "", ".search", "Bulk", "Me":
		q.fail(&apiError{status: http.StatusNotImplemented, detail: "not supported: use the /Users and /Groups endpoints"})
		return
	default:
		q.fail(notFound("endpoint"))
		return
	}
	switch {
	case rest == "":
		switch q.r.Method {
		case http.MethodGet:
			q.list(k, queryFromURL(q.r.URL.Query()))
		case http.MethodPost:
			q.create(k)
		default:
			q.fail(methodNotAllowed())
		}
	case rest == ".search":
		if q.r.Method != http.MethodPost {
			q.fail(methodNotAllowed())
			return
		}
		q.search(k)
	case strings.Contains(rest, "/"):
		q.fail(notFound("endpoint"))
	default:
		id, err := url.PathUnescape(rest)
		if err != nil {
			q.fail(notFound(k.name))
			return
		}
		switch q.r.Method {
		case http.MethodGet:
			q.get(k, id)
		case http.MethodPut:
			q.replace(k, id)
		case http.MethodPatch:
			q.patch(k, id)
		case http.MethodDelete:
			q.delete(k, id)
		default:
			q.fail(methodNotAllowed())
		}
	}
}

func methodNotAllowed() *apiError {
	return &apiError{status: http.StatusMethodNotAllowed, detail: "method not allowed on this endpoint"}
}

// fail answers with err as a SCIM error and logs what the client does not see.
func (q *request) fail(err error) {
	ae := classify(err)
	level := zerolog.DebugLevel
	switch {
	case ae.status >= 500:
		level = zerolog.ErrorLevel
	case ae.status == http.StatusConflict || ae.status == http.StatusPreconditionFailed:
		level = zerolog.InfoLevel
	}
	q.s.logger.WithLevel(level).Err(ae.cause).Str("method", q.r.Method).Str("path", q.r.URL.Path).Int("status", ae.status).Str("scim_type", ae.scimType).Msg("scim request failed")
	writeError(q.w, ae)
}

// readJSON decodes the request body into an object. Numbers stay json.Number, so that
// integers keep their precision.
func (q *request) readJSON() (map[string]any, error) {
	if q.r.Body == nil {
		return nil, badRequest(mapping.ScimTypeInvalidSyntax, "the request has no body")
	}
	data, err := io.ReadAll(q.r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooLarge(mbe.Limit)
		}
		return nil, &apiError{status: http.StatusBadRequest, scimType: mapping.ScimTypeInvalidSyntax, detail: "the request body could not be read", cause: err}
	}
	if !utf8.Valid(data) {
		// Go's decoder would replace the bad bytes and silently change a value.
		return nil, badRequest(mapping.ScimTypeInvalidSyntax, "the request body is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, badRequest(mapping.ScimTypeInvalidSyntax, "the request body is not valid JSON")
	}
	if dec.More() {
		return nil, badRequest(mapping.ScimTypeInvalidSyntax, "the request body holds more than one JSON value")
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, badRequest(mapping.ScimTypeInvalidSyntax, "the request body must be a JSON object")
	}
	if err := checkStrings(obj, 0); err != nil {
		return nil, err
	}
	return obj, nil
}

// maxJSONDepth bounds the nesting of request bodies.
const maxJSONDepth = 32

// checkStrings refuses what no directory attribute can hold, strings with NUL characters, and
// absurd nesting.
func checkStrings(v any, depth int) error {
	if depth > maxJSONDepth {
		return badRequest(mapping.ScimTypeInvalidSyntax, "the request body is nested too deeply")
	}
	switch x := v.(type) {
	case string:
		if strings.ContainsRune(x, 0) {
			return badRequest(mapping.ScimTypeInvalidValue, "string values must not contain NUL characters")
		}
	case map[string]any:
		for k, e := range x {
			if err := checkStrings(k, depth+1); err != nil {
				return err
			}
			if err := checkStrings(e, depth+1); err != nil {
				return err
			}
		}
	case []any:
		for _, e := range x {
			if err := checkStrings(e, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

// writeJSON answers with a SCIM JSON body.
func (q *request) writeJSON(status int, v any, etag, location string) {
	body, err := json.Marshal(v)
	if err != nil {
		q.fail(fmt.Errorf("inbound: encoding the response: %w", err))
		return
	}
	h := q.w.Header()
	h.Set("Content-Type", contentType)
	if etag != "" {
		h.Set("ETag", etag)
	}
	if location != "" {
		h.Set("Location", location)
	}
	q.w.WriteHeader(status)
	_, _ = q.w.Write(body)
}

// audit logs one write: who did what to which resource and how it ended.
func (q *request) audit(k *kind, op, id string, err error) {
	result := "success"
	var status int
	var scimType, deniedBy string
	if q.denied != "" {
		// The fence refused something the request named, even if the rest was done.
		result, deniedBy = "denied", q.denied
	}
	if err != nil {
		ae := classify(err)
		if result == "success" {
			result = "failure"
		}
		status, scimType = ae.status, ae.scimType
	}
	q.s.logger.Info().Func(func(e *zerolog.Event) {
		if deniedBy != "" {
			e.Str("denied_by", deniedBy)
		}
		if status != 0 {
			e.Int("status", status)
		}
		if scimType != "" {
			e.Str("scim_type", scimType)
		}
	}).Bool("audit", true).Str("actor", q.actor).Str("resource", k.name).Str("id", id).Str("op", op).Str("result", result).Msg("inbound write")
}

// logIgnored logs each unmapped SCIM attribute once per process: Entra ID sends many by
// default and rejecting them would fail every provisioning cycle.
func (s *Server) logIgnored(kind string, paths []string) {
	if len(paths) == 0 {
		return
	}
	s.metrics.ignored.Add(float64(len(paths)))
	for _, p := range paths {
		key := kind + "\x00" + strings.ToLower(p)
		if _, seen := s.ignored.Load(key); seen {
			continue
		}
		// Bounded: paths can carry client-chosen types (phoneNumbers[type eq "…"]).
		if s.ignoredCount.Load() >= maxIgnoredLogged {
			return
		}
		if _, seen := s.ignored.LoadOrStore(key, true); !seen {
			s.ignoredCount.Add(1)
			s.logger.Info().Str("resource", kind).Str("attribute", p).Msg("scim attribute has no ldap mapping; ignoring it (logged once)")
		}
	}
}

// invalidate tells the list machinery that the directory changed.
func (s *Server) invalidate() {
	if s.pager != nil {
		s.pager.Invalidate()
	}
	s.snaps.clear()
	s.noVLV.Clear()
	s.noVLVCount.Store(0)
}
