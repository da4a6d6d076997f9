package dirserver

import (
	"bytes"
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
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
var ErrNotInstalled = errors.New("dirserver: slapd is not installed")

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

	// The options below configure the mistakes an admin can make, for the tests of
	// `scimbridge doctor`; the zero value is the setup the README asks for.

	// NoAccesslog leaves the accesslog overlay and its database out.
	NoAccesslog bool
	// HideAccesslog denies the service account any access to cn=accesslog.
	HideAccesslog bool
	// LimitService leaves out the service account's `limits`, so SizeLimit applies to it too.
	LimitService bool
	// LogOps is the accesslog overlay's logops value. Defaults to "writes".
	LogOps string
	// ReadableConfig lets the service account read cn=config, where `scimbridge doctor`
	// checks logops, logpurge and the size limits.
	ReadableConfig bool
	// ReadOnlyService gives the service account read access only, below the suffix.
	ReadOnlyService bool
	// Access is further slapd.conf access directives, put before the default ones (which
	// grant the service account its rights): an operator account's rights, for example. End
	// them with "by * break" to let the defaults apply to everyone else.
	Access string
	// Schemas are further slapd.conf schema files, included after the stock ones (core,
	// cosine, inetorgperson, nis): OptionalSchema() for scimbridge's own.
	Schemas []string
	// ServerID and MirrorPeer make the server one provider of a multi-provider (mirror-mode)
	// pair: it replicates the suffix to and from the slapd at MirrorPeer (an ldap:// URL),
	// binding as the peer's rootdn (both have DefaultRootPW). Start the second one with
	// NoSeed: it receives every entry through replication.
	ServerID   int
	MirrorPeer string
	// NoSeed loads nothing with slapadd, not even the base entries.
	NoSeed bool
	// ServiceDN places the service account elsewhere than cn=scimbridge,ou=services (a test of
	// a bind DN inside the users base); its parent must be one of the base entries.
	ServiceDN string
	// OptionalSchema loads scimbridge's optional schema (etc/schema) the way the README tells
	// admins to: scimbridge.schema included in slapd.conf; on a 389-DS (Start389),
	// 60scimbridge.ldif in the instance's schema directory.
	OptionalSchema bool
}

// OptionalSchema is the path of scimbridge's optional schema for slapd.conf
// (etc/schema/scimbridge.schema in the source tree this package is built from).
func OptionalSchema() string {
	return SchemaFile("scimbridge.schema")
}

// SchemaFile is the path of a file of scimbridge's optional schema (etc/schema/name in the
// source tree this package is built from): scimbridge.schema and scimbridge.ldif for OpenLDAP,
// scimbridge-389ds.ldif and 60scimbridge.ldif for 389-DS, scimbridge-ad.ldif for Active
// Directory.
func SchemaFile(name string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "etc", "schema", name)
}

// Kind is a family of directory servers the helpers run.
type Kind string

// The directory servers the helpers run.
const (
	KindOpenLDAP Kind = "openldap"
	Kind389DS    Kind = "389ds"
	KindAD       Kind = "ad"
)

// Server is a running private directory server: OpenLDAP's slapd (Start), 389 Directory Server
// (Start389) or a Samba AD DC (StartAD).
type Server struct {
	// Kind says which server this is.
	Kind Kind
	URL  string
	// LDAPIURL is the same server on a Unix socket (ldapi://, the path percent-encoded).
	LDAPIURL string
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
	// ctl runs the servers other than slapd.
	ctl control
}

