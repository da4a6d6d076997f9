package slapd

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/template"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// Debian's locations of the slapd binaries, modules and schemas.
const (
	slapdPath   = "/usr/sbin/slapd"
	slapaddPath = "/usr/sbin/slapadd"
	modulePath  = "/usr/lib/ldap"
	schemaDir   = "/etc/ldap/schema"
)

// Defaults of a private directory. The service account is what the bridge binds as; it has
// write access to the suffix, read access to cn=accesslog and no size limit, like the account
// the README tells admins to create.
const (
	DefaultSuffix    = "dc=example,dc=org"
	DefaultRootPW    = "rootsecret"
	DefaultServicePW = "bridgesecret"
	AccesslogSuffix  = "cn=accesslog"
	startTimeout     = 15 * time.Second
)

// ErrNotInstalled says slapd is missing; tests skip on it with InstallHint.
var ErrNotInstalled = errors.New("slapd: slapd is not installed")

// InstallHint tells a developer how to get the integration tests to run.
const InstallHint = "slapd is not installed: run `make test` (it installs slapd and ldap-utils with apt-get), " +
	"or `apt-get install -y slapd ldap-utils` after preseeding slapd/no_configuration, to run the LDAP integration tests"

// Options configure a private slapd. The zero value is a test directory.
type Options struct {
	// Dir holds the configuration, databases and PID file. Empty: a new temporary directory
	// removed by Stop.
	Dir string
	// Port on 127.0.0.1; 0 picks a free one.
	Port int
	// Suffix of the data database. Defaults to DefaultSuffix.
	Suffix string
	// Seed is LDIF loaded with slapadd before the first start, after the base entries (the
	// suffix, ou=people, ou=groups, ou=services and the service account).
	Seed string
	// Durable turns off dbnosync: tests need speed, the demo and benchmarks of durability
	// don't.
	Durable bool
	// PPolicy loads the ppolicy overlay so pwdAccountLockedTime exists in the schema.
	PPolicy bool
	// LogPurge is the accesslog overlay's logpurge value ("age interval"); defaults to
	// "07+00:00 01+00:00".
	LogPurge string
	// TLS makes slapd offer StartTLS on URL and listen for ldaps:// on LDAPSURL too, with a
	// certificate for 127.0.0.1 from a throwaway CA whose PEM file is CAFile.
	TLS bool
	// SizeLimit is the global sizelimit (the service account is unlimited). Defaults to 500,
	// slapd's own default, so that tests see what a stock server does to other binds.
	SizeLimit int
}

// Server is a running private slapd.
type Server struct {
	URL string
	// LDAPSURL and CAFile are set with Options.TLS.
	LDAPSURL  string
	CAFile    string
	Port      int
	Suffix    string
	RootDN    string
	RootPW    string
	ServiceDN string
	ServicePW string
	PeopleDN  string
	GroupsDN  string
	Dir       string

	opts    Options
	tempDir bool
	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
}

// Installed reports whether Debian's slapd is on this machine.
func Installed() bool {
	for _, p := range []string{slapdPath, slapaddPath, filepath.Join(modulePath, "back_mdb.so")} {
		if _, err := os.Stat(p); err != nil {
			return false
		}
	}
	return true
}

