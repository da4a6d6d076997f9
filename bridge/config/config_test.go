package config_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/bridge/config"
	"github.com/scimbridge/scimbridge/targets"
	"github.com/scimbridge/scimbridge/targets/logtarget"
	"github.com/scimbridge/scimbridge/targets/scim"
)

var registry = config.Registry{
	"scim": func() targets.Config { return scim.NewConfig() },
	"log":  func() targets.Config { return logtarget.NewConfig() },
}

func TestExampleConfigLoads(t *testing.T) {
	dir := t.TempDir()
	example, err := os.ReadFile("../../etc/scimbridge.example.toml")
	require.NoError(t, err)
	// The example names secret files next to it and in systemd's credentials directory
	// (LoadCredential=); provide them.
	t.Setenv("CREDENTIALS_DIRECTORY", dir)
	for _, f := range []string{"ldap-password", "entra-next.token", "saas-client-secret"} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, f), []byte("a-secret-of-some-length\n"), 0o600))
	}
	path := filepath.Join(dir, "scimbridge.toml")
	require.NoError(t, os.WriteFile(path, example, 0o600))
	cfg, err := config.Load(path, registry)
	require.NoError(t, err)
	require.NoError(t, cfg.LoadSecrets())
	require.Len(t, cfg.Provisioners, 2)
	require.Equal(t, "a-secret-of-some-length", cfg.LDAP.BindPassword.Reveal())
	require.Len(t, cfg.Inbound.Tokens, 2)
	require.Len(t, cfg.Inbound.Tokens[1].SHA256, 64, "a token file is hashed at load")
}

func TestGoodConfigDefaults(t *testing.T) {
	cfg, err := config.Load("testdata/minimal.good.toml", registry)
	require.NoError(t, err)
	require.Equal(t, "ou=people,dc=example,dc=org", cfg.LDAP.Users.BaseDN)
	require.Equal(t, "ou=groups,dc=example,dc=org", cfg.LDAP.Groups.BaseDN)
	require.Equal(t, "uid", cfg.LDAP.Users.RDNAttribute)
	require.Equal(t, "member", cfg.LDAP.Groups.MemberAttribute)
	require.Equal(t, []string{"ldap://127.0.0.1:389"}, cfg.LDAP.URLs)
	require.Empty(t, cfg.LDAP.BindPassword.Reveal(), "secrets are read by LoadSecrets, not Load")
	require.NoError(t, cfg.LoadSecrets())
	require.Equal(t, "hunter2-but-longer", cfg.LDAP.BindPassword.Reveal())
	require.Equal(t, "/scim/v2", cfg.Inbound.BasePath)
	require.True(t, cfg.Inbound.Enabled)
	require.Empty(t, cfg.Warnings)
}

func TestBadConfigs(t *testing.T) {
	for file, expected := range map[string][]string{
		"three-problems.bad.toml": {
			`ldap.colour: unknown key`,
			`ldap.dialect: unknown value "openldapp" (want "auto", "openldap", "389ds", "ad" or "generic")`,
			`ldap.base_dn: required`,
		},
		"syntax.bad.toml": {`line 2:`},
		"provisioner.bad.toml": {
			`provisioner "okta": deprovision: unknown value "nuke" (want "disable" or "delete")`,
			`provisioner "okta": create_lookup: unknown value "post-first" (want "lookup" or "conflict")`,
			`provisioner "okta": rate_limit: must be positive (or left out: adaptive), got -5`,
			`provisioner "okta": concurrency: must be between 1 and 64 (or left out: 16), got 65`,
			`provisioner "okta": fliter: unknown key`,
			`provisioner "other": type: unknown value "scm" (want "log" or "scim")`,
			`provisioner "dry": url: unknown key`,
		},
		"fence.bad.toml": {
			`inbound.protected_dns: "not a dn" is not a DN`,
			`inbound.protected_groups: "admins" is not a DN`,
			`inbound.adopt_existing: only has a meaning with inbound.managed_only = true`,
			`inbound.max_members_per_request: must be between 1 and 1000000, got 0`,
			`inbound.max_concurrent_requests: must be between 1 and 1024, got 5000`,
			`inbound.public_url: "ftp://scim.example.org": want an https:// URL`,
			`inbound.trusted_proxies: "proxy.example.org" is neither an IP address nor a CIDR range`,
			`inbound.allow_sensitive_attributes: "title" is not a sensitive attribute`,
			`inbound.scope_filter.users: "(employeeType=entra" is not a valid LDAP filter`,
			`inbound.user_attributes: "nickName" → 1.3.6.1.1.1.1.4: refused`,
			`inbound.extension: "urn:example:ext:2.0:User:uidn" → uidNumber: refused`,
		},
		"secrets.bad.toml": {
			`ldap: bind_password and bind_password_file: set at most one`,
			`ldap.start_tls: does not go with "ldaps://ldap.example.org"`,
			`ldap.pool_size: must be between 1 and 256, got 0`,
			`ldap.timeout: must be a positive duration`,
			`inbound.tls_cert_file and inbound.tls_key_file: set both or neither`,
			`inbound.max_body_bytes: must be at least 1024, got 10`,
			`inbound.disabled_base_dn: required when inbound.disable = "move"`,
			`inbound.token[0].sha256: want 64 hex digits`,
			`inbound.token[1].name: "entra" is used twice`,
		},
	} {
		t.Run(file, func(t *testing.T) {
			_, err := config.Load(filepath.Join("testdata", file), registry)
			require.Error(t, err)
			msg := err.Error()
			for _, line := range strings.Split(msg, "\n") {
				require.True(t, strings.HasPrefix(line, "parsing testdata/"+file+": "), line)
			}
			for _, want := range expected {
				require.Contains(t, msg, want)
			}
		})
	}
}

