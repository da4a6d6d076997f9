package scim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"github.com/rs/zerolog"
	"golang.org/x/oauth2"

	"github.com/scimbridge/scimbridge/mapping"
	"github.com/scimbridge/scimbridge/targets"
)

// SCIM schema URNs (RFC 7643, RFC 7644).
const (
	SchemaUser         = "urn:ietf:params:scim:schemas:core:2.0:User"
	SchemaGroup        = "urn:ietf:params:scim:schemas:core:2.0:Group"
	SchemaEnterprise   = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
	SchemaPatchOp      = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
	SchemaListResponse = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
	SchemaError        = "urn:ietf:params:scim:api:messages:2.0:Error"
)

const (
	contentType = "application/scim+json"
	acceptTypes = "application/scim+json, application/json"
	userAgent   = "scimbridge"
)

var (
	_ targets.Target          = (*Target)(nil)
	_ targets.Lister          = (*Target)(nil)
	_ targets.Closer          = (*Target)(nil)
	_ targets.Config          = (*Config)(nil)
	_ targets.Validator       = (*Config)(nil)
	_ targets.DirectorySetter = (*Config)(nil)
)

// Target is a SCIM 2.0 service provider seen as a provisioning target. It is safe for
// concurrent use.
//
// Every call goes through one HTTP client built by Open. Inside one call, network errors and
// 5xx/429/408 answers to idempotent requests (GET, PUT, PATCH, DELETE) are retried up to
// max_retries times with a capped, jittered exponential backoff that honours Retry-After
// (capped at max_backoff); a POST is never repeated blindly. A 401 gets the credentials
// refreshed (a new OAuth2 token, the token file read again) and one more try. What comes back
// is classified for the outbox:
//
//   - 2xx, and the answers that mean "already done": 404 to a DELETE, 409 to a POST (the
//     existing resource is looked up by the match attribute and adopted), 400 noTarget to a
//     PATCH that only removes: success.
//   - Network errors, timeouts, 5xx (but 501 and 505), 429 and 408: *targets.RetryableError,
//     with After from Retry-After.
//   - Anything else, including a second 401 and a token endpoint refusing the client
//     credentials: *targets.PermanentError carrying the target's error body.
type Target struct {
	name       string
	log        zerolog.Logger
	base       string
	userPath   string
	groupPath  string
	batch      int
	pageSize   int
	headers    http.Header
	client     *retryablehttp.Client
	userAgent  string
	auth       authenticator
	transports []*http.Transport
	cancel     context.CancelFunc
}

// Open validates c, reads the files it names and builds the target. It connects nowhere.
func (c *Config) Open(name string, logger zerolog.Logger) (targets.Target, error) {
	return New(c, name, logger)
}

// New is Open returning the concrete type.
func New(c *Config, name string, logger zerolog.Logger) (*Target, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("scim: %w", err)
	}
	t := &Target{
		name:      name,
		log:       logger,
		base:      strings.TrimRight(c.URL, "/"),
		userPath:  c.UserPath,
		groupPath: c.GroupPath,
		batch:     c.MembersPerRequest,
		pageSize:  c.PageSize,
		headers:   http.Header{},
		cancel:    func() {},
		userAgent: userAgent,
	}
	if c.instance != "" {
		t.userAgent = userAgent + " (instance " + c.instance + ")"
	}
	for k, v := range c.Headers {
		t.headers.Set(k, v.Reveal())
	}
	if err := c.build(t); err != nil {
		t.cancel()
		return nil, fmt.Errorf("scim: %w", err)
	}
	if c.InsecureSkipVerify {
		logger.Warn().Msg("insecure_skip_verify is set: the target's certificate is not verified")
	}
	if u, _ := url.Parse(c.URL); u != nil && u.Scheme == "http" && c.Auth != AuthNone && !isLoopback(u.Hostname()) {
		logger.Warn().Str("auth", c.Auth).Msg("credentials are sent over plain http")
	}
	return t, nil
}

