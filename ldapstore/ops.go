package ldapstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/go-ldap/ldap/v3"

	"github.com/scimbridge/scimbridge/mapping"
)

// Scope of a search.
type Scope int

// Search scopes.
const (
	ScopeBase Scope = iota
	ScopeOne
	ScopeSub
)

func (sc Scope) ldap() int {
	switch sc {
	case ScopeBase:
		return ldap.ScopeBaseObject
	case ScopeOne:
		return ldap.ScopeSingleLevel
	}
	return ldap.ScopeWholeSubtree
}

// Search is a search request in neutral terms. Filter is an LDAP filter string whose values
// the caller escaped (EscapeFilter, or RenderFilter of a mapping.LDAPFilter).
type Search struct {
	Base   string
	Scope  Scope
	Filter string
	Attrs  []string
}

// EscapeFilter escapes a value for use in an LDAP filter (RFC 4515).
func EscapeFilter(v string) string { return ldap.EscapeFilter(v) }

// EscapeDN escapes one RDN value (never a whole DN).
func EscapeDN(v string) string { return ldap.EscapeDN(v) }

// Walk streams every entry matching q to fn, page by page on one connection, so memory does
// not grow with the directory. fn's error stops the walk and is returned as is. A walk is
// retried from the start only if the connection dropped before fn saw any entry.
func (s *Store) Walk(ctx context.Context, q Search, fn func(mapping.Entry) error) error {
	return s.WalkWith(ctx, q, SearchOptions{}, fn)
}

// SearchAll collects what Walk streams; for small, bounded results only.
func (s *Store) SearchAll(ctx context.Context, q Search) ([]mapping.Entry, error) {
	var out []mapping.Entry
	err := s.Walk(ctx, q, func(e mapping.Entry) error {
		out = append(out, e)
		return nil
	})
	return out, err
}

// Get reads one entry by DN; ErrNotFound when it does not exist.
func (s *Store) Get(ctx context.Context, dn string, attrs []string) (mapping.Entry, error) {
	var out mapping.Entry
	err := s.withConn(ctx, "get", true, func(c *ldap.Conn) error {
		res, err := c.Search(ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1, 0, false,
			"(objectClass=*)", s.rangeRequest(attrs), nil))
		if err != nil {
			return wrap("get", dn, err)
		}
		if len(res.Entries) != 1 {
			return &Error{Op: "get", DN: dn, Err: fmt.Errorf("%d entries", len(res.Entries)), kind: ErrNotFound}
		}
		if err := s.completeRanges(c, res.Entries[0]); err != nil {
			return err
		}
		out = toEntry(res.Entries[0])
		return nil
	})
	return out, err
}

// FindOne searches q and switches on the count: ErrNotFound for none, an error for more than one.
func (s *Store) FindOne(ctx context.Context, q Search) (mapping.Entry, error) {
	var found []mapping.Entry
	err := s.Walk(ctx, q, func(e mapping.Entry) error {
		found = append(found, e)
		if len(found) > 1 {
			return errAmbiguous
		}
		return nil
	})
	switch {
	case errors.Is(err, errAmbiguous):
		return mapping.Entry{}, &Error{Op: "search", DN: q.Base, Err: fmt.Errorf("filter %s matches more than one entry", q.Filter), kind: ErrInvalid}
	case err != nil:
		return mapping.Entry{}, err
	case len(found) == 0:
		return mapping.Entry{}, &Error{Op: "search", DN: q.Base, Err: errors.New("no entry matches"), kind: ErrNotFound}
	}
	return found[0], nil
}

var errAmbiguous = errors.New("ambiguous")

// Add creates an entry. It is not retried after a dropped connection (the add may have
// happened): the caller re-reads and decides.
func (s *Store) Add(ctx context.Context, dn string, attrs map[string][]string) error {
	req := ldap.NewAddRequest(dn, nil)
	for _, name := range sortedKeys(attrs) {
		if len(attrs[name]) > 0 {
			req.Attribute(name, attrs[name])
		}
	}
	return s.withConn(ctx, "add", false, func(c *ldap.Conn) error { return wrap("add", dn, c.Add(req)) })
}

