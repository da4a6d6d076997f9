package ldapstore_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/ldapstore"
	"github.com/scimbridge/scimbridge/ldapstore/ldaptest"
	"github.com/scimbridge/scimbridge/mapping"
)

// dialectOf is the dialect each kind of test server must be detected as.
var dialectOf = map[ldaptest.Kind]ldapstore.Dialect{
	ldaptest.KindOpenLDAP: ldapstore.DialectOpenLDAP,
	ldaptest.Kind389DS:    ldapstore.Dialect389DS,
	ldaptest.KindAD:       ldapstore.DialectAD,
}

// tlsStoreFor is storeFor over the server's LDAPS listener, verified with its CA.
func tlsStoreFor(t *testing.T, s *ldaptest.Server) *ldapstore.Store {
	t.Helper()
	return storeFor(t, s, func(c *ldapstore.Config) { c.URLs = []string{s.LDAPSURL}; c.CAFile = s.CAFile })
}

// TestDialectAndSubschemaOnEveryServer: each real server is detected as its dialect, and its
// subschema is found where its root DSE says (cn=Subschema, cn=schema, CN=Aggregate,…), not at
// a hard-coded DN.
func TestDialectAndSubschemaOnEveryServer(t *testing.T) {
	own := map[ldaptest.Kind]string{
		ldaptest.KindOpenLDAP: "entryUUID",
		ldaptest.Kind389DS:    "nsAccountLock",
		ldaptest.KindAD:       "sAMAccountName",
	}
	for _, k := range ldaptest.Kinds {
		t.Run(string(k), func(t *testing.T) {
			s := ldaptest.SharedKind(t, k)
			st := storeFor(t, s)
			ctx := context.Background()
			dse, err := st.RootDSE(ctx)
			require.NoError(t, err)
			require.Equal(t, dialectOf[k], dse.Dialect)
			require.NotEmpty(t, dse.SubschemaDN)
			has, err := st.HasAttributeType(ctx, own[k])
			require.NoError(t, err)
			require.True(t, has, "%s is in the subschema at %s", own[k], dse.SubschemaDN)
			has, err = st.HasAttributeType(ctx, "scimbridgeNoSuchAttribute")
			require.NoError(t, err)
			require.False(t, has)
		})
	}
}

// TestPasswordsOnEveryServer: a password set through the store lets the user bind; 389-DS and
// Active Directory take passwords only over TLS, and over plain LDAP the store refuses to send
// one to them.
func TestPasswordsOnEveryServer(t *testing.T) {
	for _, k := range ldaptest.Kinds {
		t.Run(string(k), func(t *testing.T) {
			s, ou := ldaptest.OUIn(t, k, "pw")
			ctx := context.Background()
			st := storeFor(t, s)
			dn := "uid=carol,ou=people," + ou
			attrs := person("carol")
			if k == ldaptest.KindAD {
				dn = "CN=carol,ou=people," + ou
				attrs = map[string][]string{"objectClass": {"user"}, "sAMAccountName": {"carol"}}
			}
			require.NoError(t, st.Add(ctx, dn, attrs))
			const pw = "S3cret!pass-Word"
			if k != ldaptest.KindOpenLDAP {
				err := st.SetPassword(ctx, dn, pw)
				require.ErrorIs(t, err, ldapstore.ErrUnsupported, "no password over plain LDAP")
				require.NotContains(t, err.Error(), pw)
				st = tlsStoreFor(t, s)
			}
			require.NoError(t, st.SetPassword(ctx, dn, pw))
			if k == ldaptest.KindAD {
				// A new AD user is disabled until it has a password: enable it to bind.
				require.NoError(t, st.Modify(ctx, dn, []ldapstore.Change{{Op: ldapstore.ModReplace, Attr: "userAccountControl", Values: []string{"512"}}}, ldapstore.ModifyOptions{}))
			}
			user, err := ldapstore.Open(ctx, ldapstore.Config{URLs: []string{s.URL}, BindDN: dn, BindPassword: pw}, zerolog.Nop())
			require.NoError(t, err, "the user binds with the new password")
			user.Close()
			_, err = ldapstore.Open(ctx, ldapstore.Config{URLs: []string{s.URL}, BindDN: dn, BindPassword: "wrong"}, zerolog.Nop())
			require.ErrorIs(t, err, ldapstore.ErrDenied)
		})
	}
}