// Close releases idle connections and stops token refreshes. Calls in flight finish.
func (t *Target) Close() error {
	t.cancel()
	for _, tr := range t.transports {
		tr.CloseIdleConnections()
	}
	return nil
}

func (t *Target) path(kind mapping.Kind) (string, error) {
	switch kind {
	case mapping.KindUser:
		return t.userPath, nil
	case mapping.KindGroup:
		return t.groupPath, nil
	}
	return "", &targets.PermanentError{Err: fmt.Errorf("unknown resource kind %q", kind)}
}

// Apply performs op on the target. See targets.Target for the contract.
func (t *Target) Apply(ctx context.Context, op mapping.Op) (targets.Result, error) {
	desc := describe(op)
	if err := ctx.Err(); err != nil {
		return targets.Result{}, fmt.Errorf("scim: %s: %w", desc, err)
	}
	res, err := t.apply(ctx, op)
	if err != nil {
		return targets.Result{}, fmt.Errorf("scim: %s: %w", desc, err)
	}
	return res, nil
}

func (t *Target) apply(ctx context.Context, op mapping.Op) (targets.Result, error) {
	path, err := t.path(op.Kind)
	if err != nil {
		return targets.Result{}, err
	}
	if op.Type != mapping.OpCreate && op.TargetID == "" {
		return targets.Result{}, &targets.PermanentError{Err: errors.New("no target id")}
	}
	idPath := path + "/" + url.PathEscape(op.TargetID)
	switch op.Type {
	case mapping.OpCreate:
		return t.create(ctx, op, path)
	case mapping.OpReplace:
		body := withSchemas(op.Kind, op.Resource)
		body["id"] = op.TargetID
		return t.write(ctx, op, http.MethodPut, idPath, body, false)
	case mapping.OpUpdate:
		if len(op.Patch) == 0 {
			return targets.Result{ID: op.TargetID, Kind: op.Kind}, nil
		}
		removesOnly := true
		for _, p := range op.Patch {
			removesOnly = removesOnly && strings.EqualFold(p.Op, "remove")
		}
		return t.write(ctx, op, http.MethodPatch, idPath, patchBody(op.Patch), removesOnly)
	case mapping.OpDisable:
		if op.Kind != mapping.KindUser {
			return targets.Result{}, &targets.PermanentError{Err: fmt.Errorf("a %s cannot be disabled in SCIM (no active attribute)", op.Kind)}
		}
		ops := []mapping.PatchOp{{Op: "replace", Path: "active", Value: false}}
		return t.write(ctx, op, http.MethodPatch, idPath, patchBody(ops), false)
	case mapping.OpDelete:
		r, err := t.do(ctx, http.MethodDelete, idPath, nil, nil)
		if err != nil {
			return targets.Result{}, err
		}
		if r.status == http.StatusNotFound {
			t.log.Debug().Str("kind", string(op.Kind)).Str("id", op.TargetID).Msg("resource already gone on the target")
		} else if err := t.statusError(r); err != nil {
			return targets.Result{}, err
		}
		return targets.Result{ID: op.TargetID, Kind: op.Kind}, nil
	case mapping.OpMembers:
		if op.Kind != mapping.KindGroup {
			return targets.Result{}, &targets.PermanentError{Err: fmt.Errorf("members of a %s", op.Kind)}
		}
		return t.members(ctx, op, idPath)
	}
	return targets.Result{}, &targets.PermanentError{Err: fmt.Errorf("unknown operation type %q", op.Type)}
}

