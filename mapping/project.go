package mapping

import "strings"

// Project applies the attributes and excludedAttributes query parameters (RFC 7644
// §3.4.2.5) to a resource and returns the projection; res is not modified.
//
// With attributes, only the named attributes are returned, plus id and schemas, which are
// always returned; without, everything but excludedAttributes. Names are case-insensitive and
// may be sub-attributes ("name.givenName", "emails.value"), URN-qualified core attributes
// ("urn:ietf:params:scim:schemas:core:2.0:User:userName"), extension attributes
// ("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department") or a whole
// extension (its URN). Names the resource does not have are ignored. schemas lists only the
// extensions left in the result.
func Project(res map[string]any, attributes, excludedAttributes []string) map[string]any {
	var out map[string]any
	if len(attributes) == 0 {
		out, _ = deepCopy(res).(map[string]any) // Always a map, empty for a nil res.
	} else {
		out = map[string]any{}
		for _, k := range []string{"id", "schemas"} {
			if v, ok := res[k]; ok {
				out[k] = deepCopy(v)
			}
		}
		for _, name := range attributes {
			if s, ok := selectorFor(res, name); ok {
				s.copyInto(res, out)
			}
		}
		pruneEmpty(out)
	}
	for _, name := range excludedAttributes {
		if s, ok := selectorFor(res, name); ok {
			s.removeFrom(out)
		}
	}
	if schemas, ok := out["schemas"].([]any); ok {
		kept := schemas[:0:0]
		for _, s := range schemas {
			urn, _ := s.(string)
			if _, isExt := res[urn]; isExt {
				if _, still := out[urn]; !still {
					continue
				}
			}
			kept = append(kept, s)
		}
		out["schemas"] = kept
	}
	return out
}

// selector is one attribute name of attributes/excludedAttributes resolved against a resource.
type selector struct {
	ext  string // key of the extension object in the resource, "" for core attributes
	attr string // key of the attribute in its object; "" selects the whole extension
	sub  string // sub-attribute name as written, "" for the whole attribute
}

func selectorFor(res map[string]any, name string) (selector, bool) {
	name = strings.TrimSpace(name)
	var s selector
	rest := name
	if hasURNPrefix(name) {
		found := false
		for k := range res {
			if !hasURNPrefix(k) {
				continue
			}
			if strings.EqualFold(k, name) {
				return selector{ext: k}, true
			}
			if len(name) > len(k) && name[len(k)] == ':' && strings.EqualFold(name[:len(k)], k) && len(k) > len(s.ext) {
				s.ext, rest, found = k, name[len(k)+1:], true
			}
		}
		if !found {
			schemas, _ := res["schemas"].([]any)
			for _, x := range schemas {
				urn, _ := x.(string)
				if _, isExt := res[urn]; !isExt && urn != "" && len(name) > len(urn) && name[len(urn)] == ':' && strings.EqualFold(name[:len(urn)], urn) {
					rest, found = name[len(urn)+1:], true
				}
			}
		}
		if !found {
			return selector{}, false
		}
	}
	attr, sub, _ := strings.Cut(rest, ".")
	obj := res
	if s.ext != "" {
		obj, _ = res[s.ext].(map[string]any)
	}
	key, ok := findKey(obj, attr)
	if !ok || (s.ext == "" && (key == "id" || key == "schemas")) {
		return selector{}, false
	}
	s.attr, s.sub = key, sub
	return s, true
}

func findKey(obj map[string]any, name string) (string, bool) {
	if _, ok := obj[name]; ok {
		return name, true
	}
	for k := range obj {
		if strings.EqualFold(k, name) {
			return k, true
		}
	}
	return "", false
}

// object returns the object holding the selected attribute in m, creating it when create.
func (s selector) object(m map[string]any, create bool) map[string]any {
	if s.ext == "" {
		return m
	}
	obj, ok := m[s.ext].(map[string]any)
	if !ok && create {
		obj = map[string]any{}
		m[s.ext] = obj
	}
	return obj
}

