package mapping

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"

	filter "github.com/scim2/filter-parser/v2"
)

// defaultUserAttributes are the documented defaults of [inbound.user_attributes]: every SCIM
// attribute Microsoft Entra ID sends by default that has a home in a stock OpenLDAP
// (core, cosine and inetorgperson schemas, inetOrgPerson and the classes it inherits), plus the
// few other attributes with an unambiguous stock home. Every LDAP attribute here is in the MUST
// or MAY list of inetOrgPerson, organizationalPerson or person (checked against
// /etc/ldap/schema of OpenLDAP 2.5).
var defaultUserAttributes = map[string]string{
	// uid: the login name; usually also the RDN attribute.
	"userName": "uid",
	// businessCategory: inetOrgPerson has no identifier attribute free for a foreign key
	// (uniqueIdentifier is cosine's but not allowed by inetOrgPerson; x500UniqueIdentifier is
	// a bit string). businessCategory is a multi-valued directory string that inetOrgPerson
	// and groupOfNames both allow and that directories rarely use for people or groups, so
	// users and groups keep externalId in the same attribute. It compares case-insensitively
	// (SCIM says caseExact): a filter externalId eq "ABC" also finds "abc".
	"externalId": "businessCategory",
	// cn is required by person. It holds the full name; when the client sends no
	// name.formatted, cn is derived (see UserToLDAP).
	"name.formatted": "cn",
	// sn is required by person; derived from userName when the client sends no familyName.
	"name.familyName": "sn",
	"name.givenName":  "givenName",
	// displayName is single-valued in inetOrgPerson, as in SCIM.
	"displayName": "displayName",
	// labeledURI: "URI [label]", built into slapd.
	"profileUrl":        "labeledURI",
	"title":             "title",
	"preferredLanguage": "preferredLanguage",
	// mail holds the work e-mail addresses, the primary one first (and addresses sent without
	// a type). Types without a mapping of their own (home, other) are not stored: they are
	// ignored like any unmapped attribute, never stored as work. mail is an IA5String: the
	// directory refuses non-ASCII addresses.
	`emails[type eq "work"].value`: "mail",
	// Telephone numbers are PrintableStrings in LDAP: letters, digits, space and '()+,-./:=?.
	`phoneNumbers[type eq "work"].value`:   "telephoneNumber",
	`phoneNumbers[type eq "mobile"].value`: "mobile",
	`phoneNumbers[type eq "fax"].value`:    "facsimileTelephoneNumber",
	`phoneNumbers[type eq "home"].value`:   "homePhone",
	`phoneNumbers[type eq "pager"].value`:  "pager",
	// The work address lives in organizationalPerson's address attributes; country has no
	// home there (c is not allowed by inetOrgPerson) and is unmapped.
	`addresses[type eq "work"].streetAddress`: "street",
	`addresses[type eq "work"].locality`:      "l",
	`addresses[type eq "work"].region`:        "st",
	`addresses[type eq "work"].postalCode`:    "postalCode",
	// postalAddress uses the Postal Address syntax: SCIM's "\n" line breaks become '$'.
	`addresses[type eq "work"].formatted`: "postalAddress",
	`addresses[type eq "home"].formatted`: "homePostalAddress",
	// Entra ID sends the office (physicalDeliveryOfficeName) as the "other" address;
	// organizationalPerson has the very attribute.
	`addresses[type eq "other"].formatted`: "physicalDeliveryOfficeName",
	// Enterprise extension. department → departmentNumber rather than ou: ou on person
	// entries is often used by ACLs and tools as if it named a container, and
	// departmentNumber is inetOrgPerson's own attribute for the department (a directory
	// string, so names fit). costCenter and division have no stock home and are unmapped.
	EnterpriseSchemaURN + ":employeeNumber": "employeeNumber",
	EnterpriseSchemaURN + ":department":     "departmentNumber",
	EnterpriseSchemaURN + ":organization":   "o",
	// manager holds the manager's DN; the SCIM side carries the manager's id.
	EnterpriseSchemaURN + ":manager": "manager",
}

