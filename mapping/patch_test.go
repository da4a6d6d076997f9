package mapping_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	filter "github.com/scim2/filter-parser/v2"
	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/mapping"
)

const patchUser = `{
	"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
	"id": "u1",
	"userName": "jdoe",
	"name": {"givenName": "John", "familyName": "Doe"},
	"title": "Eng",
	"active": true,
	"emails": [
		{"value": "j@x.org", "type": "work", "primary": true},
		{"value": "j@home.org", "type": "home"}
	],
	"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "Sales", "manager": {"value": "m1"}},
	"meta": {"resourceType": "User", "version": "W/\"1\""}
}`

const patchGroup = `{
	"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
	"id": "g1",
	"displayName": "Sales",
	"members": [{"value": "a", "type": "User"}, {"value": "b", "type": "User"}]
}`

// op builds a PATCH operation; path "" means none, value "" means no value.
type op struct{ op, path, value string }

func ops(t *testing.T, list ...op) []mapping.PatchOperation {
	t.Helper()
	var out []mapping.PatchOperation
	for _, o := range list {
		p := mapping.PatchOperation{Op: o.op}
		if o.path != "" {
			p.Path = parsePath(t, o.path)
		}
		if o.value != "" {
			p.Value = jsonValue(t, o.value)
		}
		out = append(out, p)
	}
	return out
}

// edit returns the base resource changed by f.
func edit(t *testing.T, base string, f func(r map[string]any)) map[string]any {
	t.Helper()
	var r map[string]any
	require.NoError(t, json.Unmarshal([]byte(base), &r))
	f(r)
	return r
}

