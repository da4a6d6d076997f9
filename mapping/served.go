package mapping

import (
	"slices"
	"strings"
)

// ServedSchema returns the User schema as /Schemas serves it: exactly what this map stores.
// Attributes without a mapping (nickName, groups, entitlements, …) are left out although they
// are accepted and ignored on writes; so are the sub-attributes nothing stores (display, the
// primary of phone numbers and addresses) and unmapped extension attributes. The types of
// emails, phoneNumbers, addresses … are listed as canonicalValues: only those are stored.
// id, meta, active and password are always there.
func (m UserMap) ServedSchema() Schema {
	mapped := map[string]bool{}          // simple core attributes
	subs := map[string]map[string]bool{} // complex attribute → stored sub-attributes
	types := map[string][]string{}       // typed attribute → stored types, in slot order
	ext := map[string]map[string]bool{}  // extension URN → stored attributes
	addSub := func(attr, sub string) {
		if subs[attr] == nil {
			subs[attr] = map[string]bool{}
		}
		subs[attr][sub] = true
	}
	for _, s := range m.slots {
		if s.ldap == "" {
			continue
		}
		switch s.kind {
		case slotSimple:
			mapped[s.attr] = true
		case slotSub:
			addSub(s.attr, s.sub)
		case slotTyped:
			addSub(s.attr, s.sub)
			if !slices.Contains(types[s.attr], s.typ) {
				types[s.attr] = append(types[s.attr], s.typ)
			}
		case slotExt, slotManager:
			if ext[s.urn] == nil {
				ext[s.urn] = map[string]bool{}
			}
			ext[s.urn][s.attr] = true
		}
	}
	out := m.schema
	out.Attributes = nil
	for _, a := range m.schema.Attributes {
		switch a.Name {
		case "id", "meta", "active", "password", "userName":
			out.Attributes = append(out.Attributes, a)
			continue
		case "groups", "entitlements", "roles", "x509Certificates":
			continue
		}
		switch {
		case a.Type == TypeComplex && a.MultiValued:
			if len(types[a.Name]) == 0 {
				continue
			}
			a.SubAttributes = keepSubs(a.SubAttributes, func(sa Attribute) bool {
				switch sa.Name {
				case "type":
					return true
				case "primary":
					// The primary e-mail address is the first value of mail; nothing else
					// stores "primary".
					return a.Name == "emails"
				}
				return subs[a.Name][sa.Name]
			})
			for i, sa := range a.SubAttributes {
				if sa.Name == "type" {
					a.SubAttributes[i].CanonicalValues = append([]string(nil), types[a.Name]...)
				}
			}
		case a.Type == TypeComplex:
			if len(subs[a.Name]) == 0 {
				continue
			}
			a.SubAttributes = keepSubs(a.SubAttributes, func(sa Attribute) bool { return subs[a.Name][sa.Name] })
		default:
			if !mapped[a.Name] {
				continue
			}
		}
		out.Attributes = append(out.Attributes, a)
	}
	out.Extensions = nil
	for _, x := range m.schema.Extensions {
		stored := ext[x.URN]
		if len(stored) == 0 {
			continue
		}
		y := x
		y.Attributes = nil
		for _, a := range x.Attributes {
			if !stored[a.Name] {
				continue
			}
			if a.Name == "manager" && strings.EqualFold(x.URN, EnterpriseSchemaURN) {
				// Only the manager's id is stored (as its DN) and returned.
				a.SubAttributes = keepSubs(a.SubAttributes, func(sa Attribute) bool { return sa.Name == "value" })
			}
			y.Attributes = append(y.Attributes, a)
		}
		out.Extensions = append(out.Extensions, y)
	}
	return out
}

// ServedSchema returns the Group schema as /Schemas serves it: id, meta, displayName, the
// mapped attributes, and members with what a member is returned with (value and type).
func (gm GroupMap) ServedSchema() Schema {
	mapped := map[string]bool{}
	for _, s := range gm.slots {
		if s.ldap != "" {
			mapped[s.urn+":"+s.attr] = true
		}
	}
	out := gm.schema
	out.Attributes = nil
	for _, a := range gm.schema.Attributes {
		switch a.Name {
		case "id", "meta", "displayName":
		case "members":
			a.SubAttributes = keepSubs(a.SubAttributes, func(sa Attribute) bool { return sa.Name == "value" || sa.Name == "type" })
		default:
			if !mapped[gm.schema.URN+":"+a.Name] {
				continue
			}
		}
		out.Attributes = append(out.Attributes, a)
	}
	out.Extensions = nil
	for _, x := range gm.schema.Extensions {
		y := x
		y.Attributes = nil
		for _, a := range x.Attributes {
			if mapped[x.URN+":"+a.Name] {
				y.Attributes = append(y.Attributes, a)
			}
		}
		if len(y.Attributes) > 0 {
			out.Extensions = append(out.Extensions, y)
		}
	}
	return out
}

func keepSubs(subs []Attribute, keep func(Attribute) bool) []Attribute {
	var out []Attribute
	for _, sa := range subs {
		if keep(sa) {
			out = append(out, sa)
		}
	}
	return out
}
