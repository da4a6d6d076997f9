package mapping

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	filter "github.com/scim2/filter-parser/v2"
)

// FilterOp is the operator of an LDAPFilter node.
type FilterOp string

// The LDAP filter operators (RFC 4511 §4.5.1). gt and lt have no LDAP operator: SCIM's gt is
// FilterGreaterOrEqual and not FilterEqual.
const (
	FilterAnd            FilterOp = "and"
	FilterOr             FilterOp = "or"
	FilterNot            FilterOp = "not"
	FilterEqual          FilterOp = "equal"
	FilterGreaterOrEqual FilterOp = "greaterOrEqual"
	FilterLessOrEqual    FilterOp = "lessOrEqual"
	FilterSubstring      FilterOp = "substring"
	FilterPresent        FilterOp = "present"
	// FilterBitAnd is an extensible match with Active Directory's LDAP_MATCHING_RULE_BIT_AND
	// (1.2.840.113556.1.4.803): the integer in Attr has every bit of Value set.
	FilterBitAnd FilterOp = "bitAnd"
)

// LDAPFilter is an LDAP search filter as a tree, neutral of any LDAP library: ldapstore
// renders it with go-ldap and escapes every value there. Values are raw.
//
//   - FilterAnd, FilterOr: Subs (never empty).
//   - FilterNot: Subs[0].
//   - FilterEqual, FilterGreaterOrEqual, FilterLessOrEqual: Attr, Value.
//   - FilterSubstring: Attr, Initial, Any, Final (Initial and Final may be empty).
//   - FilterPresent: Attr.
//   - FilterBitAnd: Attr, Value (a decimal integer).
type LDAPFilter struct {
	Op             FilterOp
	Attr, Value    string
	Initial, Final string
	Any            []string
	Subs           []LDAPFilter
}

// Limits on filters: a client must not make the directory evaluate filters of any size.
const (
	maxFilterDepth = 16
	maxFilterNodes = 64
	// maxLDAPNodes bounds the translated filter, which value paths over several types expand.
	maxLDAPNodes = 512
)

// cond is a translated filter that may be known to be always true or always false (a
// comparison of a constant such as `meta.resourceType eq "User"` or `emails.type` against one
// type); constants are folded away.
type cond struct {
	f     LDAPFilter
	konst int8 // 1: always true, -1: always false, 0: f
}

var (
	condTrue  = cond{konst: 1}
	condFalse = cond{konst: -1}
)

func constCond(b bool) cond {
	if b {
		return condTrue
	}
	return condFalse
}

func leaf(f LDAPFilter) cond { return cond{f: f} }

func eqCond(attr, v string) cond { return leaf(LDAPFilter{Op: FilterEqual, Attr: attr, Value: v}) }

func presentCond(attr string) cond { return leaf(LDAPFilter{Op: FilterPresent, Attr: attr}) }

func andCond(cs ...cond) cond { return joinCond(FilterAnd, cs) }

func orCond(cs ...cond) cond { return joinCond(FilterOr, cs) }

// joinCond folds constants: false absorbs an and, true absorbs an or; the neutral constant is
// dropped; nested nodes of the same operator are flattened.
func joinCond(op FilterOp, cs []cond) cond {
	absorb, neutral := condFalse, condTrue
	if op == FilterOr {
		absorb, neutral = condTrue, condFalse
	}
	var subs []LDAPFilter
	for _, c := range cs {
		switch {
		case c.konst == absorb.konst:
			return absorb
		case c.konst == neutral.konst:
		case c.f.Op == op:
			subs = append(subs, c.f.Subs...)
		default:
			subs = append(subs, c.f)
		}
	}
	switch len(subs) {
	case 0:
		return neutral
	case 1:
		return leaf(subs[0])
	}
	return leaf(LDAPFilter{Op: op, Subs: subs})
}

func notCond(c cond) cond {
	switch {
	case c.konst != 0:
		return cond{konst: -c.konst}
	case c.f.Op == FilterNot:
		return leaf(c.f.Subs[0])
	}
	return leaf(LDAPFilter{Op: FilterNot, Subs: []LDAPFilter{c.f}})
}