func TestApplyPatch(t *testing.T) {
	users := mapping.DefaultUserMap().Schema()
	groups := mapping.DefaultGroupMap().Schema()
	emails := func(r map[string]any) []any { return r["emails"].([]any) }
	entObj := func(r map[string]any) map[string]any { return r[ent].(map[string]any) }
	tests := map[string]struct {
		base   string
		schema mapping.Schema
		ops    []op
		want   func(r map[string]any)
	}{
		"replace a simple attribute, capitalised op": {
			ops:  []op{{"Replace", "title", `"Boss"`}},
			want: func(r map[string]any) { r["title"] = "Boss" },
		},
		"add a sub-attribute": {
			ops:  []op{{"add", "name.middleName", `"Q"`}},
			want: func(r map[string]any) { r["name"].(map[string]any)["middleName"] = "Q" },
		},
		"replace a complex attribute merges": {
			ops:  []op{{"replace", "name", `{"givenName":"Jon"}`}},
			want: func(r map[string]any) { r["name"].(map[string]any)["givenName"] = "Jon" },
		},
		"replace the work e-mail address": {
			ops:  []op{{"replace", `emails[type eq "work"].value`, `"new@x.org"`}},
			want: func(r map[string]any) { emails(r)[0].(map[string]any)["value"] = "new@x.org" },
		},
		"add an e-mail of a type not present creates it": {
			ops: []op{{"Add", `emails[type eq "other"].value`, `"o@x.org"`}},
			want: func(r map[string]any) {
				r["emails"] = append(emails(r), map[string]any{"type": "other", "value": "o@x.org"})
			},
		},
		"replace on a missing work address creates it": {
			base: `{"userName":"u"}`,
			ops:  []op{{"Replace", `emails[type eq "work"].value`, `"w@x.org"`}},
			want: func(r map[string]any) {
				r["userName"] = "u"
				r["emails"] = []any{map[string]any{"type": "work", "value": "w@x.org"}}
			},
		},
		"replace a whole element keeps its type": {
			ops:  []op{{"replace", `emails[type eq "home"]`, `{"value":"h2@x.org"}`}},
			want: func(r map[string]any) { emails(r)[1] = map[string]any{"value": "h2@x.org", "type": "home"} },
		},
		"add into a matched element merges": {
			ops:  []op{{"add", `emails[type eq "home"]`, `{"display":"Home"}`}},
			want: func(r map[string]any) { emails(r)[1].(map[string]any)["display"] = "Home" },
		},
		"remove an element by filter": {
			ops:  []op{{"remove", `emails[type eq "home"]`, ""}},
			want: func(r map[string]any) { r["emails"] = emails(r)[:1] },
		},
		"remove a value drops its element": {
			ops:  []op{{"remove", `emails[type eq "home"].value`, ""}},
			want: func(r map[string]any) { r["emails"] = emails(r)[:1] },
		},
		"remove a sub-attribute keeps the element": {
			ops:  []op{{"remove", `emails[type eq "work"].primary`, ""}},
			want: func(r map[string]any) { delete(emails(r)[0].(map[string]any), "primary") },
		},
		"remove with a filter matching nothing is done": {
			ops:  []op{{"remove", `emails[type eq "fax"]`, ""}},
			want: func(map[string]any) {},
		},
		"replace a filtered value with null unassigns it": {
			ops:  []op{{"replace", `emails[type eq "home"].value`, `null`}},
			want: func(r map[string]any) { r["emails"] = emails(r)[:1] },
		},
		"replace with null unassigns": {
			ops:  []op{{"replace", "title", `null`}},
			want: func(r map[string]any) { delete(r, "title") },
		},
		"add with null changes nothing": {
			ops:  []op{{"add", "title", `null`}},
			want: func(map[string]any) {},
		},
		"a primary e-mail takes primary from the others": {
			ops: []op{{"add", "emails", `[{"value":"p@x.org","type":"other","primary":true}]`}},
			want: func(r map[string]any) {
				delete(emails(r)[0].(map[string]any), "primary")
				r["emails"] = append(emails(r), map[string]any{"value": "p@x.org", "type": "other", "primary": true})
			},
		},
		"adding an address already there changes nothing": {
			ops:  []op{{"add", "emails", `[{"value":"J@X.org","type":"work"}]`}},
			want: func(map[string]any) {},
		},
		"replace a list": {
			ops:  []op{{"replace", "emails", `[{"value":"only@x.org"}]`}},
			want: func(r map[string]any) { r["emails"] = []any{map[string]any{"value": "only@x.org"}} },
		},
		"set a sub-attribute of every element": {
			ops: []op{{"replace", "emails.display", `"E"`}},
			want: func(r map[string]any) {
				for _, e := range emails(r) {
					e.(map[string]any)["display"] = "E"
				}
			},
		},
		"set a sub-attribute of a list that is empty": {
			base: `{"userName":"u"}`,
			ops:  []op{{"add", "phoneNumbers.value", `"+1 555"`}},
			want: func(r map[string]any) {
				r["userName"] = "u"
				r["phoneNumbers"] = []any{map[string]any{"value": "+1 555"}}
			},
		},
		"remove a sub-attribute of every element": {
			ops: []op{{"remove", "emails.type", ""}},
			want: func(r map[string]any) {
				for _, e := range emails(r) {
					delete(e.(map[string]any), "type")
				}
			},
		},
		"remove elements by value list": {
			ops:  []op{{"remove", "emails", `[{"value":"j@home.org"}]`}},
			want: func(r map[string]any) { r["emails"] = emails(r)[:1] },
		},
		"path-less remove naming values": {
			ops:  []op{{"remove", "", `{"emails":[{"value":"j@home.org"}]}`}},
			want: func(r map[string]any) { r["emails"] = emails(r)[:1] },
		},
		"path-less replace with dotted, URN and nested keys (Entra ID)": {
			ops: []op{{"Replace", "", `{
				"name.givenName": "Jo",
				"active": "False",
				"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department": "Ops",
				"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"employeeNumber": "7", "manager": "m2"},
				"emails[type eq \"work\"].value": "jo@x.org",
				"schemas": ["ignored"],
				"id": "u1"}`}},
			want: func(r map[string]any) {
				r["name"].(map[string]any)["givenName"] = "Jo"
				r["active"] = false
				entObj(r)["department"] = "Ops"
				entObj(r)["employeeNumber"] = "7"
				entObj(r)["manager"] = map[string]any{"value": "m2"}
				emails(r)[0].(map[string]any)["value"] = "jo@x.org"
			},
		},
		"the manager as a plain string by path": {
			ops:  []op{{"Replace", ent + ":manager", `"m3"`}},
			want: func(r map[string]any) { entObj(r)["manager"] = map[string]any{"value": "m3"} },
		},
		"the manager's value by path": {
			ops:  []op{{"replace", ent + ":manager.value", `"m4"`}},
			want: func(r map[string]any) { entObj(r)["manager"] = map[string]any{"value": "m4"} },
		},
		"remove the manager": {
			ops:  []op{{"remove", ent + ":manager", ""}},
			want: func(r map[string]any) { delete(entObj(r), "manager") },
		},
		"remove the last extension attribute drops the extension": {
			ops:  []op{{"remove", ent + ":manager", ""}, {"remove", ent + ":department", ""}},
			want: func(r map[string]any) { delete(r, ent) },
		},
		"remove a whole extension": {
			ops:  []op{{"remove", ent, ""}},
			want: func(r map[string]any) { delete(r, ent) },
		},
		"add a whole extension object": {
			ops:  []op{{"add", ent, `{"division":"D","costCenter":"C"}`}},
			want: func(r map[string]any) { entObj(r)["division"] = "D"; entObj(r)["costCenter"] = "C" },
		},
		"URN-qualified core path": {
			ops:  []op{{"replace", "urn:ietf:params:scim:schemas:core:2.0:User:title", `"T"`}},
			want: func(r map[string]any) { r["title"] = "T" },
		},
		"attribute names in any case": {
			ops:  []op{{"REPLACE", "Name.GivenName", `"G"`}},
			want: func(r map[string]any) { r["name"].(map[string]any)["givenName"] = "G" },
		},
		"group: add members": {
			base: patchGroup, schema: groups,
			ops: []op{{"Add", "members", `[{"value":"c"},{"value":"A","display":"Alice"}]`}},
			want: func(r map[string]any) {
				r["members"].([]any)[0].(map[string]any)["display"] = "Alice"
				r["members"] = append(r["members"].([]any), map[string]any{"value": "c"})
			},
		},
		"group: add one member object": {
			base: patchGroup, schema: groups,
			ops:  []op{{"add", "members", `{"value":"c"}`}},
			want: func(r map[string]any) { r["members"] = append(r["members"].([]any), map[string]any{"value": "c"}) },
		},
		"group: remove a member by filter": {
			base: patchGroup, schema: groups,
			ops:  []op{{"Remove", `members[value eq "a"]`, ""}},
			want: func(r map[string]any) { r["members"] = r["members"].([]any)[1:] },
		},
		"group: remove members by value list": {
			base: patchGroup, schema: groups,
			ops:  []op{{"Remove", "members", `[{"value":"b"},{"value":"zz"}]`}},
			want: func(r map[string]any) { r["members"] = r["members"].([]any)[:1] },
		},
		"group: remove members without a path": {
			base: patchGroup, schema: groups,
			ops:  []op{{"Remove", "", `[{"value":"a"}]`}},
			want: func(r map[string]any) { r["members"] = r["members"].([]any)[1:] },
		},
		"group: remove all members": {
			base: patchGroup, schema: groups,
			ops:  []op{{"remove", "members", ""}},
			want: func(r map[string]any) { delete(r, "members") },
		},
		"group: escaped filter literal": {
			base: `{"displayName":"g","members":[{"value":"a\"b"},{"value":"c"}]}`, schema: groups,
			ops: []op{{"remove", `members[value eq "a\"b"]`, ""}},
			want: func(r map[string]any) {
				r["displayName"] = "g"
				r["members"] = []any{map[string]any{"value": "c"}}
			},
		},
		"group: rename": {
			base: patchGroup, schema: groups,
			ops:  []op{{"replace", "", `{"displayName":"Ops"}`}},
			want: func(r map[string]any) { r["displayName"] = "Ops" },
		},
		"remove a sub-attribute of a complex attribute": {
			ops:  []op{{"remove", "name.givenName", ""}, {"remove", "name.familyName", ""}},
			want: func(r map[string]any) { delete(r, "name") },
		},
		"replace a sub-attribute with null": {
			ops:  []op{{"replace", "name.givenName", "null"}},
			want: func(r map[string]any) { delete(r["name"].(map[string]any), "givenName") },
		},
		"replace a whole filtered element with null": {
			ops:  []op{{"replace", `emails[type eq "home"]`, "null"}},
			want: func(r map[string]any) { r["emails"] = emails(r)[:1] },
		},
		"replace every sub-attribute with null": {
			ops: []op{{"replace", "emails.primary", "null"}},
			want: func(r map[string]any) {
				delete(emails(r)[0].(map[string]any), "primary")
			},
		},
		"replace a missing element creates it from the filter": {
			ops: []op{{"replace", `emails[type eq "other"]`, `{"value":"o@x.org","primary":true}`}},
			want: func(r map[string]any) {
				delete(emails(r)[0].(map[string]any), "primary")
				r["emails"] = append(emails(r), map[string]any{"type": "other", "value": "o@x.org", "primary": true})
			},
		},
		"remove by filters joined by or": {
			ops:  []op{{"remove", `emails[value eq "J@X.ORG" or type eq "home"]`, ""}},
			want: func(r map[string]any) { delete(r, "emails") },
		},
		"remove elements whose sub-attribute is present": {
			ops:  []op{{"remove", `emails[display pr]`, ""}},
			want: func(map[string]any) {},
		},
		"an enterprise attribute on a user without the extension": {
			base: `{"userName":"u"}`,
			ops:  []op{{"replace", ent + ":department", `"D"`}, {"replace", "name", `{"givenName":"G"}`}},
			want: func(r map[string]any) {
				r["userName"] = "u"
				r[ent] = map[string]any{"department": "D"}
				r["name"] = map[string]any{"givenName": "G"}
			},
		},
		"adding an element without value twice": {
			base: `{"userName":"u","addresses":[{"type":"work","locality":"L"}]}`,
			ops:  []op{{"add", "addresses", `[{"type":"work","locality":"L"},{"type":"home","locality":"H"}]`}},
			want: func(r map[string]any) {
				r["userName"] = "u"
				r["addresses"] = []any{map[string]any{"type": "work", "locality": "L"}, map[string]any{"type": "home", "locality": "H"}}
			},
		},
		"several operations in order": {
			ops: []op{{"add", "nickName", `"n"`}, {"replace", "nickName", `"m"`}, {"remove", "title", ""}},
			want: func(r map[string]any) {
				r["nickName"] = "m"
				delete(r, "title")
			},
		},
		"filters with booleans, substrings and not": {
			ops: []op{
				{"remove", `emails[primary eq true and value ew "@x.org"]`, ""},
				{"remove", `emails[not (value sw "zz")]`, ""},
			},
			want: func(r map[string]any) { delete(r, "emails") },
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			base := tc.base
			if base == "" {
				base = patchUser
			}
			schema := tc.schema
			if schema.URN == "" {
				schema = users
			}
			res := jsonMap(t, base)
			before := edit(t, base, func(map[string]any) {})
			got, err := mapping.ApplyPatch(res, ops(t, tc.ops...), schema)
			require.NoError(t, err)
			var want map[string]any
			if tc.base == "" || tc.base == patchGroup {
				want = edit(t, base, tc.want)
			} else {
				want = map[string]any{}
				tc.want(want)
			}
			if diff := cmp.Diff(normalizeJSON(t, want), normalizeJSON(t, got)); diff != "" {
				t.Errorf("ApplyPatch mismatch (-want +got):\n%s", diff)
			}
			require.Equal(t, normalizeJSON(t, before), normalizeJSON(t, res), "the input resource must not change")
		})
	}
}

