package dirserver

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/template"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// Debian's 389 Directory Server (389-ds-base).
const (
	dscreatePath = "/usr/sbin/dscreate"
	nsSlapdPath  = "/usr/sbin/ns-slapd"
	dsInstance   = "scimbridge"
	// DefaultDirectoryManagerPW is the password of cn=Directory Manager in a private 389-DS.
	DefaultDirectoryManagerPW = "rootsecret"
	// ChangelogSuffix is where 389-DS's retro changelog lives.
	ChangelogSuffix = "cn=changelog"
	ds389Timeout    = 60 * time.Second
)

// Install389Hint tells a developer how to get the 389-DS tests to run.
const Install389Hint = "389 Directory Server is not installed: run `make test` (it installs 389-ds-base with apt-get), " +
	"or `apt-get install -y --no-install-recommends 389-ds-base`; the 389-DS tests also need root"

// Installed389 reports whether Debian's 389-ds-base is on this machine and the tests may run
// it (dscreate needs root).
func Installed389() bool {
	for _, p := range []string{dscreatePath, nsSlapdPath} {
		if _, err := os.Stat(p); err != nil {
			return false
		}
	}
	return os.Geteuid() == 0
}

// defaultsInf is dscreate's defaults.inf with every path below the private prefix, no
// systemd, and the server running as root (so that the parent-death signal that ends it with
// the test binary survives: ns-slapd would clear it when it drops to another user).
var defaultsInf = template.Must(template.New("defaults.inf").Parse(`[slapd]
product = 389 Directory Server
version = 2
asan_enabled = 0
enable_rust = off
with_systemd = 0
with_selinux =
prefix = {{.P}}
bin_dir = /usr/bin
sbin_dir = /usr/sbin
lib_dir = /usr/lib/{{.Triplet}}
data_dir = /usr/share
tmp_dir = {{.P}}/tmp
sysconf_dir = {{.P}}/etc
initconfig_dir = {{.P}}/etc/default
config_dir = {{.P}}/etc/dirsrv/slapd-{instance_name}
local_state_dir = {{.P}}/var
run_dir = {{.P}}/run/dirsrv
ldapi = {{.P}}/run/slapd-{instance_name}.socket
pid_file = {{.P}}/run/dirsrv/slapd-{instance_name}.pid
ldapi_listen = on
ldapi_autobind = on
inst_dir = {{.P}}/lib/dirsrv/slapd-{instance_name}
plugin_dir = /usr/lib/{{.Triplet}}/dirsrv/plugins
system_schema_dir = /usr/share/dirsrv/schema
tmpfiles_d = {{.P}}/etc/tmpfiles.d
user = root
group = root
root_dn = cn=Directory Manager
schema_dir = {{.P}}/etc/dirsrv/slapd-{instance_name}/schema
cert_dir = {{.P}}/etc/dirsrv/slapd-{instance_name}
lock_dir = {{.P}}/run/lock/dirsrv/slapd-{instance_name}
log_dir = {{.P}}/var/log/dirsrv/slapd-{instance_name}
access_log = {{.P}}/var/log/dirsrv/slapd-{instance_name}/access
audit_log = {{.P}}/var/log/dirsrv/slapd-{instance_name}/audit
error_log = {{.P}}/var/log/dirsrv/slapd-{instance_name}/errors
security_log = {{.P}}/var/log/dirsrv/slapd-{instance_name}/security
db_dir = {{.P}}/var/lib/dirsrv/slapd-{instance_name}/db
db_home_dir = {{.P}}/var/lib/dirsrv/slapd-{instance_name}/dbhome
backup_dir = {{.P}}/var/lib/dirsrv/slapd-{instance_name}/bak
ldif_dir = {{.P}}/var/lib/dirsrv/slapd-{instance_name}/ldif
`))

var instanceInf = template.Must(template.New("instance.inf").Parse(`[general]
full_machine_name = localhost
start = False
strict_host_checking = False
[slapd]
instance_name = ` + dsInstance + `
port = {{.Port}}
secure_port = {{.SecurePort}}
root_password = {{.RootPW}}
self_sign_cert = True
[backend-userroot]
sample_entries = no
suffix = {{.Suffix}}
create_suffix_entry = True
`))