// TranslateUserFilter translates a SCIM filter on Users (RFC 7644 §3.4.2.2, as parsed by
// scim2/filter-parser) into an LDAP filter over the attributes of m. The caller ANDs it with
// the users' base filter.
//
// Every operator works where the directory can evaluate it: eq, ne, co, sw, ew and pr on
// mapped attributes; gt, ge, lt and le only on attributes with an ordering rule (the
// timestamps behind meta.created and meta.lastModified, and integer or dateTime extension
// attributes outside the stock schemas) — uid, cn, mail and the other stock user attributes
// have none, and a filter that needs one is an invalidFilter error rather than a search that
// silently finds nothing. id compares idAttr; active compares the marker; meta.lastModified and
// meta.created compare modifyTimestamp and createTimestamp as GeneralizedTime; value paths
// (`emails[type eq "work" and value co "@x"]`) expand to the LDAP attributes of the types
// they select; the manager's id is turned into its DN with resolve (("", nil) for an unknown
// id, which matches nothing; an error is returned wrapped; nil refuses manager filters).
// Two conditions on the values of one multi-valued LDAP attribute may be met by two different
// values: LDAP cannot say "the same value".
//
// Quoted literals are unescaped (`\"` → `"`). An attribute that is unknown or not mapped is an
// invalidFilter error naming it, never a scan of every user; so is a filter nested deeper than
// 16 levels or with more than 64 nodes. Errors are *Error except a resolver's.
func TranslateUserFilter(expr filter.Expression, m UserMap, marker ActiveMarker, idAttr string, resolve func(id string) (dn string, err error)) (LDAPFilter, error) {
	t := &translator{kind: "User", schema: m.schema, user: &m, marker: marker, idAttr: idAttr, resolve: resolve}
	return t.run(expr)
}

// TranslateGroupFilter translates a SCIM filter on Groups like TranslateUserFilter:
// displayName, externalId, id, meta and extension attributes through gm, and members
// (`members[value eq "id"]`, `members.value eq "id"`, `members pr`) through resolve, which
// turns a member's id into its DN.
func TranslateGroupFilter(expr filter.Expression, gm GroupMap, idAttr string, resolve func(id string) (dn string, err error)) (LDAPFilter, error) {
	t := &translator{kind: "Group", schema: gm.schema, group: &gm, idAttr: idAttr, resolve: resolve}
	return t.run(expr)
}

type translator struct {
	kind    string
	schema  Schema
	user    *UserMap
	group   *GroupMap
	marker  ActiveMarker
	idAttr  string
	resolve func(string) (string, error)
}

func (t *translator) run(expr filter.Expression) (LDAPFilter, error) {
	nodes := 0
	if err := checkFilterSize(expr, 1, &nodes); err != nil {
		return LDAPFilter{}, err
	}
	c, err := t.expr(expr)
	if err != nil {
		return LDAPFilter{}, err
	}
	var f LDAPFilter
	switch c.konst {
	case 1:
		f = LDAPFilter{Op: FilterPresent, Attr: "objectClass"}
	case -1:
		// Every entry has an objectClass: this matches nothing, on every server.
		f = LDAPFilter{Op: FilterNot, Subs: []LDAPFilter{{Op: FilterPresent, Attr: "objectClass"}}}
	default:
		f = c.f
	}
	if countLDAP(f) > maxLDAPNodes {
		return LDAPFilter{}, errorf(ScimTypeInvalidFilter, "the filter is too complex")
	}
	return f, nil
}

func isNil(expr filter.Expression) bool {
	switch x := expr.(type) {
	case nil:
		return true
	case *filter.LogicalExpression:
		return x == nil
	case *filter.NotExpression:
		return x == nil
	case *filter.AttributeExpression:
		return x == nil
	case *filter.ValuePath:
		return x == nil
	}
	return false
}

// checkFilterSize enforces maxFilterDepth and maxFilterNodes before anything is translated.
func checkFilterSize(expr filter.Expression, depth int, nodes *int) error {
	if isNil(expr) {
		return errorf(ScimTypeInvalidFilter, "the filter is empty or incomplete")
	}
	if depth > maxFilterDepth {
		return errorf(ScimTypeInvalidFilter, "the filter is too complex: nested deeper than %d levels", maxFilterDepth)
	}
	if *nodes++; *nodes > maxFilterNodes {
		return errorf(ScimTypeInvalidFilter, "the filter is too complex: more than %d conditions", maxFilterNodes)
	}
	switch x := expr.(type) {
	case *filter.LogicalExpression:
		if err := checkFilterSize(x.Left, depth+1, nodes); err != nil {
			return err
		}
		return checkFilterSize(x.Right, depth+1, nodes)
	case *filter.NotExpression:
		return checkFilterSize(x.Expression, depth+1, nodes)
	case *filter.ValuePath:
		return checkFilterSize(x.ValueFilter, depth+1, nodes)
	}
	return nil
}

