package mapping_test

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/mapping"
)

const ent = mapping.EnterpriseSchemaURN

func TestUserToLDAPEntraCreate(t *testing.T) {
	body, err := os.ReadFile("testdata/entra_post_user.json")
	require.NoError(t, err)
	w, err := mapping.UserToLDAP(jsonMap(t, string(body)), mapping.DefaultUserMap(), mapping.DefaultActiveMarker(), resolve)
	require.NoError(t, err)
	want := mapping.UserWrite{
		Attrs: map[string][]string{
			"uid":                      {"jdoe@contoso.com"},
			"businessCategory":         {"jdoe"},
			"cn":                       {"John Doe"},
			"sn":                       {"Doe"},
			"givenName":                {"John"},
			"displayName":              {"John Doe"},
			"title":                    {"Account Executive"},
			"preferredLanguage":        {"en-US"},
			"mail":                     {"jdoe@contoso.com"},
			"telephoneNumber":          {"+1 425 555 0100"},
			"mobile":                   {"+1 425 555 0101"},
			"facsimileTelephoneNumber": {"+1 425 555 0102"},
			"street":                   {"1 Microsoft Way"},
			"l":                        {"Redmond"},
			"st":                       {"WA"},
			"postalCode":               {"98052"},
			"postalAddress":            {"1 Microsoft Way$Redmond, WA 98052"},
			"employeeNumber":           {"4711"},
			"departmentNumber":         {"Sales"},
			"manager":                  {bossDN},
		},
		Active:  true,
		Ignored: []string{`addresses[type eq "work"].country`, ent + ":costCenter"},
	}
	if diff := cmp.Diff(want, w, cmpopts.IgnoreUnexported(mapping.UserWrite{})); diff != "" {
		t.Errorf("UserToLDAP mismatch (-want +got):\n%s", diff)
	}
}

