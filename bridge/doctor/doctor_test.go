package doctor_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/bridge"
	"github.com/scimbridge/scimbridge/bridge/doctor"
	"github.com/scimbridge/scimbridge/bridge/lease"
	"github.com/scimbridge/scimbridge/ldapstore/ldaptest"
	"github.com/scimbridge/scimbridge/targets/targettest"
)

func TestMain(m *testing.M) { os.Exit(ldaptest.RunMain(m, ldaptest.Options{})) }

const targetToken = "doctor-test-token-0123456789"

// setup is one directory, one SCIM target and a configuration pointing at both.
type setup struct {
	slapd  ldaptest.Options
	target string // "" = a targettest server accepting targetToken
	token  string // the token the provisioner sends; "" = targetToken
	extra  string // TOML appended to the configuration
	// before runs against the started slapd, e.g. to write something the log records.
	before func(t *testing.T, s *ldaptest.Server)
}

// seedUsers is LDIF for n users below ou=people.
func seedUsers(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "dn: uid=seed%d,ou=people,%s\nobjectClass: inetOrgPerson\nuid: seed%d\ncn: Seed %d\nsn: Seed\n\n", i, ldaptest.DefaultSuffix, i, i)
	}
	return b.String()
}

// write changes the directory as an admin would, so the accesslog has something recent.
func write(t *testing.T, s *ldaptest.Server) {
	t.Helper()
	require.NoError(t, s.LDIF(fmt.Sprintf("dn: uid=recent,%s\nobjectClass: inetOrgPerson\nuid: recent\ncn: Recent\nsn: Recent\n", s.PeopleDN)))
}

func (st setup) run(t *testing.T) []doctor.Result {
	t.Helper()
	s := ldaptest.Private(t, st.slapd)
	if st.before != nil {
		st.before(t, s)
	}
	dir := t.TempDir()
	target := st.target
	if target == "" {
		ts := targettest.NewServer(targettest.Options{BearerTokens: []string{targetToken}})
		t.Cleanup(ts.Close)
		target = ts.URL
	}
	token := st.token
	if token == "" {
		token = targetToken
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "ldap-password"), []byte(s.ServicePW+"\n"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "target-token"), []byte(token+"\n"), 0o600))
	cfg := fmt.Sprintf(`[state]
dir = %q
[ldap]
url = %q
bind_dn = %q
bind_password_file = "ldap-password"
base_dn = %q
[[inbound.token]]
name = "entra"
sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
[[provisioner]]
name = "saas"
url = %q
auth = "bearer"
token_file = "target-token"
groups = ["cn=saas-users,%s"]
%s
`, filepath.Join(dir, "state"), s.URL, s.ServiceDN, s.Suffix, target, s.GroupsDN, st.extra)
	return runConfig(t, dir, cfg)
}

// runConfig writes cfg to dir, loads it as the daemon does and runs doctor on it, logging
// the report.
func runConfig(t *testing.T, dir, cfg string) []doctor.Result {
	t.Helper()
	path := filepath.Join(dir, "scimbridge.toml")
	require.NoError(t, os.WriteFile(path, []byte(cfg), 0o600))
	c, err := bridge.LoadConfig(path)
	require.NoError(t, err)
	require.NoError(t, c.LoadSecrets())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res := doctor.Run(ctx, doctor.Options{Config: c, Logger: zerolog.Nop()})
	var b strings.Builder
	doctor.Print(&b, res)
	t.Log("\n" + b.String())
	return res
}

// groupSeed creates the provisioner's group, so that its scope check passes.
func groupSeed() string {
	return fmt.Sprintf("dn: cn=saas-users,ou=groups,%[1]s\nobjectClass: groupOfNames\ncn: saas-users\nmember: uid=seed0,ou=people,%[1]s\n\n", ldaptest.DefaultSuffix)
}

func only(t *testing.T, res []doctor.Result, status doctor.Status) []doctor.Result {
	t.Helper()
	var out []doctor.Result
	for _, r := range res {
		if r.Status == status {
			out = append(out, r)
		}
	}
	return out
}