// Start configures, seeds and starts a private slapd and waits until it answers a bind.
func Start(opts Options) (*Server, error) {
	if !Installed() {
		return nil, ErrNotInstalled
	}
	if opts.Suffix == "" {
		opts.Suffix = DefaultSuffix
	}
	if opts.LogPurge == "" {
		opts.LogPurge = "07+00:00 01+00:00"
	}
	if opts.SizeLimit == 0 {
		opts.SizeLimit = 500
	}
	s := &Server{
		Suffix:    opts.Suffix,
		RootDN:    "cn=admin," + opts.Suffix,
		RootPW:    DefaultRootPW,
		ServiceDN: "cn=scimbridge,ou=services," + opts.Suffix,
		ServicePW: DefaultServicePW,
		PeopleDN:  "ou=people," + opts.Suffix,
		GroupsDN:  "ou=groups," + opts.Suffix,
		opts:      opts,
	}
	if opts.Dir == "" {
		d, err := os.MkdirTemp("", "scimbridge-slapd-")
		if err != nil {
			return nil, fmt.Errorf("slapd: %w", err)
		}
		opts.Dir, s.tempDir = d, true
	}
	s.Dir = opts.Dir
	if opts.Port == 0 {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		opts.Port = p
	}
	s.Port = opts.Port
	s.URL = "ldap://127.0.0.1:" + strconv.Itoa(opts.Port)
	if opts.TLS {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		s.LDAPSURL = "ldaps://127.0.0.1:" + strconv.Itoa(p)
		s.CAFile = filepath.Join(opts.Dir, "ca.pem")
	}
	s.opts = opts
	if err := s.configure(); err != nil {
		s.cleanup()
		return nil, err
	}
	if err := s.Start(); err != nil {
		s.cleanup()
		return nil, err
	}
	return s, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("slapd: finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

var confTemplate = template.Must(template.New("slapd.conf").Parse(`# private slapd written by scimbridge
include {{.SchemaDir}}/core.schema
include {{.SchemaDir}}/cosine.schema
include {{.SchemaDir}}/inetorgperson.schema
include {{.SchemaDir}}/nis.schema

modulepath {{.ModulePath}}
moduleload back_mdb
moduleload accesslog
moduleload syncprov
moduleload sssvlv
{{- if .PPolicy}}
moduleload ppolicy
{{- end}}

{{- if .TLS}}
TLSCACertificateFile {{.Dir}}/ca.pem
TLSCertificateFile {{.Dir}}/server.pem
TLSCertificateKeyFile {{.Dir}}/server.key
{{- end}}
pidfile {{.Dir}}/slapd.pid
argsfile {{.Dir}}/slapd.args
sizelimit {{.SizeLimit}}

access to dn.base="" by * read
access to dn.base="cn=Subschema" by * read
access to dn.subtree="{{.AccesslogSuffix}}"
	by dn.exact="{{.ServiceDN}}" read
	by * none
access to attrs=userPassword
	by dn.exact="{{.ServiceDN}}" write
	by self write
	by anonymous auth
	by * none
access to *
	by dn.exact="{{.ServiceDN}}" write
	by self read
	by users read
	by anonymous auth

database mdb
suffix "{{.AccesslogSuffix}}"
directory {{.Dir}}/accesslog
maxsize 1073741824
{{- if not .Durable}}
dbnosync
{{- end}}
limits dn.exact="{{.ServiceDN}}" size=unlimited time=unlimited
index default eq
index entryCSN,objectClass,reqEnd,reqResult,reqStart,reqEntryUUID eq
overlay syncprov
syncprov-nopresent TRUE
syncprov-reloadhint TRUE

database mdb
suffix "{{.Suffix}}"
rootdn "{{.RootDN}}"
rootpw {{.RootPW}}
directory {{.Dir}}/data
maxsize 4294967296
{{- if not .Durable}}
dbnosync
{{- end}}
limits dn.exact="{{.ServiceDN}}" size=unlimited time=unlimited
index objectClass eq
index entryUUID,entryCSN eq
index uid,mail,cn eq,sub
index member eq
index uniqueMember eq

overlay syncprov
syncprov-checkpoint 100 10
{{- if .PPolicy}}
overlay ppolicy
{{- end}}
overlay sssvlv
sssvlv-max 32
sssvlv-maxkeys 5
sssvlv-maxperconn 8
overlay accesslog
logdb "{{.AccesslogSuffix}}"
logops writes
logsuccess TRUE
logpurge {{.LogPurge}}
`))

func (s *Server) configure() error {
	for _, d := range []string{"data", "accesslog", "slapd.d"} {
		if err := os.MkdirAll(filepath.Join(s.Dir, d), 0o700); err != nil {
			return fmt.Errorf("slapd: %w", err)
		}
	}
	if s.opts.TLS {
		if err := writeTLSFiles(s.Dir); err != nil {
			return fmt.Errorf("slapd: tls files: %w", err)
		}
	}
	var conf bytes.Buffer
	err := confTemplate.Execute(&conf, map[string]any{
		"SchemaDir":       schemaDir,
		"ModulePath":      modulePath,
		"Dir":             s.Dir,
		"Suffix":          s.Suffix,
		"RootDN":          s.RootDN,
		"RootPW":          s.RootPW,
		"ServiceDN":       s.ServiceDN,
		"AccesslogSuffix": AccesslogSuffix,
		"Durable":         s.opts.Durable,
		"PPolicy":         s.opts.PPolicy,
		"LogPurge":        s.opts.LogPurge,
		"SizeLimit":       s.opts.SizeLimit,
		"TLS":             s.opts.TLS,
	})
	if err != nil {
		return fmt.Errorf("slapd: slapd.conf: %w", err)
	}
	if err := os.WriteFile(s.confPath(), conf.Bytes(), 0o600); err != nil {
		return fmt.Errorf("slapd: %w", err)
	}
	seed := s.baseLDIF() + "\n" + s.opts.Seed
	ldif := filepath.Join(s.Dir, "seed.ldif")
	if err := os.WriteFile(ldif, []byte(seed), 0o600); err != nil {
		return fmt.Errorf("slapd: %w", err)
	}
	out, err := exec.Command(slapaddPath, "-q", "-f", s.confPath(), "-b", s.Suffix, "-l", ldif).CombinedOutput()
	if err != nil {
		return fmt.Errorf("slapd: slapadd: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (s *Server) confPath() string { return filepath.Join(s.Dir, "slapd.conf") }

func rdnValue(dn string) string {
	first, _, _ := strings.Cut(dn, ",")
	_, v, _ := strings.Cut(first, "=")
	return v
}

func (s *Server) baseLDIF() string {
	return fmt.Sprintf(`dn: %[1]s
objectClass: top
objectClass: dcObject
objectClass: organization
o: Example
dc: %[2]s

dn: ou=people,%[1]s
objectClass: organizationalUnit
ou: people

dn: ou=groups,%[1]s
objectClass: organizationalUnit
ou: groups

dn: ou=services,%[1]s
objectClass: organizationalUnit
ou: services

dn: %[3]s
objectClass: person
objectClass: simpleSecurityObject
cn: scimbridge
sn: scimbridge
userPassword: %[4]s
description: the account scimbridge binds as
`, s.Suffix, rdnValue(s.Suffix), s.ServiceDN, s.ServicePW)
}

// Start starts slapd (again, after Stop) on the same port and data, and waits until it answers.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return nil
	}
	var lastErr error
	// The port may still be in TIME_WAIT-free limbo just after a Stop; try a few times.
	for attempt := 0; attempt < 5; attempt++ {
		urls := s.URL + "/"
		if s.LDAPSURL != "" {
			urls += " " + s.LDAPSURL + "/"
		}
		cmd := exec.Command(slapdPath, "-d", "0", "-f", s.confPath(), "-h", urls)
		var stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stderr, &stderr
		// Its own process group, so a terminal's Ctrl-C reaches us first and we stop it in
		// order; Pdeathsig ends it if the test binary dies without cleaning up.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("slapd: starting slapd: %w", err)
		}
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		if err := s.waitReady(done); err != nil {
			_ = cmd.Process.Kill()
			<-done
			lastErr = fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
			time.Sleep(200 * time.Millisecond)
			continue
		}
		s.cmd, s.done = cmd, done
		return nil
	}
	return lastErr
}

func (s *Server) waitReady(done <-chan struct{}) error {
	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case <-done:
			return errors.New("slapd: slapd exited during start")
		default:
		}
		conn, err := ldap.DialURL(s.URL, ldap.DialWithDialer(&net.Dialer{Timeout: time.Second}))
		if err == nil {
			err = conn.Bind(s.RootDN, s.RootPW)
			conn.Close()
			if err == nil {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("slapd: slapd did not answer within %s: %w", startTimeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop stops slapd (SIGTERM, then SIGKILL after 10 s) and keeps its data for a later Start.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return nil
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd, s.done = nil, nil
	return nil
}

// Close stops slapd and removes its directory when Start made it.
func (s *Server) Close() error {
	err := s.Stop()
	s.cleanup()
	return err
}

func (s *Server) cleanup() {
	if s.tempDir {
		_ = os.RemoveAll(s.Dir)
	}
}

// PID is slapd's process id, or 0 when it is stopped.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Root opens a connection bound as the rootdn, for test setup and checks.
func (s *Server) Root() (*ldap.Conn, error) {
	conn, err := ldap.DialURL(s.URL, ldap.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}))
	if err != nil {
		return nil, fmt.Errorf("slapd: dial: %w", err)
	}
	if err := conn.Bind(s.RootDN, s.RootPW); err != nil {
		conn.Close()
		return nil, fmt.Errorf("slapd: bind: %w", err)
	}
	return conn, nil
}

// NewOU creates a uniquely named organizational unit under the suffix, with ou=people and
// ou=groups below it, so a test owns its corner of the shared directory. It returns the OU's DN.
func (s *Server) NewOU(name string) (string, error) {
	var b [4]byte
	_, _ = rand.Read(b[:])
	ou := name + "-" + hex.EncodeToString(b[:])
	dn := "ou=" + ldap.EscapeDN(ou) + "," + s.Suffix
	conn, err := s.Root()
	if err != nil {
		return "", err
	}
	defer conn.Close()
	for _, d := range []string{dn, "ou=people," + dn, "ou=groups," + dn} {
		req := ldap.NewAddRequest(d, nil)
		req.Attribute("objectClass", []string{"organizationalUnit"})
		req.Attribute("ou", []string{rdnValue(d)})
		if err := conn.Add(req); err != nil {
			return "", fmt.Errorf("slapd: add %s: %w", d, err)
		}
	}
	return dn, nil
}

// LDIF applies LDIF change records (plain entries are taken as adds) as the rootdn through
// Debian's ldapmodify, exactly as an admin would, so tests exercise changes made outside the
// bridge.
func (s *Server) LDIF(text string) error {
	return ldapmodify(s.URL, s.RootDN, s.RootPW, text)
}
