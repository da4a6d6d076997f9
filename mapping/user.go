package mapping

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"time"
)

// UserWrite is what a SCIM User resource becomes in the directory.
type UserWrite struct {
	// Attrs are the LDAP attributes of the user, ready for an Add: every mapped attribute that
	// has values, cn and sn always, and the active marker of a disabled user. objectClass is
	// the caller's.
	Attrs map[string][]string
	// Active is the requested state (true when the resource does not say).
	Active bool
	// Password is the requested password, "" when none was sent. It is never part of Attrs:
	// the caller sets it with the directory's password mechanism (Password Modify).
	Password string
	// Ignored are the SCIM attribute paths the client sent values for that have no LDAP
	// mapping, sorted; the caller logs each name once.
	Ignored []string
	// derived names cn and sn when their value was derived because the resource did not carry
	// the attribute they hold (name.formatted, name.familyName): UserChanges keeps a stored
	// value the client did not send instead of deriving it again.
	derived map[string]bool
}

// UserToLDAP converts a SCIM User resource (JSON-shaped, as a client sent it) into LDAP
// attributes.
//
// resolveManager turns the manager's SCIM id into its DN: it returns ("", nil) for an unknown
// id, which is an invalidValue error, and any error it returns is passed on wrapped. It may be
// nil when managers are not resolved; a manager is then reported in Ignored.
//
// When the client sends no name.formatted (or it is not mapped to cn), cn is derived from
// name.formatted, displayName, "givenName familyName" or userName, the first that is set;
// when it sends no familyName, sn is userName. Both are required by inetOrgPerson. A stored
// value equal to its derivation is hidden again by UserFromLDAP, and UserChanges never
// derives again a value the client did not send.
//
// Errors are *Error: invalidSyntax for attribute names in no schema of the resource,
// invalidValue for values of the wrong type, values the directory's syntax refuses and a
// missing userName; all problems of the resource are reported at once.
func UserToLDAP(res map[string]any, m UserMap, marker ActiveMarker, resolveManager func(id string) (dn string, err error)) (UserWrite, error) {
	c, p := m.schema.canonicalProblems(res, false)
	w, pw, err := m.write(c, marker, resolveManager)
	if err != nil {
		return UserWrite{}, err
	}
	p.merge(pw)
	if err := p.err(); err != nil {
		return UserWrite{}, err
	}
	return w, nil
}

// attrSet collects LDAP attribute values, with case-insensitive attribute names.
type attrSet map[string][]string

func (a attrSet) key(name string) string {
	if _, ok := a[name]; ok {
		return name
	}
	for k := range a {
		if strings.EqualFold(k, name) {
			return k
		}
	}
	return name
}

func (a attrSet) add(name string, vals ...string) {
	k := a.key(name)
	a[k] = append(a[k], vals...)
}

func (a attrSet) get(name string) []string { return a[a.key(name)] }

func (a attrSet) set(name string, vals []string) {
	k := a.key(name)
	if len(vals) == 0 {
		delete(a, k)
		return
	}
	a[k] = vals
}

