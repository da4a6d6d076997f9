package dirserver

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// Debian's Samba AD DC (samba, samba-ad-dc, samba-ad-provision, python3-samba, …).
const (
	sambaPath     = "/usr/sbin/samba"
	sambaToolPath = "/usr/bin/samba-tool"
	// ADSuffix is the naming context of the private domain EXAMPLE.ORG.
	ADSuffix = "DC=example,DC=org"
	// DefaultADAdminPW is the password of the domain's Administrator (Samba's default password
	// policy wants it complex).
	DefaultADAdminPW = "Adm1n-Secret!x"
	// DefaultADServicePW is the service account's password.
	DefaultADServicePW = "Bridge-Secret!9"
	adTimeout          = 90 * time.Second
)

// errNotInstalledAD says the Samba AD DC packages are missing.
var errNotInstalledAD = errors.New("dirserver: the Samba AD DC is not installed")

// InstallADHint tells a developer how to get the Active Directory tests to run.
const InstallADHint = "Samba AD DC is not installed: run `make test` (it installs samba, samba-ad-dc, samba-ad-provision, winbind, " +
	"python3-samba and ldb-tools with apt-get); the AD tests also need root (Samba runs in a network namespace of its own)"

// InstalledAD reports whether Samba's AD DC is on this machine and the tests may run it (a
// network namespace needs root).
func InstalledAD() bool {
	for _, p := range []string{sambaPath, sambaToolPath, "/usr/share/samba/setup/provision.ldif", "/usr/bin/ldbmodify"} {
		if _, err := os.Stat(p); err != nil {
			return false
		}
	}
	return os.Geteuid() == 0
}

// ADOptions configure a private Samba AD DC. The zero value is a test domain.
type ADOptions struct {
	// OptionalSchema extends the schema with scimbridge's optional schema
	// (etc/schema/scimbridge-ad.ldif) the way the README tells Samba admins to: schema updates
	// allowed in smb.conf (dsdb:schema update allowed), the file imported over LDAP as the
	// Administrator with ldapmodify, DC=X replaced by the domain's DN.
	OptionalSchema bool
}

// StartAD provisions a private Samba AD DC (domain EXAMPLE, realm EXAMPLE.ORG, naming context
// DC=example,DC=org) in a temporary directory and starts it inside a network namespace of its
// own, since its ports are fixed (389, 636, …) and test packages run in parallel. URL and
// LDAPSURL are free ports of 127.0.0.1 in the test's namespace that relay to Samba's 389 and
// 636; LDAPS uses a certificate for 127.0.0.1 from a throwaway CA (CAFile). Simple binds on
// plain LDAP are allowed (ldap server require strong auth = no), as the tests and ldapmodify
// use them; passwords (unicodePwd) need LDAPSURL.
//
// The base entries are OU=people, OU=groups and OU=services, and the service account
// CN=scimbridge,OU=services is a member of Domain Admins (which gives it DirSync's replication
// right and password resets).
func StartAD(opts ADOptions) (*Server, error) {
	if !InstalledAD() {
		return nil, errNotInstalledAD
	}
	s := &Server{
		Kind:      KindAD,
		Suffix:    ADSuffix,
		RootDN:    "CN=Administrator,CN=Users," + ADSuffix,
		RootPW:    DefaultADAdminPW,
		ServiceDN: "CN=scimbridge,OU=services," + ADSuffix,
		ServicePW: DefaultADServicePW,
		PeopleDN:  "OU=people," + ADSuffix,
		GroupsDN:  "OU=groups," + ADSuffix,
	}
	d, err := os.MkdirTemp("", "scimbridge-samba-")
	if err != nil {
		return nil, fmt.Errorf("dirserver: %w", err)
	}
	s.Dir, s.tempDir = d, true
	sm := &samba{s: s, opts: opts}
	s.ctl = sm
	if err := sm.provision(); err != nil {
		s.cleanup()
		return nil, err
	}
	if sm.ns, err = newNetNS(); err != nil {
		s.cleanup()
		return nil, err
	}
	if sm.ldap, err = newForwarder(sm.ns, 389); err != nil {
		s.cleanup()
		return nil, err
	}
	if sm.ldaps, err = newForwarder(sm.ns, 636); err != nil {
		s.cleanup()
		return nil, err
	}
	s.URL = "ldap://" + sm.ldap.addr()
	s.LDAPSURL = "ldaps://" + sm.ldaps.addr()
	s.CAFile = filepath.Join(s.Dir, "ca.pem")
	if _, p, err := net.SplitHostPort(sm.ldap.addr()); err == nil {
		fmt.Sscan(p, &s.Port)
	}
	if err := s.Start(); err != nil {
		s.cleanup()
		return nil, err
	}
	if err := sm.configure(); err != nil {
		_ = s.Close()
		return nil, err
	}
	if opts.OptionalSchema {
		if err := sm.importSchema(); err != nil {
			_ = s.Close()
			return nil, err
		}
	}
	return s, nil
}

