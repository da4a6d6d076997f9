package mapping

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"text/template"
	"text/template/parse"
	"unicode"

	filter "github.com/scim2/filter-parser/v2"
)

// Outbound mappings: [provisioner.user_mapping] (and group_mapping) maps each target SCIM
// attribute path to a Go text/template rendered over the LDAP entry.
//
// The template data is a map from LDAP attribute name to its first value, so {{ .mail }} is
// the first mail value (names are matched case-insensitively, a missing attribute is "").
// Attribute names that are not Go identifiers, and every value of a multi-valued attribute,
// are reached through functions:
//
//	attr "name"          first value of the attribute ("" when absent)
//	values "name"        all values, a list
//	dn                   the entry's DN
//	lower, upper, title, trim                    one string
//	first, last                                  a list (or a string, returned as is)
//	join SEP LIST, split SEP S                   lists
//	replace OLD NEW S, trimPrefix P S, trimSuffix S' S
//	default DEFAULT V, coalesce V…               the first non-empty value
//	contains SUB S, hasPrefix P S, hasSuffix S' S, hasValue V LIST (case-insensitive)
//
// plus text/template's own (printf, eq, ne, not, and, or, if, with, range, …). The last
// argument is the piped one: {{ .mail | lower }}, {{ values "mail" | join "," }}.
//
// A field that renders empty (after trimming spaces) is left out of the resource; active and
// boolean sub-attributes (primary) become booleans and must render "true" or "false".

// TemplateMapping is a compiled outbound user mapping. It is immutable and safe for concurrent
// use.
type TemplateMapping struct {
	table  string // "user_mapping" or "group_mapping", for messages
	urn    string // the core schema of the rendered resource
	fields []templateField
	// names are the attribute names the templates use as fields, in every spelling used.
	names []string
	// attrs are the LDAP attributes the templates read, one spelling each.
	attrs []string
	// bound holds *boundSet values: clones of every field's template whose entry functions
	// (attr, values, dn) read the entry through the set's holder. Cloning once per set
	// instead of once per field and render keeps a 100k-user sync off text/template.Clone.
	bound sync.Pool
}

// boundSet is one goroutine's copy of a mapping's templates, bound to a mutable entry.
type boundSet struct {
	entry *Entry
	tmpls []*template.Template
}

func (tm *TemplateMapping) bind() (*boundSet, error) {
	if v, ok := tm.bound.Get().(*boundSet); ok {
		return v, nil
	}
	set := &boundSet{entry: &Entry{}, tmpls: make([]*template.Template, len(tm.fields))}
	funcs := entryFuncs(set.entry)
	for i, f := range tm.fields {
		t, err := f.tmpl.Clone()
		if err != nil {
			return nil, fmt.Errorf("%s.%s: %w", tm.table, f.key, err)
		}
		set.tmpls[i] = t.Funcs(funcs)
	}
	return set, nil
}

type templateField struct {
	key  string
	tmpl *template.Template
	dst  destination
	// field is set when the template is exactly one field reference, {{ .name }} (most of
	// the default mapping): Render reads the value from its data instead of executing the
	// template, which is what text/template would print for it. attr is set likewise for
	// exactly {{ attr "name" }} (the default externalId).
	field, attr string
}

// soleAttr returns name when t is exactly {{ attr "name" }}, and "" otherwise.
func soleAttr(t *template.Template) string {
	args := soleCommand(t)
	if len(args) != 2 {
		return ""
	}
	fn, ok := args[0].(*parse.IdentifierNode)
	if !ok || fn.Ident != "attr" {
		return ""
	}
	name, ok := args[1].(*parse.StringNode)
	if !ok {
		return ""
	}
	return name.Text
}

// soleCommand returns the arguments of t's only command when t is exactly one action with one
// command and no variables.
func soleCommand(t *template.Template) []parse.Node {
	if len(t.Templates()) != 1 || t.Tree == nil || t.Root == nil || len(t.Root.Nodes) != 1 {
		return nil
	}
	a, ok := t.Root.Nodes[0].(*parse.ActionNode)
	if !ok || a.Pipe == nil || len(a.Pipe.Decl) != 0 || a.Pipe.IsAssign || len(a.Pipe.Cmds) != 1 {
		return nil
	}
	return a.Pipe.Cmds[0].Args
}

