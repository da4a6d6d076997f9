package selftest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// nameAttr is the attribute Entra ID matches a resource of kind on.
func nameAttr(kind string) string {
	if kind == "Groups" {
		return "displayName"
	}
	return "userName"
}

// ours reports whether name carries this run's prefix.
func (r *runner) ours(name string) bool {
	return strings.HasPrefix(strings.ToLower(name), strings.ToLower(r.prefix))
}

// post creates res with body and records what the answer says about its existence, so the
// cleanup knows what to delete.
func (r *runner) post(ctx context.Context, res *resource, body map[string]any) (*response, error) {
	r.owned = append(r.owned, res)
	resp, err := r.send(ctx, http.MethodPost, "/"+res.kind, nil, body, auth{})
	if err != nil {
		// It may have been created all the same: the cleanup looks for it by name.
		return nil, err
	}
	switch {
	case resp.status >= 200 && resp.status < 300:
		id, _ := str(get(resp.doc, "id"))
		if id == "" {
			// Created without telling us its id: the cleanup looks for it by name.
			return resp, nil
		}
		res.id = id
		for _, o := range r.owned {
			if o != res && o.kind == res.kind && o.id == id && !o.gone {
				res.gone = true // the endpoint answered with a resource we already own
			}
		}
	case resp.status >= 500:
		// A server error may come after the create was stored: look for it by name.
	default:
		res.gone = true
	}
	return resp, nil
}

// createStep creates res and checks the answer: 201, application/scim+json, an id, and the
// name it was given.
func (r *runner) createStep(ctx context.Context, res *resource, body map[string]any) (string, error) {
	resp, err := r.post(ctx, res, body)
	if err != nil {
		return "", err
	}
	if err := resp.expect(http.StatusCreated); err != nil {
		return "", err
	}
	doc, err := resp.object()
	if err != nil {
		return "", err
	}
	var c checks
	if id, _ := str(get(doc, "id")); id == "" {
		c.add("no id in the created resource")
	}
	c.str(nameAttr(res.kind), get(doc, nameAttr(res.kind)), res.name)
	if res.externalID != "" {
		c.str("externalId", get(doc, "externalId"), res.externalID)
	}
	if err := c.err(resp.label); err != nil {
		return "", err
	}
	return "201", nil
}

// read GETs res and checks 200, application/scim+json and its id.
func (r *runner) read(ctx context.Context, res *resource, q url.Values) (map[string]any, *response, error) {
	resp, err := r.send(ctx, http.MethodGet, "/"+res.kind+"/"+url.PathEscape(res.id), q, nil, auth{})
	if err != nil {
		return nil, nil, err
	}
	if err := resp.expect(http.StatusOK); err != nil {
		return nil, resp, err
	}
	doc, err := resp.object()
	if err != nil {
		return nil, resp, err
	}
	if id, _ := str(get(doc, "id")); id != res.id {
		return nil, resp, fmt.Errorf("%s: answered the resource with id %q", resp.label, id)
	}
	return doc, resp, nil
}

// query GETs a list of kind with q and checks 200, application/scim+json and the
// ListResponse shape.
func (r *runner) query(ctx context.Context, kind string, q url.Values) (listResponse, *response, error) {
	resp, err := r.send(ctx, http.MethodGet, "/"+kind, q, nil, auth{})
	if err != nil {
		return listResponse{}, nil, err
	}
	if err := resp.expect(http.StatusOK); err != nil {
		return listResponse{}, resp, err
	}
	l, err := parseList(resp)
	return l, resp, err
}

// findExactly queries kind with `attr eq "value"` and checks the answer is exactly want.
func (r *runner) findExactly(ctx context.Context, want *resource, attr, value string, q url.Values) (listResponse, error) {
	if q == nil {
		q = url.Values{}
	}
	q.Set("filter", eqFilter(attr, value))
	l, resp, err := r.query(ctx, want.kind, q)
	if err != nil {
		return l, err
	}
	ids := l.ids()
	if len(ids) != 1 || ids[0] != want.id || l.total != 1 {
		return l, fmt.Errorf("%s: totalResults %d, Resources with ids %v; want exactly the %s with id %s",
			resp.label, l.total, ids, want.noun(), want.id)
	}
	return l, nil
}