// Start389 creates a private 389 Directory Server below a temporary directory (dscreate with a
// private defaults.inf, so nothing is written outside it and systemd is not involved), enables
// the Retro Changelog with nsUniqueId recorded as targetUniqueId, creates the base entries and
// the service account, and starts ns-slapd as a child of the test binary on free ports of
// 127.0.0.1 (plain LDAP on URL, LDAPS with dscreate's self-signed certificate on LDAPSURL, which
// names "localhost"; CAFile verifies it). With opts.OptionalSchema, scimbridge's optional schema
// is a file of the instance's schema directory (etc/schema/60scimbridge.ldif) from the first
// start. Of opts, only Suffix and OptionalSchema apply.
func Start389(opts Options) (*Server, error) {
	if !Installed389() {
		return nil, errors.New(Install389Hint)
	}
	if opts.Suffix == "" {
		opts.Suffix = DefaultSuffix
	}
	s := &Server{
		Kind:      Kind389DS,
		Suffix:    opts.Suffix,
		RootDN:    "cn=Directory Manager",
		RootPW:    DefaultDirectoryManagerPW,
		ServiceDN: "cn=scimbridge,ou=services," + opts.Suffix,
		ServicePW: DefaultServicePW,
		PeopleDN:  "ou=people," + opts.Suffix,
		GroupsDN:  "ou=groups," + opts.Suffix,
		opts:      opts,
	}
	d, err := os.MkdirTemp("", "scimbridge-389ds-")
	if err != nil {
		return nil, fmt.Errorf("dirserver: %w", err)
	}
	s.Dir, s.tempDir = d, true
	port, err := freePort()
	if err != nil {
		s.cleanup()
		return nil, err
	}
	tlsPort, err := freePort()
	if err != nil {
		s.cleanup()
		return nil, err
	}
	s.Port = port
	s.URL = "ldap://127.0.0.1:" + strconv.Itoa(port)
	s.LDAPSURL = "ldaps://localhost:" + strconv.Itoa(tlsPort)
	s.CAFile = filepath.Join(s.Dir, "etc/dirsrv/ssca/ca.crt")
	ds := &ds389{s: s}
	s.ctl = ds
	if err := ds.create(tlsPort); err != nil {
		s.cleanup()
		return nil, err
	}
	if opts.OptionalSchema {
		if err := ds.installSchema(); err != nil {
			s.cleanup()
			return nil, err
		}
	}
	if err := s.Start(); err != nil {
		s.cleanup()
		return nil, err
	}
	if err := ds.configure(); err != nil {
		_ = s.Close()
		return nil, err
	}
	// The Retro Changelog plugin starts with the server.
	if err := s.Stop(); err != nil {
		_ = s.Close()
		return nil, err
	}
	if err := s.Start(); err != nil {
		_ = s.Close()
		return nil, err
	}
	if err := ds.allowChangelog(); err != nil {
		_ = s.Close()
		return nil, err
	}
	return s, nil
}

// allowChangelog lets the service account read the retro changelog (which exists once the
// plugin has started): 389-DS gives nobody but the Directory Manager access to it.
func (ds *ds389) allowChangelog() error {
	conn, err := ds.s.Root()
	if err != nil {
		return err
	}
	defer conn.Close()
	req := ldap.NewModifyRequest(ChangelogSuffix, nil)
	req.Add("aci", []string{`(targetattr="*||nsUniqueId")(version 3.0; acl "scimbridge reads the changelog"; allow (read,search,compare) userdn="ldap:///` + ds.s.ServiceDN + `";)`})
	if err := conn.Modify(req); err != nil {
		return fmt.Errorf("dirserver: aci on %s: %w", ChangelogSuffix, err)
	}
	return nil
}

// ds389 starts and stops a private ns-slapd.
type ds389 struct {
	s    *Server
	cmd  *exec.Cmd
	done chan struct{}
	log  *bytes.Buffer
}

func (ds *ds389) configDir() string {
	return filepath.Join(ds.s.Dir, "etc/dirsrv/slapd-"+dsInstance)
}

func (ds *ds389) pidFile() string {
	return filepath.Join(ds.s.Dir, "run/dirsrv/slapd-"+dsInstance+".pid")
}

