package mapping

import (
	"errors"
	"fmt"
	"strings"

	filter "github.com/scim2/filter-parser/v2"
)

// PatchOperation is one SCIM PATCH operation (RFC 7644 §3.5.2) with its path parsed. It has the
// fields of elimity-com/scim's scim.PatchOperation, so the inbound server converts with
// mapping.PatchOperation(op).
type PatchOperation struct {
	// Op is "add", "remove" or "replace", in any case (Entra ID sends "Replace").
	Op string
	// Path is the parsed path, nil when the operation has none.
	Path *filter.Path
	// Value is the JSON-decoded value.
	Value any
}

const (
	opAdd     = "add"
	opRemove  = "remove"
	opReplace = "replace"
)

func opName(op string) (string, *Error) {
	switch n := strings.ToLower(strings.TrimSpace(op)); n {
	case opAdd, opRemove, opReplace:
		return n, nil
	}
	return "", errorf(ScimTypeInvalidSyntax, "op %q is not add, remove or replace", op)
}

// ApplyPatch applies PATCH operations to a resource (as UserFromLDAP or GroupFromLDAP return
// it) and returns the patched resource; res is not modified. The caller converts the result
// with UserToLDAP or GroupToLDAP and writes only the difference (UserChanges, GroupChanges), so
// a PATCH is one LDAP Modify.
//
// Beyond RFC 7644 it accepts what Microsoft Entra ID sends: capitalised ops, "active":"False",
// the manager as a plain string, path-less add and replace whose value keys are paths
// ("name.givenName", `emails[type eq "work"].value`, URN-qualified extension attributes) or
// extension objects, remove of members with a value list and no filter, and add or replace on
// `emails[type eq "work"].value` when no work address exists yet (the element is created from
// the filter's eq conditions).
//
// remove of a filter that matches nothing succeeds (PATCH is retried by clients; removing
// what is gone is done). Errors are *Error: invalidSyntax for an unknown op, invalidPath for a
// path naming no attribute, invalidValue for values of the wrong type or the removal of a
// required attribute, noTarget for a remove without path or a replace whose filter matches
// nothing and cannot create an element, mutability for read-only and immutable attributes.
// The detail names the operation by its position.
func ApplyPatch(res map[string]any, ops []PatchOperation, s Schema) (map[string]any, error) {
	out, err := s.canonical(res, true)
	if err != nil {
		return nil, err
	}
	for i, op := range ops {
		if e := applyOp(out, s, op); e != nil {
			return nil, errorf(e.ScimType, "Operations[%d]: %s", i, e.Detail)
		}
	}
	return out, nil
}

// target is what a PATCH path designates.
type target struct {
	sch    Schema
	attr   Attribute
	sub    *Attribute        // attr.sub, or the sub-attribute after a value filter
	filter filter.Expression // value filter on a multi-valued attribute
	whole  bool              // a whole extension schema object
	name   string            // for messages
}

func applyOp(out map[string]any, s Schema, op PatchOperation) *Error {
	name, e := opName(op.Op)
	if e != nil {
		return e
	}
	if op.Path != nil {
		t, e := resolvePath(s, *op.Path)
		if e != nil {
			return e
		}
		return apply(out, s, name, t, op.Value)
	}
	if name == opRemove {
		return pathlessRemove(out, s, op.Value)
	}
	obj, ok := op.Value.(map[string]any)
	if !ok {
		return errorf(ScimTypeInvalidValue, "%s without a path needs an object value", name)
	}
	for _, k := range sortedKeys(obj) {
		v := obj[k]
		switch {
		case strings.EqualFold(k, "schemas"):
			continue
		case strings.EqualFold(k, "id"):
			// Okta repeats the id in the value; only a different id is a change.
			if cur, _ := out["id"].(string); v == nil || v == cur {
				continue
			}
			return errorf(ScimTypeMutability, "id is readOnly")
		}
		t, e := resolveKey(s, k)
		if e != nil {
			return e
		}
		if e := apply(out, s, name, t, v); e != nil {
			return e
		}
	}
	return nil
}