// write converts a canonical User resource. Request problems go to the returned problems, so
// that the round trip of UserChanges can use a partial result; the error is only a resolver's.
func (m UserMap) write(c map[string]any, marker ActiveMarker, resolveManager func(string) (string, error)) (UserWrite, *problems, error) {
	var p problems
	attrs := attrSet{}
	ignored := map[string]bool{}
	w := UserWrite{Active: true}

	userName, _ := c["userName"].(string)
	if strings.TrimSpace(userName) == "" {
		p.add(ScimTypeInvalidValue, "userName is required")
	}
	if active, ok := c["active"].(bool); ok {
		w.Active = active
	}
	if pw, ok := c["password"].(string); ok {
		w.Password = pw
	}
	store := func(s slot, v any) {
		if s.ldap == "" {
			ignored[s.key] = true
			return
		}
		lv, e := toLDAP(v, s.scimType, s.ldap, s.key)
		if e != nil {
			p.addErr(e)
			return
		}
		if lv != "" {
			attrs.add(s.ldap, lv)
		}
	}
	for _, s := range m.slots {
		switch s.kind {
		case slotSimple:
			if v, ok := c[s.attr]; ok {
				store(s, v)
			}
		case slotSub:
			if obj, ok := c[s.attr].(map[string]any); ok {
				if v, ok := obj[s.sub]; ok {
					store(s, v)
				}
			}
		case slotExt:
			ext, _ := c[s.urn].(map[string]any)
			v, ok := ext[s.attr]
			if !ok {
				continue
			}
			for _, item := range asList(v) {
				store(s, item)
			}
		case slotManager:
			ext, _ := c[s.urn].(map[string]any)
			mgr, _ := ext[s.attr].(map[string]any)
			id, _ := mgr["value"].(string)
			if strings.TrimSpace(id) == "" {
				continue
			}
			if s.ldap == "" || resolveManager == nil {
				ignored[s.key] = true
				continue
			}
			dn, err := resolveManager(id)
			if err != nil {
				return UserWrite{}, nil, fmt.Errorf("mapping: resolve manager: %w", err)
			}
			if dn == "" {
				p.add(ScimTypeInvalidValue, "%s: no user has the id given as manager", s.key)
				continue
			}
			attrs.add(s.ldap, dn)
		}
	}
	for _, ta := range typedAttrs {
		m.writeTyped(c, ta, attrs, ignored, &p)
	}
	for _, name := range []string{"entitlements", "roles", "x509Certificates"} {
		if _, ok := c[name]; ok {
			ignored[name] = true
		}
	}

	for k, vals := range attrs {
		attrs[k] = dedupe(k, vals)
	}
	if marker.Attr != "" {
		attrs.set(marker.Attr, marker.markerValues(attrs.get(marker.Attr), w.Active))
	}
	if marker.LockAttr != "" {
		attrs.set(marker.LockAttr, marker.lockValues(nil, w.Active))
	}
	if len(attrs.get(ldapCN)) == 0 && m.deriveNames {
		if cn, _ := deriveCN(c, userName); cn != "" {
			attrs.set(ldapCN, []string{cn})
			w.derived = map[string]bool{ldapCN: true}
		}
	}
	if len(attrs.get(ldapSN)) == 0 && m.deriveNames {
		if sn := deriveSN(c, userName); sn != "" {
			attrs.set(ldapSN, []string{sn})
			if w.derived == nil {
				w.derived = map[string]bool{}
			}
			w.derived[ldapSN] = true
		}
	}
	w.Attrs = attrs
	w.Ignored = sortedKeys(ignored)
	return w, &p, nil
}

func nameField(c map[string]any, sub string) string {
	name, _ := c["name"].(map[string]any)
	s, _ := name[sub].(string)
	return strings.TrimSpace(s)
}

// deriveCN is the cn of a resource that does not map a value to cn: name.formatted,
// displayName, "givenName familyName" or userName, the first that is set. fromUserName is
// true when it had to fall back to userName.
func deriveCN(c map[string]any, userName string) (cn string, fromUserName bool) {
	if f := nameField(c, "formatted"); f != "" {
		return f, false
	}
	if d, _ := c["displayName"].(string); strings.TrimSpace(d) != "" {
		return strings.TrimSpace(d), false
	}
	if g := strings.TrimSpace(nameField(c, "givenName") + " " + nameField(c, "familyName")); g != "" {
		return g, false
	}
	return strings.TrimSpace(userName), true
}

func deriveSN(c map[string]any, userName string) string {
	if f := nameField(c, "familyName"); f != "" {
		return f
	}
	return strings.TrimSpace(userName)
}

// writeTyped stores the elements of one multi-valued typed attribute (emails, addresses, …).
// Primary elements go first, so that the primary value is the attribute's first value.
func (m UserMap) writeTyped(c map[string]any, ta typedAttr, attrs attrSet, ignored map[string]bool, p *problems) {
	list, _ := c[ta.name].([]any)
	elems := make([]map[string]any, 0, len(list))
	for _, item := range list {
		if el, ok := item.(map[string]any); ok {
			elems = append(elems, el)
		}
	}
	sort.SliceStable(elems, func(i, j int) bool {
		pi, _ := elems[i]["primary"].(bool)
		pj, _ := elems[j]["primary"].(bool)
		return pi && !pj
	})
	perElement := len(ta.subs) > 1 // addresses: one element per type, each sub in its own attribute
	seenType := map[string]bool{}
	for _, el := range elems {
		typ, _ := el["type"].(string)
		typ = strings.ToLower(strings.TrimSpace(typ))
		untyped := typ == ""
		if untyped {
			typ = fallbackType
		}
		for _, sub := range ta.subs {
			v, ok := el[sub]
			if !ok {
				continue
			}
			s, found := m.typedSlot(ta.name, typ, sub)
			if (!found || s.ldap == "") && (untyped || ta.fallbackAll) {
				s, found = m.typedSlot(ta.name, fallbackType, sub)
			}
			key := typedKey(ta.name, typ, sub)
			if !found || s.ldap == "" || (perElement && seenType[typ]) {
				ignored[key] = true
				continue
			}
			lv, e := toLDAP(v, TypeString, s.ldap, key)
			if e != nil {
				p.addErr(e)
				continue
			}
			if lv != "" {
				attrs.add(s.ldap, lv)
			}
		}
		seenType[typ] = true
	}
}

