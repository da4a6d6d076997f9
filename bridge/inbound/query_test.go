package inbound_test

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/ldapstore"
)

func userNames(r response) []string {
	var out []string
	for _, res := range resources(r) {
		out = append(out, res["userName"].(string))
	}
	return out
}

// seedUsers adds users straight into the directory, as an admin would.
func (e *env) seedUsers(n int, prefix string, extra func(i int) string) []string {
	e.t.Helper()
	var b strings.Builder
	var names []string
	for i := range n {
		uid := fmt.Sprintf("%s%03d", prefix, i)
		names = append(names, uid)
		fmt.Fprintf(&b, "dn: uid=%s,%s\nobjectClass: inetOrgPerson\nuid: %s\ncn: %s\nsn: %s\nmail: %s@example.org\n", uid, e.people, uid, uid, uid, uid)
		if extra != nil {
			b.WriteString(extra(i))
		}
		b.WriteString("\n")
	}
	e.ldif(b.String())
	return names
}

// TestFilters runs the SCIM filter grammar against the directory.
func TestFilters(t *testing.T) {
	e := newEnv(t)
	e.seedUsers(6, "f", func(i int) string {
		s := fmt.Sprintf("title: %s\ndisplayName: Person %d\n", []string{"Engineer", "Manager", "Engineer"}[i%3], i)
		if i%2 == 0 {
			s += "employeeNumber: " + fmt.Sprint(1000+i) + "\ndepartmentNumber: Sales\n"
		}
		return s
	})
	id := e.createUser(`quo"ted`, map[string]any{"displayName": `a "quoted" name`})
	for filter, want := range map[string][]string{
		`userName eq "F001"`:                          {"f001"},
		`userName ne "f001" and userName sw "f00"`:    {"f000", "f002", "f003", "f004", "f005"},
		`userName co "00"`:                            {"f000", "f001", "f002", "f003", "f004", "f005"},
		`userName ew "5"`:                             {"f005"},
		`title pr and not (title eq "Engineer")`:      {"f001", "f004"},
		`title eq "Manager" or userName eq "f000"`:    {"f000", "f001", "f004"},
		`emails[type eq "work" and value co "f002@"]`: {"f002"},
		`emails.value eq "f003@example.org"`:          {"f003"},
		`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "Sales" and title eq "Engineer"`: {"f000", "f002"},
		`userName eq "f001" and urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber pr`:      nil,
		`displayName eq "a \"quoted\" name"`: {`quo"ted`},
		`id eq "` + id + `"`:                 {`quo"ted`},
		`meta.lastModified gt "2000-01-01T00:00:00Z" and userName eq "f002"`: {"f002"},
		`userName eq "*"`:             nil,
		`userName eq "*)(uid=*"`:      nil,
		`userName eq "f00*"`:          nil,
		`userName eq "\\"`:            nil,
		`userName eq "f001)(|(uid=*"`: nil,
	} {
		t.Run(filter, func(t *testing.T) {
			e := e.with(t)
			r := e.do("GET", "/Users?filter="+q(filter), nil)
			e.requireStatus(r, http.StatusOK)
			got := userNames(r)
			sort.Strings(got)
			require.Equal(t, want, got)
			require.EqualValues(t, len(want), r.body["totalResults"])
		})
	}
	// POST /.search, including id eq (which elimity-com/scim refuses).
	r := e.do("POST", "/Users/.search", map[string]any{
		"schemas": []any{"urn:ietf:params:scim:api:messages:2.0:SearchRequest"},
		"filter":  `id eq "` + id + `"`, "attributes": []any{"userName"},
	})
	e.requireStatus(r, http.StatusOK)
	require.Equal(t, []string{`quo"ted`}, userNames(r))
	require.NotContains(t, resources(r)[0], "displayName", "attributes apply to .search")
}

// TestBadFilters: what cannot be translated exactly is a 400 invalidFilter, never a scan.
func TestBadFilters(t *testing.T) {
	e := newEnv(t)
	e.seedUsers(2, "b", nil)
	// Parentheses alone add no depth: alternate and/or so that every level is a node.
	deep := `userName eq "x"`
	for i := range 20 {
		deep = fmt.Sprintf(`userName eq "l%d" %s (%s)`, i, []string{"and", "or"}[i%2], deep)
	}
	var wide []string
	for i := range 100 {
		wide = append(wide, fmt.Sprintf(`userName eq "u%d"`, i))
	}
	for name, filter := range map[string]string{
		"syntax":           `userName eq`,
		"garbage":          `)(uid=*`,
		"unknown attr":     `colour eq "blue"`,
		"unmapped attr":    `nickName eq "x"`,
		"no ordering rule": `userName gt "a"`,
		"too deep":         deep,
		"too wide":         strings.Join(wide, " or "),
		"bad operator":     `userName xx "a"`,
		"too long":         `userName eq "` + strings.Repeat("a", 5000) + `"`,
	} {
		t.Run(name, func(t *testing.T) {
			e := e.with(t)
			r := e.do("GET", "/Users?filter="+q(filter), nil)
			e.requireStatus(r, http.StatusBadRequest, "invalidFilter")
		})
	}
	r := e.do("GET", "/Groups?filter="+q(`userName eq "x"`), nil)
	e.requireStatus(r, http.StatusBadRequest, "invalidFilter")
	r = e.do("GET", "/Users?count=ten", nil)
	e.requireStatus(r, http.StatusBadRequest, "invalidValue")
}

