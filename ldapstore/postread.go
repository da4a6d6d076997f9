package ldapstore

import (
	"context"
	"errors"
	"fmt"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"

	"github.com/scimbridge/scimbridge/mapping"
)

// OIDPostRead is RFC 4527's Post-Read control: the server returns the entry as the update left
// it, in the update's own response.
const OIDPostRead = "1.3.6.1.1.13.2"

// postReadControl is the Post-Read request control, which go-ldap lacks. Its value is the
// AttributeSelection (SEQUENCE OF LDAPString) to return. It is sent non-critical: a server that
// ignores it still performs the update, and the caller reads the entry back instead.
type postReadControl struct{ attrs []string }

func (c *postReadControl) GetControlType() string { return OIDPostRead }

func (c *postReadControl) Encode() *ber.Packet {
	p := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "Control")
	p.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, OIDPostRead, "Control Type (Post-Read)"))
	v := ber.Encode(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, nil, "Control Value (Post-Read)")
	sel := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "AttributeSelection")
	for _, a := range c.attrs {
		sel.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, a, "Attribute"))
	}
	v.AppendChild(sel)
	p.AppendChild(v)
	return p
}

func (c *postReadControl) String() string {
	return fmt.Sprintf("Control Type: Post-Read (%q) Criticality: false Attributes: %v", OIDPostRead, c.attrs)
}

// ModifyWithPostRead is Modify that also returns the entry as the change left it (readAttrs of
// it, operational ones such as entryCSN included when named), read atomically with the change
// by the Post-Read control (RFC 4527): no second round trip, and no other write can slip in
// between. ok is false when the server answered without the control (it does not support it)
// or with one that does not decode: the change is made all the same, and the caller reads the
// entry back if it needs it. Check
// RootDSE().Supports(OIDPostRead) before relying on it.
func (s *Store) ModifyWithPostRead(ctx context.Context, dn string, changes []Change, opts ModifyOptions, readAttrs []string) (e mapping.Entry, ok bool, err error) {
	if len(changes) == 0 {
		return mapping.Entry{}, false, &Error{Op: "modify", DN: dn, Err: errors.New("no change to post-read"), kind: ErrInvalid}
	}
	req, idempotent, err := modifyRequest(dn, changes, opts, &postReadControl{attrs: readAttrs})
	if err != nil {
		return mapping.Entry{}, false, err
	}
	err = s.withConn(ctx, "modify", idempotent, func(c *ldap.Conn) error {
		res, err := c.ModifyWithResult(req)
		if err != nil {
			return wrapModify(dn, err)
		}
		e, ok, err = postReadEntry(res.Controls)
		if err != nil {
			// The change is made; only its echo is unreadable: the caller reads the entry back.
			s.logger.Warn().Err(err).Str("dn", dn).Msg("ldap: could not decode the post-read control of a modify")
			e, ok = mapping.Entry{}, false
		}
		return nil
	})
	return e, ok, err
}

// postReadEntry finds the Post-Read response control among controls and decodes the entry it
// carries; ok is false when there is none.
func postReadEntry(controls []ldap.Control) (mapping.Entry, bool, error) {
	c := ldap.FindControl(controls, OIDPostRead)
	if c == nil {
		return mapping.Entry{}, false, nil
	}
	cs, isString := c.(*ldap.ControlString)
	if !isString {
		return mapping.Entry{}, false, fmt.Errorf("unexpected control type %T", c)
	}
	e, err := decodePostRead([]byte(cs.ControlValue))
	if err != nil {
		return mapping.Entry{}, false, err
	}
	return e, true, nil
}

// decodePostRead decodes the value of a Post-Read (or Pre-Read) response control: a
// SearchResultEntry ([APPLICATION 4] SEQUENCE { objectName LDAPDN, attributes
// PartialAttributeList }), which go-ldap leaves undecoded.
func decodePostRead(value []byte) (mapping.Entry, error) {
	p, err := ber.DecodePacketErr(value)
	if err != nil {
		return mapping.Entry{}, err
	}
	if p.ClassType != ber.ClassApplication || p.Tag != ldap.ApplicationSearchResultEntry || len(p.Children) != 2 {
		return mapping.Entry{}, fmt.Errorf("not a SearchResultEntry (class %d tag %d, %d children)", p.ClassType, p.Tag, len(p.Children))
	}
	dn, err := octets(p.Children[0])
	if err != nil {
		return mapping.Entry{}, fmt.Errorf("objectName: %w", err)
	}
	le := &ldap.Entry{DN: string(dn)}
	for _, pa := range p.Children[1].Children {
		if len(pa.Children) != 2 {
			return mapping.Entry{}, fmt.Errorf("malformed PartialAttribute in %q", le.DN)
		}
		name, err := octets(pa.Children[0])
		if err != nil {
			return mapping.Entry{}, fmt.Errorf("attribute type: %w", err)
		}
		a := &ldap.EntryAttribute{Name: string(name)}
		for _, v := range pa.Children[1].Children {
			b, err := octets(v)
			if err != nil {
				return mapping.Entry{}, fmt.Errorf("value of %s: %w", a.Name, err)
			}
			a.Values = append(a.Values, string(b))
			a.ByteValues = append(a.ByteValues, b)
		}
		le.Attributes = append(le.Attributes, a)
	}
	return toEntry(le), nil
}

// octets returns the contents of a primitive OCTET STRING packet.
func octets(p *ber.Packet) ([]byte, error) {
	if p.TagType != ber.TypePrimitive {
		return nil, errors.New("not a primitive string")
	}
	if p.Data == nil {
		return nil, nil
	}
	return append([]byte(nil), p.Data.Bytes()...), nil
}