// control starts and stops a server other than slapd; the Server's mutex is held.
type control interface {
	start() error
	stop() error
	pid() int
	cleanup()
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
	if opts.LogOps == "" {
		opts.LogOps = "writes"
	}
	if opts.OptionalSchema && !slices.Contains(opts.Schemas, OptionalSchema()) {
		opts.Schemas = append(slices.Clip(opts.Schemas), OptionalSchema())
	}
	s := &Server{
		Kind:      KindOpenLDAP,
		Suffix:    opts.Suffix,
		RootDN:    "cn=admin," + opts.Suffix,
		RootPW:    DefaultRootPW,
		ServiceDN: cmp.Or(opts.ServiceDN, "cn=scimbridge,ou=services,"+opts.Suffix),
		ServicePW: DefaultServicePW,
		PeopleDN:  "ou=people," + opts.Suffix,
		GroupsDN:  "ou=groups," + opts.Suffix,
		opts:      opts,
	}
	if opts.Dir == "" {
		d, err := os.MkdirTemp("", "scimbridge-slapd-")
		if err != nil {
			return nil, fmt.Errorf("dirserver: %w", err)
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
	s.LDAPIURL = "ldapi://" + url.PathEscape(filepath.Join(opts.Dir, "ldapi"))
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
		return 0, fmt.Errorf("dirserver: finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

var confTemplate = template.Must(template.New("slapd.conf").Parse(`# private slapd written by scimbridge
include {{.SchemaDir}}/core.schema
include {{.SchemaDir}}/cosine.schema
include {{.SchemaDir}}/inetorgperson.schema
include {{.SchemaDir}}/nis.schema
{{- range .Schemas}}
include {{.}}
{{- end}}

modulepath {{.ModulePath}}
moduleload back_mdb
{{- if .Accesslog}}
moduleload accesslog
{{- end}}
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
{{- if .ServerID}}
serverID {{.ServerID}}
{{- end}}

access to dn.base="" by * read
access to dn.base="cn=Subschema" by * read
access to dn.subtree="{{.AccesslogSuffix}}"
	by dn.exact="{{.ServiceDN}}" {{if .HideAccesslog}}none{{else}}read{{end}}
	by * none
{{- if .Access}}
{{.Access}}
{{- end}}
access to attrs=userPassword
	by dn.exact="{{.ServiceDN}}" {{.ServiceAccess}}
	by self write
	by anonymous auth
	by * none
access to *
	by dn.exact="{{.ServiceDN}}" {{.ServiceAccess}}
	by self read
	by users read
	by anonymous auth
{{- if .ReadableConfig}}

database config
access to *
	by dn.exact="{{.ServiceDN}}" read
	by * none
{{- end}}
{{- if .Accesslog}}

database mdb
suffix "{{.AccesslogSuffix}}"
directory {{.Dir}}/accesslog
maxsize 1073741824
{{- if not .Durable}}
dbnosync
{{- end}}
{{- if not .LimitService}}
limits dn.exact="{{.ServiceDN}}" size=unlimited time=unlimited
{{- end}}
index default eq
index entryCSN,objectClass,reqEnd,reqResult,reqStart,reqEntryUUID eq
overlay syncprov
syncprov-nopresent TRUE
syncprov-reloadhint TRUE
{{- end}}

database mdb
suffix "{{.Suffix}}"
rootdn "{{.RootDN}}"
rootpw {{.RootPW}}
directory {{.Dir}}/data
maxsize 4294967296
{{- if not .Durable}}
dbnosync
{{- end}}
{{- if not .LimitService}}
limits dn.exact="{{.ServiceDN}}" size=unlimited time=unlimited
{{- end}}
index objectClass eq
index entryUUID,entryCSN eq
index uid,mail,cn eq,sub
index member eq
index uniqueMember eq
{{- if .MirrorPeer}}
syncrepl rid=001 provider={{.MirrorPeer}} bindmethod=simple binddn="{{.RootDN}}" credentials={{.RootPW}}
	searchbase="{{.Suffix}}" type=refreshAndPersist retry="1 +" timeout=3
mirrormode on
{{- end}}

overlay syncprov
syncprov-checkpoint 100 10
{{- if .PPolicy}}
overlay ppolicy
{{- end}}
overlay sssvlv
sssvlv-max 32
sssvlv-maxkeys 5
sssvlv-maxperconn 8
{{- if .Accesslog}}
overlay accesslog
logdb "{{.AccesslogSuffix}}"
logops {{.LogOps}}
logsuccess TRUE
logpurge {{.LogPurge}}
{{- end}}
`))

func (s *Server) configure() error {
	for _, d := range []string{"data", "accesslog", "slapd.d"} {
		if err := os.MkdirAll(filepath.Join(s.Dir, d), 0o700); err != nil {
			return fmt.Errorf("dirserver: %w", err)
		}
	}
	if s.opts.TLS {
		if err := writeTLSFiles(s.Dir); err != nil {
			return fmt.Errorf("dirserver: tls files: %w", err)
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
		"Accesslog":       !s.opts.NoAccesslog,
		"HideAccesslog":   s.opts.HideAccesslog,
		"LimitService":    s.opts.LimitService,
		"LogOps":          s.opts.LogOps,
		"ReadableConfig":  s.opts.ReadableConfig,
		"Access":          s.opts.Access,
		"ServiceAccess":   map[bool]string{false: "write", true: "read"}[s.opts.ReadOnlyService],
		"Schemas":         s.opts.Schemas,
		"ServerID":        s.opts.ServerID,
		"MirrorPeer":      s.opts.MirrorPeer,
	})
	if err != nil {
		return fmt.Errorf("dirserver: slapd.conf: %w", err)
	}
	if err := os.WriteFile(s.confPath(), conf.Bytes(), 0o600); err != nil {
		return fmt.Errorf("dirserver: %w", err)
	}
	if s.opts.NoSeed {
		return nil
	}
	seed := s.baseLDIF() + "\n" + s.opts.Seed
	ldif := filepath.Join(s.Dir, "seed.ldif")
	if err := os.WriteFile(ldif, []byte(seed), 0o600); err != nil {
		return fmt.Errorf("dirserver: %w", err)
	}
	out, err := exec.Command(slapaddPath, "-q", "-f", s.confPath(), "-b", s.Suffix, "-l", ldif).CombinedOutput()
	if err != nil {
		return fmt.Errorf("dirserver: slapadd: %w: %s", err, strings.TrimSpace(string(out)))
	}
	// Loaded: the server keeps no copy (a million users' LDIF is 200 MB), nor the file.
	s.opts.Seed = ""
	return os.Remove(ldif)
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
%[5]suserPassword: %[4]s
description: the account scimbridge binds as
`, s.Suffix, rdnValue(s.Suffix), s.ServiceDN, s.ServicePW, s.serviceClasses())
}

// serviceClasses are the object classes and naming attributes of the service account: a
// person named by cn (the default), or an inetOrgPerson named by its DN's RDN attribute (a
// bind DN among the users).
func (s *Server) serviceClasses() string {
	attr, value, _ := strings.Cut(strings.SplitN(s.ServiceDN, ",", 2)[0], "=")
	if strings.EqualFold(attr, "cn") {
		return "objectClass: person\nobjectClass: simpleSecurityObject\ncn: " + value + "\nsn: " + value + "\n"
	}
	return "objectClass: inetOrgPerson\ncn: " + value + "\nsn: " + value + "\n" + attr + ": " + value + "\n"
}

// Start starts slapd (again, after Stop) on the same port and data, and waits until it answers.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctl != nil {
		if s.ctl.pid() != 0 {
			return nil
		}
		return s.ctl.start()
	}
	if s.cmd != nil {
		return nil
	}
	var lastErr error
	// The port may still be in TIME_WAIT-free limbo just after a Stop; try a few times.
	for attempt := 0; attempt < 5; attempt++ {
		urls := s.URL + "/ " + s.LDAPIURL + "/"
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
			return fmt.Errorf("dirserver: starting slapd: %w", err)
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
	return waitBind(s.URL, s.RootDN, s.RootPW, done, startTimeout)
}

// waitBind waits until url accepts a bind as dn, the server exits (done closes) or timeout
// passes.
func waitBind(url, dn, pw string, done <-chan struct{}, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-done:
			return errors.New("dirserver: the server exited during start")
		default:
		}
		conn, err := ldap.DialURL(url, ldap.DialWithDialer(&net.Dialer{Timeout: time.Second}))
		if err == nil {
			err = conn.Bind(dn, pw)
			conn.Close()
			if err == nil {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("dirserver: the server did not answer within %s: %w", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop stops the server (SIGTERM, then SIGKILL) and keeps its data for a later Start.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctl != nil {
		return s.ctl.stop()
	}
	if s.cmd == nil {
		return nil
	}
	terminate(s.cmd.Process.Pid, s.done, 10*time.Second)
	s.cmd, s.done = nil, nil
	return nil
}

// terminate sends SIGTERM to pid and waits for done, then kills its process group after
// grace; a server started with Setpgid leads that group.
func terminate(pid int, done <-chan struct{}, grace time.Duration) {
	_ = syscall.Kill(pid, syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(grace):
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-done
	}
}

// Close stops the server and removes its directory when Start made it.
func (s *Server) Close() error {
	err := s.Stop()
	s.cleanup()
	return err
}

func (s *Server) cleanup() {
	if s.ctl != nil {
		s.ctl.cleanup()
	}
	if s.tempDir {
		_ = os.RemoveAll(s.Dir)
	}
}

// PID is the server's process id, or 0 when it is stopped.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctl != nil {
		return s.ctl.pid()
	}
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Root opens a connection bound as the rootdn, for test setup and checks.
func (s *Server) Root() (*ldap.Conn, error) {
	return dialBind(s.URL, s.RootDN, s.RootPW)
}

// dialBind connects to url (with opts, such as a TLS configuration) and binds as dn.
func dialBind(url, dn, pw string, opts ...ldap.DialOpt) (*ldap.Conn, error) {
	conn, err := ldap.DialURL(url, append([]ldap.DialOpt{ldap.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second})}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("dirserver: dial: %w", err)
	}
	if err := conn.Bind(dn, pw); err != nil {
		conn.Close()
		return nil, fmt.Errorf("dirserver: bind: %w", err)
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
			return "", fmt.Errorf("dirserver: add %s: %w", d, err)
		}
	}
	return dn, nil
}

// DeleteTree deletes dn and everything below it in one request (the tree delete control, which
// Active Directory and Samba support).
func (s *Server) DeleteTree(dn string) error {
	conn, err := s.Root()
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.Del(ldap.NewDelRequest(dn, []ldap.Control{ldap.NewControlSubtreeDelete()})); err != nil {
		return fmt.Errorf("dirserver: delete tree %s: %w", dn, err)
	}
	return nil
}

// LDIF applies LDIF change records (plain entries are taken as adds) as the rootdn through
// Debian's ldapmodify, exactly as an admin would, so tests exercise changes made outside the
// bridge.
func (s *Server) LDIF(text string) error {
	return ldapmodify(s.URL, s.RootDN, s.RootPW, text)
}