// TestPagination: startIndex and count page a sorted list with an exact total, through VLV and
// without it (snapshots), over the unfiltered list and a broad filter.
func TestPagination(t *testing.T) {
	for _, vlv := range []bool{true, false} {
		t.Run(fmt.Sprintf("vlv=%v", vlv), func(t *testing.T) {
			e, f := newFaultyEnv(t, func(f *faulty) { f.noVLV = !vlv })
			f.reset()
			want := e.seedUsers(23, "p", nil)
			for _, filter := range []string{"", `userName sw "p"`, `emails pr`} {
				var got []string
				for start := 1; start <= 23; start += 10 {
					r := e.do("GET", fmt.Sprintf("/Users?startIndex=%d&count=10&filter=%s", start, q(filter)), nil)
					e.requireStatus(r, http.StatusOK)
					require.EqualValues(t, 23, r.body["totalResults"])
					require.EqualValues(t, start, r.body["startIndex"])
					require.EqualValues(t, len(resources(r)), r.body["itemsPerPage"])
					got = append(got, userNames(r)...)
				}
				require.Equal(t, want, got, "filter %q", filter)
			}
			r := e.do("GET", "/Users?startIndex=24&count=10", nil)
			e.requireStatus(r, http.StatusOK)
			require.EqualValues(t, 23, r.body["totalResults"])
			require.Empty(t, resources(r))
			r = e.do("GET", "/Users?count=0", nil)
			require.EqualValues(t, 23, r.body["totalResults"])
			require.Empty(t, resources(r))
			r = e.do("GET", "/Users?startIndex=-5&count=2", nil)
			require.Equal(t, want[:2], userNames(r))

			// A write through the server is seen by the next page at once.
			e.createUser("p000a", nil)
			f.reset()
			r = e.do("GET", "/Users?startIndex=1&count=3", nil)
			require.EqualValues(t, 24, r.body["totalResults"])
			require.Equal(t, []string{"p000", "p000a", "p001"}, userNames(r))
			if vlv {
				require.Zero(t, f.count("get"), "VLV pages need no per-entry reads")
			} else {
				require.Equal(t, 3, f.count("get"), "a snapshot page reads only its own entries")
			}
		})
	}
}

// TestBlastRadius: entries outside the users and groups bases — the bridge's own service
// account, an admin elsewhere — are invisible and untouchable, even by their real id.
func TestBlastRadius(t *testing.T) {
	e := newEnv(t)
	e.seedUsers(1, "inside", nil)
	svc, err := e.store.Get(context.Background(), e.slapd.ServiceDN, []string{"entryUUID"})
	require.NoError(t, err)
	e.ldif("dn: ou=admins," + e.ou + "\nobjectClass: organizationalUnit\nou: admins\n\n" +
		"dn: uid=root-admin,ou=admins," + e.ou + "\nobjectClass: inetOrgPerson\nuid: root-admin\ncn: admin\nsn: admin\n")
	adm, err := e.store.Get(context.Background(), "uid=root-admin,ou=admins,"+e.ou, []string{"entryUUID"})
	require.NoError(t, err)
	other, err := e.store.Get(context.Background(), e.ou, []string{"entryUUID"})
	require.NoError(t, err)
	before := e.snapshot()
	for _, id := range []string{svc.First("entryUUID"), adm.First("entryUUID"), other.First("entryUUID")} {
		for _, kind := range []string{"Users", "Groups"} {
			r := e.do("GET", "/"+kind+"/"+id, nil)
			e.requireStatus(r, http.StatusNotFound)
			r = e.do("PATCH", "/"+kind+"/"+id, patchOps(op("replace", "displayName", "pwned")))
			e.requireStatus(r, http.StatusNotFound)
			r = e.do("PUT", "/"+kind+"/"+id, user("pwned", nil))
			e.requireStatus(r, http.StatusNotFound)
			r = e.do("DELETE", "/"+kind+"/"+id, nil)
			e.requireStatus(r, http.StatusNotFound)
			r = e.do("GET", "/"+kind+"?filter="+q(`id eq "`+id+`"`), nil)
			e.requireStatus(r, http.StatusOK)
			require.EqualValues(t, 0, r.body["totalResults"])
		}
		// Not as a manager or a member either.
		r := e.do("POST", "/Users", user("x", map[string]any{entURN: map[string]any{"manager": id}}))
		e.requireStatus(r, http.StatusBadRequest, "invalidValue")
		r = e.do("POST", "/Groups", map[string]any{"displayName": "g", "members": []any{map[string]any{"value": id}}})
		e.requireStatus(r, http.StatusBadRequest, "invalidValue")
	}
	r := e.do("GET", "/Users?filter="+q(`userName eq "root-admin"`), nil)
	require.EqualValues(t, 0, r.body["totalResults"])
	r = e.do("GET", "/Users", nil)
	require.Equal(t, []string{"inside000"}, userNames(r))
	e.requireUnchanged(before, e.snapshot(), "nothing outside the bases changed")
	for _, id := range []string{"*", "..", "%2a", "x)(entryUUID=*"} {
		r := e.do("GET", "/Users/"+id, nil)
		e.requireStatus(r, http.StatusNotFound)
	}
	_ = ldapstore.SameDN
}