// soleField returns name when t is exactly {{ .name }} (or {{- .name -}}), and "" otherwise.
func soleField(t *template.Template) string {
	args := soleCommand(t)
	if len(args) != 1 {
		return ""
	}
	f, ok := args[0].(*parse.FieldNode)
	if !ok || len(f.Ident) != 1 {
		return ""
	}
	return f.Ident[0]
}

// destination is where a rendered value goes in the SCIM resource.
type destination struct {
	urn     string         // extension URN, "" for the core schema
	attr    string         // attribute name
	sub     string         // sub-attribute, "" for none
	multi   bool           // a multi-valued complex attribute: sub of an element
	eqs     map[string]any // the element's selecting sub-attribute values (type: work)
	boolean bool
}

func templateFuncs() template.FuncMap {
	return template.FuncMap{
		"lower": strings.ToLower,
		"upper": strings.ToUpper,
		"title": titleCase,
		"trim":  strings.TrimSpace,
		"first": func(v any) string {
			if l := toStrings(v); len(l) > 0 {
				return l[0]
			}
			return ""
		},
		"last": func(v any) string {
			if l := toStrings(v); len(l) > 0 {
				return l[len(l)-1]
			}
			return ""
		},
		"join":       func(sep string, v any) string { return strings.Join(toStrings(v), sep) },
		"split":      func(sep, s string) []string { return strings.Split(s, sep) },
		"replace":    func(old, repl, s string) string { return strings.ReplaceAll(s, old, repl) },
		"trimPrefix": func(prefix, s string) string { return strings.TrimPrefix(s, prefix) },
		"trimSuffix": func(suffix, s string) string { return strings.TrimSuffix(s, suffix) },
		"contains":   func(sub, s string) bool { return strings.Contains(s, sub) },
		"hasPrefix":  func(prefix, s string) bool { return strings.HasPrefix(s, prefix) },
		"hasSuffix":  func(suffix, s string) bool { return strings.HasSuffix(s, suffix) },
		// hasBit reports whether the integer value of v has bit set (userAccountControl).
		"hasBit": func(bit int, v any) bool { return bit > 0 && flagSet(firstString(v), uint32(bit)) },
		"hasValue": func(want string, v any) bool {
			for _, s := range toStrings(v) {
				if strings.EqualFold(s, want) {
					return true
				}
			}
			return false
		},
		"default": func(def string, v any) string {
			if s := firstString(v); s != "" {
				return s
			}
			return def
		},
		"coalesce": func(vs ...any) string {
			for _, v := range vs {
				if s := firstString(v); s != "" {
					return s
				}
			}
			return ""
		},
		// Bound to the entry at render time.
		"attr":   func(string) string { return "" },
		"values": func(string) []string { return nil },
		"dn":     func() string { return "" },
	}
}

// entryFuncs are the entry functions of one bound template set; they read the entry e points
// to at execution time.
// A password attribute reads as empty, whatever computes its name (compileMapping refuses
// the names it can see).
func entryFuncs(e *Entry) template.FuncMap {
	return template.FuncMap{
		"attr": func(name string) string {
			if IsPasswordAttribute(name) {
				return ""
			}
			return e.First(name)
		},
		"values": func(name string) []string {
			if IsPasswordAttribute(name) {
				return nil
			}
			return append([]string(nil), e.Get(name)...)
		},
		"dn": func() string { return e.DN },
	}
}

func titleCase(s string) string {
	var b strings.Builder
	start := true
	for _, r := range s {
		if start && unicode.IsLetter(r) {
			b.WriteRune(unicode.ToUpper(r))
		} else {
			b.WriteRune(r)
		}
		start = unicode.IsSpace(r) || r == '-'
	}
	return b.String()
}

func toStrings(v any) []string {
	switch x := v.(type) {
	case nil:
		return nil
	case []string:
		return x
	case string:
		if x == "" {
			return nil
		}
		return []string{x}
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			out = append(out, fmt.Sprint(e))
		}
		return out
	}
	return []string{fmt.Sprint(v)}
}

func firstString(v any) string {
	if l := toStrings(v); len(l) > 0 {
		return l[0]
	}
	return ""
}

