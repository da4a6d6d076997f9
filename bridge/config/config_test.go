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
	// The example names secret files next to it; provide them.
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
			`provisioner "okta": fliter: unknown key`,
			`provisioner "other": type: unknown value "scm" (want "log" or "scim")`,
			`provisioner "dry": url: unknown key`,
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
