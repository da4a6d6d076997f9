package ldaptest_test

import (
	"os"
	"testing"

	"github.com/go-ldap/ldap/v3"
	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/ldapstore/ldaptest"
)

func TestMain(m *testing.M) { os.Exit(ldaptest.RunMain(m, ldaptest.Options{})) }

func TestSlapdAnswersAndLogsWrites(t *testing.T) {
	s, ou := ldaptest.OU(t, "helper")
	require.NoError(t, s.LDIF("dn: uid=ada,ou=people,"+ou+"\nobjectClass: inetOrgPerson\nuid: ada\ncn: Ada\nsn: Lovelace\n"))

	conn, err := ldap.DialURL(s.URL)
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.Bind(s.ServiceDN, s.ServicePW))

	res, err := conn.Search(ldap.NewSearchRequest("ou=people,"+ou, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
		"(uid=ada)", []string{"entryUUID", "cn"}, nil))
	require.NoError(t, err)
	require.Len(t, res.Entries, 1)
	uuid := res.Entries[0].GetAttributeValue("entryUUID")
	require.NotEmpty(t, uuid)

	logs, err := conn.Search(ldap.NewSearchRequest(ldaptest.AccesslogSuffix, ldap.ScopeSingleLevel, ldap.NeverDerefAliases, 0, 0, false,
		"(&(objectClass=auditAdd)(reqEntryUUID="+ldap.EscapeFilter(uuid)+"))", []string{"reqStart", "reqDN", "reqType"}, nil))
	require.NoError(t, err)
	require.Len(t, logs.Entries, 1)
	require.Equal(t, "uid=ada,ou=people,"+ou, logs.Entries[0].GetAttributeValue("reqDN"))
}

func TestRestartKeepsData(t *testing.T) {
	s := ldaptest.Private(t, ldaptest.Options{Seed: "dn: uid=grace,ou=people," + ldaptest.DefaultSuffix + "\nobjectClass: inetOrgPerson\nuid: grace\ncn: Grace\nsn: Hopper\n"})
	pid := s.PID()
	require.NotZero(t, pid)
	require.NoError(t, s.Stop())
	require.Zero(t, s.PID())
	require.NoError(t, s.Start())
	conn, err := s.Root()
	require.NoError(t, err)
	defer conn.Close()
	res, err := conn.Search(ldap.NewSearchRequest(s.PeopleDN, ldap.ScopeSingleLevel, ldap.NeverDerefAliases, 0, 0, false,
		"(uid=grace)", []string{"cn"}, nil))
	require.NoError(t, err)
	require.Len(t, res.Entries, 1)
}
