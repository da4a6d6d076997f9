package mapping_test

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/mapping"
)

func TestGroupToLDAP(t *testing.T) {
	acme := mapping.ExtensionSchema{URN: "urn:acme:Group", Attributes: []mapping.ExtAttr{
		{Name: "codes", Type: "string", MultiValued: true, LDAP: "ou"},
		{Name: "note", Type: "string"},
	}}
	acmeMap, err := mapping.NewGroupMap(nil, acme)
	require.NoError(t, err)
	descMap, err := mapping.NewGroupMap(map[string]string{"displayName": "description"})
	require.NoError(t, err)

	tests := map[string]struct {
		gm   *mapping.GroupMap
		res  string
		want mapping.GroupWrite
	}{
		"members of both kinds, deduplicated": {
			res: `{"displayName":"Sales","externalId":"ext-1","members":[
				{"value":"` + aliceID + `","type":"User","display":"Alice"},
				{"value":"` + adminsID + `","type":"Group"},
				{"value":"` + aliceID + `"}]}`,
			want: mapping.GroupWrite{
				Attrs:     map[string][]string{"cn": {"Sales"}, "businessCategory": {"ext-1"}},
				MemberDNs: []string{aliceDN, adminsDN},
				Ignored:   []string{},
			},
		},
		"members as plain ids": {
			res:  `{"displayName":"G","members":["` + bossID + `"]}`,
			want: mapping.GroupWrite{Attrs: map[string][]string{"cn": {"G"}}, MemberDNs: []string{bossDN}, Ignored: []string{}},
		},
		"no members": {
			res:  `{"displayName":"Empty","members":[]}`,
			want: mapping.GroupWrite{Attrs: map[string][]string{"cn": {"Empty"}}, Ignored: []string{}},
		},
		"extension attributes": {
			gm:  &acmeMap,
			res: `{"displayName":"G","urn:acme:Group":{"codes":["a","b"],"note":"n"}}`,
			want: mapping.GroupWrite{
				Attrs:   map[string][]string{"cn": {"G"}, "ou": {"a", "b"}},
				Ignored: []string{"urn:acme:Group:note"},
			},
		},
		"cn is displayName also when displayName maps elsewhere": {
			gm:   &descMap,
			res:  `{"displayName":"G"}`,
			want: mapping.GroupWrite{Attrs: map[string][]string{"cn": {"G"}, "description": {"G"}}, Ignored: []string{}},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			gm := mapping.DefaultGroupMap()
			if tc.gm != nil {
				gm = *tc.gm
			}
			w, err := mapping.GroupToLDAP(jsonMap(t, tc.res), gm, resolve)
			require.NoError(t, err)
			if diff := cmp.Diff(tc.want, w); diff != "" {
				t.Errorf("GroupToLDAP mismatch (-want +got):\n%s", diff)
			}
		})
	}

	w, err := mapping.GroupToLDAP(jsonMap(t, `{"displayName":"G","members":[{"value":"x"}]}`), mapping.DefaultGroupMap(), nil)
	require.NoError(t, err)
	require.Equal(t, []string{"members"}, w.Ignored, "without a resolver members are not written")
}

func TestGroupToLDAPErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		res       string
		scimType  string
		fragments []string
	}{
		"no displayName":        {`{"members":[]}`, mapping.ScimTypeInvalidValue, []string{"displayName is required"}},
		"a member without id":   {`{"displayName":"G","members":[{"display":"x"}]}`, mapping.ScimTypeInvalidValue, []string{"members"}},
		"an unknown member":     {`{"displayName":"G","members":[{"value":"nobody"}]}`, mapping.ScimTypeInvalidValue, []string{`"nobody"`}},
		"an unknown attribute":  {`{"displayName":"G","owner":"x"}`, mapping.ScimTypeInvalidSyntax, []string{`"owner"`}},
		"a member of bad type":  {`{"displayName":"G","members":[{"value":5}]}`, mapping.ScimTypeInvalidValue, []string{"members.value"}},
		"all problems together": {`{"owner":"x"}`, mapping.ScimTypeInvalidSyntax, []string{`"owner"`, "displayName is required"}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := mapping.GroupToLDAP(jsonMap(t, tc.res), mapping.DefaultGroupMap(), resolve)
			requireScimError(t, err, tc.scimType, tc.fragments...)
		})
	}
	down := errors.New("down")
	_, err := mapping.GroupToLDAP(jsonMap(t, `{"displayName":"G","members":[{"value":"x"}]}`), mapping.DefaultGroupMap(),
		func(string) (string, error) { return "", down })
	require.ErrorIs(t, err, down)
}