// create POSTs a new resource, after looking it up by its match attribute: a create whose
// answer was lost (network error, 5xx after storing) finds the resource on the next delivery
// instead of creating it twice; one that exists before we ever created it is adopted.
func (t *Target) create(ctx context.Context, op mapping.Op, path string) (targets.Result, error) {
	canMatch := op.MatchAttribute != "" && op.MatchValue != ""
	if canMatch {
		res, found, err := t.find(ctx, op.Kind, op.MatchAttribute, op.MatchValue)
		if err != nil {
			return targets.Result{}, fmt.Errorf("lookup before create: %w", err)
		}
		if found {
			t.log.Info().Str("kind", string(op.Kind)).Str("id", res.ID).Str("match_value", op.MatchValue).
				Msg("adopting existing resource instead of creating it")
			return res, nil
		}
	}
	r, err := t.do(ctx, http.MethodPost, path, nil, withSchemas(op.Kind, op.Resource))
	if err != nil {
		return targets.Result{}, err
	}
	if r.status == http.StatusConflict && canMatch {
		// Created meanwhile by someone else (or by our lost attempt): adopt it.
		res, found, ferr := t.find(ctx, op.Kind, op.MatchAttribute, op.MatchValue)
		if ferr != nil {
			return targets.Result{}, fmt.Errorf("lookup after 409: %w", ferr)
		}
		if found {
			t.log.Info().Str("kind", string(op.Kind)).Str("id", res.ID).Str("match_value", op.MatchValue).
				Msg("target answered 409 conflict; adopting the existing resource")
			return res, nil
		}
		return targets.Result{}, t.statusError(r, fmt.Sprintf("and no %s matches %s eq %q", op.Kind, op.MatchAttribute, op.MatchValue))
	}
	if err := t.statusError(r); err != nil {
		return targets.Result{}, err
	}
	res, err := t.result(op.Kind, r)
	if err != nil {
		return targets.Result{}, err
	}
	if res.ID == "" {
		return targets.Result{}, &targets.PermanentError{
			Status: r.status, Body: targets.Truncate(string(r.body), targets.MaxErrorBody),
			Err: fmt.Errorf("%d answer to create carries no id", r.status),
		}
	}
	return res, nil
}

// write sends a PUT or PATCH to an existing resource. removesOnly says the PATCH only removes
// values, so a 400 noTarget means they are already gone.
func (t *Target) write(ctx context.Context, op mapping.Op, method, path string, body any, removesOnly bool) (targets.Result, error) {
	r, err := t.do(ctx, method, path, nil, body)
	if err != nil {
		return targets.Result{}, err
	}
	if removesOnly && isNoTarget(r) {
		return targets.Result{ID: op.TargetID, Kind: op.Kind}, nil
	}
	if err := t.statusError(r); err != nil {
		return targets.Result{}, err
	}
	if r.status == http.StatusNoContent || len(bytes.TrimSpace(r.body)) == 0 {
		return targets.Result{ID: op.TargetID, Kind: op.Kind, Version: etag(r.header)}, nil
	}
	res, err := t.result(op.Kind, r)
	if err != nil {
		return targets.Result{}, err
	}
	if res.ID == "" {
		res.ID = op.TargetID
	}
	return res, nil
}

// memberStep is a run of member additions or removals from an OpMembers.
type memberStep struct {
	remove bool
	ids    []string
}

// members applies an OpMembers as PATCHes of at most t.batch member changes each: additions
// as one "add" of several values, removals as one "remove" per member with a
// members[value eq "…"] path (RFC 7644 §3.5.2.2), which every SCIM server understands.
func (t *Target) members(ctx context.Context, op mapping.Op, path string) (targets.Result, error) {
	steps, err := memberSteps(op.Patch)
	if err != nil {
		return targets.Result{}, &targets.PermanentError{Err: err}
	}
	res := targets.Result{ID: op.TargetID, Kind: op.Kind}
	for _, s := range steps {
		for start := 0; start < len(s.ids); start += t.batch {
			chunk := s.ids[start:min(start+t.batch, len(s.ids))]
			if !s.remove {
				vals := make([]map[string]string, len(chunk))
				for i, id := range chunk {
					vals[i] = map[string]string{"value": id}
				}
				if _, err := t.write(ctx, op, http.MethodPatch, path, patchBody([]mapping.PatchOp{{Op: "add", Path: "members", Value: vals}}), false); err != nil {
					return targets.Result{}, err
				}
				continue
			}
			if err := t.removeMembers(ctx, op, path, chunk); err != nil {
				return targets.Result{}, err
			}
		}
	}
	return res, nil
}