// SchemaAuxiliaryClass is the auxiliary object class of the optional schema shipped in
// etc/schema, in every variant (OpenLDAP, 389-DS, Active Directory): it gives the attributes of
// the dialect's Profile.Schema a home on user entries.
const SchemaAuxiliaryClass = "scimbridgePerson"

// schemaUserAttributes are the mappings the optional schema adds to the OpenLDAP and 389-DS
// defaults, for what Microsoft Entra ID sends by default (and the enterprise attributes) that
// inetOrgPerson cannot hold: the work address's country (co, cosine's friendlyCountryName: free
// text, not the two-letter c), the "other" e-mail addresses (proxyAddresses), costCenter and
// division.
var schemaUserAttributes = map[string]string{
	`addresses[type eq "work"].country`: "co",
	`emails[type eq "other"].value`:     "scimbridgeOtherMail",
	EnterpriseSchemaURN + ":costCenter": "scimbridgeCostCenter",
	EnterpriseSchemaURN + ":division":   "scimbridgeDivision",
}

// DefaultUserAttributes returns the default [inbound.user_attributes] table: SCIM attribute
// path → LDAP attribute.
func DefaultUserAttributes() map[string]string {
	out := make(map[string]string, len(defaultUserAttributes))
	for k, v := range defaultUserAttributes {
		out[k] = v
	}
	return out
}

type slotKind int

const (
	slotSimple  slotKind = iota // a single-valued simple attribute: userName, externalId
	slotSub                     // a sub-attribute of a single-valued complex attribute: name.givenName
	slotTyped                   // a sub-attribute of the elements of one type: emails[type eq "work"].value
	slotExt                     // a simple attribute of an extension schema
	slotManager                 // the enterprise manager: an id in SCIM, a DN in LDAP
)

// slot is one mappable SCIM attribute path and the LDAP attribute it maps to.
type slot struct {
	key      string // canonical path: the key in the configuration table
	kind     slotKind
	urn      string // schema holding attr
	attr     string // attribute name as the schema spells it
	sub      string // sub-attribute (slotSub, slotTyped)
	typ      string // element type, lower case (slotTyped)
	scimType string
	multi    bool // a multi-valued extension attribute
	ldap     string
}

// typedAttr is a multi-valued complex attribute whose elements are told apart by type.
type typedAttr struct {
	name  string
	types []string // canonical types (RFC 7643 §4.1.2), in the order elements are returned
	subs  []string // mappable sub-attributes
	// fallbackAll: elements of a type without a mapping of their own use the "work" mapping.
	// Elements without a type always do.
	fallbackAll bool
}

var typedAttrs = []typedAttr{
	{name: "emails", types: []string{"work", "home", "other"}, subs: []string{"value"}},
	{name: "phoneNumbers", types: []string{"work", "mobile", "home", "fax", "pager", "other"}, subs: []string{"value"}},
	{name: "ims", types: []string{"aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo"}, subs: []string{"value"}},
	{name: "photos", types: []string{"photo", "thumbnail"}, subs: []string{"value"}},
	{name: "addresses", types: []string{"work", "home", "other"}, subs: []string{"formatted", "streetAddress", "locality", "region", "postalCode", "country"}},
}

// fallbackType is the type of elements that come without one.
const fallbackType = "work"

func typedAttrNamed(name string) (typedAttr, bool) {
	for _, t := range typedAttrs {
		if strings.EqualFold(t.name, name) {
			return t, true
		}
	}
	return typedAttr{}, false
}

func typedKey(attr, typ, sub string) string {
	return fmt.Sprintf("%s[type eq %q].%s", attr, typ, sub)
}

var typeValueRE = regexp.MustCompile(`^[a-z0-9][a-z0-9 _.-]*$`)

// attrMap is the part of UserMap and GroupMap that maps SCIM attribute paths to LDAP attributes.
type attrMap struct {
	table  string // configuration table name, for messages
	schema Schema
	slots  []slot
}

// find returns the index of the slot with the canonical key (case-insensitive), or -1.
func (m *attrMap) find(key string) int {
	for i, s := range m.slots {
		if strings.EqualFold(s.key, key) {
			return i
		}
	}
	return -1
}

// slotByKey returns the slot with the canonical key.
func (m attrMap) slotByKey(key string) (slot, bool) {
	if i := m.find(key); i >= 0 {
		return m.slots[i], true
	}
	return slot{}, false
}