// pathlessRemove handles a remove without a path: RFC 7644 makes it a noTarget error, but a
// value naming members to remove ({"members":[{"value":"id"}]}, or the list alone on a Group)
// is understood.
func pathlessRemove(out map[string]any, s Schema, v any) *Error {
	members, hasMembers := s.attribute("members")
	switch x := v.(type) {
	case map[string]any:
		if len(x) == 0 {
			break
		}
		for _, k := range sortedKeys(x) {
			t, e := resolveKey(s, k)
			if e != nil {
				return e
			}
			if !t.attr.MultiValued || t.sub != nil || t.filter != nil || t.whole {
				return errorf(ScimTypeNoTarget, "remove without a path can only name values of multi-valued attributes")
			}
			if e := apply(out, s, opRemove, t, x[k]); e != nil {
				return e
			}
		}
		return nil
	case []any:
		if hasMembers && len(x) > 0 {
			return apply(out, s, opRemove, target{sch: s, attr: members, name: "members"}, x)
		}
	}
	return errorf(ScimTypeNoTarget, "remove needs a path")
}

// resolveKey resolves a key of a path-less value object.
func resolveKey(s Schema, key string) (target, *Error) {
	if ext, ok := s.extension(key); ok {
		return target{sch: ext, whole: true, name: ext.URN}, nil
	}
	p, err := filter.ParsePath([]byte(key))
	if err != nil {
		return target{}, errorf(ScimTypeInvalidPath, "%q is not an attribute path", key)
	}
	return resolvePath(s, p)
}

// resolvePath resolves a PATCH path against the schema.
func resolvePath(s Schema, p filter.Path) (target, *Error) {
	ap := p.AttributePath
	sch := s
	if uri := ap.URI(); uri != "" {
		if ext, ok := s.extension(uri + ":" + ap.AttributeName); ok {
			if ap.SubAttribute != nil || p.ValueExpression != nil {
				return target{}, errorf(ScimTypeInvalidPath, "%q is not an attribute path", p.String())
			}
			return target{sch: ext, whole: true, name: ext.URN}, nil
		}
		if !strings.EqualFold(uri, s.URN) {
			ext, ok := s.extension(uri)
			if !ok {
				return target{}, errorf(ScimTypeInvalidPath, "schema %q is not a schema of this resource", uri)
			}
			sch = ext
		}
	}
	a, ok := sch.attribute(ap.AttributeName)
	if !ok {
		return target{}, errorf(ScimTypeInvalidPath, "%q is not an attribute of this resource", qualified(sch, s, ap.AttributeName))
	}
	t := target{sch: sch, attr: a, name: qualified(sch, s, a.Name)}
	subName := ap.SubAttributeName()
	if p.ValueExpression != nil {
		if ap.SubAttribute != nil {
			return target{}, errorf(ScimTypeInvalidPath, "a value filter follows the attribute, not its sub-attribute: %q", p.String())
		}
		if !a.MultiValued {
			return target{}, errorf(ScimTypeInvalidPath, "%s is single-valued and cannot take a value filter", t.name)
		}
		t.filter = p.ValueExpression
		subName = p.SubAttributeName()
	}
	if subName != "" {
		if a.Type != TypeComplex {
			return target{}, errorf(ScimTypeInvalidPath, "%s has no sub-attributes", t.name)
		}
		sa, ok := a.sub(subName)
		if !ok {
			return target{}, errorf(ScimTypeInvalidPath, "%q is not a sub-attribute of %s", subName, t.name)
		}
		t.sub = &sa
		t.name += "." + sa.Name
	}
	return t, nil
}

// apply performs one operation on one target.
func apply(out map[string]any, s Schema, op string, t target, value any) *Error {
	if t.whole {
		if op == opRemove {
			delete(out, t.sch.URN)
			return nil
		}
		obj, ok := value.(map[string]any)
		if !ok {
			return errorf(ScimTypeInvalidValue, "%s: needs an object value", t.name)
		}
		for _, k := range sortedKeys(obj) {
			p, err := filter.ParsePath([]byte(k))
			if err != nil {
				return errorf(ScimTypeInvalidPath, "%s: %q is not an attribute path", t.name, k)
			}
			if p.AttributePath.URIPrefix == nil {
				urn := t.sch.URN
				p.AttributePath.URIPrefix = &urn
			}
			sub, e := resolvePath(s, p)
			if e != nil {
				return e
			}
			if e := apply(out, s, op, sub, obj[k]); e != nil {
				return e
			}
		}
		return nil
	}
	if t.attr.readOnly() || (t.sub != nil && t.sub.readOnly()) {
		return errorf(ScimTypeMutability, "%s is readOnly", t.name)
	}
	if op == opReplace && t.sub != nil && t.sub.Mutability == Immutable {
		return errorf(ScimTypeMutability, "%s is immutable", t.name)
	}
	c := container(out, t.sch, s)
	defer func() {
		if obj, ok := out[t.sch.URN].(map[string]any); ok && len(obj) == 0 {
			delete(out, t.sch.URN)
		}
	}()
	switch {
	case t.filter != nil:
		return applyFiltered(c, op, t, value)
	case t.sub != nil && t.attr.MultiValued:
		return applyEverySub(c, op, t, value)
	case t.sub != nil:
		return applySub(c, op, t, value)
	default:
		return applyAttr(c, op, t, value)
	}
}