// requireOneFail asserts that exactly one check failed, which one, and that its line names
// the fix.
func requireOneFail(t *testing.T, res []doctor.Result, check string, fix ...string) {
	t.Helper()
	fails := only(t, res, doctor.Fail)
	require.Len(t, fails, 1, "want exactly one FAIL line")
	require.Equal(t, check, fails[0].Check)
	line := fails[0].String()
	require.Contains(t, line, " — fix: ")
	for _, f := range fix {
		require.Contains(t, line, f)
	}
	require.Equal(t, doctor.Fail, doctor.Worst(res))
}

// good is the setup the README asks for, with cn=config readable so every check is exact,
// ppolicy loaded, and a recent write in the log.
func good() setup {
	return setup{
		slapd:  ldaptest.Options{ReadableConfig: true, PPolicy: true, Seed: seedUsers(3) + groupSeed()},
		before: write,
	}
}

// dump is every entry of the directory (as the rootdn sees it) and of its log (as the service
// account does), with every attribute.
func dump(t *testing.T, s *ldaptest.Server) string {
	t.Helper()
	var b strings.Builder
	for _, q := range [][3]string{{s.Suffix, s.RootDN, s.RootPW}, {"cn=accesslog", s.ServiceDN, s.ServicePW}} {
		out, err := exec.Command("ldapsearch", "-LLL", "-x", "-H", s.URL, "-D", q[1], "-w", q[2], "-b", q[0], "(objectClass=*)", "*", "+").CombinedOutput()
		require.NoError(t, err, "%s", out)
		b.Write(out)
	}
	return b.String()
}

func TestPasses(t *testing.T) {
	t.Parallel()
	st := good()
	var before string
	var slapd *ldaptest.Server
	st.before = func(t *testing.T, s *ldaptest.Server) {
		write(t, s)
		before, slapd = dump(t, s), s
	}
	res := st.run(t)
	require.Equal(t, before, dump(t, slapd), "doctor changes nothing in the directory or its log")
	require.Empty(t, only(t, res, doctor.Fail))
	require.Empty(t, only(t, res, doctor.Warn))
	require.Empty(t, only(t, res, doctor.Skip))
	require.Equal(t, doctor.Pass, doctor.Worst(res))
	var checks []string
	for _, r := range res {
		checks = append(checks, r.Check)
	}
	for _, want := range []string{
		"ldap.bind", "ldap.users.base_dn", "ldap.groups.base_dn", "changes.accesslog", "changes.accesslog.logops",
		"changes.accesslog.logpurge", "changes.accesslog.recent", "ldap.size_limit", "ldap.schema", "inbound.tls", "inbound.fence", `provisioner "saas"`, `provisioner "saas".clock`,
	} {
		require.Contains(t, checks, want)
	}
}

func TestWrongPassword(t *testing.T) {
	t.Parallel()
	st := good()
	st.before = func(_ *testing.T, s *ldaptest.Server) { s.ServicePW = "not-the-password" }
	res := st.run(t)
	requireOneFail(t, res, "ldap.bind", "bind_password_file", "ldappasswd")
	require.NotEmpty(t, only(t, res, doctor.Skip), "the checks that need the bind are skipped")
}

func TestMissingAccesslog(t *testing.T) {
	t.Parallel()
	st := good()
	st.slapd.NoAccesslog = true
	st.before = nil
	requireOneFail(t, st.run(t), "changes.accesslog", "load the accesslog overlay", "logops writes")
}

func TestAccesslogHiddenByACL(t *testing.T) {
	t.Parallel()
	st := good()
	st.slapd.HideAccesslog = true
	requireOneFail(t, st.run(t), "changes.accesslog", `access to dn.subtree="cn=accesslog" by dn.exact="cn=scimbridge,ou=services,dc=example,dc=org" read`)
}

func TestSizeLimit(t *testing.T) {
	t.Parallel()
	const fix = `limits dn.exact="cn=scimbridge,ou=services,dc=example,dc=org" size=unlimited`
	for _, tc := range []struct {
		name     string
		limit    int
		readable bool
		want     doctor.Status
		msg      string
	}{
		{"hit, cn=config readable", 3, true, doctor.Fail, "cut a paged search"},
		{"hit, cn=config unreadable", 3, false, doctor.Fail, "cut a paged search"},
		{"not hit yet, cn=config readable", 50, true, doctor.Fail, "limits the service account to 50 entries"},
		{"not hit yet, cn=config unreadable", 50, false, doctor.Warn, "cannot be seen yet"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st := good()
			st.slapd.LimitService, st.slapd.SizeLimit, st.slapd.ReadableConfig = true, tc.limit, tc.readable
			res := st.run(t)
			if tc.want == doctor.Fail {
				requireOneFail(t, res, "ldap.size_limit", fix, tc.msg)
				return
			}
			require.Empty(t, only(t, res, doctor.Fail))
			var got []doctor.Result
			for _, r := range res {
				if r.Check == "ldap.size_limit" {
					got = append(got, r)
				}
			}
			require.Len(t, got, 1)
			require.Equal(t, tc.want, got[0].Status)
			require.Contains(t, got[0].String(), tc.msg)
			require.Contains(t, got[0].String(), fix)
		})
	}
}