func (m UserMap) typedSlot(attr, typ, sub string) (slot, bool) {
	if m.typed != nil {
		s, ok := m.typed.slots[[3]string{attr, typ, sub}]
		return s, ok
	}
	for _, s := range m.slots {
		if s.kind == slotTyped && s.attr == attr && s.typ == typ && s.sub == sub {
			return s, true
		}
	}
	return slot{}, false
}

// UserFromLDAP converts a directory entry into a SCIM User resource (JSON-shaped): id (from
// idAttr), every mapped attribute that has values, active, the enterprise and custom extension
// objects under their URNs, schemas listing the URNs present, and meta (resourceType, created
// and lastModified from createTimestamp and modifyTimestamp, version from VersionOf).
// meta.location is the caller's, which knows the base URL.
//
// managerID turns the manager's DN into its SCIM id; it returns "" for a DN that is not a user
// the SCIM side can see, and the manager is then left out. With managerID nil the manager is
// always left out.
//
// E-mail addresses come back with their type; the first one of the first type present is
// primary. The marker value is never returned as a value of an attribute that shares the
// marker's LDAP attribute (for instance userType mapped to employeeType).
func UserFromLDAP(e Entry, m UserMap, marker ActiveMarker, idAttr string, managerID func(dn string) string) map[string]any {
	res := map[string]any{}
	if idAttr != "" {
		if id := e.First(idAttr); id != "" {
			res["id"] = id
		}
	}
	read := func(s slot) []any {
		vals := e.Get(s.ldap)
		if marker.onAttr(s.ldap) {
			vals = marker.withoutMarker(vals)
		}
		var out []any
		for _, v := range vals {
			if cv, ok := fromLDAP(v, s.scimType, s.ldap); ok {
				out = append(out, cv)
			}
		}
		return out
	}
	ext := func(urn string) map[string]any {
		obj, ok := res[urn].(map[string]any)
		if !ok {
			obj = map[string]any{}
			res[urn] = obj
		}
		return obj
	}
	for _, s := range m.slots {
		if s.ldap == "" {
			continue
		}
		switch s.kind {
		case slotSimple:
			if vals := read(s); len(vals) > 0 {
				res[s.attr] = vals[0]
			}
		case slotSub:
			if vals := read(s); len(vals) > 0 {
				obj, _ := res[s.attr].(map[string]any)
				if obj == nil {
					obj = map[string]any{}
					res[s.attr] = obj
				}
				obj[s.sub] = vals[0]
			}
		case slotExt:
			vals := read(s)
			switch {
			case len(vals) == 0:
			case s.multi:
				ext(s.urn)[s.attr] = vals
			default:
				ext(s.urn)[s.attr] = vals[0]
			}
		case slotManager:
			dn := e.First(s.ldap)
			if dn == "" || managerID == nil {
				continue
			}
			if id := managerID(dn); id != "" {
				ext(s.urn)[s.attr] = map[string]any{"value": id}
			}
		}
	}
	for _, ta := range typedAttrs {
		if elems := m.readTyped(e, ta, marker); len(elems) > 0 {
			res[ta.name] = elems
		}
	}
	if m.deriveNames {
		// Only a directory whose entries get derived names (inetOrgPerson's cn and sn) has
		// values to hide; on AD everything read was sent.
		hideDerived(res)
	}
	res["active"] = marker.Active(e)
	schemas := []any{UserSchemaURN}
	for _, x := range m.schema.Extensions {
		if _, ok := res[x.URN]; ok {
			schemas = append(schemas, x.URN)
		}
	}
	res["schemas"] = schemas
	res["meta"] = meta(e, "User")
	return res
}