func container(out map[string]any, sch, core Schema) map[string]any {
	if strings.EqualFold(sch.URN, core.URN) {
		return out
	}
	obj, ok := out[sch.URN].(map[string]any)
	if !ok {
		obj = map[string]any{}
		out[sch.URN] = obj
	}
	return obj
}

// coerceValue converts an operation's value for attribute a.
func coerceValue(a Attribute, v any, name string, one bool) (any, *Error) {
	c := canonicalizer{}
	var cv any
	if one {
		cv = c.coerceOne(a, v, name)
	} else {
		cv = c.coerce(a, v, name)
	}
	if err := c.p.err(); err != nil {
		var e *Error
		errors.As(err, &e)
		return nil, e
	}
	return cv, nil
}

func requiredErr(t target) *Error {
	return errorf(ScimTypeInvalidValue, "%s is required and cannot be removed", t.name)
}

// applyAttr handles a path naming a whole attribute.
func applyAttr(c map[string]any, op string, t target, value any) *Error {
	name := t.attr.Name
	if op == opRemove {
		if t.attr.MultiValued && value != nil {
			return removeElements(c, t, value)
		}
		if t.attr.Required {
			return requiredErr(t)
		}
		delete(c, name)
		return nil
	}
	cv, e := coerceValue(t.attr, value, t.name, false)
	if e != nil {
		return e
	}
	if cv == nil {
		if op == opReplace {
			if t.attr.Required {
				return requiredErr(t)
			}
			delete(c, name)
		}
		return nil
	}
	switch {
	case t.attr.MultiValued:
		var list []any
		if op == opAdd {
			list, _ = c[name].([]any)
		}
		touched := map[int]bool{}
		for _, el := range cv.([]any) {
			if i := indexOf(list, el, t.attr); i >= 0 {
				if m, ok := el.(map[string]any); ok {
					merged, _ := list[i].(map[string]any)
					for k, v := range m {
						if k != "value" { // The element's identity stays as first written.
							merged[k] = v
						}
					}
				}
				touched[i] = true
				continue
			}
			touched[len(list)] = true
			list = append(list, el)
		}
		c[name] = onePrimary(list, touched)
	case t.attr.Type == TypeComplex:
		// RFC 7644 §3.5.2.1 and §3.5.2.3: sub-attributes not given are left unchanged.
		merged, _ := c[name].(map[string]any)
		if merged == nil {
			merged = map[string]any{}
		}
		for k, v := range cv.(map[string]any) {
			merged[k] = v
		}
		c[name] = merged
	default:
		c[name] = cv
	}
	return nil
}

// indexOf returns the position in list of an element equal to el, or -1. Elements with a value
// are equal when their values are (and their types, when both have one): adding a member
// twice, or an address already present, changes nothing.
func indexOf(list []any, el any, a Attribute) int {
	for i, cur := range list {
		if sameElement(cur, el, a) {
			return i
		}
	}
	return -1
}

func sameElement(x, y any, a Attribute) bool {
	xm, xok := x.(map[string]any)
	ym, yok := y.(map[string]any)
	if !xok || !yok {
		xs, _ := x.(string)
		ys, _ := y.(string)
		if xok || yok {
			return false
		}
		if a.CaseExact {
			return x == y
		}
		if xs != "" || ys != "" {
			return strings.EqualFold(xs, ys)
		}
		return x == y
	}
	xv, xHas := xm["value"]
	yv, yHas := ym["value"]
	if !xHas || !yHas {
		return fmt.Sprint(xm) == fmt.Sprint(ym)
	}
	valueAttr, _ := a.sub("value")
	if !sameScalar(xv, yv, valueAttr.CaseExact) {
		return false
	}
	xt, _ := xm["type"].(string)
	yt, _ := ym["type"].(string)
	return xt == "" || yt == "" || strings.EqualFold(xt, yt)
}

func sameScalar(x, y any, caseExact bool) bool {
	xs, xok := x.(string)
	ys, yok := y.(string)
	if xok && yok && !caseExact {
		return strings.EqualFold(xs, ys)
	}
	return x == y
}