func TestMappingToAttributeTheSchemaLacks(t *testing.T) {
	t.Parallel()
	st := good()
	st.extra = "[provisioner.user_mapping]\ntitle = \"{{ .jobTitle }}\"\n"
	requireOneFail(t, st.run(t), "ldap.schema", `provisioner "saas": user_mapping`, `"jobTitle"`)

	st = good()
	st.extra = "[inbound.user_attributes]\ntitle = \"jobTitle\"\n"
	requireOneFail(t, st.run(t), "ldap.schema", `inbound.user_attributes "title"`, `"jobTitle"`)
}

func TestUnreachableTarget(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close()) // nothing listens there any more
	st := good()
	st.target = "http://" + addr + "/scim/v2"
	requireOneFail(t, st.run(t), `provisioner "saas"`, "cannot be reached", "check url, DNS, the firewall")
}

func TestTargetRejectsToken(t *testing.T) {
	t.Parallel()
	st := good()
	st.token = "a-token-the-target-does-not-know"
	requireOneFail(t, st.run(t), `provisioner "saas"`, "rejected the credentials", "token_file")
}

func TestLogOpsWithoutWrites(t *testing.T) {
	t.Parallel()
	// logops delete: adds and modifies are not recorded. With cn=config readable the setting
	// itself is the failure; without it, the comparison of recent changes with the log.
	st := good()
	st.slapd.LogOps = "delete"
	requireOneFail(t, st.run(t), "changes.accesslog.logops", "logops writes")

	st.slapd.ReadableConfig = false
	st.before = func(t *testing.T, s *ldaptest.Server) {
		// A logged delete starts the log; a modify a second later (timestamps have whole
		// seconds) is not logged.
		require.NoError(t, s.LDIF(fmt.Sprintf("dn: uid=seed2,%s\nchangetype: delete\n", s.PeopleDN)))
		time.Sleep(2100 * time.Millisecond)
		require.NoError(t, s.LDIF(fmt.Sprintf("dn: uid=seed1,%s\nchangetype: modify\nreplace: title\ntitle: Engineer\n", s.PeopleDN)))
	}
	requireOneFail(t, st.run(t), "changes.accesslog.recent", "logops writes")
}

func TestReadOnlyServiceAccount(t *testing.T) {
	t.Parallel()
	st := good()
	st.slapd.ReadOnlyService = true
	res := st.run(t)
	fails := only(t, res, doctor.Fail)
	require.Len(t, fails, 2)
	require.Equal(t, "ldap.users.base_dn", fails[0].Check)
	require.Equal(t, "ldap.groups.base_dn", fails[1].Check)
	require.Contains(t, fails[0].String(), `access to dn.subtree="ou=people,dc=example,dc=org" by dn.exact="cn=scimbridge,ou=services,dc=example,dc=org" write`)
}

func TestMissingGroup(t *testing.T) {
	t.Parallel()
	st := good()
	st.slapd.Seed = seedUsers(3)
	requireOneFail(t, st.run(t), `provisioner "saas".scope`, "correct the DN in groups")
}