// Mappings returns every mapped SCIM attribute path and its LDAP attribute.
func (m attrMap) Mappings() map[string]string {
	out := map[string]string{}
	for _, s := range m.slots {
		if s.ldap != "" {
			out[s.key] = s.ldap
		}
	}
	return out
}

// LDAPAttr returns the LDAP attribute that the SCIM attribute path (in the syntax of the
// configuration keys, any case) maps to, or "" when it is unmapped or unknown.
func (m attrMap) LDAPAttr(path string) string {
	p, err := filter.ParsePath([]byte(path))
	if err != nil {
		return ""
	}
	s, err := m.slotFor(p)
	if err != nil {
		return ""
	}
	if i := m.find(s.key); i >= 0 {
		return m.slots[i].ldap
	}
	return ""
}

// Schema returns the resource's schema with its extensions, for ApplyPatch.
func (m attrMap) Schema() Schema { return m.schema }

// slotFor resolves a parsed configuration key to the slot it names (without its LDAP
// attribute), or explains why it names no mappable attribute.
func (m *attrMap) slotFor(p filter.Path) (slot, error) {
	ap := p.AttributePath
	sch := m.schema
	if uri := ap.URI(); uri != "" {
		whole := uri + ":" + ap.AttributeName
		if _, ok := m.schema.extension(whole); ok || strings.EqualFold(whole, m.schema.URN) {
			return slot{}, errors.New("a whole schema cannot be mapped: map its attributes")
		}
		if !strings.EqualFold(uri, m.schema.URN) {
			ext, ok := m.schema.extension(uri)
			if !ok {
				return slot{}, fmt.Errorf("schema %q is not declared", uri)
			}
			sch = ext
		}
	}
	a, ok := sch.attribute(ap.AttributeName)
	if !ok {
		return slot{}, errors.New("unknown SCIM attribute")
	}
	core := strings.EqualFold(sch.URN, m.schema.URN)
	if core {
		switch a.Name {
		case "id":
			return slot{}, errors.New("id is the directory's id attribute (ldap id_attribute), not a mapping")
		case "meta", "groups":
			return slot{}, fmt.Errorf("%s is read-only and computed by the bridge", a.Name)
		case "active":
			return slot{}, errors.New("active is stored by the active marker, not a mapping")
		case "password":
			return slot{}, errors.New("password is set with the directory's password mechanism, never stored in an attribute")
		case "members":
			// Handled by GroupMap before slotFor is called.
			return slot{}, errors.New("members cannot be combined with a filter or sub-attribute")
		}
	}
	sub := ap.SubAttributeName()
	if p.ValueExpression != nil {
		return m.typedSlotFor(a, p)
	}
	switch {
	case !core && a.Name == "manager" && strings.EqualFold(sch.URN, EnterpriseSchemaURN):
		if sub != "" && !strings.EqualFold(sub, "value") {
			return slot{}, errors.New("only manager (the manager's id ↔ DN) can be mapped")
		}
		return slot{key: sch.URN + ":manager", kind: slotManager, urn: sch.URN, attr: a.Name, scimType: TypeString}, nil
	case a.Type == TypeComplex && a.MultiValued:
		if _, ok := typedAttrNamed(a.Name); ok {
			return slot{}, fmt.Errorf(`%s needs a type filter, e.g. %s`, a.Name, typedKey(a.Name, "work", "value"))
		}
		return slot{}, fmt.Errorf("%s cannot be mapped", a.Name)
	case a.Type == TypeComplex:
		if sub == "" {
			return slot{}, fmt.Errorf("%s is complex: map its sub-attributes, e.g. %s.%s", a.Name, a.Name, a.SubAttributes[0].Name)
		}
		sa, ok := a.sub(sub)
		if !ok {
			return slot{}, fmt.Errorf("%q is not a sub-attribute of %s", sub, a.Name)
		}
		return slot{key: a.Name + "." + sa.Name, kind: slotSub, urn: sch.URN, attr: a.Name, sub: sa.Name, scimType: sa.Type}, nil
	case sub != "":
		return slot{}, fmt.Errorf("%s has no sub-attributes", a.Name)
	case core:
		return slot{key: a.Name, kind: slotSimple, urn: sch.URN, attr: a.Name, scimType: a.Type}, nil
	default:
		return slot{key: sch.URN + ":" + a.Name, kind: slotExt, urn: sch.URN, attr: a.Name, scimType: a.Type, multi: a.MultiValued}, nil
	}
}

