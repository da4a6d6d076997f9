package ldapstore

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/go-ldap/ldap/v3"
)

// Dialect is the kind of directory server, which decides the stable-id attribute, the change
// log and the disabled marker.
type Dialect string

// The dialects scimbridge knows.
const (
	DialectAuto     Dialect = "auto"
	DialectOpenLDAP Dialect = "openldap"
	Dialect389DS    Dialect = "389ds"
	DialectAD       Dialect = "ad"
	DialectGeneric  Dialect = "generic"
)

// Dialects lists the values accepted in configuration.
var Dialects = []Dialect{DialectAuto, DialectOpenLDAP, Dialect389DS, DialectAD, DialectGeneric}

// IDAttribute is the attribute holding each entry's stable id under this dialect.
func (d Dialect) IDAttribute() string {
	switch d {
	case Dialect389DS:
		return "nsUniqueId"
	case DialectAD:
		return "objectGUID"
	default:
		return "entryUUID"
	}
}

// Well-known control and extension OIDs.
const (
	OIDAssertion      = "1.3.6.1.1.12"
	OIDServerSideSort = "1.2.840.113556.1.4.473"
	OIDVLV            = "2.16.840.1.113730.3.4.9"
	OIDPagedResults   = "1.2.840.113556.1.4.319"
	OIDPasswordModify = "1.3.6.1.4.1.4203.1.11.1"
	oidADCapability   = "1.2.840.113556.1.4.800"
)

// RootDSE is what the server says about itself.
type RootDSE struct {
	Dialect           Dialect
	VendorName        string
	VendorVersion     string
	NamingContexts    []string
	SupportedControls []string
	SupportedExts     []string
	// SubschemaDN is where the server publishes its schema (the root DSE's subschemaSubentry:
	// cn=Subschema on OpenLDAP, cn=schema on 389-DS, CN=Aggregate,CN=Schema,CN=Configuration,…
	// on Active Directory).
	SubschemaDN string
	// Raw holds every attribute read, for `scimbridge status` and debugging.
	Raw map[string][]string
}

// Supports reports whether the server advertises a control or extended operation.
func (r *RootDSE) Supports(oid string) bool {
	return slices.Contains(r.SupportedControls, oid) || slices.Contains(r.SupportedExts, oid)
}

// DetectDialect names the dialect a root DSE describes.
func DetectDialect(raw map[string][]string) Dialect {
	get := func(name string) []string {
		for k, v := range raw {
			if strings.EqualFold(k, name) {
				return v
			}
		}
		return nil
	}
	has := func(name, want string) bool {
		for _, v := range get(name) {
			if strings.EqualFold(v, want) || strings.Contains(strings.ToLower(v), strings.ToLower(want)) {
				return true
			}
		}
		return false
	}
	switch {
	case has("supportedCapabilities", oidADCapability) || len(get("forestFunctionality")) > 0:
		return DialectAD
	case has("vendorName", "389 Project") || has("vendorVersion", "389-Directory") || has("vendorName", "Fedora Project"):
		return Dialect389DS
	case has("objectClass", "OpenLDAProotDSE") || has("structuralObjectClass", "OpenLDAProotDSE"):
		return DialectOpenLDAP
	}
	return DialectGeneric
}

// RootDSE reads (once) and returns the server's root DSE, with the dialect settled: the
// configured one, or the detected one when the configuration says auto.
func (s *Store) RootDSE(ctx context.Context) (*RootDSE, error) {
	s.mu.Lock()
	if s.rootDSE != nil {
		r := s.rootDSE
		s.mu.Unlock()
		return r, nil
	}
	s.mu.Unlock()
	var raw map[string][]string
	err := s.withConn(ctx, "rootdse", true, func(c *ldap.Conn) error {
		res, err := c.Search(ldap.NewSearchRequest("", ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1, 0, false,
			"(objectClass=*)", []string{"*", "+"}, nil))
		if err != nil {
			return wrap("read root DSE", "", err)
		}
		if len(res.Entries) != 1 {
			return &Error{Op: "read root DSE", Err: fmt.Errorf("got %d entries", len(res.Entries)), kind: ErrUnsupported}
		}
		raw = attrsOf(res.Entries[0])
		return nil
	})
	if err != nil {
		return nil, err
	}
	r := &RootDSE{Raw: raw}
	first := func(name string) string {
		for k, v := range raw {
			if strings.EqualFold(k, name) && len(v) > 0 {
				return v[0]
			}
		}
		return ""
	}
	all := func(name string) []string {
		for k, v := range raw {
			if strings.EqualFold(k, name) {
				return v
			}
		}
		return nil
	}
	r.VendorName, r.VendorVersion = first("vendorName"), first("vendorVersion")
	r.NamingContexts = all("namingContexts")
	r.SupportedControls = all("supportedControl")
	r.SupportedExts = all("supportedExtension")
	r.SubschemaDN = first("subschemaSubentry")
	if r.SubschemaDN == "" {
		r.SubschemaDN = defaultSubschemaDN
	}
	r.Dialect = s.cfg.Dialect
	if r.Dialect == "" || r.Dialect == DialectAuto {
		r.Dialect = DetectDialect(raw)
	}
	s.mu.Lock()
	s.rootDSE = r
	s.mu.Unlock()
	s.logger.Info().Str("dialect", string(r.Dialect)).Str("vendor", r.VendorName).Msg("directory detected")
	return r, nil
}

// Dialect is the settled dialect; it reads the root DSE on first use.
func (s *Store) Dialect(ctx context.Context) (Dialect, error) {
	r, err := s.RootDSE(ctx)
	if err != nil {
		return "", err
	}
	return r.Dialect, nil
}

// defaultSubschemaDN is OpenLDAP's subschema entry, used when the root DSE names none.
const defaultSubschemaDN = "cn=Subschema"

// HasAttributeType reports whether the server's subschema defines the attribute type name
// (e.g. pwdAccountLockedTime when ppolicy is loaded). The subschema entry is the one the root
// DSE names in subschemaSubentry, which differs between servers.
func (s *Store) HasAttributeType(ctx context.Context, name string) (bool, error) {
	dse, err := s.RootDSE(ctx)
	if err != nil {
		return false, err
	}
	dn := dse.SubschemaDN
	var found bool
	err = s.withConn(ctx, "subschema", true, func(c *ldap.Conn) error {
		res, err := c.Search(ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1, 0, false,
			"(objectClass=subschema)", []string{"attributeTypes"}, nil))
		if err != nil {
			return wrap("read subschema", dn, err)
		}
		needle := "'" + strings.ToLower(name) + "'"
		for _, e := range res.Entries {
			for _, def := range e.GetAttributeValues("attributeTypes") {
				if strings.Contains(strings.ToLower(def), needle) {
					found = true
					return nil
				}
			}
		}
		return nil
	})
	return found, err
}
