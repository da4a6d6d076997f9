package targettest

import "github.com/scimbridge/scimbridge/targets/scimserver"

// The server lives in package scimserver, which the demo uses too; these names keep the
// tests' spelling.
type (
	// Server is a strict in-memory SCIM 2.0 service provider.
	Server = scimserver.Server
	// Options configures a Server.
	Options = scimserver.Options
	// OAuth2Options configures the server's token endpoint.
	OAuth2Options = scimserver.OAuth2Options
	// Fault is an injected failure.
	Fault = scimserver.Fault
	// Request is a request the server received.
	Request = scimserver.Request
)

// TokenPath is where the server's OAuth2 token endpoint answers.
const TokenPath = scimserver.TokenPath

// NewServer starts a server (see scimserver.NewServer).
func NewServer(opts Options) *Server { return scimserver.NewServer(opts) }