// typedSlotFor resolves `attr[type eq "t"].sub`.
func (m *attrMap) typedSlotFor(a Attribute, p filter.Path) (slot, error) {
	ta, ok := typedAttrNamed(a.Name)
	if !ok || p.AttributePath.SubAttribute != nil {
		return slot{}, fmt.Errorf("%s cannot be mapped with a filter", a.Name)
	}
	want := fmt.Errorf(`the filter must be [type eq "<type>"], e.g. %s`, typedKey(ta.name, "work", ta.subs[0]))
	ae, ok := p.ValueExpression.(*filter.AttributeExpression)
	if !ok || ae == nil || !strings.EqualFold(ae.AttributePath.AttributeName, "type") ||
		ae.AttributePath.SubAttribute != nil || ae.AttributePath.URIPrefix != nil || ae.Operator != filter.EQ {
		return slot{}, want
	}
	raw, ok := ae.CompareValue.(string)
	if !ok {
		return slot{}, want
	}
	typ := strings.ToLower(unescapeLiteral(raw))
	if !typeValueRE.MatchString(typ) {
		return slot{}, fmt.Errorf("type %q: use letters, digits, space, '_', '-' and '.'", typ)
	}
	if p.SubAttribute == nil {
		return slot{}, fmt.Errorf("name the sub-attribute: %s", typedKey(ta.name, typ, ta.subs[0]))
	}
	sub := ""
	for _, s := range ta.subs {
		if strings.EqualFold(s, *p.SubAttribute) {
			sub = s
		}
	}
	if sub == "" {
		return slot{}, fmt.Errorf("%s.%s cannot be mapped; mappable: %s", ta.name, *p.SubAttribute, strings.Join(ta.subs, ", "))
	}
	return slot{key: typedKey(ta.name, typ, sub), kind: slotTyped, urn: m.schema.URN, attr: ta.name, sub: sub, typ: typ, scimType: TypeString}, nil
}

// apply sets the mapping of one configuration key; ldap "" unmaps it.
func (m *attrMap) apply(key, ldap string) error {
	p, err := filter.ParsePath([]byte(key))
	if err != nil {
		return fmt.Errorf("%s: %q: not a SCIM attribute path", m.table, key)
	}
	s, err := m.slotFor(p)
	if err != nil {
		return fmt.Errorf("%s: %q: %w", m.table, key, err)
	}
	if ldap != "" {
		if err := checkLDAPName(ldap); err != nil {
			return fmt.Errorf("%s: %q: %w", m.table, key, err)
		}
	}
	if i := m.find(s.key); i >= 0 {
		m.slots[i].ldap = ldap
		return nil
	}
	s.ldap = ldap
	m.slots = append(m.slots, s)
	return nil
}

// checkConflicts refuses two SCIM attributes stored in one LDAP attribute, which could not be
// told apart when read back. Only the values of several types of one multi-valued attribute
// (emails work and home → mail) may share an attribute; reserved are further LDAP attributes
// owned elsewhere.
func (m *attrMap) checkConflicts(reserved map[string]string) error {
	byAttr := map[string][]slot{}
	var errs []error
	for _, s := range m.slots {
		if s.ldap == "" {
			continue
		}
		l := strings.ToLower(s.ldap)
		if owner, ok := reserved[l]; ok {
			errs = append(errs, fmt.Errorf("%s: %q: LDAP attribute %q is already used for %s", m.table, s.key, s.ldap, owner))
		}
		byAttr[l] = append(byAttr[l], s)
	}
	for _, l := range sortedKeys(byAttr) {
		group := byAttr[l]
		if len(group) < 2 {
			continue
		}
		shared := true
		for _, s := range group {
			if s.kind != slotTyped || s.attr != group[0].attr || s.sub != "value" {
				shared = false
			}
		}
		if !shared {
			keys := make([]string, len(group))
			for i, s := range group {
				keys[i] = fmt.Sprintf("%q", s.key)
			}
			errs = append(errs, fmt.Errorf("%s: %s all map to LDAP attribute %q; map one of them to \"\" or elsewhere", m.table, strings.Join(keys, ", "), group[0].ldap))
		}
	}
	return errors.Join(errs...)
}