// AddAsserted creates an entry only if it matches the assertion filter (RFC 4528: on an Add
// the server evaluates the filter against the entry to be added); a mismatch is
// ErrAssertionFailed and nothing is added. Needs server support (OIDAssertion).
func (s *Store) AddAsserted(ctx context.Context, dn string, attrs map[string][]string, assertion string) error {
	ctrl, err := newAssertionControl(assertion)
	if err != nil {
		return &Error{Op: "add", DN: dn, Err: err, kind: ErrInvalid}
	}
	req := ldap.NewAddRequest(dn, []ldap.Control{ctrl})
	for _, name := range sortedKeys(attrs) {
		if len(attrs[name]) > 0 {
			req.Attribute(name, attrs[name])
		}
	}
	return s.withConn(ctx, "add", false, func(c *ldap.Conn) error { return wrap("add", dn, c.Add(req)) })
}

// ModOp is the kind of one attribute change.
type ModOp int

// Attribute change kinds.
const (
	ModReplace ModOp = iota
	ModAdd
	ModDelete
)

// Change is one attribute change in a Modify. A ModDelete without values deletes the attribute.
type Change struct {
	Op     ModOp
	Attr   string
	Values []string
}

// ModifyOptions carry optional controls.
type ModifyOptions struct {
	// Assertion is an LDAP filter the entry must match for the change to apply (RFC 4528);
	// a mismatch is ErrAssertionFailed. Needs server support (OIDAssertion).
	Assertion string
}

// Modify applies all changes atomically in one LDAP Modify. Only an all-replace change set is
// repeated after a dropped connection (it is idempotent).
func (s *Store) Modify(ctx context.Context, dn string, changes []Change, opts ModifyOptions) error {
	if len(changes) == 0 {
		return nil
	}
	req, idempotent, err := modifyRequest(dn, changes, opts)
	if err != nil {
		return err
	}
	return s.withConn(ctx, "modify", idempotent, func(c *ldap.Conn) error { return wrapModify(dn, c.Modify(req)) })
}

// modifyRequest builds the LDAP Modify of changes with the controls opts asks for, and says
// whether repeating it is harmless (all replaces).
func modifyRequest(dn string, changes []Change, opts ModifyOptions, extra ...ldap.Control) (*ldap.ModifyRequest, bool, error) {
	var controls []ldap.Control
	if opts.Assertion != "" {
		ctrl, err := newAssertionControl(opts.Assertion)
		if err != nil {
			return nil, false, &Error{Op: "modify", DN: dn, Err: err, kind: ErrInvalid}
		}
		controls = append(controls, ctrl)
	}
	req := ldap.NewModifyRequest(dn, append(controls, extra...))
	idempotent := true
	for _, ch := range changes {
		switch ch.Op {
		case ModAdd:
			req.Add(ch.Attr, ch.Values)
			idempotent = false
		case ModDelete:
			req.Delete(ch.Attr, ch.Values)
			idempotent = false
		default:
			req.Replace(ch.Attr, ch.Values)
		}
	}
	return req, idempotent, nil
}

// wrapModify wraps a Modify's error. A Modify creates no entry, so entryAlreadyExists (68)
// can only mean a value already present: Active Directory answers it for a member added twice
// (where other servers answer 20). It is ErrValueExists, keeping its code.
func wrapModify(dn string, err error) error {
	err = wrap("modify", dn, err)
	var e *Error
	if errors.As(err, &e) && e.Code == int(ldap.LDAPResultEntryAlreadyExists) {
		e.kind = ErrValueExists
	}
	return err
}

// ModifyDN renames (newRDN like "uid=ada") and/or moves (newSuperior, "" to stay) an entry.
func (s *Store) ModifyDN(ctx context.Context, dn, newRDN string, deleteOldRDN bool, newSuperior string) error {
	req := ldap.NewModifyDNRequest(dn, newRDN, deleteOldRDN, newSuperior)
	return s.withConn(ctx, "modifydn", false, func(c *ldap.Conn) error { return wrap("modifydn", dn, c.ModifyDN(req)) })
}

// Delete removes a leaf entry.
func (s *Store) Delete(ctx context.Context, dn string) error {
	req := ldap.NewDelRequest(dn, nil)
	return s.withConn(ctx, "delete", false, func(c *ldap.Conn) error { return wrap("delete", dn, c.Del(req)) })
}

