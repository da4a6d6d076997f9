package inbound

import (
	"context"
	"errors"
	"net/http"
	"sort"
	"strings"

	"github.com/scimbridge/scimbridge/ldapstore"
	"github.com/scimbridge/scimbridge/mapping"
)

// assertionFor is the Assertion control filter that makes a write apply only to the version
// of e that was read — entryCSN where the directory has it, modifyTimestamp otherwise — and
// only while e is inside k's fence (scope filter, managed marker); "" when the directory lacks
// the control.
func (s *Server) assertionFor(k *kind, e mapping.Entry) string {
	return s.assertion(k.fence, e)
}

// assertion is assertionFor with the fence given (adoption takes an unmarked entry).
func (s *Server) assertion(fence string, e mapping.Entry) string {
	if !s.caps.assertion {
		return ""
	}
	version := ""
	if csn := e.First("entryCSN"); csn != "" {
		version = "(entryCSN=" + ldapstore.EscapeFilter(csn) + ")"
	} else if ts := e.First("modifyTimestamp"); ts != "" {
		version = "(modifyTimestamp=" + ldapstore.EscapeFilter(ts) + ")"
	}
	return and(version, fence)
}

// ifMatch checks the If-Match header against the entry's version: nil when absent or
// matching, errStale otherwise. "*" matches any existing resource.
func ifMatch(r *http.Request, version string) error {
	h := r.Header.Get("If-Match")
	if h == "" {
		return nil
	}
	if !etagMatches(h, version) {
		return errStale
	}
	return nil
}

// etagMatches compares a list of entity-tags (If-Match, If-None-Match) with the current one
// using weak comparison (RFC 9110 §8.8.3.2): SCIM versions are weak.
func etagMatches(header, version string) bool {
	strip := func(t string) string { return strings.TrimPrefix(strings.TrimSpace(t), "W/") }
	v := strip(version)
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || (t != "" && strip(t) == v) {
			return true
		}
	}
	return false
}

// changeList turns mapping's attribute → values (empty: delete) into replace changes, sorted
// for a stable request.
func changeList(m map[string][]string) []ldapstore.Change {
	attrs := make([]string, 0, len(m))
	for a := range m {
		attrs = append(attrs, a)
	}
	sort.Strings(attrs)
	out := make([]ldapstore.Change, 0, len(attrs))
	for _, a := range attrs {
		out = append(out, ldapstore.Change{Op: ldapstore.ModReplace, Attr: a, Values: m[a]})
	}
	return out
}

// undoList is the Modify that puts back the attributes changes touched, as e had them. A
// replace with no values removes an attribute that e did not have and is a no-op otherwise.
func undoList(e mapping.Entry, changes []ldapstore.Change) []ldapstore.Change {
	seen := map[string]bool{}
	var out []ldapstore.Change
	for _, c := range changes {
		if seen[strings.ToLower(c.Attr)] {
			continue
		}
		seen[strings.ToLower(c.Attr)] = true
		out = append(out, ldapstore.Change{Op: ldapstore.ModReplace, Attr: c.Attr, Values: e.Get(c.Attr)})
	}
	return out
}

