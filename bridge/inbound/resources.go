package inbound

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	filter "github.com/scim2/filter-parser/v2"

	"github.com/scimbridge/scimbridge/ldapstore"
	"github.com/scimbridge/scimbridge/mapping"
)

// maxWriteAttempts bounds the read-modify-write retries when the entry changes between the
// read and the asserted write (and the client sent no If-Match, which would make it a 412).
// Several instances writing one entry at once ([ha], behind a load balancer) contend more
// than one instance's requests do: each retry first waits a jittered, growing pause
// (contended), so that contenders spread out instead of colliding again.
const maxWriteAttempts = 6

// contended waits before the next attempt of a read-modify-write that lost a race: a random
// pause below 5ms·2^attempt (at most 160ms), or until the request ends. It reports whether to
// go on.
func contended(ctx context.Context, attempt int) bool {
	t := time.NewTimer(time.Duration(rand.Int64N(int64(5*time.Millisecond) << min(attempt, 5))))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// readAttrs are the LDAP attributes read for an entry of kind k.
func (st *state) readAttrs(k *kind, withMembers bool) []string {
	switch {
	case k.isUser():
		return st.userAttrs
	case withMembers:
		return st.groupAttrs
	}
	return st.groupAttrsNoMembers
}

// toResources converts entries of kind k into SCIM resources with meta.location, resolving
// managers (users) or members (groups, when withMembers) in one batch.
func (q *request) toResources(k *kind, entries []mapping.Entry, withMembers bool) ([]map[string]any, error) {
	ctx, st := q.ctx(), q.st
	out := make([]map[string]any, 0, len(entries))
	if k.isUser() {
		mid, err := q.s.managerIDs(ctx, q.g, entries)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			out = append(out, q.located(k, mapping.UserFromLDAP(k.managed.strip(e), st.umap, st.marker, st.idAttr, mid)))
		}
		return out, nil
	}
	var members func(dn string) (string, string, bool)
	if withMembers {
		var dns []string
		for _, e := range entries {
			dns = append(dns, e.Get(st.gmap.MemberAttr())...)
		}
		ids, err := q.s.resolveDNs(ctx, q.g, dns, st.users, st.groups)
		if err != nil {
			return nil, err
		}
		members = memberLookup(ids)
	}
	for _, e := range entries {
		out = append(out, q.located(k, mapping.GroupFromLDAP(k.managed.strip(e), st.gmap, st.idAttr, members)))
	}
	return out, nil
}

// located sets meta.location.
func (q *request) located(k *kind, res map[string]any) map[string]any {
	if id, _ := res["id"].(string); id != "" {
		if m, ok := res["meta"].(map[string]any); ok {
			m["location"] = q.location(k, id)
		}
	}
	return res
}

func (q *request) location(k *kind, id string) string {
	return q.baseURL + "/" + k.endpoint + "/" + url.PathEscape(id)
}

func version(res map[string]any) string {
	if m, ok := res["meta"].(map[string]any); ok {
		v, _ := m["version"].(string)
		return v
	}
	return ""
}

// projection reads attributes and excludedAttributes from the query string (comma-separated).
func projection(v url.Values) (attrs, excluded []string) {
	split := func(s string) []string {
		var out []string
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
		return out
	}
	for _, a := range v["attributes"] {
		attrs = append(attrs, split(a)...)
	}
	for _, a := range v["excludedAttributes"] {
		excluded = append(excluded, split(a)...)
	}
	return attrs, excluded
}

// get answers GET /Users/{id} and /Groups/{id}, with If-None-Match.
func (q *request) get(k *kind, id string) {
	attrs, excluded := projection(q.r.URL.Query())
	withMembers := !k.isUser() && mapping.Requested(attrs, excluded, "members")
	e, err := q.findByID(k, id, q.st.readAttrs(k, withMembers))
	if err != nil {
		if q.denied != "" {
			q.audit(k, "get", id, err)
		}
		q.fail(err)
		return
	}
	res, err := q.toResources(k, []mapping.Entry{e}, withMembers)
	if err != nil {
		q.fail(err)
		return
	}
	etag := version(res[0])
	if inm := q.r.Header.Get("If-None-Match"); inm != "" && etagMatches(inm, etag) {
		q.w.Header().Set("ETag", etag)
		q.w.WriteHeader(http.StatusNotModified)
		return
	}
	q.writeJSON(http.StatusOK, project(res[0], attrs, excluded), etag, "")
}