// create runs dscreate with the private defaults.inf (found through PREFIX).
func (ds *ds389) create(tlsPort int) error {
	p := ds.s.Dir
	for _, d := range []string{"share/dirsrv/inf", "var/log/dirsrv", "var/lib/dirsrv", "run/dirsrv", "run/lock/dirsrv", "lib/dirsrv", "etc/dirsrv", "etc/default", "tmp"} {
		if err := os.MkdirAll(filepath.Join(p, d), 0o755); err != nil {
			return fmt.Errorf("dirserver: %w", err)
		}
	}
	// dscreate copies the stock schema and configuration files from sysconf_dir/dirsrv.
	for _, d := range []string{"schema", "config"} {
		if out, err := exec.Command("cp", "-r", filepath.Join("/etc/dirsrv", d), filepath.Join(p, "etc/dirsrv/")).CombinedOutput(); err != nil {
			return fmt.Errorf("dirserver: copying /etc/dirsrv/%s: %w: %s", d, err, out)
		}
	}
	triplet, err := multiarchTriplet()
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := defaultsInf.Execute(&buf, map[string]string{"P": p, "Triplet": triplet}); err != nil {
		return fmt.Errorf("dirserver: defaults.inf: %w", err)
	}
	if err := os.WriteFile(filepath.Join(p, "share/dirsrv/inf/defaults.inf"), buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("dirserver: %w", err)
	}
	buf.Reset()
	err = instanceInf.Execute(&buf, map[string]any{"Port": ds.s.Port, "SecurePort": tlsPort, "RootPW": ds.s.RootPW, "Suffix": ds.s.Suffix})
	if err != nil {
		return fmt.Errorf("dirserver: instance.inf: %w", err)
	}
	inf := filepath.Join(p, "instance.inf")
	if err := os.WriteFile(inf, buf.Bytes(), 0o600); err != nil {
		return fmt.Errorf("dirserver: %w", err)
	}
	cmd := exec.Command(dscreatePath, "from-file", inf)
	cmd.Env = append(os.Environ(), "PREFIX="+p)
	cmd.Dir = p
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("dirserver: dscreate: %w: %s", err, strings.TrimSpace(string(out)))
	}
	// start = False stops the server dscreate started for its own setup; make sure.
	return stopByPIDFile(ds.pidFile())
}

// installSchema copies scimbridge's optional schema into the instance's schema directory, as
// the README tells admins to; ns-slapd reads it when it starts.
func (ds *ds389) installSchema() error {
	data, err := os.ReadFile(SchemaFile(schemaFile389))
	if err != nil {
		return fmt.Errorf("ldaptest: %w", err)
	}
	if err := os.WriteFile(filepath.Join(ds.configDir(), "schema", schemaFile389), data, 0o644); err != nil {
		return fmt.Errorf("ldaptest: %w", err)
	}
	return nil
}

// schemaFile389 is the optional schema's file for a 389-DS schema directory.
const schemaFile389 = "60scimbridge.ldif"

// multiarchTriplet is Debian's library directory name (x86_64-linux-gnu, aarch64-linux-gnu).
func multiarchTriplet() (string, error) {
	matches, err := filepath.Glob("/usr/lib/*/dirsrv/plugins")
	if err != nil || len(matches) == 0 {
		return "", errors.New("dirserver: the 389-DS plugins are not in /usr/lib/*/dirsrv/plugins")
	}
	return filepath.Base(filepath.Dir(filepath.Dir(matches[0]))), nil
}

