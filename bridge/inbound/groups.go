package inbound

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/scimbridge/scimbridge/ldapstore"
	"github.com/scimbridge/scimbridge/mapping"
)

// memberIDsOf collects the member ids a Group resource carries, so that they are resolved in
// batches rather than one search each.
func memberIDsOf(res map[string]any) []string {
	var ids []string
	for k, v := range res {
		if !strings.EqualFold(k, "members") {
			continue
		}
		list, _ := v.([]any)
		for _, el := range list {
			m, _ := el.(map[string]any)
			for mk, mv := range m {
				if strings.EqualFold(mk, "value") {
					if s, ok := mv.(string); ok {
						ids = append(ids, s)
					}
				}
			}
		}
	}
	return ids
}

// checkMemberCount refuses a request naming more members than inbound.max_members_per_request,
// before any of them is looked up.
func (q *request) checkMemberCount(n int) error {
	if limit := q.st.cfg.MaxMembers; n > limit {
		return &apiError{status: http.StatusRequestEntityTooLarge, detail: fmt.Sprintf("the request names %d members; this server takes at most %d per request: send them in several PATCH requests", n, limit)}
	}
	return nil
}

// memberValuesIn counts the member values the operations of a PATCH carry, as sent
// (duplicates included): the cap is on what the client sends.
func memberValuesIn(ops []mapping.PatchOperation) int {
	n := 0
	for _, op := range ops {
		switch v := op.Value.(type) {
		case []any:
			if op.Path == nil || strings.EqualFold(op.Path.AttributePath.AttributeName, "members") {
				n += len(v)
			}
		case map[string]any:
			n += len(memberIDsOf(v))
		}
	}
	return n
}

func (q *request) createGroup(k *kind, body map[string]any) (string, error) {
	st := q.st
	ids := memberIDsOf(body)
	if err := q.checkMemberCount(len(ids)); err != nil {
		return "", err
	}
	known, err := q.resolveIDs(ids, true, "members", st.users, st.groups)
	if err != nil {
		return "", err
	}
	w, err := mapping.GroupToLDAP(body, st.gmap, q.idResolver(known, st.users, st.groups))
	if err != nil {
		return "", err
	}
	q.s.logIgnored(k.name, w.Ignored)
	attrs := make(map[string][]string, len(w.Attrs)+1)
	for a, v := range w.Attrs {
		attrs[a] = v
	}
	if vals := st.gmap.MemberValues(w.MemberDNs); len(vals) > 0 {
		attrs[st.gmap.MemberAttr()] = vals
	}
	return q.addEntry(k, attrs, "", k.base, "displayName", body, false)
}

// writeGroup writes the group resource res over entry e (read with its members). adopt marks
// the entry as managed (it was not).
func (q *request) writeGroup(k *kind, e mapping.Entry, res map[string]any, adopt bool) (string, error) {
	ctx, st := q.ctx(), q.st
	ids := memberIDsOf(res)
	if err := q.checkMemberCount(len(ids)); err != nil {
		return "", err
	}
	known, err := q.resolveIDs(ids, true, "members", st.users, st.groups)
	if err != nil {
		return "", err
	}
	w, err := mapping.GroupToLDAP(res, st.gmap, q.idResolver(known, st.users, st.groups))
	if err != nil {
		return "", err
	}
	q.s.logIgnored(k.name, w.Ignored)
	current, err := q.s.resolveDNs(ctx, q.g, e.Get(st.gmap.MemberAttr()), st.users, st.groups)
	if err != nil {
		return "", err
	}
	changes := mapping.GroupChanges(k.managed.strip(e), w, st.gmap, memberLookup(current))
	var extra []ldapstore.Change
	assert := q.s.assertionFor(k, e)
	if adopt {
		extra = adoptChange(k, changes)
		assert = q.s.assertion(k.scoped, e)
	}
	return q.applyGroup(k, e, w, changes, extra, st.readAttrs(k, true), assert)
}

// applyGroup checks a displayName change for uniqueness, plans the rename and writes. readAttrs
// are the attributes the response will read (Post-Read, when the directory returns them).
// assert is the Assertion filter of the write (see assertionFor).
func (q *request) applyGroup(k *kind, e mapping.Entry, w mapping.GroupWrite, changes map[string][]string, extra []ldapstore.Change, readAttrs []string, assert string) (string, error) {
	ctx := q.ctx()
	if name := first(w.Attrs, k.nameAttr); name != "" && !strings.EqualFold(name, e.First(k.nameAttr)) {
		if err := q.nameTaken(k, name, e.DN, "displayName"); err != nil {
			return "", err
		}
	}
	k.managed.keep(changes)
	p := &plan{entry: e, assert: assert, readAttrs: readAttrs}
	if err := planRename(p, k, changes, "", q.st.ad); err != nil {
		return "", err
	}
	if err := q.checkTarget(p.newDN(), "displayName"); err != nil {
		return "", err
	}
	p.changes = append(changeList(changes), extra...)
	dn, err := q.s.apply(ctx, q.g, p)
	q.wrote(p)
	if err != nil && errors.Is(err, ldapstore.ErrAlreadyExists) {
		return "", &apiError{status: http.StatusConflict, scimType: mapping.ScimTypeUniqueness, detail: "displayName is already in use", cause: err}
	}
	return dn, err
}