// respond answers a successful write with the resource read back (200/201), projected by the
// query's attributes and excludedAttributes, and returns its id.
func (q *request) respond(k *kind, status int, dn string, withMembers bool) string {
	attrs := q.st.readAttrs(k, withMembers)
	var e mapping.Entry
	if w := q.written; w != nil && ldapstore.SameDN(w.DN, dn) && slices.Equal(q.writtenAttrs, attrs) {
		e = *w
	} else {
		var err error
		if e, err = q.s.dir.Get(q.ctx(), dn, attrs); err != nil {
			q.fail(err)
			return ""
		}
	}
	res, err := q.toResources(k, []mapping.Entry{e}, withMembers)
	if err != nil {
		q.fail(err)
		return ""
	}
	id, _ := res[0]["id"].(string)
	loc := ""
	if status == http.StatusCreated {
		loc = q.location(k, id)
	}
	pattrs, excluded := projection(q.r.URL.Query())
	q.writeJSON(status, project(res[0], pattrs, excluded), version(res[0]), loc)
	return id
}

// respondCreated answers 201 with the entry at dn and returns its id.
func (q *request) respondCreated(k *kind, dn string) string {
	return q.respond(k, http.StatusCreated, dn, true)
}

// wrote remembers the entry as plan p left it, when the directory returned it.
func (q *request) wrote(p *plan) {
	q.written, q.writtenAttrs = nil, nil
	if p.after != nil {
		q.written, q.writtenAttrs = p.after, p.readAttrs
	}
}

// idResolver turns an id into the DN of a visible entry of the given kinds; ("", nil) when
// unknown or invisible.
func (q *request) idResolver(known map[string]resolved, kinds ...*kind) func(string) (string, error) {
	return func(id string) (string, error) {
		if r, ok := known[id]; ok {
			return r.dn, nil
		}
		m, err := q.resolveIDs([]string{id}, false, "", kinds...)
		if err != nil {
			return "", err
		}
		return m[id].dn, nil
	}
}

// create answers POST /Users and /Groups.
func (q *request) create(k *kind) {
	body, err := q.readJSON()
	if err != nil {
		q.fail(err)
		return
	}
	var id string
	if k.isUser() {
		id, err = q.createUser(k, body)
	} else {
		id, err = q.createGroup(k, body)
	}
	q.audit(k, "create", id, err)
	if err != nil {
		q.fail(err)
	}
}

func (q *request) createUser(k *kind, body map[string]any) (string, error) {
	st := q.st
	w, err := mapping.UserToLDAP(body, st.umap, st.marker, q.idResolver(nil, st.users))
	if err != nil {
		return "", err
	}
	q.s.logIgnored(k.name, w.Ignored)
	if err := st.checkPassword(w.Password); err != nil {
		return "", err
	}
	if !w.Active && st.cfg.Disable == DisableDelete {
		return "", badRequest(mapping.ScimTypeInvalidValue, `this server deletes disabled users (inbound.disable = "delete"): a user cannot be created inactive`)
	}
	parent := k.base
	if !w.Active && st.cfg.Disable == DisableMove {
		parent = st.cfg.DisabledBaseDN
	}
	return q.addEntry(k, w.Attrs, w.Password, parent, "userName", body, st.ad && w.Active)
}

