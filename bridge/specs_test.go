package bridge_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/bridge"
	"github.com/scimbridge/scimbridge/targets"
)

const specsConfig = `
[ldap]
url = "ldap://127.0.0.1:1"
bind_dn = "cn=bridge,dc=example,dc=org"
bind_password = "pw"
base_dn = "dc=example,dc=org"
[inbound]
enabled = false
[[provisioner]]
name = "app"
url = "https://app.example.org/scim/v2"
auth = "bearer"
token = "%s"
groups = ["cn=app,ou=groups,dc=example,dc=org"]
[provisioner.user_mapping]
userName = "{{ .mail }}"
`

// specHashes writes data to the configuration file in dir, loads it and returns each
// provisioner's Hash.
func specHashes(t *testing.T, dir, data string) map[string]string {
	t.Helper()
	path := filepath.Join(dir, "scimbridge.toml")
	require.NoError(t, os.WriteFile(path, []byte(data), 0o600))
	cfg, err := bridge.LoadConfig(path)
	require.NoError(t, err)
	specs, opened, err := bridge.Specs(cfg, zerolog.Nop())
	require.NoError(t, err)
	t.Cleanup(func() {
		for _, tg := range opened {
			if c, ok := tg.(targets.Closer); ok {
				_ = c.Close()
			}
		}
	})
	out := map[string]string{}
	for _, s := range specs {
		out[s.Name] = s.Hash
	}
	return out
}

// TestProvisionerHashIsCanonical: two loads of the same file give the same hash (a reload
// that changes nothing rebuilds nothing), and every change of the provisioner's effective
// configuration, a rotated literal secret included, gives another.
func TestProvisionerHashIsCanonical(t *testing.T) {
	dir := t.TempDir()
	base := specHashes(t, dir, fmtConfig(specsConfig, "secret-one"))
	require.NotEmpty(t, base["app"])
	require.Equal(t, base, specHashes(t, dir, fmtConfig(specsConfig, "secret-one")), "the same file")
	for name, data := range map[string]string{
		"rotated literal token": fmtConfig(specsConfig, "secret-two"),
		"target key":            fmtConfig(specsConfig+"\n", "secret-one", "https://app.example.org/scim/v2", "https://other.example.org/scim/v2"),
		"scope":                 fmtConfig(specsConfig, "secret-one", "cn=app,", "cn=app2,"),
		"mapping":               fmtConfig(specsConfig, "secret-one", "{{ .mail }}", "{{ .uid }}"),
		"users base":            fmtConfig(specsConfig+"[ldap.users]\nbase_dn = \"ou=staff,dc=example,dc=org\"\n", "secret-one"),
	} {
		require.NotEqual(t, base["app"], specHashes(t, dir, data)["app"], name)
	}
}

// fmtConfig fills the token into tmpl and applies old → new replacements.
func fmtConfig(tmpl, token string, replace ...string) string {
	s := fmt.Sprintf(tmpl, token)
	for i := 0; i+1 < len(replace); i += 2 {
		s = strings.ReplaceAll(s, replace[i], replace[i+1])
	}
	return s
}
