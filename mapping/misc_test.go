package mapping_test

import (
	"go/parser"
	"go/token"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/mapping"
)

func TestParseGeneralizedTime(t *testing.T) {
	utc := func(s string) time.Time {
		tm, err := time.Parse(time.RFC3339Nano, s)
		require.NoError(t, err)
		return tm.UTC()
	}
	good := map[string]time.Time{
		"20240102150405Z":                               utc("2024-01-02T15:04:05Z"),
		"20240102150405.123456Z":                        utc("2024-01-02T15:04:05.123456Z"),
		"20240102150405,5Z":                             utc("2024-01-02T15:04:05.5Z"),
		"202401021504Z":                                 utc("2024-01-02T15:04:00Z"),
		"2024010215Z":                                   utc("2024-01-02T15:00:00Z"),
		"20240102150405+0200":                           utc("2024-01-02T13:04:05Z"),
		"20240102150405-05":                             utc("2024-01-02T20:04:05Z"),
		"20240102150405.1234567890123Z":                 utc("2024-01-02T15:04:05.123456789Z"),
		"20240314101502.123456Z#000000#000#000000"[:22]: utc("2024-03-14T10:15:02.123456Z"),
		"000001010000Z":                                 time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	for in, want := range good {
		got, err := mapping.ParseGeneralizedTime(in)
		require.NoError(t, err, in)
		require.True(t, want.Equal(got), "%s: got %v want %v", in, got, want)
	}
	for _, in := range []string{
		"", "2024", "20240102", "2024010215", "20240102150405", "20240102150405X",
		"20240102150405Zjunk", "20240102150405.Z", "20240102150405+2", "20240102150405+2400",
		"20240102150405+02001", "20241302150405Z", "20240230150405Z", "20240102250405Z", "2024-01-02T15:04:05Z",
	} {
		_, err := mapping.ParseGeneralizedTime(in)
		require.Error(t, err, in)
		require.Contains(t, err.Error(), "mapping: generalized time "+strconv.Quote(in))
	}
}

func TestFormatGeneralizedTime(t *testing.T) {
	require.Equal(t, "20240102150405Z", mapping.FormatGeneralizedTime(time.Date(2024, 1, 2, 15, 4, 5, 0, time.UTC)))
	require.Equal(t, "20240102150405.12Z", mapping.FormatGeneralizedTime(time.Date(2024, 1, 2, 15, 4, 5, 120000000, time.UTC)))
	require.Equal(t, "20240102130405Z", mapping.FormatGeneralizedTime(time.Date(2024, 1, 2, 15, 4, 5, 0, time.FixedZone("", 7200))))
}

func TestError(t *testing.T) {
	e := mapping.NewError(mapping.ScimTypeInvalidFilter, "userName %s: no ordering", "gt")
	require.Equal(t, &mapping.Error{ScimType: mapping.ScimTypeInvalidFilter, Detail: "userName gt: no ordering", Status: http.StatusBadRequest}, e)
	require.Equal(t, "scim invalidFilter: userName gt: no ordering", e.Error())
	require.Equal(t, http.StatusConflict, mapping.NewError(mapping.ScimTypeUniqueness, "userName is taken").Status)

	// Problems name attributes, never the values sent: they may be secrets.
	_, err := mapping.UserToLDAP(map[string]any{"userName": "u", "password": 12345, "phoneNumbers": []any{map[string]any{"value": "#secret#"}}},
		mapping.DefaultUserMap(), mapping.DefaultActiveMarker(), resolve)
	var se *mapping.Error
	require.ErrorAs(t, err, &se)
	require.Equal(t, http.StatusBadRequest, se.Status)
	require.NotContains(t, se.Detail, "12345")
	require.NotContains(t, se.Detail, "#secret#")
	require.Contains(t, se.Detail, "password")
}

// TestLeafPackage keeps mapping a leaf: no I/O, no logging, no LDAP library, no context.
func TestLeafPackage(t *testing.T) {
	files, err := filepath.Glob("*.go")
	require.NoError(t, err)
	allowed := map[string]bool{"github.com/scim2/filter-parser/v2": true}
	forbidden := []string{"os", "io", "net", "context", "log", "log/slog", "github.com/go-ldap/ldap/v3", "github.com/rs/zerolog", "github.com/elimity-com/scim"}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		parsed, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		require.NoError(t, err)
		for _, imp := range parsed.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if strings.Contains(path, ".") {
				require.True(t, allowed[path], "%s imports %s", f, path)
			}
			for _, bad := range forbidden {
				require.False(t, path == bad || strings.HasPrefix(path, bad+"/"), "%s imports %s", f, path)
			}
		}
	}
}

// TestEntryGetIgnoresCase checks that an attribute is found whatever the case of its name, on
// the exact-match path and on the scan a miss takes, including names that fold to each other
// only outside ASCII (the Kelvin sign folds to k), and that absent names give nil.
func TestEntryGetIgnoresCase(t *testing.T) {
	e := mapping.Entry{Attrs: map[string][]string{
		"givenName": {"Ada"}, "SN": {"Lovelace"}, "\u212aey": {"kelvin"}, "mail": {"ada@example.org"}, "": {"empty"},
	}}
	for attr, want := range map[string][]string{
		"givenName": {"Ada"}, "GIVENNAME": {"Ada"}, "givenname": {"Ada"}, "sn": {"Lovelace"}, "Sn": {"Lovelace"},
		"key": {"kelvin"}, "KEY": {"kelvin"}, "MAIL": {"ada@example.org"}, "": {"empty"},
		"cn": nil, "givenNam": nil, "mails": nil, "title": nil,
	} {
		require.Equal(t, want, e.Get(attr), attr)
	}
	require.Nil(t, mapping.Entry{Attrs: map[string][]string{"sn": {"x"}}}.Get(""))
}