// addEntry adds a new entry of kind k named by its RDN attribute below parent, after checking
// that its name (userName, displayName) is free; sets the password and, with enable, enables
// the Active Directory account created disabled (undoing the add when either fails) and answers
// 201. A name taken by an unmarked entry in managed mode adopts that entry with body when
// inbound.adopt_existing allows it.
func (q *request) addEntry(k *kind, attrs map[string][]string, password, parent, nameField string, body map[string]any, enable bool) (string, error) {
	ctx := q.ctx()
	name := first(attrs, k.nameAttr)
	if name == "" {
		return "", badRequest(mapping.ScimTypeInvalidValue, nameField+" is required")
	}
	holders, err := q.s.nameHolders(ctx, k, name, "")
	if err != nil {
		return "", err
	}
	if len(holders) > 0 {
		return q.adoptOrConflict(k, holders, nameField, body)
	}
	if q.st.ad {
		// The account name (and a user's cn, its RDN) is derived once the name is known free.
		if err := q.adNewEntry(k, attrs, name, nameField); err != nil {
			return "", err
		}
	}
	rdnVal := first(attrs, k.rdnAttr)
	if rdnVal == "" {
		return "", badRequest(mapping.ScimTypeInvalidValue, "the attribute that names new entries in the directory has no value")
	}
	dn := ldapstore.RDN(k.rdnAttr, rdnVal) + "," + parent
	if err := q.checkTarget(dn, nameField); err != nil {
		return "", err
	}
	full := make(map[string][]string, len(attrs)+2)
	for a, v := range attrs {
		full[a] = v
	}
	full["objectClass"] = q.objectClasses(k, attrs, nil)
	k.managed.mark(full)
	if err := q.s.addFenced(ctx, k, dn, full); err != nil {
		if errors.Is(err, ldapstore.ErrAlreadyExists) {
			return "", &apiError{status: http.StatusConflict, scimType: mapping.ScimTypeUniqueness, detail: nameField + " is already in use", cause: err}
		}
		return "", err
	}
	q.s.invalidate()
	undo := func(err error) (string, error) {
		if derr := q.s.dir.Delete(context.WithoutCancel(ctx), dn); derr != nil {
			q.s.logger.Error().Err(derr).Str("dn", dn).Msg("could not remove a user whose password or enabling was refused")
		}
		return "", err
	}
	if password != "" {
		if err := q.s.dir.SetPassword(ctx, dn, password); err != nil {
			return undo(err)
		}
	}
	if enable {
		if err := q.adEnable(dn); err != nil {
			return undo(err)
		}
	}
	e, err := q.s.dir.Get(ctx, dn, q.st.readAttrs(k, true))
	if err != nil {
		return "", err
	}
	res, err := q.toResources(k, []mapping.Entry{e}, true)
	if err != nil {
		return "", err
	}
	id, _ := res[0]["id"].(string)
	attrsQ, excluded := projection(q.r.URL.Query())
	q.writeJSON(http.StatusCreated, project(res[0], attrsQ, excluded), version(res[0]), q.location(k, id))
	return id, nil
}

// replace answers PUT /Users/{id} and /Groups/{id}.
func (q *request) replace(k *kind, id string) {
	body, err := q.readJSON()
	if err == nil && !k.isUser() {
		err = q.checkMemberCount(len(memberIDsOf(body)))
	}
	if err != nil {
		q.audit(k, "replace", id, err)
		q.fail(err)
		return
	}
	err = q.update(k, id, func(mapping.Entry) (map[string]any, error) { return body, nil }, true)
	q.audit(k, "replace", id, err)
	if err != nil {
		q.fail(err)
	}
}

// patch answers PATCH /Users/{id} and /Groups/{id}.
func (q *request) patch(k *kind, id string) {
	ops, err := q.readPatch()
	if err != nil {
		q.audit(k, "patch", id, err)
		q.fail(err)
		return
	}
	if !k.isUser() {
		err = q.patchGroup(k, id, ops)
	} else {
		err = q.update(k, id, func(e mapping.Entry) (map[string]any, error) {
			cur, err := q.toResources(k, []mapping.Entry{e}, true)
			if err != nil {
				return nil, err
			}
			return mapping.ApplyPatch(cur[0], ops, q.st.umap.Schema())
		}, false)
	}
	q.audit(k, "patch", id, err)
	if err != nil {
		q.fail(err)
	}
}

// readPatch parses a PATCH body (RFC 7644 §3.5.2): the PatchOp message with its Operations,
// each path parsed with filter-parser. Op names and values are checked by mapping.
func (q *request) readPatch() ([]mapping.PatchOperation, error) {
	body, err := q.readJSON()
	if err != nil {
		return nil, err
	}
	var rawOps any
	for k, v := range body {
		switch strings.ToLower(k) {
		case "operations":
			rawOps = v
		case "schemas":
			list, ok := v.([]any)
			if !ok || !containsFold(list, "urn:ietf:params:scim:api:messages:2.0:PatchOp") {
				return nil, badRequest(mapping.ScimTypeInvalidSyntax, "schemas must be [\"urn:ietf:params:scim:api:messages:2.0:PatchOp\"]")
			}
		}
	}
	list, ok := rawOps.([]any)
	if !ok || len(list) == 0 {
		return nil, badRequest(mapping.ScimTypeInvalidSyntax, "Operations must be a non-empty list")
	}
	if len(list) > maxPatchOps {
		return nil, badRequest(mapping.ScimTypeInvalidSyntax, "too many Operations in one PATCH")
	}
	ops := make([]mapping.PatchOperation, 0, len(list))
	for i, raw := range list {
		m, ok := raw.(map[string]any)
		if !ok {
			return nil, badRequest(mapping.ScimTypeInvalidSyntax, "each operation must be an object")
		}
		var op mapping.PatchOperation
		for k, v := range m {
			switch strings.ToLower(k) {
			case "op":
				s, ok := v.(string)
				if !ok {
					return nil, badRequest(mapping.ScimTypeInvalidSyntax, "op must be a string")
				}
				op.Op = s
			case "path":
				s, ok := v.(string)
				if !ok {
					return nil, badRequest(mapping.ScimTypeInvalidPath, "path must be a string")
				}
				if strings.TrimSpace(s) == "" {
					continue
				}
				if len(s) > maxFilterLength {
					return nil, badRequest(mapping.ScimTypeInvalidPath, "path is too long")
				}
				p, err := filter.ParsePath([]byte(s))
				if err != nil {
					return nil, badRequest(mapping.ScimTypeInvalidPath, "path of operation "+strconv.Itoa(i)+" is not a valid SCIM path")
				}
				op.Path = &p
			case "value":
				op.Value = v
			}
		}
		if op.Op == "" {
			return nil, badRequest(mapping.ScimTypeInvalidSyntax, "operation "+strconv.Itoa(i)+" has no op")
		}
		ops = append(ops, op)
	}
	return ops, nil
}