// findNone queries kind with `attr eq "value"` and checks the answer is empty.
func (r *runner) findNone(ctx context.Context, kind, attr, value string) error {
	q := url.Values{"filter": {eqFilter(attr, value)}}
	if kind == "Groups" {
		q.Set("excludedAttributes", "members")
	}
	l, resp, err := r.query(ctx, kind, q)
	if err != nil {
		return err
	}
	if l.total != 0 || len(l.resources) != 0 {
		return fmt.Errorf("%s: totalResults %d, Resources with ids %v; want none", resp.label, l.total, l.ids())
	}
	return nil
}

// patch sends a PatchOp and checks the answer is 200 (with application/scim+json) or 204.
func (r *runner) patch(ctx context.Context, res *resource, ops ...map[string]any) (string, error) {
	resp, err := r.send(ctx, http.MethodPatch, "/"+res.kind+"/"+url.PathEscape(res.id), nil, patchBody(ops...), auth{})
	if err != nil {
		return "", err
	}
	if err := resp.expect(http.StatusOK, http.StatusNoContent); err != nil {
		return "", err
	}
	return fmt.Sprint(resp.status), nil
}

// del DELETEs res and checks the answer is 204 or 200.
func (r *runner) del(ctx context.Context, res *resource) (string, error) {
	resp, err := r.send(ctx, http.MethodDelete, "/"+res.kind+"/"+url.PathEscape(res.id), nil, nil, auth{})
	if err != nil {
		return "", err
	}
	if err := resp.expect(http.StatusNoContent, http.StatusOK); err != nil {
		return "", err
	}
	res.gone = true
	return fmt.Sprint(resp.status), nil
}

// remove is the cleanup of one resource: read it back, make sure it is ours by its name,
// delete it. A resource whose id the run never learnt is looked up by name.
func (r *runner) remove(ctx context.Context, res *resource) (string, error) {
	if res.id == "" {
		return r.sweep(ctx, res)
	}
	resp, err := r.send(ctx, http.MethodGet, "/"+res.kind+"/"+url.PathEscape(res.id), nil, nil, auth{})
	if err != nil {
		return "", err
	}
	switch resp.status {
	case http.StatusNotFound:
		res.gone = true
		return "already gone (404)", nil
	case http.StatusOK:
	default:
		return "", fmt.Errorf("%s: %s, want 200 (to check its name before deleting it): %s", resp.label, statusText(resp.status), resp.excerpt())
	}
	name, _ := str(get(resp.doc, nameAttr(res.kind)))
	if !r.ours(name) {
		return "", &notOursError{label: resp.label, attr: nameAttr(res.kind), name: name, prefix: r.prefix}
	}
	return r.delVerified(ctx, res)
}

// notOursError is a resource the endpoint answered a create with, whose name says it is not
// the selftest's: the cleanup leaves it alone.
type notOursError struct{ label, attr, name, prefix string }

func (e *notOursError) Error() string {
	return fmt.Sprintf("not deleting it: %s says its %s is %q, which lacks the prefix %q (the endpoint answered the create with another resource)",
		e.label, e.attr, e.name, e.prefix)
}

// delVerified deletes res and checks it is gone.
func (r *runner) delVerified(ctx context.Context, res *resource) (string, error) {
	status, err := r.del(ctx, res)
	if err != nil {
		return "", err
	}
	resp, err := r.send(ctx, http.MethodGet, "/"+res.kind+"/"+url.PathEscape(res.id), nil, nil, auth{})
	if err != nil {
		return "", fmt.Errorf("checking it is gone: %w", err)
	}
	if resp.status != http.StatusNotFound {
		res.gone = false
		return "", fmt.Errorf("DELETE answered %s, but %s answers %s, want 404", status, resp.label, statusText(resp.status))
	}
	return status, nil
}