// importSchema imports etc/schema/scimbridge-ad.ldif as an admin does with ldifde -c "DC=X"
// (the forest root's DN): through ldapmodify, as the Administrator.
func (sm *samba) importSchema() error {
	data, err := os.ReadFile(SchemaFile("scimbridge-ad.ldif"))
	if err != nil {
		return fmt.Errorf("ldaptest: %w", err)
	}
	ldif := regexp.MustCompile(`(?m),DC=X$`).ReplaceAllString(string(data), ","+sm.s.Suffix)
	if err := ldapmodify(sm.s.URL, sm.s.RootDN, sm.s.RootPW, ldif); err != nil {
		return fmt.Errorf("ldaptest: importing scimbridge-ad.ldif: %w", err)
	}
	return nil
}

// samba runs one Samba AD DC in its network namespace.
type samba struct {
	s           *Server
	opts        ADOptions
	ns          *netNS
	ldap, ldaps *forwarder
	cmd         *exec.Cmd
	done        chan struct{}
	cleanupOnce sync.Once
}

func (sm *samba) conf() string { return filepath.Join(sm.s.Dir, "etc", "smb.conf") }

// provision runs samba-tool domain provision into the server's directory, with the settings
// the tests need: only the LDAP server, simple binds without TLS, our own TLS certificate.
func (sm *samba) provision() error {
	dir := sm.s.Dir
	if err := writeTLSFiles(dir); err != nil {
		return fmt.Errorf("dirserver: tls files: %w", err)
	}
	args := []string{
		"domain", "provision", "-s", "/dev/null",
		"--realm=EXAMPLE.ORG", "--domain=EXAMPLE", "--server-role=dc", "--dns-backend=NONE",
		"--host-name=dc1", "--host-ip=127.0.0.1", "--targetdir=" + dir, "--adminpass=" + sm.s.RootPW,
		"--option=interfaces = lo", "--option=bind interfaces only = yes",
	}
	cmd := exec.Command(sambaToolPath, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("dirserver: samba-tool domain provision: %w: %s", err, tail(out, 2000))
	}
	// provision leaves out settings it considers defaults: write ours into [global].
	conf, err := os.ReadFile(sm.conf())
	if err != nil {
		return fmt.Errorf("dirserver: %w", err)
	}
	settings := []string{
		"server services = ldap",
		"ldap server require strong auth = no",
		"tls enabled = yes",
		"tls keyfile = " + filepath.Join(dir, "server.key"),
		"tls certfile = " + filepath.Join(dir, "server.pem"),
		"tls cafile = " + filepath.Join(dir, "ca.pem"),
		"pid directory = " + filepath.Join(dir, "run"),
		"ncalrpc dir = " + filepath.Join(dir, "run", "ncalrpc"),
		"log file = " + filepath.Join(dir, "samba.log"),
		// Like slapd's dbnosync in the tests: no fsync per write (what Samba's own selftest
		// does); the benchmarks say what a durable DC does.
		"ldb:nosync = true",
	}
	if sm.opts.OptionalSchema {
		settings = append(settings, "dsdb:schema update allowed = true")
	}
	var b strings.Builder
	for _, line := range strings.Split(string(conf), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "server services") {
			continue
		}
		b.WriteString(line + "\n")
		if strings.TrimSpace(line) == "[global]" {
			for _, st := range settings {
				b.WriteString("\t" + st + "\n")
			}
		}
	}
	if err := os.WriteFile(sm.conf(), []byte(strings.TrimRight(b.String(), "\n")+"\n"), 0o644); err != nil {
		return fmt.Errorf("dirserver: %w", err)
	}
	return os.MkdirAll(filepath.Join(dir, "run"), 0o755)
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return strings.TrimSpace(string(b))
}