// removeMembers removes chunk in one PATCH. Such a PATCH is atomic, so one member already
// absent (400 noTarget) fails it all: then each is removed alone, absent ones counting as
// done.
func (t *Target) removeMembers(ctx context.Context, op mapping.Op, path string, chunk []string) error {
	ops := make([]mapping.PatchOp, len(chunk))
	for i, id := range chunk {
		ops[i] = mapping.PatchOp{Op: "remove", Path: "members[value eq " + jsonString(id) + "]"}
	}
	r, err := t.do(ctx, http.MethodPatch, path, nil, patchBody(ops))
	if err != nil {
		return err
	}
	if !isNoTarget(r) {
		return t.statusError(r)
	}
	if len(chunk) == 1 {
		t.log.Debug().Str("group_id", op.TargetID).Str("member", chunk[0]).Msg("member already absent")
		return nil
	}
	for _, id := range chunk {
		if err := t.removeMembers(ctx, op, path, []string{id}); err != nil {
			return err
		}
	}
	return nil
}

// memberSteps turns OpMembers patch operations into runs of ids to add or remove. A value may
// be an id, a {"value": id} object, or a list of either; a remove may instead name the member
// in its path (members[value eq "id"]).
func memberSteps(patch []mapping.PatchOp) ([]memberStep, error) {
	var steps []memberStep
	for i, p := range patch {
		var remove bool
		switch strings.ToLower(p.Op) {
		case "add":
		case "remove":
			remove = true
		default:
			return nil, fmt.Errorf("members operation %d: op %q (want add or remove)", i, p.Op)
		}
		var ids []string
		switch {
		case p.Path == "" || strings.EqualFold(p.Path, "members"):
			var err error
			if ids, err = memberIDs(p.Value); err != nil {
				return nil, fmt.Errorf("members operation %d: %w", i, err)
			}
		case remove && memberPathRe.MatchString(p.Path):
			var id string
			if err := json.Unmarshal([]byte(memberPathRe.FindStringSubmatch(p.Path)[1]), &id); err != nil {
				return nil, fmt.Errorf("members operation %d: path %q: %w", i, p.Path, err)
			}
			ids = []string{id}
		default:
			return nil, fmt.Errorf("members operation %d: unsupported path %q", i, p.Path)
		}
		if len(ids) == 0 {
			continue
		}
		if n := len(steps); n > 0 && steps[n-1].remove == remove {
			steps[n-1].ids = append(steps[n-1].ids, ids...)
		} else {
			steps = append(steps, memberStep{remove: remove, ids: ids})
		}
	}
	return steps, nil
}

var memberPathRe = regexp.MustCompile(`(?i)^members\[\s*value\s+eq\s+("(?:[^"\\]|\\.)*")\s*\]$`)

func memberIDs(v any) ([]string, error) {
	switch v := v.(type) {
	case nil:
		return nil, nil
	case string:
		return []string{v}, nil
	case []string:
		return v, nil
	case map[string]any:
		id, ok := v["value"].(string)
		if !ok {
			return nil, errors.New(`member object without a string "value"`)
		}
		return []string{id}, nil
	case map[string]string:
		return []string{v["value"]}, nil
	case []map[string]string:
		ids := make([]string, len(v))
		for i, m := range v {
			ids[i] = m["value"]
		}
		return ids, nil
	case []map[string]any:
		ids := make([]string, 0, len(v))
		for _, m := range v {
			more, err := memberIDs(m)
			if err != nil {
				return nil, err
			}
			ids = append(ids, more...)
		}
		return ids, nil
	case []any:
		ids := make([]string, 0, len(v))
		for _, m := range v {
			more, err := memberIDs(m)
			if err != nil {
				return nil, err
			}
			ids = append(ids, more...)
		}
		return ids, nil
	}
	return nil, fmt.Errorf("unsupported member value of type %T", v)
}

// attrPathRe is what Find accepts as a filter attribute: an optional schema URN, a name and an
// optional sub-attribute. It keeps a hostile or mistyped attribute from rewriting the filter.
var attrPathRe = regexp.MustCompile(`^(urn:[A-Za-z0-9.:_-]+:)?[A-Za-z][A-Za-z0-9_$-]*(\.[A-Za-z][A-Za-z0-9_$-]*)?$`)

