package mapping

import (
	"errors"
	"fmt"
	"strings"
)

// defaultGroupAttributes are the documented defaults of [inbound.group_attributes]. members is
// special: it names the LDAP attribute holding the member DNs.
var defaultGroupAttributes = map[string]string{
	// cn is required by groupOfNames and is usually the RDN attribute: a displayName change
	// renames the entry.
	"displayName": "cn",
	// businessCategory, as for users: groupOfNames allows only businessCategory, seeAlso,
	// owner, ou, o and description besides member and cn. description is what admins use for a
	// group's description, seeAlso and owner hold DNs, ou and o mean something else.
	"externalId": "businessCategory",
	"members":    "member",
}

// DefaultGroupAttributes returns the default [inbound.group_attributes] table.
func DefaultGroupAttributes() map[string]string {
	out := make(map[string]string, len(defaultGroupAttributes))
	for k, v := range defaultGroupAttributes {
		out[k] = v
	}
	return out
}

// PlaceholderMember is the member value that keeps a group without members valid:
// groupOfNames requires at least one member, and OpenLDAP accepts the empty DN (the root DSE,
// which is no user) as one. GroupToLDAP's callers write it only into a group that has no other
// member (MemberValues), and GroupFromLDAP never returns it. A filter (member=) finds groups
// holding it.
const PlaceholderMember = ""

// IsPlaceholder reports whether a member value is PlaceholderMember.
func IsPlaceholder(dn string) bool { return strings.TrimSpace(dn) == PlaceholderMember }

// GroupMap maps the attributes of the SCIM Group resource to LDAP attributes of a groupOfNames
// (or groupOfUniqueNames) entry. Build it with NewGroupMap or DefaultGroupMap.
type GroupMap struct {
	attrMap
	members string
	// emptyGroups: a group may hold no member value (Profile.EmptyGroups).
	emptyGroups bool
}

// NewGroupMap returns the default group map (DefaultGroupAttributes) changed by overrides,
// with the custom extension schemas. Keys are SCIM attribute paths ("displayName",
// "externalId", "members", "urn:…:attr"); values LDAP attributes or "" to unmap (members
// cannot be unmapped).
func NewGroupMap(overrides map[string]string, extensions ...ExtensionSchema) (GroupMap, error) {
	return NewGroupMapFor(openLDAPProfile(), overrides, extensions...)
}

// NewGroupMapFor is NewGroupMap with the defaults of profile p (ProfileFor): its group
// attribute map, and whether a group may be empty.
func NewGroupMapFor(p Profile, overrides map[string]string, extensions ...ExtensionSchema) (GroupMap, error) {
	extSchemas, extSlots, err := extensionSlots(extensions, UserSchemaURN, EnterpriseSchemaURN, GroupSchemaURN)
	if err != nil {
		return GroupMap{}, fmt.Errorf("mapping: group_attributes: %w", err)
	}
	gm := GroupMap{attrMap: attrMap{
		table:  "group_attributes",
		schema: Schema{URN: GroupSchemaURN, Name: "Group", Attributes: coreGroupAttributes(), Extensions: extSchemas},
		slots: []slot{
			{key: "externalId", kind: slotSimple, urn: GroupSchemaURN, attr: "externalId", scimType: TypeString},
			{key: "displayName", kind: slotSimple, urn: GroupSchemaURN, attr: "displayName", scimType: TypeString},
		},
	}}
	gm.slots = append(gm.slots, extSlots...)
	for k, v := range p.GroupAttributes {
		if k == "members" {
			gm.members = v
			continue
		}
		i := gm.find(k)
		if i < 0 {
			return GroupMap{}, fmt.Errorf("mapping: profile %s: %q is not a default-mappable group attribute", p.Dialect, k)
		}
		gm.slots[i].ldap = v
	}
	gm.emptyGroups = p.EmptyGroups
	var errs []error
	for _, k := range sortedKeys(overrides) {
		v := overrides[k]
		if strings.EqualFold(k, "members") || strings.EqualFold(k, GroupSchemaURN+":members") {
			if err := checkLDAPName(v); err != nil || v == "" {
				errs = append(errs, fmt.Errorf("group_attributes: %q: members needs the LDAP attribute holding member DNs, e.g. member or uniqueMember", k))
				continue
			}
			gm.members = v
			continue
		}
		if err := gm.apply(k, v); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return GroupMap{}, fmt.Errorf("mapping: %w", err)
	}
	if err := gm.checkConflicts(map[string]string{strings.ToLower(gm.members): "members"}); err != nil {
		return GroupMap{}, fmt.Errorf("mapping: %w", err)
	}
	return gm, nil
}