func countLDAP(f LDAPFilter) int {
	n := 1
	for _, s := range f.Subs {
		n += countLDAP(s)
	}
	return n
}

func (t *translator) expr(expr filter.Expression) (cond, error) {
	if c, ok, err := logical(expr, t.expr); ok {
		return c, err
	}
	switch x := expr.(type) {
	case *filter.ValuePath:
		return t.valuePath(x.AttributePath, x.ValueFilter)
	case *filter.AttributeExpression:
		return t.attrExpr(x)
	}
	return cond{}, errorf(ScimTypeInvalidFilter, "unsupported filter expression")
}

var compareOps = map[filter.CompareOperator]bool{
	filter.EQ: true, filter.NE: true, filter.CO: true, filter.SW: true, filter.EW: true,
	filter.PR: true, filter.GT: true, filter.GE: true, filter.LT: true, filter.LE: true,
}

// resolve returns the schema and attribute an attribute path names, and its sub-attribute.
func (t *translator) resolveAttr(ap filter.AttributePath) (Schema, Attribute, *Attribute, error) {
	sch := t.schema
	if uri := ap.URI(); uri != "" && !strings.EqualFold(uri, t.schema.URN) {
		ext, ok := t.schema.extension(uri)
		if !ok {
			return Schema{}, Attribute{}, nil, errorf(ScimTypeInvalidFilter, "%q is not an attribute of %ss", ap.String(), t.kind)
		}
		sch = ext
	}
	a, ok := sch.attribute(ap.AttributeName)
	if !ok {
		return Schema{}, Attribute{}, nil, errorf(ScimTypeInvalidFilter, "%q is not an attribute of %ss", ap.String(), t.kind)
	}
	if ap.SubAttribute == nil {
		return sch, a, nil, nil
	}
	if a.Type != TypeComplex {
		return Schema{}, Attribute{}, nil, errorf(ScimTypeInvalidFilter, "%s has no sub-attributes", qualified(sch, t.schema, a.Name))
	}
	sa, ok := a.sub(*ap.SubAttribute)
	if !ok {
		return Schema{}, Attribute{}, nil, errorf(ScimTypeInvalidFilter, "%q is not a sub-attribute of %s", *ap.SubAttribute, qualified(sch, t.schema, a.Name))
	}
	return sch, a, &sa, nil
}

func unfilterable(name, why string) error {
	return errorf(ScimTypeInvalidFilter, "%s cannot be used in a filter: %s", name, why)
}

// incapableError is an invalidFilter error because the directory cannot evaluate an operator
// on one LDAP attribute (no equality, substring or ordering rule). When a filter spans the
// attributes of several types (phoneNumbers.value eq …), the types whose attribute cannot
// evaluate it are left out instead; the error stands when no type is left.
type incapableError struct{ e *Error }

func (e *incapableError) Error() string { return e.e.Error() }

func (e *incapableError) Unwrap() error { return e.e }

func incapable(name, why string) error {
	var e *Error
	errors.As(unfilterable(name, why), &e)
	return &incapableError{e: e}
}

func (t *translator) attrExpr(x *filter.AttributeExpression) (cond, error) {
	op := filter.CompareOperator(strings.ToLower(string(x.Operator)))
	if !compareOps[op] {
		return cond{}, errorf(ScimTypeInvalidFilter, "unknown operator %q", x.Operator)
	}
	cmp := literal(x.CompareValue)
	sch, a, sa, err := t.resolveAttr(x.AttributePath)
	if err != nil {
		return cond{}, err
	}
	name := qualified(sch, t.schema, a.Name)
	if sa != nil {
		name += "." + sa.Name
	}
	core := strings.EqualFold(sch.URN, t.schema.URN)
	if core {
		switch a.Name {
		case "id":
			return t.idCond(op, cmp)
		case "meta":
			return t.metaCond(sa, op, cmp)
		case "active":
			return t.activeCond(op, cmp)
		case "password":
			return cond{}, unfilterable(name, "it is never readable")
		case "groups":
			return cond{}, unfilterable(name, "group membership is filtered on Groups (members)")
		case "members":
			if sa != nil && sa.Name != "value" {
				return cond{}, unfilterable(name, "only members.value (the member's id) is stored")
			}
			return t.memberCond(op, cmp)
		}
		if ta, ok := typedAttrNamed(a.Name); ok && t.user != nil {
			return t.typedTopLevel(ta, sa, op, x)
		}
	}
	if !core && a.Name == "manager" && strings.EqualFold(sch.URN, EnterpriseSchemaURN) {
		if sa != nil && sa.Name != "value" {
			return cond{}, unfilterable(name, "only the manager's id (manager.value) is stored")
		}
		return t.managerCond(op, cmp)
	}
	if a.Type == TypeComplex && sa == nil {
		if op != filter.PR {
			return cond{}, errorf(ScimTypeInvalidFilter, "%s is complex: compare one of its sub-attributes", name)
		}
		var cs []cond
		for _, s := range t.slots() {
			if s.ldap != "" && s.kind == slotSub && s.attr == a.Name {
				cs = append(cs, presentCond(s.ldap))
			}
		}
		if len(cs) == 0 {
			return cond{}, unfilterable(name, "it is not mapped to the directory")
		}
		return orCond(cs...), nil
	}
	// name is the slot key: "title", "name.givenName", "urn:…:User:department".
	for _, s := range t.slots() {
		if strings.EqualFold(s.key, name) {
			return t.slotCond(s, name, op, cmp)
		}
	}
	return cond{}, unfilterable(name, "it is not mapped to the directory")
}