// TestElideSecrets: a loaded config marshalled or logged shows no secret.
func TestElideSecrets(t *testing.T) {
	t.Setenv("SCIMBRIDGE_LDAP_BIND_PASSWORD", "from-the-environment-123")
	data := []byte(`
[ldap]
url = "ldap://127.0.0.1"
bind_dn = "cn=x,dc=example,dc=org"
base_dn = "dc=example,dc=org"
[inbound]
enabled = false
[[provisioner]]
name = "p"
url = "https://x.example.com/scim"
auth = "bearer"
token = "bearer-token-literal-456"
`)
	cfg, err := config.Parse(data, t.TempDir(), registry)
	require.NoError(t, err)
	require.Equal(t, "from-the-environment-123", cfg.LDAP.BindPassword.Reveal())
	require.NotEmpty(t, cfg.Warnings, "a literal token is warned about")

	var buf bytes.Buffer
	require.NoError(t, toml.NewEncoder(&buf).Encode(cfg))
	js, err := json.Marshal(cfg)
	require.NoError(t, err)
	var logged bytes.Buffer
	lg := zerolog.New(&logged)
	lg.Debug().Interface("config", cfg).Msg("loaded")
	for name, out := range map[string]string{
		"toml": buf.String(), "json": string(js), "zerolog": logged.String(),
		"%v": fmt.Sprintf("%v", cfg), "%+v": fmt.Sprintf("%+v", cfg), "%#v": fmt.Sprintf("%#v", cfg),
	} {
		require.NotContains(t, out, "from-the-environment-123", name)
		require.NotContains(t, out, "bearer-token-literal-456", name)
	}
}

func TestLoadSecretsReportsEveryMissingFile(t *testing.T) {
	data := []byte(`
[ldap]
url = "ldap://127.0.0.1"
bind_dn = "cn=x,dc=example,dc=org"
bind_password_file = "nope.txt"
base_dn = "dc=example,dc=org"
[[inbound.token]]
name = "a"
file = "missing.token"
`)
	cfg, err := config.Parse(data, t.TempDir(), registry)
	require.NoError(t, err)
	err = cfg.LoadSecrets()
	require.ErrorContains(t, err, "ldap.bind_password_file: open")
	require.ErrorContains(t, err, `inbound.token "a": file: open`)
}

// TestWarnings: settings that work but expose something are named, each with its key: plain
// LDAP to another machine, http:// credentials of a target, an admin listener off loopback,
// SCIM bases that take in the whole tree or the bridge's own account.
func TestWarnings(t *testing.T) {
	const base = `
[ldap]
bind_dn = "cn=scimbridge,ou=people,dc=example,dc=org"
bind_password = "x"
base_dn = "dc=example,dc=org"
[[inbound.token]]
name = "entra"
sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
`
	for name, tc := range map[string]struct {
		toml string
		want []string
		none []string
	}{
		"plain ldap to another machine": {
			toml: "[ldap]\nurl = \"ldap://ldap.example.org\"\n",
			want: []string{`ldap.url: "ldap://ldap.example.org" is plain LDAP to another machine without start_tls`, "SCIM password writes are refused"},
		},
		"loopback, ldapi, ldaps and start_tls are protected": {
			toml: "[ldap]\nurls = [\"ldap://127.0.0.1:389\", \"ldap://[::1]:389\", \"ldapi://%2Fvar%2Frun%2Fslapd%2Fldapi\", \"ldap://localhost\"]\n",
			none: []string{"ldap.url"},
		},
		"admin off loopback": {
			toml: "[admin]\nlisten = \"0.0.0.0:9480\"\n[ldap]\nurl = \"ldaps://ldap.example.org\"\n",
			want: []string{`admin.listen: "0.0.0.0:9480" is not a loopback address: /metrics and /status are open`},
		},
		"admin off loopback with a token": {
			toml: "[admin]\nlisten = \"10.1.2.3:9480\"\ntoken_file = \"admin.token\"\n[ldap]\nurl = \"ldaps://ldap.example.org\"\n",
			want: []string{`/metrics and /status need admin.token_file's token`},
		},
		"the whole tree and the bind DN": {
			toml: "[ldap]\nurl = \"ldaps://ldap.example.org\"\n[ldap.groups]\nbase_dn = \"dc=example,dc=org\"\n",
			want: []string{
				`ldap.groups.base_dn: "dc=example,dc=org" is the whole directory (ldap.base_dn)`,
				`ldap.users.base_dn: "ou=people,dc=example,dc=org" contains the bridge's own account (ldap.bind_dn)`,
			},
		},
		"http credentials of a target": {
			toml: "[ldap]\nurl = \"ldaps://ldap.example.org\"\n[[provisioner]]\nname = \"okta\"\nurl = \"http://okta.example.org/scim\"\nauth = \"oauth2\"\n" +
				"token_url = \"http://login.example.org/token\"\nclient_id = \"c\"\nclient_secret_file = \"s\"\n",
			want: []string{
				`provisioner "okta": url: "http://okta.example.org/scim" is plain http to another machine`,
				`provisioner "okta": token_url: "http://login.example.org/token" is plain http to another machine: the OAuth2 client secret`,
			},
		},
	} {
		t.Run(name, func(t *testing.T) {
			// The case's [ldap] table goes first; the shared keys are merged in after it.
			text := mergeLDAP(tc.toml, base)
			cfg, err := config.Parse([]byte(text), t.TempDir(), registry)
			require.NoError(t, err)
			all := strings.Join(cfg.Warnings, "\n")
			for _, w := range tc.want {
				require.Contains(t, all, w)
			}
			for _, w := range tc.none {
				require.NotContains(t, all, w)
			}
		})
	}
}

