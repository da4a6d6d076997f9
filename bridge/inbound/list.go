package inbound

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/scimbridge/scimbridge/ldapstore"
	"github.com/scimbridge/scimbridge/mapping"
)

const (
	// maxFilterLength bounds a filter or path string before it is parsed.
	maxFilterLength = 4096
	// directLimit is how many entries a selective filter may match before its listing switches
	// from one plain search to VLV (or a snapshot).
	directLimit = 1000
)

// listQuery is a GET query or a POST /.search body.
type listQuery struct {
	filter     string
	startIndex int
	count      int
	attrs      []string
	excluded   []string
	err        error
}

func queryFromURL(v url.Values) listQuery {
	q := listQuery{filter: v.Get("filter"), startIndex: 1, count: -1}
	q.attrs, q.excluded = projection(v)
	if s := v.Get("startIndex"); s != "" {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			q.err = badRequest(mapping.ScimTypeInvalidValue, "startIndex must be an integer")
		}
		q.startIndex = n
	}
	if s := v.Get("count"); s != "" {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			q.err = badRequest(mapping.ScimTypeInvalidValue, "count must be an integer")
		}
		q.count = max(n, 0)
	}
	return q
}

// search answers POST /Users/.search and /Groups/.search (RFC 7644 §3.4.3).
func (q *request) search(k *kind) {
	data, err := io.ReadAll(q.r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			q.fail(tooLarge(mbe.Limit))
			return
		}
		q.fail(badRequest(mapping.ScimTypeInvalidSyntax, "the request body could not be read"))
		return
	}
	var body struct {
		Schemas            []string        `json:"schemas"`
		Attributes         json.RawMessage `json:"attributes"`
		ExcludedAttributes json.RawMessage `json:"excludedAttributes"`
		Filter             string          `json:"filter"`
		StartIndex         *json.Number    `json:"startIndex"`
		Count              *json.Number    `json:"count"`
		SortBy             string          `json:"sortBy"`
		SortOrder          string          `json:"sortOrder"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&body); err != nil {
		q.fail(badRequest(mapping.ScimTypeInvalidSyntax, "the request body is not a valid SearchRequest"))
		return
	}
	if len(body.Schemas) > 0 && !containsFold(toAny(body.Schemas), "urn:ietf:params:scim:api:messages:2.0:SearchRequest") {
		q.fail(badRequest(mapping.ScimTypeInvalidSyntax, "schemas must be [\"urn:ietf:params:scim:api:messages:2.0:SearchRequest\"]"))
		return
	}
	lq := listQuery{filter: body.Filter, startIndex: 1, count: -1}
	if body.StartIndex != nil {
		n, err := body.StartIndex.Int64()
		if err != nil {
			lq.err = badRequest(mapping.ScimTypeInvalidValue, "startIndex must be an integer")
		}
		lq.startIndex = int(n)
	}
	if body.Count != nil {
		n, err := body.Count.Int64()
		if err != nil {
			lq.err = badRequest(mapping.ScimTypeInvalidValue, "count must be an integer")
		}
		lq.count = max(int(n), 0)
	}
	for _, p := range []struct {
		raw json.RawMessage
		dst *[]string
	}{{body.Attributes, &lq.attrs}, {body.ExcludedAttributes, &lq.excluded}} {
		if len(p.raw) == 0 || string(p.raw) == "null" {
			continue
		}
		var list []string
		if err := json.Unmarshal(p.raw, &list); err != nil {
			var one string
			if err := json.Unmarshal(p.raw, &one); err != nil {
				lq.err = badRequest(mapping.ScimTypeInvalidSyntax, "attributes and excludedAttributes must be lists of strings")
				break
			}
			list = strings.Split(one, ",")
		}
		for _, a := range list {
			if a = strings.TrimSpace(a); a != "" {
				*p.dst = append(*p.dst, a)
			}
		}
	}
	q.list(k, lq)
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// list answers a query: the SCIM filter translated into an escaped LDAP filter ANDed with the
// kind's filter below its bases, paged by startIndex and count with the exact total.
func (q *request) list(k *kind, lq listQuery) {
	if lq.err != nil {
		q.fail(lq.err)
		return
	}
	ctx, st := q.ctx(), q.st
	rendered, selective := "", false
	if strings.TrimSpace(lq.filter) != "" {
		if len(lq.filter) > maxFilterLength {
			q.fail(badRequest(mapping.ScimTypeInvalidFilter, "the filter is too long"))
			return
		}
		expr, err := parseFilter(lq.filter)
		if err != nil {
			q.fail(badRequest(mapping.ScimTypeInvalidFilter, "the filter is not valid SCIM filter syntax (RFC 7644 §3.4.2.2)"))
			return
		}
		var lf mapping.LDAPFilter
		if k.isUser() {
			lf, err = mapping.TranslateUserFilter(expr, st.umap, st.marker, st.idAttr, q.idResolver(nil, st.users))
		} else {
			lf, err = mapping.TranslateGroupFilter(expr, st.gmap, st.idAttr, q.idResolver(nil, st.users, st.groups))
		}
		if err != nil {
			q.fail(err)
			return
		}
		rendered, selective = ldapstore.RenderFilter(lf), isSelective(lf)
	}
	start := max(lq.startIndex, 1)
	count := lq.count
	if count < 0 {
		count = st.cfg.DefaultCount
	}
	count = min(count, st.cfg.MaxResults)
	withMembers := !k.isUser() && mapping.Requested(lq.attrs, lq.excluded, "members")
	entries, total, err := q.s.page(ctx, q.g, k, rendered, selective, start, count, st.readAttrs(k, withMembers))
	if err != nil {
		q.fail(err)
		return
	}
	res, err := q.toResources(k, entries, withMembers)
	if err != nil {
		q.fail(err)
		return
	}
	out := make([]any, len(res))
	for i, r := range res {
		out[i] = project(r, lq.attrs, lq.excluded)
	}
	q.writeJSON(http.StatusOK, map[string]any{
		"schemas":      []string{"urn:ietf:params:scim:api:messages:2.0:ListResponse"},
		"totalResults": total,
		"startIndex":   start,
		"itemsPerPage": len(out),
		"Resources":    out,
	}, "", "")
}

// isSelective reports whether a filter is expected to match few entries: an equality (other
// than on objectClass), an and with one, or an or of them.
func isSelective(f mapping.LDAPFilter) bool {
	switch f.Op {
	case mapping.FilterEqual:
		return !strings.EqualFold(f.Attr, "objectClass")
	case mapping.FilterAnd:
		for _, s := range f.Subs {
			if isSelective(s) {
				return true
			}
		}
	case mapping.FilterOr:
		for _, s := range f.Subs {
			if !isSelective(s) {
				return false
			}
		}
		return len(f.Subs) > 0
	}
	return false
}

// page returns the entries at start … start+count-1 of the sorted result and the total. A
// selective filter is one plain search, sorted here. Anything larger is a Virtual List View
// search when the directory offers it (the server sorts and sends only the window, so the cost
// does not grow with startIndex), else a short-lived snapshot of the sorted DNs.
func (s *Server) page(ctx context.Context, g *guard, k *kind, filter string, selective bool, start, count int, attrs []string) ([]mapping.Entry, int, error) {
	if selective {
		var found []mapping.Entry
		err := s.searchKind(ctx, g, k, filter, attrs, func(e mapping.Entry) error {
			found = append(found, e)
			if len(found) > directLimit {
				return errStop
			}
			return nil
		})
		switch {
		case errors.Is(err, errStop):
			// Too many for one search: page it properly below.
		case err != nil:
			return nil, 0, err
		default:
			sortEntries(found, k.nameAttr)
			return window(found, start, count), len(found), nil
		}
	}
	if s.pager != nil && !s.vlvRefused(k, filter) {
		entries, total, err := s.vlvPage(ctx, g, k, filter, start, count, attrs)
		if err == nil || !s.refuseVLV(k, filter, err) {
			return entries, total, err
		}
	}
	return s.snapshotPage(ctx, g, k, filter, start, count, attrs)
}

// maxVLVRefusals bounds the queries remembered as refused by the directory's VLV.
const maxVLVRefusals = 1000

// vlvRefused reports whether the directory refused a VLV search of this query before.
func (s *Server) vlvRefused(k *kind, filter string) bool {
	_, ok := s.noVLV.Load(k.name + "\x00" + filter)
	return ok
}

// refuseVLV decides whether err is the directory refusing VLV for this query — 389-DS answers
// adminLimitExceeded when no VLV index matches it and the bind's look-through limit is lower
// than the entries it would sort — rather than being unavailable. The query then pages from a
// snapshot, now and (remembered, boundedly) later; the first refusal is logged.
func (s *Server) refuseVLV(k *kind, filter string, err error) bool {
	if errors.Is(err, ldapstore.ErrUnavailable) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var le *ldapstore.Error
	if !errors.As(err, &le) {
		return false
	}
	if s.noVLVCount.Load() < maxVLVRefusals {
		if _, loaded := s.noVLV.LoadOrStore(k.name+"\x00"+filter, true); !loaded {
			if s.noVLVCount.Add(1) == 1 {
				s.logger.Warn().Err(err).Str("resource", k.name).Msg("the directory refused a VLV search (389-DS: no VLV index and over the account's look-through limit); paging such queries from snapshots")
			}
		}
	}
	return true
}

func window[T any](all []T, start, count int) []T {
	if start > len(all) {
		return nil
	}
	end := min(len(all), start-1+count)
	return all[start-1 : end]
}

func sortEntries(es []mapping.Entry, attr string) {
	sort.SliceStable(es, func(i, j int) bool {
		a, b := strings.ToLower(es[i].First(attr)), strings.ToLower(es[j].First(attr))
		if a != b {
			return a < b
		}
		return ldapstore.NormalizeDN(es[i].DN) < ldapstore.NormalizeDN(es[j].DN)
	})
}

// vlvPage pages with VLV over each base in turn, as one list: the entries of the first base,
// then those of the next (users and a disabled base outside it).
func (s *Server) vlvPage(ctx context.Context, g *guard, k *kind, filter string, start, count int, attrs []string) ([]mapping.Entry, int, error) {
	full := and(k.fence, filter, g.exclude[k])
	var out []mapping.Entry
	total := 0
	for _, base := range k.bases {
		offset := max(start-total, 1)
		want := max(count-len(out), 0)
		p, err := s.pager.SearchPage(ctx, ldapstore.Search{Base: base, Scope: ldapstore.ScopeSub, Filter: full, Attrs: attrs}, k.sortKey, offset, want)
		if errors.Is(err, ldapstore.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, 0, err
		}
		if start-total <= p.Total {
			for _, e := range p.Entries {
				if _, hidden := g.hidden(k, e.DN); !hidden && len(out) < count {
					out = append(out, e)
				}
			}
		}
		total += p.Total
	}
	return out, total, nil
}

// snapshotPage pages without VLV: the sorted DNs matching the query are enumerated once and
// kept briefly (snapshotTTL, or until the next write through this server), and each page
// reads only its own entries.
func (s *Server) snapshotPage(ctx context.Context, g *guard, k *kind, filter string, start, count int, attrs []string) ([]mapping.Entry, int, error) {
	key := k.name + "\x00" + filter + "\x00" + g.exclude[k]
	dns, err := s.snaps.get(key, func() ([]string, error) {
		type item struct{ dn, name string }
		var items []item
		err := s.searchKind(ctx, g, k, filter, []string{k.nameAttr}, func(e mapping.Entry) error {
			if len(items) >= maxSnapshotEntries {
				return &apiError{status: http.StatusBadRequest, scimType: mapping.ScimTypeTooMany, detail: "the query matches too many entries to page without VLV; narrow the filter"}
			}
			items = append(items, item{dn: e.DN, name: strings.ToLower(e.First(k.nameAttr))})
			return nil
		})
		if err != nil {
			return nil, err
		}
		sort.SliceStable(items, func(i, j int) bool {
			if items[i].name != items[j].name {
				return items[i].name < items[j].name
			}
			return ldapstore.NormalizeDN(items[i].dn) < ldapstore.NormalizeDN(items[j].dn)
		})
		out := make([]string, len(items))
		for i, it := range items {
			out[i] = it.dn
		}
		return out, nil
	})
	if err != nil {
		return nil, 0, err
	}
	win := window(dns, start, count)
	entries := make([]mapping.Entry, len(win))
	ok := make([]bool, len(win))
	// Each call writes only its own index.
	err = eachBounded(win, func(i int, dn string) error {
		e, err := s.dir.Get(ctx, dn, attrs)
		switch {
		case errors.Is(err, ldapstore.ErrNotFound):
			return nil // deleted since the snapshot
		case err != nil:
			return err
		}
		if _, hidden := g.hidden(k, e.DN); hidden {
			return nil // protected since the snapshot
		}
		entries[i], ok[i] = e, true
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	out := entries[:0]
	for i, e := range entries {
		if ok[i] {
			out = append(out, e)
		}
	}
	return out, len(dns), nil
}
