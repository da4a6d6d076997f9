package ldapstore

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/go-ldap/ldap/v3"

	"github.com/scimbridge/scimbridge/mapping"
)

// RenderFilter renders a neutral filter tree as an RFC 4515 filter string. Every value is
// escaped (ldap.EscapeFilter: parentheses, '*', '\', NUL and every byte above 0x7f), so no value
// can change the filter's structure; values of objectGUID given in GUID text form are sent as
// the 16 wire bytes AD compares. An empty and/or renders as the absolute true/false filters of
// RFC 4526, which servers without them treat as undefined (matching nothing for '|').
func RenderFilter(f mapping.LDAPFilter) string {
	var b strings.Builder
	render(&b, f)
	return b.String()
}

func render(b *strings.Builder, f mapping.LDAPFilter) {
	switch f.Op {
	case mapping.FilterAnd, mapping.FilterOr:
		b.WriteByte('(')
		if f.Op == mapping.FilterAnd {
			b.WriteByte('&')
		} else {
			b.WriteByte('|')
		}
		for _, s := range f.Subs {
			render(b, s)
		}
		b.WriteByte(')')
	case mapping.FilterNot:
		b.WriteString("(!")
		if len(f.Subs) > 0 {
			render(b, f.Subs[0])
		} else {
			b.WriteString("(&)")
		}
		b.WriteByte(')')
	case mapping.FilterEqual:
		item(b, f.Attr, "=", value(f.Attr, f.Value))
	case mapping.FilterGreaterOrEqual:
		item(b, f.Attr, ">=", value(f.Attr, f.Value))
	case mapping.FilterLessOrEqual:
		item(b, f.Attr, "<=", value(f.Attr, f.Value))
	case mapping.FilterPresent:
		item(b, f.Attr, "=", "*")
	case mapping.FilterBitAnd:
		// attr:1.2.840.113556.1.4.803:=N — only digits reach the value.
		if _, err := strconv.ParseUint(f.Value, 10, 32); err != nil {
			b.WriteString("(!(objectClass=*))")
			return
		}
		b.WriteString("(" + attrName(f.Attr) + ":" + oidBitAnd + ":=" + f.Value + ")")
	case mapping.FilterSubstring:
		var v strings.Builder
		v.WriteString(ldap.EscapeFilter(f.Initial))
		v.WriteByte('*')
		for _, a := range f.Any {
			if a == "" {
				continue
			}
			v.WriteString(ldap.EscapeFilter(a))
			v.WriteByte('*')
		}
		v.WriteString(ldap.EscapeFilter(f.Final))
		item(b, f.Attr, "=", v.String())
	default:
		// An operator this renderer does not know must not widen the search: match nothing.
		b.WriteString("(!(objectClass=*))")
	}
}

// oidBitAnd is Active Directory's LDAP_MATCHING_RULE_BIT_AND.
const oidBitAnd = "1.2.840.113556.1.4.803"

func item(b *strings.Builder, attr, op, escaped string) {
	b.WriteByte('(')
	b.WriteString(attrName(attr))
	b.WriteString(op)
	b.WriteString(escaped)
	b.WriteByte(')')
}

// attrName keeps only the characters of an attribute description (RFC 4512 descr or OID, with
// options); the names come from configuration, never from a client, but a stray character must
// not be able to break the filter either.
func attrName(a string) string {
	clean := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '.', r == ';':
			return r
		}
		return -1
	}, a)
	if clean == "" {
		return "objectClass"
	}
	return clean
}

// value escapes one assertion value; objectGUID in text form becomes its escaped wire bytes.
func value(attr, v string) string {
	if strings.EqualFold(attr, "objectGUID") {
		if raw, err := ParseGUID(v); err == nil {
			return escapeBytes(raw)
		}
	}
	return ldap.EscapeFilter(v)
}

// escapeBytes escapes every byte (\hh), for binary values.
func escapeBytes(raw []byte) string {
	var b strings.Builder
	for _, c := range raw {
		fmt.Fprintf(&b, "\\%02x", c)
	}
	return b.String()
}

// ErrBadDN is returned by the DN helpers for a string that is not a DN.
var ErrBadDN = errors.New("ldapstore: not a distinguished name")

// InScope reports whether dn is base or below it (RFC 4514 comparison, attribute types and
// values case-insensitive), the check that keeps the SCIM side inside its bases. A string that
// is not a DN is never in scope.
func InScope(dn, base string) bool {
	if IsSimpleDN(dn) && IsSimpleDN(base) {
		return simpleInScope(dn, base)
	}
	return parsedInScope(dn, base)
}