func (t *translator) slots() []slot {
	if t.user != nil {
		return t.user.slots
	}
	return t.group.slots
}

var uuidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

func (t *translator) idCond(op filter.CompareOperator, cmp any) (cond, error) {
	if t.idAttr == "" {
		return cond{}, unfilterable("id", "no id attribute is configured")
	}
	if op == filter.PR {
		return condTrue, nil
	}
	if op != filter.EQ && op != filter.NE {
		return cond{}, unfilterable("id", "ids can only be compared with eq, ne and pr")
	}
	id, ok := cmp.(string)
	if !ok {
		return cond{}, errorf(ScimTypeInvalidFilter, "id: compare with a string")
	}
	c := eqCond(t.idAttr, id)
	if strings.EqualFold(t.idAttr, "entryUUID") && !uuidRE.MatchString(id) {
		c = condFalse // No entry has this id; and slapd would reject the assertion.
	}
	if op == filter.NE {
		return notCond(c), nil
	}
	return c, nil
}

func (t *translator) metaCond(sa *Attribute, op filter.CompareOperator, cmp any) (cond, error) {
	if sa == nil {
		return cond{}, unfilterable("meta", "compare meta.created, meta.lastModified or meta.resourceType")
	}
	switch sa.Name {
	case "resourceType":
		switch op {
		case filter.PR:
			return condTrue, nil
		case filter.EQ, filter.NE:
			s, ok := cmp.(string)
			if !ok {
				return cond{}, errorf(ScimTypeInvalidFilter, "meta.resourceType: compare with a string")
			}
			return constCond(strings.EqualFold(s, t.kind) == (op == filter.EQ)), nil
		}
		return cond{}, unfilterable("meta.resourceType", "only eq, ne and pr apply")
	case "created":
		return timeCond("meta.created", "createTimestamp", op, cmp)
	case "lastModified":
		return timeCond("meta.lastModified", "modifyTimestamp", op, cmp)
	}
	return cond{}, unfilterable("meta."+sa.Name, "it is not stored in the directory")
}

func timeCond(name, attr string, op filter.CompareOperator, cmp any) (cond, error) {
	if op == filter.PR {
		return condTrue, nil
	}
	s, ok := cmp.(string)
	if !ok {
		return cond{}, errorf(ScimTypeInvalidFilter, "%s: compare with a dateTime string", name)
	}
	tm, err := parseDateTime(s)
	if err != nil {
		return cond{}, errorf(ScimTypeInvalidFilter, "%s: %q is not an xsd:dateTime", name, s)
	}
	return ordered(attr, FormatGeneralizedTime(tm), op, name)
}

// ordered translates eq, ne, gt, ge, lt and le on an attribute with an ordering rule.
func ordered(attr, v string, op filter.CompareOperator, name string) (cond, error) {
	eq := eqCond(attr, v)
	switch op {
	case filter.EQ:
		return eq, nil
	case filter.NE:
		return notCond(eq), nil
	case filter.GE:
		return leaf(LDAPFilter{Op: FilterGreaterOrEqual, Attr: attr, Value: v}), nil
	case filter.LE:
		return leaf(LDAPFilter{Op: FilterLessOrEqual, Attr: attr, Value: v}), nil
	case filter.GT:
		return andCond(leaf(LDAPFilter{Op: FilterGreaterOrEqual, Attr: attr, Value: v}), notCond(eq)), nil
	case filter.LT:
		return andCond(leaf(LDAPFilter{Op: FilterLessOrEqual, Attr: attr, Value: v}), notCond(eq)), nil
	}
	return cond{}, unfilterable(name, fmt.Sprintf("operator %s does not apply to it", op))
}

