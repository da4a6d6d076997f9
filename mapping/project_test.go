package mapping_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/mapping"
)

func TestProject(t *testing.T) {
	const user = `{
		"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
		"id": "u1",
		"userName": "jdoe",
		"name": {"givenName": "John", "familyName": "Doe"},
		"emails": [{"value": "a@x.org", "type": "work", "primary": true}, {"value": "b@x.org", "type": "home"}],
		"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "Sales", "manager": {"value": "m1"}},
		"meta": {"resourceType": "User", "version": "W/\"1\""}
	}`
	const coreOnly = `"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"]`
	tests := map[string]struct {
		attributes, excluded []string
		want                 string
	}{
		"nothing asked: everything": {
			want: user,
		},
		"one attribute, id and schemas always": {
			attributes: []string{"USERNAME"},
			want:       `{"id":"u1","userName":"jdoe",` + coreOnly + `}`,
		},
		"a sub-attribute": {
			attributes: []string{"name.givenName"},
			want:       `{"id":"u1","name":{"givenName":"John"},` + coreOnly + `}`,
		},
		"sub-attributes of a multi-valued attribute": {
			attributes: []string{"emails.value", "emails.TYPE"},
			want:       `{"id":"u1","emails":[{"value":"a@x.org","type":"work"},{"value":"b@x.org","type":"home"}],` + coreOnly + `}`,
		},
		"a URN-qualified core attribute": {
			attributes: []string{"urn:ietf:params:scim:schemas:core:2.0:User:userName"},
			want:       `{"id":"u1","userName":"jdoe",` + coreOnly + `}`,
		},
		"an extension attribute": {
			attributes: []string{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"},
			want: `{"id":"u1","schemas":["urn:ietf:params:scim:schemas:core:2.0:User","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
				"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"Sales"}}`,
		},
		"an extension sub-attribute": {
			attributes: []string{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value"},
			want: `{"id":"u1","schemas":["urn:ietf:params:scim:schemas:core:2.0:User","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
				"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"manager":{"value":"m1"}}}`,
		},
		"a whole extension": {
			attributes: []string{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:user"},
			want: `{"id":"u1","schemas":["urn:ietf:params:scim:schemas:core:2.0:User","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
				"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"Sales","manager":{"value":"m1"}}}`,
		},
		"unknown names are ignored": {
			attributes: []string{"shoeSize", "urn:acme:x", "name.nick", "meta.location"},
			want:       `{"id":"u1",` + coreOnly + `}`,
		},
		"meta only when asked": {
			attributes: []string{"meta.version"},
			want:       `{"id":"u1","meta":{"version":"W/\"1\""},` + coreOnly + `}`,
		},
		"exclude attributes": {
			excluded: []string{"emails", "name.familyName", "id", "schemas"},
			want: `{"id":"u1","userName":"jdoe","name":{"givenName":"John"},
				"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
				"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "Sales", "manager": {"value": "m1"}},
				"meta": {"resourceType": "User", "version": "W/\"1\""}}`,
		},
		"exclude a sub-attribute of every element, and a whole name": {
			excluded: []string{"emails.primary", "emails.type", "name.givenName", "name.familyName", "meta"},
			want: `{"id":"u1","userName":"jdoe","emails":[{"value":"a@x.org"},{"value":"b@x.org"}],
				"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
				"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "Sales", "manager": {"value": "m1"}}}`,
		},
		"excluding an extension's attributes drops it from schemas": {
			excluded: []string{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "userName", "emails", "name", "meta"},
			want:     `{"id":"u1",` + coreOnly + `}`,
		},
		"exclude a whole extension": {
			excluded: []string{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User", "userName", "emails", "name", "meta"},
			want:     `{"id":"u1",` + coreOnly + `}`,
		},
		"both parameters": {
			attributes: []string{"name", "userName"},
			excluded:   []string{"name.givenName"},
			want:       `{"id":"u1","userName":"jdoe","name":{"familyName":"Doe"},` + coreOnly + `}`,
		},
		"excluding an extension twice over": {
			excluded: []string{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "userName", "emails", "name", "meta"},
			want:     `{"id":"u1",` + coreOnly + `}`,
		},
		"excluding the last sub-attribute of a complex attribute": {
			attributes: []string{"name"},
			excluded:   []string{"name.givenName", "name.familyName"},
			want:       `{"id":"u1",` + coreOnly + `}`,
		},
		"excluding the only value of a list element": {
			attributes: []string{"emails"},
			excluded:   []string{"emails.value", "emails.type", "emails.primary"},
			want:       `{"id":"u1",` + coreOnly + `}`,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			res := jsonMap(t, user)
			got := mapping.Project(res, tc.attributes, tc.excluded)
			if diff := cmp.Diff(normalizeJSON(t, jsonMap(t, tc.want)), normalizeJSON(t, got)); diff != "" {
				t.Errorf("Project mismatch (-want +got):\n%s", diff)
			}
			require.Equal(t, normalizeJSON(t, jsonMap(t, user)), normalizeJSON(t, res), "the input must not change")
		})
	}

	group := jsonMap(t, `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"id":"g","displayName":"G","members":[{"value":"a"}]}`)
	got := mapping.Project(group, nil, []string{"members"})
	require.NotContains(t, got, "members")
	require.Equal(t, "G", got["displayName"])
	require.Equal(t, map[string]any{}, mapping.Project(nil, nil, nil))

	// Resources built in Go, with typed slices, are copied too.
	native := map[string]any{"id": "x", "tags": []string{"a"}, "emails": []map[string]any{{"value": "v"}}}
	got = mapping.Project(native, nil, nil)
	got["tags"].([]string)[0] = "changed"
	require.Equal(t, "a", native["tags"].([]string)[0])
	require.Equal(t, []any{map[string]any{"value": "v"}}, got["emails"])
	// Selecting sub-attributes that no element has leaves nothing behind.
	got = mapping.Project(jsonMap(t, `{"id":"x","emails":[{"value":"v"}],"name":{"givenName":"g"}}`), []string{"emails.display", "name.nick", "x.y"}, nil)
	require.Equal(t, map[string]any{"id": "x"}, got)
}

func TestRequested(t *testing.T) {
	for name, tc := range map[string]struct {
		attributes, excluded []string
		path                 string
		want                 bool
	}{
		"no parameters":                 {path: "members", want: true},
		"excluded":                      {excluded: []string{"members"}, path: "members", want: false},
		"excluded in another case":      {excluded: []string{"Members"}, path: "members", want: false},
		"excluded with the core URN":    {excluded: []string{"urn:ietf:params:scim:schemas:core:2.0:Group:members"}, path: "members", want: false},
		"parent excluded":               {excluded: []string{"members"}, path: "members.value", want: false},
		"other excluded":                {excluded: []string{"displayName"}, path: "members", want: true},
		"asked for":                     {attributes: []string{"displayName", "members"}, path: "members", want: true},
		"a sub-attribute asked for":     {attributes: []string{"members.value"}, path: "members", want: true},
		"the parent asked for":          {attributes: []string{"members"}, path: "members.value", want: true},
		"not asked for":                 {attributes: []string{"displayName"}, path: "members", want: false},
		"an extension attribute":        {attributes: []string{mapping.EnterpriseSchemaURN}, path: mapping.EnterpriseSchemaURN + ":manager", want: true},
		"an extension attribute, excl.": {excluded: []string{mapping.EnterpriseSchemaURN}, path: mapping.EnterpriseSchemaURN + ":manager", want: false},
	} {
		t.Run(name, func(t *testing.T) {
			require.Equal(t, tc.want, mapping.Requested(tc.attributes, tc.excluded, tc.path))
		})
	}
}
