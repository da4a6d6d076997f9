package ldaptest

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/scimbridge/scimbridge/ldapstore/dirserver"
)

// The servers themselves live in package dirserver, which the demo uses too; these names keep
// the tests' spelling.
type (
	// Server is a running private directory server.
	Server = dirserver.Server
	// Options configure a private slapd (and name the suffix of the other kinds).
	Options = dirserver.Options
	// ADOptions configure a private Samba AD DC.
	ADOptions = dirserver.ADOptions
	// Kind is a family of directory servers.
	Kind = dirserver.Kind
)

// The kinds of directory servers.
const (
	KindOpenLDAP = dirserver.KindOpenLDAP
	Kind389DS    = dirserver.Kind389DS
	KindAD       = dirserver.KindAD
)

// Defaults of a private directory and what to do when a server is missing.
const (
	DefaultSuffix    = dirserver.DefaultSuffix
	DefaultRootPW    = dirserver.DefaultRootPW
	DefaultServicePW = dirserver.DefaultServicePW
	AccesslogSuffix  = dirserver.AccesslogSuffix
	InstallHint      = dirserver.InstallHint
	Install389Hint   = dirserver.Install389Hint
	InstallADHint    = dirserver.InstallADHint
)

// ErrNotInstalled says slapd is missing; tests skip on it with InstallHint.
var ErrNotInstalled = dirserver.ErrNotInstalled

// Installed reports whether slapd and slapadd are installed.
func Installed() bool { return dirserver.Installed() }

// Installed389 reports whether 389 Directory Server can run here.
func Installed389() bool { return dirserver.Installed389() }

// InstalledAD reports whether a Samba AD DC can run here.
func InstalledAD() bool { return dirserver.InstalledAD() }

// Start starts a private slapd (see dirserver.Start).
func Start(opts Options) (*Server, error) { return dirserver.Start(opts) }

// Start389 starts a private 389 Directory Server (see dirserver.Start389).
func Start389(opts Options) (*Server, error) { return dirserver.Start389(opts) }

// StartAD starts a private Samba AD DC (see dirserver.StartAD).
func StartAD(opts ADOptions) (*Server, error) { return dirserver.StartAD(opts) }

// OptionalSchema is the path of scimbridge's optional schema for slapd.conf.
func OptionalSchema() string { return dirserver.OptionalSchema() }

// SchemaFile is the path of a file of scimbridge's optional schema (see dirserver.SchemaFile).
func SchemaFile(name string) string { return dirserver.SchemaFile(name) }

// ProcessCPU returns the CPU time (user and system) process pid has used so far, from
// /proc/PID/stat in clock ticks of 10 ms; 0 when it cannot be read. Benchmarks use it to split
// the cost of an operation between the directory server and the process under test.
func ProcessCPU(pid int) time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The fields after the command name (which may hold spaces, in parentheses).
	_, rest, _ := strings.Cut(string(raw), ") ")
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}
