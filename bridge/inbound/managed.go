package inbound

import (
	"strings"

	"github.com/scimbridge/scimbridge/ldapstore"
	"github.com/scimbridge/scimbridge/mapping"
)

// managedValue is the value that marks an entry the bridge created (or adopted) in managed
// mode.
const managedValue = "scimbridge:managed"

// managedMarker is the value the bridge owns on the entries it manages: attr holds value among
// whatever else the attribute holds. No attribute mapping reads it, writes it or clears it:
// entries are shown without it, and a write that replaces attr keeps it.
type managedMarker struct {
	attr, value string
}

func (m managedMarker) on() bool { return m.attr != "" }

// filter is the LDAP clause that selects marked entries ("" when off).
func (m managedMarker) filter() string {
	if !m.on() {
		return ""
	}
	return ldapstore.RenderFilter(mapping.LDAPFilter{Op: mapping.FilterEqual, Attr: m.attr, Value: m.value})
}

// defaultManagedMarker is the per-dialect marker: a value in a multi-valued attribute the
// object classes allow and that nothing else of the bridge uses as a whole. Users carry it in
// employeeType (next to the disabled marker's own value), groups in businessCategory (next to
// externalId) — inetOrgPerson and groupOfNames share no free attribute. On Active Directory,
// adminDescription, which every object class allows.
func defaultManagedMarker(d ldapstore.Dialect, users bool) managedMarker {
	switch {
	case d == ldapstore.DialectAD:
		return managedMarker{attr: "adminDescription", value: managedValue}
	case users:
		return managedMarker{attr: "employeeType", value: managedValue}
	}
	return managedMarker{attr: "businessCategory", value: managedValue}
}

func (m managedMarker) isValue(v string) bool {
	return strings.EqualFold(strings.TrimSpace(v), m.value)
}

// strip returns e as the mappings may see it: without the marker value.
func (m managedMarker) strip(e mapping.Entry) mapping.Entry {
	if !m.on() {
		return e
	}
	var key string
	for k := range e.Attrs {
		if strings.EqualFold(k, m.attr) {
			key = k
		}
	}
	if key == "" {
		return e
	}
	attrs := make(map[string][]string, len(e.Attrs))
	for k, v := range e.Attrs {
		attrs[k] = v
	}
	var kept []string
	for _, v := range e.Attrs[key] {
		if !m.isValue(v) {
			kept = append(kept, v)
		}
	}
	if len(kept) == 0 {
		delete(attrs, key)
	} else {
		attrs[key] = kept
	}
	return mapping.Entry{DN: e.DN, Attrs: attrs}
}

// keep adds the marker value back to a change set (attribute → all new values) that replaces
// the marker's attribute, so that no mapping can clear it.
func (m managedMarker) keep(changes map[string][]string) {
	if !m.on() {
		return
	}
	for k, vals := range changes {
		if !strings.EqualFold(k, m.attr) {
			continue
		}
		for _, v := range vals {
			if m.isValue(v) {
				return
			}
		}
		changes[k] = append(append([]string(nil), vals...), m.value)
	}
}

// mark adds the marker value to the attributes of a new entry.
func (m managedMarker) mark(attrs map[string][]string) {
	if !m.on() {
		return
	}
	for k, vals := range attrs {
		if strings.EqualFold(k, m.attr) {
			for _, v := range vals {
				if m.isValue(v) {
					return
				}
			}
			attrs[k] = append(append([]string(nil), vals...), m.value)
			return
		}
	}
	attrs[m.attr] = []string{m.value}
}