func (t *translator) activeCond(op filter.CompareOperator, cmp any) (cond, error) {
	if op == filter.PR {
		return condTrue, nil
	}
	if op != filter.EQ && op != filter.NE {
		return cond{}, unfilterable("active", "only eq, ne and pr apply to a boolean")
	}
	b, ok := scalar(TypeBoolean, cmp)
	if !ok {
		return cond{}, errorf(ScimTypeInvalidFilter, "active: compare with true or false")
	}
	var disabled []cond
	switch {
	case t.marker.Attr != "" && t.marker.Flag != 0:
		disabled = append(disabled, leaf(LDAPFilter{Op: FilterBitAnd, Attr: t.marker.Attr, Value: strconv.FormatUint(uint64(t.marker.Flag), 10)}))
	case t.marker.Attr != "" && t.marker.Value != "":
		disabled = append(disabled, eqCond(t.marker.Attr, t.marker.Value))
	}
	if t.marker.LockAttr != "" {
		disabled = append(disabled, eqCond(t.marker.LockAttr, PermanentLock))
	}
	d := orCond(disabled...)
	if b.(bool) == (op == filter.EQ) {
		return notCond(d), nil
	}
	return d, nil
}

// refCond compares an attribute holding DNs with the DN of a SCIM id.
func (t *translator) refCond(name, attr string, op filter.CompareOperator, cmp any) (cond, error) {
	switch op {
	case filter.PR:
		return presentCond(attr), nil
	case filter.EQ, filter.NE:
	default:
		return cond{}, unfilterable(name, "ids can only be compared with eq, ne and pr")
	}
	id, ok := cmp.(string)
	if !ok {
		return cond{}, errorf(ScimTypeInvalidFilter, "%s: compare with an id string", name)
	}
	if t.resolve == nil {
		return cond{}, unfilterable(name, "ids are not resolved here")
	}
	dn, err := t.resolve(id)
	if err != nil {
		return cond{}, fmt.Errorf("mapping: filter %s: resolve id: %w", name, err)
	}
	c := condFalse
	if dn != "" {
		c = eqCond(attr, dn)
	}
	if op == filter.NE {
		return notCond(c), nil
	}
	return c, nil
}

func (t *translator) managerCond(op filter.CompareOperator, cmp any) (cond, error) {
	const name = "manager"
	s, ok := t.user.slotByKey(EnterpriseSchemaURN + ":manager")
	if !ok || s.ldap == "" {
		return cond{}, unfilterable(name, "it is not mapped to the directory")
	}
	return t.refCond(name, s.ldap, op, cmp)
}

func (t *translator) memberCond(op filter.CompareOperator, cmp any) (cond, error) {
	attr := t.group.members
	if op == filter.PR {
		// The placeholder of an empty group is no member.
		return andCond(presentCond(attr), notCond(eqCond(attr, PlaceholderMember))), nil
	}
	return t.refCond("members", attr, op, cmp)
}