func first(attrs map[string][]string, name string) string {
	for k, v := range attrs {
		if strings.EqualFold(k, name) && len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

func lookup(attrs map[string][]string, name string) ([]string, string, bool) {
	for k, v := range attrs {
		if strings.EqualFold(k, name) {
			return v, k, true
		}
	}
	return nil, "", false
}

// plan is one resource write: the Modify, then possibly a ModifyDN and a password.
type plan struct {
	entry    mapping.Entry // as read
	changes  []ldapstore.Change
	newRDN   string // "" keeps the RDN
	newSuper string // "" keeps the parent
	password string
	assert   string
	// extra are changes beyond the attribute replaces (the managed marker of an adoption).
	extra []ldapstore.Change
	// readAttrs, when set, asks for the entry as the write leaves it (Post-Read on the
	// Modify, when that is the last step); apply sets after to it.
	readAttrs []string
	after     *mapping.Entry
}

func (p *plan) newDN() string {
	if p.newRDN == "" && p.newSuper == "" {
		return p.entry.DN
	}
	rdn, parent, err := ldapstore.SplitDN(p.entry.DN)
	if err != nil {
		return p.entry.DN
	}
	if p.newRDN != "" {
		rdn = p.newRDN
	}
	if p.newSuper != "" {
		parent = p.newSuper
	}
	return rdn + "," + parent
}

// planRename fills in the rename of an entry of kind k whose RDN attribute would take the
// values in changes, and the move to parent (when not ""). The old RDN value stays in the
// Modify (an RDN value cannot be removed while it names the entry); the ModifyDN with
// deleteOldRDN then removes it.
//
// With rdnFixed (Active Directory), the naming attribute never appears in the Modify: the
// ModifyDN alone changes it.
func planRename(p *plan, k *kind, changes map[string][]string, parent string, rdnFixed bool) error {
	oldVal, err := ldapstore.RDNValue(p.entry.DN, k.rdnAttr)
	if err != nil {
		// An entry named by another attribute (created outside the bridge): leave its name.
		oldVal = ""
	}
	vals, key, changed := lookup(changes, k.rdnAttr)
	if changed && rdnFixed {
		// The directory changes its naming attribute only through ModifyDN (AD).
		delete(changes, key)
	}
	if changed && oldVal != "" {
		if len(vals) == 0 {
			return badRequest(mapping.ScimTypeInvalidValue, "the attribute that names the entry in the directory cannot be removed")
		}
		// The RDN attributes scimbridge names entries by (uid, cn) compare case-insensitively:
		// a change of case only is no rename.
		if !strings.EqualFold(vals[0], oldVal) {
			p.newRDN = ldapstore.RDN(k.rdnAttr, vals[0])
			keep := !rdnFixed
			for _, v := range vals {
				if strings.EqualFold(v, oldVal) {
					keep = false
				}
			}
			if keep {
				changes[key] = append(append([]string(nil), vals...), oldVal)
			}
		}
	}
	if parent != "" {
		_, cur, err := ldapstore.SplitDN(p.entry.DN)
		if err == nil && !ldapstore.SameDN(cur, parent) {
			p.newSuper = parent
		}
	}
	return nil
}

// apply performs the plan as one asserted Modify, then the ModifyDN, then the password, and
// undoes the earlier steps when a later one fails, so that a failed request leaves the entry
// as it was. It returns the entry's DN afterwards.
func (s *Server) apply(ctx context.Context, g *guard, p *plan) (string, error) {
	dn := p.entry.DN
	newDN := p.newDN()
	renamed := !ldapstore.SameDN(newDN, dn)
	pr, _ := s.dir.(postReader)
	switch {
	case len(p.changes) == 0:
	case p.readAttrs != nil && s.caps.postRead && pr != nil && !renamed && p.password == "":
		// The Modify is the only write: its Post-Read is the entry as the request leaves it.
		e, ok, err := pr.ModifyWithPostRead(ctx, dn, p.changes, ldapstore.ModifyOptions{Assertion: p.assert}, p.readAttrs)
		if err != nil {
			return dn, err
		}
		if ok {
			p.after = &e
		}
	default:
		if err := s.dir.Modify(ctx, dn, p.changes, ldapstore.ModifyOptions{Assertion: p.assert}); err != nil {
			return dn, err
		}
	}
	undoModify := func() {
		if len(p.changes) == 0 {
			return
		}
		if err := s.dir.Modify(context.WithoutCancel(ctx), dn, undoList(p.entry, p.changes), ldapstore.ModifyOptions{}); err != nil {
			s.logger.Error().Err(err).Str("dn", dn).Msg("could not undo a partial write: the entry keeps the new attribute values")
		}
	}
	if renamed {
		rdn, _, _ := ldapstore.SplitDN(newDN)
		if err := s.dir.ModifyDN(ctx, dn, rdn, true, p.newSuper); err != nil {
			undoModify()
			return dn, err
		}
	}
	if p.password != "" {
		if err := s.dir.SetPassword(ctx, newDN, p.password); err != nil {
			if renamed {
				oldRDN, oldParent, _ := ldapstore.SplitDN(dn)
				super := ""
				if p.newSuper != "" {
					super = oldParent
				}
				if rerr := s.dir.ModifyDN(context.WithoutCancel(ctx), newDN, oldRDN, true, super); rerr != nil {
					s.logger.Error().Err(rerr).Str("dn", newDN).Msg("could not undo a rename after a failed password change")
					s.invalidate()
					return newDN, err
				}
			}
			undoModify()
			return dn, err
		}
	}
	s.invalidate()
	if renamed {
		s.rewriteReferences(ctx, g, dn, newDN)
	}
	return newDN, nil
}

// rewriteReferences keeps the DNs that point at an entry right after it was renamed or
// deleted (newDN ""): the member values of the groups and the manager values of the users the
// SCIM side can see (never of protected ones). OpenLDAP without the refint overlay does
// neither. Failures are logged: the entry's own write succeeded, and readers skip DNs they
// cannot resolve. On Active Directory member and manager are linked attributes: AD keeps them
// right itself.
func (s *Server) rewriteReferences(ctx context.Context, g *guard, oldDN, newDN string) {
	if g.st.ad {
		return
	}
	ctx = context.WithoutCancel(ctx)
	st := g.st
	member := st.gmap.MemberAttr()
	s.rewriteIn(ctx, g, st.groups, member, oldDN, newDN, !st.gmap.EmptyGroups())
	if st.managerAttr != "" {
		s.rewriteIn(ctx, g, st.users, st.managerAttr, oldDN, newDN, false)
	}
}

func (s *Server) rewriteIn(ctx context.Context, g *guard, k *kind, attr, oldDN, newDN string, placeholder bool) {
	f := ldapstore.RenderFilter(mapping.LDAPFilter{Op: mapping.FilterEqual, Attr: attr, Value: oldDN})
	var holders []mapping.Entry
	err := s.searchKind(ctx, g, k, f, []string{"1.1"}, func(e mapping.Entry) error {
		holders = append(holders, e)
		return nil
	})
	if err != nil {
		s.logger.Warn().Err(err).Str("attribute", attr).Msg("could not find the references to a renamed or deleted entry")
		return
	}
	for _, h := range holders {
		changes := []ldapstore.Change{{Op: ldapstore.ModDelete, Attr: attr, Values: []string{oldDN}}}
		if newDN != "" {
			changes = append(changes, ldapstore.Change{Op: ldapstore.ModAdd, Attr: attr, Values: []string{newDN}})
		}
		err := s.dir.Modify(ctx, h.DN, changes, ldapstore.ModifyOptions{})
		switch {
		case err == nil:
		case errors.Is(err, ldapstore.ErrValueExists):
			// The new DN is there already: only drop the old one.
			err = s.dir.Modify(ctx, h.DN, changes[:1], ldapstore.ModifyOptions{})
		case errors.Is(err, ldapstore.ErrInvalid) && placeholder && newDN == "":
			// The last member of a groupOfNames: keep the group valid with the placeholder.
			err = s.dir.Modify(ctx, h.DN, append(changes, ldapstore.Change{Op: ldapstore.ModAdd, Attr: attr, Values: []string{mapping.PlaceholderMember}}), ldapstore.ModifyOptions{})
		}
		if err != nil && !errors.Is(err, ldapstore.ErrNoSuchAttribute) {
			s.logger.Warn().Err(err).Str("dn", h.DN).Str("attribute", attr).Msg("could not update a reference to a renamed or deleted entry")
		}
	}
	if len(holders) > 0 {
		s.invalidate()
	}
}
