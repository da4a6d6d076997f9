package mapping_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/mapping"
)

// inetOrgPersonAttrs are the MUST and MAY attributes of inetOrgPerson and the classes it
// inherits (organizationalPerson, person) in OpenLDAP 2.5's /etc/ldap/schema
// (core.schema, cosine.schema, inetorgperson.schema).
var inetOrgPersonAttrs = strings.Fields(`
	cn sn userPassword telephoneNumber seeAlso description
	title x121Address registeredAddress destinationIndicator preferredDeliveryMethod
	telexNumber teletexTerminalIdentifier internationaliSDNNumber facsimileTelephoneNumber
	street postOfficeBox postalCode postalAddress physicalDeliveryOfficeName ou st l
	audio businessCategory carLicense departmentNumber displayName employeeNumber
	employeeType givenName homePhone homePostalAddress initials jpegPhoto labeledURI mail
	manager mobile o pager photo roomNumber secretary uid userCertificate
	x500uniqueIdentifier preferredLanguage userSMIMECertificate userPKCS12`)

// groupOfNamesAttrs are groupOfNames' MUST and MAY attributes (core.schema).
var groupOfNamesAttrs = strings.Fields(`member cn businessCategory seeAlso owner ou o description`)

func TestDefaultsLiveInStockSchemas(t *testing.T) {
	allowed := func(list []string, attr string) bool {
		for _, a := range list {
			if strings.EqualFold(a, attr) {
				return true
			}
		}
		return false
	}
	for path, attr := range mapping.DefaultUserAttributes() {
		require.True(t, allowed(inetOrgPersonAttrs, attr), "%s → %s is not allowed by inetOrgPerson", path, attr)
	}
	for _, attr := range mapping.DefaultUserMap().SearchAttributes(mapping.DefaultActiveMarker(), "") {
		if attr == "entryCSN" || attr == "createTimestamp" || attr == "modifyTimestamp" {
			continue // operational
		}
		require.True(t, allowed(inetOrgPersonAttrs, attr), "%s is not allowed by inetOrgPerson", attr)
	}
	for path, attr := range mapping.DefaultGroupAttributes() {
		require.True(t, allowed(groupOfNamesAttrs, attr), "%s → %s is not allowed by groupOfNames", path, attr)
	}
	// Entra ID's default user attributes all have a home.
	m := mapping.DefaultUserMap()
	for _, path := range []string{
		"userName", "externalId", "displayName", "title", "preferredLanguage",
		"name.givenName", "name.familyName", "name.formatted",
		`emails[type eq "work"].value`, `phoneNumbers[type eq "work"].value`, `phoneNumbers[type eq "mobile"].value`,
		`phoneNumbers[type eq "fax"].value`, `addresses[type eq "work"].streetAddress`, `addresses[type eq "work"].locality`,
		`addresses[type eq "work"].region`, `addresses[type eq "work"].postalCode`, `addresses[type eq "work"].formatted`,
		mapping.EnterpriseSchemaURN + ":employeeNumber", mapping.EnterpriseSchemaURN + ":department",
		mapping.EnterpriseSchemaURN + ":manager",
	} {
		require.NotEmpty(t, m.LDAPAttr(path), path)
	}
	for _, path := range []string{
		mapping.EnterpriseSchemaURN + ":costCenter", mapping.EnterpriseSchemaURN + ":division",
		`addresses[type eq "work"].country`, "nickName", "userType",
	} {
		require.Empty(t, m.LDAPAttr(path), "%s has no stock home", path)
	}
}

func TestNewUserMap(t *testing.T) {
	m, err := mapping.NewUserMap(map[string]string{
		"TITLE":                        "",
		"nickName":                     "initials",
		`EMAILS[TYPE EQ "Home"].VALUE`: "mail",
		`phoneNumbers[type eq "assistant"].value`:             "x-assistantPhone",
		"urn:ietf:params:scim:schemas:core:2.0:User:userType": "employeeType",
		mapping.EnterpriseSchemaURN + ":costCenter":           "x-costCenter",
		mapping.EnterpriseSchemaURN + ":manager.value":        "secretary",
		"name.middleName": "cn;lang-x-middle",
	})
	require.NoError(t, err)
	got := m.Mappings()
	require.NotContains(t, got, "title")
	require.Equal(t, "initials", got["nickName"])
	require.Equal(t, "mail", got[`emails[type eq "home"].value`])
	require.Equal(t, "x-assistantPhone", got[`phoneNumbers[type eq "assistant"].value`])
	require.Equal(t, "employeeType", got["userType"])
	require.Equal(t, "x-costCenter", got[mapping.EnterpriseSchemaURN+":costCenter"])
	require.Equal(t, "secretary", got[mapping.EnterpriseSchemaURN+":manager"])
	require.Equal(t, "cn;lang-x-middle", m.LDAPAttr("name.middleName"))
	require.Empty(t, m.LDAPAttr("not a path ["))
	require.Empty(t, m.LDAPAttr("shoeSize"))
	require.Empty(t, m.LDAPAttr(`phoneNumbers[type eq "never"].value`))

	require.Equal(t, mapping.DefaultUserAttributes(), mapping.DefaultUserMap().Mappings())
	require.Equal(t, mapping.UserSchemaURN, m.Schema().URN)

	attrs := m.SearchAttributes(mapping.ActiveMarker{Attr: "employeeType", Value: "x", LockAttr: "pwdAccountLockedTime"}, "entryUUID")
	for _, want := range []string{"cn", "sn", "uid", "mail", "employeeType", "pwdAccountLockedTime", "entryUUID", "entryCSN", "createTimestamp", "modifyTimestamp", "x-costCenter"} {
		require.Contains(t, attrs, want)
	}
	require.NotContains(t, attrs, "title")
	require.NotContains(t, attrs, "")
}

