package inbound

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/scimbridge/scimbridge/ldapstore"
	"github.com/scimbridge/scimbridge/mapping"
)

// maxIDLength bounds the ids accepted from clients; no directory id is longer.
const maxIDLength = 256

var errStop = errors.New("stop")

// findByID reads the entry of kind k with SCIM id id. The search is based at k's bases and
// ANDed with k's filter, and the DN found is checked to lie below a base: nothing outside the
// bases is ever returned. A missing entry is a 404.
func (s *Server) findByID(ctx context.Context, st *state, k *kind, id string, attrs []string) (mapping.Entry, error) {
	if id == "" || len(id) > maxIDLength {
		return mapping.Entry{}, notFound(k.name)
	}
	idf, err := ldapstore.IDFilter(st.idAttr, id)
	if err != nil {
		// Not an id this directory could have issued (a malformed objectGUID).
		return mapping.Entry{}, notFound(k.name)
	}
	filter := k.typeFilter(idf)
	var found []mapping.Entry
	for _, base := range k.bases {
		err := s.dir.Walk(ctx, ldapstore.Search{Base: base, Scope: ldapstore.ScopeSub, Filter: filter, Attrs: attrs}, func(e mapping.Entry) error {
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
	if !k.inScope(e.DN) {
		return mapping.Entry{}, notFound(k.name)
	}
	return e, nil
}

// searchKind runs filter (rendered, escaped) ANDed with k's filter below each of k's bases and
// streams the entries to fn.
func (s *Server) searchKind(ctx context.Context, k *kind, filter string, attrs []string, fn func(mapping.Entry) error) error {
	full := k.typeFilter(filter)
	for _, base := range k.bases {
		err := s.dir.Walk(ctx, ldapstore.Search{Base: base, Scope: ldapstore.ScopeSub, Filter: full, Attrs: attrs}, func(e mapping.Entry) error {
			if !k.inScope(e.DN) {
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

// nameTaken reports whether another entry of kind k (not the one at exceptDN) holds value in
// k's name attribute (userName, displayName). The comparison is the directory's equality rule:
// case-insensitive for uid and cn.
func (s *Server) nameTaken(ctx context.Context, k *kind, value, exceptDN string) (bool, error) {
	taken := false
	f := ldapstore.RenderFilter(mapping.LDAPFilter{Op: mapping.FilterEqual, Attr: k.nameAttr, Value: value})
	err := s.searchKind(ctx, k, f, []string{"1.1"}, func(e mapping.Entry) error {
		if exceptDN != "" && ldapstore.SameDN(e.DN, exceptDN) {
			return nil
		}
		taken = true
		return errStop
	})
	if errors.Is(err, errStop) {
		err = nil
	}
	return taken, err
}

// idBatch is how many ids one OR filter looks up.
const idBatch = 50

// resolveIDs finds the DNs of SCIM ids among the entries of the given kinds, in batches of
// OR filters. Unknown ids are absent from the result.
func (s *Server) resolveIDs(ctx context.Context, st *state, ids []string, kinds ...*kind) (map[string]resolved, error) {
	out := map[string]resolved{}
	todo := map[string]bool{}
	for _, id := range ids {
		if id != "" && len(id) <= maxIDLength {
			todo[id] = true
		}
	}
	for _, k := range kinds {
		if len(todo) == 0 {
			break
		}
		pending := make([]string, 0, len(todo))
		for id := range todo {
			pending = append(pending, id)
		}
		for len(pending) > 0 {
			n := min(idBatch, len(pending))
			batch := pending[:n]
			pending = pending[n:]
			subs := make([]mapping.LDAPFilter, len(batch))
			for i, id := range batch {
				subs[i] = mapping.LDAPFilter{Op: mapping.FilterEqual, Attr: st.idAttr, Value: id}
			}
			f := mapping.LDAPFilter{Op: mapping.FilterOr, Subs: subs}
			if len(subs) == 1 {
				f = subs[0]
			}
			err := s.searchKind(ctx, k, ldapstore.RenderFilter(f), []string{st.idAttr}, func(e mapping.Entry) error {
				id := e.First(st.idAttr)
				for _, want := range batch {
					if strings.EqualFold(want, id) {
						out[want] = resolved{dn: e.DN, kind: k}
						delete(todo, want)
					}
				}
				return nil
			})
			if err != nil {
				return nil, err
			}
		}
	}
	return out, nil
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

// resolveDNs turns DNs into SCIM ids. A DN resolves only if it names an entry of one of the
// kinds, below its bases and matching its filter; dangling DNs (a member deleted without
// referential integrity) and entries outside the bases are absent from the result.
func (s *Server) resolveDNs(ctx context.Context, st *state, dns []string, kinds ...*kind) (map[string]resolved, error) {
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
			if k.inScope(dn) {
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
			err := s.searchKind(ctx, k, "", []string{st.idAttr}, func(e mapping.Entry) error {
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
		r, ok, err := s.resolveDN(ctx, st, dn, kinds...)
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

// resolveDN looks one DN up as an entry of the first kind whose bases hold it and whose filter
// it matches.
func (s *Server) resolveDN(ctx context.Context, st *state, dn string, kinds ...*kind) (resolved, bool, error) {
	for _, k := range kinds {
		if !k.inScope(dn) {
			continue
		}
		var r resolved
		found := false
		err := s.dir.Walk(ctx, ldapstore.Search{Base: dn, Scope: ldapstore.ScopeBase, Filter: k.filter, Attrs: []string{st.idAttr}}, func(e mapping.Entry) error {
			if id := e.First(st.idAttr); id != "" {
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
func (s *Server) managerIDs(ctx context.Context, st *state, entries []mapping.Entry) (func(dn string) string, error) {
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
	ids, err := s.resolveDNs(ctx, st, dns, st.users)
	if err != nil {
		return nil, err
	}
	return func(dn string) string { return ids[ldapstore.NormalizeDN(dn)].id }, nil
}