// normalizeJSON makes maps comparable whatever Go types they hold.
func normalizeJSON(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	var out any
	require.NoError(t, json.Unmarshal(b, &out))
	return out
}

func TestApplyPatchErrors(t *testing.T) {
	users := mapping.DefaultUserMap().Schema()
	groups := mapping.DefaultGroupMap().Schema()
	tests := map[string]struct {
		group     bool
		ops       []op
		scimType  string
		fragments []string
	}{
		"unknown op":                 {ops: []op{{"move", "title", `"x"`}}, scimType: mapping.ScimTypeInvalidSyntax, fragments: []string{"Operations[0]", `"move"`}},
		"remove without a path":      {ops: []op{{"remove", "", ""}}, scimType: mapping.ScimTypeNoTarget},
		"remove without path, other": {ops: []op{{"remove", "", `{"title":"x"}`}}, scimType: mapping.ScimTypeNoTarget},
		"remove without path, bad":   {ops: []op{{"remove", "", `{"shoeSize":1}`}}, scimType: mapping.ScimTypeInvalidPath},
		"path-less value not object": {ops: []op{{"add", "", `"x"`}}, scimType: mapping.ScimTypeInvalidValue, fragments: []string{"object"}},
		"path-less unknown key":      {ops: []op{{"add", "", `{"shoeSize":1}`}}, scimType: mapping.ScimTypeInvalidPath, fragments: []string{`"shoeSize"`}},
		"path-less unparsable key":   {ops: []op{{"add", "", `{"a[":1}`}}, scimType: mapping.ScimTypeInvalidPath},
		"path-less other id":         {ops: []op{{"replace", "", `{"id":"other"}`}}, scimType: mapping.ScimTypeMutability, fragments: []string{"id"}},
		"replace id":                 {ops: []op{{"replace", "id", `"x"`}}, scimType: mapping.ScimTypeMutability},
		"replace meta.version":       {ops: []op{{"replace", "meta.version", `"x"`}}, scimType: mapping.ScimTypeMutability},
		"add groups":                 {ops: []op{{"add", "groups", `[{"value":"g"}]`}}, scimType: mapping.ScimTypeMutability},
		"manager.displayName":        {ops: []op{{"replace", ent + ":manager.displayName", `"x"`}}, scimType: mapping.ScimTypeMutability},
		"remove userName":            {ops: []op{{"remove", "userName", ""}}, scimType: mapping.ScimTypeInvalidValue, fragments: []string{"userName is required"}},
		"replace userName with null": {ops: []op{{"replace", "userName", "null"}}, scimType: mapping.ScimTypeInvalidValue},
		"unknown attribute":          {ops: []op{{"replace", "shoeSize", `1`}}, scimType: mapping.ScimTypeInvalidPath, fragments: []string{`"shoeSize"`}},
		"unknown sub-attribute":      {ops: []op{{"replace", "name.nick", `"x"`}}, scimType: mapping.ScimTypeInvalidPath, fragments: []string{`"nick"`}},
		"sub of a simple attribute":  {ops: []op{{"replace", "title.x", `"x"`}}, scimType: mapping.ScimTypeInvalidPath},
		"filter on a single value":   {ops: []op{{"replace", `title[value eq "x"]`, `"x"`}}, scimType: mapping.ScimTypeInvalidPath},
		"undeclared schema":          {ops: []op{{"replace", "urn:acme:User:x", `"x"`}}, scimType: mapping.ScimTypeInvalidPath, fragments: []string{"urn:acme:User"}},
		"whole extension, sub":       {ops: []op{{"add", ent, `"x"`}}, scimType: mapping.ScimTypeInvalidValue},
		"whole extension, bad key":   {ops: []op{{"add", ent, `{"shoe":1}`}}, scimType: mapping.ScimTypeInvalidPath},
		"whole extension, bad path":  {ops: []op{{"add", ent, `{"a[":1}`}}, scimType: mapping.ScimTypeInvalidPath},
		"wrong type":                 {ops: []op{{"replace", "active", `5`}}, scimType: mapping.ScimTypeInvalidValue, fragments: []string{"active"}},
		"wrong type in a sub":        {ops: []op{{"replace", "name.givenName", `5`}}, scimType: mapping.ScimTypeInvalidValue},
		"wrong type in a filtered":   {ops: []op{{"replace", `emails[type eq "work"].value`, `5`}}, scimType: mapping.ScimTypeInvalidValue},
		"wrong type for every sub":   {ops: []op{{"replace", `emails.value`, `5`}}, scimType: mapping.ScimTypeInvalidValue},
		"wrong type, value list":     {ops: []op{{"remove", `emails`, `[5]`}}, scimType: mapping.ScimTypeInvalidValue},
		"replace matching nothing":   {ops: []op{{"replace", `emails[value co "nomatch"].value`, `"x"`}}, scimType: mapping.ScimTypeNoTarget},
		"filter with unknown sub":    {ops: []op{{"remove", `emails[nick eq "x"]`, ""}}, scimType: mapping.ScimTypeInvalidPath, fragments: []string{`"nick"`}},
		"filter with URN":            {ops: []op{{"remove", `emails[urn:x:y eq "x"]`, ""}}, scimType: mapping.ScimTypeInvalidPath},
		"filter gt on a boolean":     {ops: []op{{"remove", `emails[primary gt true]`, ""}}, scimType: mapping.ScimTypeInvalidFilter},
		"filter null with co":        {ops: []op{{"remove", `emails[value co null]`, ""}}, scimType: mapping.ScimTypeInvalidFilter},
		"the second op fails":        {ops: []op{{"add", "title", `"x"`}, {"replace", "id", `"x"`}}, scimType: mapping.ScimTypeMutability, fragments: []string{"Operations[1]"}},
		"path-less wrong value":      {ops: []op{{"replace", "", `{"title":5}`}}, scimType: mapping.ScimTypeInvalidValue, fragments: []string{"title"}},
		"path-less remove, empty":    {ops: []op{{"remove", "", `{}`}}, scimType: mapping.ScimTypeNoTarget},
		"path-less remove, bad list": {ops: []op{{"remove", "", `{"emails":[5]}`}}, scimType: mapping.ScimTypeInvalidValue},
		"whole extension with a sub": {ops: []op{{"add", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User.x", `"x"`}}, scimType: mapping.ScimTypeInvalidPath},
		"filter after a sub":         {ops: []op{{"remove", `emails.value[type eq "work"]`, ""}}, scimType: mapping.ScimTypeInvalidPath},
		"whole extension, bad value": {ops: []op{{"add", ent, `{"employeeNumber":5}`}}, scimType: mapping.ScimTypeInvalidValue},
		"contradicting filter":       {ops: []op{{"replace", `emails[type eq "a" and type eq "b"].value`, `"x"`}}, scimType: mapping.ScimTypeNoTarget},
		"filter with or":             {ops: []op{{"replace", `emails[type eq "a" or type eq "b"].value`, `"x"`}}, scimType: mapping.ScimTypeNoTarget},
		"filter on a wrong type":     {ops: []op{{"replace", `emails[primary eq "x"].value`, `"x"`}}, scimType: mapping.ScimTypeNoTarget},
		"filter with ne":             {ops: []op{{"replace", `emails[type ne "work" and type ne "home"].value`, `"x"`}}, scimType: mapping.ScimTypeNoTarget},
		"group: change a member id":  {group: true, ops: []op{{"replace", `members[value eq "a"].value`, `"z"`}}, scimType: mapping.ScimTypeMutability, fragments: []string{"immutable"}},
		"group: path-less list":      {group: true, ops: []op{{"remove", "", `[]`}}, scimType: mapping.ScimTypeNoTarget},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			base, schema := patchUser, users
			if tc.group {
				base, schema = patchGroup, groups
			}
			_, err := mapping.ApplyPatch(jsonMap(t, base), ops(t, tc.ops...), schema)
			requireScimError(t, err, tc.scimType, tc.fragments...)
		})
	}
	_, err := mapping.ApplyPatch(map[string]any{"shoeSize": 1}, nil, users)
	requireScimError(t, err, mapping.ScimTypeInvalidSyntax, "shoeSize")
}

// TestApplyPatchMalformedPaths hands over parsed paths that filter-parser never produces.
func TestApplyPatchMalformedPaths(t *testing.T) {
	users := mapping.DefaultUserMap().Schema()
	emails := filter.AttributePath{AttributeName: "emails"}
	for name, vf := range map[string]filter.Expression{
		"nil logic":  &filter.LogicalExpression{},
		"nil not":    &filter.NotExpression{},
		"nil attr":   (*filter.AttributeExpression)(nil),
		"value path": &filter.ValuePath{AttributePath: emails, ValueFilter: parseFilter(t, `value pr`)},
		"deep": func() filter.Expression {
			e := parseFilter(t, `value pr`)
			for i := 0; i < 20; i++ {
				e = &filter.NotExpression{Expression: e}
			}
			return e
		}(),
		"left fails":  &filter.LogicalExpression{Left: parseFilter(t, `nick pr`), Right: parseFilter(t, `value pr`), Operator: filter.AND},
		"right fails": &filter.LogicalExpression{Left: parseFilter(t, `value pr`), Right: parseFilter(t, `nick pr`), Operator: filter.AND},
	} {
		t.Run(name, func(t *testing.T) {
			p := &filter.Path{AttributePath: emails, ValueExpression: vf}
			_, err := mapping.ApplyPatch(jsonMap(t, patchUser), []mapping.PatchOperation{{Op: "remove", Path: p}}, users)
			requireScimError(t, err, mapping.ScimTypeInvalidPath)
		})
	}
}

func TestMemberDelta(t *testing.T) {
	tests := map[string]struct {
		ops                  []op
		add, remove, replace []string
		other                []mapping.PatchOperation
	}{
		"add a list": {
			ops: []op{{"Add", "members", `[{"value":"a"},{"value":"b"},{"value":"A"}]`}},
			add: []string{"a", "b"},
		},
		"add one object": {
			ops: []op{{"add", "members", `{"value":"a"}`}},
			add: []string{"a"},
		},
		"remove by filter": {
			ops:    []op{{"Remove", `members[value eq "a"]`, ""}},
			remove: []string{"a"},
		},
		"remove by filters joined by or": {
			ops:    []op{{"remove", `members[value eq "a" or value eq "b\"c"]`, ""}},
			remove: []string{"a", `b"c`},
		},
		"remove by value list (Entra ID)": {
			ops:    []op{{"Remove", "members", `[{"value":"a"}]`}},
			remove: []string{"a"},
		},
		"remove without a path": {
			ops:    []op{{"remove", "", `[{"value":"a"}]`}},
			remove: []string{"a"},
		},
		"remove all": {
			ops:     []op{{"remove", "members", ""}},
			replace: []string{},
		},
		"replace": {
			ops:     []op{{"replace", "urn:ietf:params:scim:schemas:core:2.0:Group:members", `[{"value":"a"},{"value":"b"}]`}},
			replace: []string{"a", "b"},
		},
		"add then remove": {
			ops:    []op{{"add", "members", `[{"value":"a"},{"value":"b"}]`}, {"remove", `members[value eq "A"]`, ""}},
			add:    []string{"b"},
			remove: []string{"A"},
		},
		"remove then add": {
			ops: []op{{"remove", `members[value eq "a"]`, ""}, {"add", "members", `[{"value":"a"}]`}},
			add: []string{"a"},
		},
		"replace then add and remove": {
			ops:     []op{{"replace", "members", `[{"value":"a"}]`}, {"add", "members", `[{"value":"b"}]`}, {"remove", `members[value eq "a"]`, ""}},
			replace: []string{"b"},
		},
		"path-less with members and more": {
			ops:   []op{{"add", "", `{"members":[{"value":"a"}],"displayName":"G"}`}},
			add:   []string{"a"},
			other: []mapping.PatchOperation{{Op: "add", Value: map[string]any{"displayName": "G"}}},
		},
		"path-less replace of members": {
			ops:     []op{{"Replace", "", `{"Members":[]}`}},
			replace: []string{},
		},
		"path-less remove of members": {
			ops:    []op{{"remove", "", `{"members":[{"value":"a"}]}`}},
			remove: []string{"a"},
		},
		"other attributes": {
			ops:   []op{{"replace", "displayName", `"G"`}},
			other: []mapping.PatchOperation{{Op: "replace", Path: parsePath(t, "displayName"), Value: "G"}},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			add, remove, replace, other, err := mapping.MemberDelta(ops(t, tc.ops...))
			require.NoError(t, err)
			require.Equal(t, tc.add, add)
			require.Equal(t, tc.remove, remove)
			require.Equal(t, tc.replace, replace)
			if diff := cmp.Diff(tc.other, other); diff != "" {
				t.Errorf("other mismatch (-want +got):\n%s", diff)
			}
		})
	}

	for name, tc := range map[string]struct {
		ops      []op
		scimType string // "" for ErrNoMemberDelta
	}{
		"filter on another sub-attribute": {ops: []op{{"remove", `members[display eq "x"]`, ""}}},
		"filter joined by and":            {ops: []op{{"remove", `members[value eq "x" and type eq "User"]`, ""}}},
		"filter with ne":                  {ops: []op{{"remove", `members[value ne "x"]`, ""}}},
		"filter with a number":            {ops: []op{{"remove", `members[value eq 1]`, ""}}},
		"filter or with another":          {ops: []op{{"remove", `members[value eq "a" or display eq "b"]`, ""}}},
		"filter or with a bad left":       {ops: []op{{"remove", `members[display eq "a" or value eq "b"]`, ""}}},
		"sub-attribute after a filter":    {ops: []op{{"replace", `members[value eq "a"].display`, `"x"`}}},
		"sub-attribute path":              {ops: []op{{"replace", `members.display`, `"x"`}}},
		"add with a filter":               {ops: []op{{"add", `members[value eq "a"]`, `{"value":"a"}`}}},
		"member without value":            {ops: []op{{"add", "members", `[{"display":"x"}]`}}, scimType: mapping.ScimTypeInvalidValue},
		"member id not a string":          {ops: []op{{"add", "", `{"members":[{"value":1}]}`}}, scimType: mapping.ScimTypeInvalidValue},
		"member list without ids":         {ops: []op{{"remove", "", `[{"x":1}]`}}, scimType: mapping.ScimTypeInvalidValue},
		"unknown op":                      {ops: []op{{"merge", "members", `[]`}}, scimType: mapping.ScimTypeInvalidSyntax},
		"path-less remove of other":       {ops: []op{{"remove", "", `{"displayName":"x"}`}}, scimType: mapping.ScimTypeNoTarget},
		"path-less remove of nothing":     {ops: []op{{"remove", "", ""}}, scimType: mapping.ScimTypeNoTarget},
		"path-less add of a string":       {ops: []op{{"add", "", `"x"`}}, scimType: mapping.ScimTypeInvalidValue},
	} {
		t.Run(name, func(t *testing.T) {
			_, _, _, _, err := mapping.MemberDelta(ops(t, tc.ops...))
			if tc.scimType == "" {
				require.ErrorIs(t, err, mapping.ErrNoMemberDelta)
				return
			}
			requireScimError(t, err, tc.scimType, "Operations[0]")
		})
	}
}

