package inbound

import (
	"reflect"
	"strings"
	"testing"

	filter "github.com/scim2/filter-parser/v2"
	"github.com/stretchr/testify/require"
)

// TestFastFilterMatchesTheParser: the fast path yields filter-parser's own expression for every
// input it takes, and leaves the rest to the parser.
func TestFastFilterMatchesTheParser(t *testing.T) {
	for _, s := range []string{
		`userName eq "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1"`,
		`userName EQ "x"`, `userName Eq "x"`, `externalId eq "0a21f0f2-8d2a-4f8e-bf98-7371c9e4dc6c"`,
		`name.givenName eq "Zoë"`, `emails.value eq "a@b.c"`, `displayName eq ""`, `displayName eq "a b (c) *"`,
		`userName eq "日本語"`, `title eq "R&D / Ops"`,
	} {
		fast, err := parseFilter(s)
		require.NoError(t, err, s)
		_, isAttr := fast.(*filter.AttributeExpression)
		require.True(t, isAttr, s)
		full, err := filter.ParseFilter([]byte(s))
		require.NoError(t, err, s)
		require.Equal(t, full, fast, s)
	}
	// Not for the fast path: escapes, other operators, URNs, odd spacing; the parser decides.
	for _, s := range []string{
		`userName eq "a\"b"`, `userName ne "x"`, `urn:ietf:params:scim:schemas:core:2.0:User:userName eq "x"`,
		` userName eq "x"`, `userName  eq "x"`, `userName eq "x" `, `userName eq x`, `userName eq "x" and title pr`,
		`emails[type eq "work"]`, "userName eq \"a\tb\"",
	} {
		require.Nil(t, eqFilterRE.FindStringSubmatch(s), s)
		fast, ferr := parseFilter(s)
		full, perr := filter.ParseFilter([]byte(s))
		require.Equal(t, perr == nil, ferr == nil, s)
		if perr == nil {
			require.Equal(t, full, fast, s)
		}
	}
}

// TestEntraValuePathCompare: Entra ID's `attr[filter].sub op value` becomes the RFC form
// `attr[filter and sub op value]`, anywhere in a filter; what it cannot rewrite faithfully is
// left to the parser.
func TestEntraValuePathCompare(t *testing.T) {
	for in, want := range map[string]string{
		`emails[type eq "work"].value eq "x@example.com"`:          `emails[type eq "work" and value eq "x@example.com"]`,
		`emails[type eq "work"].value EQ "a]b.c"`:                  `emails[type eq "work" and value EQ "a]b.c"]`,
		`emails[type eq "w\"]"].value eq "x"`:                      `emails[type eq "w\"]" and value eq "x"]`,
		`userName eq "u" and emails[type eq "work"].value sw "x"`:  `userName eq "u" and emails[type eq "work" and value sw "x"]`,
		`(emails[type eq "work"].value eq "x") or userName eq "y"`: `(emails[type eq "work" and value eq "x"]) or userName eq "y"`,
		`addresses[type eq "work"].country pr`:                     `addresses[type eq "work" and country pr]`,
	} {
		got, ok := rewriteValuePathCompare(in)
		require.True(t, ok, in)
		require.Equal(t, want, got, in)
		_, err := parseFilter(in)
		require.NoError(t, err, "%s parses once rewritten", in)
	}
	for _, in := range []string{
		`emails[type eq "work"]`,
		`emails[type eq "work" or type eq "home"].value eq "x"`,
		`emails[not (type eq "work")].value eq "x"`,
		`userName eq "emails[type eq \"work\"].value eq \"x\""`,
		`emails[type eq "work"].value`,
	} {
		got, ok := rewriteValuePathCompare(in)
		require.False(t, ok, in)
		require.Equal(t, in, got)
	}
}

// FuzzParseFilter: any filter text a client sends is parsed without a panic; the fast path
// gives exactly filter-parser's expression; Entra ID's value-path comparison is rewritten only
// into something filter-parser reads as a value filter.
func FuzzParseFilter(f *testing.F) {
	for _, s := range []string{
		`userName eq "x"`, `emails[type eq "work"].value eq "x@y"`, `emails[type eq "w\"]"].value eq "x"`,
		`name.givenName eq "Zoë"`, `(emails[type eq "work"].value eq "x") or userName sw "y"`,
		`members[value eq "a"]`, `addresses[type eq "work"].country pr`, `not (title pr)`, `a[b[c]].d eq "e"`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) > maxFilterLength {
			return
		}
		got, err := parseFilter(s)
		if eqFilterRE.MatchString(s) && !strings.HasPrefix(strings.ToLower(s), "not ") {
			full, perr := filter.ParseFilter([]byte(s))
			if perr == nil && (err != nil || !reflect.DeepEqual(full, got)) {
				t.Fatalf("%q: the fast path differs from filter-parser", s)
			}
		}
		if rewritten, ok := rewriteValuePathCompare(s); ok {
			if rewritten == s || !strings.Contains(rewritten, " and ") {
				t.Fatalf("%q: rewritten to %q", s, rewritten)
			}
		}
	})
}