// SetPassword sets an entry's password with the directory's own mechanism: the Password
// Modify extended operation (RFC 3062; 389-DS takes it only over TLS), or unicodePwd on Active
// Directory (which requires TLS). Without TLS to those two, nothing is sent: ErrUnsupported.
// The password never appears in an error.
func (s *Store) SetPassword(ctx context.Context, dn, password string) error {
	d, err := s.Dialect(ctx)
	if err != nil {
		return err
	}
	if d == DialectAD {
		quoted := "\"" + password + "\""
		u := make([]byte, 0, 2*len(quoted))
		for _, r := range quoted {
			if r > 0xFFFF {
				return &Error{Op: "set password", DN: dn, Err: errors.New("password has a character outside the BMP"), kind: ErrInvalid}
			}
			u = binary.LittleEndian.AppendUint16(u, uint16(r))
		}
		req := ldap.NewModifyRequest(dn, nil)
		req.Replace("unicodePwd", []string{string(u)})
		return s.withConn(ctx, "set password", false, func(c *ldap.Conn) error {
			if _, ok := c.TLSConnectionState(); !ok {
				return &Error{Op: "set password", DN: dn, Err: errors.New("unicodePwd is only accepted over TLS by Active Directory: use ldaps:// or start_tls"), kind: ErrUnsupported}
			}
			return scrub(wrap("set password", dn, c.Modify(req)))
		})
	}
	req := ldap.NewPasswordModifyRequest(dn, "", password)
	return s.withConn(ctx, "set password", false, func(c *ldap.Conn) error {
		if _, ok := c.TLSConnectionState(); !ok && d == Dialect389DS {
			// 389-DS answers the Password Modify operation only over TLS; say so before the
			// password crosses the wire in clear.
			return &Error{Op: "set password", DN: dn, Err: errors.New("389 Directory Server only accepts passwords over TLS: use ldaps:// or start_tls"), kind: ErrUnsupported}
		}
		_, err := c.PasswordModify(req)
		return scrub(wrap("set password", dn, err))
	})
}

// scrub drops the packet from an LDAP error so that no request bytes (the password) can be
// printed through it.
func scrub(err error) error {
	var e *Error
	if errors.As(err, &e) {
		var le *ldap.Error
		if errors.As(e.Err, &le) {
			e.Err = &ldap.Error{ResultCode: le.ResultCode, MatchedDN: le.MatchedDN, Err: le.Err}
		}
	}
	return err
}

func attrsOf(e *ldap.Entry) map[string][]string {
	m := make(map[string][]string, len(e.Attributes))
	for _, a := range e.Attributes {
		m[a.Name] = a.Values
	}
	return m
}

// toEntry converts a go-ldap entry into the neutral form, turning binary ids into text.
func toEntry(e *ldap.Entry) mapping.Entry {
	m := make(map[string][]string, len(e.Attributes))
	for _, a := range e.Attributes {
		if strings.EqualFold(a.Name, "objectGUID") {
			vals := make([]string, len(a.ByteValues))
			for i, b := range a.ByteValues {
				vals[i] = FormatGUID(b)
			}
			m[a.Name] = vals
			continue
		}
		m[a.Name] = a.Values
	}
	return mapping.Entry{DN: e.DN, Attrs: m}
}

// FormatGUID renders AD's 16-byte objectGUID in its usual text form (the first three groups
// are little-endian on the wire).
func FormatGUID(b []byte) string {
	if len(b) != 16 {
		return string(b)
	}
	return fmt.Sprintf("%08x-%04x-%04x-%x-%x",
		binary.LittleEndian.Uint32(b[0:4]), binary.LittleEndian.Uint16(b[4:6]), binary.LittleEndian.Uint16(b[6:8]), b[8:10], b[10:16])
}

// ParseGUID is FormatGUID's inverse; it returns the wire bytes for a filter value.
func ParseGUID(s string) ([]byte, error) {
	var a uint32
	var b, c uint16
	var d [2]byte
	var e [6]byte
	clean := strings.ReplaceAll(s, "-", "")
	if len(clean) != 32 {
		return nil, fmt.Errorf("ldapstore: %q is not a GUID", s)
	}
	if _, err := fmt.Sscanf(s, "%08x-%04x-%04x-%02x%02x-%02x%02x%02x%02x%02x%02x", &a, &b, &c, &d[0], &d[1], &e[0], &e[1], &e[2], &e[3], &e[4], &e[5]); err != nil {
		return nil, fmt.Errorf("ldapstore: %q is not a GUID", s)
	}
	out := make([]byte, 0, 16)
	out = binary.LittleEndian.AppendUint32(out, a)
	out = binary.LittleEndian.AppendUint16(out, b)
	out = binary.LittleEndian.AppendUint16(out, c)
	out = append(out, d[:]...)
	return append(out, e[:]...), nil
}

func sortedKeys(m map[string][]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slicesSort(keys)
	return keys
}

func slicesSort(s []string) { sort.Strings(s) }