// TestOperatorsWithinReach: an account or group the directory lets write, lying below the
// users or groups bases unprotected, is one FAIL line naming the key that fences it; fenced,
// it passes.
func TestOperatorsWithinReach(t *testing.T) {
	t.Parallel()
	people, groups := "ou=people,"+ldaptest.DefaultSuffix, "ou=groups,"+ldaptest.DefaultSuffix
	helpdesk := "cn=helpdesk," + groups
	admins := "cn=admins,ou=services," + ldaptest.DefaultSuffix
	groupSeeds := groupSeed() + fmt.Sprintf("dn: %s\nobjectClass: groupOfNames\ncn: helpdesk\nmember: uid=seed2,%s\n\n", helpdesk, people) +
		fmt.Sprintf("dn: %s\nobjectClass: groupOfNames\ncn: admins\nmember: uid=seed1,%s\n\n", admins, people)
	for _, tc := range []struct {
		name, access, extra string
		fix                 []string // nil: passes
	}{
		{
			name:   "an account",
			access: fmt.Sprintf(`access to dn.subtree=%q by dn.exact="uid=seed1,%s" write by * break`, people, people),
			fix:    []string{"inbound.protected_dns", "uid=seed1", "reset its password"},
		},
		{
			name:   "an account, protected",
			access: fmt.Sprintf(`access to dn.subtree=%q by dn.exact="uid=seed1,%s" write by * break`, people, people),
			extra:  fmt.Sprintf("[inbound]\nprotected_dns = [\"uid=seed1,%s\"]\n", people),
		},
		{
			name:   "an account, granted on other entries only",
			access: `access to dn.subtree="ou=services,` + ldaptest.DefaultSuffix + `" by dn.exact="uid=seed1,` + people + `" write by * break`,
		},
		{
			name:   "an account, granted read only",
			access: fmt.Sprintf(`access to * by dn.exact="uid=seed1,%s" read by * break`, people),
		},
		{
			name:   "a group within reach",
			access: fmt.Sprintf(`access to * by group.exact=%q manage by * break`, helpdesk),
			fix:    []string{"inbound.protected_groups", helpdesk, "add itself to it"},
		},
		{
			name:   "a group within reach, protected",
			access: fmt.Sprintf(`access to * by group.exact=%q manage by * break`, helpdesk),
			extra:  fmt.Sprintf("[inbound]\nprotected_groups = [%q]\n", helpdesk),
		},
		{
			name:   "a member of a group outside the bases",
			access: fmt.Sprintf(`access to * by group/groupOfNames/member=%q =wrscx by * break`, admins),
			fix:    []string{"inbound.protected_groups (add \"" + admins + "\")", "uid=seed1"},
		},
		{
			name:  "a protected group that does not exist",
			extra: fmt.Sprintf("[inbound]\nprotected_groups = [\"cn=nope,%s\"]\n", groups),
			fix:   []string{"create the group, or correct its DN in inbound.protected_groups", "does not exist"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st := good()
			st.slapd.Seed = seedUsers(3) + groupSeeds
			st.slapd.Access = tc.access
			st.extra = tc.extra
			res := st.run(t)
			if tc.fix == nil {
				require.Empty(t, only(t, res, doctor.Fail))
				return
			}
			check := "inbound.fence.operators"
			if strings.Contains(tc.name, "does not exist") {
				check = "inbound.fence"
			}
			requireOneFail(t, res, check, tc.fix...)
		})
	}
}

// runOn runs doctor against a 389-DS or AD test server, with the users below usersBase.
func runOn(t *testing.T, s *ldaptest.Server, usersBase string) []doctor.Result {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "ldap-password"), []byte(s.ServicePW+"\n"), 0o600))
	url, ca := s.URL, ""
	if s.LDAPSURL != "" {
		url, ca = s.LDAPSURL, fmt.Sprintf("ca_file = %q", s.CAFile)
	}
	cfg := fmt.Sprintf(`[state]
dir = %q
[ldap]
url = %q
%s
bind_dn = %q
bind_password_file = "ldap-password"
base_dn = %q
[ldap.users]
base_dn = %q
[ldap.groups]
base_dn = %q
[[inbound.token]]
name = "entra"
sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
`, filepath.Join(dir, "state"), url, ca, s.ServiceDN, s.Suffix, usersBase, s.GroupsDN)
	return runConfig(t, dir, cfg)
}

// checked is the results of the checks named check or below it (check.*).
func checked(res []doctor.Result, check string) []doctor.Result {
	var out []doctor.Result
	for _, r := range res {
		if r.Check == check || strings.HasPrefix(r.Check, check+".") {
			out = append(out, r)
		}
	}
	return out
}