// patchGroup applies a Group PATCH. Membership changes expressed as ids to add and remove (what
// Entra ID sends) take the fast path: the group is read without its members and the change is
// one Modify adding and deleting member values, whatever the size of the group. Anything else
// reads the whole group and applies the PATCH to it.
func (q *request) patchGroup(k *kind, id string, ops []mapping.PatchOperation) error {
	add, remove, replaceAll, other, err := mapping.MemberDelta(ops)
	switch {
	case errors.Is(err, mapping.ErrNoMemberDelta), err == nil && replaceAll != nil:
		// Replacing the whole membership must keep the members the SCIM side cannot see
		// (DNs outside the bases), which only a read of the member list tells.
		return q.update(k, id, func(e mapping.Entry) (map[string]any, error) {
			cur, err := q.toResources(k, []mapping.Entry{e}, true)
			if err != nil {
				return nil, err
			}
			return mapping.ApplyPatch(cur[0], ops, q.st.gmap.Schema())
		}, true)
	case err != nil:
		return err
	}
	ctx, st := q.ctx(), q.st
	if err := q.checkMemberCount(max(len(add)+len(remove), memberValuesIn(ops))); err != nil {
		return err
	}
	// Members to add must all exist (the first unknown one ends the lookup); removing what
	// does not exist, or what the client cannot see, is done already.
	added, err := q.resolveIDs(add, true, "members", st.users, st.groups)
	if err != nil {
		return err
	}
	removed, err := q.resolveIDs(remove, false, "members", st.users, st.groups)
	if err != nil {
		return err
	}
	dnsOf := func(ids []string, known map[string]resolved) []string {
		var out []string
		for _, id := range ids {
			if r, ok := known[id]; ok {
				out = append(out, r.dn)
			}
		}
		return out
	}
	addDNs, removeDNs := dnsOf(add, added), dnsOf(remove, removed)
	for attempt := 1; ; attempt++ {
		e, err := q.findByID(k, id, st.groupAttrsNoMembers)
		if err != nil {
			return err
		}
		if err := ifMatch(q.r, mapping.VersionOf(e)); err != nil {
			return err
		}
		dn, err := q.patchGroupOnce(k, e, other, addDNs, removeDNs)
		if errors.Is(err, ldapstore.ErrAssertionFailed) {
			if q.r.Header.Get("If-Match") != "" {
				return errStale
			}
			if attempt < maxWriteAttempts && contended(q.r.Context(), attempt) {
				continue
			}
			return &apiError{status: http.StatusConflict, detail: "the resource is being changed concurrently; retry", cause: err}
		}
		if err != nil {
			return err
		}
		attrs, excluded := projection(q.r.URL.Query())
		if len(attrs) > 0 || len(excluded) > 0 {
			q.respond(k, http.StatusOK, dn, mapping.Requested(attrs, excluded, "members"))
			return nil
		}
		// RFC 7644 §3.5.2: 204 with the new version, without reading a huge member list back.
		if w := q.written; w != nil && ldapstore.SameDN(w.DN, dn) && slices.Equal(q.writtenAttrs, st.groupAttrsNoMembers) {
			q.w.Header().Set("ETag", mapping.VersionOf(*w))
		} else if e2, err := q.s.dir.Get(ctx, dn, st.groupAttrsNoMembers); err == nil {
			q.w.Header().Set("ETag", mapping.VersionOf(e2))
		}
		q.w.WriteHeader(http.StatusNoContent)
		return nil
	}
}

// patchReadAttrs are the attributes the answer to a fast-path group PATCH reads: those of the
// projection when the query has one, else none of the members (the answer is a 204 with the
// new version).
func (q *request) patchReadAttrs(k *kind) []string {
	attrs, excluded := projection(q.r.URL.Query())
	if len(attrs) > 0 || len(excluded) > 0 {
		return q.st.readAttrs(k, mapping.Requested(attrs, excluded, "members"))
	}
	return q.st.groupAttrsNoMembers
}