func (sm *samba) start() error {
	cmd := exec.Command(sambaPath, "-s", sm.conf(), "--foreground", "--no-process-group", "--debug-stdout", "-d", "1")
	logf, err := os.OpenFile(filepath.Join(sm.s.Dir, "samba.out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("dirserver: %w", err)
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group, so that Stop ends the prefork children too; the parent-death
	// signal ends it with the test binary.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := sm.ns.start(cmd); err != nil {
		return fmt.Errorf("dirserver: starting samba: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	if err := waitBind(sm.s.URL, sm.s.RootDN, sm.s.RootPW, done, adTimeout); err != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		out, _ := os.ReadFile(filepath.Join(sm.s.Dir, "samba.out"))
		return fmt.Errorf("%w: %s", err, tail(out, 2000))
	}
	sm.cmd, sm.done = cmd, done
	return nil
}

func (sm *samba) stop() error {
	if sm.cmd == nil {
		return nil
	}
	pid := sm.cmd.Process.Pid
	terminate(pid, sm.done, 20*time.Second)
	// The prefork children follow their master; make sure none is left behind.
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	sm.ldap.dropConnections()
	sm.ldaps.dropConnections()
	sm.cmd, sm.done = nil, nil
	return nil
}

func (sm *samba) pid() int {
	if sm.cmd == nil {
		return 0
	}
	return sm.cmd.Process.Pid
}

func (sm *samba) cleanup() {
	sm.cleanupOnce.Do(func() {
		_ = sm.stop()
		if sm.ldap != nil {
			sm.ldap.close()
		}
		if sm.ldaps != nil {
			sm.ldaps.close()
		}
		if sm.ns != nil {
			sm.ns.close()
		}
	})
}

// LDAPS opens a connection over LDAPS bound as the Administrator: AD takes passwords
// (unicodePwd) only over TLS.
func (s *Server) LDAPS() (*ldap.Conn, error) {
	if s.LDAPSURL == "" {
		return nil, errors.New("dirserver: this server has no LDAPS listener")
	}
	pem, err := os.ReadFile(s.CAFile)
	if err != nil {
		return nil, fmt.Errorf("dirserver: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return dialBind(s.LDAPSURL, s.RootDN, s.RootPW,
		ldap.DialWithTLSConfig(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12, ServerName: tlsHost(s.LDAPSURL)}))
}

func tlsHost(url string) string {
	host := strings.TrimPrefix(strings.TrimPrefix(url, "ldaps://"), "ldap://")
	if h, _, err := net.SplitHostPort(host); err == nil {
		return h
	}
	return host
}

// UnicodePwd encodes a password as AD's unicodePwd value: the quoted password in UTF-16LE.
func UnicodePwd(pw string) string {
	var b bytes.Buffer
	for _, r := range "\"" + pw + "\"" {
		_ = binary.Write(&b, binary.LittleEndian, uint16(r))
	}
	return b.String()
}

// configure creates OU=people, OU=groups, OU=services and the service account, a member of
// Domain Admins.
func (sm *samba) configure() error {
	s := sm.s
	conn, err := s.LDAPS()
	if err != nil {
		return err
	}
	defer conn.Close()
	for _, ou := range []string{"people", "groups", "services"} {
		req := ldap.NewAddRequest("OU="+ou+","+s.Suffix, nil)
		req.Attribute("objectClass", []string{"organizationalUnit"})
		req.Attribute("ou", []string{ou})
		if err := conn.Add(req); err != nil {
			return fmt.Errorf("dirserver: add OU=%s: %w", ou, err)
		}
	}
	req := ldap.NewAddRequest(s.ServiceDN, nil)
	req.Attribute("objectClass", []string{"user"})
	req.Attribute("sAMAccountName", []string{"scimbridge"})
	req.Attribute("userPrincipalName", []string{"scimbridge@example.org"})
	req.Attribute("description", []string{"the account scimbridge binds as"})
	req.Attribute("unicodePwd", []string{UnicodePwd(s.ServicePW)})
	req.Attribute("userAccountControl", []string{"66048"}) // NORMAL_ACCOUNT | DONT_EXPIRE_PASSWORD
	if err := conn.Add(req); err != nil {
		return fmt.Errorf("dirserver: add %s: %w", s.ServiceDN, err)
	}
	mod := ldap.NewModifyRequest("CN=Domain Admins,CN=Users,"+s.Suffix, nil)
	mod.Add("member", []string{s.ServiceDN})
	if err := conn.Modify(mod); err != nil {
		return fmt.Errorf("dirserver: adding the service account to Domain Admins: %w", err)
	}
	return nil
}

// NewInvocationID does to a Samba AD DC what a restore from a backup does to a DC: it stops
// it, gives its database a new invocationId (in its NTDS Settings object, with ldbmodify on the
// local database) and starts it again. Update sequence numbers and DirSync cookies of before
// then belong to another database incarnation.
func (s *Server) NewInvocationID() error {
	if s.Kind != KindAD {
		return errors.New("dirserver: NewInvocationID needs a Samba AD DC")
	}
	conn, err := s.Root()
	if err != nil {
		return err
	}
	res, err := conn.Search(ldap.NewSearchRequest("", ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1, 0, false, "(objectClass=*)", []string{"dsServiceName"}, nil))
	conn.Close()
	if err != nil || len(res.Entries) != 1 {
		return fmt.Errorf("dirserver: reading dsServiceName: %w", err)
	}
	ntds := res.Entries[0].GetAttributeValue("dsServiceName")
	if err := s.Stop(); err != nil {
		return err
	}
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return err
	}
	inv := fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
	cmd := exec.Command("ldbmodify", "-H", filepath.Join(s.Dir, "private", "sam.ldb"))
	cmd.Stdin = strings.NewReader("dn: " + ntds + "\nchangetype: modify\nreplace: invocationId\ninvocationId: " + inv + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("dirserver: ldbmodify invocationId: %w: %s", err, out)
	}
	return s.Start()
}
