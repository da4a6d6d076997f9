package selftest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// SCIM URNs.
const (
	schemaUser         = "urn:ietf:params:scim:schemas:core:2.0:User"
	schemaEnterprise   = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
	schemaGroup        = "urn:ietf:params:scim:schemas:core:2.0:Group"
	schemaADGroup      = "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"
	schemaPatchOp      = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
	schemaListResponse = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
	scimMediaType      = "application/scim+json"
)

// errRequestTimeout is the cause of a request's context ending at the per-request timeout,
// told apart from the caller cancelling the run.
var errRequestTimeout = errors.New("selftest: request timeout")

// auth says which credentials a request carries.
type auth struct {
	none  bool   // no Authorization header
	wrong string // this bearer token instead of the real one
}

// response is an answer, read in full (up to maxResponseBytes).
type response struct {
	label  string // "GET /Users/123", for messages
	status int
	header http.Header
	body   []byte
	// doc is the body as a JSON object; nil when the body is empty or not an object.
	doc map[string]any
}

// send makes one request, bounded by the per-request timeout. An error means no (complete)
// answer: the text says why and names the request.
func (r *runner) send(ctx context.Context, method, path string, q url.Values, body any, a auth) (*response, error) {
	label := method + " " + path
	target := r.base + path
	if len(q) > 0 {
		target += "?" + q.Encode()
		if dq, err := url.QueryUnescape(q.Encode()); err == nil {
			label += "?" + dq
		}
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("selftest: encode %s: %w", label, err)
		}
		rd = bytes.NewReader(b)
	}
	rctx, cancel := context.WithTimeoutCause(ctx, r.timeout, errRequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, method, target, rd)
	if err != nil {
		return nil, fmt.Errorf("selftest: %s: %w", label, err)
	}
	req.Header.Set("Accept", scimMediaType)
	req.Header.Set("User-Agent", "scimbridge-selftest")
	if body != nil {
		req.Header.Set("Content-Type", scimMediaType+"; charset=utf-8")
	}
	switch {
	case a.none:
	case a.wrong != "":
		req.Header.Set("Authorization", "Bearer "+a.wrong)
	default:
		req.Header.Set("Authorization", "Bearer "+r.opts.Token)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its URL is in the label already
		}
		if errors.Is(context.Cause(rctx), errRequestTimeout) {
			return nil, fmt.Errorf("%s: no answer within %s", label, r.timeout)
		}
		return nil, fmt.Errorf("%s: %w", label, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s: reading the answer: %w", label, err)
	}
	if len(b) > maxResponseBytes {
		return nil, fmt.Errorf("%s: answer body over %d bytes", label, maxResponseBytes)
	}
	out := &response{label: label, status: resp.StatusCode, header: resp.Header, body: b}
	if len(bytes.TrimSpace(b)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		var doc map[string]any
		if dec.Decode(&doc) == nil {
			out.doc = doc
		}
	}
	return out, nil
}

// excerpt describes an answer's body for a failure message: the SCIM error's scimType and
// detail when it is one, else the start of the body.
func (resp *response) excerpt() string {
	if resp.doc != nil {
		detail, _ := str(get(resp.doc, "detail"))
		typ, _ := str(get(resp.doc, "scimType"))
		switch {
		case typ != "" && detail != "":
			return fmt.Sprintf("scimType %q: %s", typ, truncate(detail, 200))
		case detail != "":
			return truncate(detail, 200)
		case typ != "":
			return fmt.Sprintf("scimType %q", typ)
		}
	}
	if len(resp.body) == 0 {
		return "empty body"
	}
	return truncate(string(resp.body), 200)
}