// CompileUserMapping compiles [provisioner.user_mapping]: target SCIM attribute path →
// template. Paths are those of the core User schema and the enterprise extension (checked,
// any case), or of other extension schemas the target declares (taken as written); filters
// select an element by eq conditions on its sub-attributes (`emails[type eq "work"].value`).
// id, meta, groups, password and the enterprise manager (a target id no template can know)
// cannot be mapped. The error lists every problem, each naming its key
// ("user_mapping.userName: template: …").
func CompileUserMapping(m map[string]string) (*TemplateMapping, error) {
	return compileMapping("user_mapping", DefaultUserMap().schema, m)
}

// CompileGroupMapping compiles [provisioner.group_mapping] like CompileUserMapping, against the
// core Group schema: displayName, externalId and extension attributes. members cannot be
// mapped: outbound pushes membership as deltas of target ids. Render then produces a Group
// resource and errors name "group_mapping.<key>".
func CompileGroupMapping(m map[string]string) (*TemplateMapping, error) {
	return compileMapping("group_mapping", DefaultGroupMap().schema, m)
}

func compileMapping(table string, schema Schema, m map[string]string) (*TemplateMapping, error) {
	tm := &TemplateMapping{table: table, urn: schema.URN}
	attrs := map[string]bool{}
	var errs []error
	for _, key := range sortedKeys(m) {
		dst, err := destinationFor(schema, key)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s.%s: %w", table, key, err))
			continue
		}
		t, err := template.New(key).Option("missingkey=zero").Funcs(templateFuncs()).Parse(m[key])
		if err != nil {
			errs = append(errs, fmt.Errorf("%s.%s: %w", table, key, err))
			continue
		}
		read := map[string]bool{}
		for _, tree := range t.Templates() {
			if tree.Tree != nil {
				collectAttrs(tree.Root, read)
			}
		}
		refused := false
		for _, name := range sortedKeys(read) {
			if IsPasswordAttribute(name) {
				errs = append(errs, fmt.Errorf("%s.%s: reads %s: an outbound template never reads a password attribute", table, key, name))
				refused = true
			}
			attrs[name] = true
		}
		if refused {
			continue
		}
		tm.fields = append(tm.fields, templateField{key: key, tmpl: t, dst: dst, field: soleField(t), attr: soleAttr(t)})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("mapping: %w", err)
	}
	tm.names = sortedKeys(attrs)
	seen := map[string]bool{}
	for _, name := range tm.names {
		if !seen[strings.ToLower(name)] {
			seen[strings.ToLower(name)] = true
			tm.attrs = append(tm.attrs, name)
		}
	}
	sort.Slice(tm.attrs, func(i, j int) bool { return strings.ToLower(tm.attrs[i]) < strings.ToLower(tm.attrs[j]) })
	return tm, nil
}

// Attributes returns the LDAP attributes the templates read, for the search that fetches
// entries to render.
func (tm *TemplateMapping) Attributes() []string { return append([]string(nil), tm.attrs...) }

// collectAttrs records the LDAP attributes a template reads: {{ .name }}, {{ $.name }} and
// the string arguments of attr and values.
func collectAttrs(n parse.Node, out map[string]bool) {
	add := func(name string) {
		if name != "" {
			out[name] = true
		}
	}
	switch x := n.(type) {
	case *parse.ListNode:
		if x == nil {
			return
		}
		for _, c := range x.Nodes {
			collectAttrs(c, out)
		}
	case *parse.ActionNode:
		collectAttrs(x.Pipe, out)
	case *parse.PipeNode:
		if x == nil {
			return
		}
		for _, c := range x.Cmds {
			collectAttrs(c, out)
		}
	case *parse.CommandNode:
		if len(x.Args) == 2 {
			if id, ok := x.Args[0].(*parse.IdentifierNode); ok && (id.Ident == "attr" || id.Ident == "values") {
				if s, ok := x.Args[1].(*parse.StringNode); ok {
					add(s.Text)
				}
			}
		}
		for _, c := range x.Args {
			collectAttrs(c, out)
		}
	case *parse.FieldNode:
		add(x.Ident[0])
	case *parse.VariableNode:
		if len(x.Ident) > 1 && x.Ident[0] == "$" {
			add(x.Ident[1])
		}
	case *parse.ChainNode:
		collectAttrs(x.Node, out)
	case *parse.IfNode:
		collectBranch(&x.BranchNode, out)
	case *parse.RangeNode:
		collectBranch(&x.BranchNode, out)
	case *parse.WithNode:
		collectBranch(&x.BranchNode, out)
	case *parse.TemplateNode:
		collectAttrs(x.Pipe, out)
	}
}

