package ldaptest

import "github.com/scimbridge/scimbridge/ldapstore/dirserver"

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
