package mapping_test

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/mapping"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.json from the current output")

// TestGolden converts every testdata/<case>.ldif entry and compares the result with
// testdata/<case>.golden.json:
//
//   - scim: the SCIM resource the inbound server returns for the entry;
//   - ldap: that resource written back (UserToLDAP / GroupToLDAP);
//   - outbound, flattened (users): DefaultUserMapping rendered over the entry, and the form
//     in which outbound remembers it.
//
// Every case also checks that writing the resource back changes nothing in the directory.
// Directives in LDIF comments configure a case: "# map: scimPath=ldapAttr,…", "# lockattr:
// attr", "# extension: URN name=type:ldapAttr …".
func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.ldif")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, path := range files {
		name := strings.TrimSuffix(filepath.Base(path), ".ldif")
		t.Run(name, func(t *testing.T) {
			e, directives := readLDIF(t, path)
			var got map[string]any
			if hasValueFold(e.Get("objectClass"), "groupOfNames") {
				got = goldenGroup(t, e)
			} else {
				got = goldenUser(t, e, directives)
			}
			b, err := json.MarshalIndent(got, "", "  ")
			require.NoError(t, err)
			b = append(b, '\n')
			golden := strings.TrimSuffix(path, ".ldif") + ".golden.json"
			if *update {
				require.NoError(t, os.WriteFile(golden, b, 0o644))
			}
			want, err := os.ReadFile(golden)
			require.NoError(t, err, "run go test ./mapping -run TestGolden -update to create it")
			var wantV, gotV any
			require.NoError(t, json.Unmarshal(want, &wantV))
			require.NoError(t, json.Unmarshal(b, &gotV))
			if diff := cmp.Diff(wantV, gotV); diff != "" {
				t.Errorf("%s mismatch (-want +got):\n%s", golden, diff)
			}
		})
	}
}

func hasValueFold(vals []string, want string) bool {
	for _, v := range vals {
		if strings.EqualFold(v, want) {
			return true
		}
	}
	return false
}

func goldenUser(t *testing.T, e mapping.Entry, directives map[string]string) map[string]any {
	t.Helper()
	overrides := map[string]string{}
	if s := directives["map"]; s != "" {
		for _, kv := range strings.Split(s, ",") {
			k, v, _ := strings.Cut(kv, "=")
			overrides[k] = v
		}
	}
	var exts []mapping.ExtensionSchema
	if s := directives["extension"]; s != "" {
		fields := strings.Fields(s)
		ext := mapping.ExtensionSchema{URN: fields[0]}
		for _, f := range fields[1:] {
			name, rest, _ := strings.Cut(f, "=")
			typ, ldap, _ := strings.Cut(rest, ":")
			ext.Attributes = append(ext.Attributes, mapping.ExtAttr{Name: name, Type: typ, LDAP: ldap})
		}
		exts = append(exts, ext)
	}
	m, err := mapping.NewUserMap(overrides, exts...)
	require.NoError(t, err)
	marker := mapping.DefaultActiveMarker()
	marker.LockAttr = directives["lockattr"]

	res := mapping.UserFromLDAP(e, m, marker, "entryUUID", managerID)
	w, err := mapping.UserToLDAP(res, m, marker, resolve)
	require.NoError(t, err)
	require.Empty(t, mapping.UserChanges(e, w, m, marker, managerID), "writing the resource back must change nothing")

	tm, err := mapping.CompileUserMapping(mapping.DefaultUserMapping("entryUUID", marker))
	require.NoError(t, err)
	out, err := tm.Render(e)
	require.NoError(t, err)
	return map[string]any{
		"scim":      res,
		"ldap":      map[string]any{"attrs": w.Attrs, "active": w.Active, "ignored": w.Ignored},
		"outbound":  out,
		"flattened": mapping.Flatten(out),
	}
}

func goldenGroup(t *testing.T, e mapping.Entry) map[string]any {
	t.Helper()
	gm := mapping.DefaultGroupMap()
	res := mapping.GroupFromLDAP(e, gm, "entryUUID", memberID)
	w, err := mapping.GroupToLDAP(res, gm, resolve)
	require.NoError(t, err)
	require.Empty(t, mapping.GroupChanges(e, w, gm, memberID), "writing the resource back must change nothing")
	return map[string]any{
		"scim": res,
		"ldap": map[string]any{"attrs": w.Attrs, "memberDNs": w.MemberDNs, "memberValues": gm.MemberValues(w.MemberDNs), "ignored": w.Ignored},
	}
}
