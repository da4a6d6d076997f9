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
	return filter.ParseFilter([]byte(s))
}
