package bridge

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/bridge/config"
	"github.com/scimbridge/scimbridge/ldapstore/ldaptest"
)

// DaemonTestConfig is a configuration for s with a dry-run provisioner (so the change reader
// and the outbound engine run), no admin listener and extra TOML appended (e.g. an [inbound]
// table; the inbound server is off otherwise). Shared by the internal and external tests.
func DaemonTestConfig(t testing.TB, s *ldaptest.Server, extra string) *config.Config {
	t.Helper()
	if extra == "" {
		extra = "[inbound]\nenabled = false\n"
	}
	cfg, err := config.Parse([]byte(`
[state]
dir = "state"
[admin]
listen = ""
[ldap]
url = "`+s.URL+`"
bind_dn = "`+s.ServiceDN+`"
bind_password = "`+s.ServicePW+`"
base_dn = "`+s.Suffix+`"
[[provisioner]]
name = "dry-run"
type = "log"
`+extra), t.TempDir(), Targets)
	require.NoError(t, err)
	return cfg
}