// hideDerived removes from a resource read from the directory the name parts whose value is
// what UserToLDAP derives from userName alone when they are not sent (inetOrgPerson requires
// cn and sn): name.familyName equal to userName, and name.formatted equal to userName when the
// resource has nothing else cn would be derived from (displayName, given or family name). A
// value derived from other attributes is shown: it reads back what the client can see
// elsewhere. Hiding is only what is shown; UserChanges never derives a stored value again.
func hideDerived(res map[string]any) {
	name, ok := res["name"].(map[string]any)
	if !ok {
		return
	}
	userName, _ := res["userName"].(string)
	// familyName first: cn was derived from what the client sent, which did not include a
	// derived familyName.
	if f, _ := name["familyName"].(string); f != "" {
		if f == deriveSN(withoutName(res, "familyName"), userName) {
			delete(name, "familyName")
		}
	}
	if f, _ := name["formatted"].(string); f != "" {
		if cn, fromUserName := deriveCN(withoutName(res, "formatted"), userName); fromUserName && f == cn {
			delete(name, "formatted")
		}
	}
	if len(name) == 0 {
		delete(res, "name")
	}
}

// withoutName is res (shallowly) without the name sub-attribute sub.
func withoutName(res map[string]any, sub string) map[string]any {
	out := make(map[string]any, len(res))
	for k, v := range res {
		out[k] = v
	}
	if name, ok := res["name"].(map[string]any); ok {
		n := make(map[string]any, len(name))
		for k, v := range name {
			if k != sub {
				n[k] = v
			}
		}
		out["name"] = n
	}
	return out
}

// readTyped reads the elements of one typed attribute, each LDAP value once (the first type
// whose attribute holds it claims it).
func (m UserMap) readTyped(e Entry, ta typedAttr, marker ActiveMarker) []any {
	var elems []any
	var seen map[string]bool // made when a value is first found
	for _, typ := range m.typesOf(ta) {
		var el map[string]any // made when a sub-attribute is first found
		for _, sub := range ta.subs {
			s, ok := m.typedSlot(ta.name, typ, sub)
			if !ok || s.ldap == "" {
				continue
			}
			vals := e.Get(s.ldap)
			if marker.onAttr(s.ldap) {
				vals = marker.withoutMarker(vals)
			}
			if len(ta.subs) > 1 {
				if len(vals) > 0 {
					v, _ := fromLDAP(vals[0], TypeString, s.ldap)
					if el == nil {
						el = map[string]any{}
					}
					el[sub] = v
				}
				continue
			}
			if len(vals) > 0 && seen == nil {
				seen = map[string]bool{}
			}
			for _, v := range vals {
				k := strings.ToLower(s.ldap) + "\x00" + valueKey(s.ldap, v)
				if seen[k] {
					continue
				}
				seen[k] = true
				elems = append(elems, map[string]any{sub: v, "type": typ})
			}
		}
		if len(el) > 0 {
			el["type"] = typ
			elems = append(elems, el)
		}
	}
	// The primary work address is stored first; no other type carries "primary".
	if ta.name == "emails" && len(elems) > 0 && elems[0].(map[string]any)["type"] == fallbackType {
		elems[0].(map[string]any)["primary"] = true
	}
	return elems
}

// typesOf returns the types of ta that have slots: canonical types first, then configured ones.
func (m UserMap) typesOf(ta typedAttr) []string {
	if m.typed != nil {
		return m.typed.types[ta.name]
	}
	var out []string
	seen := map[string]bool{}
	for _, s := range m.slots {
		if s.kind == slotTyped && s.attr == ta.name && !seen[s.typ] {
			seen[s.typ] = true
			out = append(out, s.typ)
		}
	}
	return out
}

// meta builds the meta attribute of a resource read from e.
func meta(e Entry, resourceType string) map[string]any {
	out := map[string]any{"resourceType": resourceType, "version": VersionOf(e)}
	if t, err := ParseGeneralizedTime(e.First("createTimestamp")); err == nil {
		out["created"] = t.Format(time.RFC3339Nano)
	}
	if t, err := ParseGeneralizedTime(e.First("modifyTimestamp")); err == nil {
		out["lastModified"] = t.Format(time.RFC3339Nano)
	}
	return out
}

