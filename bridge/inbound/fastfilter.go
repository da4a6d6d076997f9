package inbound

import (
	"regexp"
	"strings"

	filter "github.com/scim2/filter-parser/v2"
)

// eqFilterRE matches the filter shape SCIM clients send most, `attr eq "value"` and
// `attr.sub eq "value"` (Entra ID's Test Connection and its matching lookups), with a literal
// that needs no unescaping.
var eqFilterRE = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9_-]*)(?:\.([A-Za-z][A-Za-z0-9_-]*))? [eE][qQ] "([^"\\\x00-\x1f\x7f]*)"$`)

// parseFilter parses a SCIM filter. The common equality shape is recognised directly, which
// saves the general parser's work on every lookup; it builds exactly the expression
// filter-parser would (TestFastFilterMatchesTheParser checks it). Everything else goes to
// filter-parser.
func parseFilter(s string) (filter.Expression, error) {
	if m := eqFilterRE.FindStringSubmatch(s); m != nil && !strings.EqualFold(m[1], "not") {
		e := &filter.AttributeExpression{
			AttributePath: filter.AttributePath{AttributeName: m[1]},
			Operator:      filter.EQ,
			CompareValue:  m[3],
		}
		if m[2] != "" {
			sub := m[2]
			e.AttributePath.SubAttribute = &sub
		}
		return e, nil
	}
	if rewritten, ok := rewriteValuePathCompare(s); ok {
		s = rewritten
	}
	return filter.ParseFilter([]byte(s))
}

// rewriteValuePathCompare turns Entra ID's `attr[filter].sub op value` (sent when the work
// e-mail is a matching attribute: `emails[type eq "work"].value eq "x@example.com"`, which RFC
// 7644's grammar does not have) into the RFC form `attr[filter and sub op value]`, wherever it
// appears in s. A value filter with "or" or "not" is left alone (filter-parser has no
// parentheses inside a value filter, and "a or b and c" would change its meaning); so is
// anything it does not recognise: the parser then says what is wrong.
func rewriteValuePathCompare(s string) (string, bool) {
	var b strings.Builder
	changed := false
	open := -1 // index in s of the '[' of the value filter being read
	last := 0  // s[last:] is not copied to b yet
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			i = skipQuoted(s, i)
		case '[':
			open = i
		case ']':
			if open < 0 {
				continue
			}
			inner := s[open+1 : i]
			end, tail, ok := compareAfter(s, i+1)
			if !ok || hasWordOutsideQuotes(inner, "or") || hasWordOutsideQuotes(inner, "not") {
				open = -1
				continue
			}
			b.WriteString(s[last : open+1])
			b.WriteString(inner)
			b.WriteString(" and ")
			b.WriteString(tail)
			b.WriteByte(']')
			last, i, open, changed = end, end-1, -1, true
		}
	}
	if !changed {
		return s, false
	}
	b.WriteString(s[last:])
	return b.String(), true
}

// skipQuoted returns the index of the quote that closes the string starting at s[i].
func skipQuoted(s string, i int) int {
	for j := i + 1; j < len(s); j++ {
		switch s[j] {
		case '\\':
			j++
		case '"':
			return j
		}
	}
	return len(s)
}

// compareAttrRE matches what may follow a value filter's ']' in Entra ID's form: a
// sub-attribute and a comparison ("pr" alone, or an operator and a value: a quoted string, a
// number, true, false or null).
var compareAttrRE = regexp.MustCompile(`^\.([A-Za-z][A-Za-z0-9_-]*)[ ]+(?:([pP][rR])\b|([eE][qQ]|[nN][eE]|[cC][oO]|[sS][wW]|[eE][wW]|[gG][tT]|[gG][eE]|[lL][tT]|[lL][eE])[ ]+("(?:[^"\\]|\\.)*"|-?[0-9][0-9.eE+-]*|true|false|null)(?:$|[ )]))`)

// compareAfter reads `.sub op value` at s[i:]: it returns where it ends and it rewritten as
// `sub op value`.
func compareAfter(s string, i int) (end int, cmp string, ok bool) {
	m := compareAttrRE.FindStringSubmatchIndex(s[i:])
	if m == nil {
		return 0, "", false
	}
	sub := s[i+m[2] : i+m[3]]
	if m[4] >= 0 {
		return i + m[5], sub + " pr", true
	}
	op, val := s[i+m[6]:i+m[7]], s[i+m[8]:i+m[9]]
	return i + m[9], sub + " " + op + " " + val, true
}

// hasWordOutsideQuotes reports whether word stands alone (case-insensitive, between spaces)
// in s outside its quoted strings.
func hasWordOutsideQuotes(s, word string) bool {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '"' {
			i = skipQuoted(s, i)
			b.WriteByte(' ')
			continue
		}
		b.WriteByte(s[i])
	}
	for _, f := range strings.FieldsFunc(b.String(), func(r rune) bool { return r == ' ' || r == '(' || r == ')' }) {
		if strings.EqualFold(f, word) {
			return true
		}
	}
	return false
}
