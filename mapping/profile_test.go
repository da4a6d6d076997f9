package mapping_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/mapping"
	"github.com/scimbridge/scimbridge/mapping/mappingtest"
)

func TestSAMAccountName(t *testing.T) {
	for name, tc := range map[string]struct {
		in   string
		max  int
		want string
	}{
		"local part of a UPN":    {"jane.doe@contoso.com", 20, "jane.doe"},
		"long: prefix and hash":  {"Test_User_ab6490ee-1e48-479e-a20b", 20, "Test_User_ab649-cd14"},
		"long, other suffix":     {"Test_User_ab6490ee-1e48-479e-a20c", 20, "Test_User_ab649-88c0"},
		"exactly 20":             {"abcdefghijklmnopqrst@x", 20, "abcdefghijklmnopqrst"},
		"forbidden characters":   {`a"b/c\d[e]f:g;h|i=j,k+l*m?n<o>p`, 20, "abcdefghijklmnop"},
		"spaces kept for groups": {"Tour Guides", 64, "Tour Guides"},
		"trailing dots dropped":  {"john...@x", 20, "john"},
		"nothing usable":         {"...@x", 20, ""},
		"only forbidden":         {"[]:;", 20, ""},
		"no local part":          {"@contoso.com", 20, "contoso.com"},
	} {
		t.Run(name, func(t *testing.T) { require.Equal(t, tc.want, mapping.SAMAccountName(tc.in, tc.max)) })
	}
}

func TestProfiles(t *testing.T) {
	ad := mapping.ProfileFor(mapping.DialectAD)
	require.Equal(t, "userPrincipalName", ad.UserAttributes["userName"])
	require.False(t, ad.DerivedNames)
	require.True(t, ad.EmptyGroups)
	require.Equal(t, []string{"user"}, ad.UserObjectClasses)
	require.Contains(t, ad.UserFilter, "(!(isCriticalSystemObject=TRUE))", "built-in accounts stay out of scope")
	require.NoError(t, ad.Marker.Validate())

	ds := mapping.ProfileFor(mapping.Dialect389DS)
	require.Equal(t, "nsAccountLock", ds.Marker.Attr)
	require.True(t, ds.EmptyGroups)
	require.True(t, ds.DerivedNames)
	require.NoError(t, ds.Marker.Validate())

	ol := mapping.ProfileFor(mapping.DialectOpenLDAP)
	require.False(t, ol.EmptyGroups, "groupOfNames requires a member")
	require.Equal(t, ol, mapping.ProfileFor("something else"), "unknown dialects get OpenLDAP's stock defaults")

	for _, p := range []mapping.Profile{ad, ds, ol} {
		_, err := mapping.NewUserMapFor(p, nil)
		require.NoError(t, err, p.Dialect)
		_, err = mapping.NewGroupMapFor(p, nil)
		require.NoError(t, err, p.Dialect)
	}
	require.Equal(t, "(objectClass=groupOfUniqueNames)", ol.DefaultGroupFilter([]string{"groupOfUniqueNames"}))
	require.Equal(t, ad.UserFilter, ad.DefaultUserFilter([]string{"User"}))
}

// TestADUserWrite: an AD user gets no derived cn or sn, active=false sets only
// ACCOUNTDISABLE, and a change of active keeps every other bit of userAccountControl.
func TestADUserWrite(t *testing.T) {
	p := mapping.ProfileFor(mapping.DialectAD)
	m, err := mapping.NewUserMapFor(p, nil)
	require.NoError(t, err)
	w, err := mapping.UserToLDAP(map[string]any{"userName": "jane@contoso.com", "active": false, "displayName": "Jane"}, m, p.Marker, nil)
	require.NoError(t, err)
	require.Equal(t, []string{"jane@contoso.com"}, w.Attrs["userPrincipalName"])
	require.NotContains(t, w.Attrs, "cn")
	require.NotContains(t, w.Attrs, "sn")
	require.Equal(t, []string{"514"}, w.Attrs["userAccountControl"])

	// DONT_EXPIRE_PASSWORD (0x10000) and NORMAL_ACCOUNT stay; only ACCOUNTDISABLE moves.
	e := mapping.Entry{DN: "CN=jane,OU=people,DC=x", Attrs: map[string][]string{
		"userPrincipalName": {"jane@contoso.com"}, "displayName": {"Jane"}, "userAccountControl": {"66048"},
	}}
	require.True(t, p.Marker.Active(e))
	ch := mapping.UserChanges(e, w, m, p.Marker, nil)
	require.Equal(t, map[string][]string{"userAccountControl": {"66050"}}, ch)
	e.Attrs["userAccountControl"] = []string{"66050"}
	require.False(t, p.Marker.Active(e))
	w.Active = true
	w.Attrs["userAccountControl"] = []string{"512"}
	ch = mapping.UserChanges(e, w, m, p.Marker, nil)
	require.Equal(t, map[string][]string{"userAccountControl": {"66048"}}, ch)
}

// Test389Marker: nsAccountLock is set to TRUE alone and removed again; a "false" an admin
// wrote stays while the user is active.
func Test389Marker(t *testing.T) {
	p := mapping.ProfileFor(mapping.Dialect389DS)
	m, err := mapping.NewUserMapFor(p, nil)
	require.NoError(t, err)
	e := mapping.Entry{DN: "uid=a,ou=people,dc=x", Attrs: map[string][]string{"uid": {"a"}, "cn": {"a"}, "sn": {"a"}, "nsAccountLock": {"false"}}}
	require.True(t, p.Marker.Active(e))
	w, err := mapping.UserToLDAP(map[string]any{"userName": "a", "active": false}, m, p.Marker, nil)
	require.NoError(t, err)
	require.Equal(t, map[string][]string{"nsAccountLock": {"TRUE"}}, mapping.UserChanges(e, w, m, p.Marker, nil))
	w, err = mapping.UserToLDAP(map[string]any{"userName": "a", "active": true}, m, p.Marker, nil)
	require.NoError(t, err)
	require.Empty(t, mapping.UserChanges(e, w, m, p.Marker, nil), "an active user keeps the admin's value")
	e.Attrs["nsAccountLock"] = []string{"true"}
	require.False(t, p.Marker.Active(e))
	require.Equal(t, map[string][]string{"nsAccountLock": {}}, mapping.UserChanges(e, w, m, p.Marker, nil))
}

