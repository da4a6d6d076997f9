package mapping_test

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	filter "github.com/scim2/filter-parser/v2"
	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/mapping"
)

const (
	always = "(objectClass=*)"
	never  = "(!(objectClass=*))"
)

func userFilterMaps(t testing.TB) (mapping.UserMap, mapping.UserMap) {
	t.Helper()
	acme := mapping.ExtensionSchema{URN: "urn:acme:User", Attributes: []mapping.ExtAttr{
		{Name: "level", Type: "integer", LDAP: "x-level"},
		{Name: "hired", Type: "dateTime", LDAP: "x-hired"},
		{Name: "vip", Type: "boolean", LDAP: "x-vip"},
		{Name: "tags", Type: "string", MultiValued: true, LDAP: "x-tag"},
		{Name: "floor", Type: "integer", LDAP: "roomNumber"},
		{Name: "note", Type: "string"},
	}}
	m, err := mapping.NewUserMap(map[string]string{
		"userType":                     "employeeType",
		`emails[type eq "home"].value`: "x-homeMail",
	}, acme)
	require.NoError(t, err)
	return mapping.DefaultUserMap(), m
}

func TestTranslateUserFilter(t *testing.T) {
	def, custom := userFilterMaps(t)
	ppolicy := mapping.DefaultActiveMarker()
	ppolicy.LockAttr = "pwdAccountLockedTime"
	tests := map[string]struct {
		filter string
		custom bool
		marker *mapping.ActiveMarker
		want   string
	}{
		"eq":                               {filter: `userName eq "jdoe"`, want: "(uid=jdoe)"},
		"operator in capitals":             {filter: `userName EQ "jdoe"`, want: "(uid=jdoe)"},
		"Entra test connection":            {filter: `userName eq "c2b9d1f0-7a4b-4c8e-9d3f-1e2a3b4c5d6e"`, want: "(uid=c2b9d1f0-7a4b-4c8e-9d3f-1e2a3b4c5d6e)"},
		"attribute name any case":          {filter: `USERNAME eq "x"`, want: "(uid=x)"},
		"core URN prefix":                  {filter: `urn:ietf:params:scim:schemas:core:2.0:User:userName eq "x"`, want: "(uid=x)"},
		"ne":                               {filter: `title ne "Boss"`, want: "(!(title=Boss))"},
		"co":                               {filter: `displayName co "oh"`, want: "(displayName=*oh*)"},
		"sw":                               {filter: `userName sw "j"`, want: "(uid=j*)"},
		"ew":                               {filter: `userName ew "@x.org"`, want: "(uid=*@x.org)"},
		"sw empty":                         {filter: `userName sw ""`, want: "(uid=*)"},
		"pr":                               {filter: `title pr`, want: "(title=*)"},
		"eq empty string":                  {filter: `title eq ""`, want: never},
		"ne empty string":                  {filter: `title ne ""`, want: always},
		"eq null":                          {filter: `title eq null`, want: "(!(title=*))"},
		"ne null":                          {filter: `title ne null`, want: "(title=*)"},
		"values are raw":                   {filter: `userName eq "*)(uid=*"`, want: `(uid=\2a\29\28uid=\2a)`},
		"quoted literals unescaped":        {filter: `displayName eq "say \"hi\" \\ \/ \u00E9\t\b\f\n\r"`, want: "(displayName=say \"hi\" \\5c / é\t\b\f\n\r)"},
		"surrogate pairs":                  {filter: `displayName eq "\uD83D\uDE00 \uD83D \uDE00"`, want: "(displayName=😀 \uFFFD \uFFFD)"},
		"and":                              {filter: `userName eq "a" and title pr`, want: "(&(uid=a)(title=*))"},
		"or flattened":                     {filter: `userName eq "a" or userName eq "b" or userName eq "c"`, want: "(|(uid=a)(uid=b)(uid=c))"},
		"not":                              {filter: `not (title pr)`, want: "(!(title=*))"},
		"double not":                       {filter: `not (not (title pr))`, want: "(title=*)"},
		"precedence":                       {filter: `title pr and (userName eq "a" or userName eq "b")`, want: "(&(title=*)(|(uid=a)(uid=b)))"},
		"sub-attribute":                    {filter: `name.givenName sw "J"`, want: "(givenName=J*)"},
		"complex pr":                       {filter: `name pr`, want: "(|(cn=*)(sn=*)(givenName=*))"},
		"externalId":                       {filter: `externalId eq "abc"`, want: "(businessCategory=abc)"},
		"id":                               {filter: `id eq "5f3c1e9a-6b7d-4c2e-9f1a-2b3c4d5e6f70"`, want: "(entryUUID=5f3c1e9a-6b7d-4c2e-9f1a-2b3c4d5e6f70)"},
		"id not a UUID":                    {filter: `id eq "not-a-uuid"`, want: never},
		"id ne not a UUID":                 {filter: `id ne "not-a-uuid"`, want: always},
		"id ne":                            {filter: `id ne "5f3c1e9a-6b7d-4c2e-9f1a-2b3c4d5e6f70"`, want: "(!(entryUUID=5f3c1e9a-6b7d-4c2e-9f1a-2b3c4d5e6f70))"},
		"id pr":                            {filter: `id pr`, want: always},
		"active eq true":                   {filter: `active eq true`, want: "(!(employeeType=scimbridge:disabled))"},
		"active eq false":                  {filter: `active eq false`, want: "(employeeType=scimbridge:disabled)"},
		"active ne true":                   {filter: `active ne true`, want: "(employeeType=scimbridge:disabled)"},
		"active as a string":               {filter: `active eq "False"`, want: "(employeeType=scimbridge:disabled)"},
		"active pr":                        {filter: `active pr`, want: always},
		"active with ppolicy":              {filter: `active eq false`, marker: &ppolicy, want: "(|(employeeType=scimbridge:disabled)(pwdAccountLockedTime=000001010000Z))"},
		"active, no marker":                {filter: `active eq true`, marker: &mapping.ActiveMarker{}, want: always},
		"lastModified gt":                  {filter: `meta.lastModified gt "2011-05-13T04:42:34Z"`, want: "(&(modifyTimestamp>=20110513044234Z)(!(modifyTimestamp=20110513044234Z)))"},
		"lastModified ge with zone":        {filter: `meta.lastModified ge "2011-05-13T06:42:34.5+02:00"`, want: "(modifyTimestamp>=20110513044234.5Z)"},
		"created lt":                       {filter: `meta.created lt "2011-05-13T04:42:34Z"`, want: "(&(createTimestamp<=20110513044234Z)(!(createTimestamp=20110513044234Z)))"},
		"created le":                       {filter: `meta.created le "2011-05-13T04:42:34Z"`, want: "(createTimestamp<=20110513044234Z)"},
		"created eq":                       {filter: `meta.created eq "2011-05-13T04:42:34Z"`, want: "(createTimestamp=20110513044234Z)"},
		"created ne":                       {filter: `meta.created ne "2011-05-13T04:42:34Z"`, want: "(!(createTimestamp=20110513044234Z))"},
		"created pr":                       {filter: `meta.created pr`, want: always},
		"resourceType":                     {filter: `meta.resourceType eq "User"`, want: always},
		"resourceType other":               {filter: `meta.resourceType eq "Group"`, want: never},
		"resourceType ne":                  {filter: `meta.resourceType ne "Group"`, want: always},
		"resourceType pr":                  {filter: `meta.resourceType pr`, want: always},
		"emails eq means value":            {filter: `emails eq "a@x.org"`, want: "(mail=a@x.org)"},
		"emails.value co":                  {filter: `emails.value co "@x"`, want: "(mail=*@x*)"},
		"emails pr":                        {filter: `emails pr`, want: "(mail=*)"},
		"emails.type":                      {filter: `emails.type eq "work"`, want: "(mail=*)"},
		"emails.type of none":              {filter: `emails.type eq "home"`, want: never},
		"value path":                       {filter: `emails[type eq "work" and value co "@x.org"]`, want: "(mail=*@x.org*)"},
		"value path, type only":            {filter: `emails[type eq "work"]`, want: "(mail=*)"},
		"value path, other type":           {filter: `emails[type eq "home"]`, want: never},
		"value path, not type":             {filter: `emails[not (type eq "work")]`, want: never},
		"value path, or":                   {filter: `emails[value eq "a" or value eq "b"]`, want: "(|(mail=a)(mail=b))"},
		"value path, ne":                   {filter: `emails[value ne "a"]`, want: "(&(!(mail=a))(mail=*))"},
		"value path, two types":            {filter: `emails[type eq "home" or value sw "x"]`, custom: true, want: "(|(mail=x*)(x-homeMail=*))"},
		"value path in logic":              {filter: `userName eq "a" or emails[value eq "b"]`, want: "(|(uid=a)(mail=b))"},
		"phone by type":                    {filter: `phoneNumbers[type eq "mobile" and value sw "+1"]`, want: "(mobile=+1*)"},
		"phone types all, no fax":          {filter: `phoneNumbers.value eq "+1 555"`, want: "(|(telephoneNumber=+1 555)(mobile=+1 555)(homePhone=+1 555)(pager=+1 555))"},
		"fax pr":                           {filter: `phoneNumbers[type eq "fax" and value pr]`, want: "(facsimileTelephoneNumber=*)"},
		"address sub":                      {filter: `addresses[type eq "work" and locality eq "Redmond"]`, want: "(l=Redmond)"},
		"address sub negated":              {filter: `addresses[not (locality eq "Redmond")]`, want: "(|(&(!(l=Redmond))(|(postalAddress=*)(street=*)(l=*)(st=*)(postalCode=*)))(homePostalAddress=*)(physicalDeliveryOfficeName=*))"},
		"address formatted":                {filter: `addresses.formatted eq "1 Main St\n$5"`, want: "(|(postalAddress=1 Main St$\\5c245)(homePostalAddress=1 Main St$\\5c245)(physicalDeliveryOfficeName=1 Main St\n$5))"},
		"addresses pr":                     {filter: `addresses pr`, want: "(|(postalAddress=*)(street=*)(l=*)(st=*)(postalCode=*)(homePostalAddress=*)(physicalDeliveryOfficeName=*))"},
		"address unmapped sub of one type": {filter: `addresses[type eq "home" and locality eq "x"]`, want: never},
		"address ne on unmapped sub":       {filter: `addresses[type eq "home" and locality ne "x"]`, want: "(homePostalAddress=*)"},
		"enterprise attribute":             {filter: `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "Sales"`, want: "(departmentNumber=Sales)"},
		"manager by id":                    {filter: `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "` + bossID + `"`, want: "(manager=uid=boss,ou=people,dc=example,dc=org)"},
		"manager eq":                       {filter: `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager eq "` + bossID + `"`, want: "(manager=uid=boss,ou=people,dc=example,dc=org)"},
		"manager unknown id":               {filter: `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager eq "nobody"`, want: never},
		"manager ne unknown id":            {filter: `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager ne "nobody"`, want: always},
		"manager pr":                       {filter: `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager pr`, want: "(manager=*)"},
		"userType on the marker attribute": {filter: `userType eq "contractor"`, custom: true, want: "(employeeType=contractor)"},
		"userType never is the marker":     {filter: `userType eq "SCIMBRIDGE:disabled"`, custom: true, want: never},
		"userType ne the marker":           {filter: `userType ne "scimbridge:disabled"`, custom: true, want: always},
		"extension integer gt":             {filter: `urn:acme:User:level gt 5`, custom: true, want: "(&(x-level>=5)(!(x-level=5)))"},
		"extension integer string":         {filter: `urn:acme:User:level le "7"`, custom: true, want: "(x-level<=7)"},
		"extension dateTime":               {filter: `urn:acme:User:hired lt "2024-01-01T00:00:00Z"`, custom: true, want: "(&(x-hired<=20240101000000Z)(!(x-hired=20240101000000Z)))"},
		"extension boolean":                {filter: `urn:acme:User:vip eq true`, custom: true, want: "(x-vip=TRUE)"},
		"extension boolean false":          {filter: `urn:acme:User:vip ne "false"`, custom: true, want: "(!(x-vip=FALSE))"},
		"extension multi-valued":           {filter: `urn:acme:User:tags eq "a"`, custom: true, want: "(x-tag=a)"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			m := def
			if tc.custom {
				m = custom
			}
			marker := mapping.DefaultActiveMarker()
			if tc.marker != nil {
				marker = *tc.marker
			}
			f, err := mapping.TranslateUserFilter(parseFilter(t, tc.filter), m, marker, "entryUUID", resolve)
			require.NoError(t, err)
			require.Equal(t, tc.want, renderFilter(f))
		})
	}
}