// Find looks a resource up with the filter `attr eq "value"`. See targets.Target.
func (t *Target) Find(ctx context.Context, kind mapping.Kind, attr, value string) (targets.Result, bool, error) {
	res, found, err := t.find(ctx, kind, attr, value)
	if err != nil {
		return targets.Result{}, false, fmt.Errorf("scim: find %s %s eq %q: %w", kind, attr, value, err)
	}
	return res, found, nil
}

func (t *Target) find(ctx context.Context, kind mapping.Kind, attr, value string) (targets.Result, bool, error) {
	if err := ctx.Err(); err != nil {
		return targets.Result{}, false, err
	}
	path, err := t.path(kind)
	if err != nil {
		return targets.Result{}, false, err
	}
	if !attrPathRe.MatchString(attr) {
		return targets.Result{}, false, &targets.PermanentError{Err: fmt.Errorf("invalid attribute %q", attr)}
	}
	filter := attr + " eq " + jsonString(value)
	t.log.Debug().Str("kind", string(kind)).Str("filter", filter).Msg("looking up resource")
	q := url.Values{"filter": {filter}, "startIndex": {"1"}, "count": {"2"}}
	r, err := t.do(ctx, http.MethodGet, path, q, nil)
	if err != nil {
		return targets.Result{}, false, err
	}
	if r.status == http.StatusNotFound {
		// Some servers answer an empty filter result with 404.
		return targets.Result{}, false, nil
	}
	if err := t.statusError(r); err != nil {
		return targets.Result{}, false, err
	}
	lr, err := parseList(r)
	if err != nil {
		return targets.Result{}, false, err
	}
	switch n := len(lr.Resources); {
	case n > 1 || lr.TotalResults > 1:
		return targets.Result{}, false, &targets.PermanentError{
			Err: fmt.Errorf("ambiguous: %d resources match; resolve the duplicate on the target", max(n, lr.TotalResults)),
		}
	case n == 0 && lr.TotalResults == 0:
		return targets.Result{}, false, nil
	case n == 0:
		return targets.Result{}, false, &targets.RetryableError{Err: fmt.Errorf("target reports %d match(es) but returned none", lr.TotalResults)}
	}
	found := lr.Resources[0]
	// A server that ignores the filter returns whatever comes first: never adopt that.
	if vals, ok := attrValues(found, attr); ok && !containsFold(vals, value) {
		return targets.Result{}, false, &targets.PermanentError{
			Err: fmt.Errorf("the target ignored the filter: it returned a %s whose %s is %q", kind, attr, vals),
		}
	}
	res := toResult(kind, found, nil)
	if res.ID == "" {
		return targets.Result{}, false, &targets.PermanentError{Err: errors.New("matching resource has no id")}
	}
	return res, true, nil
}

// List enumerates every resource of kind with startIndex/count paging. It advances by what
// each page returned (servers may cap count), stops at totalResults or on an empty or (when
// the server gives no total) short page, and fails rather than loops when the server ignores
// startIndex and repeats a page. A resource seen twice (the target changed under us) is
// reported once.
func (t *Target) List(ctx context.Context, kind mapping.Kind, fn func(targets.Result) error) error {
	if err := t.list(ctx, kind, fn); err != nil {
		return fmt.Errorf("scim: list %s: %w", kind, err)
	}
	return nil
}