// VersionOf returns the weak ETag of an entry, for meta.version and If-Match: W/"<entryCSN>"
// when the entry carries entryCSN (OpenLDAP; the caller must request it, it is operational),
// else a hash of the DN and every attribute value read (which includes modifyTimestamp when
// requested; alone it would be too coarse, it has one-second resolution). The hash form
// depends on the attributes requested: read entries with the same attribute list every time.
func VersionOf(e Entry) string {
	if csn := e.First("entryCSN"); csn != "" && etagSafe(csn) {
		return `W/"` + csn + `"`
	}
	h := sha256.New()
	h.Write([]byte(strings.ToLower(e.DN)))
	names := e.Names()
	sort.Slice(names, func(i, j int) bool { return strings.ToLower(names[i]) < strings.ToLower(names[j]) })
	for _, n := range names {
		vals := append([]string(nil), e.Attrs[n]...)
		sort.Strings(vals)
		fmt.Fprintf(h, "\x00%s", strings.ToLower(n))
		for _, v := range vals {
			fmt.Fprintf(h, "\x01%d:%s", len(v), v)
		}
	}
	return `W/"` + hex.EncodeToString(h.Sum(nil)[:16]) + `"`
}

// etagSafe reports whether s can appear inside a quoted entity-tag (RFC 9110 §8.8.3).
func etagSafe(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c == '"' || c == 0x7f {
			return false
		}
	}
	return true
}

// UserChanges returns the Modify that turns entry e into the user written as w: LDAP attribute
// → all its new values, an empty list meaning "delete the attribute". It contains only the
// attributes whose SCIM meaning changes: e is converted to SCIM and back first (with managerID,
// as the client saw it), so values the SCIM view does not show — a second title, a manager
// the SCIM side cannot see — are kept unless the attribute itself changes. DN values compare
// case-insensitively. The marker's attribute keeps its other values when it is not mapped, and
// a ppolicy lockout is kept when the user stays or becomes active. Nothing is returned for a
// no-op.
func UserChanges(e Entry, w UserWrite, m UserMap, marker ActiveMarker, managerID func(dn string) string) map[string][]string {
	mgrDN := ""
	if s, ok := m.slotByKey(EnterpriseSchemaURN + ":manager"); ok && s.ldap != "" {
		mgrDN = e.First(s.ldap)
	}
	visible := ""
	if mgrDN != "" && managerID != nil {
		visible = managerID(mgrDN)
	}
	current := UserFromLDAP(e, m, marker, "", func(string) string { return visible })
	// Only a resolver fails write, and this one does not; request problems of the current
	// entry (say, one without uid) do not matter here: what could be converted is compared.
	rt, _, _ := m.write(current, marker, func(string) (string, error) { return mgrDN, nil })
	want := attrSet(w.Attrs)
	was := attrSet(rt.Attrs)
	out := map[string][]string{}
	markerMapped := false
	for _, attr := range m.ldapAttrs(ldapCN, ldapSN) {
		if marker.onAttr(attr) {
			markerMapped = true
		}
		if keepDerived(attr, w, rt) {
			continue
		}
		if d := want.get(attr); !equalValues(attr, d, was.get(attr)) {
			out[attr] = nonNil(d)
		}
	}
	if marker.Attr != "" && !markerMapped {
		cur := e.Get(marker.Attr)
		if d := marker.markerValues(cur, w.Active); !equalValues(marker.Attr, d, cur) {
			out[marker.Attr] = nonNil(d)
		}
	}
	if marker.LockAttr != "" {
		cur := e.Get(marker.LockAttr)
		if d := marker.lockValues(cur, w.Active); !equalValues(marker.LockAttr, d, cur) {
			out[marker.LockAttr] = nonNil(d)
		}
	}
	return out
}

// keepDerived reports whether the stored value of attr (cn or sn) stays as it is: the new
// resource w does not carry the attribute it holds, and neither did the entry as the client
// saw it (rt, its round trip), so both sides would only derive it. A PATCH of userName alone
// then leaves sn alone, whatever it holds. When the client drops a name part it could see,
// the value is derived again.
func keepDerived(attr string, w, rt UserWrite) bool {
	for _, a := range []string{ldapCN, ldapSN} {
		if strings.EqualFold(attr, a) {
			return w.derived[a] && rt.derived[a]
		}
	}
	return false
}

// equalValues compares two value lists of attr in order: exactly, except DNs, which compare
// case-insensitively (a case change of any other value is a change the client asked for).
func equalValues(attr string, a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	dn := ldapInfo(attr).syn == synDN
	for i := range a {
		if a[i] != b[i] && (!dn || normDN(a[i]) != normDN(b[i])) {
			return false
		}
	}
	return true
}

func nonNil(v []string) []string {
	if v == nil {
		return []string{}
	}
	return v
}