func collectBranch(b *parse.BranchNode, out map[string]bool) {
	collectAttrs(b.Pipe, out)
	collectAttrs(b.List, out)
	collectAttrs(b.ElseList, out)
}

// destinationFor checks a mapping key and says where its value goes.
func destinationFor(s Schema, key string) (destination, error) {
	p, err := filter.ParsePath([]byte(key))
	if err != nil {
		return destination{}, errors.New("not a SCIM attribute path")
	}
	ap := p.AttributePath
	sch := s
	if uri := ap.URI(); uri != "" && !strings.EqualFold(uri, s.URN) {
		ext, ok := s.extension(uri)
		if !ok {
			// An extension of the target's own: taken as written.
			if p.ValueExpression != nil {
				return destination{}, errors.New("filters are only supported on core attributes")
			}
			return destination{urn: uri, attr: ap.AttributeName, sub: ap.SubAttributeName()}, nil
		}
		sch = ext
	}
	a, ok := sch.attribute(ap.AttributeName)
	if !ok {
		return destination{}, fmt.Errorf("%q is not an attribute of %s", ap.AttributeName, sch.URN)
	}
	core := strings.EqualFold(sch.URN, s.URN)
	switch {
	case a.readOnly() || a.Mutability == WriteOnly:
		return destination{}, fmt.Errorf("%s cannot be pushed", a.Name)
	case core && a.Name == "members":
		return destination{}, errors.New("members are pushed as deltas of target ids, not rendered")
	case !core && a.Name == "manager":
		return destination{}, errors.New("the manager is the target's id of the manager, which a template cannot know")
	}
	d := destination{attr: a.Name, boolean: core && a.Name == "active"}
	if !core {
		d.urn = sch.URN
	}
	sub := ap.SubAttributeName()
	if p.ValueExpression != nil {
		if !a.MultiValued || a.Type != TypeComplex || sub != "" {
			return destination{}, fmt.Errorf("%s cannot take a filter here", a.Name)
		}
		eqs, ok := eqConjunction(p.ValueExpression, a)
		if !ok {
			return destination{}, fmt.Errorf(`the filter must be eq conditions joined by and, e.g. %s[type eq "work"]`, a.Name)
		}
		d.eqs = eqs
		sub = p.SubAttributeName()
	}
	switch {
	case a.Type != TypeComplex:
		if sub != "" {
			return destination{}, fmt.Errorf("%s has no sub-attributes", a.Name)
		}
		return d, nil
	case sub == "":
		return destination{}, fmt.Errorf("%s is complex: name a sub-attribute, e.g. %s.%s", a.Name, a.Name, a.SubAttributes[0].Name)
	}
	sa, ok := a.sub(sub)
	if !ok {
		return destination{}, fmt.Errorf("%q is not a sub-attribute of %s", sub, a.Name)
	}
	d.sub, d.multi = sa.Name, a.MultiValued
	if sa.Type == TypeBoolean {
		d.boolean = true
	}
	return d, nil
}

