package inbound

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/scimbridge/scimbridge/ldapstore"
	"github.com/scimbridge/scimbridge/mapping"
)

// fencedAdder is the optional ability of a Directory to add an entry only if it matches a
// filter (RFC 4528's Assertion control on an Add, evaluated against the new entry);
// *ldapstore.Store has it.
type fencedAdder interface {
	AddAsserted(ctx context.Context, dn string, attrs map[string][]string, assertion string) error
}

var _ fencedAdder = (*ldapstore.Store)(nil)

// errOutsideFence is the answer to a create whose entry the SCIM side could not see.
func errOutsideFence(k *kind) *apiError {
	return badRequest(mapping.ScimTypeInvalidValue, "the new "+strings.ToLower(k.name)+" would not match this server's filters (ldap."+
		strings.ToLower(k.endpoint)+".filter, inbound.scope_filter."+strings.ToLower(k.endpoint)+"): it would be invisible to SCIM, so it is not created")
}

// addFenced adds a new entry of kind k only if it lies inside k's fence, so that SCIM never
// creates what it could not see afterwards: with the Assertion control where the directory has
// it (one atomic Add), otherwise by adding, checking and deleting again.
func (s *Server) addFenced(ctx context.Context, k *kind, dn string, attrs map[string][]string) error {
	if fa, ok := s.dir.(fencedAdder); ok && s.caps.assertion {
		err := fa.AddAsserted(ctx, dn, attrs, k.fence)
		if errors.Is(err, ldapstore.ErrAssertionFailed) {
			return errOutsideFence(k)
		}
		return err
	}
	if err := s.dir.Add(ctx, dn, attrs); err != nil {
		return err
	}
	inside := false
	err := s.dir.Walk(ctx, ldapstore.Search{Base: dn, Scope: ldapstore.ScopeBase, Filter: k.fence, Attrs: []string{"1.1"}}, func(mapping.Entry) error {
		inside = true
		return nil
	})
	if err == nil && inside {
		return nil
	}
	if derr := s.dir.Delete(context.WithoutCancel(ctx), dn); derr != nil {
		s.logger.Error().Err(derr).Str("dn", dn).Msg("could not remove a new entry that lies outside the scim fence")
	}
	if err != nil {
		return err
	}
	return errOutsideFence(k)
}

// adoptOrConflict answers a create whose name the entries at holders already hold: 409, or, in
// managed mode with inbound.adopt_existing, the adoption of the one unmarked entry that holds
// it (it is marked and updated with body, and the answer is 201 with it). Entra ID matches
// users with a GET filter first and never matches again after a 409: adoption happens here.
// A protected entry, an entry outside the scope filter or a marked one (visible, so the
// client's own) is never adopted.
func (q *request) adoptOrConflict(k *kind, holders []string, field string, body map[string]any) (string, error) {
	conflict := &apiError{status: http.StatusConflict, scimType: mapping.ScimTypeUniqueness, detail: field + " is already in use"}
	if why, ok := q.g.why(holders[0]); ok {
		return "", q.deny(why, conflict)
	}
	if !k.managed.on() || !q.st.cfg.AdoptExisting || len(holders) != 1 || body == nil {
		return "", conflict
	}
	// The candidate must be inside the fence but for the marker, and unmarked.
	var e mapping.Entry
	found := false
	filter := and(k.scoped, "(!"+k.managed.filter()+")")
	err := q.s.dir.Walk(q.ctx(), ldapstore.Search{Base: holders[0], Scope: ldapstore.ScopeBase, Filter: filter, Attrs: q.st.readAttrs(k, true)}, func(en mapping.Entry) error {
		e, found = en, true
		return nil
	})
	switch {
	case errors.Is(err, ldapstore.ErrNotFound):
		return "", conflict
	case err != nil:
		return "", err
	case !found:
		return "", conflict
	}
	var dn string
	if k.isUser() {
		var deleted bool
		dn, deleted, err = q.writeUser(k, e, body, true)
		if err == nil && deleted {
			return "", badRequest(mapping.ScimTypeInvalidValue, `this server deletes disabled users (inbound.disable = "delete"): a user cannot be created inactive`)
		}
	} else {
		dn, err = q.writeGroup(k, e, body, true)
	}
	if errors.Is(err, ldapstore.ErrAssertionFailed) {
		return "", &apiError{status: http.StatusConflict, detail: "the entry is being changed concurrently; retry", cause: err}
	}
	if err != nil {
		return "", err
	}
	q.s.logger.Info().Str("resource", k.name).Str("actor", q.actor).Msg("adopted an existing entry into managed mode")
	id := q.respondCreated(k, dn)
	return id, nil
}

// adoptChange is the change that marks an adopted entry: added to the marker's attribute,
// unless changes replaces that attribute already (keep then puts the marker in).
func adoptChange(k *kind, changes map[string][]string) []ldapstore.Change {
	if _, _, ok := lookup(changes, k.managed.attr); ok {
		k.managed.keep(changes)
		return nil
	}
	return []ldapstore.Change{{Op: ldapstore.ModAdd, Attr: k.managed.attr, Values: []string{k.managed.value}}}
}