// slotCond translates one comparison on a mapped slot.
func (t *translator) slotCond(s slot, name string, op filter.CompareOperator, cmp any) (cond, error) {
	if s.ldap == "" {
		return cond{}, unfilterable(name, "it is not mapped to the directory")
	}
	attr := s.ldap
	info := ldapInfo(attr)
	if t.marker.onAttr(attr) {
		// The attribute also carries the active marker, which is not a value of name.
		switch {
		case (op != filter.EQ && op != filter.NE) || cmp == nil:
			return cond{}, unfilterable(name, fmt.Sprintf("it shares LDAP attribute %s with the active marker; only eq and ne with a value apply", attr))
		default:
			if v, ok := cmp.(string); ok && t.marker.isMarker(v) {
				return constCond(op == filter.NE), nil
			}
		}
	}
	if op == filter.PR {
		return presentCond(attr), nil
	}
	if cmp == nil {
		switch op {
		case filter.EQ:
			return notCond(presentCond(attr)), nil
		case filter.NE:
			return presentCond(attr), nil
		}
		return cond{}, errorf(ScimTypeInvalidFilter, "%s: null can only be compared with eq and ne", name)
	}
	v, err := filterValue(s, name, cmp)
	if err != nil {
		return cond{}, err
	}
	switch op {
	case filter.EQ, filter.NE:
		if info.noEquality {
			return cond{}, incapable(name, fmt.Sprintf("LDAP attribute %s has no equality rule", attr))
		}
		c := eqCond(attr, v)
		if v == "" {
			c = condFalse // The directory stores no empty values.
		}
		if op == filter.NE {
			return notCond(c), nil
		}
		return c, nil
	case filter.CO, filter.SW, filter.EW:
		if info.noSubstr || (s.scimType != TypeString && s.scimType != TypeReference) {
			return cond{}, incapable(name, fmt.Sprintf("LDAP attribute %s has no substring rule", attr))
		}
		if v == "" {
			return presentCond(attr), nil
		}
		f := LDAPFilter{Op: FilterSubstring, Attr: attr}
		switch op {
		case filter.SW:
			f.Initial = v
		case filter.EW:
			f.Final = v
		default:
			f.Any = []string{v}
		}
		return leaf(f), nil
	}
	_, stock := stockAttrs[strings.ToLower(baseName(attr))]
	if !info.ordering && (stock || (s.scimType != TypeInteger && s.scimType != TypeDateTime)) {
		return cond{}, incapable(name, fmt.Sprintf("LDAP attribute %s has no ordering rule, so gt, ge, lt and le cannot be evaluated", attr))
	}
	return ordered(attr, v, op, name)
}

// filterValue converts a comparison value into the form the slot's LDAP attribute stores.
func filterValue(s slot, name string, cmp any) (string, error) {
	switch s.scimType {
	case TypeBoolean:
		b, ok := scalar(TypeBoolean, cmp)
		if !ok {
			return "", errorf(ScimTypeInvalidFilter, "%s: compare with true or false", name)
		}
		if b.(bool) {
			return "TRUE", nil
		}
		return "FALSE", nil
	case TypeInteger:
		n, ok := toInt64(cmp)
		if !ok {
			return "", errorf(ScimTypeInvalidFilter, "%s: compare with an integer", name)
		}
		return fmt.Sprint(n), nil
	case TypeDateTime:
		str, ok := cmp.(string)
		if !ok {
			return "", errorf(ScimTypeInvalidFilter, "%s: compare with a dateTime string", name)
		}
		tm, err := parseDateTime(str)
		if err != nil {
			return "", errorf(ScimTypeInvalidFilter, "%s: %q is not an xsd:dateTime", name, str)
		}
		return FormatGeneralizedTime(tm), nil
	}
	str, ok := cmp.(string)
	if !ok {
		return "", errorf(ScimTypeInvalidFilter, "%s: compare with a string", name)
	}
	if ldapInfo(s.ldap).syn == synPostalAddress {
		str = postalAddressEscaper.Replace(str)
	}
	return str, nil
}

// valuePath translates attr[filter].
func (t *translator) valuePath(ap filter.AttributePath, inner filter.Expression) (cond, error) {
	sch, a, sa, err := t.resolveAttr(ap)
	if err != nil {
		return cond{}, err
	}
	name := qualified(sch, t.schema, a.Name)
	if sa != nil || !a.MultiValued {
		return cond{}, errorf(ScimTypeInvalidFilter, "%s cannot take a value filter", name)
	}
	if strings.EqualFold(sch.URN, t.schema.URN) {
		if a.Name == "members" && t.group != nil {
			return t.memberElem(inner)
		}
		if ta, ok := typedAttrNamed(a.Name); ok && t.user != nil {
			return t.typedElems(ta, inner)
		}
	}
	if a.Type != TypeComplex {
		// A multi-valued extension attribute: [value op x] compares its values.
		for _, s := range t.slots() {
			if strings.EqualFold(s.key, name) {
				return t.simpleElem(s, name, inner)
			}
		}
	}
	return cond{}, unfilterable(name, "it is not mapped to the directory")
}

// logical translates the and/or/not nodes of a value filter, with elem for their operands;
// ok is false for any other node, which the caller translates itself.
func logical(expr filter.Expression, elem func(filter.Expression) (cond, error)) (c cond, ok bool, err error) {
	switch x := expr.(type) {
	case *filter.LogicalExpression:
		l, err := elem(x.Left)
		if err != nil {
			return cond{}, true, err
		}
		r, err := elem(x.Right)
		if err != nil {
			return cond{}, true, err
		}
		switch strings.ToLower(string(x.Operator)) {
		case string(filter.AND):
			return andCond(l, r), true, nil
		case string(filter.OR):
			return orCond(l, r), true, nil
		}
		return cond{}, true, errorf(ScimTypeInvalidFilter, "unknown logical operator %q", x.Operator)
	case *filter.NotExpression:
		c, err := elem(x.Expression)
		return notCond(c), true, err
	}
	return cond{}, false, nil
}