// TestADDefaultOutboundMapping renders the AD default user mapping over an AD entry.
func TestADDefaultOutboundMapping(t *testing.T) {
	p := mapping.ProfileFor(mapping.DialectAD)
	um, err := mapping.CompileUserMapping(mapping.DefaultUserMappingFor(p, "objectGUID"))
	require.NoError(t, err)
	e := mapping.Entry{DN: "CN=jane,OU=people,DC=x", Attrs: map[string][]string{
		"objectGUID": {"8f3c1c4e-1111-2222-3333-444455556666"}, "sAMAccountName": {"jane"}, "userPrincipalName": {"jane@contoso.com"},
		"givenName": {"Jane"}, "sn": {"Doe"}, "mail": {"jane@contoso.com"}, "employeeID": {"42"}, "department": {"R&D"},
		"company": {"Contoso"}, "userAccountControl": {"514"},
	}}
	res, err := um.Render(e)
	require.NoError(t, err)
	require.Equal(t, "jane@contoso.com", res["userName"])
	require.Equal(t, "8f3c1c4e-1111-2222-3333-444455556666", res["externalId"])
	require.Equal(t, false, res["active"])
	ent := res[mapping.EnterpriseSchemaURN].(map[string]any)
	require.Equal(t, "42", ent["employeeNumber"])
	require.Equal(t, "Contoso", ent["organization"])
	e.Attrs["userAccountControl"] = []string{"66048"}
	delete(e.Attrs, "userPrincipalName")
	res, err = um.Render(e)
	require.NoError(t, err)
	require.Equal(t, true, res["active"])
	require.Equal(t, "jane", res["userName"], "sAMAccountName when there is no UPN")
}

// TestOptionalSchemaVariants: on every dialect, the optional schema's variant gives each of
// Entra ID's default attributes a home; it maps only what the stock schema has no home for, to
// attributes no stock mapping uses, and its attributes are those it maps. 389-DS shares
// OpenLDAP's variant (an auxiliary class the bridge adds); AD's is linked to the user class.
func TestOptionalSchemaVariants(t *testing.T) {
	for _, dialect := range []string{mapping.DialectOpenLDAP, mapping.Dialect389DS, mapping.DialectAD} {
		t.Run(dialect, func(t *testing.T) {
			p := mapping.ProfileFor(dialect)
			sch := p.Schema
			require.NotEmpty(t, sch.Detect)
			require.Contains(t, sch.Attributes, sch.Detect, "the detected type is one of the variant's")
			stock, err := mapping.NewUserMapFor(p, nil)
			require.NoError(t, err)
			withSchema, err := mapping.NewUserMapFor(p, sch.UserAttributes)
			require.NoError(t, err)
			for _, path := range mappingtest.EntraUserPaths {
				require.NotEmpty(t, withSchema.LDAPAttr(path), "%s has a home with the optional schema", path)
			}
			used := map[string]bool{}
			for _, a := range stock.Mappings() {
				used[strings.ToLower(a)] = true
			}
			var attrs []string
			for path, attr := range sch.UserAttributes {
				require.Empty(t, stock.LDAPAttr(path), "%s has a stock home: the schema must not move it", path)
				require.False(t, used[strings.ToLower(attr)], "%s is a stock mapping's attribute", attr)
				attrs = append(attrs, attr)
			}
			require.ElementsMatch(t, attrs, sch.Attributes)
		})
	}
	require.Equal(t, mapping.ProfileFor(mapping.DialectOpenLDAP).Schema, mapping.ProfileFor(mapping.Dialect389DS).Schema, "one variant's definitions")
	require.Equal(t, mapping.SchemaAuxiliaryClass, mapping.ProfileFor(mapping.Dialect389DS).Schema.AuxiliaryClass)
	require.Empty(t, mapping.ProfileFor(mapping.DialectAD).Schema.AuxiliaryClass, "linked to AD's user class: no entry needs it")
}

// TestADShowsWhatItStores: AD derives no name, so nothing read from it is hidden as derived: a
// name.formatted or familyName equal to the userName is shown as stored, and writing back what
// was read changes nothing.
func TestADShowsWhatItStores(t *testing.T) {
	p := mapping.ProfileFor(mapping.DialectAD)
	m, err := mapping.NewUserMapFor(p, p.Schema.UserAttributes)
	require.NoError(t, err)
	e := mapping.Entry{DN: "CN=jdoe,OU=people,DC=x", Attrs: map[string][]string{
		"userPrincipalName": {"jdoe@contoso.com"}, "scimbridgeFormattedName": {"jdoe@contoso.com"}, "sn": {"jdoe@contoso.com"},
		"userAccountControl": {"512"},
	}}
	res := mapping.UserFromLDAP(e, m, p.Marker, "", nil)
	require.Equal(t, map[string]any{"formatted": "jdoe@contoso.com", "familyName": "jdoe@contoso.com"}, res["name"])
	w, err := mapping.UserToLDAP(res, m, p.Marker, nil)
	require.NoError(t, err)
	require.Empty(t, mapping.UserChanges(e, w, m, p.Marker, nil))
}