func (t *Target) list(ctx context.Context, kind mapping.Kind, fn func(targets.Result) error) error {
	path, err := t.path(kind)
	if err != nil {
		return err
	}
	seen := map[string]struct{}{}
	start := 1
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		q := url.Values{"startIndex": {strconv.Itoa(start)}, "count": {strconv.Itoa(t.pageSize)}}
		r, err := t.do(ctx, http.MethodGet, path, q, nil)
		if err != nil {
			return err
		}
		if err := t.statusError(r); err != nil {
			return err
		}
		lr, err := parseList(r)
		if err != nil {
			return err
		}
		fresh := 0
		for _, attrs := range lr.Resources {
			res := toResult(kind, attrs, nil)
			if res.ID == "" {
				return &targets.PermanentError{Err: fmt.Errorf("resource at index %d has no id", start)}
			}
			if _, dup := seen[res.ID]; dup {
				continue
			}
			seen[res.ID] = struct{}{}
			fresh++
			if err := fn(res); err != nil {
				return err
			}
		}
		n := len(lr.Resources)
		switch {
		case n == 0:
			return nil
		case fresh == 0:
			return &targets.PermanentError{Err: fmt.Errorf(
				"the target ignores startIndex: the page at %d repeats earlier resources (listed %d of %d)", start, len(seen), lr.TotalResults)}
		case lr.TotalResults > 0 && start+n > lr.TotalResults:
			return nil
		case lr.TotalResults == 0 && n < t.pageSize:
			return nil
		}
		start += n
	}
}

// do sends one request through the retrying client and reads the answer. Transport failures
// come back classified (ctx errors as such, *targets.PermanentError for a token endpoint
// refusing our credentials, *targets.RetryableError otherwise); HTTP answers of any status
// come back as a response for the caller to interpret. A 401 gets the credentials refreshed
// and one more try.
func (t *Target) do(ctx context.Context, method, path string, query url.Values, payload any) (*response, error) {
	var body []byte
	if payload != nil {
		var err error
		if body, err = marshal(payload); err != nil {
			return nil, &targets.PermanentError{Err: fmt.Errorf("encoding request: %w", err)}
		}
	}
	u := t.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	ctx = context.WithValue(ctx, ctxKeyIdempotent{}, method != http.MethodPost)
	for try := 0; ; try++ {
		var raw any
		if body != nil {
			raw = body
		}
		req, err := retryablehttp.NewRequestWithContext(ctx, method, u, raw)
		if err != nil {
			return nil, &targets.PermanentError{Err: fmt.Errorf("building request: %w", redactError(err))}
		}
		for k, v := range t.headers {
			req.Header[k] = slices.Clone(v)
		}
		req.Header.Set("Accept", acceptTypes)
		req.Header.Set("User-Agent", t.userAgent)
		if body != nil {
			req.Header.Set("Content-Type", contentType)
		}
		t.auth.apply(req.Header)

		began := time.Now()
		resp, err := t.client.Do(req)
		if err != nil {
			if resp != nil {
				_ = resp.Body.Close()
			}
			return nil, t.transportError(ctx, err)
		}
		used := ""
		if resp.Request != nil {
			used = resp.Request.Header.Get("Authorization")
		}
		r, err := readResponse(resp)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, &targets.RetryableError{Err: fmt.Errorf("%s %s: reading answer: %w", method, path, redactError(err))}
		}
		t.log.Debug().Str("method", method).Str("path", path).Int("status", r.status).
			Dur("duration", time.Since(began)).Msg("scim request")
		if r.status == http.StatusUnauthorized && try == 0 && t.auth.invalidate(used) {
			t.log.Debug().Str("method", method).Str("path", path).Msg("target answered 401; refreshing credentials and trying once more")
			continue
		}
		return r, nil
	}
}

// transportError classifies a failure to get an answer at all.
func (t *Target) transportError(ctx context.Context, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, ctxErr) {
			return fmt.Errorf("%w: %w", ctxErr, cause)
		}
		return ctxErr
	}
	err = redactError(err)
	if re, ok := errors.AsType[*oauth2.RetrieveError](err); ok && re.Response != nil {
		code := re.Response.StatusCode
		detail := re.ErrorCode
		if re.ErrorDescription != "" {
			detail += ": " + re.ErrorDescription
		}
		if detail == "" {
			detail = strings.TrimSpace(string(re.Body))
		}
		detail = targets.Truncate(detail, 256)
		if retryableStatus(code) {
			after, _ := parseRetryAfter(re.Response.Header.Get("Retry-After"), time.Now())
			return &targets.RetryableError{After: after, Err: fmt.Errorf("oauth2 token endpoint failed: %d %s", code, detail)}
		}
		return &targets.PermanentError{
			Status: code,
			Body:   targets.Truncate(string(re.Body), targets.MaxErrorBody),
			Err:    fmt.Errorf("oauth2 token endpoint rejected client credentials: %d %s", code, detail),
		}
	}
	if te, ok := errors.AsType[*tokenError](err); ok {
		return &targets.RetryableError{Err: fmt.Errorf("oauth2 token request failed: %w", te.err)}
	}
	// err is a *url.Error naming the method and (redacted) URL.
	return &targets.RetryableError{Err: err}
}