func (s selector) copyInto(res, out map[string]any) {
	if s.attr == "" {
		out[s.ext] = deepCopy(res[s.ext])
		return
	}
	src := s.object(res, false)
	dst := s.object(out, true)
	v := src[s.attr]
	if s.sub == "" {
		dst[s.attr] = deepCopy(v)
		return
	}
	switch x := v.(type) {
	case map[string]any:
		k, ok := findKey(x, s.sub)
		if !ok {
			return
		}
		obj, _ := dst[s.attr].(map[string]any)
		if obj == nil {
			obj = map[string]any{}
			dst[s.attr] = obj
		}
		obj[k] = deepCopy(x[k])
	case []any:
		list, _ := dst[s.attr].([]any)
		if len(list) != len(x) {
			list = make([]any, len(x))
			for i := range list {
				list[i] = map[string]any{}
			}
		}
		for i, el := range x {
			m, _ := el.(map[string]any)
			to, _ := list[i].(map[string]any)
			if k, ok := findKey(m, s.sub); ok && to != nil {
				to[k] = deepCopy(m[k])
			}
		}
		dst[s.attr] = list
	}
}

// pruneEmpty removes the empty objects and lists that selecting sub-attributes leaves behind.
func pruneEmpty(m map[string]any) {
	for k, v := range m {
		switch x := v.(type) {
		case map[string]any:
			pruneEmpty(x)
			if len(x) == 0 {
				delete(m, k)
			}
		case []any:
			var kept []any
			for _, el := range x {
				if em, ok := el.(map[string]any); ok && len(em) == 0 {
					continue
				}
				kept = append(kept, el)
			}
			setList(m, k, kept)
		}
	}
}

func (s selector) removeFrom(out map[string]any) {
	if s.attr == "" {
		delete(out, s.ext)
		return
	}
	obj := s.object(out, false)
	if obj == nil {
		return
	}
	defer func() {
		if s.ext != "" && len(obj) == 0 {
			delete(out, s.ext)
		}
	}()
	if s.sub == "" {
		delete(obj, s.attr)
		return
	}
	switch x := obj[s.attr].(type) {
	case map[string]any:
		if k, ok := findKey(x, s.sub); ok {
			delete(x, k)
		}
		if len(x) == 0 {
			delete(obj, s.attr)
		}
	case []any:
		var kept []any
		for _, el := range x {
			m, ok := el.(map[string]any)
			if ok {
				if k, found := findKey(m, s.sub); found {
					delete(m, k)
				}
				if len(m) == 0 {
					continue
				}
			}
			kept = append(kept, el)
		}
		setList(obj, s.attr, kept)
	}
}

// Requested reports whether the attribute path (e.g. "members") is part of a response under
// these attributes and excludedAttributes parameters, so that the server can skip work for
// what is not returned, such as resolving every member of a huge group for
// excludedAttributes=members. Core-schema URN prefixes are ignored.
func Requested(attributes, excludedAttributes []string, path string) bool {
	p := stripCoreURN(path)
	for _, x := range excludedAttributes {
		x = stripCoreURN(x)
		if x == p || strings.HasPrefix(p, x+".") || strings.HasPrefix(p, x+":") {
			return false
		}
	}
	if len(attributes) == 0 {
		return true
	}
	for _, a := range attributes {
		a = stripCoreURN(a)
		if a == p || strings.HasPrefix(a, p+".") || strings.HasPrefix(p, a+".") ||
			strings.HasPrefix(a, p+":") || strings.HasPrefix(p, a+":") {
			return true
		}
	}
	return false
}

func stripCoreURN(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	for _, urn := range []string{UserSchemaURN, GroupSchemaURN} {
		if prefix := strings.ToLower(urn) + ":"; strings.HasPrefix(s, prefix) {
			return s[len(prefix):]
		}
	}
	return s
}