// parsedInScope is InScope by the parser, for any two strings.
func parsedInScope(dn, base string) bool {
	d, err := ldap.ParseDN(dn)
	if err != nil {
		return false
	}
	b, err := ldap.ParseDN(base)
	if err != nil {
		return false
	}
	return b.EqualFold(d) || b.AncestorOfFold(d)
}

// SameDN reports whether a and b name the same entry (case-insensitive); false if either is
// not a DN.
func SameDN(a, b string) bool {
	if IsSimpleDN(a) && IsSimpleDN(b) {
		return strings.EqualFold(a, b)
	}
	return parsedSame(a, b)
}

// parsedSame is SameDN by the parser, for any two strings.
func parsedSame(a, b string) bool {
	da, err := ldap.ParseDN(a)
	if err != nil {
		return false
	}
	db, err := ldap.ParseDN(b)
	if err != nil {
		return false
	}
	return da.EqualFold(db)
}

// SplitDN returns the first RDN of dn (as it would be written in a ModifyDN) and the DN of
// its parent.
func SplitDN(dn string) (rdn, parent string, err error) {
	d, err := ldap.ParseDN(dn)
	if err != nil || len(d.RDNs) == 0 {
		return "", "", fmt.Errorf("%w: %q", ErrBadDN, dn)
	}
	p := &ldap.DN{RDNs: d.RDNs[1:]}
	return d.RDNs[0].String(), p.String(), nil
}

// RDN returns the RDN attr=value with the value escaped for a DN.
func RDN(attr, value string) string { return attrName(attr) + "=" + ldap.EscapeDN(value) }

// NormalizeDN returns a canonical, lower-cased form of dn for use as a map key; a string that
// is not a DN is lower-cased as it is.
func NormalizeDN(dn string) string {
	if IsSimpleDN(dn) {
		return strings.ToLower(dn)
	}
	return parsedNormalize(dn)
}

// parsedNormalize is NormalizeDN by the parser, for any string.
func parsedNormalize(dn string) string {
	d, err := ldap.ParseDN(dn)
	if err != nil {
		return strings.ToLower(strings.TrimSpace(dn))
	}
	return strings.ToLower(d.String())
}

// RDNValue returns the value of attribute attr in the first RDN of dn (unescaped).
func RDNValue(dn, attr string) (string, error) {
	d, err := ldap.ParseDN(dn)
	if err != nil || len(d.RDNs) == 0 {
		return "", fmt.Errorf("%w: %q", ErrBadDN, dn)
	}
	for _, a := range d.RDNs[0].Attributes {
		if strings.EqualFold(a.Type, attr) {
			return a.Value, nil
		}
	}
	return "", fmt.Errorf("%w: %q has no %s in its first RDN", ErrBadDN, dn, attr)
}

// DN is a parsed distinguished name, for scope checks repeated against one base.
type DN struct {
	d *ldap.DN
	// simple is the DN as given when it is a simple DN, for Contains to compare strings.
	simple string
}

// ParseDN parses a DN.
func ParseDN(s string) (DN, error) {
	d, err := ldap.ParseDN(s)
	if err != nil {
		return DN{}, fmt.Errorf("%w: %q", ErrBadDN, s)
	}
	out := DN{d: d}
	if IsSimpleDN(s) {
		out.simple = s
	}
	return out, nil
}

// Contains reports whether dn is this DN or below it, as InScope does.
func (b DN) Contains(dn string) bool {
	if b.d == nil {
		return false
	}
	if b.simple != "" && IsSimpleDN(dn) {
		return simpleInScope(dn, b.simple)
	}
	d, err := ldap.ParseDN(dn)
	if err != nil {
		return false
	}
	return b.d.EqualFold(d) || b.d.AncestorOfFold(d)
}

// CheckFilter reports whether f is a valid LDAP filter (RFC 4515), as configured by an admin.
func CheckFilter(f string) error {
	if _, err := ldap.CompileFilter(f); err != nil {
		return fmt.Errorf("ldapstore: filter %q: %w", f, err)
	}
	return nil
}

// JoinFilters combines LDAP filters (each already parenthesised and escaped) with op, '&' or
// '|', leaving out empty ones: "" for none, the filter itself for one.
func JoinFilters(op byte, filters ...string) string {
	var parts []string
	for _, f := range filters {
		if f != "" {
			parts = append(parts, f)
		}
	}
	switch len(parts) {
	case 0:
		return ""
	case 1:
		return parts[0]
	}
	return "(" + string(op) + strings.Join(parts, "") + ")"
}
