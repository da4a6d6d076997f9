package ldapstore

import (
	"testing"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"
	"github.com/stretchr/testify/require"
)

func TestDecodePostRead(t *testing.T) {
	entry := ber.Encode(ber.ClassApplication, ber.TypeConstructed, ldap.ApplicationSearchResultEntry, nil, "SearchResultEntry")
	entry.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, "uid=a,dc=x", "DN"))
	attrs := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "Attributes")
	add := func(name string, vals ...string) {
		a := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "PartialAttribute")
		a.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, name, "Type"))
		set := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSet, nil, "Values")
		for _, v := range vals {
			set.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, v, "Value"))
		}
		a.AppendChild(set)
		attrs.AppendChild(a)
	}
	add("uid", "a")
	add("mail", "a@x", "b@x")
	add("objectGUID", string([]byte{0x78, 0x56, 0x34, 0x12, 0x34, 0x12, 0x78, 0x56, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0}))
	entry.AppendChild(attrs)

	e, err := decodePostRead(entry.Bytes())
	require.NoError(t, err)
	require.Equal(t, "uid=a,dc=x", e.DN)
	require.Equal(t, []string{"a"}, e.Get("uid"))
	require.Equal(t, []string{"a@x", "b@x"}, e.Get("mail"))
	require.Equal(t, "12345678-1234-5678-1234-56789abcdef0", e.First("objectGUID"), "binary ids come back as text, as from a search")

	// Through the response control as go-ldap decodes an unknown one.
	ctrl := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "Control")
	ctrl.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, OIDPostRead, "Type"))
	ctrl.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, string(entry.Bytes()), "Value"))
	c, err := ldap.DecodeControl(ber.DecodePacket(ctrl.Bytes()))
	require.NoError(t, err)
	got, ok, err := postReadEntry([]ldap.Control{c})
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, e, got)

	_, ok, err = postReadEntry(nil)
	require.NoError(t, err)
	require.False(t, ok)
	for _, bad := range [][]byte{nil, {0x04, 0x01, 'x'}, {0x64, 0x00}, {0x64, 0x03, 0x04, 0x01}} {
		_, err := decodePostRead(bad)
		require.Error(t, err, "%x", bad)
	}
}
