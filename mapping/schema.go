package mapping

import (
	"fmt"
	"regexp"
	"strings"
)

// The schema URNs scimbridge serves.
const (
	UserSchemaURN       = "urn:ietf:params:scim:schemas:core:2.0:User"
	GroupSchemaURN      = "urn:ietf:params:scim:schemas:core:2.0:Group"
	EnterpriseSchemaURN = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
)

// The SCIM attribute types (RFC 7643 §2.3).
const (
	TypeString    = "string"
	TypeBoolean   = "boolean"
	TypeDecimal   = "decimal"
	TypeInteger   = "integer"
	TypeDateTime  = "dateTime"
	TypeBinary    = "binary"
	TypeReference = "reference"
	TypeComplex   = "complex"
)

// The SCIM mutability values (RFC 7643 §2.2).
const (
	ReadWrite = "readWrite"
	ReadOnly  = "readOnly"
	Immutable = "immutable"
	WriteOnly = "writeOnly"
)

// Schema describes the attributes of one resource type: its core schema and the extension
// schemas it carries. ApplyPatch and the conversions use it to canonicalise attribute names,
// check value types and refuse writes to read-only attributes. Build it with UserMap.Schema or
// GroupMap.Schema.
type Schema struct {
	// URN is the schema's id, e.g. UserSchemaURN.
	URN string
	// Name is the resource type: "User" or "Group" for core schemas.
	Name string
	// Attributes are the schema's attributes, in the order RFC 7643 lists them.
	Attributes []Attribute
	// Extensions are the extension schemas of the resource type (core schemas only).
	Extensions []Schema
}

// Attribute is one attribute of a Schema.
type Attribute struct {
	Name        string
	Type        string
	MultiValued bool
	Required    bool
	CaseExact   bool
	// Mutability is ReadWrite when empty.
	Mutability string
	// SubAttributes are the sub-attributes of a complex attribute.
	SubAttributes []Attribute
	// CanonicalValues, when set, are the values the attribute takes (RFC 7643 §2.4): the
	// types of emails, addresses … that are stored.
	CanonicalValues []string
}

func (a Attribute) readOnly() bool { return a.Mutability == ReadOnly }

// sub returns the sub-attribute named name (case-insensitive).
func (a Attribute) sub(name string) (Attribute, bool) {
	for _, s := range a.SubAttributes {
		if strings.EqualFold(s.Name, name) {
			return s, true
		}
	}
	return Attribute{}, false
}

// attribute returns the attribute named name (case-insensitive).
func (s Schema) attribute(name string) (Attribute, bool) {
	for _, a := range s.Attributes {
		if strings.EqualFold(a.Name, name) {
			return a, true
		}
	}
	return Attribute{}, false
}

// extension returns the extension schema whose URN is urn (case-insensitive).
func (s Schema) extension(urn string) (Schema, bool) {
	for _, e := range s.Extensions {
		if strings.EqualFold(e.URN, urn) {
			return e, true
		}
	}
	return Schema{}, false
}

// splitURN splits a URN-qualified attribute path ("urn:…:User:manager.value") into the
// declared schema it names and the rest ("manager.value"). ok is false when no declared schema
// (core or extension) is a prefix of path.
func (s Schema) splitURN(path string) (sch Schema, rest string, ok bool) {
	for _, cand := range append([]Schema{s}, s.Extensions...) {
		n := len(cand.URN)
		if len(path) > n && path[n] == ':' && strings.EqualFold(path[:n], cand.URN) && (!ok || n > len(sch.URN)) {
			sch, rest, ok = cand, path[n+1:], true
		}
	}
	return sch, rest, ok
}

func str(name string) Attribute { return Attribute{Name: name, Type: TypeString} }

func multiComplex(name string, subs ...Attribute) Attribute {
	return Attribute{Name: name, Type: TypeComplex, MultiValued: true, SubAttributes: subs}
}

// valueTypePrimary are the sub-attributes RFC 7643 gives emails, phoneNumbers, ims, photos,
// entitlements, roles and x509Certificates.
func valueTypePrimary(valueType string) []Attribute {
	return []Attribute{
		{Name: "value", Type: valueType},
		str("display"),
		str("type"),
		{Name: "primary", Type: TypeBoolean},
	}
}

func metaAttribute() Attribute {
	return Attribute{Name: "meta", Type: TypeComplex, Mutability: ReadOnly, SubAttributes: []Attribute{
		{Name: "resourceType", Type: TypeString, CaseExact: true, Mutability: ReadOnly},
		{Name: "created", Type: TypeDateTime, Mutability: ReadOnly},
		{Name: "lastModified", Type: TypeDateTime, Mutability: ReadOnly},
		{Name: "location", Type: TypeReference, CaseExact: true, Mutability: ReadOnly},
		{Name: "version", Type: TypeString, CaseExact: true, Mutability: ReadOnly},
	}}
}

func idAttribute() Attribute {
	return Attribute{Name: "id", Type: TypeString, CaseExact: true, Mutability: ReadOnly}
}