// simpleElem translates the value filter of a multi-valued simple attribute.
func (t *translator) simpleElem(s slot, name string, expr filter.Expression) (cond, error) {
	if c, ok, err := logical(expr, func(e filter.Expression) (cond, error) { return t.simpleElem(s, name, e) }); ok {
		return c, err
	}
	switch x := expr.(type) {
	case *filter.AttributeExpression:
		if !strings.EqualFold(x.AttributePath.AttributeName, "value") || x.AttributePath.SubAttribute != nil || x.AttributePath.URIPrefix != nil {
			return cond{}, errorf(ScimTypeInvalidFilter, "the values of %s are compared as value", name)
		}
		op := filter.CompareOperator(strings.ToLower(string(x.Operator)))
		if !compareOps[op] {
			return cond{}, errorf(ScimTypeInvalidFilter, "unknown operator %q", x.Operator)
		}
		return t.slotCond(s, name, op, literal(x.CompareValue))
	}
	return cond{}, errorf(ScimTypeInvalidFilter, "value filters cannot be nested (%s)", name)
}

// memberElem translates the value filter of members.
func (t *translator) memberElem(expr filter.Expression) (cond, error) {
	if c, ok, err := logical(expr, t.memberElem); ok {
		return c, err
	}
	switch x := expr.(type) {
	case *filter.AttributeExpression:
		if !strings.EqualFold(x.AttributePath.AttributeName, "value") || x.AttributePath.SubAttribute != nil || x.AttributePath.URIPrefix != nil {
			return cond{}, unfilterable("members."+x.AttributePath.AttributeName, "only members.value (the member's id) is stored")
		}
		op := filter.CompareOperator(strings.ToLower(string(x.Operator)))
		if !compareOps[op] {
			return cond{}, errorf(ScimTypeInvalidFilter, "unknown operator %q", x.Operator)
		}
		return t.memberCond(op, literal(x.CompareValue))
	}
	return cond{}, errorf(ScimTypeInvalidFilter, "value filters cannot be nested (members)")
}

// typedTopLevel translates `emails.value co "x"`, `emails.type eq "work"`, `emails pr` and
// `emails eq "x"` (the value sub-attribute is meant): any element of the resource matching.
func (t *translator) typedTopLevel(ta typedAttr, sa *Attribute, op filter.CompareOperator, x *filter.AttributeExpression) (cond, error) {
	if sa == nil && op == filter.PR {
		var cs []cond
		for _, typ := range t.user.typesOf(ta) {
			cs = append(cs, t.anyPresent(ta, typ))
		}
		c := orCond(cs...)
		if c.konst == -1 {
			return cond{}, unfilterable(ta.name, "it is not mapped to the directory")
		}
		return c, nil
	}
	sub := "value"
	if sa != nil {
		sub = sa.Name
	} else if len(ta.subs) > 1 {
		return cond{}, errorf(ScimTypeInvalidFilter, "%s is complex: compare one of its sub-attributes", ta.name)
	}
	single := &filter.AttributeExpression{
		AttributePath: filter.AttributePath{AttributeName: sub},
		Operator:      op,
		CompareValue:  x.CompareValue,
	}
	return t.typedElems(ta, single)
}

// typedElems translates a value filter over the elements of a typed attribute: for each type
// with a mapping, the filter with type comparisons folded to constants and sub-attribute
// comparisons on that type's LDAP attributes, and the element present; or-ed over the types.
func (t *translator) typedElems(ta typedAttr, inner filter.Expression) (cond, error) {
	var (
		cs        []cond
		mappedAny bool
		skipped   error
	)
	for _, typ := range t.user.typesOf(ta) {
		present := t.anyPresent(ta, typ)
		if present.konst == -1 {
			continue
		}
		mappedAny = true
		c, err := t.typedElem(ta, typ, inner)
		var inc *incapableError
		if errors.As(err, &inc) {
			skipped = err
			continue
		}
		if err != nil {
			return cond{}, err
		}
		if c.konst != 0 || !impliesPresence(c.f, present.f) {
			c = andCond(c, present)
		}
		cs = append(cs, c)
	}
	if !mappedAny {
		return cond{}, unfilterable(ta.name, "it is not mapped to the directory")
	}
	c := orCond(cs...)
	if skipped != nil && c.konst == -1 {
		return cond{}, skipped
	}
	return c, nil
}

