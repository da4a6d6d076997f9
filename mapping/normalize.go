package mapping

import (
	"encoding/json"
	"math"
	"sort"
	"strconv"
	"strings"
)

// Canonical form. Every function of this package that takes a SCIM resource first puts it in
// canonical form, which is what clients send made regular:
//
//   - attribute and sub-attribute names are spelled as the schema spells them (clients may use
//     any case: "USERNAME", "Emails");
//   - extension attributes live in an object under their schema URN, whether the client nested
//     them there or sent flat "urn:…:User:department" keys;
//   - values have their schema type: strings, bool ("True"/"false" strings accepted, as Entra
//     ID sends them), int64, float64; multi-valued attributes are []any, a single value sent
//     for one being taken as a one-element list; a complex attribute with a "value"
//     sub-attribute accepts a plain string for {"value": …} (Entra ID's manager);
//   - null, empty lists and empty objects are unassigned and left out (RFC 7643 §2.5);
//   - read-only attributes (id, meta, groups, manager.displayName) are dropped from what a
//     client writes (RFC 7644 §3.5.1) and kept in what the directory returns.
//
// Names in no schema of the resource are an invalidSyntax error and values of the wrong type an
// invalidValue error; every problem of a request is reported at once.

type canonicalizer struct {
	s      Schema
	keepRO bool
	p      problems
}

// canonical returns in, in canonical form under s.
func (s Schema) canonical(in map[string]any, keepReadOnly bool) (map[string]any, error) {
	out, p := s.canonicalProblems(in, keepReadOnly)
	return out, p.err()
}

// canonicalProblems is canonical returning what it could convert and the problems, so that a
// conversion can report the problems it finds later too.
func (s Schema) canonicalProblems(in map[string]any, keepReadOnly bool) (map[string]any, *problems) {
	c := canonicalizer{s: s, keepRO: keepReadOnly}
	out := map[string]any{}
	for _, k := range sortedKeys(in) {
		c.put(out, k, in[k])
	}
	return out, &c.p
}

// put stores one top-level key of a resource (or of a path-less PATCH value) into out.
func (c *canonicalizer) put(out map[string]any, key string, v any) {
	if strings.EqualFold(key, "schemas") {
		if v == nil {
			return
		}
		list, ok := stringList(v)
		if !ok {
			c.p.add(ScimTypeInvalidValue, "schemas: must be a list of strings")
			return
		}
		out["schemas"] = list
		return
	}
	if strings.EqualFold(key, c.s.URN) {
		obj, ok := v.(map[string]any)
		if !ok {
			c.p.add(ScimTypeInvalidValue, "%s: must be an object", c.s.URN)
			return
		}
		for _, k := range sortedKeys(obj) {
			c.putPath(out, c.s, k, obj[k])
		}
		return
	}
	if ext, ok := c.s.extension(key); ok {
		if v == nil {
			return
		}
		obj, ok := v.(map[string]any)
		if !ok {
			c.p.add(ScimTypeInvalidValue, "%s: must be an object", ext.URN)
			return
		}
		for _, k := range sortedKeys(obj) {
			c.putPath(out, ext, k, obj[k])
		}
		return
	}
	if hasURNPrefix(key) {
		sch, rest, ok := c.s.splitURN(key)
		if !ok {
			c.p.add(ScimTypeInvalidSyntax, "%q is not an attribute of any schema of this resource", key)
			return
		}
		c.putPath(out, sch, rest, v)
		return
	}
	c.putPath(out, c.s, key, v)
}

func hasURNPrefix(s string) bool { return len(s) > 4 && strings.EqualFold(s[:4], "urn:") }

// container returns the object holding sch's attributes inside out, creating it for an
// extension.
func (c *canonicalizer) container(out map[string]any, sch Schema) map[string]any {
	if strings.EqualFold(sch.URN, c.s.URN) {
		return out
	}
	obj, ok := out[sch.URN].(map[string]any)
	if !ok {
		obj = map[string]any{}
		out[sch.URN] = obj
	}
	return obj
}

// putPath stores "attr" or "attr.sub" of schema sch.
func (c *canonicalizer) putPath(out map[string]any, sch Schema, path string, v any) {
	name, subName, hasSub := strings.Cut(path, ".")
	a, ok := sch.attribute(name)
	if !ok {
		c.p.add(ScimTypeInvalidSyntax, "%q is not an attribute of schema %s", qualified(sch, c.s, path), sch.URN)
		return
	}
	if a.readOnly() && !c.keepRO {
		return
	}
	dst := c.container(out, sch)
	defer func() {
		if obj, ok := out[sch.URN].(map[string]any); ok && len(obj) == 0 {
			delete(out, sch.URN)
		}
	}()
	display := qualified(sch, c.s, a.Name)
	if !hasSub {
		if cv := c.coerce(a, v, display); cv != nil {
			dst[a.Name] = cv
		} else {
			delete(dst, a.Name)
		}
		return
	}
	if a.Type != TypeComplex || a.MultiValued {
		c.p.add(ScimTypeInvalidSyntax, "%q: only a single-valued complex attribute can be written as attribute.subAttribute", qualified(sch, c.s, path))
		return
	}
	sa, ok := a.sub(subName)
	if !ok {
		c.p.add(ScimTypeInvalidSyntax, "%q is not a sub-attribute of %s", subName, display)
		return
	}
	if sa.readOnly() && !c.keepRO {
		return
	}
	obj, _ := dst[a.Name].(map[string]any)
	if obj == nil {
		obj = map[string]any{}
	}
	if cv := c.coerce(sa, v, display+"."+sa.Name); cv != nil {
		obj[sa.Name] = cv
	} else {
		delete(obj, sa.Name)
	}
	if len(obj) == 0 {
		delete(dst, a.Name)
	} else {
		dst[a.Name] = obj
	}
}