func TestUserToLDAP(t *testing.T) {
	acme := mapping.ExtensionSchema{URN: "urn:ietf:params:scim:schemas:extension:acme:2.0:User", Attributes: []mapping.ExtAttr{
		{Name: "vip", Type: "boolean", LDAP: "carLicense"},
		{Name: "level", Type: "integer", LDAP: "roomNumber"},
		{Name: "hired", Type: "dateTime", LDAP: "x-hired"},
		{Name: "tags", Type: "string", MultiValued: true, LDAP: "ou"},
		{Name: "note", Type: "string"},
	}}
	acmeMap, err := mapping.NewUserMap(nil, acme)
	require.NoError(t, err)
	userTypeMap, err := mapping.NewUserMap(map[string]string{"userType": "employeeType"})
	require.NoError(t, err)
	ppolicy := mapping.DefaultActiveMarker()
	ppolicy.LockAttr = "pwdAccountLockedTime"

	tests := map[string]struct {
		m           mapping.UserMap
		marker      *mapping.ActiveMarker
		res         string
		wantAttrs   map[string][]string // compared for these attributes only; nil values must be absent
		wantActive  *bool
		wantPass    string
		wantIgnored []string
	}{
		"active as the string False disables": {
			res:        `{"userName":"u","active":"False"}`,
			wantAttrs:  map[string][]string{"employeeType": {"scimbridge:disabled"}},
			wantActive: ptr(false),
		},
		"active as lower-case true": {
			res:        `{"userName":"u","active":"true"}`,
			wantAttrs:  map[string][]string{"employeeType": nil},
			wantActive: ptr(true),
		},
		"active absent means active": {
			res:        `{"userName":"u"}`,
			wantActive: ptr(true),
		},
		"disable with the ppolicy lock": {
			marker:    &ppolicy,
			res:       `{"userName":"u","active":false}`,
			wantAttrs: map[string][]string{"employeeType": {"scimbridge:disabled"}, "pwdAccountLockedTime": {"000001010000Z"}},
		},
		"manager as an object": {
			res:       `{"userName":"u","` + ent + `":{"manager":{"value":"` + bossID + `","displayName":"Boss"}}}`,
			wantAttrs: map[string][]string{"manager": {bossDN}},
		},
		"manager as a plain string": {
			res:       `{"userName":"u","` + ent + `":{"manager":"` + bossID + `"}}`,
			wantAttrs: map[string][]string{"manager": {bossDN}},
		},
		"manager with an empty value is no manager": {
			res:       `{"userName":"u","` + ent + `":{"manager":{"value":""}}}`,
			wantAttrs: map[string][]string{"manager": nil},
		},
		"flat URN-qualified enterprise keys": {
			res:       `{"userName":"u","` + ent + `:department":"Ops","` + ent + `:manager":"` + aliceID + `"}`,
			wantAttrs: map[string][]string{"departmentNumber": {"Ops"}, "manager": {aliceDN}},
		},
		"URN-qualified core attributes and a core object": {
			res:       `{"urn:ietf:params:scim:schemas:core:2.0:User:userName":"u","urn:ietf:params:scim:schemas:core:2.0:User":{"title":"T"}}`,
			wantAttrs: map[string][]string{"uid": {"u"}, "title": {"T"}},
		},
		"attribute names in any case": {
			res:       `{"USERNAME":"u","Name":{"GIVENNAME":"G","familyname":"F"},"EMAILS":[{"VALUE":"a@x.org","Type":"WORK"}]}`,
			wantAttrs: map[string][]string{"uid": {"u"}, "givenName": {"G"}, "sn": {"F"}, "mail": {"a@x.org"}, "cn": {"G F"}},
		},
		"password is kept apart": {
			res:       `{"userName":"u","password":"s3cret!"}`,
			wantAttrs: map[string][]string{"userPassword": nil},
			wantPass:  "s3cret!",
		},
		"cn from displayName, sn from userName": {
			res:       `{"userName":"u","displayName":"Display"}`,
			wantAttrs: map[string][]string{"cn": {"Display"}, "sn": {"u"}},
		},
		"cn from given and family names": {
			res:       `{"userName":"u","name":{"givenName":"Ada","familyName":"Lovelace"}}`,
			wantAttrs: map[string][]string{"cn": {"Ada Lovelace"}, "sn": {"Lovelace"}},
		},
		"cn and sn from userName": {
			res:       `{"userName":"u"}`,
			wantAttrs: map[string][]string{"cn": {"u"}, "sn": {"u"}},
		},
		"e-mails: primary first, untyped into mail, duplicates dropped, types without a home ignored": {
			res: `{"userName":"u","emails":[
				{"value":"home@x.org","type":"home"},
				{"value":"Work@X.org","type":"work","primary":true},
				{"value":"other@x.ORG","type":"other"},
				{"value":"work@x.ORG"},
				{"value":"plain@x.org"}]}`,
			wantAttrs:   map[string][]string{"mail": {"Work@X.org", "plain@x.org"}},
			wantIgnored: []string{`emails[type eq "home"].value`, `emails[type eq "other"].value`},
		},
		"phone numbers of unmapped types are ignored": {
			res:         `{"userName":"u","phoneNumbers":[{"value":"+1 555","type":"other"},{"value":"+1 556","type":"assistant"},{"value":"+1 557"}]}`,
			wantAttrs:   map[string][]string{"telephoneNumber": {"+1 557"}},
			wantIgnored: []string{`phoneNumbers[type eq "assistant"].value`, `phoneNumbers[type eq "other"].value`},
		},
		"telephone numbers that match as equal are written once": {
			res:       `{"userName":"u","phoneNumbers":[{"value":"+1 555-0100","type":"work"},{"value":"+15550100","type":"work"}]}`,
			wantAttrs: map[string][]string{"telephoneNumber": {"+1 555-0100"}},
		},
		"only the first work address is stored": {
			res: `{"userName":"u","addresses":[
				{"type":"work","locality":"First"},
				{"type":"work","locality":"Second","primary":true},
				{"type":"home","formatted":"Home 1\n\nTown $1 \\ x","locality":"Hometown"}]}`,
			wantAttrs:   map[string][]string{"l": {"Second"}, "homePostalAddress": {`Home 1$Town \241 \5C x`}},
			wantIgnored: []string{`addresses[type eq "home"].locality`, `addresses[type eq "work"].locality`},
		},
		"read-only attributes are dropped silently": {
			res:       `{"userName":"u","id":"given","meta":{"version":"W/\"x\""},"groups":[{"value":"g"}],"` + ent + `":{"manager":{"value":"` + bossID + `","displayName":"x"}}}`,
			wantAttrs: map[string][]string{"manager": {bossDN}},
		},
		"unmapped schema attributes are reported": {
			res:         `{"userName":"u","nickName":"n","roles":[{"value":"r"}],"entitlements":[],"name":{"middleName":"M"},"ims":[{"value":"i","type":"xmpp"}]}`,
			wantIgnored: []string{`ims[type eq "xmpp"].value`, "name.middleName", "nickName", "roles"},
		},
		"manager without a resolver is reported": {
			res:         `{"userName":"u","` + ent + `":{"manager":"` + bossID + `"}}`,
			wantAttrs:   map[string][]string{"manager": nil},
			wantIgnored: []string{ent + ":manager"},
		},
		"a userType carrying the marker value is not written as one": {
			m:          userTypeMap,
			res:        `{"userName":"u","userType":"scimbridge:DISABLED","active":true}`,
			wantAttrs:  map[string][]string{"employeeType": nil},
			wantActive: ptr(true),
		},
		"userType and the marker share employeeType": {
			m:         userTypeMap,
			res:       `{"userName":"u","userType":"Contractor","active":false}`,
			wantAttrs: map[string][]string{"employeeType": {"Contractor", "scimbridge:disabled"}},
		},
		"custom extension values are typed": {
			m:   acmeMap,
			res: `{"userName":"u","` + acme.URN + `":{"vip":"true","level":7,"hired":"2024-01-02T03:04:05+01:00","tags":["a","b","A"],"note":"n"}}`,
			wantAttrs: map[string][]string{
				"carLicense": {"TRUE"}, "roomNumber": {"7"}, "x-hired": {"20240102020405Z"}, "ou": {"a", "b"},
			},
			wantIgnored: []string{acme.URN + ":note"},
		},
		"a single value for a multi-valued attribute": {
			m:         acmeMap,
			res:       `{"userName":"u","` + acme.URN + `:tags":"solo","emails":{"value":"one@x.org"}}`,
			wantAttrs: map[string][]string{"ou": {"solo"}, "mail": {"one@x.org"}},
		},
		"blank and null values are unassigned": {
			res:       `{"userName":"u","title":"  ","displayName":null,"emails":[],"name":{},"schemas":null,"` + ent + `":null}`,
			wantAttrs: map[string][]string{"title": nil, "displayName": nil, "mail": nil},
		},
		"dotted keys in a body": {
			res:       `{"userName":"u","name.givenName":"G","name.familyName":"F","name.middleName":null,"` + ent + `:manager.value":"` + bossID + `"}`,
			wantAttrs: map[string][]string{"givenName": {"G"}, "sn": {"F"}, "manager": {bossDN}},
		},
		"a read-only sub-attribute by dotted key": {
			res:       `{"userName":"u","` + ent + `:manager.displayName":"Boss"}`,
			wantAttrs: map[string][]string{"manager": nil},
		},
		"an extension boolean false and a dateTime without zone": {
			m:         acmeMap,
			res:       `{"userName":"u","` + acme.URN + `":{"vip":false,"hired":"2024-01-02T03:04:05"}}`,
			wantAttrs: map[string][]string{"carLicense": {"FALSE"}, "x-hired": {"20240102030405Z"}},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			m := tc.m
			if m.Schema().URN == "" {
				m = mapping.DefaultUserMap()
			}
			marker := mapping.DefaultActiveMarker()
			if tc.marker != nil {
				marker = *tc.marker
			}
			resolver := resolve
			if strings.Contains(name, "without a resolver") {
				resolver = nil
			}
			w, err := mapping.UserToLDAP(jsonMap(t, tc.res), m, marker, resolver)
			require.NoError(t, err)
			for attr, want := range tc.wantAttrs {
				require.Equal(t, want, w.Attrs[attr], "attribute %s", attr)
			}
			require.NotEmpty(t, w.Attrs["cn"], "cn is always produced")
			require.NotEmpty(t, w.Attrs["sn"], "sn is always produced")
			if tc.wantActive != nil {
				require.Equal(t, *tc.wantActive, w.Active)
			}
			require.Equal(t, tc.wantPass, w.Password)
			if tc.wantIgnored == nil {
				tc.wantIgnored = []string{}
			}
			require.Equal(t, tc.wantIgnored, w.Ignored)
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestUserToLDAPErrors(t *testing.T) {
	acme := mapping.ExtensionSchema{URN: "urn:acme:User", Attributes: []mapping.ExtAttr{
		{Name: "level", Type: "integer", LDAP: "roomNumber"},
		{Name: "hired", Type: "dateTime", LDAP: "x-hired"},
		{Name: "vip", Type: "boolean", LDAP: "carLicense"},
	}}
	acmeMap, err := mapping.NewUserMap(nil, acme)
	require.NoError(t, err)
	tests := map[string]struct {
		res       string
		scimType  string
		fragments []string
	}{
		"an attribute in no schema":        {`{"userName":"u","shoeSize":42}`, mapping.ScimTypeInvalidSyntax, []string{`"shoeSize"`}},
		"an undeclared extension":          {`{"userName":"u","urn:acme:Other:x":"1"}`, mapping.ScimTypeInvalidSyntax, []string{`"urn:acme:Other:x"`}},
		"an unknown extension attribute":   {`{"userName":"u","` + ent + `":{"shoeSize":1}}`, mapping.ScimTypeInvalidSyntax, []string{`User:shoeSize"`}},
		"an unknown sub-attribute":         {`{"userName":"u","name":{"nick":"n"}}`, mapping.ScimTypeInvalidSyntax, []string{`"nick"`, "name"}},
		"a dotted path into a list":        {`{"userName":"u","emails.value":"a@x"}`, mapping.ScimTypeInvalidSyntax, []string{"emails.value"}},
		"an unknown dotted sub-attribute":  {`{"userName":"u","name.nick":"n"}`, mapping.ScimTypeInvalidSyntax, []string{`"nick"`}},
		"active of the wrong type":         {`{"userName":"u","active":1}`, mapping.ScimTypeInvalidValue, []string{"active", "boolean"}},
		"active as a non-boolean string":   {`{"userName":"u","active":"yes"}`, mapping.ScimTypeInvalidValue, []string{"active"}},
		"a list for a single value":        {`{"userName":"u","displayName":["a","b"]}`, mapping.ScimTypeInvalidValue, []string{"displayName", "single-valued"}},
		"a list for a sub-attribute":       {`{"userName":"u","emails":[{"value":["a"]}]}`, mapping.ScimTypeInvalidValue, []string{"emails.value", "single-valued"}},
		"a string for a complex attribute": {`{"userName":"u","name":"John"}`, mapping.ScimTypeInvalidValue, []string{"name", "object"}},
		"a number for a string":            {`{"userName":"u","title":5}`, mapping.ScimTypeInvalidValue, []string{"title", "string"}},
		"userName missing":                 {`{"displayName":"d"}`, mapping.ScimTypeInvalidValue, []string{"userName is required"}},
		"a telephone number slapd refuses": {`{"userName":"u","phoneNumbers":[{"value":"+1 555 #12","type":"work"}]}`, mapping.ScimTypeInvalidValue, []string{`phoneNumbers[type eq "work"].value`, "telephone"}},
		"a non-ASCII e-mail address":       {`{"userName":"u","emails":[{"value":"jöe@exämple.org"}]}`, mapping.ScimTypeInvalidValue, []string{`emails[type eq "work"].value`, "ASCII"}},
		"an unknown manager id":            {`{"userName":"u","` + ent + `":{"manager":"nobody"}}`, mapping.ScimTypeInvalidValue, []string{"manager"}},
		"an extension that is no object":   {`{"userName":"u","` + ent + `":"x"}`, mapping.ScimTypeInvalidValue, []string{ent, "object"}},
		"a core object that is no object":  {`{"userName":"u","urn:ietf:params:scim:schemas:core:2.0:User":"x"}`, mapping.ScimTypeInvalidValue, []string{"object"}},
		"a dateTime that is no string":     {`{"userName":"u","urn:acme:User":{"hired":5}}`, mapping.ScimTypeInvalidValue, []string{"hired", "dateTime"}},
		"schemas that are no strings":      {`{"userName":"u","schemas":[1]}`, mapping.ScimTypeInvalidValue, []string{"schemas"}},
		"an integer that is none":          {`{"userName":"u","urn:acme:User":{"level":"high"}}`, mapping.ScimTypeInvalidValue, []string{"urn:acme:User:level", "integer"}},
		"a fractional integer":             {`{"userName":"u","urn:acme:User":{"level":1.5}}`, mapping.ScimTypeInvalidValue, []string{"level"}},
		"a dateTime that is none":          {`{"userName":"u","urn:acme:User":{"hired":"yesterday"}}`, mapping.ScimTypeInvalidValue, []string{"hired", "dateTime"}},
		"every problem at once": {
			`{"title":5,"shoeSize":1,"active":"maybe"}`, mapping.ScimTypeInvalidValue, // the first problem's type
			[]string{"active", `"shoeSize"`, "title", "userName is required"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := mapping.UserToLDAP(jsonMap(t, tc.res), acmeMap, mapping.DefaultActiveMarker(), resolve)
			requireScimError(t, err, tc.scimType, tc.fragments...)
		})
	}
}

// TestUserToLDAPGoValues passes a resource built in Go rather than decoded from JSON.
func TestUserToLDAPGoValues(t *testing.T) {
	acme := mapping.ExtensionSchema{URN: "urn:acme:User", Attributes: []mapping.ExtAttr{
		{Name: "a", Type: "integer", LDAP: "x-a"},
		{Name: "b", Type: "integer", LDAP: "x-b"},
		{Name: "c", Type: "integer", LDAP: "x-c"},
		{Name: "d", Type: "integer", LDAP: "x-d"},
		{Name: "tags", Type: "string", MultiValued: true, LDAP: "x-tags"},
	}}
	m, err := mapping.NewUserMap(map[string]string{"nickName": "mail", `emails[type eq "work"].value`: "x-mail"}, acme)
	require.NoError(t, err)
	w, err := mapping.UserToLDAP(map[string]any{
		"userName": "u",
		"urn:acme:User": map[string]any{
			"a": int64(1), "b": int32(2), "c": float64(3), "d": 4, "tags": []string{"x", "y"},
		},
		"emails": []map[string]any{{"value": "e@x.org"}},
	}, m, mapping.DefaultActiveMarker(), resolve)
	require.NoError(t, err)
	for attr, want := range map[string][]string{"x-a": {"1"}, "x-b": {"2"}, "x-c": {"3"}, "x-d": {"4"}, "x-tags": {"x", "y"}, "x-mail": {"e@x.org"}} {
		require.Equal(t, want, w.Attrs[attr], attr)
	}
	for name, res := range map[string]map[string]any{
		"fractional float":  {"userName": "u", "urn:acme:User": map[string]any{"a": 1.5}},
		"huge float":        {"userName": "u", "urn:acme:User": map[string]any{"a": 1e300}},
		"boolean":           {"userName": "u", "urn:acme:User": map[string]any{"a": true}},
		"invalid UTF-8":     {"userName": "u", "title": "\xff\xfe"},
		"non-ASCII in mail": {"userName": "u", "nickName": "né@x.org"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := mapping.UserToLDAP(res, m, mapping.DefaultActiveMarker(), resolve)
			requireScimError(t, err, mapping.ScimTypeInvalidValue)
		})
	}
}

func TestUserToLDAPNameDerivation(t *testing.T) {
	m, err := mapping.NewUserMap(map[string]string{"name.formatted": "", "name.familyName": "", "displayName": "cn"})
	require.NoError(t, err)
	w, err := mapping.UserToLDAP(jsonMap(t, `{"userName":"u","name":{"formatted":"Full Name","familyName":"Family"}}`), m, mapping.DefaultActiveMarker(), resolve)
	require.NoError(t, err)
	require.Equal(t, []string{"Full Name"}, w.Attrs["cn"])
	require.Equal(t, []string{"Family"}, w.Attrs["sn"])
	require.Equal(t, []string{"name.familyName", "name.formatted"}, w.Ignored)

	// A marker attribute spelled in another case than the mapping still shares its values.
	upper := mapping.ActiveMarker{Attr: "EMPLOYEETYPE", Value: "off"}
	ut, err := mapping.NewUserMap(map[string]string{"userType": "employeeType"})
	require.NoError(t, err)
	w, err = mapping.UserToLDAP(jsonMap(t, `{"userName":"u","userType":"staff","active":false}`), ut, upper, resolve)
	require.NoError(t, err)
	require.Equal(t, []string{"staff", "off"}, w.Attrs["employeeType"])
}

func TestUserToLDAPResolverError(t *testing.T) {
	down := errors.New("directory unreachable")
	_, err := mapping.UserToLDAP(jsonMap(t, `{"userName":"u","`+ent+`":{"manager":"x"}}`), mapping.DefaultUserMap(), mapping.DefaultActiveMarker(),
		func(string) (string, error) { return "", down })
	require.ErrorIs(t, err, down)
	var se *mapping.Error
	require.NotErrorAs(t, err, &se, "a resolver failure is not the client's fault")
}

func TestUserFromLDAP(t *testing.T) {
	ppolicy := mapping.DefaultActiveMarker()
	ppolicy.LockAttr = "pwdAccountLockedTime"
	homeMail, err := mapping.NewUserMap(map[string]string{`emails[type eq "home"].value`: "mail", `emails[type eq "school"].value`: "x-school"})
	require.NoError(t, err)
	acme := mapping.ExtensionSchema{URN: "urn:acme:User", Attributes: []mapping.ExtAttr{
		{Name: "vip", Type: "boolean", LDAP: "carLicense"},
		{Name: "level", Type: "integer", LDAP: "roomNumber"},
		{Name: "hired", Type: "dateTime", LDAP: "x-hired"},
	}}
	acmeMap, err := mapping.NewUserMap(nil, acme)
	require.NoError(t, err)
	tagsMap, err := mapping.NewUserMap(nil, mapping.ExtensionSchema{URN: "urn:acme:User", Attributes: []mapping.ExtAttr{
		{Name: "tags", Type: "string", MultiValued: true, LDAP: "x-tag"},
		{Name: "hired", Type: "dateTime", LDAP: "x-hired"},
	}})
	require.NoError(t, err)
	mailMarker, err := mapping.NewUserMap(map[string]string{`emails[type eq "work"].value`: "employeeType"})
	require.NoError(t, err)

	tests := map[string]struct {
		m         *mapping.UserMap
		marker    *mapping.ActiveMarker
		attrs     map[string][]string
		idAttr    string
		managerID func(string) string
		want      map[string]any // compared for these keys only; nil values must be absent
	}{
		"the marker is matched case-insensitively": {
			attrs: map[string][]string{"uid": {"u"}, "employeeType": {"Scimbridge:Disabled"}},
			want:  map[string]any{"active": false},
		},
		"another employeeType value is no marker": {
			attrs: map[string][]string{"uid": {"u"}, "employeeType": {"contractor"}},
			want:  map[string]any{"active": true, "userType": nil},
		},
		"the permanent ppolicy lock disables": {
			marker: &ppolicy,
			attrs:  map[string][]string{"uid": {"u"}, "pwdAccountLockedTime": {"000001010000Z"}},
			want:   map[string]any{"active": false},
		},
		"a ppolicy lockout is no deactivation": {
			marker: &ppolicy,
			attrs:  map[string][]string{"uid": {"u"}, "pwdAccountLockedTime": {"20240101000000Z"}},
			want:   map[string]any{"active": true},
		},
		"the manager is left out without managerID": {
			attrs:     map[string][]string{"uid": {"u"}, "manager": {bossDN}},
			managerID: nil,
			want:      map[string]any{ent: nil, "schemas": []any{mapping.UserSchemaURN}},
		},
		"several types into one attribute claim each value once": {
			m:     &homeMail,
			attrs: map[string][]string{"uid": {"u"}, "mail": {"a@x.org", "b@x.org"}, "x-school": {"s@x.edu"}},
			want: map[string]any{"emails": []any{
				map[string]any{"value": "a@x.org", "type": "work", "primary": true},
				map[string]any{"value": "b@x.org", "type": "work"},
				map[string]any{"value": "s@x.edu", "type": "school"},
			}},
		},
		"typed extension values; unreadable ones are left out": {
			m: &acmeMap,
			attrs: map[string][]string{
				"uid": {"u"}, "carLicense": {"maybe"}, "roomNumber": {"12"}, "x-hired": {"20240102030405Z"},
			},
			want: map[string]any{"urn:acme:User": map[string]any{"level": int64(12), "hired": "2024-01-02T03:04:05Z"}},
		},
		"dateTime extension values already in RFC 3339": {
			m:     &acmeMap,
			attrs: map[string][]string{"uid": {"u"}, "x-hired": {"2024-01-02T03:04:05+02:00"}, "carLicense": {"false"}},
			want:  map[string]any{"urn:acme:User": map[string]any{"hired": "2024-01-02T01:04:05Z", "vip": false}},
		},
		"a familyName that is the userName is shown when name.formatted is real": {
			attrs: map[string][]string{"uid": {"u"}, "sn": {"u"}, "cn": {"Real Name"}},
			want:  map[string]any{"name": map[string]any{"formatted": "Real Name"}},
		},
		"multi-valued extension values, a bad dateTime left out": {
			m:     &tagsMap,
			attrs: map[string][]string{"uid": {"u"}, "x-tag": {"a", "b"}, "x-hired": {"garbage"}},
			want:  map[string]any{"urn:acme:User": map[string]any{"tags": []any{"a", "b"}}},
		},
		"e-mail addresses on the marker attribute": {
			m:     &mailMarker,
			attrs: map[string][]string{"uid": {"u"}, "employeeType": {"a@x.org", "scimbridge:disabled"}},
			want: map[string]any{"active": false, "emails": []any{
				map[string]any{"value": "a@x.org", "type": "work", "primary": true},
			}},
		},
		"no id attribute, no timestamps": {
			attrs:  map[string][]string{"uid": {"u"}, "entryUUID": {"x"}, "createTimestamp": {"garbage"}},
			idAttr: "-",
			want:   map[string]any{"id": nil},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			m := mapping.DefaultUserMap()
			if tc.m != nil {
				m = *tc.m
			}
			marker := mapping.DefaultActiveMarker()
			if tc.marker != nil {
				marker = *tc.marker
			}
			idAttr := "entryUUID"
			if tc.idAttr == "-" {
				idAttr = ""
			}
			res := mapping.UserFromLDAP(mapping.Entry{DN: "uid=u," + base, Attrs: tc.attrs}, m, marker, idAttr, tc.managerID)
			for k, want := range tc.want {
				if want == nil {
					require.NotContains(t, res, k)
					continue
				}
				if diff := cmp.Diff(want, res[k]); diff != "" {
					t.Errorf("%s mismatch (-want +got):\n%s", k, diff)
				}
			}
			meta := res["meta"].(map[string]any)
			require.Equal(t, "User", meta["resourceType"])
			require.True(t, strings.HasPrefix(meta["version"].(string), `W/"`))
		})
	}
}

func TestUserChanges(t *testing.T) {
	userTypeMap, err := mapping.NewUserMap(map[string]string{"userType": "employeeType"})
	require.NoError(t, err)
	ppolicy := mapping.DefaultActiveMarker()
	ppolicy.LockAttr = "pwdAccountLockedTime"
	entry := func(attrs map[string][]string) mapping.Entry {
		all := map[string][]string{"uid": {"u"}, "cn": {"User One"}, "sn": {"One"}, "givenName": {"User"}}
		for k, v := range attrs {
			if v == nil {
				delete(all, k)
				continue
			}
			all[k] = v
		}
		return mapping.Entry{DN: "uid=u," + base, Attrs: all}
	}
	tests := map[string]struct {
		m      *mapping.UserMap
		marker *mapping.ActiveMarker
		attrs  map[string][]string
		patch  func(res map[string]any)
		want   map[string][]string
	}{
		"no change": {
			want: map[string][]string{},
		},
		"a new title": {
			attrs: map[string][]string{"title": {"Old", "Second"}},
			patch: func(r map[string]any) { r["title"] = "New" },
			want:  map[string][]string{"title": {"New"}},
		},
		"a case change is a change": {
			attrs: map[string][]string{"title": {"engineer"}},
			patch: func(r map[string]any) { r["title"] = "Engineer" },
			want:  map[string][]string{"title": {"Engineer"}},
		},
		"a second title survives an unrelated change": {
			attrs: map[string][]string{"title": {"Eng", "Warden"}},
			patch: func(r map[string]any) { r["displayName"] = "D" },
			want:  map[string][]string{"displayName": {"D"}},
		},
		"a removed attribute is deleted": {
			attrs: map[string][]string{"title": {"Eng"}},
			patch: func(r map[string]any) { delete(r, "title") },
			want:  map[string][]string{"title": {}},
		},
		"disabling keeps the other employeeType values": {
			attrs: map[string][]string{"employeeType": {"contractor"}},
			patch: func(r map[string]any) { r["active"] = false },
			want:  map[string][]string{"employeeType": {"contractor", "scimbridge:disabled"}},
		},
		"enabling removes the marker in any case": {
			attrs: map[string][]string{"employeeType": {"SCIMBRIDGE:disabled", "contractor"}},
			patch: func(r map[string]any) { r["active"] = true },
			want:  map[string][]string{"employeeType": {"contractor"}},
		},
		"enabling removes the last employeeType value": {
			attrs: map[string][]string{"employeeType": {"scimbridge:disabled"}},
			patch: func(r map[string]any) { r["active"] = true },
			want:  map[string][]string{"employeeType": {}},
		},
		"disabling with ppolicy locks": {
			marker: &ppolicy,
			patch:  func(r map[string]any) { r["active"] = false },
			want:   map[string][]string{"employeeType": {"scimbridge:disabled"}, "pwdAccountLockedTime": {"000001010000Z"}},
		},
		"disabling replaces a ppolicy lockout by the permanent lock": {
			marker: &ppolicy,
			attrs:  map[string][]string{"pwdAccountLockedTime": {"20240101000000Z"}},
			patch:  func(r map[string]any) { r["active"] = false },
			want:   map[string][]string{"employeeType": {"scimbridge:disabled"}, "pwdAccountLockedTime": {"000001010000Z"}},
		},
		"enabling lifts the permanent lock": {
			marker: &ppolicy,
			attrs:  map[string][]string{"employeeType": {"scimbridge:disabled"}, "pwdAccountLockedTime": {"000001010000Z"}},
			patch:  func(r map[string]any) { r["active"] = true },
			want:   map[string][]string{"employeeType": {}, "pwdAccountLockedTime": {}},
		},
		"enabling does not lift a ppolicy lockout": {
			marker: &ppolicy,
			attrs:  map[string][]string{"pwdAccountLockedTime": {"20240101000000Z"}},
			patch:  func(r map[string]any) { r["title"] = "T" },
			want:   map[string][]string{"title": {"T"}},
		},
		"userType and marker in one attribute": {
			m:     &userTypeMap,
			attrs: map[string][]string{"employeeType": {"contractor"}},
			patch: func(r map[string]any) { r["active"] = false; r["userType"] = "employee" },
			want:  map[string][]string{"employeeType": {"employee", "scimbridge:disabled"}},
		},
		"a manager the client cannot see is kept": {
			attrs: map[string][]string{"manager": {outsideDN}},
			patch: func(r map[string]any) { r["title"] = "T" },
			want:  map[string][]string{"title": {"T"}},
		},
		"a manager spelled in another case is no change": {
			attrs: map[string][]string{"manager": {strings.ToUpper(bossDN)}},
			want:  map[string][]string{},
		},
		"a new manager": {
			attrs: map[string][]string{"manager": {bossDN}},
			patch: func(r map[string]any) { r[ent] = map[string]any{"manager": aliceID} },
			want:  map[string][]string{"manager": {aliceDN}},
		},
		"a removed manager the client could see": {
			attrs: map[string][]string{"manager": {bossDN}},
			patch: func(r map[string]any) { delete(r, ent) },
			want:  map[string][]string{"manager": {}},
		},
		"a new userName": {
			patch: func(r map[string]any) { r["userName"] = "v" },
			want:  map[string][]string{"uid": {"v"}},
		},
		// Issue 9: POST userName=OMalley name.familyName=OMalley, then PATCH userName only. sn
		// equals the old userName, so it reads like a derived value, but it must not follow.
		"a new userName keeps an sn equal to the old userName": {
			attrs: map[string][]string{"uid": {"OMalley"}, "sn": {"OMalley"}, "cn": {"Conan OMalley"}, "givenName": {"Conan"}},
			patch: func(r map[string]any) { r["userName"] = "newusername" },
			want:  map[string][]string{"uid": {"newusername"}},
		},
		"a new userName keeps a derived sn and cn": {
			attrs: map[string][]string{"uid": {"bob"}, "sn": {"bob"}, "cn": {"bob"}, "givenName": nil},
			patch: func(r map[string]any) { r["userName"] = "robert" },
			want:  map[string][]string{"uid": {"robert"}},
		},
		"a new displayName keeps the cn derived from the old one": {
			attrs: map[string][]string{"cn": {"Dee"}, "displayName": {"Dee"}, "givenName": nil},
			patch: func(r map[string]any) { r["displayName"] = "Dora" },
			want:  map[string][]string{"displayName": {"Dora"}},
		},
		"removing a familyName the client saw derives sn again": {
			patch: func(r map[string]any) { delete(r["name"].(map[string]any), "familyName") },
			want:  map[string][]string{"sn": {"u"}},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			m := mapping.DefaultUserMap()
			if tc.m != nil {
				m = *tc.m
			}
			marker := mapping.DefaultActiveMarker()
			if tc.marker != nil {
				marker = *tc.marker
			}
			e := entry(tc.attrs)
			res := mapping.UserFromLDAP(e, m, marker, "entryUUID", managerID)
			if tc.patch != nil {
				tc.patch(res)
			}
			w, err := mapping.UserToLDAP(res, m, marker, resolve)
			require.NoError(t, err)
			got := mapping.UserChanges(e, w, m, marker, managerID)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("UserChanges mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestVersionOf(t *testing.T) {
	csn := mapping.Entry{Attrs: map[string][]string{"entryCSN": {"20240101000000.000001Z#000000#000#000000"}}}
	require.Equal(t, `W/"20240101000000.000001Z#000000#000#000000"`, mapping.VersionOf(csn))

	a := mapping.Entry{DN: "uid=a," + base, Attrs: map[string][]string{"mail": {"x", "y"}, "modifyTimestamp": {"20240101000000Z"}}}
	b := mapping.Entry{DN: "UID=a," + base, Attrs: map[string][]string{"MAIL": {"y", "x"}, "modifyTimestamp": {"20240101000000Z"}}}
	require.Equal(t, mapping.VersionOf(a), mapping.VersionOf(b), "the hash ignores case of names and order of values")
	require.Regexp(t, `^W/"[0-9a-f]{32}"$`, mapping.VersionOf(a))

	c := mapping.Entry{DN: a.DN, Attrs: map[string][]string{"mail": {"x", "z"}, "modifyTimestamp": {"20240101000000Z"}}}
	require.NotEqual(t, mapping.VersionOf(a), mapping.VersionOf(c))

	unsafe := mapping.Entry{Attrs: map[string][]string{"entryCSN": {`bad"csn`}}}
	require.NotContains(t, mapping.VersionOf(unsafe), `bad"csn`)
}

func TestActiveMarkerValidate(t *testing.T) {
	require.NoError(t, mapping.DefaultActiveMarker().Validate())
	require.NoError(t, mapping.ActiveMarker{Attr: "employeeType", Value: "off", LockAttr: "pwdAccountLockedTime"}.Validate())
	require.NoError(t, mapping.ActiveMarker{LockAttr: "pwdAccountLockedTime"}.Validate())
	for name, tc := range map[string]struct {
		mk       mapping.ActiveMarker
		fragment string
	}{
		"nothing":            {mapping.ActiveMarker{}, "set an attribute and a value"},
		"attribute alone":    {mapping.ActiveMarker{Attr: "employeeType"}, "go together"},
		"value alone":        {mapping.ActiveMarker{Value: "x"}, "go together"},
		"bad attribute":      {mapping.ActiveMarker{Attr: "employee type", Value: "x"}, `"employee type"`},
		"reserved attribute": {mapping.ActiveMarker{Attr: "objectClass", Value: "x"}, "structure"},
		"spaces":             {mapping.ActiveMarker{Attr: "employeeType", Value: " x"}, "spaces"},
		"bad lock attribute": {mapping.ActiveMarker{LockAttr: "pwd locked"}, `"pwd locked"`},
	} {
		t.Run(name, func(t *testing.T) {
			require.ErrorContains(t, tc.mk.Validate(), tc.fragment)
		})
	}
}

func TestActiveMarker(t *testing.T) {
	require.True(t, mapping.ActiveMarker{}.Active(mapping.Entry{}), "no marker: everyone is active")
	mk := mapping.DefaultActiveMarker()
	require.Equal(t, mapping.ActiveMarker{Attr: "employeeType", Value: "scimbridge:disabled"}, mk)
	require.False(t, mk.Active(mapping.Entry{Attrs: map[string][]string{"EMPLOYEETYPE": {" scimbridge:disabled "}}}))
}

func BenchmarkUserFromLDAP(b *testing.B) {
	m := mapping.DefaultUserMap()
	e := mapping.Entry{DN: "uid=ada,ou=people,dc=example,dc=org", Attrs: map[string][]string{
		"uid": {"ada"}, "cn": {"Ada Lovelace"}, "sn": {"Lovelace"}, "givenName": {"Ada"}, "displayName": {"Ada Lovelace"},
		"mail": {"ada@example.org"}, "telephoneNumber": {"+44 20 7946 0000"}, "title": {"Analyst"},
		"entryUUID": {"0f8fad5b-d9cb-469f-a165-70867728950e"}, "entryCSN": {"20261123120000.000000Z#000000#000#000000"},
		"createTimestamp": {"20261123120000Z"}, "modifyTimestamp": {"20261123120000Z"}, "employeeNumber": {"42"},
	}}
	b.ReportAllocs()
	for b.Loop() {
		_ = mapping.UserFromLDAP(e, m, mapping.DefaultActiveMarker(), "entryUUID", nil)
	}
}