func truncate(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// expect checks the status code is one of want and, when the answer has a body, that it is
// application/scim+json.
func (resp *response) expect(want ...int) error {
	if !slices.Contains(want, resp.status) {
		ws := make([]string, len(want))
		for i, w := range want {
			ws[i] = strconv.Itoa(w)
		}
		return fmt.Errorf("%s: %s, want %s: %s", resp.label, statusText(resp.status), strings.Join(ws, " or "), resp.excerpt())
	}
	if len(resp.body) == 0 {
		return nil
	}
	return resp.checkMediaType()
}

// checkMediaType checks the Content-Type is application/scim+json, which Entra ID requires
// of every answer ("The header for all the responses should be of content-Type:
// application/scim+json").
func (resp *response) checkMediaType() error {
	ct := resp.header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || mt != scimMediaType {
		return fmt.Errorf("%s: Content-Type %q, want %q", resp.label, ct, scimMediaType)
	}
	return nil
}

// object checks the answer is a JSON object.
func (resp *response) object() (map[string]any, error) {
	if resp.doc == nil {
		return nil, fmt.Errorf("%s: the body is not a JSON object: %s", resp.label, resp.excerpt())
	}
	return resp.doc, nil
}

func statusText(code int) string {
	if t := http.StatusText(code); t != "" {
		return fmt.Sprintf("%d %s", code, t)
	}
	return strconv.Itoa(code)
}

// listResponse is a parsed ListResponse (RFC 7644 §3.4.2).
type listResponse struct {
	total, startIndex, itemsPerPage int64
	resources                       []map[string]any
}

// ids returns the id of every resource.
func (l listResponse) ids() []string {
	out := make([]string, 0, len(l.resources))
	for _, res := range l.resources {
		id, _ := str(get(res, "id"))
		out = append(out, id)
	}
	return out
}

// parseList checks a query answer is a ListResponse the way Entra ID reads it: schemas,
// totalResults, Resources (which may be left out only when there are no results),
// startIndex and itemsPerPage.
func parseList(resp *response) (listResponse, error) {
	var l listResponse
	doc, err := resp.object()
	if err != nil {
		return l, err
	}
	var problems []string
	if !hasSchema(doc, schemaListResponse) {
		problems = append(problems, "schemas lacks "+schemaListResponse)
	}
	total, ok := integer(get(doc, "totalResults"))
	if !ok {
		problems = append(problems, "no integer totalResults")
	}
	l.total = total
	if l.startIndex, ok = integer(get(doc, "startIndex")); !ok {
		problems = append(problems, "no integer startIndex")
	}
	if l.itemsPerPage, ok = integer(get(doc, "itemsPerPage")); !ok {
		problems = append(problems, "no integer itemsPerPage")
	}
	rv, present := getOK(doc, "Resources")
	switch list, isList := rv.([]any); {
	case !present || rv == nil:
		if total != 0 {
			problems = append(problems, fmt.Sprintf("no Resources although totalResults is %d", total))
		}
	case !isList:
		problems = append(problems, "Resources is not an array")
	default:
		for i, it := range list {
			m, isObj := it.(map[string]any)
			if !isObj {
				problems = append(problems, fmt.Sprintf("Resources[%d] is not an object", i))
				continue
			}
			l.resources = append(l.resources, m)
		}
	}
	if len(problems) > 0 {
		return l, fmt.Errorf("%s: not a ListResponse Entra ID can read: %s", resp.label, strings.Join(problems, "; "))
	}
	return l, nil
}

// JSON helpers. SCIM attribute names are case-insensitive (RFC 7643 §2.1).

func getOK(m map[string]any, key string) (any, bool) {
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

func get(m map[string]any, key string) any {
	v, _ := getOK(m, key)
	return v
}

// getPath follows sub-attributes: getPath(u, "name", "givenName").
func getPath(m map[string]any, keys ...string) any {
	var v any = m
	for _, k := range keys {
		mm, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = get(mm, k)
	}
	return v
}

func str(v any) (string, bool) {
	s, ok := v.(string)
	return s, ok
}

func integer(v any) (int64, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	i, err := n.Int64()
	return i, err == nil
}

func hasSchema(doc map[string]any, urn string) bool {
	list, _ := get(doc, "schemas").([]any)
	return slices.ContainsFunc(list, func(v any) bool {
		s, _ := v.(string)
		return strings.EqualFold(s, urn)
	})
}

// typedValues returns the values of a multi-valued attribute's items whose type is typ.
func typedValues(res map[string]any, attr, typ string) []string {
	list, _ := get(res, attr).([]any)
	var out []string
	for _, it := range list {
		m, ok := it.(map[string]any)
		if !ok {
			continue
		}
		if t, _ := str(get(m, "type")); strings.EqualFold(t, typ) {
			v, _ := str(get(m, "value"))
			out = append(out, v)
		}
	}
	return out
}

// memberIDs returns the value of every member of a group, and whether the group has a
// members attribute at all.
func memberIDs(group map[string]any) ([]string, bool) {
	v, ok := getOK(group, "members")
	if !ok || v == nil {
		return nil, ok
	}
	list, _ := v.([]any)
	out := make([]string, 0, len(list))
	for _, it := range list {
		if m, isObj := it.(map[string]any); isObj {
			id, _ := str(get(m, "value"))
			out = append(out, id)
		}
	}
	return out, true
}

// eqFilter builds `attr eq "value"` with value as a JSON string literal (RFC 7644 §3.4.2.2).
func eqFilter(attr, value string) string {
	b, _ := json.Marshal(value) // a string always marshals
	return attr + " eq " + string(b)
}

// patchBody is a PatchOp request.
func patchBody(ops ...map[string]any) map[string]any {
	list := make([]any, len(ops))
	for i, op := range ops {
		list[i] = op
	}
	return map[string]any{"schemas": []string{schemaPatchOp}, "Operations": list}
}