// qualified names path for messages: bare for the core schema, URN-qualified for extensions.
func qualified(sch, core Schema, path string) string {
	if strings.EqualFold(sch.URN, core.URN) {
		return path
	}
	return sch.URN + ":" + path
}

// coerce returns v with a's type, or nil when v is unassigned or wrong (a problem is recorded).
func (c *canonicalizer) coerce(a Attribute, v any, path string) any {
	if v == nil {
		return nil
	}
	if !a.MultiValued {
		if _, isList := v.([]any); isList {
			c.p.add(ScimTypeInvalidValue, "%s: is single-valued but got a list", path)
			return nil
		}
		return c.coerceOne(a, v, path)
	}
	var out []any
	for _, item := range asList(v) {
		if cv := c.coerceOne(a, item, path); cv != nil {
			out = append(out, cv)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

func (c *canonicalizer) coerceOne(a Attribute, v any, path string) any {
	if v == nil {
		return nil
	}
	if a.Type == TypeComplex {
		m, ok := v.(map[string]any)
		if s, isStr := v.(string); isStr {
			if _, hasValue := a.sub("value"); hasValue {
				m, ok = map[string]any{"value": s}, true
			}
		}
		if !ok {
			c.p.add(ScimTypeInvalidValue, "%s: must be an object", path)
			return nil
		}
		out := map[string]any{}
		for _, k := range sortedKeys(m) {
			sa, ok := a.sub(k)
			if !ok {
				c.p.add(ScimTypeInvalidSyntax, "%q is not a sub-attribute of %s", k, path)
				continue
			}
			if sa.readOnly() && !c.keepRO {
				continue
			}
			if _, isList := m[k].([]any); isList {
				c.p.add(ScimTypeInvalidValue, "%s.%s: is single-valued but got a list", path, sa.Name)
				continue
			}
			if cv := c.coerceOne(sa, m[k], path+"."+sa.Name); cv != nil {
				out[sa.Name] = cv
			}
		}
		if len(out) == 0 {
			return nil
		}
		return out
	}
	cv, ok := scalar(a.Type, v)
	if !ok {
		c.p.add(ScimTypeInvalidValue, "%s: must be of type %s", path, a.Type)
		return nil
	}
	return cv
}

// scalar converts v to the Go type of a simple SCIM type.
func scalar(typ string, v any) (any, bool) {
	switch typ {
	case TypeBoolean:
		switch x := v.(type) {
		case bool:
			return x, true
		case string:
			switch {
			case strings.EqualFold(x, "true"):
				return true, true
			case strings.EqualFold(x, "false"):
				return false, true
			}
		}
		return nil, false
	case TypeInteger:
		n, ok := toInt64(v)
		return n, ok
	case TypeDecimal:
		f, ok := toFloat64(v)
		return f, ok
	case TypeDateTime:
		s, ok := v.(string)
		if !ok {
			return nil, false
		}
		if _, err := parseDateTime(s); err != nil {
			return nil, false
		}
		return s, true
	default:
		s, ok := v.(string)
		return s, ok
	}
}

func toInt64(v any) (int64, bool) {
	switch x := v.(type) {
	case int64:
		return x, true
	case int:
		return int64(x), true
	case int32:
		return int64(x), true
	case float64:
		if x != math.Trunc(x) || math.Abs(x) > 1<<53 {
			return 0, false
		}
		return int64(x), true
	case json.Number:
		n, err := x.Int64()
		return n, err == nil
	case string:
		n, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64)
		return n, err == nil
	}
	return 0, false
}

func toFloat64(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case int64:
		return float64(x), true
	case int:
		return float64(x), true
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		return f, err == nil
	}
	return 0, false
}

// asList returns v as a list: JSON arrays as they are, any other value as a one-element list.
func asList(v any) []any {
	switch x := v.(type) {
	case nil:
		return nil
	case []any:
		return x
	case []map[string]any:
		out := make([]any, len(x))
		for i, m := range x {
			out[i] = m
		}
		return out
	case []string:
		out := make([]any, len(x))
		for i, s := range x {
			out[i] = s
		}
		return out
	}
	return []any{v}
}

func stringList(v any) ([]any, bool) {
	list := asList(v)
	out := make([]any, 0, len(list))
	for _, item := range list {
		s, ok := item.(string)
		if !ok {
			return nil, false
		}
		out = append(out, s)
	}
	return out, true
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// deepCopy copies JSON-shaped values so that callers' resources are never modified.
func deepCopy(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = deepCopy(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = deepCopy(e)
		}
		return out
	case []string:
		return append([]string(nil), x...)
	case []map[string]any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = deepCopy(e)
		}
		return out
	}
	return v
}
