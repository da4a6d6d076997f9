package ldapstore_test

import (
	"context"
	"testing"

	"github.com/go-ldap/ldap/v3"
	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/ldapstore"
	"github.com/scimbridge/scimbridge/ldapstore/ldaptest"
	"github.com/scimbridge/scimbridge/mapping"
)

func eq(attr, v string) mapping.LDAPFilter {
	return mapping.LDAPFilter{Op: mapping.FilterEqual, Attr: attr, Value: v}
}

func TestRenderFilter(t *testing.T) {
	for name, tc := range map[string]struct {
		in   mapping.LDAPFilter
		want string
	}{
		"equal":         {eq("uid", "ada"), "(uid=ada)"},
		"injection":     {eq("uid", "*)(uid=*"), `(uid=\2a\29\28uid=\2a)`},
		"backslash":     {eq("cn", `a\b`), `(cn=a\5cb)`},
		"nul":           {eq("cn", "a\x00b"), `(cn=a\00b)`},
		"non-ascii":     {eq("cn", "Zoë"), `(cn=Zo\c3\ab)`},
		"invalid utf-8": {eq("cn", "a\xffb"), `(cn=a\ffb)`},
		"present":       {mapping.LDAPFilter{Op: mapping.FilterPresent, Attr: "mail"}, "(mail=*)"},
		"ge":            {mapping.LDAPFilter{Op: mapping.FilterGreaterOrEqual, Attr: "modifyTimestamp", Value: "20240101000000Z"}, "(modifyTimestamp>=20240101000000Z)"},
		"le":            {mapping.LDAPFilter{Op: mapping.FilterLessOrEqual, Attr: "createTimestamp", Value: "20240101000000Z"}, "(createTimestamp<=20240101000000Z)"},
		"substring":     {mapping.LDAPFilter{Op: mapping.FilterSubstring, Attr: "mail", Initial: "a*", Any: []string{"(b)", ""}, Final: "@x"}, `(mail=a\2a*\28b\29*@x)`},
		"contains":      {mapping.LDAPFilter{Op: mapping.FilterSubstring, Attr: "mail", Any: []string{"ex"}}, "(mail=*ex*)"},
		"nested": {mapping.LDAPFilter{Op: mapping.FilterAnd, Subs: []mapping.LDAPFilter{
			eq("objectClass", "inetOrgPerson"),
			{Op: mapping.FilterOr, Subs: []mapping.LDAPFilter{eq("uid", "a"), {Op: mapping.FilterNot, Subs: []mapping.LDAPFilter{eq("uid", "b")}}}},
		}}, "(&(objectClass=inetOrgPerson)(|(uid=a)(!(uid=b))))"},
		"guid":         {eq("objectGUID", "12345678-1234-5678-9abc-def012345678"), `(objectGUID=\78\56\34\12\34\12\78\56\9a\bc\de\f0\12\34\56\78)`},
		"bad guid":     {eq("objectGUID", "nope)"), `(objectGUID=nope\29)`},
		"bad attr":     {eq("ui)(d", "x"), "(uid=x)"},
		"unknown op":   {mapping.LDAPFilter{Op: "approx", Attr: "cn", Value: "x"}, "(!(objectClass=*))"},
		"empty attr":   {eq("", "x"), "(objectClass=x)"},
		"entryUUID id": {eq("entryUUID", "0f0e0d0c-0000-1111-2222-333344445555"), "(entryUUID=0f0e0d0c-0000-1111-2222-333344445555)"},
	} {
		t.Run(name, func(t *testing.T) {
			got := ldapstore.RenderFilter(tc.in)
			require.Equal(t, tc.want, got)
			_, err := ldap.CompileFilter(got)
			require.NoError(t, err, "the rendered filter is valid RFC 4515")
		})
	}
}