// Render renders the mapping over an entry into a SCIM User (or Group) resource (JSON-shaped,
// with schemas). Elements selected by a filter are built from its eq conditions; in each
// multi-valued attribute the element of type work, else the first, is primary. The error
// names the entry and every field that failed.
func (tm *TemplateMapping) Render(e Entry) (map[string]any, error) {
	data := make(map[string]string, len(tm.names))
	for _, name := range tm.names {
		data[name] = e.First(name)
	}
	var set *boundSet
	defer func() {
		if set != nil {
			*set.entry = Entry{} // keep no entry alive in the pool
			tm.bound.Put(set)
		}
	}()
	res := make(map[string]any, len(tm.fields))
	var errs []error
	for i, f := range tm.fields {
		var v string
		switch {
		case f.field != "":
			v = strings.TrimSpace(data[f.field])
		case f.attr != "" && !IsPasswordAttribute(f.attr):
			v = strings.TrimSpace(e.First(f.attr))
		default:
			if set == nil {
				var err error
				if set, err = tm.bind(); err != nil {
					return nil, fmt.Errorf("mapping: render %q: %w", e.DN, err)
				}
				*set.entry = e
			}
			var b strings.Builder
			if err := set.tmpls[i].Execute(&b, data); err != nil {
				errs = append(errs, fmt.Errorf("%s.%s: %w", tm.table, f.key, err))
				continue
			}
			v = strings.TrimSpace(b.String())
		}
		if v == "" {
			continue
		}
		var value any = v
		if f.dst.boolean {
			bv, ok := scalar(TypeBoolean, v)
			if !ok {
				errs = append(errs, fmt.Errorf("%s.%s: rendered %q, want true or false", tm.table, f.key, v))
				continue
			}
			value = bv
		}
		f.dst.set(res, value)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("mapping: render %q: %w", e.DN, err)
	}
	schemas := []any{tm.urn}
	for _, k := range sortedKeys(res) {
		if hasURNPrefix(k) {
			schemas = append(schemas, k)
		}
		if list, ok := res[k].([]any); ok {
			markPrimary(list)
		}
	}
	res["schemas"] = schemas
	return res, nil
}

func (d destination) set(res map[string]any, v any) {
	c := res
	if d.urn != "" {
		obj, ok := res[d.urn].(map[string]any)
		if !ok {
			obj = map[string]any{}
			res[d.urn] = obj
		}
		c = obj
	}
	switch {
	case d.sub == "":
		c[d.attr] = v
	case !d.multi:
		obj, ok := c[d.attr].(map[string]any)
		if !ok {
			obj = map[string]any{}
			c[d.attr] = obj
		}
		obj[d.sub] = v
	default:
		list, _ := c[d.attr].([]any)
		var el map[string]any
		for _, x := range list {
			if m, ok := x.(map[string]any); ok && selects(m, d.eqs) {
				el = m
				break
			}
		}
		if el == nil {
			el = map[string]any{}
			for k, x := range d.eqs {
				el[k] = x
			}
			list = append(list, el)
			c[d.attr] = list
		}
		el[d.sub] = v
	}
}

// selects reports whether element m has the sub-attribute values eqs.
func selects(m, eqs map[string]any) bool {
	for k, want := range eqs {
		have, ok := m[k]
		if !ok {
			return false
		}
		hs, hok := have.(string)
		ws, wok := want.(string)
		if hok && wok {
			if !strings.EqualFold(hs, ws) {
				return false
			}
		} else if have != want {
			return false
		}
	}
	return true
}

// markPrimary sets primary on the element of type work, else on the first element, of a list
// of elements that has no primary yet.
func markPrimary(list []any) {
	var elems []map[string]any
	for _, x := range list {
		m, ok := x.(map[string]any)
		if !ok {
			return
		}
		if _, ok := m["primary"]; ok {
			return
		}
		elems = append(elems, m)
	}
	if len(elems) == 0 {
		return
	}
	for _, m := range elems {
		if t, _ := m["type"].(string); strings.EqualFold(t, "work") {
			m["primary"] = true
			return
		}
	}
	elems[0]["primary"] = true
}

// DefaultUserMapping returns the documented default [provisioner.user_mapping]:
//
//	userName                            {{ .uid }}
//	externalId                          the directory id (attr idAttr): stable across renames
//	name.givenName, familyName          givenName, sn (sn only when it is not userName, which
//	name.formatted                      inbound derives for inetOrgPerson; likewise cn)
//	displayName                         displayName, else cn
//	emails[type eq "work"].value        mail
//	phoneNumbers work, mobile           telephoneNumber, mobile
//	title, preferredLanguage            title, preferredLanguage
//	active                              not disabled by marker
//	enterprise employeeNumber           employeeNumber
//	enterprise department, organization departmentNumber, o
//
// The manager is not part of it: it must be the target's id of the manager.
func DefaultUserMapping(idAttr string, marker ActiveMarker) map[string]string {
	m := map[string]string{
		"userName":                              `{{ .uid }}`,
		"name.givenName":                        `{{ .givenName }}`,
		"name.familyName":                       `{{ if ne .sn .uid }}{{ .sn }}{{ end }}`,
		"name.formatted":                        `{{ if ne .cn .uid }}{{ .cn }}{{ end }}`,
		"displayName":                           `{{ coalesce .displayName .cn }}`,
		`emails[type eq "work"].value`:          `{{ .mail }}`,
		`phoneNumbers[type eq "work"].value`:    `{{ .telephoneNumber }}`,
		`phoneNumbers[type eq "mobile"].value`:  `{{ .mobile }}`,
		"title":                                 `{{ .title }}`,
		"preferredLanguage":                     `{{ .preferredLanguage }}`,
		EnterpriseSchemaURN + ":employeeNumber": `{{ .employeeNumber }}`,
		EnterpriseSchemaURN + ":department":     `{{ .departmentNumber }}`,
		EnterpriseSchemaURN + ":organization":   `{{ .o }}`,
	}
	if idAttr != "" {
		m["externalId"] = fmt.Sprintf(`{{ attr %s }}`, strconv.Quote(idAttr))
	}
	activeTemplate(m, marker)
	return m
}

