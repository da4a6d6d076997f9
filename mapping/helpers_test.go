package mapping_test

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"os"
	"strings"
	"testing"

	filter "github.com/scim2/filter-parser/v2"
	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/mapping"
)

// A small fixed directory behind the resolvers the conversions take.
const (
	base      = "dc=example,dc=org"
	bossDN    = "uid=boss,ou=people," + base
	bossID    = "11111111-1111-4111-8111-111111111111"
	aliceDN   = "uid=alice,ou=people," + base
	aliceID   = "22222222-2222-4222-8222-222222222222"
	adminsDN  = "cn=admins,ou=groups," + base
	adminsID  = "33333333-3333-4333-8333-333333333333"
	outsideDN = "cn=root,ou=system," + base
)

type dirEntry struct{ id, dn, typ string }

var directory = []dirEntry{
	{bossID, bossDN, "User"},
	{aliceID, aliceDN, "User"},
	{adminsID, adminsDN, "Group"},
}

func resolve(id string) (string, error) {
	for _, d := range directory {
		if strings.EqualFold(d.id, id) {
			return d.dn, nil
		}
	}
	return "", nil
}

func managerID(dn string) string {
	id, _, _ := memberID(dn)
	return id
}

func memberID(dn string) (string, string, bool) {
	for _, d := range directory {
		if strings.EqualFold(d.dn, dn) {
			return d.id, d.typ, true
		}
	}
	return "", "", false
}

// readLDIF reads the single entry of an LDIF file (with continuation lines and base64
// values), and the "# key: value" directives in its comments.
func readLDIF(t *testing.T, path string) (mapping.Entry, map[string]string) {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var lines []string
	directives := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "#"):
			if k, v, ok := strings.Cut(strings.TrimSpace(strings.TrimPrefix(line, "#")), ": "); ok {
				directives[k] = v
			}
		case strings.HasPrefix(line, " ") && len(lines) > 0:
			lines[len(lines)-1] += line[1:]
		case strings.TrimSpace(line) == "":
		default:
			lines = append(lines, line)
		}
	}
	require.NoError(t, sc.Err())
	e := mapping.Entry{Attrs: map[string][]string{}}
	for _, line := range lines {
		name, value, ok := strings.Cut(line, ":")
		require.True(t, ok, "bad LDIF line %q", line)
		switch {
		case strings.HasPrefix(value, ":"):
			b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(value[1:]))
			require.NoError(t, err)
			value = string(b)
		default:
			value = strings.TrimPrefix(value, " ")
		}
		if name == "dn" {
			e.DN = value
			continue
		}
		e.Attrs[name] = append(e.Attrs[name], value)
	}
	return e, directives
}

func parseFilter(t testing.TB, s string) filter.Expression {
	t.Helper()
	expr, err := filter.ParseFilter([]byte(s))
	require.NoError(t, err, "parse %q", s)
	return expr
}

func parsePath(t testing.TB, s string) *filter.Path {
	t.Helper()
	p, err := filter.ParsePath([]byte(s))
	require.NoError(t, err, "parse path %q", s)
	return &p
}

// jsonMap decodes JSON the way a SCIM server does (numbers as json.Number).
func jsonMap(t testing.TB, s string) map[string]any {
	t.Helper()
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	var m map[string]any
	require.NoError(t, d.Decode(&m))
	return m
}

func jsonValue(t testing.TB, s string) any {
	t.Helper()
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	var v any
	require.NoError(t, d.Decode(&v))
	return v
}

// renderFilter writes an LDAPFilter in RFC 4515 notation, for readable test tables only:
// production code never builds filter strings (ldapstore renders the tree with go-ldap).
func renderFilter(f mapping.LDAPFilter) string {
	esc := func(s string) string {
		var b strings.Builder
		for i := 0; i < len(s); i++ {
			switch c := s[i]; c {
			case '(', ')', '*', '\\', 0:
				b.WriteString(`\` + hex2(c))
			default:
				b.WriteByte(c)
			}
		}
		return b.String()
	}
	switch f.Op {
	case mapping.FilterAnd, mapping.FilterOr, mapping.FilterNot:
		op := map[mapping.FilterOp]string{mapping.FilterAnd: "&", mapping.FilterOr: "|", mapping.FilterNot: "!"}[f.Op]
		var b strings.Builder
		b.WriteString("(" + op)
		for _, s := range f.Subs {
			b.WriteString(renderFilter(s))
		}
		return b.String() + ")"
	case mapping.FilterEqual:
		return "(" + f.Attr + "=" + esc(f.Value) + ")"
	case mapping.FilterGreaterOrEqual:
		return "(" + f.Attr + ">=" + esc(f.Value) + ")"
	case mapping.FilterLessOrEqual:
		return "(" + f.Attr + "<=" + esc(f.Value) + ")"
	case mapping.FilterPresent:
		return "(" + f.Attr + "=*)"
	case mapping.FilterSubstring:
		parts := []string{esc(f.Initial)}
		for _, a := range f.Any {
			parts = append(parts, esc(a))
		}
		parts = append(parts, esc(f.Final))
		return "(" + f.Attr + "=" + strings.Join(parts, "*") + ")"
	}
	return "(?" + string(f.Op) + ")"
}

func hex2(c byte) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[c>>4], digits[c&15]})
}

// requireScimError checks that err is a *mapping.Error of the scimType whose detail contains
// every fragment.
func requireScimError(t testing.TB, err error, scimType string, fragments ...string) {
	t.Helper()
	require.Error(t, err)
	var se *mapping.Error
	require.ErrorAs(t, err, &se, "error %v", err)
	require.Equal(t, scimType, se.ScimType, "error %v", err)
	for _, f := range fragments {
		require.Contains(t, se.Detail, f)
	}
}