// ldapAttrs returns the mapped LDAP attributes, sorted and unique (case-insensitive).
func (m attrMap) ldapAttrs(extra ...string) []string {
	seen := map[string]bool{}
	var out []string
	for _, a := range append(m.mappedLDAP(), extra...) {
		if a == "" || seen[strings.ToLower(a)] {
			continue
		}
		seen[strings.ToLower(a)] = true
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return strings.ToLower(out[i]) < strings.ToLower(out[j]) })
	return out
}

func (m attrMap) mappedLDAP() []string {
	var out []string
	for _, s := range m.slots {
		if s.ldap != "" {
			out = append(out, s.ldap)
		}
	}
	return out
}

// extensionSlots builds the schemas and slots of the configured extension schemas.
func extensionSlots(exts []ExtensionSchema, reserved ...string) ([]Schema, []slot, error) {
	var (
		schemas []Schema
		slots   []slot
		errs    []error
	)
	for _, e := range exts {
		s, err := e.schema(reserved...)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		reserved = append(reserved, e.URN)
		for i, a := range s.Attributes {
			ldap := e.Attributes[i].LDAP
			if ldap != "" {
				if err := checkLDAPName(ldap); err != nil {
					errs = append(errs, fmt.Errorf("extension %q: attribute %q: %w", e.URN, a.Name, err))
					continue
				}
			}
			slots = append(slots, slot{key: s.URN + ":" + a.Name, kind: slotExt, urn: s.URN, attr: a.Name, scimType: a.Type, multi: a.MultiValued, ldap: ldap})
		}
		schemas = append(schemas, s)
	}
	return schemas, slots, errors.Join(errs...)
}

// UserMap maps the attributes of the SCIM User resource (core schema, enterprise extension and
// configured extensions) to the LDAP attributes of an inetOrgPerson entry. Build it with
// NewUserMap or DefaultUserMap; it is immutable and safe for concurrent use.
type UserMap struct {
	attrMap
	// typed indexes the typed slots (emails, phoneNumbers, addresses) once the map is built,
	// so that reading a user does not rescan every slot per type and sub-attribute. Shared by
	// copies; never changed after NewUserMap.
	typed *typedIndex
	// deriveNames: cn and sn are filled in when not sent (Profile.DerivedNames).
	deriveNames bool
}

// typedIndex is the typed slots by attribute, in slot order.
type typedIndex struct {
	types map[string][]string // attribute → its types, first appearance first
	slots map[[3]string]slot  // {attribute, type, sub-attribute} → the first such slot
}

func newTypedIndex(slots []slot) *typedIndex {
	ix := &typedIndex{types: map[string][]string{}, slots: map[[3]string]slot{}}
	for _, s := range slots {
		if s.kind != slotTyped {
			continue
		}
		k := [3]string{s.attr, s.typ, s.sub}
		if _, ok := ix.slots[k]; ok {
			continue
		}
		if !slices.Contains(ix.types[s.attr], s.typ) {
			ix.types[s.attr] = append(ix.types[s.attr], s.typ)
		}
		ix.slots[k] = s
	}
	return ix
}

// NewUserMap returns the default user map (DefaultUserAttributes) changed by overrides and
// extended by the custom extension schemas. A key of overrides is a SCIM attribute path in
// any case — "title", "name.givenName", `emails[type eq "work"].value`,
// "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:costCenter" — and its value the
// LDAP attribute, or "" to leave the SCIM attribute unmapped. The error lists every problem,
// each naming its key.
func NewUserMap(overrides map[string]string, extensions ...ExtensionSchema) (UserMap, error) {
	return NewUserMapFor(openLDAPProfile(), overrides, extensions...)
}