func TestTranslateUserFilterErrors(t *testing.T) {
	def, custom := userFilterMaps(t)
	tests := map[string]struct {
		filter    string
		custom    bool
		fragments []string
	}{
		"unknown attribute":           {filter: `shoeSize eq 42`, fragments: []string{`"shoeSize"`}},
		"unknown schema":              {filter: `urn:acme:Other:x eq "1"`, fragments: []string{"urn:acme:Other:x"}},
		"unknown sub-attribute":       {filter: `name.nick eq "x"`, fragments: []string{`"nick"`}},
		"sub of a simple attribute":   {filter: `title.x eq "x"`, fragments: []string{"no sub-attributes"}},
		"unmapped attribute":          {filter: `nickName eq "x"`, fragments: []string{"nickName", "not mapped"}},
		"unmapped enterprise":         {filter: `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:costCenter eq "x"`, fragments: []string{"costCenter", "not mapped"}},
		"unmapped extension":          {filter: `urn:acme:User:note eq "x"`, custom: true, fragments: []string{"note", "not mapped"}},
		"unmapped multi-valued":       {filter: `roles.value eq "x"`, fragments: []string{"roles", "not mapped"}},
		"complex multi-valued":        {filter: `roles eq "x"`, fragments: []string{"roles", "complex"}},
		"unmapped value path":         {filter: `roles[value eq "x"]`, fragments: []string{"roles", "not mapped"}},
		"unmapped typed attribute":    {filter: `ims pr`, fragments: []string{"ims", "not mapped"}},
		"unmapped typed value path":   {filter: `ims[type eq "xmpp"]`, fragments: []string{"ims", "not mapped"}},
		"unmapped typed sub":          {filter: `addresses.country eq "US"`, fragments: []string{"addresses.country", "not mapped"}},
		"primary":                     {filter: `emails[primary eq true]`, fragments: []string{"emails.primary"}},
		"display":                     {filter: `emails.display eq "x"`, fragments: []string{"emails.display"}},
		"unknown typed sub":           {filter: `emails[nick eq "x"]`, fragments: []string{`"nick"`}},
		"value path with URN":         {filter: `emails[urn:x:y eq "x"]`, fragments: []string{"sub-attributes alone"}},
		"complex eq":                  {filter: `name eq "John"`, fragments: []string{"complex"}},
		"addresses eq":                {filter: `addresses eq "x"`, fragments: []string{"complex"}},
		"value path on single-valued": {filter: `name[givenName eq "x"]`, fragments: []string{"cannot take a value filter"}},
		"ordering on uid":             {filter: `userName gt "a"`, fragments: []string{"uid", "no ordering rule"}},
		"ordering on mail":            {filter: `emails.value ge "a"`, fragments: []string{"mail", "no ordering rule"}},
		"ordering on a stock integer": {filter: `urn:acme:User:floor gt 3`, custom: true, fragments: []string{"roomNumber", "no ordering rule"}},
		"ordering on a custom string": {filter: `urn:acme:User:tags lt "a"`, custom: true, fragments: []string{"x-tag", "no ordering rule"}},
		"substring on a DN":           {filter: `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager co "x"`, fragments: []string{"manager", "eq, ne and pr"}},
		"substring on an integer":     {filter: `urn:acme:User:level co "1"`, custom: true, fragments: []string{"no substring rule"}},
		"substring on labeledURI":     {filter: `profileUrl co "x"`, fragments: []string{"labeledURI", "no substring rule"}},
		"fax equality":                {filter: `phoneNumbers[type eq "fax" and value eq "1"]`, fragments: []string{"facsimileTelephoneNumber", "no equality rule"}},
		"a number for a string":       {filter: `userName eq 5`, fragments: []string{"userName", "string"}},
		"a string for an integer":     {filter: `urn:acme:User:level eq "x"`, custom: true, fragments: []string{"integer"}},
		"a string for a boolean":      {filter: `urn:acme:User:vip eq "x"`, custom: true, fragments: []string{"true or false"}},
		"a bad dateTime":              {filter: `urn:acme:User:hired eq "x"`, custom: true, fragments: []string{"xsd:dateTime"}},
		"a number for a dateTime":     {filter: `urn:acme:User:hired eq 5`, custom: true, fragments: []string{"dateTime"}},
		"null with co":                {filter: `title co null`, fragments: []string{"null"}},
		"id with co":                  {filter: `id co "x"`, fragments: []string{"id"}},
		"id with a number":            {filter: `id eq 5`, fragments: []string{"id"}},
		"active with co":              {filter: `active co "t"`, fragments: []string{"active"}},
		"active with a number":        {filter: `active eq 1`, fragments: []string{"active"}},
		"meta":                        {filter: `meta pr`, fragments: []string{"meta"}},
		"meta.version":                {filter: `meta.version eq "x"`, fragments: []string{"meta.version"}},
		"meta.lastModified bad":       {filter: `meta.lastModified gt "yesterday"`, fragments: []string{"xsd:dateTime"}},
		"meta.lastModified number":    {filter: `meta.lastModified gt 5`, fragments: []string{"dateTime"}},
		"meta.created co":             {filter: `meta.created co "2011-05-13T04:42:34Z"`, fragments: []string{"meta.created", "co"}},
		"resourceType co":             {filter: `meta.resourceType co "U"`, fragments: []string{"meta.resourceType"}},
		"resourceType number":         {filter: `meta.resourceType eq 1`, fragments: []string{"meta.resourceType"}},
		"password":                    {filter: `password eq "x"`, fragments: []string{"password"}},
		"groups":                      {filter: `groups.value eq "x"`, fragments: []string{"groups"}},
		"manager display":             {filter: `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.displayName eq "x"`, fragments: []string{"manager"}},
		"manager with a number":       {filter: `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager eq 1`, fragments: []string{"manager"}},
		"userType pr on the marker":   {filter: `userType pr`, custom: true, fragments: []string{"active marker"}},
		"userType null on the marker": {filter: `userType eq null`, custom: true, fragments: []string{"with a value"}},
		"fax equality only":           {filter: `phoneNumbers[type eq "fax" and value eq "1"]`, fragments: []string{"facsimileTelephoneNumber", "no equality rule"}},
		"phone ordering":              {filter: `phoneNumbers.value gt "1"`, fragments: []string{"no ordering rule"}},
		"a number for a type":         {filter: `emails[type eq 1]`, fragments: []string{"emails.type", "string"}},
		"bad operator inside a type":  {filter: `emails[type gt true]`, fragments: []string{"type"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			m := def
			if tc.custom {
				m = custom
			}
			_, err := mapping.TranslateUserFilter(parseFilter(t, tc.filter), m, mapping.DefaultActiveMarker(), "entryUUID", resolve)
			requireScimError(t, err, mapping.ScimTypeInvalidFilter, tc.fragments...)
			require.True(t, strings.HasPrefix(err.Error(), "scim invalidFilter: "), err.Error())
		})
	}
}