// TestRangedMemberReadsOnAD: with a range size of 100, a group of 300 members is read in
// ranges (member;range=0-99, 100-199, …) and every member comes back, by Get and by Walk.
// Without one the plain attribute is asked for (Samba returns it whole; AD ranges it at
// MaxValRange, which the same continuation follows).
func TestRangedMemberReadsOnAD(t *testing.T) {
	s, ou := ldaptest.OUIn(t, ldaptest.KindAD, "ranged")
	ctx := context.Background()
	admin := storeFor(t, s)
	const n = 300
	group := "CN=big,ou=groups," + ou
	members := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 4 {
				members[i] = fmt.Sprintf("CN=m%03d,ou=people,%s", i, ou)
				errs[i] = admin.Add(ctx, members[i], map[string][]string{"objectClass": {"user"}, "sAMAccountName": {fmt.Sprintf("rg-%s-%03d", ou[3:13], i)}})
			}
		}()
	}
	wg.Wait()
	require.NoError(t, errors.Join(errs...))
	t.Logf("%d users added in %s", n, time.Since(start))
	require.NoError(t, admin.Add(ctx, group, map[string][]string{"objectClass": {"group"}, "member": members}))

	for _, size := range []int{100, 0} {
		t.Run(fmt.Sprintf("range size %d", size), func(t *testing.T) {
			st := storeFor(t, s, func(c *ldapstore.Config) { c.RangeSize = size })
			e, err := st.Get(ctx, group, []string{"member", "cn"})
			require.NoError(t, err)
			require.Len(t, e.Get("member"), n, "every member is read")
			require.Equal(t, "big", e.First("cn"))
			var walked []string
			require.NoError(t, st.Walk(ctx, ldapstore.Search{Base: "ou=groups," + ou, Scope: ldapstore.ScopeSub, Filter: "(objectClass=group)", Attrs: []string{"member"}},
				func(e mapping.Entry) error { walked = append(walked, e.Get("member")...); return nil }))
			norm := func(dns []string) []string {
				out := make([]string, len(dns))
				for i, dn := range dns {
					out[i] = ldapstore.NormalizeDN(dn)
				}
				return out
			}
			require.ElementsMatch(t, norm(members), norm(walked))
		})
	}
}

// TestADSourcesReportDeletesWhereTheEntryWas: DirSync and uSNChanged see a delete as a
// tombstone under CN=Deleted Objects; the event names the DN the entry had (from the
// tombstone's name and lastKnownParent, which Samba and AD without the Recycle Bin set, not
// msDS-LastKnownRDN), so that it is recognised as inside the users base.
func TestADSourcesReportDeletesWhereTheEntryWas(t *testing.T) {
	s, ou := ldaptest.OUIn(t, ldaptest.KindAD, "tomb")
	ctx := context.Background()
	st := storeFor(t, s)
	dirsync, err := ldapstore.NewDirSync(ctx, st, ldapstore.DirSyncOptions{})
	require.NoError(t, err)
	usn, err := ldapstore.NewUSN(ctx, st, ldapstore.USNOptions{})
	require.NoError(t, err)
	for _, src := range []interface {
		Head(context.Context) (string, error)
		Poll(context.Context, string, int) (ldapstore.Batch, error)
	}{dirsync, usn} {
		dn := "CN=Ada Lovelace,ou=people," + ou
		require.NoError(t, st.Add(ctx, dn, map[string][]string{"objectClass": {"user"}, "sAMAccountName": {"tomb-" + ou[8:16]}}))
		e, err := st.Get(ctx, dn, []string{"objectGUID"})
		require.NoError(t, err)
		head, err := src.Head(ctx)
		require.NoError(t, err)
		require.NoError(t, st.Delete(ctx, dn))
		b, err := src.Poll(ctx, head, 100)
		require.NoError(t, err)
		require.Len(t, b.Events, 1)
		ev := b.Events[0]
		require.Equal(t, ldapstore.EventDelete, ev.Kind)
		require.Equal(t, e.First("objectGUID"), ev.ID)
		require.True(t, ldapstore.DNEqual(dn, ev.DN), "%s is where it was, not %s", dn, ev.DN)
		require.NotEmpty(t, ev.Position)
	}
}