func TestNewUserMapErrors(t *testing.T) {
	tests := map[string]struct {
		overrides map[string]string
		exts      []mapping.ExtensionSchema
		fragments []string
	}{
		"unknown path":              {overrides: map[string]string{"shoeSize": "x"}, fragments: []string{`"shoeSize"`, "unknown SCIM attribute"}},
		"unparsable path":           {overrides: map[string]string{"emails[": "x"}, fragments: []string{`"emails["`, "not a SCIM attribute path"}},
		"id":                        {overrides: map[string]string{"id": "uid"}, fragments: []string{"id_attribute"}},
		"meta":                      {overrides: map[string]string{"meta.created": "x"}, fragments: []string{"read-only"}},
		"groups":                    {overrides: map[string]string{"groups": "memberOf"}, fragments: []string{"read-only"}},
		"active":                    {overrides: map[string]string{"active": "x"}, fragments: []string{"active marker"}},
		"password":                  {overrides: map[string]string{"password": "x"}, fragments: []string{"password mechanism"}},
		"complex without sub":       {overrides: map[string]string{"name": "cn"}, fragments: []string{"name.formatted"}},
		"unknown sub":               {overrides: map[string]string{"name.nick": "x"}, fragments: []string{`"nick"`}},
		"sub of a simple attribute": {overrides: map[string]string{"title.x": "x"}, fragments: []string{"no sub-attributes"}},
		"multi-valued without type": {overrides: map[string]string{"emails.value": "mail"}, fragments: []string{"type filter"}},
		"multi-valued unmappable":   {overrides: map[string]string{"roles": "x"}, fragments: []string{"roles cannot be mapped"}},
		"filter on a simple attr":   {overrides: map[string]string{`title[type eq "x"]`: "x"}, fragments: []string{"cannot be mapped with a filter"}},
		"filter other than type eq": {overrides: map[string]string{`emails[value eq "x"].value`: "x"}, fragments: []string{`[type eq "<type>"]`}},
		"filter with a number":      {overrides: map[string]string{`emails[type eq 1].value`: "x"}, fragments: []string{`[type eq "<type>"]`}},
		"type with odd characters":  {overrides: map[string]string{`emails[type eq "a\"b"].value`: "x"}, fragments: []string{"type"}},
		"filter without sub":        {overrides: map[string]string{`emails[type eq "work"]`: "x"}, fragments: []string{"name the sub-attribute"}},
		"unmappable typed sub":      {overrides: map[string]string{`emails[type eq "work"].display`: "x"}, fragments: []string{"emails.display"}},
		"manager sub":               {overrides: map[string]string{mapping.EnterpriseSchemaURN + ":manager.displayName": "x"}, fragments: []string{"only manager"}},
		"whole schema":              {overrides: map[string]string{mapping.EnterpriseSchemaURN: "x"}, fragments: []string{"whole schema"}},
		"undeclared schema":         {overrides: map[string]string{"urn:acme:User:x": "x"}, fragments: []string{`"urn:acme:User"`, "not declared"}},
		"invalid LDAP name":         {overrides: map[string]string{"title": "bad name"}, fragments: []string{`"bad name"`}},
		"objectClass":               {overrides: map[string]string{"title": "objectClass"}, fragments: []string{"structure"}},
		"userPassword":              {overrides: map[string]string{"nickName": "userPassword"}, fragments: []string{"Password Modify"}},
		"operational":               {overrides: map[string]string{"nickName": "entryUUID"}, fragments: []string{"maintained by the server"}},
		"ppolicy":                   {overrides: map[string]string{"nickName": "pwdAccountLockedTime"}, fragments: []string{"password policy"}},
		"two attributes, one LDAP attribute": {
			overrides: map[string]string{"displayName": "cn"},
			fragments: []string{`"displayName"`, `"name.formatted"`, `"cn"`},
		},
		"two types and a simple attribute on mail": {
			overrides: map[string]string{`emails[type eq "home"].value`: "mail", "nickName": "mail"},
			fragments: []string{`"nickName"`},
		},
		"every problem at once": {
			overrides: map[string]string{"a1": "x", "a2": "x"},
			fragments: []string{`"a1"`, `"a2"`},
		},
		"extension URN": {
			exts:      []mapping.ExtensionSchema{{URN: "acme", Attributes: []mapping.ExtAttr{{Name: "a", Type: "string"}}}},
			fragments: []string{`extension "acme"`, "URN"},
		},
		"extension reuses the enterprise URN": {
			exts:      []mapping.ExtensionSchema{{URN: mapping.EnterpriseSchemaURN, Attributes: []mapping.ExtAttr{{Name: "a", Type: "string"}}}},
			fragments: []string{"already in use"},
		},
		"two extensions with one URN": {
			exts: []mapping.ExtensionSchema{
				{URN: "urn:acme:User", Attributes: []mapping.ExtAttr{{Name: "a", Type: "string"}}},
				{URN: "URN:ACME:User", Attributes: []mapping.ExtAttr{{Name: "b", Type: "string"}}},
			},
			fragments: []string{"already in use"},
		},
		"extension without attributes": {
			exts:      []mapping.ExtensionSchema{{URN: "urn:acme:User"}},
			fragments: []string{"no attributes"},
		},
		"extension attribute name": {
			exts:      []mapping.ExtensionSchema{{URN: "urn:acme:User", Attributes: []mapping.ExtAttr{{Name: "1x", Type: "string"}}}},
			fragments: []string{`"1x"`},
		},
		"extension attribute twice": {
			exts:      []mapping.ExtensionSchema{{URN: "urn:acme:User", Attributes: []mapping.ExtAttr{{Name: "a", Type: "string"}, {Name: "A", Type: "string"}}}},
			fragments: []string{"declared twice"},
		},
		"extension attribute type": {
			exts:      []mapping.ExtensionSchema{{URN: "urn:acme:User", Attributes: []mapping.ExtAttr{{Name: "a", Type: "complex"}}}},
			fragments: []string{`"complex"`, "string, boolean, integer, dateTime"},
		},
		"extension LDAP attribute": {
			exts:      []mapping.ExtensionSchema{{URN: "urn:acme:User", Attributes: []mapping.ExtAttr{{Name: "a", Type: "string", LDAP: "memberOf"}}}},
			fragments: []string{`attribute "a"`, "maintained by the server"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := mapping.NewUserMap(tc.overrides, tc.exts...)
			require.Error(t, err)
			require.True(t, strings.HasPrefix(err.Error(), "mapping: user_attributes: "), err.Error())
			for _, f := range tc.fragments {
				require.Contains(t, err.Error(), f)
			}
		})
	}
}