// TestApplyPatchValueFilters compares every type a value filter can meet, on a schema of
// the test's own.
func TestApplyPatchValueFilters(t *testing.T) {
	schema := mapping.Schema{URN: "urn:test:Thing", Name: "Thing", Attributes: []mapping.Attribute{
		{Name: "items", Type: mapping.TypeComplex, MultiValued: true, SubAttributes: []mapping.Attribute{
			{Name: "n", Type: mapping.TypeInteger},
			{Name: "f", Type: mapping.TypeDecimal},
			{Name: "at", Type: mapping.TypeDateTime},
			{Name: "ok", Type: mapping.TypeBoolean},
			{Name: "code", Type: mapping.TypeString, CaseExact: true},
		}},
		{Name: "tags", Type: mapping.TypeString, MultiValued: true},
	}}
	base := `{"items":[
		{"n":1,"f":1.5,"at":"2024-01-01T00:00:00Z","ok":true,"code":"Ab"},
		{"n":5,"f":2.5,"at":"2024-06-01T00:00:00+02:00","ok":false,"code":"ab"}],
		"tags":["red","Green"]}`
	for filter, wantLeft := range map[string]int{
		`items[n gt 1]`:                       1,
		`items[n ge 1]`:                       0,
		`items[n lt 5]`:                       1,
		`items[n le 5]`:                       0,
		`items[n eq 5]`:                       1,
		`items[n ne 5]`:                       1,
		`items[n eq "x"]`:                     2,
		`items[n ne "x"]`:                     0,
		`items[f gt 2]`:                       1,
		`items[at gt "2024-03-01T00:00:00Z"]`: 1,
		`items[at le "2024-01-01T00:00:00Z"]`: 1,
		`items[ok eq false]`:                  1,
		`items[ok ne true]`:                   1,
		`items[ok eq "x"]`:                    2,
		`items[code eq "ab"]`:                 1,
		`items[code co "b"]`:                  0,
		`items[code gt "a"]`:                  1,
		`items[code eq null]`:                 2,
		`items[code ne null]`:                 0,
		`items[missing pr]`:                   -1,
	} {
		t.Run(filter, func(t *testing.T) {
			got, err := mapping.ApplyPatch(jsonMap(t, base), ops(t, op{"remove", filter, ""}), schema)
			if wantLeft < 0 {
				requireScimError(t, err, mapping.ScimTypeInvalidPath)
				return
			}
			require.NoError(t, err)
			items, _ := got["items"].([]any)
			require.Len(t, items, wantLeft)
		})
	}
	// Paths parsed with json.Number literals, as a server using UseNumber may have them.
	for path, wantLeft := range map[string]int{`items[n eq 5]`: 1, `items[f lt 2.0]`: 1, `items[n gt 1e0]`: 1} {
		p, err := filter.ParsePathNumber([]byte(path))
		require.NoError(t, err)
		got, err := mapping.ApplyPatch(jsonMap(t, base), []mapping.PatchOperation{{Op: "remove", Path: &p}}, schema)
		require.NoError(t, err)
		require.Len(t, got["items"], wantLeft, path)
	}

	got, err := mapping.ApplyPatch(jsonMap(t, base), ops(t,
		op{"remove", `tags[value eq "GREEN"]`, ""},
		op{"replace", `tags[value eq "red"]`, `"blue"`},
		op{"add", "tags", `["Blue","pink"]`},
	), schema)
	require.NoError(t, err)
	require.Equal(t, []any{"blue", "pink"}, got["tags"])
	_, err = mapping.ApplyPatch(jsonMap(t, base), ops(t, op{"replace", `tags[value eq "none"]`, `"x"`}), schema)
	requireScimError(t, err, mapping.ScimTypeNoTarget)
}