// maxPatchOps bounds the operations of one PATCH.
const maxPatchOps = 1000

func containsFold(list []any, want string) bool {
	for _, x := range list {
		if s, ok := x.(string); ok && strings.EqualFold(s, want) {
			return true
		}
	}
	return false
}

// update is the read → change → asserted write cycle of PUT and PATCH. build returns the new
// resource from the entry as read. When the entry changes between the read and the write, the
// Assertion control makes the write fail: with If-Match that is a 412, without it the cycle
// runs again on the new version, so a concurrent change is never overwritten unseen.
func (q *request) update(k *kind, id string, build func(mapping.Entry) (map[string]any, error), withMembers bool) error {
	st := q.st
	if !k.isUser() {
		withMembers = true
	}
	for attempt := 1; ; attempt++ {
		e, err := q.findByID(k, id, st.readAttrs(k, withMembers))
		if err != nil {
			return err
		}
		if err := ifMatch(q.r, mapping.VersionOf(e)); err != nil {
			return err
		}
		res, err := build(e)
		if err != nil {
			return err
		}
		var (
			dn      string
			deleted bool
		)
		if k.isUser() {
			dn, deleted, err = q.writeUser(k, e, res, false)
		} else {
			dn, err = q.writeGroup(k, e, res, false)
		}
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
		if deleted {
			q.w.WriteHeader(http.StatusNoContent)
			return nil
		}
		q.respond(k, http.StatusOK, dn, withMembers)
		return nil
	}
}

// writeUser writes the user resource res over entry e. deleted is true when res disabled the
// user and the server deletes disabled users. adopt marks the entry as managed (it was not).
func (q *request) writeUser(k *kind, e mapping.Entry, res map[string]any, adopt bool) (string, bool, error) {
	ctx, st := q.ctx(), q.st
	w, err := mapping.UserToLDAP(res, st.umap, st.marker, q.idResolver(nil, st.users))
	if err != nil {
		return "", false, err
	}
	q.s.logIgnored(k.name, w.Ignored)
	if err := st.checkPassword(w.Password); err != nil {
		return "", false, err
	}
	if !w.Active && st.cfg.Disable == DisableDelete {
		if err := q.deleteEntry(k, e); err != nil {
			return "", false, err
		}
		return "", true, nil
	}
	name := first(w.Attrs, k.nameAttr)
	if name == "" {
		return "", false, badRequest(mapping.ScimTypeInvalidValue, "userName is required")
	}
	if cur := e.First(k.nameAttr); !strings.EqualFold(cur, name) {
		if err := q.nameTaken(k, name, e.DN, "userName"); err != nil {
			return "", false, err
		}
	}
	mid, err := q.s.managerIDs(ctx, q.g, []mapping.Entry{e})
	if err != nil {
		return "", false, err
	}
	changes := mapping.UserChanges(k.managed.strip(e), w, st.umap, st.marker, mid)
	k.managed.keep(changes)
	if st.ad && !strings.EqualFold(k.rdnAttr, "cn") {
		// cn is AD's naming attribute whatever the RDN of new entries says.
		dropRDN(changes, "cn")
	}
	p := &plan{entry: e, password: w.Password, assert: q.s.assertionFor(k, e), readAttrs: st.readAttrs(k, true)}
	if adopt {
		p.assert = q.s.assertion(k.scoped, e)
		p.extra = adoptChange(k, changes)
	}
	if oc := q.objectClasses(k, changes, e.Get("objectClass")); len(oc) > 0 && len(e.Get("objectClass")) > 0 {
		p.extra = append(p.extra, ldapstore.Change{Op: ldapstore.ModAdd, Attr: "objectClass", Values: oc})
	}
	parent := ""
	if st.cfg.Disable == DisableMove {
		inDisabled := ldapstore.InScope(e.DN, st.cfg.DisabledBaseDN)
		switch {
		case !w.Active && !inDisabled:
			parent = st.cfg.DisabledBaseDN
		case w.Active && inDisabled:
			parent = k.base
		}
	}
	if err := planRename(p, k, changes, parent, st.ad); err != nil {
		return "", false, err
	}
	if err := q.checkTarget(p.newDN(), "userName"); err != nil {
		return "", false, err
	}
	p.changes = append(changeList(changes), p.extra...)
	dn, err := q.s.apply(ctx, q.g, p)
	q.wrote(p)
	if err != nil && errors.Is(err, ldapstore.ErrAlreadyExists) {
		return "", false, &apiError{status: http.StatusConflict, scimType: mapping.ScimTypeUniqueness, detail: "userName is already in use", cause: err}
	}
	return dn, false, err
}

