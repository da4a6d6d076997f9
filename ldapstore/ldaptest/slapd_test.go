package ldaptest_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
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

// TestOptionalSchemaLoads: scimbridge's optional schema loads into slapd.conf (Options.Schemas)
// and into cn=config (etc/schema/scimbridge.ldif through slapadd -n0), and both define the
// same types.
func TestOptionalSchemaLoads(t *testing.T) {
	s := ldaptest.Private(t, ldaptest.Options{Schemas: []string{ldaptest.OptionalSchema()}})
	conn, err := s.Root()
	require.NoError(t, err)
	defer conn.Close()
	res, err := conn.Search(ldap.NewSearchRequest("cn=Subschema", ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=subschema)", []string{"attributeTypes", "objectClasses"}, nil))
	require.NoError(t, err)
	defs := strings.Join(append(res.Entries[0].GetAttributeValues("attributeTypes"), res.Entries[0].GetAttributeValues("objectClasses")...), "\n")
	for _, name := range []string{"'scimbridgeOtherMail'", "'scimbridgeCostCenter'", "'scimbridgeDivision'", "'scimbridgePerson'"} {
		require.Contains(t, defs, name)
	}

	// The cn=config form: convert a plain configuration to slapd.d, add the LDIF offline, and
	// the schema entry is there with the same definitions.
	dir := t.TempDir()
	conf := filepath.Join(dir, "slapd.conf")
	const schemaDir = "/etc/ldap/schema"
	require.NoError(t, os.WriteFile(conf, []byte("include "+schemaDir+"/core.schema\ninclude "+schemaDir+"/cosine.schema\ninclude "+schemaDir+"/inetorgperson.schema\n"), 0o600))
	slapdD := filepath.Join(dir, "slapd.d")
	require.NoError(t, os.MkdirAll(slapdD, 0o700))
	out, err := exec.Command("/usr/sbin/slaptest", "-f", conf, "-F", slapdD).CombinedOutput()
	require.NoError(t, err, "%s", out)
	ldif := filepath.Join(filepath.Dir(ldaptest.OptionalSchema()), "scimbridge.ldif")
	out, err = exec.Command("/usr/sbin/slapadd", "-n0", "-F", slapdD, "-l", ldif).CombinedOutput()
	require.NoError(t, err, "%s", out)
	loaded, err := filepath.Glob(filepath.Join(slapdD, "cn=config", "cn=schema", "cn={*}scimbridge.ldif"))
	require.NoError(t, err)
	require.Len(t, loaded, 1, "the schema entry exists in cn=config")
	entry, err := os.ReadFile(loaded[0])
	require.NoError(t, err)
	schemaFile, err := os.ReadFile(ldaptest.OptionalSchema())
	require.NoError(t, err)
	for _, oid := range regexp.MustCompile(`2\.25\.[0-9]+\.[12]\.[0-9]+`).FindAllString(string(schemaFile), -1) {
		require.Contains(t, string(entry), oid, "the LDIF defines what the .schema file defines")
	}
}
