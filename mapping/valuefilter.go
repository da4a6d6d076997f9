package mapping

import (
	"encoding/json"
	"strings"

	filter "github.com/scim2/filter-parser/v2"
)

// Value filters in PATCH paths (`emails[type eq "work"]`, `members[value eq "…"]`) are
// evaluated here against the elements of a multi-valued attribute of the resource.

// elementView returns the sub-attribute values of one element: the element itself for complex
// attributes, {"value": element} for multi-valued simple attributes (RFC 7644 §3.5.2 filters
// such elements as "value").
func elementView(a Attribute, el any) map[string]any {
	if m, ok := el.(map[string]any); ok && a.Type == TypeComplex {
		return m
	}
	return map[string]any{"value": el}
}

// elementAttr returns the definition of sub-attribute name of a's elements.
func elementAttr(a Attribute, name string) (Attribute, bool) {
	if a.Type == TypeComplex {
		return a.sub(name)
	}
	if strings.EqualFold(name, "value") {
		return Attribute{Name: "value", Type: a.Type, CaseExact: a.CaseExact}, true
	}
	return Attribute{}, false
}

// matches evaluates a value filter against one element of attribute a.
func matches(expr filter.Expression, a Attribute, el any, depth int) (bool, *Error) {
	if depth > maxFilterDepth {
		return false, errorf(ScimTypeInvalidPath, "the value filter of %s is too deeply nested", a.Name)
	}
	switch e := expr.(type) {
	case *filter.LogicalExpression:
		if e == nil || e.Left == nil || e.Right == nil {
			return false, errorf(ScimTypeInvalidPath, "incomplete value filter on %s", a.Name)
		}
		l, err := matches(e.Left, a, el, depth+1)
		if err != nil {
			return false, err
		}
		r, err := matches(e.Right, a, el, depth+1)
		if err != nil {
			return false, err
		}
		if strings.EqualFold(string(e.Operator), string(filter.OR)) {
			return l || r, nil
		}
		return l && r, nil
	case *filter.NotExpression:
		if e == nil || e.Expression == nil {
			return false, errorf(ScimTypeInvalidPath, "incomplete value filter on %s", a.Name)
		}
		m, err := matches(e.Expression, a, el, depth+1)
		return !m, err
	case *filter.AttributeExpression:
		if e == nil {
			return false, errorf(ScimTypeInvalidPath, "incomplete value filter on %s", a.Name)
		}
		if e.AttributePath.URIPrefix != nil || e.AttributePath.SubAttribute != nil {
			return false, errorf(ScimTypeInvalidPath, "a value filter on %s names its sub-attributes alone, e.g. [type eq \"work\"]", a.Name)
		}
		sa, ok := elementAttr(a, e.AttributePath.AttributeName)
		if !ok {
			return false, errorf(ScimTypeInvalidPath, "%q is not a sub-attribute of %s", e.AttributePath.AttributeName, a.Name)
		}
		v, present := elementView(a, el)[sa.Name]
		return compare(e.Operator, v, present, e.CompareValue, sa, a.Name)
	default:
		return false, errorf(ScimTypeInvalidPath, "value filters cannot be nested (%s)", a.Name)
	}
}

// compare applies one comparison of a value filter.
func compare(op filter.CompareOperator, v any, present bool, cmp any, sa Attribute, parent string) (bool, *Error) {
	op = filter.CompareOperator(strings.ToLower(string(op)))
	if s, ok := v.(string); ok && s == "" {
		present = false
	}
	if op == filter.PR {
		return present, nil
	}
	if cmp == nil {
		switch op {
		case filter.EQ:
			return !present, nil
		case filter.NE:
			return present, nil
		}
		return false, errorf(ScimTypeInvalidFilter, "%s.%s: null can only be compared with eq and ne", parent, sa.Name)
	}
	if !present {
		return op == filter.NE, nil
	}
	bad := func() (bool, *Error) {
		return false, errorf(ScimTypeInvalidFilter, "%s.%s: operator %s does not apply to a %s", parent, sa.Name, op, sa.Type)
	}
	switch x := v.(type) {
	case bool:
		want, ok := scalar(TypeBoolean, literal(cmp))
		if !ok {
			return op == filter.NE, nil
		}
		switch op {
		case filter.EQ:
			return x == want, nil
		case filter.NE:
			return x != want, nil
		}
		return bad()
	case int64, float64:
		have, _ := toFloat64(x)
		want, ok := toFloat64(literal(cmp))
		if !ok {
			return op == filter.NE, nil
		}
		return orderCompare(op, cmpFloat(have, want), bad)
	case string:
		want, ok := literal(cmp).(string)
		if !ok {
			return op == filter.NE, nil
		}
		if sa.Type == TypeDateTime {
			ht, err1 := parseDateTime(x)
			wt, err2 := parseDateTime(want)
			if err1 == nil && err2 == nil {
				return orderCompare(op, ht.Compare(wt), bad)
			}
		}
		if !sa.CaseExact {
			x, want = strings.ToLower(x), strings.ToLower(want)
		}
		switch op {
		case filter.CO:
			return strings.Contains(x, want), nil
		case filter.SW:
			return strings.HasPrefix(x, want), nil
		case filter.EW:
			return strings.HasSuffix(x, want), nil
		}
		return orderCompare(op, strings.Compare(x, want), bad)
	}
	return bad()
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func orderCompare(op filter.CompareOperator, c int, bad func() (bool, *Error)) (bool, *Error) {
	switch op {
	case filter.EQ:
		return c == 0, nil
	case filter.NE:
		return c != 0, nil
	case filter.GT:
		return c > 0, nil
	case filter.GE:
		return c >= 0, nil
	case filter.LT:
		return c < 0, nil
	case filter.LE:
		return c <= 0, nil
	}
	return bad()
}

// literal returns a filter comparison value with string escapes decoded and numbers as float64
// or int as the parser gives them.
func literal(v any) any {
	switch x := v.(type) {
	case string:
		return unescapeLiteral(x)
	case json.Number:
		if n, err := x.Int64(); err == nil {
			return n
		}
		f, _ := x.Float64()
		return f
	}
	return v
}

// eqConjunction returns the sub-attribute values a filter made only of eq comparisons joined
// by and requires (`type eq "work"`), so that an element matching it can be created when none
// exists; ok is false for any other filter.
func eqConjunction(expr filter.Expression, a Attribute) (map[string]any, bool) {
	switch e := expr.(type) {
	case *filter.AttributeExpression:
		if e == nil || !strings.EqualFold(string(e.Operator), string(filter.EQ)) || e.CompareValue == nil ||
			e.AttributePath.URIPrefix != nil || e.AttributePath.SubAttribute != nil {
			return nil, false
		}
		sa, ok := elementAttr(a, e.AttributePath.AttributeName)
		if !ok || sa.Mutability == ReadOnly {
			return nil, false
		}
		v, ok := scalar(sa.Type, literal(e.CompareValue))
		if !ok {
			return nil, false
		}
		return map[string]any{sa.Name: v}, true
	case *filter.LogicalExpression:
		if e == nil || !strings.EqualFold(string(e.Operator), string(filter.AND)) {
			return nil, false
		}
		l, ok := eqConjunction(e.Left, a)
		if !ok {
			return nil, false
		}
		r, ok := eqConjunction(e.Right, a)
		if !ok {
			return nil, false
		}
		for k, v := range r {
			if old, dup := l[k]; dup && old != v {
				return nil, false
			}
			l[k] = v
		}
		return l, true
	}
	return nil, false
}