// objectClasses returns, for a new entry of kind k with attrs (current nil), its object
// classes: k's and the optional schema's auxiliary class when attrs use one of its attributes.
// For an existing entry with the object classes current, it returns only the classes to add for
// attrs (the changes of a write), usually none. A schema variant linked to the users' class
// itself (Active Directory's) needs no class on the entry.
func (q *request) objectClasses(k *kind, attrs map[string][]string, current []string) []string {
	sch := q.st.profile.Schema
	need := false
	if q.s.caps.schema && sch.AuxiliaryClass != "" && k.isUser() {
		for _, a := range sch.Attributes {
			if vals, _, ok := lookup(attrs, a); ok && len(vals) > 0 {
				need = true
			}
		}
	}
	if current == nil {
		if need {
			return append(append([]string(nil), k.objectClasses...), sch.AuxiliaryClass)
		}
		return k.objectClasses
	}
	if need && !slices.ContainsFunc(current, func(c string) bool { return strings.EqualFold(c, sch.AuxiliaryClass) }) {
		return []string{sch.AuxiliaryClass}
	}
	return nil
}

// checkPassword refuses to send a password to a directory over a connection that is neither
// TLS nor local, unless inbound.allow_cleartext_passwords says so.
func (st *state) checkPassword(pw string) error {
	if pw == "" || !st.cfg.CleartextDirectory || st.cfg.AllowCleartextPasswords {
		return nil
	}
	return badRequest(mapping.ScimTypeInvalidValue, "this server does not set passwords: its connection to the directory is not encrypted "+
		"(the administrator can use ldaps:// or ldap.start_tls, or set inbound.allow_cleartext_passwords)")
}

// delete answers DELETE /Users/{id} and /Groups/{id}.
func (q *request) delete(k *kind, id string) {
	err := q.deleteByID(k, id)
	q.audit(k, "delete", id, err)
	if err != nil {
		q.fail(err)
		return
	}
	q.w.WriteHeader(http.StatusNoContent)
}

func (q *request) deleteByID(k *kind, id string) error {
	e, err := q.findByID(k, id, q.st.readAttrs(k, false))
	if err != nil {
		return err
	}
	// Checked before the delete, not atomically with it: ldapstore's Delete takes no controls.
	if err := ifMatch(q.r, mapping.VersionOf(e)); err != nil {
		return err
	}
	return q.deleteEntry(k, e)
}

// deleteEntry deletes e and the references to it (group members, managers).
func (q *request) deleteEntry(_ *kind, e mapping.Entry) error {
	if err := q.s.dir.Delete(q.ctx(), e.DN); err != nil {
		return err
	}
	q.s.invalidate()
	q.s.rewriteReferences(q.ctx(), q.g, e.DN, "")
	return nil
}

// memberLookup is the memberID function of GroupFromLDAP and GroupChanges over resolved DNs.
func memberLookup(ids map[string]resolved) func(dn string) (string, string, bool) {
	return func(dn string) (string, string, bool) {
		r, ok := ids[ldapstore.NormalizeDN(dn)]
		if !ok || r.id == "" {
			return "", "", false
		}
		return r.id, r.kind.name, true
	}
}

// project applies attributes and excludedAttributes; without either the resource is returned
// as it is (mapping.Project would copy it).
func project(res map[string]any, attrs, excluded []string) map[string]any {
	if len(attrs) == 0 && len(excluded) == 0 {
		return res
	}
	return mapping.Project(res, attrs, excluded)
}