// TestTranslateExtensionValuePath builds the expression by hand: filter-parser does not parse
// a value path on a URN-qualified attribute.
func TestTranslateExtensionValuePath(t *testing.T) {
	_, custom := userFilterMaps(t)
	urn := "urn:acme:User"
	vp := func(inner string) filter.Expression {
		return &filter.ValuePath{AttributePath: filter.AttributePath{URIPrefix: &urn, AttributeName: "tags"}, ValueFilter: parseFilter(t, inner)}
	}
	for inner, want := range map[string]string{
		`value sw "a" or value ew "z"`:  "(|(x-tag=a*)(x-tag=*z))",
		`value sw "a" and value ew "z"`: "(&(x-tag=a*)(x-tag=*z))",
		`not (value eq "b")`:            "(!(x-tag=b))",
	} {
		f, err := mapping.TranslateUserFilter(vp(inner), custom, mapping.DefaultActiveMarker(), "entryUUID", resolve)
		require.NoError(t, err, inner)
		require.Equal(t, want, renderFilter(f), inner)
	}
	for inner, fragment := range map[string]string{
		`type eq "a"`:    "compared as value",
		`value.x eq "a"`: "compared as value",
	} {
		_, err := mapping.TranslateUserFilter(vp(inner), custom, mapping.DefaultActiveMarker(), "entryUUID", resolve)
		requireScimError(t, err, mapping.ScimTypeInvalidFilter, fragment)
	}
	nested := &filter.ValuePath{AttributePath: filter.AttributePath{URIPrefix: &urn, AttributeName: "tags"}, ValueFilter: vp(`value pr`)}
	_, err := mapping.TranslateUserFilter(nested, custom, mapping.DefaultActiveMarker(), "entryUUID", resolve)
	requireScimError(t, err, mapping.ScimTypeInvalidFilter, "nested")
	note := &filter.ValuePath{AttributePath: filter.AttributePath{URIPrefix: &urn, AttributeName: "note"}, ValueFilter: parseFilter(t, `value pr`)}
	_, err = mapping.TranslateUserFilter(note, custom, mapping.DefaultActiveMarker(), "entryUUID", resolve)
	requireScimError(t, err, mapping.ScimTypeInvalidFilter, "cannot take a value filter")
	emailsNested := &filter.ValuePath{AttributePath: filter.AttributePath{AttributeName: "emails"}, ValueFilter: vp(`value pr`)}
	_, err = mapping.TranslateUserFilter(emailsNested, custom, mapping.DefaultActiveMarker(), "entryUUID", resolve)
	requireScimError(t, err, mapping.ScimTypeInvalidFilter, "nested")
}