// onePrimary keeps primary=true on at most one element (RFC 7643 §2.4): when an element at a
// touched position has it, the last such one keeps it and every other element loses it.
func onePrimary(list []any, touched map[int]bool) []any {
	keep := -1
	for i, el := range list {
		if m, ok := el.(map[string]any); ok && touched[i] && m["primary"] == true {
			keep = i
		}
	}
	if keep < 0 {
		return list
	}
	for i, el := range list {
		if m, ok := el.(map[string]any); ok && i != keep {
			delete(m, "primary")
		}
	}
	return list
}

// removeElements removes the elements listed in value (Entra ID's member removal).
func removeElements(c map[string]any, t target, value any) *Error {
	cv, e := coerceValue(t.attr, value, t.name, false)
	if e != nil {
		return e
	}
	list, _ := c[t.attr.Name].([]any)
	var keep []any
	for _, el := range list {
		if indexOf(asList(cv), el, t.attr) < 0 {
			keep = append(keep, el)
		}
	}
	setList(c, t.attr.Name, keep)
	return nil
}

func setList(c map[string]any, name string, list []any) {
	if len(list) == 0 {
		delete(c, name)
		return
	}
	c[name] = list
}

// applySub handles attr.sub of a single-valued complex attribute.
func applySub(c map[string]any, op string, t target, value any) *Error {
	obj, _ := c[t.attr.Name].(map[string]any)
	if op == opRemove {
		delete(obj, t.sub.Name)
	} else {
		cv, e := coerceValue(*t.sub, value, t.name, true)
		if e != nil {
			return e
		}
		if obj == nil {
			obj = map[string]any{}
		}
		if cv == nil {
			delete(obj, t.sub.Name)
		} else {
			obj[t.sub.Name] = cv
		}
	}
	if len(obj) == 0 {
		delete(c, t.attr.Name)
	} else {
		c[t.attr.Name] = obj
	}
	return nil
}

// applyEverySub handles attr.sub of a multi-valued attribute without a filter: every element.
func applyEverySub(c map[string]any, op string, t target, value any) *Error {
	list, _ := c[t.attr.Name].([]any)
	if op == opRemove {
		setList(c, t.attr.Name, removeSub(list, nil, t.sub.Name))
		return nil
	}
	cv, e := coerceValue(*t.sub, value, t.name, true)
	if e != nil {
		return e
	}
	if cv == nil {
		setList(c, t.attr.Name, removeSub(list, nil, t.sub.Name))
		return nil
	}
	if len(list) == 0 {
		list = []any{map[string]any{}}
	}
	for _, el := range list {
		if m, ok := el.(map[string]any); ok {
			m[t.sub.Name] = cv
		}
	}
	c[t.attr.Name] = list
	return nil
}

// removeSub deletes sub from the elements selected by sel (all when sel is nil); an element
// left without a value is dropped.
func removeSub(list []any, sel []bool, sub string) []any {
	var keep []any
	for i, el := range list {
		m, ok := el.(map[string]any)
		if ok && (sel == nil || sel[i]) {
			delete(m, sub)
			if !hasContent(m) {
				continue
			}
		}
		keep = append(keep, el)
	}
	return keep
}

// hasContent reports whether an element holds anything besides type, primary and display.
func hasContent(m map[string]any) bool {
	for k := range m {
		switch k {
		case "type", "primary", "display":
		default:
			return true
		}
	}
	return false
}

