package ldapstore_test

import (
	"context"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/ldapstore"
	"github.com/scimbridge/scimbridge/ldapstore/ldaptest"
	"github.com/scimbridge/scimbridge/mapping"
)

// normalized lowercases attribute names and sorts values, for comparing two reads of an entry.
func normalized(e mapping.Entry) map[string][]string {
	out := map[string][]string{}
	for name, vals := range e.Attrs {
		v := append([]string(nil), vals...)
		sort.Strings(v)
		out[strings.ToLower(name)] = v
	}
	return out
}

func TestModifyWithPostReadReturnsTheEntryAsWritten(t *testing.T) {
	s, ou := ldaptest.OU(t, "postread")
	st := storeFor(t, s)
	ctx := context.Background()
	dse, err := st.RootDSE(ctx)
	require.NoError(t, err)
	require.True(t, dse.Supports(ldapstore.OIDPostRead), "slapd advertises the post-read control")

	dn := "uid=pat,ou=people," + ou
	require.NoError(t, st.Add(ctx, dn, person("pat")))
	before, err := st.Get(ctx, dn, []string{"entryCSN"})
	require.NoError(t, err)

	read := []string{"uid", "cn", "sn", "mail", "title", "entryUUID", "entryCSN", "createTimestamp", "modifyTimestamp"}
	cond := ldapstore.ModifyOptions{Assertion: "(entryCSN=" + ldapstore.EscapeFilter(before.First("entryCSN")) + ")"}
	got, ok, err := st.ModifyWithPostRead(ctx, dn, []ldapstore.Change{
		{Op: ldapstore.ModReplace, Attr: "title", Values: []string{"Engineer"}},
		{Op: ldapstore.ModAdd, Attr: "mail", Values: []string{"pat@example.org", "p@example.org"}},
	}, cond, read)
	require.NoError(t, err)
	require.True(t, ok, "the response carries the post-read control")

	want, err := st.Get(ctx, dn, read)
	require.NoError(t, err)
	require.True(t, ldapstore.SameDN(want.DN, got.DN), "%s vs %s", got.DN, want.DN)
	require.Equal(t, normalized(want), normalized(got))
	require.NotEmpty(t, got.First("entryUUID"))
	require.NotEqual(t, before.First("entryCSN"), got.First("entryCSN"), "the entry as the change left it")
	require.Equal(t, mapping.VersionOf(want), mapping.VersionOf(got), "the same ETag as a read-back")

	// The assertion still guards the change: the old CSN no longer matches and nothing is written.
	_, _, err = st.ModifyWithPostRead(ctx, dn, []ldapstore.Change{{Op: ldapstore.ModReplace, Attr: "title", Values: []string{"Manager"}}}, cond, read)
	require.ErrorIs(t, err, ldapstore.ErrAssertionFailed)
	after, err := st.Get(ctx, dn, []string{"title"})
	require.NoError(t, err)
	require.Equal(t, "Engineer", after.First("title"))

	_, _, err = st.ModifyWithPostRead(ctx, "uid=ghost,ou=people,"+ou, []ldapstore.Change{{Op: ldapstore.ModReplace, Attr: "title", Values: []string{"x"}}}, ldapstore.ModifyOptions{}, read)
	require.ErrorIs(t, err, ldapstore.ErrNotFound)
}
