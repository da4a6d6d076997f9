package ldapstore_test

import (
	"context"
	"testing"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/ldapstore"
	"github.com/scimbridge/scimbridge/ldapstore/ldaptest"
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