// impliesPresence reports whether every entry f matches has one of the attributes present
// tests (a Present node or an or of them), so that and-ing present adds nothing.
func impliesPresence(f, present LDAPFilter) bool {
	attrs := map[string]bool{}
	if present.Op == FilterPresent {
		attrs[strings.ToLower(present.Attr)] = true
	}
	for _, s := range present.Subs {
		attrs[strings.ToLower(s.Attr)] = true
	}
	var implies func(f LDAPFilter) bool
	implies = func(f LDAPFilter) bool {
		switch f.Op {
		case FilterEqual, FilterGreaterOrEqual, FilterLessOrEqual, FilterSubstring, FilterPresent:
			return attrs[strings.ToLower(f.Attr)]
		case FilterAnd:
			for _, s := range f.Subs {
				if implies(s) {
					return true
				}
			}
		case FilterOr:
			for _, s := range f.Subs {
				if !implies(s) {
					return false
				}
			}
			return true
		}
		return false
	}
	return implies(f)
}

// anyPresent is true of a user with an element of type typ.
func (t *translator) anyPresent(ta typedAttr, typ string) cond {
	var cs []cond
	for _, sub := range ta.subs {
		if s, ok := t.user.typedSlot(ta.name, typ, sub); ok && s.ldap != "" {
			cs = append(cs, presentCond(s.ldap))
		}
	}
	return orCond(cs...)
}

func (t *translator) typedElem(ta typedAttr, typ string, expr filter.Expression) (cond, error) {
	if c, ok, err := logical(expr, func(e filter.Expression) (cond, error) { return t.typedElem(ta, typ, e) }); ok {
		return c, err
	}
	switch x := expr.(type) {
	case *filter.AttributeExpression:
		return t.typedCompare(ta, typ, x)
	}
	return cond{}, errorf(ScimTypeInvalidFilter, "value filters cannot be nested (%s)", ta.name)
}

func (t *translator) typedCompare(ta typedAttr, typ string, x *filter.AttributeExpression) (cond, error) {
	ap := x.AttributePath
	if ap.URIPrefix != nil || ap.SubAttribute != nil {
		return cond{}, errorf(ScimTypeInvalidFilter, "a value filter on %s names its sub-attributes alone, e.g. [type eq \"work\"]", ta.name)
	}
	op := filter.CompareOperator(strings.ToLower(string(x.Operator)))
	if !compareOps[op] {
		return cond{}, errorf(ScimTypeInvalidFilter, "unknown operator %q", x.Operator)
	}
	a, _ := t.schema.attribute(ta.name)
	sa, ok := a.sub(ap.AttributeName)
	if !ok {
		return cond{}, errorf(ScimTypeInvalidFilter, "%q is not a sub-attribute of %s", ap.AttributeName, ta.name)
	}
	name := ta.name + "." + sa.Name
	cmp := literal(x.CompareValue)
	if sa.Name == "type" {
		if _, isString := cmp.(string); cmp != nil && !isString {
			return cond{}, errorf(ScimTypeInvalidFilter, "%s: compare with a string", name)
		}
		ok, e := compare(op, typ, true, cmp, sa, ta.name)
		if e != nil {
			return cond{}, e
		}
		return constCond(ok), nil
	}
	mapped := false
	for _, s := range ta.subs {
		if s != sa.Name {
			continue
		}
		for _, sl := range t.user.slots {
			if sl.kind == slotTyped && sl.attr == ta.name && sl.sub == s && sl.ldap != "" {
				mapped = true
			}
		}
	}
	if !mapped {
		return cond{}, unfilterable(name, "it is not mapped to the directory")
	}
	s, ok := t.user.typedSlot(ta.name, typ, sa.Name)
	if !ok || s.ldap == "" {
		// This type stores no such value: compare against an absent value.
		ok, e := compare(op, nil, false, cmp, sa, ta.name)
		if e != nil {
			return cond{}, e
		}
		return constCond(ok), nil
	}
	return t.slotCond(s, name, op, cmp)
}

// postalAddressEscaper writes a value in postalAddress syntax: \ and $ escaped, lines joined
// with $.
var postalAddressEscaper = strings.NewReplacer(`\`, `\5C`, `$`, `\24`, "\r\n", "$", "\n", "$")