// FuzzApplyPatch applies arbitrary operations to a user and a group: no panic, and every
// error is a SCIM error.
func FuzzApplyPatch(f *testing.F) {
	for _, seed := range []struct{ op, path, value string }{
		{"Replace", `emails[type eq "work"].value`, `"x@y"`},
		{"remove", `members[value eq "a"]`, ``},
		{"add", ``, `{"name.givenName":"G","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager":"m"}`},
		{"remove", `members`, `[{"value":"a"}]`},
		{"replace", `addresses[type eq "work" and primary eq true].locality`, `null`},
		{"add", `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User`, `{"manager":{"value":"x"}}`},
		{"replace", `name`, `[1,2]`},
	} {
		f.Add(seed.op, seed.path, seed.value)
	}
	users := mapping.DefaultUserMap().Schema()
	groups := mapping.DefaultGroupMap().Schema()
	f.Fuzz(func(t *testing.T, opName, path, value string) {
		o := mapping.PatchOperation{Op: opName}
		if path != "" {
			p, err := filter.ParsePath([]byte(path))
			if err != nil {
				return
			}
			o.Path = &p
		}
		if value != "" {
			var v any
			if err := json.Unmarshal([]byte(value), &v); err != nil {
				return
			}
			o.Value = v
		}
		for _, tc := range []struct {
			base   string
			schema mapping.Schema
		}{{patchUser, users}, {patchGroup, groups}} {
			var res map[string]any
			if err := json.Unmarshal([]byte(tc.base), &res); err != nil {
				t.Fatal(err)
			}
			if _, err := mapping.ApplyPatch(res, []mapping.PatchOperation{o}, tc.schema); err != nil {
				var se *mapping.Error
				if !errors.As(err, &se) {
					t.Fatalf("%+v: not a SCIM error: %v", o, err)
				}
			}
		}
		if _, _, _, _, err := mapping.MemberDelta([]mapping.PatchOperation{o}); err != nil {
			var se *mapping.Error
			if !errors.As(err, &se) && !errors.Is(err, mapping.ErrNoMemberDelta) {
				t.Fatalf("%+v: unexpected MemberDelta error %v", o, err)
			}
		}
	})
}