// stopByPIDFile stops a daemonized ns-slapd by the PID in its file and waits until it is gone.
func stopByPIDFile(path string) error {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("dirserver: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		return nil
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return nil // already gone
	}
	deadline := time.Now().Add(30 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

func (ds *ds389) start() error {
	_ = os.Remove(ds.pidFile())
	// -d 0 keeps ns-slapd in the foreground, a child of the test binary.
	cmd := exec.Command(nsSlapdPath, "-D", ds.configDir(), "-i", ds.pidFile(), "-d", "0")
	ds.log = &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = ds.log, ds.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("dirserver: starting ns-slapd: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	if err := waitBind(ds.s.URL, ds.s.RootDN, ds.s.RootPW, done, ds389Timeout); err != nil {
		_ = cmd.Process.Kill()
		<-done
		return fmt.Errorf("%w: %s", err, ds.errorsLog())
	}
	ds.cmd, ds.done = cmd, done
	return nil
}

// errorsLog is the tail of ns-slapd's error log, for failures.
func (ds *ds389) errorsLog() string {
	data, _ := os.ReadFile(filepath.Join(ds.s.Dir, "var/log/dirsrv/slapd-"+dsInstance+"/errors"))
	if len(data) > 2000 {
		data = data[len(data)-2000:]
	}
	return strings.TrimSpace(string(data))
}

func (ds *ds389) stop() error {
	if ds.cmd == nil {
		return nil
	}
	terminate(ds.cmd.Process.Pid, ds.done, 30*time.Second)
	ds.cmd, ds.done = nil, nil
	return nil
}

func (ds *ds389) pid() int {
	if ds.cmd == nil {
		return 0
	}
	return ds.cmd.Process.Pid
}

// configure enables the Retro Changelog (effective at the next start) and adds the base
// entries: ou=people, ou=groups, ou=services and the service account, which may read and
// write the suffix, read the changelog, and has no size or look-through limit.
func (ds *ds389) configure() error {
	s := ds.s
	conn, err := s.Root()
	if err != nil {
		return err
	}
	defer conn.Close()
	plugin := ldap.NewModifyRequest("cn=Retro Changelog Plugin,cn=plugins,cn=config", nil)
	plugin.Replace("nsslapd-pluginEnabled", []string{"on"})
	plugin.Replace("nsslapd-attribute", []string{"nsuniqueid:targetUniqueId"})
	if err := conn.Modify(plugin); err != nil {
		return fmt.Errorf("dirserver: enabling the retro changelog: %w", err)
	}
	aci := ldap.NewModifyRequest(s.Suffix, nil)
	aci.Add("aci", []string{
		`(targetattr="*||nsUniqueId||nsAccountLock||createTimestamp||modifyTimestamp||entryUSN")(version 3.0; acl "scimbridge service account"; allow (all) userdn="ldap:///` + s.ServiceDN + `";)`,
	})
	if err := conn.Modify(aci); err != nil {
		return fmt.Errorf("dirserver: aci on %s: %w", s.Suffix, err)
	}
	for _, e := range []struct {
		dn    string
		attrs map[string][]string
	}{
		{"ou=people," + s.Suffix, map[string][]string{"objectClass": {"organizationalUnit"}, "ou": {"people"}}},
		{"ou=groups," + s.Suffix, map[string][]string{"objectClass": {"organizationalUnit"}, "ou": {"groups"}}},
		{"ou=services," + s.Suffix, map[string][]string{"objectClass": {"organizationalUnit"}, "ou": {"services"}}},
		{s.ServiceDN, map[string][]string{
			"objectClass": {"person"}, "cn": {"scimbridge"}, "sn": {"scimbridge"}, "userPassword": {s.ServicePW},
			"description": {"the account scimbridge binds as"},
			"nsSizeLimit": {"-1"}, "nsLookThroughLimit": {"-1"}, "nsPagedSizeLimit": {"-1"}, "nsIdleTimeout": {"-1"},
		}},
	} {
		req := ldap.NewAddRequest(e.dn, nil)
		for k, v := range e.attrs {
			req.Attribute(k, v)
		}
		if err := conn.Add(req); err != nil {
			return fmt.Errorf("dirserver: add %s: %w", e.dn, err)
		}
	}
	return nil
}

func (ds *ds389) cleanup() {}

// TrimChangelog makes a 389-DS trim its retro changelog as its nsslapd-changelogmaxage does in
// production: it restarts the server with a maximum age of one second and a trimming interval
// of one second, waits until firstchangenumber exceeds past (every record up to change number
// past is gone; 389-DS never trims its newest record), and restarts it with its configuration
// as before.
func (s *Server) TrimChangelog(past uint64) error {
	if s.Kind != Kind389DS {
		return errors.New("dirserver: TrimChangelog needs a 389-DS")
	}
	const plugin = "cn=Retro Changelog Plugin,cn=plugins,cn=config"
	set := func(maxAge, interval []string) error {
		conn, err := s.Root()
		if err != nil {
			return err
		}
		defer conn.Close()
		req := ldap.NewModifyRequest(plugin, nil)
		req.Replace("nsslapd-changelogmaxage", maxAge)
		req.Replace("nsslapd-changelog-trim-interval", interval)
		if err := conn.Modify(req); err != nil {
			return fmt.Errorf("dirserver: configuring changelog trimming: %w", err)
		}
		if err := s.Stop(); err != nil {
			return err
		}
		return s.Start()
	}
	if err := set([]string{"1s"}, []string{"1"}); err != nil {
		return err
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		first, err := s.firstChangeNumber()
		if err != nil {
			return err
		}
		if first > past {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("dirserver: the changelog still starts at %d after 60s", first)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return set(nil, nil)
}

func (s *Server) firstChangeNumber() (uint64, error) {
	first, _, err := s.ChangelogBounds()
	return first, err
}

// ChangelogBounds reads a 389-DS's firstchangenumber and lastchangenumber.
func (s *Server) ChangelogBounds() (first, last uint64, err error) {
	conn, err := s.Root()
	if err != nil {
		return 0, 0, err
	}
	defer conn.Close()
	res, err := conn.Search(ldap.NewSearchRequest("", ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1, 0, false, "(objectClass=*)", []string{"firstchangenumber", "lastchangenumber"}, nil))
	if err != nil || len(res.Entries) != 1 {
		return 0, 0, fmt.Errorf("dirserver: reading the changelog bounds: %w", err)
	}
	first, _ = strconv.ParseUint(res.Entries[0].GetAttributeValue("firstchangenumber"), 10, 64)
	last, _ = strconv.ParseUint(res.Entries[0].GetAttributeValue("lastchangenumber"), 10, 64)
	return first, last, nil
}