// mergeLDAP puts the [ldap] keys of base into the [ldap] table of extra (TOML allows a table
// once), followed by the rest of base.
func mergeLDAP(extra, base string) string {
	ldapKeys, rest, _ := strings.Cut(strings.TrimPrefix(base, "\n[ldap]\n"), "[[inbound.token]]")
	rest = "[[inbound.token]]" + rest
	if strings.Contains(extra, "[ldap]\n") {
		extra = strings.Replace(extra, "[ldap]\n", "[ldap]\n"+ldapKeys, 1)
	} else {
		extra = "[ldap]\n" + ldapKeys + extra
	}
	return extra + rest
}

// TestProtectedTransport: what counts as keeping passwords off the network.
func TestProtectedTransport(t *testing.T) {
	for url, want := range map[string]bool{
		"ldaps://ldap.example.org":             true,
		"ldapi://%2Fvar%2Frun%2Fslapd%2Fldapi": true,
		"ldap://127.0.0.1:389":                 true,
		"ldap://127.8.9.1":                     true,
		"ldap://[::1]:389":                     true,
		"ldap://localhost":                     true,
		"ldap://ldap.example.org":              false,
		"ldap://10.0.0.5:389":                  false,
	} {
		require.Equal(t, want, config.ProtectedTransport(url, false), url)
		require.True(t, config.ProtectedTransport(url, true) || strings.HasPrefix(url, "ldaps"), url)
	}
}

// TestDialectDefaults: with dialect = "auto" the unset [ldap.users] and [ldap.groups] keys
// take the defaults of the dialect the directory reports; keys the file sets, and a
// configured dialect, are kept.
func TestDialectDefaults(t *testing.T) {
	cfg, err := config.Load("testdata/minimal.good.toml", registry)
	require.NoError(t, err)
	require.Equal(t, "uid", cfg.LDAP.Users.RDNAttribute, "OpenLDAP's until the dialect is known")
	cfg.ApplyDialect("ad")
	require.Equal(t, "CN=Users,dc=example,dc=org", cfg.LDAP.Users.BaseDN)
	require.Equal(t, []string{"user"}, cfg.LDAP.Users.ObjectClasses)
	require.Equal(t, "cn", cfg.LDAP.Users.RDNAttribute)
	require.Contains(t, cfg.LDAP.Users.Filter, "(objectCategory=person)")
	require.Equal(t, []string{"group"}, cfg.LDAP.Groups.ObjectClasses)
	require.Equal(t, "member", cfg.LDAP.Groups.MemberAttribute)
	cfg.ApplyDialect("389ds")
	require.Equal(t, "ou=people,dc=example,dc=org", cfg.LDAP.Users.BaseDN, "applied again from what the file says")
	require.Equal(t, []string{"inetOrgPerson"}, cfg.LDAP.Users.ObjectClasses)

	data, err := os.ReadFile("testdata/minimal.good.toml")
	require.NoError(t, err)
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "ldap-password"), []byte("x"), 0o600))
	withUsers := strings.Replace(string(data), "[ldap]", "[ldap.users]\nbase_dn = \"ou=staff,dc=example,dc=org\"\n[ldap]", 1)
	cfg, err = config.Parse([]byte(withUsers), dir, registry)
	require.NoError(t, err)
	cfg.ApplyDialect("ad")
	require.Equal(t, "ou=staff,dc=example,dc=org", cfg.LDAP.Users.BaseDN, "the file's key is kept")
	require.Equal(t, "cn", cfg.LDAP.Users.RDNAttribute)

	forced := strings.Replace(string(data), "[ldap]", "[ldap]\ndialect = \"openldap\"", 1)
	cfg, err = config.Parse([]byte(forced), dir, registry)
	require.NoError(t, err)
	cfg.ApplyDialect("ad")
	require.Equal(t, "uid", cfg.LDAP.Users.RDNAttribute, "a configured dialect wins")
}