// scimError is the SCIM error body (RFC 7644 §3.12).
type scimError struct {
	ScimType string `json:"scimType"`
	Detail   string `json:"detail"`
}

func parseSCIMError(body []byte) scimError {
	var e scimError
	if json.Unmarshal(body, &e) != nil {
		e = scimError{}
	}
	return e
}

func isNoTarget(r *response) bool {
	return r.status == http.StatusBadRequest && strings.EqualFold(parseSCIMError(r.body).ScimType, "noTarget")
}

// statusError classifies an HTTP answer: nil for 2xx, *targets.RetryableError for 5xx, 429
// and 408 (After from Retry-After), *targets.PermanentError for everything else, carrying the
// target's SCIM error detail (or body). extra is appended to the message.
func (t *Target) statusError(r *response, extra ...string) error {
	if r.status >= 200 && r.status < 300 {
		return nil
	}
	e := parseSCIMError(r.body)
	detail := e.Detail
	if detail == "" {
		detail = strings.TrimSpace(string(r.body))
	}
	detail = targets.Truncate(strings.Join(strings.Fields(detail), " "), 512)
	msg := fmt.Sprintf("%d %s", r.status, http.StatusText(r.status))
	if e.ScimType != "" {
		msg += " (" + e.ScimType + ")"
	}
	if detail != "" {
		msg += ": " + detail
	}
	for _, x := range extra {
		msg += " " + x
	}
	body := targets.Truncate(string(r.body), targets.MaxErrorBody)
	switch {
	case retryableStatus(r.status):
		after, _ := parseRetryAfter(r.header.Get("Retry-After"), time.Now())
		return &targets.RetryableError{Err: errors.New(msg), After: after}
	case r.status == http.StatusUnauthorized:
		if _, none := t.auth.(noAuth); none {
			return &targets.PermanentError{
				Status: r.status, Body: body,
				Err: fmt.Errorf("target requires authentication but auth = \"none\": %s", msg),
			}
		}
		return &targets.PermanentError{
			Status: r.status, Body: body,
			Err: fmt.Errorf("target rejected the credentials even after refreshing them: %s", msg),
		}
	case r.status >= 300 && r.status < 400:
		return &targets.PermanentError{
			Status: r.status, Body: body,
			Err: fmt.Errorf("unexpected redirect to %s: %s", redactRawURL(r.header.Get("Location")), msg),
		}
	}
	return &targets.PermanentError{Status: r.status, Body: body, Err: errors.New(msg)}
}

// listResponse is a SCIM ListResponse (RFC 7644 §3.4.2). encoding/json matches names
// case-insensitively, which covers servers sending "resources".
type listResponse struct {
	TotalResults int              `json:"totalResults"`
	StartIndex   int              `json:"startIndex"`
	ItemsPerPage int              `json:"itemsPerPage"`
	Resources    []map[string]any `json:"Resources"`
}

func parseList(r *response) (listResponse, error) {
	var lr listResponse
	if err := json.Unmarshal(r.body, &lr); err != nil {
		// A proxy's HTML page or a truncated answer: worth another try later.
		return lr, &targets.RetryableError{Err: fmt.Errorf("invalid list response: %w", err)}
	}
	return lr, nil
}

func (t *Target) result(kind mapping.Kind, r *response) (targets.Result, error) {
	var attrs map[string]any
	if err := json.Unmarshal(r.body, &attrs); err != nil {
		return targets.Result{}, &targets.RetryableError{Err: fmt.Errorf("invalid resource in %d answer: %w", r.status, err)}
	}
	return toResult(kind, attrs, r.header), nil
}

