package ldapstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// ProbeWrite asks the directory whether the bound identity may write the entry dn, without
// changing it: a Modify deletes a value of description that is not there. Directories check
// access before they apply the change, so the answer is "no such value" when the identity may
// write and "insufficient access" when it may not; the entry is left as it was (a failed
// Modify changes nothing, and the bridge's change readers skip failed operations). It
// returns nil when the write would be allowed and an error wrapping ErrDenied when not.
func (s *Store) ProbeWrite(ctx context.Context, dn string) error {
	var b [8]byte
	_, _ = rand.Read(b[:])
	req := ldap.NewModifyRequest(dn, nil)
	req.Delete("description", []string{"scimbridge-probe-" + hex.EncodeToString(b[:])})
	return s.withConn(ctx, "probe", false, func(c *ldap.Conn) error {
		err := wrap("probe write", dn, c.Modify(req))
		if errors.Is(err, ErrNoSuchAttribute) {
			return nil
		}
		if err == nil {
			// The value existed after all (it cannot, being random): the write went through.
			return &Error{Op: "probe write", DN: dn, Err: errors.New("the probe value existed"), kind: ErrInvalid}
		}
		return err
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
