package ldapstore

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// OIDNoOp is OpenLDAP's No-Op control: the server runs a write through its schema and access
// checks and then discards it, answering resultNoOperation.
const OIDNoOp = "1.3.6.1.4.1.4203.666.5.2"

// resultNoOperation is the result code of a write that carried the No-Op control and would
// have succeeded.
const resultNoOperation = 0x410e

// ProbeAdd asks the directory whether the bound identity may add the entry dn with attrs,
// without adding it: the request carries the critical No-Op control, so the server checks
// the schema and its access control and then discards the write. It returns nil when the
// add would succeed, an error wrapping ErrDenied when access control refuses it, ErrInvalid
// when the schema does, and ErrUnsupported when the server does not know the control (then
// nothing can be learned without really writing).
func (s *Store) ProbeAdd(ctx context.Context, dn string, attrs map[string][]string) error {
	req := ldap.NewAddRequest(dn, []ldap.Control{ldap.NewControlString(OIDNoOp, true, "")})
	for _, name := range sortedKeys(attrs) {
		if len(attrs[name]) > 0 {
			req.Attribute(name, attrs[name])
		}
	}
	return s.withConn(ctx, "probe", false, func(c *ldap.Conn) error {
		err := c.Add(req)
		if err == nil || ldap.IsErrorWithCode(err, resultNoOperation) {
			// A server that ignored the control really added the entry: take it away.
			if err == nil {
				_ = c.Del(ldap.NewDelRequest(dn, nil))
			}
			return nil
		}
		return wrap("probe add", dn, err)
	})
}

// Schema is what the server's subschema entry declares, names lower-cased.
type Schema struct {
	// AttributeTypes holds every name (and alias) of every attribute type.
	AttributeTypes map[string]bool
	// ObjectClasses holds every name of every object class.
	ObjectClasses map[string]bool
}

// HasAttribute reports whether the schema defines the attribute type name (any alias, any case).
func (sc *Schema) HasAttribute(name string) bool { return sc.AttributeTypes[strings.ToLower(name)] }

// HasObjectClass reports whether the schema defines the object class name.
func (sc *Schema) HasObjectClass(name string) bool { return sc.ObjectClasses[strings.ToLower(name)] }

// nameRE finds the NAME of an RFC 4512 definition: NAME 'x' or NAME ( 'x' 'y' ).
var nameRE = regexp.MustCompile(`NAME\s+(?:'([^']+)'|\(\s*((?:'[^']+'\s*)+)\))`)

// schemaNames returns the lower-cased names of an attribute type or object class description.
func schemaNames(def string) []string {
	m := nameRE.FindStringSubmatch(def)
	if m == nil {
		return nil
	}
	if m[1] != "" {
		return []string{strings.ToLower(m[1])}
	}
	var out []string
	for _, q := range strings.Fields(m[2]) {
		out = append(out, strings.ToLower(strings.Trim(q, "'")))
	}
	return out
}

// ReadSchema reads the subschema entry the root DSE names (cn=Subschema when it names none).
func (s *Store) ReadSchema(ctx context.Context) (*Schema, error) {
	base := "cn=Subschema"
	if dse, err := s.RootDSE(ctx); err == nil {
		for k, v := range dse.Raw {
			if strings.EqualFold(k, "subschemaSubentry") && len(v) > 0 {
				base = v[0]
			}
		}
	}
	e, err := s.Get(ctx, base, []string{"attributeTypes", "objectClasses"})
	if err != nil {
		return nil, err
	}
	sc := &Schema{AttributeTypes: map[string]bool{}, ObjectClasses: map[string]bool{}}
	for _, def := range e.Get("attributeTypes") {
		for _, n := range schemaNames(def) {
			sc.AttributeTypes[n] = true
		}
	}
	for _, def := range e.Get("objectClasses") {
		for _, n := range schemaNames(def) {
			sc.ObjectClasses[n] = true
		}
	}
	if len(sc.AttributeTypes) == 0 {
		return nil, &Error{Op: "read subschema", DN: base, Err: errors.New("no attributeTypes readable"), kind: ErrDenied}
	}
	return sc, nil
}

// ParseTime reads an LDAP generalized time ("20240102030405Z", fractions and offsets allowed).
func ParseTime(v string) (time.Time, error) {
	t, err := parseGenTime(v)
	if err != nil {
		return time.Time{}, fmt.Errorf("ldapstore: %w", err)
	}
	return t, nil
}

// FormatTime writes t as an LDAP generalized time in UTC with whole seconds, for filters.
func FormatTime(t time.Time) string { return t.UTC().Format(genTimeSeconds) }

// CSNTime reads the time of an OpenLDAP CSN (entryCSN, contextCSN).
func CSNTime(csn string) (time.Time, bool) { return csnTime(csn) }