// TestTranslateUnknownOperator builds expressions by hand: filter-parser refuses unknown
// operators, but a caller may hand over any tree.
func TestTranslateUnknownOperator(t *testing.T) {
	_, custom := userFilterMaps(t)
	gm := mapping.DefaultGroupMap()
	urn := "urn:acme:User"
	bad := func(name string) *filter.AttributeExpression {
		return &filter.AttributeExpression{AttributePath: filter.AttributePath{AttributeName: name}, Operator: "xx", CompareValue: "a"}
	}
	for name, expr := range map[string]filter.Expression{
		"attribute":       bad("userName"),
		"value path":      &filter.ValuePath{AttributePath: filter.AttributePath{AttributeName: "emails"}, ValueFilter: bad("value")},
		"type":            &filter.ValuePath{AttributePath: filter.AttributePath{AttributeName: "emails"}, ValueFilter: bad("type")},
		"extension value": &filter.ValuePath{AttributePath: filter.AttributePath{URIPrefix: &urn, AttributeName: "tags"}, ValueFilter: bad("value")},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := mapping.TranslateUserFilter(expr, custom, mapping.DefaultActiveMarker(), "entryUUID", resolve)
			requireScimError(t, err, mapping.ScimTypeInvalidFilter, "unknown operator")
		})
	}
	_, err := mapping.TranslateGroupFilter(&filter.ValuePath{AttributePath: filter.AttributePath{AttributeName: "members"}, ValueFilter: bad("value")},
		gm, "entryUUID", resolve)
	requireScimError(t, err, mapping.ScimTypeInvalidFilter, "unknown operator")
}