// patchGroupOnce writes one attempt of a fast-path group PATCH on e (read without members).
func (q *request) patchGroupOnce(k *kind, e mapping.Entry, other []mapping.PatchOperation, addDNs, removeDNs []string) (string, error) {
	st := q.st
	member := st.gmap.MemberAttr()
	changes := map[string][]string{}
	w := mapping.GroupWrite{Attrs: map[string][]string{}}
	if len(other) > 0 {
		visible := k.managed.strip(e)
		cur := mapping.GroupFromLDAP(visible, st.gmap, st.idAttr, nil)
		patched, err := mapping.ApplyPatch(cur, other, st.gmap.Schema())
		if err != nil {
			return "", err
		}
		if w, err = mapping.GroupToLDAP(patched, st.gmap, q.idResolver(nil, st.users, st.groups)); err != nil {
			return "", err
		}
		q.s.logIgnored(k.name, w.Ignored)
		changes = mapping.GroupChanges(visible, w, st.gmap, nil)
		// e was read without members: any member change belongs to the delta below.
		if _, key, ok := lookup(changes, member); ok {
			delete(changes, key)
		}
	}
	memberChanges, err := q.memberDelta(e.DN, member, addDNs, removeDNs, false)
	if err != nil {
		return "", err
	}
	if len(changes) == 0 && len(memberChanges) == 0 {
		return e.DN, nil
	}
	// Adding and removing member values commute and each is atomic in LDAP: a membership-only
	// PATCH needs no version check (Entra ID sends many at once to one group), only the fence.
	// With If-Match, or other changes, the version counts.
	assert := q.s.assertionFor(k, e)
	if len(changes) == 0 && q.r.Header.Get("If-Match") == "" {
		assert = q.s.assertion(k.fence, mapping.Entry{})
	}
	dn, err := q.applyGroup(k, e, w, changes, memberChanges, q.patchReadAttrs(k), assert)
	if err == nil {
		return dn, nil
	}
	switch {
	case q.s.isHarmlessMemberError(err):
		// 20 and 16 (AD: 68 and 53): some members were already in (or already out of) the
		// group. Under at-least-once delivery that is success: send only what is left to do.
		memberChanges, err = q.memberDelta(e.DN, member, addDNs, removeDNs, true)
		if err != nil {
			return "", err
		}
		if len(changes) == 0 && len(memberChanges) == 0 {
			return e.DN, nil
		}
		dn, err = q.applyGroup(k, e, w, changes, memberChanges, q.patchReadAttrs(k), assert)
	}
	if err != nil && errors.Is(err, ldapstore.ErrInvalid) && len(removeDNs) > 0 && !st.gmap.EmptyGroups() {
		// Removing the last member of a groupOfNames, which requires one: keep the group valid
		// with the placeholder member.
		memberChanges = append(memberChanges, ldapstore.Change{Op: ldapstore.ModAdd, Attr: member, Values: []string{mapping.PlaceholderMember}})
		dn, err = q.applyGroup(k, e, w, changes, memberChanges, q.patchReadAttrs(k), assert)
	}
	return dn, err
}

// memberDelta builds the member value changes. Adding to a group that holds only the
// placeholder also removes the placeholder. With exact, each DN is first checked against the
// group (a base search per DN, never a read of the member list) and only real changes remain.
func (q *request) memberDelta(groupDN, member string, addDNs, removeDNs []string, exact bool) ([]ldapstore.Change, error) {
	ctx := q.ctx()
	has := func(dn string) (bool, error) {
		found := false
		f := ldapstore.RenderFilter(mapping.LDAPFilter{Op: mapping.FilterEqual, Attr: member, Value: dn})
		err := q.s.dir.Walk(ctx, ldapstore.Search{Base: groupDN, Scope: ldapstore.ScopeBase, Filter: f, Attrs: []string{"1.1"}}, func(mapping.Entry) error {
			found = true
			return nil
		})
		return found, err
	}
	var out []ldapstore.Change
	adds, removes := addDNs, removeDNs
	if exact {
		adds, removes = nil, nil
		for _, dn := range addDNs {
			in, err := has(dn)
			if err != nil {
				return nil, err
			}
			if !in {
				adds = append(adds, dn)
			}
		}
		for _, dn := range removeDNs {
			in, err := has(dn)
			if err != nil {
				return nil, err
			}
			if in {
				removes = append(removes, dn)
			}
		}
	}
	if len(adds) > 0 {
		out = append(out, ldapstore.Change{Op: ldapstore.ModAdd, Attr: member, Values: dedupeDNs(adds)})
		placeholder, err := has(mapping.PlaceholderMember)
		if err != nil {
			return nil, err
		}
		if placeholder {
			out = append(out, ldapstore.Change{Op: ldapstore.ModDelete, Attr: member, Values: []string{mapping.PlaceholderMember}})
		}
	}
	if len(removes) > 0 {
		out = append(out, ldapstore.Change{Op: ldapstore.ModDelete, Attr: member, Values: dedupeDNs(removes)})
	}
	return out, nil
}

func dedupeDNs(dns []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, dn := range dns {
		k := ldapstore.NormalizeDN(dn)
		if !seen[k] {
			seen[k] = true
			out = append(out, dn)
		}
	}
	return out
}