// DefaultGroupMap returns the group map of DefaultGroupAttributes.
func DefaultGroupMap() GroupMap {
	gm, err := NewGroupMap(nil)
	if err != nil {
		panic(err) // The defaults are constant and covered by tests.
	}
	return gm
}

// MemberAttr is the LDAP attribute holding the member DNs.
func (gm GroupMap) MemberAttr() string { return gm.members }

// SearchAttributes returns the LDAP attributes to request when reading groups; the member
// attribute only withMembers (leave it out for excludedAttributes=members on huge groups).
func (gm GroupMap) SearchAttributes(idAttr string, withMembers bool) []string {
	extra := []string{ldapCN, idAttr, "entryCSN", "createTimestamp", "modifyTimestamp"}
	if withMembers {
		extra = append(extra, gm.members)
	}
	return gm.ldapAttrs(extra...)
}

// MemberValues returns the values to store in the member attribute for these member DNs:
// the DNs; when there are none, nothing where groups may be empty, else PlaceholderMember
// alone.
func (gm GroupMap) MemberValues(dns []string) []string {
	if len(dns) == 0 {
		if gm.emptyGroups {
			return []string{}
		}
		return []string{PlaceholderMember}
	}
	return dns
}

// EmptyGroups reports whether a group may hold no member value (no placeholder needed).
func (gm GroupMap) EmptyGroups() bool { return gm.emptyGroups }

// GroupWrite is what a SCIM Group resource becomes in the directory.
type GroupWrite struct {
	// Attrs are the group's LDAP attributes except the members: cn always. objectClass is the
	// caller's.
	Attrs map[string][]string
	// MemberDNs are the DNs of the members, deduplicated, in the order sent. Write them as
	// gm.MemberValues(MemberDNs) into gm.MemberAttr().
	MemberDNs []string
	// Ignored are the SCIM attribute paths the client sent values for that have no LDAP
	// mapping, sorted.
	Ignored []string
}

// GroupToLDAP converts a SCIM Group resource into LDAP attributes. resolveMember turns a
// member's id (a user's or a group's) into its DN: ("", nil) for an unknown id, which is an
// invalidValue error; an error it returns is passed on wrapped. When displayName is not
// mapped to cn, cn is displayName all the same (groupOfNames requires it).
func GroupToLDAP(res map[string]any, gm GroupMap, resolveMember func(id string) (dn string, err error)) (GroupWrite, error) {
	c, p := gm.schema.canonicalProblems(res, false)
	w, pw, err := gm.write(c, resolveMember)
	if err != nil {
		return GroupWrite{}, err
	}
	p.merge(pw)
	if err := p.err(); err != nil {
		return GroupWrite{}, err
	}
	return w, nil
}

func (gm GroupMap) write(c map[string]any, resolveMember func(string) (string, error)) (GroupWrite, *problems, error) {
	var p problems
	attrs := attrSet{}
	ignored := map[string]bool{}
	displayName, _ := c["displayName"].(string)
	if strings.TrimSpace(displayName) == "" {
		p.add(ScimTypeInvalidValue, "displayName is required")
	}
	for _, s := range gm.slots {
		var v any
		var ok bool
		if s.kind == slotSimple {
			v, ok = c[s.attr]
		} else {
			ext, _ := c[s.urn].(map[string]any)
			v, ok = ext[s.attr]
		}
		if !ok {
			continue
		}
		if s.ldap == "" {
			ignored[s.key] = true
			continue
		}
		for _, item := range asList(v) {
			lv, e := toLDAP(item, s.scimType, s.ldap, s.key)
			if e != nil {
				p.addErr(e)
				continue
			}
			if lv != "" {
				attrs.add(s.ldap, lv)
			}
		}
	}
	for k, vals := range attrs {
		attrs[k] = dedupe(k, vals)
	}
	if len(attrs.get(ldapCN)) == 0 && strings.TrimSpace(displayName) != "" {
		attrs.set(ldapCN, []string{strings.TrimSpace(displayName)})
	}
	w := GroupWrite{Attrs: attrs}
	members, _ := c["members"].([]any)
	seen := map[string]bool{}
	for _, item := range members {
		el, _ := item.(map[string]any)
		id, _ := el["value"].(string)
		if strings.TrimSpace(id) == "" {
			p.add(ScimTypeInvalidValue, "members: every member needs a value (the member's id)")
			continue
		}
		if resolveMember == nil {
			ignored["members"] = true
			continue
		}
		dn, err := resolveMember(id)
		if err != nil {
			return GroupWrite{}, nil, fmt.Errorf("mapping: resolve member: %w", err)
		}
		if dn == "" {
			p.add(ScimTypeInvalidValue, "members: no user or group has the id %q", id)
			continue
		}
		if k := normDN(dn); !seen[k] {
			seen[k] = true
			w.MemberDNs = append(w.MemberDNs, dn)
		}
	}
	w.Ignored = sortedKeys(ignored)
	return w, &p, nil
}