func TestTranslateFilterLimits(t *testing.T) {
	def := mapping.DefaultUserMap()
	translate := func(s string) error {
		_, err := mapping.TranslateUserFilter(parseFilter(t, s), def, mapping.DefaultActiveMarker(), "entryUUID", resolve)
		return err
	}
	// 16 levels are allowed, 17 are not.
	nested := func(n int) string { return strings.Repeat("not (", n-1) + `title pr` + strings.Repeat(")", n-1) }
	require.NoError(t, translate(nested(16)))
	requireScimError(t, translate(nested(17)), mapping.ScimTypeInvalidFilter, "too complex", "16")
	wide := func(n int) string {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = `userName eq "x"`
		}
		return strings.Join(parts, " or ")
	}
	require.NoError(t, translate(wide(16)))
	requireScimError(t, translate(wide(40)), mapping.ScimTypeInvalidFilter, "too complex")
	groups := make([]string, 8)
	for i := range groups {
		groups[i] = "(" + wide(8) + ")"
	}
	requireScimError(t, translate(strings.Join(groups, " and ")), mapping.ScimTypeInvalidFilter, "more than 64 conditions")

	// Value paths over many types expand: the translated filter is bounded too.
	types := map[string]string{}
	for i := 0; i < 60; i++ {
		types[`phoneNumbers[type eq "t`+string(rune('a'+i%26))+string(rune('a'+i/26))+`"].value`] = "x-phone" + string(rune('a'+i%26)) + string(rune('a'+i/26))
	}
	many, err := mapping.NewUserMap(types)
	require.NoError(t, err)
	phones := make([]string, 10)
	for i := range phones {
		phones[i] = `phoneNumbers.value eq "` + string(rune('0'+i)) + `"`
	}
	_, err = mapping.TranslateUserFilter(parseFilter(t, strings.Join(phones, " or ")), many, mapping.DefaultActiveMarker(), "entryUUID", resolve)
	requireScimError(t, err, mapping.ScimTypeInvalidFilter, "too complex")

	for name, expr := range map[string]filter.Expression{
		"nil":                      nil,
		"nil attribute expression": (*filter.AttributeExpression)(nil),
		"incomplete logic":         &filter.LogicalExpression{Left: &filter.AttributeExpression{}, Operator: filter.AND},
		"incomplete not":           &filter.NotExpression{},
		"incomplete value path":    &filter.ValuePath{AttributePath: filter.AttributePath{AttributeName: "emails"}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := mapping.TranslateUserFilter(expr, def, mapping.DefaultActiveMarker(), "entryUUID", resolve)
			requireScimError(t, err, mapping.ScimTypeInvalidFilter)
		})
	}
	_, err = mapping.TranslateUserFilter(&filter.LogicalExpression{
		Left: parseFilter(t, `title pr`), Right: parseFilter(t, `title pr`), Operator: "xor",
	}, def, mapping.DefaultActiveMarker(), "entryUUID", resolve)
	requireScimError(t, err, mapping.ScimTypeInvalidFilter, "xor")
}