// applyFiltered handles attr[filter] and attr[filter].sub.
func applyFiltered(c map[string]any, op string, t target, value any) *Error {
	list, _ := c[t.attr.Name].([]any)
	sel := make([]bool, len(list))
	matched := false
	for i, el := range list {
		ok, e := matches(t.filter, t.attr, el, 0)
		if e != nil {
			return e
		}
		sel[i] = ok
		matched = matched || ok
	}
	if op == opRemove {
		if t.sub != nil {
			setList(c, t.attr.Name, removeSub(list, sel, t.sub.Name))
			return nil
		}
		var keep []any
		for i, el := range list {
			if !sel[i] {
				keep = append(keep, el)
			}
		}
		setList(c, t.attr.Name, keep)
		return nil
	}
	var cv any
	var e *Error
	if t.sub != nil {
		cv, e = coerceValue(*t.sub, value, t.name, true)
	} else {
		cv, e = coerceValue(t.attr, value, t.name, true)
	}
	if e != nil {
		return e
	}
	if cv == nil { // Replacing with null unassigns (RFC 7643 §2.5).
		if t.sub != nil {
			setList(c, t.attr.Name, removeSub(list, sel, t.sub.Name))
			return nil
		}
		return applyFiltered(c, opRemove, t, nil)
	}
	if !matched {
		eqs, ok := eqConjunction(t.filter, t.attr)
		if !ok || t.attr.Type != TypeComplex {
			return errorf(ScimTypeNoTarget, "no value of %s matches the filter", t.attr.Name)
		}
		el := eqs
		if t.sub != nil {
			el[t.sub.Name] = cv
		} else {
			for k, v := range cv.(map[string]any) {
				el[k] = v
			}
		}
		list = append(list, el)
		c[t.attr.Name] = onePrimary(list, map[int]bool{len(list) - 1: true})
		return nil
	}
	touched := map[int]bool{}
	for i, el := range list {
		if !sel[i] {
			continue
		}
		switch {
		case t.sub != nil:
			if m, ok := el.(map[string]any); ok {
				m[t.sub.Name] = cv
				touched[i] = true
			}
		case t.attr.Type != TypeComplex:
			list[i] = cv
			touched[i] = true
		case op == opAdd:
			m, _ := el.(map[string]any)
			for k, v := range cv.(map[string]any) {
				m[k] = v
			}
			touched[i] = true
		default:
			// replace: the matched element is replaced; it keeps what the filter required of
			// it (its type) unless the new value says otherwise.
			m := deepCopy(cv).(map[string]any)
			if eqs, ok := eqConjunction(t.filter, t.attr); ok {
				for k, v := range eqs {
					if _, set := m[k]; !set {
						m[k] = v
					}
				}
			}
			list[i] = m
			touched[i] = true
		}
	}
	c[t.attr.Name] = onePrimary(list, touched)
	return nil
}

// ErrNoMemberDelta is returned by MemberDelta when an operation on members cannot be applied
// as a list of ids to add and remove (a filter other than value eq, a sub-attribute path): the
// caller then reads the group and uses ApplyPatch.
var ErrNoMemberDelta = errors.New("mapping: this members PATCH needs the whole group")