func toResult(kind mapping.Kind, attrs map[string]any, h http.Header) targets.Result {
	res := targets.Result{Kind: kind, Attrs: attrs}
	switch id := attrs["id"].(type) {
	case string:
		res.ID = id
	case float64:
		res.ID = strconv.FormatFloat(id, 'f', -1, 64)
	}
	if meta, ok := attrs["meta"].(map[string]any); ok {
		res.Version, _ = meta["version"].(string)
	}
	if res.Version == "" && h != nil {
		res.Version = etag(h)
	}
	return res
}

func etag(h http.Header) string { return h.Get("ETag") }

// attrValues returns the string values at a simple attribute path in a resource (names
// matched case-insensitively, multi-valued attributes flattened), and whether the path was
// present at all.
func attrValues(res map[string]any, attr string) ([]string, bool) {
	var cur any = res
	if strings.HasPrefix(strings.ToLower(attr), "urn:") {
		i := strings.LastIndex(attr, ":")
		ext, ok := getFold(res, attr[:i])
		if !ok {
			return nil, false
		}
		cur, attr = ext, attr[i+1:]
	}
	for _, name := range strings.Split(attr, ".") {
		var next []any
		for _, c := range flatten(cur) {
			m, ok := c.(map[string]any)
			if !ok {
				continue
			}
			if v, ok := getFold(m, name); ok {
				next = append(next, v)
			}
		}
		if len(next) == 0 {
			return nil, false
		}
		cur = next
	}
	var out []string
	for _, v := range flatten(cur) {
		switch v := v.(type) {
		case string:
			out = append(out, v)
		case float64, bool:
			out = append(out, fmt.Sprint(v))
		}
	}
	return out, len(out) > 0
}

func flatten(v any) []any {
	if l, ok := v.([]any); ok {
		var out []any
		for _, x := range l {
			out = append(out, flatten(x)...)
		}
		return out
	}
	return []any{v}
}

func getFold(m map[string]any, key string) (any, bool) {
	if v, ok := m[key]; ok {
		return v, true
	}
	for k, v := range m {
		if strings.EqualFold(k, key) {
			return v, true
		}
	}
	return nil, false
}

func containsFold(vals []string, v string) bool {
	for _, x := range vals {
		if strings.EqualFold(x, v) {
			return true
		}
	}
	return false
}

// withSchemas returns a shallow copy of resource with "schemas" filled in when absent: the core
// schema of kind, plus the enterprise extension when its key is present.
func withSchemas(kind mapping.Kind, resource map[string]any) map[string]any {
	out := make(map[string]any, len(resource)+2)
	for k, v := range resource {
		out[k] = v
	}
	if _, ok := getFold(out, "schemas"); ok {
		return out
	}
	if kind == mapping.KindGroup {
		out["schemas"] = []string{SchemaGroup}
		return out
	}
	schemas := []string{SchemaUser}
	if _, ok := getFold(out, SchemaEnterprise); ok {
		schemas = append(schemas, SchemaEnterprise)
	}
	out["schemas"] = schemas
	return out
}

func patchBody(ops []mapping.PatchOp) map[string]any {
	return map[string]any{"schemas": []string{SchemaPatchOp}, "Operations": ops}
}

// marshal encodes v as JSON without HTML escaping (SCIM values are not HTML).
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// jsonString quotes s as a JSON string: the escaping a SCIM filter literal needs (RFC 7644
// §3.4.2.2 compValue is a JSON string).
func jsonString(s string) string {
	b, err := marshal(s)
	if err != nil {
		return strconv.Quote(s)
	}
	return string(b)
}

// describe names an operation in errors: its type, kind and the resource's identity.
func describe(op mapping.Op) string {
	d := string(op.Type) + " " + string(op.Kind)
	switch {
	case op.TargetID != "":
		d += " " + op.TargetID
	case op.MatchValue != "":
		d += " " + strconv.Quote(op.MatchValue)
	}
	return d
}
