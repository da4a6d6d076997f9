package ldapstore

import (
	"fmt"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"
)

// assertionControl is RFC 4528's Assertion control, which go-ldap lacks: the server applies
// the operation only if the entry matches the filter, which makes If-Match atomic.
type assertionControl struct {
	filter *ber.Packet
	text   string
}

func newAssertionControl(filter string) (*assertionControl, error) {
	p, err := ldap.CompileFilter(filter)
	if err != nil {
		return nil, fmt.Errorf("assertion filter: %w", err)
	}
	return &assertionControl{filter: p, text: filter}, nil
}

func (c *assertionControl) GetControlType() string { return OIDAssertion }

func (c *assertionControl) Encode() *ber.Packet {
	p := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "Control")
	p.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, OIDAssertion, "Control Type (Assertion)"))
	p.AppendChild(ber.NewBoolean(ber.ClassUniversal, ber.TypePrimitive, ber.TagBoolean, true, "Criticality"))
	v := ber.Encode(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, nil, "Control Value (Assertion)")
	v.AppendChild(c.filter)
	p.AppendChild(v)
	return p
}

func (c *assertionControl) String() string {
	return fmt.Sprintf("Control Type: %s (%q) Criticality: true Filter: %s", "Assertion", OIDAssertion, c.text)
}