// sweep deletes the resources named res.name, for a create whose answer never came (or
// came without an id). Only resources whose name is exactly res.name, which carries the
// prefix, are deleted, whatever the endpoint's filter returns.
func (r *runner) sweep(ctx context.Context, res *resource) (string, error) {
	attr := nameAttr(res.kind)
	q := url.Values{"filter": {eqFilter(attr, res.name)}}
	if res.kind == "Groups" {
		q.Set("excludedAttributes", "members")
	}
	l, _, err := r.query(ctx, res.kind, q)
	if err != nil {
		return "", fmt.Errorf("looking it up by %s: %w", attr, err)
	}
	var done []string
	var errs []error
	for _, doc := range l.resources {
		name, _ := str(get(doc, attr))
		id, _ := str(get(doc, "id"))
		if id == "" || !strings.EqualFold(name, res.name) || !r.ours(name) {
			continue
		}
		found := &resource{kind: res.kind, id: id, name: name}
		status, err := r.delVerified(ctx, found)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		res.id = id
		done = append(done, fmt.Sprintf("id %s: %s", id, status))
	}
	if err := errors.Join(errs...); err != nil {
		return "", err
	}
	res.gone = true
	if len(done) == 0 {
		return "not found by " + attr + ": never created", nil
	}
	return "found by " + attr + ", " + strings.Join(done, ", "), nil
}

// checks collects the problems a step finds, so one FAIL line names them all.
type checks []string

func (c *checks) add(format string, args ...any) { *c = append(*c, fmt.Sprintf(format, args...)) }

func (c *checks) str(what string, got any, want string) {
	switch s, ok := got.(string); {
	case got == nil:
		c.add("%s missing, want %q", what, want)
	case !ok:
		c.add("%s is %s, want the string %q", what, describe(got), want)
	case s != want:
		c.add("%s is %q, want %q", what, s, want)
	}
}

func (c *checks) boolean(what string, got any, want bool) {
	switch b, ok := got.(bool); {
	case got == nil:
		c.add("%s missing, want %t", what, want)
	case !ok:
		c.add("%s is %s, want the boolean %t", what, describe(got), want)
	case b != want:
		c.add("%s is %t, want %t", what, b, want)
	}
}

// values checks a multi-valued attribute's typed values are exactly want.
func (c *checks) values(what string, got, want []string) {
	if !slices.Equal(got, want) {
		c.add("%s is %s, want %s", what, describe(got), describe(want))
	}
}

// members checks a group's members are exactly want (in any order).
func (c *checks) members(group map[string]any, want ...*resource) {
	n := len(*c)
	got, ok := memberIDs(group)
	if !ok {
		c.add("the group has no members attribute, so its membership cannot be read back")
		return
	}
	wantIDs := make([]string, len(want))
	for i, w := range want {
		wantIDs[i] = w.id
	}
	g, w := slices.Clone(got), slices.Clone(wantIDs)
	slices.Sort(g)
	slices.Sort(w)
	if slices.Equal(g, w) {
		return
	}
	for _, res := range want {
		if !slices.Contains(got, res.id) {
			c.add("member %s (%s) missing", res.id, res.name)
		}
	}
	for _, id := range got {
		if !slices.Contains(wantIDs, id) {
			c.add("unexpected member %q", id)
		}
	}
	if len(*c) == n { // the same ids, some repeated
		c.add("members %v, want %v", got, wantIDs)
	}
}

func (c checks) err(label string) error {
	if len(c) == 0 {
		return nil
	}
	return fmt.Errorf("%s: %s", label, strings.Join(c, "; "))
}

func describe(v any) string {
	switch v := v.(type) {
	case string:
		return fmt.Sprintf("the string %q", v)
	case json.Number:
		return "the number " + v.String()
	case nil:
		return "null"
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