// GroupFromLDAP converts a group entry into a SCIM Group resource (JSON-shaped). memberID
// turns a member DN into the member's id and type ("User" or "Group"); ok is false for a DN
// that is no user or group the SCIM side can see, which is left out. With memberID nil, or
// when e was read without the member attribute, members is left out.
func GroupFromLDAP(e Entry, gm GroupMap, idAttr string, memberID func(dn string) (id, typ string, ok bool)) map[string]any {
	res := map[string]any{"schemas": []any{GroupSchemaURN}}
	if idAttr != "" {
		if id := e.First(idAttr); id != "" {
			res["id"] = id
		}
	}
	for _, s := range gm.slots {
		if s.ldap == "" {
			continue
		}
		var vals []any
		for _, v := range e.Get(s.ldap) {
			if cv, ok := fromLDAP(v, s.scimType, s.ldap); ok {
				vals = append(vals, cv)
			}
		}
		if len(vals) == 0 {
			continue
		}
		v := any(vals[0])
		if s.multi {
			v = vals
		}
		if s.kind == slotSimple {
			res[s.attr] = v
			continue
		}
		obj, _ := res[s.urn].(map[string]any)
		if obj == nil {
			obj = map[string]any{}
			res[s.urn] = obj
		}
		obj[s.attr] = v
	}
	if _, ok := res["displayName"]; !ok {
		if cn := e.First(ldapCN); cn != "" {
			res["displayName"] = cn
		}
	}
	if memberID != nil {
		var members []any
		for _, dn := range e.Get(gm.members) {
			if IsPlaceholder(dn) {
				continue
			}
			id, typ, ok := memberID(dn)
			if !ok {
				continue
			}
			m := map[string]any{"value": id}
			if typ != "" {
				m["type"] = typ
			}
			members = append(members, m)
		}
		if len(members) > 0 {
			res["members"] = members
		}
	}
	schemas := res["schemas"].([]any)
	for _, x := range gm.schema.Extensions {
		if _, ok := res[x.URN]; ok {
			schemas = append(schemas, x.URN)
		}
	}
	res["schemas"] = schemas
	res["meta"] = meta(e, "Group")
	return res
}

// GroupChanges returns the Modify that turns group entry e (read with its member attribute)
// into the group written as w: LDAP attribute → all its new values, an empty list meaning
// "delete". Attributes whose SCIM meaning does not change are left alone. The member attribute
// is included when the set of members the client can see changes (DNs compared
// case-insensitively); it then holds w's members, the members memberID does not know (DNs the
// SCIM side cannot see, which it must not remove), and PlaceholderMember when that is nothing.
func GroupChanges(e Entry, w GroupWrite, gm GroupMap, memberID func(dn string) (id, typ string, ok bool)) map[string][]string {
	current := GroupFromLDAP(e, gm, "", nil)
	rt, _, _ := gm.write(current, nil) // Without a resolver write cannot fail.
	want, was := attrSet(w.Attrs), attrSet(rt.Attrs)
	out := map[string][]string{}
	for _, attr := range gm.ldapAttrs(ldapCN) {
		if d := want.get(attr); !equalValues(attr, d, was.get(attr)) {
			out[attr] = nonNil(d)
		}
	}
	visible := map[string]bool{}
	var hidden []string
	for _, dn := range e.Get(gm.members) {
		if IsPlaceholder(dn) {
			continue
		}
		if memberID != nil {
			if _, _, ok := memberID(dn); !ok {
				hidden = append(hidden, dn)
				continue
			}
		}
		visible[normDN(dn)] = true
	}
	same := len(e.Get(gm.members)) > 0 || gm.emptyGroups
	next := map[string]bool{}
	for _, dn := range w.MemberDNs {
		k := normDN(dn)
		next[k] = true
		if !visible[k] {
			same = false
		}
	}
	if len(next) != len(visible) {
		same = false
	}
	if !same {
		out[gm.members] = gm.MemberValues(append(hidden, w.MemberDNs...))
	}
	return out
}