func TestTranslateFilterResolvers(t *testing.T) {
	def := mapping.DefaultUserMap()
	mgr := parseFilter(t, `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager eq "x"`)
	_, err := mapping.TranslateUserFilter(mgr, def, mapping.DefaultActiveMarker(), "entryUUID", nil)
	requireScimError(t, err, mapping.ScimTypeInvalidFilter, "not resolved")

	down := errors.New("down")
	_, err = mapping.TranslateUserFilter(mgr, def, mapping.DefaultActiveMarker(), "entryUUID", func(string) (string, error) { return "", down })
	require.ErrorIs(t, err, down)

	_, err = mapping.TranslateUserFilter(parseFilter(t, `id eq "x"`), def, mapping.DefaultActiveMarker(), "", resolve)
	requireScimError(t, err, mapping.ScimTypeInvalidFilter, "id attribute")

	f, err := mapping.TranslateUserFilter(parseFilter(t, `id eq "any-id"`), def, mapping.DefaultActiveMarker(), "nsUniqueId", resolve)
	require.NoError(t, err)
	require.Equal(t, "(nsUniqueId=any-id)", renderFilter(f), "only entryUUID values are checked for UUID syntax")

	noName, err := mapping.NewUserMap(map[string]string{"name.formatted": "", "name.givenName": "", "name.familyName": ""})
	require.NoError(t, err)
	_, err = mapping.TranslateUserFilter(parseFilter(t, `name pr`), noName, mapping.DefaultActiveMarker(), "entryUUID", resolve)
	requireScimError(t, err, mapping.ScimTypeInvalidFilter, "name", "not mapped")

	// Errors deep inside logic and value paths come out.
	for _, s := range []string{
		`title pr and shoe pr`, `shoe pr or title pr`, `not (shoe pr)`,
		`emails[value pr and nick pr]`, `emails[nick pr or value pr]`, `emails[not (nick pr)]`,
		`emails[type eq "work" and value gt "a"]`, `phoneNumbers[type eq 1 and value pr]`,
	} {
		_, err := mapping.TranslateUserFilter(parseFilter(t, s), def, mapping.DefaultActiveMarker(), "entryUUID", resolve)
		requireScimError(t, err, mapping.ScimTypeInvalidFilter)
	}
	gm := mapping.DefaultGroupMap()
	for _, s := range []string{`members[value pr and display pr]`, `members[display pr or value pr]`, `members[not (display pr)]`} {
		_, err := mapping.TranslateGroupFilter(parseFilter(t, s), gm, "entryUUID", resolve)
		requireScimError(t, err, mapping.ScimTypeInvalidFilter, "members.display")
	}
	_, custom := userFilterMaps(t)
	urn := "urn:acme:User"
	for _, inner := range []string{`value pr and type pr`, `type pr or value pr`, `not (type pr)`} {
		vp := &filter.ValuePath{AttributePath: filter.AttributePath{URIPrefix: &urn, AttributeName: "tags"}, ValueFilter: parseFilter(t, inner)}
		_, err := mapping.TranslateUserFilter(vp, custom, mapping.DefaultActiveMarker(), "entryUUID", resolve)
		requireScimError(t, err, mapping.ScimTypeInvalidFilter, "compared as value")
	}
	_, err = mapping.TranslateUserFilter(&filter.ValuePath{AttributePath: filter.AttributePath{AttributeName: "shoe"}, ValueFilter: parseFilter(t, `value pr`)},
		def, mapping.DefaultActiveMarker(), "entryUUID", resolve)
	requireScimError(t, err, mapping.ScimTypeInvalidFilter, "shoe")
	_, err = mapping.TranslateGroupFilter(&filter.ValuePath{
		AttributePath: filter.AttributePath{AttributeName: "members"},
		ValueFilter:   &filter.ValuePath{AttributePath: filter.AttributePath{AttributeName: "members"}, ValueFilter: parseFilter(t, `value pr`)},
	},
		gm, "entryUUID", resolve)
	requireScimError(t, err, mapping.ScimTypeInvalidFilter, "nested")

	noManager, err := mapping.NewUserMap(map[string]string{mapping.EnterpriseSchemaURN + ":manager": ""})
	require.NoError(t, err)
	_, err = mapping.TranslateUserFilter(mgr, noManager, mapping.DefaultActiveMarker(), "entryUUID", resolve)
	requireScimError(t, err, mapping.ScimTypeInvalidFilter, "not mapped")
}

