package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/ldapstore/ldaptest"
)

// sections splits deb-install.sh's report into its "== name" sections.
func sections(out string) map[string]string {
	got := map[string]string{}
	name := ""
	for _, line := range strings.Split(out, "\n") {
		if n, ok := strings.CutPrefix(line, "== "); ok {
			name = n
			continue
		}
		got[name] += line + "\n"
	}
	return got
}

// TestDebianPackage builds the package with `make deb`, installs it into a throwaway copy of
// this machine's root (a private mount namespace with an overlay over /, so nothing on the
// machine changes) and checks what an admin gets: the files, the scimbridge user, the
// configuration as a conffile that survives a reinstall, a unit systemd-analyze accepts, a
// service that is not enabled, a working `scimbridge doctor` against a real directory, and a
// clean purge.
func TestDebianPackage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and installs the Debian package: not in -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("the install test needs root for its private mount namespace (CI runs as root; or run `sudo make test`)")
	}
	for _, tool := range []string{"unshare", "chroot", "dpkg", "systemd-analyze", "make"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed: `make deps` installs what the package test needs", tool)
		}
	}
	s := ldaptest.Shared(t)
	repo, err := filepath.Abs("..")
	require.NoError(t, err)
	debDir := t.TempDir()
	out, err := exec.Command("make", "-C", repo, "deb", "DEB_DIR="+debDir).CombinedOutput()
	require.NoError(t, err, "make deb:\n%s", out)
	debs, err := filepath.Glob(filepath.Join(debDir, "scimbridge_*_*.deb"))
	require.NoError(t, err)
	require.Len(t, debs, 1, "make deb makes one package")
	require.Regexp(t, `^scimbridge_(\d+\.\d+\.\d+|0\.0\.0~git\d{8}\.[0-9a-f]+)_[a-z0-9]+\.deb$`, filepath.Base(debs[0]))

	// A configuration for the test directory, for the packaged binary's doctor.
	doctorDir := t.TempDir()
	cfg, _, _ := baseConfig(t, s, doctorDir, "[inbound]\nenabled = false\n")
	require.NoError(t, os.WriteFile(filepath.Join(doctorDir, "scimbridge.toml"), []byte(cfg), 0o600))

	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "testdata/deb-install.sh", debs[0], t.TempDir(), doctorDir)
	raw, err := cmd.CombinedOutput()
	report := string(raw)
	require.NoError(t, err, "deb-install.sh:\n%s", report)
	t.Log("\n" + report)
	sec := sections(report)

	require.Equal(t, "no user\n", sec["before"], "the machine's own root is untouched")
	require.Contains(t, sec["install"], "Setting up scimbridge")
	require.Regexp(t, `^scimbridge:x:\d+:\d+:scimbridge provisioning bridge:/var/lib/scimbridge:/usr/sbin/nologin\n$`, sec["user"])
	for _, want := range []string{
		"/usr/bin/scimbridge root:root 755",
		"/usr/lib/systemd/system/scimbridge.service root:root 644",
		"/usr/lib/sysusers.d/scimbridge.conf root:root 644",
		"/etc/scimbridge/scimbridge.toml root:scimbridge 640",
		"/etc/scimbridge root:scimbridge 750",
		"/usr/share/doc/scimbridge/README.md root:root 644",
		"/usr/share/doc/scimbridge/changelog.Debian.gz root:root 644",
		"/usr/share/scimbridge/prometheus/scimbridge.rules.yml root:root 644",
		"/usr/share/scimbridge/grafana/scimbridge.json root:root 644",
		"/usr/share/scimbridge/schema/scimbridge.schema root:root 644",
		"/usr/share/scimbridge/schema/scimbridge.ldif root:root 644",
		"/usr/share/scimbridge/schema/scimbridge-389ds.ldif root:root 644",
		"/usr/share/scimbridge/schema/60scimbridge.ldif root:root 644",
		"/usr/share/scimbridge/schema/scimbridge-ad.ldif root:root 644",
		"/usr/share/doc/scimbridge/examples/scimbridge.service.d/allow-network.conf root:root 644",
	} {
		require.Contains(t, sec["files"], want+"\n")
	}
	require.Regexp(t, `^ /etc/scimbridge/scimbridge.toml [0-9a-f]{32}\n`, sec["conffiles"])
	require.Equal(t, "not enabled\n", sec["enabled"], "installing does not enable or start the service")
	require.Equal(t, "verify ok\n", sec["verify"], "systemd-analyze verify accepts the unit without a warning")
	require.Contains(t, sec["version"], "scimbridge ")
	require.Contains(t, sec["doctor"], "PASS ldap.bind: ")
	require.Contains(t, sec["doctor"], "PASS changes.accesslog: ")
	require.Contains(t, sec["doctor"], "doctor exit 0\n")
	require.Equal(t, "# an admin's edit\n", sec["reinstall"], "a reinstall keeps the admin's configuration")
	require.Equal(t, "binary removed\nconfiguration removed\n", sec["purge"])
	_, err = os.Stat("/usr/lib/sysusers.d/scimbridge.conf")
	require.True(t, os.IsNotExist(err), "nothing was installed on the machine itself")
}