// TestRenderedInjectionFindsNothing runs hostile values against a real directory: each one is
// compared literally and matches no entry.
func TestRenderedInjectionFindsNothing(t *testing.T) {
	s, ou := ldaptest.OU(t, "inject")
	st := storeFor(t, s)
	ctx := context.Background()
	require.NoError(t, st.Add(ctx, "uid=victim,ou=people,"+ou, person("victim")))
	base := ldapstore.Search{Base: "ou=people," + ou, Scope: ldapstore.ScopeSub, Attrs: []string{"uid"}}
	for _, v := range []string{"*", "*)(uid=*", "victim)(|(uid=*", `\`, "\x00", "vict\xffim", "*)(objectClass=*))(|(uid=x"} {
		q := base
		q.Filter = ldapstore.RenderFilter(mapping.LDAPFilter{Op: mapping.FilterAnd, Subs: []mapping.LDAPFilter{eq("objectClass", "inetOrgPerson"), eq("uid", v)}})
		got, err := st.SearchAll(ctx, q)
		require.NoError(t, err, "value %q", v)
		require.Empty(t, got, "value %q must match nothing", v)
	}
	q := base
	q.Filter = ldapstore.RenderFilter(eq("uid", "VICTIM"))
	got, err := st.SearchAll(ctx, q)
	require.NoError(t, err)
	require.Len(t, got, 1, "a plain value still matches (case-insensitively, as uid compares)")
}

func TestDNHelpers(t *testing.T) {
	base := "ou=people,dc=example,dc=org"
	require.True(t, ldapstore.InScope("uid=a,ou=people,dc=example,dc=org", base))
	require.True(t, ldapstore.InScope("UID=a, OU=People,DC=Example,DC=org", base), "case and spacing do not matter")
	require.True(t, ldapstore.InScope(base, base))
	require.True(t, ldapstore.InScope("uid=a,ou=x,ou=people,dc=example,dc=org", base))
	require.False(t, ldapstore.InScope("cn=scimbridge,ou=services,dc=example,dc=org", base))
	require.False(t, ldapstore.InScope("uid=a,ou=people2,dc=example,dc=org", base))
	require.False(t, ldapstore.InScope("uid=x,ou=evilou=people,dc=example,dc=org", base), "a suffix match of the string is not scope")
	require.False(t, ldapstore.InScope("not a dn", base))
	require.False(t, ldapstore.InScope("dc=org", base), "a parent is not in scope")

	require.True(t, ldapstore.SameDN("uid=Ada,ou=People,dc=example,dc=org", "uid=ada,ou=people,dc=example,dc=org"))
	require.False(t, ldapstore.SameDN("uid=ada,ou=people,dc=example,dc=org", "uid=bob,ou=people,dc=example,dc=org"))

	rdn, parent, err := ldapstore.SplitDN("uid=a\\,b,ou=people,dc=example,dc=org")
	require.NoError(t, err)
	require.Equal(t, "uid=a\\,b", rdn)
	require.True(t, ldapstore.SameDN(base, parent))
	_, _, err = ldapstore.SplitDN("garbage")
	require.ErrorIs(t, err, ldapstore.ErrBadDN)

	require.Equal(t, `uid=a\,b\+c`, ldapstore.RDN("uid", "a,b+c"))

	b, err := ldapstore.ParseDN(base)
	require.NoError(t, err)
	require.True(t, b.Contains("uid=a,OU=people,dc=example,dc=org"))
	require.False(t, b.Contains("uid=a,ou=peoplex,dc=example,dc=org"))
	require.False(t, b.Contains("garbage"))
	require.False(t, ldapstore.DN{}.Contains(base), "the zero DN contains nothing")
	_, err = ldapstore.ParseDN("garbage")
	require.ErrorIs(t, err, ldapstore.ErrBadDN)
	require.Equal(t, ldapstore.NormalizeDN("UID=A, OU=People,dc=Example,dc=org"), ldapstore.NormalizeDN("uid=a,ou=people,dc=example,dc=org"))
	v, err := ldapstore.RDNValue(`uid=a\,b,ou=people,dc=example,dc=org`, "UID")
	require.NoError(t, err)
	require.Equal(t, "a,b", v)
	_, err = ldapstore.RDNValue("cn=x,dc=org", "uid")
	require.ErrorIs(t, err, ldapstore.ErrBadDN)
}