// activeTemplate sets m["active"] from how the marker stores a disabled user.
func activeTemplate(m map[string]string, marker ActiveMarker) {
	var disabled []string
	switch {
	case marker.Attr != "" && marker.Flag != 0:
		disabled = append(disabled, fmt.Sprintf(`(attr %s | hasBit %d)`, strconv.Quote(marker.Attr), marker.Flag))
	case marker.Attr != "" && marker.Value != "":
		disabled = append(disabled, fmt.Sprintf(`(values %s | hasValue %s)`, strconv.Quote(marker.Attr), strconv.Quote(marker.Value)))
	}
	if marker.LockAttr != "" {
		disabled = append(disabled, fmt.Sprintf(`(eq (attr %s) %s)`, strconv.Quote(marker.LockAttr), strconv.Quote(PermanentLock)))
	}
	switch len(disabled) {
	case 0:
		m["active"] = `true`
	case 1:
		m["active"] = `{{ not ` + disabled[0] + ` }}`
	default:
		m["active"] = `{{ not (or ` + strings.Join(disabled, " ") + `) }}`
	}
}

// DefaultUserMappingFor returns the default [provisioner.user_mapping] over the entries of
// profile p's directory: DefaultUserMapping for OpenLDAP and 389-DS (with p's marker), and for
// Active Directory:
//
//	userName                            userPrincipalName, else sAMAccountName
//	externalId                          the directory id (objectGUID)
//	name.givenName, familyName          givenName, sn
//	displayName                         displayName, else cn
//	emails[type eq "work"].value        mail
//	phoneNumbers work, mobile           telephoneNumber, mobile
//	title, preferredLanguage            title, preferredLanguage
//	active                              userAccountControl without ACCOUNTDISABLE
//	enterprise employeeNumber           employeeID
//	enterprise department, organization department, company
func DefaultUserMappingFor(p Profile, idAttr string) map[string]string {
	m := DefaultUserMapping(idAttr, p.Marker)
	if p.Dialect != DialectAD {
		return m
	}
	// AD names people otherwise; sn and cn are never derived from the login there.
	delete(m, "name.formatted")
	m["userName"] = `{{ coalesce .userPrincipalName .sAMAccountName }}`
	m["name.familyName"] = `{{ .sn }}`
	m[EnterpriseSchemaURN+":employeeNumber"] = `{{ .employeeID }}`
	m[EnterpriseSchemaURN+":department"] = `{{ .department }}`
	m[EnterpriseSchemaURN+":organization"] = `{{ .company }}`
	return m
}

// DefaultGroupMapping returns the documented default [provisioner.group_mapping]:
// displayName from cn, externalId from the directory id (attr idAttr).
func DefaultGroupMapping(idAttr string) map[string]string {
	m := map[string]string{"displayName": `{{ .cn }}`}
	if idAttr != "" {
		m["externalId"] = fmt.Sprintf(`{{ attr %s }}`, strconv.Quote(idAttr))
	}
	return m
}

