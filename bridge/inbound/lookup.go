package inbound

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/scimbridge/scimbridge/ldapstore"
	"github.com/scimbridge/scimbridge/mapping"
)

// maxIDLength bounds the ids accepted from clients; no directory id is longer.
const maxIDLength = 256

var errStop = errors.New("stop")

// findByID reads the entry of kind k with SCIM id id. The search is based at k's bases and
// ANDed with k's fence; the entry found must lie below a base and not be protected (g). A
// missing or invisible entry is a 404; a protected one is also a refusal for the audit log.
func (q *request) findByID(k *kind, id string, attrs []string) (mapping.Entry, error) {
	ctx, st, g := q.ctx(), q.st, q.g
	if id == "" || len(id) > maxIDLength {
		return mapping.Entry{}, notFound(k.name)
	}
	idf, err := ldapstore.IDFilter(st.idAttr, id)
	if err != nil {
		// Not an id this directory could have issued (a malformed objectGUID).
		return mapping.Entry{}, notFound(k.name)
	}
	filter := k.fenced(idf)
	var found []mapping.Entry
	for _, base := range k.bases {
		err := q.s.dir.Walk(ctx, ldapstore.Search{Base: base, Scope: ldapstore.ScopeSub, Filter: filter, Attrs: attrs}, func(e mapping.Entry) error {
			found = append(found, e)
			if len(found) > 1 {
				return errStop
			}
			return nil
		})
		switch {
		case errors.Is(err, errStop):
		case errors.Is(err, ldapstore.ErrNotFound):
			// The base itself is missing: nothing of this kind there.
		case err != nil:
			return mapping.Entry{}, err
		}
	}
	switch len(found) {
	case 0:
		return mapping.Entry{}, notFound(k.name)
	case 1:
	default:
		return mapping.Entry{}, fmt.Errorf("inbound: id %q matches more than one %s", id, k.name)
	}
	e := found[0]
	if why, hidden := g.hidden(k, e.DN); hidden {
		if why == whyNotInBase {
			return mapping.Entry{}, notFound(k.name)
		}
		return mapping.Entry{}, q.deny(why, notFound(k.name))
	}
	return e, nil
}

// searchKind runs filter (rendered, escaped) ANDed with k's fence below each of k's bases and
// streams the visible entries to fn: protected entries are excluded in the filter (so that
// counts are exact) and dropped afterwards all the same.
func (s *Server) searchKind(ctx context.Context, g *guard, k *kind, filter string, attrs []string, fn func(mapping.Entry) error) error {
	full := and(k.fence, filter, g.exclude[k])
	for _, base := range k.bases {
		err := s.dir.Walk(ctx, ldapstore.Search{Base: base, Scope: ldapstore.ScopeSub, Filter: full, Attrs: attrs}, func(e mapping.Entry) error {
			if _, hidden := g.hidden(k, e.DN); hidden {
				return nil
			}
			return fn(e)
		})
		if err != nil && !errors.Is(err, ldapstore.ErrNotFound) {
			return err
		}
	}
	return nil
}

// nameHolders returns the DNs of the entries of kind k (below its bases, matching its filter,
// whether the SCIM side may see them or not) that hold value in k's name attribute (userName,
// displayName), except the one at exceptDN. The comparison is the directory's equality rule:
// case-insensitive for uid and cn. Names are unique among all entries, not only the visible
// ones: an invisible entry keeps its name.
func (s *Server) nameHolders(ctx context.Context, k *kind, value, exceptDN string) ([]string, error) {
	var holders []string
	f := and(k.filter, ldapstore.RenderFilter(mapping.LDAPFilter{Op: mapping.FilterEqual, Attr: k.nameAttr, Value: value}))
	for _, base := range k.bases {
		err := s.dir.Walk(ctx, ldapstore.Search{Base: base, Scope: ldapstore.ScopeSub, Filter: f, Attrs: []string{"1.1"}}, func(e mapping.Entry) error {
			if !k.inScope(e.DN) || (exceptDN != "" && ldapstore.SameDN(e.DN, exceptDN)) {
				return nil
			}
			holders = append(holders, e.DN)
			if len(holders) > 1 {
				return errStop
			}
			return nil
		})
		if err != nil && !errors.Is(err, errStop) && !errors.Is(err, ldapstore.ErrNotFound) {
			return nil, err
		}
	}
	return holders, nil
}