func TestNewGroupMap(t *testing.T) {
	gm, err := mapping.NewGroupMap(map[string]string{"members": "uniqueMember", "externalId": "", "displayName": "description"},
		mapping.ExtensionSchema{URN: "urn:acme:Group", Attributes: []mapping.ExtAttr{{Name: "code", Type: "string", LDAP: "ou"}}})
	require.NoError(t, err)
	require.Equal(t, "uniqueMember", gm.MemberAttr())
	require.Equal(t, map[string]string{"displayName": "description", "urn:acme:Group:code": "ou"}, gm.Mappings())
	require.Equal(t, []string{"cn", "createTimestamp", "description", "entryCSN", "entryUUID", "modifyTimestamp", "ou", "uniqueMember"},
		gm.SearchAttributes("entryUUID", true))
	require.NotContains(t, gm.SearchAttributes("entryUUID", false), "uniqueMember")
	require.Equal(t, mapping.GroupSchemaURN, gm.Schema().URN)
	require.Equal(t, "member", mapping.DefaultGroupMap().MemberAttr())
	require.Equal(t, mapping.DefaultGroupAttributes()["displayName"], mapping.DefaultGroupMap().Mappings()["displayName"])

	for name, tc := range map[string]struct {
		overrides map[string]string
		exts      []mapping.ExtensionSchema
		fragment  string
	}{
		"members unmapped":              {overrides: map[string]string{"members": ""}, fragment: "members needs"},
		"members bad name":              {overrides: map[string]string{"members": "a b"}, fragment: "members needs"},
		"externalId on the member attr": {overrides: map[string]string{"externalId": "member"}, fragment: "already used for members"},
		"unknown attribute":             {overrides: map[string]string{"owner": "owner"}, fragment: `"owner"`},
		"members with a filter":         {overrides: map[string]string{`members[value eq "x"]`: "member"}, fragment: "members cannot be combined"},
		"bad extension":                 {exts: []mapping.ExtensionSchema{{URN: "x"}}, fragment: "group_attributes"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := mapping.NewGroupMap(tc.overrides, tc.exts...)
			require.ErrorContains(t, err, tc.fragment)
		})
	}
}