func TestTranslateGroupFilter(t *testing.T) {
	gm, err := mapping.NewGroupMap(nil, mapping.ExtensionSchema{URN: "urn:acme:Group", Attributes: []mapping.ExtAttr{{Name: "code", Type: "string", LDAP: "ou"}}})
	require.NoError(t, err)
	tests := map[string]string{
		`displayName eq "Sales"`:                                    "(cn=Sales)",
		`externalId eq "x"`:                                         "(businessCategory=x)",
		`id eq "55555555-5555-4555-8555-555555555555"`:              "(entryUUID=55555555-5555-4555-8555-555555555555)",
		`members[value eq "` + aliceID + `"]`:                       "(member=uid=alice,ou=people,dc=example,dc=org)",
		`members.value eq "` + adminsID + `"`:                       "(member=cn=admins,ou=groups,dc=example,dc=org)",
		`members eq "` + aliceID + `"`:                              "(member=uid=alice,ou=people,dc=example,dc=org)",
		`members[value eq "nobody"]`:                                never,
		`members[value eq "nobody" or value eq "` + aliceID + `"]`:  "(member=uid=alice,ou=people,dc=example,dc=org)",
		`members[not (value eq "nobody")]`:                          always,
		`members[value eq "nobody" and value eq "` + aliceID + `"]`: never,
		`members pr`:                   "(&(member=*)(!(member=)))",
		`not (members pr)`:             "(!(&(member=*)(!(member=))))",
		`members ne "` + aliceID + `"`: "(!(member=uid=alice,ou=people,dc=example,dc=org))",
		`displayName sw "S" and meta.resourceType eq "Group"`: "(cn=S*)",
		`urn:acme:Group:code eq "c"`:                          "(ou=c)",
	}
	for filter, want := range tests {
		t.Run(filter, func(t *testing.T) {
			f, err := mapping.TranslateGroupFilter(parseFilter(t, filter), gm, "entryUUID", resolve)
			require.NoError(t, err)
			require.Equal(t, want, renderFilter(f))
		})
	}
	for filter, fragment := range map[string]string{
		`members.display eq "x"`:  "members.display",
		`members[type eq "User"]`: "members.type",
		`members[value co "x"]`:   "members",
		`members[urn:x:y eq "x"]`: "members",
		`userName eq "x"`:         `"userName"`,
		`emails pr`:               `"emails"`,
		`meta.resourceType eq "User" and displayName gt "a"`: "no ordering rule",
	} {
		t.Run(filter, func(t *testing.T) {
			_, err := mapping.TranslateGroupFilter(parseFilter(t, filter), gm, "entryUUID", resolve)
			requireScimError(t, err, mapping.ScimTypeInvalidFilter, fragment)
		})
	}
}