// nameTaken answers 409 when another entry of kind k holds name, noting a refusal when the
// holder is protected.
func (q *request) nameTaken(k *kind, name, exceptDN, field string) error {
	holders, err := q.s.nameHolders(q.ctx(), k, name, exceptDN)
	if err != nil {
		return err
	}
	if len(holders) == 0 {
		return nil
	}
	ae := &apiError{status: http.StatusConflict, scimType: mapping.ScimTypeUniqueness, detail: field + " is already in use"}
	if why, ok := q.g.why(holders[0]); ok {
		return q.deny(why, ae)
	}
	return ae
}

// checkTarget refuses a new DN for an entry of kind k (a create, a rename, a move) that is
// protected: SCIM must never create an entry where a protected one is, or will be (a
// protected DN not created yet, a dangling member of a protected group).
func (q *request) checkTarget(dn, field string) error {
	if why, ok := q.g.why(dn); ok {
		return q.deny(why, &apiError{status: http.StatusConflict, scimType: mapping.ScimTypeUniqueness, detail: field + " is already in use"})
	}
	return nil
}

// idBatch is how many ids one OR filter looks up.
const idBatch = 100

// resolveIDs finds the DNs of SCIM ids among the visible entries of the given kinds, batch
// after batch of OR filters, in the order the ids were sent. Unknown and invisible ids are
// absent from the result; a protected one is noted as a refusal. With strict, the first batch
// holding an id that no kind knows ends the lookup with the 400 field names: a request naming
// 20,000 unknown ids costs one search per kind, not one per batch.
func (q *request) resolveIDs(ids []string, strict bool, field string, kinds ...*kind) (map[string]resolved, error) {
	ctx, st, g := q.ctx(), q.st, q.g
	out := map[string]resolved{}
	seen := map[string]bool{}
	var order []string
	for _, id := range ids {
		if id == "" || len(id) > maxIDLength {
			if strict {
				return nil, unknownID(field, id, ids, kinds)
			}
			continue
		}
		if !seen[strings.ToLower(id)] {
			seen[strings.ToLower(id)] = true
			order = append(order, id)
		}
	}
	for len(order) > 0 {
		n := min(idBatch, len(order))
		batch := order[:n]
		order = order[n:]
		pending := map[string][]string{} // lower(id) → the ids as sent
		for _, id := range batch {
			pending[strings.ToLower(id)] = append(pending[strings.ToLower(id)], id)
		}
		for _, k := range kinds {
			if len(pending) == 0 {
				break
			}
			subs := make([]mapping.LDAPFilter, 0, len(pending))
			for _, sent := range pending {
				subs = append(subs, mapping.LDAPFilter{Op: mapping.FilterEqual, Attr: st.idAttr, Value: sent[0]})
			}
			f := mapping.LDAPFilter{Op: mapping.FilterOr, Subs: subs}
			if len(subs) == 1 {
				f = subs[0]
			}
			filter := k.fenced(ldapstore.RenderFilter(f))
			for _, base := range k.bases {
				err := q.s.dir.Walk(ctx, ldapstore.Search{Base: base, Scope: ldapstore.ScopeSub, Filter: filter, Attrs: []string{st.idAttr}}, func(e mapping.Entry) error {
					key := strings.ToLower(e.First(st.idAttr))
					sent, ok := pending[key]
					if !ok {
						return nil
					}
					if why, hidden := g.hidden(k, e.DN); hidden {
						if why != whyNotInBase {
							q.deny(why, nil)
						}
						return nil
					}
					for _, id := range sent {
						out[id] = resolved{dn: e.DN, kind: k}
					}
					delete(pending, key)
					return nil
				})
				if err != nil && !errors.Is(err, ldapstore.ErrNotFound) {
					return nil, err
				}
			}
		}
		if strict && len(pending) > 0 {
			for _, id := range batch {
				if _, ok := pending[strings.ToLower(id)]; ok {
					return nil, unknownID(field, id, ids, kinds)
				}
			}
		}
	}
	return out, nil
}

// unknownID is the 400 for an id the request names that no visible entry has. The id is not
// echoed (it is the client's text); its position is.
func unknownID(field, id string, ids []string, kinds []*kind) *apiError {
	what := "user"
	if len(kinds) > 1 {
		what = "user or group"
	}
	pos := slices.Index(ids, id) + 1
	return badRequest(mapping.ScimTypeInvalidValue, fmt.Sprintf("%s: value %d is not the id of a %s of this server", field, pos, what))
}

