package ldaptest_test

import (
	"testing"

	"github.com/go-ldap/ldap/v3"
	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/ldapstore/ldaptest"
)

// TestEveryKindAnswersAsTheServiceAccount: each server starts, takes an admin's LDIF in a
// test's own OU, and the service account reads it back with the entry's stable id.
func TestEveryKindAnswersAsTheServiceAccount(t *testing.T) {
	for _, k := range ldaptest.Kinds {
		t.Run(string(k), func(t *testing.T) {
			s, ou := ldaptest.OUIn(t, k, "helper")
			entry := "dn: uid=ada,ou=people," + ou + "\nobjectClass: inetOrgPerson\nuid: ada\ncn: Ada\nsn: Lovelace\n"
			idAttr := map[ldaptest.Kind]string{ldaptest.KindOpenLDAP: "entryUUID", ldaptest.Kind389DS: "nsUniqueId", ldaptest.KindAD: "objectGUID"}[k]
			if k == ldaptest.KindAD {
				entry = "dn: CN=Ada,ou=people," + ou + "\nobjectClass: user\nsAMAccountName: ada\n"
			}
			require.NoError(t, s.LDIF(entry))
			conn, err := ldap.DialURL(s.URL)
			require.NoError(t, err)
			defer conn.Close()
			require.NoError(t, conn.Bind(s.ServiceDN, s.ServicePW))
			res, err := conn.Search(ldap.NewSearchRequest("ou=people,"+ou, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
				"(|(uid=ada)(sAMAccountName=ada))", []string{idAttr}, nil))
			require.NoError(t, err)
			require.Len(t, res.Entries, 1)
			require.NotEmpty(t, res.Entries[0].GetRawAttributeValue(idAttr))
			if k != ldaptest.KindOpenLDAP {
				require.NotEmpty(t, s.LDAPSURL)
				tc, err := s.LDAPS()
				require.NoError(t, err)
				tc.Close()
			}
		})
	}
}

// TestADAccountNamesAreFreedAtCleanup: an AD test's OU is deleted when the test ends, so the
// same test run again (go test -count=2) can create its accounts again: a sAMAccountName is
// unique in the whole domain.
func TestADAccountNamesAreFreedAtCleanup(t *testing.T) {
	s := ldaptest.SharedKind(t, ldaptest.KindAD)
	for _, run := range []string{"first", "second"} {
		t.Run(run, func(t *testing.T) {
			ou := ldaptest.NewOU(t, s, "twice")
			require.NoError(t, s.LDIF("dn: CN=Twice,ou=people,"+ou+"\nobjectClass: user\nsAMAccountName: twice\n"))
		})
	}
}
