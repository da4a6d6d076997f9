package ldaptest_test

import (
	"fmt"
	"math/big"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/go-ldap/ldap/v3"
	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/ldapstore/ldaptest"
	"github.com/scimbridge/scimbridge/mapping"
)

// definitions are the attributeTypes and objectClasses values of a 389-DS schema LDIF, each
// on one line.
func definitions(t *testing.T, name string) []string {
	t.Helper()
	data, err := os.ReadFile(ldaptest.SchemaFile(name))
	require.NoError(t, err)
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "attributeTypes: "); ok {
			out = append(out, v)
		} else if v, ok := strings.CutPrefix(line, "objectClasses: "); ok {
			out = append(out, v)
		}
	}
	return out
}

// openLDAPDefinitions are the definitions of scimbridge.schema, each on one line with single
// spaces.
func openLDAPDefinitions(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(ldaptest.OptionalSchema())
	require.NoError(t, err)
	var out []string
	for _, m := range regexp.MustCompile(`(?ms)^(?:attributetype|objectclass) (\(.*?\))\s*$`).FindAllStringSubmatch(string(data), -1) {
		out = append(out, strings.Join(strings.Fields(m[1]), " "))
	}
	return out
}

// TestOptionalSchemaVariantsAgree: the 389-DS files (ldapmodify form and schema-directory
// form) define exactly what scimbridge.schema defines for OpenLDAP, names and OIDs, and what
// the dialect's profile maps; the Active Directory file's OIDs are Microsoft's GUID-based form
// of the same UUID, and its names those the AD profile maps.
func TestOptionalSchemaVariantsAgree(t *testing.T) {
	ol := openLDAPDefinitions(t)
	require.Len(t, ol, 4)
	modify, dir := definitions(t, "scimbridge-389ds.ldif"), definitions(t, "60scimbridge.ldif")
	require.Equal(t, modify, dir, "the two 389-DS forms define the same")
	var stripped []string
	for _, d := range modify {
		require.Contains(t, d, " X-ORIGIN 'scimbridge' )")
		stripped = append(stripped, strings.Replace(d, " X-ORIGIN 'scimbridge' )", " )", 1))
	}
	require.Equal(t, ol, stripped, "389-DS has OpenLDAP's definitions")
	for _, a := range mapping.ProfileFor(mapping.Dialect389DS).Schema.Attributes {
		if a != "co" { // cosine's, in every stock schema
			require.Contains(t, strings.Join(modify, "\n"), "NAME '"+a+"'")
		}
	}

	// The AD arc: 1.2.840.113556.1.8000.2554 and the UUID of the 2.25 arc in 4, 4, 4, 4, 4,
	// 6 and 6 hex digits, as Microsoft's oidgen script cuts a GUID.
	arc := regexp.MustCompile(`2\.25\.([0-9]+)\.`).FindStringSubmatch(ol[0])
	require.NotNil(t, arc)
	n, ok := new(big.Int).SetString(arc[1], 10)
	require.True(t, ok)
	hex := fmt.Sprintf("%032x", n)
	msArc := "1.2.840.113556.1.8000.2554"
	for _, w := range []int{4, 4, 4, 4, 4, 6, 6} {
		var part big.Int
		part.SetString(hex[:w], 16)
		msArc += "." + part.String()
		hex = hex[w:]
	}
	data, err := os.ReadFile(ldaptest.SchemaFile("scimbridge-ad.ldif"))
	require.NoError(t, err)
	ad := string(data)
	oids := regexp.MustCompile(`(?m)^(?:attributeID|governsID): (.*)$`).FindAllStringSubmatch(ad, -1)
	require.Len(t, oids, 3)
	for _, o := range oids {
		require.True(t, strings.HasPrefix(o[1], msArc+".1.") || strings.HasPrefix(o[1], msArc+".2."), o[1])
		for _, c := range strings.Split(o[1], ".") {
			require.Less(t, len(c), 10, "%s: AD (Samba) takes no OID component of 2^32 or more", o[1])
		}
	}
	require.Contains(t, ad, "attributeID: "+msArc+".1.2\nlDAPDisplayName: scimbridgeCostCenter", "costCenter is .1.2 in every variant")
	var names []string
	for _, m := range regexp.MustCompile(`(?m)^lDAPDisplayName: (.*)$`).FindAllStringSubmatch(ad, -1) {
		names = append(names, m[1])
	}
	want := append(slices.Clone(mapping.ProfileFor(mapping.DialectAD).Schema.Attributes), mapping.SchemaAuxiliaryClass)
	require.ElementsMatch(t, want, names, "the AD file defines what the AD profile maps")
	require.Contains(t, ad, "dn: CN=User,CN=Schema,CN=Configuration,DC=X\nchangetype: modify\nadd: auxiliaryClass\nauxiliaryClass: "+mapping.SchemaAuxiliaryClass+"\n")
}

// Test389SchemaOverLDAP: scimbridge-389ds.ldif, applied with ldapmodify as the Directory
// Manager (the README's first way), adds every definition to a running 389-DS; the test then
// removes them, leaving the package's server as it was.
func Test389SchemaOverLDAP(t *testing.T) {
	s := ldaptest.SharedKind(t, ldaptest.Kind389DS)
	data, err := os.ReadFile(ldaptest.SchemaFile("scimbridge-389ds.ldif"))
	require.NoError(t, err)
	require.NoError(t, s.LDIF(string(data)))
	conn, err := s.Root()
	require.NoError(t, err)
	defer conn.Close()
	defs := func() string {
		res, err := conn.Search(ldap.NewSearchRequest("cn=schema", ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
			"(objectClass=*)", []string{"attributeTypes", "objectClasses"}, nil))
		require.NoError(t, err)
		return strings.Join(append(res.Entries[0].GetAttributeValues("attributeTypes"), res.Entries[0].GetAttributeValues("objectClasses")...), "\n")
	}
	got := defs()
	del := ldap.NewModifyRequest("cn=schema", nil)
	var classes, types []string
	for _, d := range definitions(t, "scimbridge-389ds.ldif") {
		oid := strings.Fields(d)[1]
		name := regexp.MustCompile(`NAME '([^']+)'`).FindStringSubmatch(d)[1]
		require.Contains(t, got, "( "+oid+" NAME '"+name+"'", "defined over LDAP")
		if strings.Contains(d, " AUXILIARY ") {
			classes = append(classes, "( "+oid+" NAME '"+name+"' )")
		} else {
			types = append(types, "( "+oid+" NAME '"+name+"' )")
		}
	}
	del.Delete("objectClasses", classes)
	del.Delete("attributeTypes", types)
	require.NoError(t, conn.Modify(del))
	require.NotContains(t, defs(), "scimbridge", "removed again")
}