// resolved is an entry found by id or DN.
type resolved struct {
	dn   string
	id   string
	kind *kind
}

// memberConcurrency bounds the parallel lookups that turn member DNs into ids.
const memberConcurrency = 8

// eachBounded calls fn for every DN, memberConcurrency at a time, and returns the first error
// (after every call has returned). fn runs concurrently: it guards what it shares.
func eachBounded(dns []string, fn func(i int, dn string) error) error {
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		sem      = make(chan struct{}, memberConcurrency)
	)
	for i, dn := range dns {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := fn(i, dn); err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return firstErr
}

// walkThreshold is the number of DNs above which resolving them reads the id of every entry of
// the bases once instead of each DN on its own.
const walkThreshold = 2000

// resolveDNs turns DNs into SCIM ids. A DN resolves only if it names a visible entry of one of
// the kinds: below its bases, inside its fence and not protected. Dangling DNs (a member
// deleted without referential integrity) and invisible entries are absent from the result.
func (s *Server) resolveDNs(ctx context.Context, g *guard, dns []string, kinds ...*kind) (map[string]resolved, error) {
	st := g.st
	out := map[string]resolved{}
	var todo []string
	seen := map[string]bool{}
	for _, dn := range dns {
		key := ldapstore.NormalizeDN(dn)
		if dn == "" || seen[key] {
			continue
		}
		seen[key] = true
		for _, k := range kinds {
			if _, hidden := g.hidden(k, dn); !hidden {
				todo = append(todo, dn)
				break
			}
		}
	}
	if len(todo) == 0 {
		return out, nil
	}
	if len(todo) > walkThreshold {
		for _, k := range kinds {
			err := s.searchKind(ctx, g, k, "", []string{st.idAttr}, func(e mapping.Entry) error {
				key := ldapstore.NormalizeDN(e.DN)
				if seen[key] {
					if _, done := out[key]; !done {
						out[key] = resolved{dn: e.DN, id: e.First(st.idAttr), kind: k}
					}
				}
				return nil
			})
			if err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	var mu sync.Mutex
	err := eachBounded(todo, func(_ int, dn string) error {
		r, ok, err := s.resolveDN(ctx, g, dn, kinds...)
		if err != nil || !ok {
			return err
		}
		mu.Lock()
		out[ldapstore.NormalizeDN(dn)] = r
		mu.Unlock()
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// resolveDN looks one DN up as a visible entry of the first kind whose bases hold it and whose
// fence it matches.
func (s *Server) resolveDN(ctx context.Context, g *guard, dn string, kinds ...*kind) (resolved, bool, error) {
	idAttr := g.st.idAttr
	for _, k := range kinds {
		if _, hidden := g.hidden(k, dn); hidden {
			continue
		}
		var r resolved
		found := false
		err := s.dir.Walk(ctx, ldapstore.Search{Base: dn, Scope: ldapstore.ScopeBase, Filter: k.fence, Attrs: []string{idAttr}}, func(e mapping.Entry) error {
			if id := e.First(idAttr); id != "" {
				r, found = resolved{dn: e.DN, id: id, kind: k}, true
			}
			return nil
		})
		switch {
		case errors.Is(err, ldapstore.ErrNotFound), errors.Is(err, ldapstore.ErrInvalid):
			continue
		case err != nil:
			return resolved{}, false, err
		}
		if found {
			return r, true, nil
		}
	}
	return resolved{}, false, nil
}

// managerIDs resolves the manager DNs of entries into ids, for UserFromLDAP.
func (s *Server) managerIDs(ctx context.Context, g *guard, entries []mapping.Entry) (func(dn string) string, error) {
	st := g.st
	if st.managerAttr == "" {
		return func(string) string { return "" }, nil
	}
	var dns []string
	for _, e := range entries {
		dns = append(dns, e.Get(st.managerAttr)...)
	}
	if len(dns) == 0 {
		return func(string) string { return "" }, nil
	}
	ids, err := s.resolveDNs(ctx, g, dns, st.users)
	if err != nil {
		return nil, err
	}
	return func(dn string) string { return ids[ldapstore.NormalizeDN(dn)].id }, nil
}