func TestGroupExtensions(t *testing.T) {
	gm, err := mapping.NewGroupMap(map[string]string{"externalId": "mail"}, mapping.ExtensionSchema{URN: "urn:acme:Group", Attributes: []mapping.ExtAttr{
		{Name: "codes", Type: "string", MultiValued: true, LDAP: "ou"},
		{Name: "level", Type: "integer", LDAP: "x-level"},
		{Name: "note", Type: "string"},
	}})
	require.NoError(t, err)
	res := mapping.GroupFromLDAP(mapping.Entry{DN: adminsDN, Attrs: map[string][]string{
		"cn": {"admins"}, "ou": {"a", "b"}, "x-level": {"x", "3"}, "mail": {"ext"},
	}}, gm, "entryUUID", memberID)
	require.Equal(t, map[string]any{"codes": []any{"a", "b"}, "level": int64(3)}, res["urn:acme:Group"])
	require.Equal(t, []any{mapping.GroupSchemaURN, "urn:acme:Group"}, res["schemas"])
	require.Equal(t, "ext", res["externalId"])

	_, err = mapping.GroupToLDAP(jsonMap(t, `{"displayName":"G","externalId":"é"}`), gm, resolve)
	requireScimError(t, err, mapping.ScimTypeInvalidValue, "externalId", "ASCII")
}

func TestGroupFromLDAP(t *testing.T) {
	e := mapping.Entry{DN: adminsDN, Attrs: map[string][]string{
		"cn": {"admins"}, "member": {aliceDN, ""}, "entryUUID": {adminsID},
	}}
	res := mapping.GroupFromLDAP(e, mapping.DefaultGroupMap(), "entryUUID", nil)
	require.NotContains(t, res, "members", "without memberID members are left out")
	require.Equal(t, "admins", res["displayName"])

	descMap, err := mapping.NewGroupMap(map[string]string{"displayName": "description"})
	require.NoError(t, err)
	res = mapping.GroupFromLDAP(e, descMap, "", memberID)
	require.Equal(t, "admins", res["displayName"], "cn stands in for an unmapped displayName")
	require.NotContains(t, res, "id")
	require.Equal(t, []any{map[string]any{"value": aliceID, "type": "User"}}, res["members"])

	typeless := mapping.GroupFromLDAP(e, mapping.DefaultGroupMap(), "", func(dn string) (string, string, bool) { return "id-" + dn[:3], "", true })
	require.Equal(t, []any{map[string]any{"value": "id-uid"}}, typeless["members"])
}

func TestGroupChanges(t *testing.T) {
	entry := func(members ...string) mapping.Entry {
		return mapping.Entry{DN: "cn=g," + base, Attrs: map[string][]string{"cn": {"g"}, "member": members}}
	}
	tests := map[string]struct {
		e    mapping.Entry
		res  string
		want map[string][]string
	}{
		"no change":                    {entry(aliceDN), `{"displayName":"g","members":["` + aliceID + `"]}`, map[string][]string{}},
		"no change, other DN spelling": {entry("UID=Alice,ou=people," + base), `{"displayName":"g","members":["` + aliceID + `"]}`, map[string][]string{}},
		"still empty":                  {entry(""), `{"displayName":"g"}`, map[string][]string{}},
		"a member added":               {entry(aliceDN), `{"displayName":"g","members":["` + aliceID + `","` + bossID + `"]}`, map[string][]string{"member": {aliceDN, bossDN}}},
		"the first member replaces the placeholder": {entry(""), `{"displayName":"g","members":["` + aliceID + `"]}`, map[string][]string{"member": {aliceDN}}},
		"the last member removed":                   {entry(aliceDN), `{"displayName":"g"}`, map[string][]string{"member": {""}}},
		"hidden members are kept":                   {entry(outsideDN, aliceDN), `{"displayName":"g","members":["` + bossID + `"]}`, map[string][]string{"member": {outsideDN, bossDN}}},
		"hidden members are no change":              {entry(outsideDN, aliceDN), `{"displayName":"g","members":["` + aliceID + `"]}`, map[string][]string{}},
		"renamed":                                   {entry(aliceDN), `{"displayName":"h","members":["` + aliceID + `"]}`, map[string][]string{"cn": {"h"}}},
		"externalId removed":                        {mapping.Entry{DN: "cn=g", Attrs: map[string][]string{"cn": {"g"}, "member": {""}, "businessCategory": {"x"}}}, `{"displayName":"g"}`, map[string][]string{"businessCategory": {}}},
		"an entry read without its members":         {mapping.Entry{DN: "cn=g", Attrs: map[string][]string{"cn": {"g"}}}, `{"displayName":"g"}`, map[string][]string{"member": {""}}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			gm := mapping.DefaultGroupMap()
			w, err := mapping.GroupToLDAP(jsonMap(t, tc.res), gm, resolve)
			require.NoError(t, err)
			if diff := cmp.Diff(tc.want, mapping.GroupChanges(tc.e, w, gm, memberID)); diff != "" {
				t.Errorf("GroupChanges mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPlaceholder(t *testing.T) {
	require.True(t, mapping.IsPlaceholder(""))
	require.True(t, mapping.IsPlaceholder(" "))
	require.False(t, mapping.IsPlaceholder(aliceDN))
	gm := mapping.DefaultGroupMap()
	require.Equal(t, []string{mapping.PlaceholderMember}, gm.MemberValues(nil))
	require.Equal(t, []string{aliceDN}, gm.MemberValues([]string{aliceDN}))
}
