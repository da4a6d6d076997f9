package mapping_test

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/mapping"
)

var templateEntry = mapping.Entry{DN: "uid=jdoe,ou=people," + base, Attrs: map[string][]string{
	"uid":          {"jdoe"},
	"givenname":    {"john"}, // servers may return names in any case
	"sn":           {"Doe"},
	"mail":         {"John.Doe@Example.org", "jd@example.org"},
	"employeeType": {"contractor", "scimbridge:disabled"},
	"x-dash-attr":  {"dashed"},
	"entryUUID":    {"5f3c1e9a-6b7d-4c2e-9f1a-2b3c4d5e6f70"},
}}

func TestRender(t *testing.T) {
	tests := map[string]struct {
		mapping map[string]string
		want    map[string]any
	}{
		"fields and functions": {
			mapping: map[string]string{
				"userName":          `{{ .mail | lower }}`,
				"name.givenName":    `{{ .givenName | title }}`,
				"name.familyName":   `{{ .SN | upper }}`,
				"displayName":       `{{ .givenName | title }} {{ .sn }}`,
				"nickName":          `{{ attr "x-dash-attr" | trimPrefix "da" | trimSuffix "ed" }}`,
				"title":             `{{ values "mail" | join "; " }}`,
				"userType":          `{{ values "mail" | last | replace "example" "corp" }}`,
				"locale":            `{{ split "@" .mail | first }}`,
				"timezone":          `{{ .missing | default "UTC" }}`,
				"profileUrl":        `{{ coalesce .missing .sn }}`,
				"externalId":        `{{ dn }}`,
				"preferredLanguage": `{{ if contains "@" .mail }}{{ if hasPrefix "John" .mail }}{{ if hasSuffix ".org" .mail }}{{ printf "%s-%d" "en" 1 }}{{ end }}{{ end }}{{ end }}`,
			},
			want: map[string]any{
				"userName":          "john.doe@example.org",
				"name":              map[string]any{"givenName": "John", "familyName": "DOE"},
				"displayName":       "John Doe",
				"nickName":          "sh",
				"title":             "John.Doe@Example.org; jd@example.org",
				"userType":          "jd@corp.org",
				"locale":            "John.Doe",
				"timezone":          "UTC",
				"profileUrl":        "Doe",
				"externalId":        "uid=jdoe,ou=people,dc=example,dc=org",
				"preferredLanguage": "en-1",
			},
		},
		"empty fields are left out": {
			mapping: map[string]string{"userName": `{{ .uid }}`, "title": `{{ .title }}`, "nickName": "  {{ .missing }}  ", "displayName": `{{ .givenName }} {{ .missing }}`},
			want:    map[string]any{"userName": "jdoe", "displayName": "john"},
		},
		"typed elements and primary": {
			mapping: map[string]string{
				`emails[type eq "work"].value`:                           `{{ first (values "mail") }}`,
				`emails[type eq "home"].value`:                           `{{ values "mail" | last }}`,
				`emails[type eq "home"].display`:                         `Home`,
				`phoneNumbers[type eq "mobile"].value`:                   `+1 555`,
				`addresses[type eq "work" and primary eq true].locality`: `Paris`,
				`emails.display`:                                         ``,
			},
			want: map[string]any{
				"emails": []any{
					map[string]any{"type": "home", "value": "jd@example.org", "display": "Home"},
					map[string]any{"type": "work", "value": "John.Doe@Example.org", "primary": true},
				},
				"phoneNumbers": []any{map[string]any{"type": "mobile", "value": "+1 555", "primary": true}},
				"addresses":    []any{map[string]any{"type": "work", "primary": true, "locality": "Paris"}},
			},
		},
		"list helpers on empty and odd values": {
			mapping: map[string]string{
				"title":    `[{{ first (values "none") }}{{ last (values "none") }}{{ first .missing }}{{ last .uid }}]`,
				"nickName": `{{ join "," 5 }} {{ default "d" "v" }} {{ first 7 }}`,
			},
			want: map[string]any{"title": "[jdoe]", "nickName": "5 v 7"},
		},
		"booleans in elements": {
			mapping: map[string]string{
				`emails[type eq "work"].value`:         `{{ .mail }}`,
				`emails[type eq "work"].primary`:       `false`,
				`emails[type eq "home"].value`:         `{{ .uid }}@home`,
				`addresses[primary eq true].locality`:  `P`,
				`addresses[primary eq false].locality`: `S`,
			},
			want: map[string]any{
				"emails": []any{
					map[string]any{"type": "home", "value": "jdoe@home"},
					map[string]any{"type": "work", "value": "John.Doe@Example.org", "primary": false},
				},
				"addresses": []any{
					map[string]any{"primary": false, "locality": "S"},
					map[string]any{"primary": true, "locality": "P"},
				},
			},
		},
		"an untyped element": {
			mapping: map[string]string{`emails.value`: `{{ .mail }}`},
			want:    map[string]any{"emails": []any{map[string]any{"value": "John.Doe@Example.org", "primary": true}}},
		},
		"extensions": {
			mapping: map[string]string{
				mapping.EnterpriseSchemaURN + ":department": `Sales`,
				"urn:acme:scim:User:badge":                  `{{ .uid }}-1`,
				"urn:acme:scim:User:card.number":            `42`,
			},
			want: map[string]any{
				mapping.EnterpriseSchemaURN: map[string]any{"department": "Sales"},
				"urn:acme:scim:User":        map[string]any{"badge": "jdoe-1", "card": map[string]any{"number": "42"}},
			},
		},
		"active from the marker": {
			mapping: map[string]string{"active": `{{ not (values "employeeType" | hasValue "SCIMBRIDGE:DISABLED") }}`},
			want:    map[string]any{"active": false},
		},
		"active in any case": {
			mapping: map[string]string{"active": `TRUE`},
			want:    map[string]any{"active": true},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			tm, err := mapping.CompileUserMapping(tc.mapping)
			require.NoError(t, err)
			got, err := tm.Render(templateEntry)
			require.NoError(t, err)
			schemas := []any{mapping.UserSchemaURN}
			var urns []string
			for k := range tc.want {
				if strings.HasPrefix(k, "urn:") {
					urns = append(urns, k)
				}
			}
			sort.Strings(urns)
			for _, u := range urns {
				schemas = append(schemas, u)
			}
			tc.want["schemas"] = schemas
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Render mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCompileUserMappingErrors(t *testing.T) {
	tests := map[string]struct {
		mapping   map[string]string
		fragments []string
	}{
		"template syntax":           {map[string]string{"userName": `{{ .uid `}, []string{"user_mapping.userName: template: userName:1:"}},
		"unknown function":          {map[string]string{"userName": `{{ nope .uid }}`}, []string{"user_mapping.userName:", `"nope" not defined`}},
		"unknown attribute":         {map[string]string{"shoeSize": `x`}, []string{"user_mapping.shoeSize:", `"shoeSize"`}},
		"unparsable path":           {map[string]string{"emails[": `x`}, []string{"user_mapping.emails[:", "not a SCIM attribute path"}},
		"read-only id":              {map[string]string{"id": `x`}, []string{"id cannot be pushed"}},
		"read-only meta":            {map[string]string{"meta.version": `x`}, []string{"meta cannot be pushed"}},
		"groups":                    {map[string]string{"groups": `x`}, []string{"groups cannot be pushed"}},
		"password":                  {map[string]string{"password": `x`}, []string{"password cannot be pushed"}},
		"manager":                   {map[string]string{mapping.EnterpriseSchemaURN + ":manager.value": `x`}, []string{"manager"}},
		"complex without sub":       {map[string]string{"name": `x`}, []string{"name.formatted"}},
		"unknown sub":               {map[string]string{"name.nick": `x`}, []string{`"nick"`}},
		"sub of a simple":           {map[string]string{"title.x": `x`}, []string{"no sub-attributes"}},
		"filter on a single value":  {map[string]string{`title[type eq "x"]`: `x`}, []string{"cannot take a filter"}},
		"filter not eq":             {map[string]string{`emails[type ne "x"].value`: `x`}, []string{"eq conditions"}},
		"filter on an extension":    {map[string]string{`urn:acme:User:x[type eq "y"]`: `x`}, []string{"only supported on core"}},
		"filter without sub":        {map[string]string{`emails[type eq "work"]`: `x`}, []string{"name a sub-attribute"}},
		"every problem at once":     {map[string]string{"a1": "x", "a2": "{{"}, []string{"user_mapping.a1", "user_mapping.a2"}},
		"a password hash":           {map[string]string{"title": `{{ .userPassword }}`}, []string{"user_mapping.title: reads userPassword", "never reads a password"}},
		"a password through attr":   {map[string]string{"title": `{{ attr "UserPassword" | lower }}`}, []string{"reads UserPassword"}},
		"a password through values": {map[string]string{"title": `{{ values "sambaNTPassword" | first }}`}, []string{"reads sambaNTPassword"}},
		"a password by OID":         {map[string]string{"title": `{{ attr "2.5.4.35" }}`}, []string{"reads 2.5.4.35"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := mapping.CompileUserMapping(tc.mapping)
			require.Error(t, err)
			for _, f := range tc.fragments {
				require.Contains(t, err.Error(), f)
			}
		})
	}
}

func TestRenderErrors(t *testing.T) {
	tm, err := mapping.CompileUserMapping(map[string]string{
		"active":   `maybe`,
		"title":    `{{ with .uid }}{{ .nested }}{{ end }}`,
		"userName": `{{ .uid }}`,
	})
	require.NoError(t, err)
	_, err = tm.Render(templateEntry)
	require.Error(t, err)
	for _, f := range []string{`mapping: render "uid=jdoe,ou=people,dc=example,dc=org"`, `user_mapping.active: rendered "maybe"`, "user_mapping.title:"} {
		require.Contains(t, err.Error(), f)
	}
}

func TestTemplateAttributes(t *testing.T) {
	tm, err := mapping.CompileUserMapping(map[string]string{
		"userName":    `{{ .uid }}{{ $.Mail }}`,
		"displayName": `{{ if .cn }}{{ .cn }}{{ else }}{{ attr "x-dash" }}{{ end }}{{ range values "employeeType" }}{{ . }}{{ end }}{{ with .title }}{{ . }}{{ end }}`,
		"nickName":    `{{ (.givenName) }}{{ define "sub" }}{{ .inner }}{{ end }}{{ template "sub" . }}{{ (.obj).field }}`,
	})
	require.NoError(t, err)
	require.Equal(t, []string{"cn", "employeeType", "givenName", "inner", "Mail", "obj", "title", "uid", "x-dash"}, tm.Attributes())
}

func TestGroupMapping(t *testing.T) {
	tm, err := mapping.CompileGroupMapping(mapping.DefaultGroupMapping("entryUUID"))
	require.NoError(t, err)
	res, err := tm.Render(mapping.Entry{DN: adminsDN, Attrs: map[string][]string{"cn": {"admins"}, "entryUUID": {adminsID}}})
	require.NoError(t, err)
	require.Equal(t, map[string]any{"schemas": []any{mapping.GroupSchemaURN}, "displayName": "admins", "externalId": adminsID}, res)
	require.Equal(t, map[string]string{"displayName": `{{ .cn }}`}, mapping.DefaultGroupMapping(""))

	_, err = mapping.CompileGroupMapping(map[string]string{"members": `x`, "userName": `x`})
	require.ErrorContains(t, err, "group_mapping.members: members are pushed as deltas")
	require.ErrorContains(t, err, `group_mapping.userName: "userName" is not an attribute`)

	bad, err := mapping.CompileGroupMapping(map[string]string{"displayName": `{{ with .cn }}{{ .x }}{{ end }}`})
	require.NoError(t, err)
	_, err = bad.Render(mapping.Entry{Attrs: map[string][]string{"cn": {"g"}}})
	require.ErrorContains(t, err, "group_mapping.displayName:")
}

func TestRenderConcurrently(t *testing.T) {
	tm, err := mapping.CompileUserMapping(mapping.DefaultUserMapping("entryUUID", mapping.DefaultActiveMarker()))
	require.NoError(t, err)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 50; j++ {
				res, err := tm.Render(templateEntry)
				if err != nil || res["userName"] != "jdoe" {
					t.Errorf("render: %v %v", res, err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestDefaultUserMapping(t *testing.T) {
	derived := mapping.Entry{Attrs: map[string][]string{"uid": {"min"}, "cn": {"min"}, "sn": {"min"}}}
	tests := map[string]struct {
		marker mapping.ActiveMarker
		idAttr string
		entry  mapping.Entry
		want   map[string]string
	}{
		"marker": {
			marker: mapping.DefaultActiveMarker(), idAttr: "entryUUID", entry: templateEntry,
			want: map[string]string{
				"active": "false", "userName": "jdoe", "externalId": "5f3c1e9a-6b7d-4c2e-9f1a-2b3c4d5e6f70",
				"name.givenName": "john", "name.familyName": "Doe", "emails[type eq \"work\"].value": "John.Doe@Example.org",
			},
		},
		"marker and lock": {
			marker: mapping.ActiveMarker{Attr: "employeeType", Value: "x", LockAttr: "pwdAccountLockedTime"},
			entry:  mapping.Entry{Attrs: map[string][]string{"uid": {"u"}, "pwdAccountLockedTime": {"000001010000Z"}}},
			want:   map[string]string{"active": "false", "userName": "u"},
		},
		"lock only, unlocked": {
			marker: mapping.ActiveMarker{LockAttr: "pwdAccountLockedTime"},
			entry:  mapping.Entry{Attrs: map[string][]string{"uid": {"u"}, "pwdAccountLockedTime": {"20240101000000Z"}}},
			want:   map[string]string{"active": "true", "userName": "u"},
		},
		"no marker": {
			entry: mapping.Entry{Attrs: map[string][]string{"uid": {"u"}}},
			want:  map[string]string{"active": "true", "userName": "u"},
		},
		"names derived from userName are not pushed": {
			marker: mapping.DefaultActiveMarker(), entry: derived,
			want: map[string]string{"active": "true", "userName": "min", "displayName": "min"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			tm, err := mapping.CompileUserMapping(mapping.DefaultUserMapping(tc.idAttr, tc.marker))
			require.NoError(t, err)
			res, err := tm.Render(tc.entry)
			require.NoError(t, err)
			flat := mapping.Flatten(res)
			for k, want := range tc.want {
				require.Equal(t, want, flat[k], k)
			}
			if tc.idAttr == "" {
				require.NotContains(t, flat, "externalId")
			}
			if name == "names derived from userName are not pushed" {
				require.NotContains(t, flat, "name.familyName")
				require.NotContains(t, flat, "name.formatted")
			}
		})
	}
}

func TestFlatten(t *testing.T) {
	res := jsonMap(t, `{
		"schemas": ["x"], "id": "i", "meta": {"version": "v"},
		"userName": "u", "active": false, "count": 3, "ratio": 1.5, "empty": "", "nothing": null,
		"name": {"givenName": "G"},
		"emails": [
			{"type": "work", "value": "w@x", "primary": true},
			{"type": "work", "value": "second@x"},
			{"value": "untyped@x", "display": "U"},
			{"value": "untyped2@x"}
		],
		"tags": ["a", "b"],
		"urn:acme:User": {"badge": "B", "card": {"number": "42"}}
	}`)
	want := map[string]string{
		"userName":                     "u",
		"active":                       "false",
		"count":                        "3",
		"ratio":                        "1.5",
		"name.givenName":               "G",
		`emails[type eq "work"].value`: "w@x",
		"emails.value":                 "untyped@x",
		"emails.display":               "U",
		`tags[value eq "a"]`:           "a",
		`tags[value eq "b"]`:           "b",
		"urn:acme:User:badge":          "B",
		"urn:acme:User:card.number":    "42",
	}
	if diff := cmp.Diff(want, mapping.Flatten(res)); diff != "" {
		t.Errorf("Flatten mismatch (-want +got):\n%s", diff)
	}
}

func TestFlattenGoValues(t *testing.T) {
	got := mapping.Flatten(map[string]any{"ratio": 0.25, "n": int64(3), "list": []any{2.5}})
	require.Equal(t, map[string]string{"ratio": "0.25", "n": "3", `list[value eq "2.5"]`: "2.5"}, got)
}

func TestDiffPatch(t *testing.T) {
	tests := map[string]struct {
		old, new map[string]string
		want     []mapping.PatchOp
	}{
		"nothing changed": {
			old: map[string]string{"userName": "u"}, new: map[string]string{"userName": "u"},
		},
		"changed, new and vanished": {
			old: map[string]string{"userName": "u", "title": "T", "active": "true", `emails[type eq "work"].value`: "a@x"},
			new: map[string]string{"userName": "v", "active": "false", "nickName": "n", `emails[type eq "work"].value`: "a@x"},
			want: []mapping.PatchOp{
				{Op: "remove", Path: "title"},
				{Op: "replace", Path: "active", Value: false},
				{Op: "add", Path: "nickName", Value: "n"},
				{Op: "replace", Path: "userName", Value: "v"},
			},
		},
		"an element that loses every sub-attribute goes whole": {
			old:  map[string]string{`phoneNumbers[type eq "mobile"].value`: "1", `phoneNumbers[type eq "mobile"].display`: "M"},
			new:  map[string]string{},
			want: []mapping.PatchOp{{Op: "remove", Path: `phoneNumbers[type eq "mobile"]`}},
		},
		"an element that keeps a sub-attribute": {
			old:  map[string]string{`addresses[type eq "work"].locality`: "L", `addresses[type eq "work"].region`: "R"},
			new:  map[string]string{`addresses[type eq "work"].locality`: "L"},
			want: []mapping.PatchOp{{Op: "remove", Path: `addresses[type eq "work"].region`}},
		},
		"values of a multi-valued simple attribute": {
			old: map[string]string{`tags[value eq "a"]`: "a"},
			new: map[string]string{`tags[value eq "b"]`: "b"},
			want: []mapping.PatchOp{
				{Op: "remove", Path: `tags[value eq "a"]`},
				{Op: "add", Path: "tags", Value: []any{"b"}},
			},
		},
		"active that is no boolean stays a string": {
			old:  map[string]string{},
			new:  map[string]string{"active": "maybe"},
			want: []mapping.PatchOp{{Op: "add", Path: "active", Value: "maybe"}},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, mapping.DiffPatch(tc.old, tc.new)); diff != "" {
				t.Errorf("DiffPatch mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRenderConcurrentEntriesStayApart: bound template sets are reused across renders and
// goroutines; each render must see only its own entry.
func TestRenderConcurrentEntriesStayApart(t *testing.T) {
	tm, err := mapping.CompileUserMapping(map[string]string{
		"userName":    `{{ attr "uid" }}`,
		"displayName": `{{ .cn }} ({{ dn }})`,
		"title":       `{{ join "," (values "title") }}`,
	})
	require.NoError(t, err)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				uid := fmt.Sprintf("u%d-%d", g, i)
				e := mapping.Entry{DN: "uid=" + uid + ",ou=people", Attrs: map[string][]string{
					"uid": {uid}, "cn": {"CN " + uid}, "title": {"a" + uid, "b" + uid},
				}}
				res, err := tm.Render(e)
				if err != nil {
					t.Error(err)
					return
				}
				if res["userName"] != uid || res["displayName"] != "CN "+uid+" (uid="+uid+",ou=people)" || res["title"] != "a"+uid+",b"+uid {
					t.Errorf("render of %s mixed entries: %v", uid, res)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func BenchmarkRenderDefaultUserMapping(b *testing.B) {
	tm, err := mapping.CompileUserMapping(map[string]string{
		"userName": "{{ .uid }}", "name.givenName": "{{ .givenName }}", "name.familyName": "{{ .sn }}",
		"displayName": "{{ .displayName | default .cn }}", `emails[type eq "work"].value`: "{{ .mail | lower }}",
		"title": "{{ .title }}", "externalId": "{{ .entryUUID }}",
	})
	require.NoError(b, err)
	e := mapping.Entry{DN: "uid=ada,ou=people,dc=example,dc=org", Attrs: map[string][]string{
		"uid": {"ada"}, "givenName": {"Ada"}, "sn": {"Lovelace"}, "cn": {"Ada Lovelace"},
		"mail": {"Ada@Example.org"}, "title": {"Analyst"}, "entryUUID": {"0f8fad5b-d9cb-469f-a165-70867728950e"},
	}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tm.Render(e); err != nil {
			b.Fatal(err)
		}
	}
}

// TestRenderNeverShowsPasswords: a template that names a password attribute in a way the
// compiler cannot see still reads nothing.
func TestRenderNeverShowsPasswords(t *testing.T) {
	tm, err := mapping.CompileUserMapping(map[string]string{
		"userName": `{{ .uid }}`,
		"title":    `{{ attr (printf "%s%s" "user" "Password") }}`,
		"nickName": `{{ values (print "userPass" "word") | join "," }}`,
	})
	require.NoError(t, err)
	e := templateEntry
	e.Attrs = map[string][]string{"uid": {"jdoe"}, "userPassword": {"{SSHA}secret-hash"}}
	res, err := tm.Render(e)
	require.NoError(t, err)
	require.NotContains(t, fmt.Sprint(res), "secret-hash")
}

// TestRenderSoleFieldMatchesTemplate: a {{ .name }} field (read straight from the data) renders
// exactly as the same value through text/template: trimmed, case-exact names, missing
// attributes empty and left out, and booleans parsed.
func TestRenderSoleFieldMatchesTemplate(t *testing.T) {
	fast, err := mapping.CompileUserMapping(map[string]string{
		"userName": `{{ .uid }}`, "title": `{{- .title -}}`, "nickName": `{{ .missing }}`,
		"displayName": `{{ .displayName }}`, "active": `{{ .flag }}`, "externalId": `{{ attr "entryUUID" }}`,
	})
	require.NoError(t, err)
	slow, err := mapping.CompileUserMapping(map[string]string{
		"userName": `{{ .uid | print }}`, "title": `{{- .title | print -}}`, "nickName": `{{ .missing | print }}`,
		"displayName": `{{ .displayName | print }}`, "active": `{{ .flag | print }}`, "externalId": `{{ attr "entryUUID" | print }}`,
	})
	require.NoError(t, err)
	for _, attrs := range []map[string][]string{
		{"uid": {"ada"}, "title": {"  Analyst \n"}, "displayName": {"Ada L."}, "flag": {"false"}, "entryuuid": {" 0f8f-ad5b "}},
		{"uid": {" bob "}, "displayName": {"", "second"}, "flag": {"TRUE"}},
		{"UID": {"carol"}, "flag": {"true"}},
	} {
		e := mapping.Entry{DN: "uid=x,ou=people,dc=example,dc=org", Attrs: attrs}
		want, err := slow.Render(e)
		require.NoError(t, err)
		got, err := fast.Render(e)
		require.NoError(t, err)
		require.Empty(t, cmp.Diff(want, got), attrs)
	}
	_, err = fast.Render(mapping.Entry{DN: "uid=y", Attrs: map[string][]string{"uid": {"y"}, "flag": {"maybe"}}})
	require.ErrorContains(t, err, `user_mapping.active: rendered "maybe", want true or false`)
}
