package mapping

import (
	"sort"
	"strings"
	"unicode/utf8"
)

// Entry is a directory entry in neutral form: ldapstore hands these to the rest of the code so
// that no package but ldapstore depends on go-ldap.
//
// Attribute names are matched case-insensitively, as LDAP does; the map keeps the spelling the
// server returned.
type Entry struct {
	DN    string
	Attrs map[string][]string
}

// Get returns every value of attr (case-insensitive name), or nil.
func (e Entry) Get(attr string) []string {
	if v, ok := e.Attrs[attr]; ok {
		return v
	}
	if attr == "" {
		return nil
	}
	// A miss looks at every name. Names whose first bytes are ASCII and differ other than in
	// case cannot be equal under EqualFold, which is most of them: skip those cheaply.
	a0 := lowerASCII(attr[0])
	for k, v := range e.Attrs {
		if k == "" || k[0] < utf8.RuneSelf && a0 < utf8.RuneSelf && lowerASCII(k[0]) != a0 {
			continue
		}
		if strings.EqualFold(k, attr) {
			return v
		}
	}
	return nil
}

// lowerASCII lower-cases an ASCII capital letter and leaves every other byte alone.
func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// First returns the first value of attr, or "".
func (e Entry) First(attr string) string {
	if v := e.Get(attr); len(v) > 0 {
		return v[0]
	}
	return ""
}

// Has reports whether attr has at least one value.
func (e Entry) Has(attr string) bool { return len(e.Get(attr)) > 0 }

// Names returns the attribute names of e, sorted, for stable output.
func (e Entry) Names() []string {
	names := make([]string, 0, len(e.Attrs))
	for k := range e.Attrs {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}