// FuzzTranslateUserFilter feeds arbitrary filter text through the parser and the translation:
// neither may panic, every error must be a SCIM error or the resolver's, and a translation
// must be a well-formed tree.
func FuzzTranslateUserFilter(f *testing.F) {
	for _, seed := range []string{
		`userName eq "*)(uid=*"`,
		`userName eq "\u0000"`,
		"userName eq \"\x00\"",
		`displayName eq "\\"`,
		`displayName eq "\"\\\""`,
		"title eq \"\xff\xfe\"",
		`emails[type eq "work" and value co "@x"]`,
		`not (emails[not (type eq "home")])`,
		`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "x"`,
		`meta.lastModified gt "2011-05-13T04:42:34Z"`,
		`addresses[type eq "work"].locality eq "x"`,
		`active eq "False" or id eq "x"`,
		`a eq 1.5e3 and b eq -2 and c eq null and d eq false`,
		strings.Repeat("not (", 20) + "title pr" + strings.Repeat(")", 20),
	} {
		f.Add(seed)
	}
	def, custom := userFilterMaps(f)
	f.Fuzz(func(t *testing.T, s string) {
		expr, err := filter.ParseFilter([]byte(s))
		if err != nil {
			return
		}
		for _, m := range []mapping.UserMap{def, custom} {
			out, err := mapping.TranslateUserFilter(expr, m, mapping.DefaultActiveMarker(), "entryUUID", resolve)
			if err != nil {
				var se *mapping.Error
				if !errors.As(err, &se) || se.ScimType != mapping.ScimTypeInvalidFilter {
					t.Fatalf("%q: unexpected error %v", s, err)
				}
				continue
			}
			checkTree(t, s, out)
		}
	})
}

func checkTree(t *testing.T, src string, f mapping.LDAPFilter) {
	t.Helper()
	switch f.Op {
	case mapping.FilterAnd, mapping.FilterOr:
		if len(f.Subs) < 2 {
			t.Fatalf("%q: %s with %d operands", src, f.Op, len(f.Subs))
		}
	case mapping.FilterNot:
		if len(f.Subs) != 1 {
			t.Fatalf("%q: not with %d operands", src, len(f.Subs))
		}
	case mapping.FilterEqual, mapping.FilterGreaterOrEqual, mapping.FilterLessOrEqual, mapping.FilterPresent:
		if f.Attr == "" || len(f.Subs) != 0 {
			t.Fatalf("%q: bad %s node %+v", src, f.Op, f)
		}
	case mapping.FilterSubstring:
		if f.Attr == "" || (f.Initial == "" && f.Final == "" && len(f.Any) == 0) {
			t.Fatalf("%q: empty substring node %+v", src, f)
		}
	default:
		t.Fatalf("%q: unknown operator %q", src, f.Op)
	}
	if !utf8.ValidString(f.Attr) {
		t.Fatalf("%q: attribute name %q", src, f.Attr)
	}
	for _, s := range f.Subs {
		checkTree(t, src, s)
	}
}