// Flatten turns a SCIM resource into attribute path → value, the form in which outbound
// remembers what it last pushed: "userName", "name.givenName", `emails[type eq "work"].value`,
// "urn:…:User:department", `x[value eq "v"]` for the values of a multi-valued simple
// attribute. schemas, id and meta are left out, and so are empty values and primary flags.
// Elements of a multi-valued attribute are told apart by type; of several untyped elements
// only the first is kept.
func Flatten(res map[string]any) map[string]string {
	out := map[string]string{}
	for _, k := range sortedKeys(res) {
		switch strings.ToLower(k) {
		case "schemas", "id", "meta":
			continue
		}
		if obj, ok := res[k].(map[string]any); ok && hasURNPrefix(k) {
			for _, sub := range sortedKeys(obj) {
				flattenValue(out, k+":"+sub, obj[sub])
			}
			continue
		}
		flattenValue(out, k, res[k])
	}
	return out
}

func flattenValue(out map[string]string, path string, v any) {
	switch x := v.(type) {
	case map[string]any:
		for _, sub := range sortedKeys(x) {
			flattenValue(out, path+"."+sub, x[sub])
		}
	case []any:
		for _, el := range x {
			m, ok := el.(map[string]any)
			if !ok {
				if s := scalarString(el); s != "" {
					out[fmt.Sprintf("%s[value eq %s]", path, strconv.Quote(s))] = s
				}
				continue
			}
			prefix := path
			if typ, _ := m["type"].(string); typ != "" {
				prefix = fmt.Sprintf("%s[type eq %s]", path, strconv.Quote(typ))
			}
			for _, sub := range sortedKeys(m) {
				if sub == "type" || sub == "primary" {
					continue
				}
				k := prefix + "." + sub
				if _, dup := out[k]; dup {
					continue
				}
				if s := scalarString(m[sub]); s != "" {
					out[k] = s
				}
			}
		}
	default:
		if s := scalarString(v); s != "" {
			out[path] = s
		}
	}
}

func scalarString(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case bool:
		return strconv.FormatBool(x)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	}
	return fmt.Sprint(v)
}

// DiffPatch returns the SCIM PATCH operations that turn a target resource last pushed as old
// (Flatten form) into next: remove for what vanished, add for what is new, replace for what
// changed; removes first, each group sorted by path. An element that loses every
// sub-attribute is removed whole (`phoneNumbers[type eq "mobile"]`). active is sent as a
// boolean, everything else as a string. nil when nothing changed.
func DiffPatch(old, next map[string]string) []PatchOp {
	var removes, sets []PatchOp
	removedElems := map[string]bool{}
	for _, k := range sortedKeys(old) {
		if _, ok := next[k]; ok {
			continue
		}
		path := k
		if elem, _, ok := splitElementPath(k); ok && !hasPrefixKey(next, elem+".") {
			if removedElems[elem] {
				continue
			}
			removedElems[elem] = true
			path = elem
		}
		removes = append(removes, PatchOp{Op: "remove", Path: path})
	}
	for _, k := range sortedKeys(next) {
		v := next[k]
		was, existed := old[k]
		if existed && was == v {
			continue
		}
		op := PatchOp{Op: "replace", Path: k, Value: patchValue(k, v)}
		if !existed {
			op.Op = "add"
			if attr, ok := valueListKey(k); ok {
				op.Path, op.Value = attr, []any{v}
			}
		}
		sets = append(sets, op)
	}
	return append(removes, sets...)
}

// splitElementPath splits `attr[filter].sub` into `attr[filter]` and sub.
func splitElementPath(k string) (elem, sub string, ok bool) {
	i := strings.LastIndex(k, "].")
	if i < 0 || !strings.Contains(k[:i], "[") {
		return "", "", false
	}
	return k[:i+1], k[i+2:], true
}

func hasPrefixKey(m map[string]string, prefix string) bool {
	for k := range m {
		if strings.HasPrefix(k, prefix) {
			return true
		}
	}
	return false
}

// valueListKey recognises `attr[value eq "v"]`, the Flatten key of one value of a multi-valued
// simple attribute.
func valueListKey(k string) (string, bool) {
	i := strings.Index(k, "[value eq ")
	if i < 0 || !strings.HasSuffix(k, "]") {
		return "", false
	}
	return k[:i], true
}

func patchValue(path, v string) any {
	if strings.EqualFold(path, "active") {
		if b, err := strconv.ParseBool(v); err == nil {
			return b
		}
	}
	return v
}