// TestADOperatorsWithinReach: on Active Directory, the accounts it marks adminCount=1
// (Administrator, the members of Domain Admins…) are operators: a users base that holds
// them unprotected is a FAIL naming inbound.protected_dns; the OU the tests use is clean,
// and the checks written for slapd (size limits, ppolicy) speak of AD's own rules.
func TestADOperatorsWithinReach(t *testing.T) {
	t.Parallel()
	s := ldaptest.SharedKind(t, ldaptest.KindAD)
	admin := "CN=Administrator,CN=Users," + s.Suffix
	var lines []string
	for _, r := range checked(runOn(t, s, "CN=Users,"+s.Suffix), "inbound.fence") {
		require.Equal(t, doctor.Fail, r.Status, "%s", r)
		lines = append(lines, r.String())
	}
	require.Contains(t, strings.Join(lines, "\n"), fmt.Sprintf("%q may write the directory (adminCount=1)", admin))
	require.Contains(t, strings.Join(lines, "\n"), "add it to inbound.protected_dns")

	res := runOn(t, s, s.PeopleDN)
	require.Empty(t, only(t, res, doctor.Fail))
	fence := checked(res, "inbound.fence")
	require.Len(t, fence, 1)
	require.Equal(t, doctor.Pass, fence[0].Status, "%s", fence[0])
	require.Contains(t, fence[0].String(), "accounts with adminCount=1")
	for _, check := range []string{"ldap.size_limit", "ldap.overlays.disable"} {
		got := checked(res, check)
		require.Len(t, got, 1, check)
		require.Equal(t, doctor.Pass, got[0].Status, "%s", got[0])
	}
}

// TestDS389: on 389 Directory Server the service account's own limits are read, a disabled
// user is locked by nsAccountLock, and the operators cannot be listed (no cn=config): said so.
func TestDS389(t *testing.T) {
	t.Parallel()
	s := ldaptest.SharedKind(t, ldaptest.Kind389DS)
	res := runOn(t, s, s.PeopleDN)
	require.Empty(t, only(t, res, doctor.Fail))
	for _, check := range []string{"ldap.size_limit", "ldap.overlays.disable", "inbound.fence"} {
		got := checked(res, check)
		require.NotEmpty(t, got, check)
		require.Equal(t, doctor.Pass, got[0].Status, "%s", got[0])
	}
	require.Contains(t, checked(res, "ldap.size_limit")[0].String(), "nsSizeLimit/nsPagedSizeLimit -1")
	ops := checked(res, "inbound.fence.operators")
	require.Len(t, ops, 1)
	require.Equal(t, doctor.Skip, ops[0].Status)
}

// TestHALease: with [ha], the lease entry is checked on ha.lease_url: a missing entry whose
// parent exists passes (the first instance creates it), an entry held by a running instance
// passes naming the holder, and a lease_dn below nothing fails naming the fix. Nothing is
// written.
func TestHALease(t *testing.T) {
	t.Parallel()
	st := good()
	st.extra = "[ha]\nenabled = true\n"
	res := st.run(t)
	require.Empty(t, only(t, res, doctor.Fail))
	var lines []string
	for _, r := range res {
		if r.Check == "ha.lease" {
			lines = append(lines, r.String())
		}
	}
	require.Len(t, lines, 1)
	require.Contains(t, lines[0], "no lease entry yet: the first instance creates")

	st.before = func(t *testing.T, s *ldaptest.Server) {
		write(t, s)
		require.NoError(t, s.LDIF(fmt.Sprintf("dn: cn=scimbridge-lease,%s\nobjectClass: applicationProcess\ncn: scimbridge-lease\ndescription: %s\n", s.PeopleDN,
			lease.Value{Holder: "host-a:/var/lib/scimbridge", Term: 3, Expires: time.Now().Add(30 * time.Second)}.Encode())))
	}
	res = st.run(t)
	require.Empty(t, only(t, res, doctor.Fail))
	var found bool
	for _, r := range res {
		if r.Check == "ha.lease" {
			found = true
			require.Contains(t, r.String(), "held by host-a:/var/lib/scimbridge, term 3")
		}
	}
	require.True(t, found)

	st = good()
	st.extra = "[ha]\nenabled = true\nlease_dn = \"cn=scimbridge-lease,ou=nowhere," + ldaptest.DefaultSuffix + "\"\n"
	requireOneFail(t, st.run(t), "ha.lease", `create "ou=nowhere,`)
}