// MemberDelta extracts the membership changes of a Group PATCH, so that the server can apply
// them to a huge group without reading its members: add and remove are member ids to add and
// remove (after the operations are folded in order: adding and then removing one id removes
// it); replaceAll is non-nil when the operations replace the whole membership (it then holds
// the final member ids, possibly none, and add and remove are empty); other are the operations
// that do not touch members, for ApplyPatch.
//
// Understood: add/replace with path members, remove with `members[value eq "id"]` (or several
// joined by or), remove with path members and a value list (Entra ID), remove of members
// without a value (all members), and path-less add/replace/remove whose value object has a
// members key. Errors are *Error for malformed operations and ErrNoMemberDelta as above.
func MemberDelta(ops []PatchOperation) (add, remove, replaceAll []string, other []PatchOperation, err error) {
	var d memberDelta
	for i, op := range ops {
		if e := d.op(op, &other); e != nil {
			var se *Error
			if errors.As(e, &se) {
				return nil, nil, nil, nil, errorf(se.ScimType, "Operations[%d]: %s", i, se.Detail)
			}
			return nil, nil, nil, nil, e
		}
	}
	if d.replace != nil {
		return nil, nil, d.replace, other, nil
	}
	return nilIfEmpty(d.add), nilIfEmpty(d.remove), nil, other, nil
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

type memberDelta struct {
	add, remove, replace []string
}

func (d *memberDelta) op(op PatchOperation, other *[]PatchOperation) error {
	name, e := opName(op.Op)
	if e != nil {
		return e
	}
	if op.Path == nil {
		if list, isList := op.Value.([]any); isList && name == opRemove {
			ids, e := memberIDs(list)
			if e != nil {
				return e
			}
			d.removeIDs(ids)
			return nil
		}
		obj, ok := op.Value.(map[string]any)
		if !ok {
			if name == opRemove {
				return errorf(ScimTypeNoTarget, "remove needs a path")
			}
			return errorf(ScimTypeInvalidValue, "%s without a path needs an object value", name)
		}
		rest := map[string]any{}
		for k, v := range obj {
			if !isMembersName(k) {
				rest[k] = v
				continue
			}
			ids, e := memberIDs(v)
			if e != nil {
				return e
			}
			switch name {
			case opAdd:
				d.addIDs(ids)
			case opReplace:
				d.setIDs(ids)
			default:
				d.removeIDs(ids)
			}
		}
		if len(rest) > 0 {
			if name == opRemove {
				return errorf(ScimTypeNoTarget, "remove without a path can only name members")
			}
			*other = append(*other, PatchOperation{Op: op.Op, Value: rest})
		}
		return nil
	}
	p := op.Path
	ap := p.AttributePath
	if !strings.EqualFold(ap.AttributeName, "members") || (ap.URIPrefix != nil && !strings.EqualFold(ap.URI(), GroupSchemaURN)) {
		*other = append(*other, op)
		return nil
	}
	if ap.SubAttribute != nil || p.SubAttribute != nil {
		return ErrNoMemberDelta
	}
	if p.ValueExpression != nil {
		if name != opRemove {
			return ErrNoMemberDelta
		}
		ids, ok := valueEqIDs(p.ValueExpression, 0)
		if !ok {
			return ErrNoMemberDelta
		}
		d.removeIDs(ids)
		return nil
	}
	if name == opRemove && op.Value == nil {
		d.setIDs(nil)
		return nil
	}
	ids, e := memberIDs(op.Value)
	if e != nil {
		return e
	}
	switch name {
	case opAdd:
		d.addIDs(ids)
	case opReplace:
		d.setIDs(ids)
	default:
		d.removeIDs(ids)
	}
	return nil
}

func isMembersName(k string) bool {
	return strings.EqualFold(k, "members") || strings.EqualFold(k, GroupSchemaURN+":members")
}

// memberIDs returns the ids of a members value: a list of {"value": id} objects (or plain id
// strings), or one of them.
func memberIDs(v any) ([]string, *Error) {
	var ids []string
	for _, item := range asList(v) {
		id := item
		if m, ok := item.(map[string]any); ok {
			id = nil
			for k, x := range m {
				if strings.EqualFold(k, "value") {
					id = x
				}
			}
		}
		s, ok := id.(string)
		if !ok || strings.TrimSpace(s) == "" {
			return nil, errorf(ScimTypeInvalidValue, "members: every member needs a value (the member's id) as a string")
		}
		ids = append(ids, s)
	}
	return ids, nil
}

// valueEqIDs returns the ids of a filter `value eq "a" or value eq "b" …`.
func valueEqIDs(expr filter.Expression, depth int) ([]string, bool) {
	if depth > maxFilterDepth {
		return nil, false
	}
	switch e := expr.(type) {
	case *filter.AttributeExpression:
		if e == nil || !strings.EqualFold(e.AttributePath.AttributeName, "value") || e.AttributePath.SubAttribute != nil ||
			e.AttributePath.URIPrefix != nil || !strings.EqualFold(string(e.Operator), string(filter.EQ)) {
			return nil, false
		}
		s, ok := e.CompareValue.(string)
		if !ok {
			return nil, false
		}
		return []string{unescapeLiteral(s)}, true
	case *filter.LogicalExpression:
		if e == nil || !strings.EqualFold(string(e.Operator), string(filter.OR)) {
			return nil, false
		}
		l, ok := valueEqIDs(e.Left, depth+1)
		if !ok {
			return nil, false
		}
		r, ok := valueEqIDs(e.Right, depth+1)
		return append(l, r...), ok
	}
	return nil, false
}

func containsFold(list []string, s string) int {
	for i, x := range list {
		if strings.EqualFold(x, s) {
			return i
		}
	}
	return -1
}

func without(list []string, s string) []string {
	if i := containsFold(list, s); i >= 0 {
		return append(list[:i:i], list[i+1:]...)
	}
	return list
}

func (d *memberDelta) addIDs(ids []string) {
	for _, id := range ids {
		if d.replace != nil {
			if containsFold(d.replace, id) < 0 {
				d.replace = append(d.replace, id)
			}
			continue
		}
		d.remove = without(d.remove, id)
		if containsFold(d.add, id) < 0 {
			d.add = append(d.add, id)
		}
	}
}

func (d *memberDelta) removeIDs(ids []string) {
	for _, id := range ids {
		if d.replace != nil {
			d.replace = without(d.replace, id)
			continue
		}
		d.add = without(d.add, id)
		if containsFold(d.remove, id) < 0 {
			d.remove = append(d.remove, id)
		}
	}
}

func (d *memberDelta) setIDs(ids []string) {
	d.add, d.remove, d.replace = nil, nil, []string{}
	d.addIDs(ids)
}
