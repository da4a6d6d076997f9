package ldaptest

import "github.com/scimbridge/scimbridge/ldapstore/slapd"

// The server itself lives in package slapd, which the demo uses too; these names keep the
// tests' spelling.
type (
	// Server is a running private slapd.
	Server = slapd.Server
	// Options configure a private slapd.
	Options = slapd.Options
)

// Defaults of a private directory.
const (
	DefaultSuffix    = slapd.DefaultSuffix
	DefaultRootPW    = slapd.DefaultRootPW
	DefaultServicePW = slapd.DefaultServicePW
	AccesslogSuffix  = slapd.AccesslogSuffix
	InstallHint      = slapd.InstallHint
)

// ErrNotInstalled says slapd is missing; tests skip on it with InstallHint.
var ErrNotInstalled = slapd.ErrNotInstalled

// Installed reports whether slapd and slapadd are installed.
func Installed() bool { return slapd.Installed() }

// Start starts a private slapd (see slapd.Start).
func Start(opts Options) (*Server, error) { return slapd.Start(opts) }