// NewUserMapFor is NewUserMap with the defaults of profile p (ProfileFor): its user attribute
// map, and whether cn and sn are derived.
func NewUserMapFor(p Profile, overrides map[string]string, extensions ...ExtensionSchema) (UserMap, error) {
	extSchemas, extSlots, err := extensionSlots(extensions, UserSchemaURN, EnterpriseSchemaURN, GroupSchemaURN)
	if err != nil {
		return UserMap{}, fmt.Errorf("mapping: user_attributes: %w", err)
	}
	enterprise := Schema{URN: EnterpriseSchemaURN, Name: "EnterpriseUser", Attributes: enterpriseAttributes()}
	m := UserMap{attrMap: attrMap{
		table: "user_attributes",
		schema: Schema{
			URN: UserSchemaURN, Name: "User", Attributes: coreUserAttributes(),
			Extensions: append([]Schema{enterprise}, extSchemas...),
		},
	}}
	// Every mappable slot, mapped or not, in the order resources are written and read.
	for _, a := range m.schema.Attributes {
		switch {
		case a.Name == "id" || a.Name == "active" || a.Name == "password" || a.readOnly():
		case a.Type == TypeComplex && !a.MultiValued:
			for _, sa := range a.SubAttributes {
				m.slots = append(m.slots, slot{key: a.Name + "." + sa.Name, kind: slotSub, urn: UserSchemaURN, attr: a.Name, sub: sa.Name, scimType: sa.Type})
			}
		case a.Type == TypeComplex:
			if ta, ok := typedAttrNamed(a.Name); ok {
				for _, typ := range ta.types {
					for _, sub := range ta.subs {
						m.slots = append(m.slots, slot{key: typedKey(ta.name, typ, sub), kind: slotTyped, urn: UserSchemaURN, attr: ta.name, sub: sub, typ: typ, scimType: TypeString})
					}
				}
			}
		default:
			m.slots = append(m.slots, slot{key: a.Name, kind: slotSimple, urn: UserSchemaURN, attr: a.Name, scimType: a.Type})
		}
	}
	for _, a := range enterprise.Attributes {
		if a.Name == "manager" {
			m.slots = append(m.slots, slot{key: EnterpriseSchemaURN + ":manager", kind: slotManager, urn: EnterpriseSchemaURN, attr: a.Name, scimType: TypeString})
			continue
		}
		m.slots = append(m.slots, slot{key: EnterpriseSchemaURN + ":" + a.Name, kind: slotExt, urn: EnterpriseSchemaURN, attr: a.Name, scimType: a.Type})
	}
	m.slots = append(m.slots, extSlots...)
	for k, v := range p.UserAttributes {
		i := m.find(k)
		if i < 0 {
			return UserMap{}, fmt.Errorf("mapping: profile %s: %q is not a default-mappable attribute", p.Dialect, k)
		}
		m.slots[i].ldap = v
	}
	m.deriveNames = p.DerivedNames
	var errs []error
	for _, k := range sortedKeys(overrides) {
		if err := m.apply(k, overrides[k]); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return UserMap{}, fmt.Errorf("mapping: %w", err)
	}
	if err := m.checkConflicts(nil); err != nil {
		return UserMap{}, fmt.Errorf("mapping: %w", err)
	}
	m.typed = newTypedIndex(m.slots)
	return m, nil
}

// DefaultUserMap returns the user map of DefaultUserAttributes.
func DefaultUserMap() UserMap {
	m, err := NewUserMap(nil)
	if err != nil {
		panic(err) // The defaults are constant and covered by tests.
	}
	return m
}

// The LDAP attributes inetOrgPerson requires (through person) besides objectClass. UserToLDAP
// always produces both.
const (
	ldapCN = "cn"
	ldapSN = "sn"
)

// SearchAttributes returns the LDAP attributes to request when reading users: every mapped
// attribute, cn and sn, the marker's, idAttr, the operational attributes behind meta, and
// extra.
func (m UserMap) SearchAttributes(marker ActiveMarker, idAttr string, extra ...string) []string {
	return m.ldapAttrs(append([]string{
		ldapCN, ldapSN, marker.Attr, marker.LockAttr, idAttr,
		"entryCSN", "createTimestamp", "modifyTimestamp",
	}, extra...)...)
}

// DerivesNames reports whether UserToLDAP fills in cn and sn (inetOrgPerson requires them).
func (m UserMap) DerivesNames() bool { return m.deriveNames }