// coreUserAttributes are the attributes of RFC 7643 §4.1 plus the common id, externalId and
// meta (§3.1).
func coreUserAttributes() []Attribute {
	return []Attribute{
		idAttribute(),
		{Name: "externalId", Type: TypeString, CaseExact: true},
		metaAttribute(),
		{Name: "userName", Type: TypeString, Required: true},
		{Name: "name", Type: TypeComplex, SubAttributes: []Attribute{
			str("formatted"), str("familyName"), str("givenName"),
			str("middleName"), str("honorificPrefix"), str("honorificSuffix"),
		}},
		str("displayName"),
		str("nickName"),
		{Name: "profileUrl", Type: TypeReference},
		str("title"),
		str("userType"),
		str("preferredLanguage"),
		str("locale"),
		str("timezone"),
		{Name: "active", Type: TypeBoolean},
		{Name: "password", Type: TypeString, CaseExact: true, Mutability: WriteOnly},
		multiComplex("emails", valueTypePrimary(TypeString)...),
		multiComplex("phoneNumbers", valueTypePrimary(TypeString)...),
		multiComplex("ims", valueTypePrimary(TypeString)...),
		multiComplex("photos", valueTypePrimary(TypeReference)...),
		multiComplex("addresses",
			str("formatted"), str("streetAddress"), str("locality"), str("region"),
			str("postalCode"), str("country"), str("type"), Attribute{Name: "primary", Type: TypeBoolean}),
		{Name: "groups", Type: TypeComplex, MultiValued: true, Mutability: ReadOnly, SubAttributes: []Attribute{
			{Name: "value", Type: TypeString, Mutability: ReadOnly},
			{Name: "$ref", Type: TypeReference, Mutability: ReadOnly},
			{Name: "display", Type: TypeString, Mutability: ReadOnly},
			{Name: "type", Type: TypeString, Mutability: ReadOnly},
		}},
		multiComplex("entitlements", valueTypePrimary(TypeString)...),
		multiComplex("roles", valueTypePrimary(TypeString)...),
		multiComplex("x509Certificates", valueTypePrimary(TypeBinary)...),
	}
}

// enterpriseAttributes are the attributes of the enterprise User extension (RFC 7643 §4.3).
func enterpriseAttributes() []Attribute {
	return []Attribute{
		str("employeeNumber"),
		str("costCenter"),
		str("organization"),
		str("division"),
		str("department"),
		{Name: "manager", Type: TypeComplex, SubAttributes: []Attribute{
			str("value"),
			{Name: "$ref", Type: TypeReference},
			{Name: "displayName", Type: TypeString, Mutability: ReadOnly},
		}},
	}
}

// coreGroupAttributes are the attributes of RFC 7643 §4.2 plus id, externalId and meta.
// members.display is not in the RFC's schema but every client sends it.
func coreGroupAttributes() []Attribute {
	return []Attribute{
		idAttribute(),
		{Name: "externalId", Type: TypeString, CaseExact: true},
		metaAttribute(),
		{Name: "displayName", Type: TypeString, Required: true},
		{Name: "members", Type: TypeComplex, MultiValued: true, SubAttributes: []Attribute{
			{Name: "value", Type: TypeString, Mutability: Immutable},
			{Name: "$ref", Type: TypeReference, Mutability: Immutable},
			{Name: "type", Type: TypeString, Mutability: Immutable},
			str("display"),
		}},
	}
}

// ExtensionSchema is a custom extension schema declared in the configuration: its attributes
// are served in /Schemas and map to LDAP attributes like the core ones.
type ExtensionSchema struct {
	// URN is the schema id, e.g. "urn:ietf:params:scim:schemas:extension:acme:2.0:User".
	URN        string
	Attributes []ExtAttr
}

// ExtAttr is one attribute of an ExtensionSchema.
type ExtAttr struct {
	// Name is the SCIM attribute name (ALPHA *(ALPHA / DIGIT / "-" / "_")).
	Name string
	// Type is "string", "boolean", "integer" or "dateTime". In LDAP a boolean is stored as
	// TRUE/FALSE, an integer in decimal and a dateTime as GeneralizedTime.
	Type        string
	MultiValued bool
	// LDAP is the LDAP attribute holding the values, or "" for a declared but unmapped
	// attribute (accepted, ignored and reported in Ignored).
	LDAP string
}

var (
	attrNameRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]*$`)
	// urnRE is the URI form filter-parser accepts in attribute paths: colon-separated segments
	// of letters, digits, "-" and ".".
	urnRE = regexp.MustCompile(`^[uU][rR][nN](:[A-Za-z0-9.-]+)+$`)
)

var extTypes = []string{TypeString, TypeBoolean, TypeInteger, TypeDateTime}

// schema validates e and returns its Schema; reserved are the URNs it may not reuse.
func (e ExtensionSchema) schema(reserved ...string) (Schema, error) {
	if !urnRE.MatchString(e.URN) {
		return Schema{}, fmt.Errorf("extension %q: the URN must look like urn:segment:segment, with letters, digits, '-' and '.' in each segment", e.URN)
	}
	for _, r := range reserved {
		if strings.EqualFold(r, e.URN) {
			return Schema{}, fmt.Errorf("extension %q: the URN is already in use", e.URN)
		}
	}
	if len(e.Attributes) == 0 {
		return Schema{}, fmt.Errorf("extension %q: no attributes", e.URN)
	}
	s := Schema{URN: e.URN, Name: e.URN[strings.LastIndex(e.URN, ":")+1:]}
	for _, a := range e.Attributes {
		if !attrNameRE.MatchString(a.Name) {
			return Schema{}, fmt.Errorf("extension %q: attribute name %q is not a valid SCIM attribute name", e.URN, a.Name)
		}
		if _, dup := s.attribute(a.Name); dup {
			return Schema{}, fmt.Errorf("extension %q: attribute %q is declared twice", e.URN, a.Name)
		}
		typ := ""
		for _, t := range extTypes {
			if strings.EqualFold(t, a.Type) {
				typ = t
			}
		}
		if typ == "" {
			return Schema{}, fmt.Errorf("extension %q: attribute %q: type %q is not one of %s", e.URN, a.Name, a.Type, strings.Join(extTypes, ", "))
		}
		s.Attributes = append(s.Attributes, Attribute{Name: a.Name, Type: typ, MultiValued: a.MultiValued})
	}
	return s, nil
}
