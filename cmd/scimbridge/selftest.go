package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/scimbridge/scimbridge/bridge/selftest"
)

// maxTokenFileBytes bounds what is read as a token: a token file is one line.
const maxTokenFileBytes = 64 << 10

// flagNames names the flags behind selftest.Options fields in its validation errors.
var flagNames = strings.NewReplacer("Options.URL", "--url", "Options.Timeout", "--timeout")

// cmdSelftest replays Entra ID's provisioning conversation against a SCIM endpoint. It
// exits 0 when every step passes, 1 when one fails (or the run is interrupted; what it
// created is deleted all the same), 2 on a usage error.
func cmdSelftest(ctx context.Context, e *env, args []string) int {
	fs := newFlags(e, "selftest", "--url URL --token-file FILE [--timeout D] [--insecure-skip-verify] [--keep]")
	rawURL := fs.String("url", "", "SCIM base URL, as given to Entra ID as the Tenant URL, e.g. https://scim.example.com/scim/v2 (required)")
	tokenFile := fs.String("token-file", "", "file holding the bearer token (Entra ID's Secret Token), or - for stdin (required)")
	timeout := fs.Duration("timeout", 15*time.Second, "timeout of each request")
	insecure := fs.Bool("insecure-skip-verify", false, "do not verify the endpoint's TLS certificate (test endpoints only)")
	keep := fs.Bool("keep", false, "leave the users and groups the run creates on the endpoint (debugging)")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	switch {
	case fs.NArg() > 0:
		return usageErr(e, fs, fmt.Sprintf("selftest: unexpected argument %q", fs.Arg(0)))
	case *rawURL == "":
		return usageErr(e, fs, "selftest: --url is required")
	case *tokenFile == "":
		return usageErr(e, fs, "selftest: --token-file is required")
	case *timeout <= 0:
		return usageErr(e, fs, fmt.Sprintf("selftest: --timeout %s must be positive", *timeout))
	}
	token, err := readToken(e, *tokenFile)
	if err != nil {
		return fail(e, "selftest", err)
	}
	opts := selftest.Options{
		URL:                *rawURL,
		Token:              token,
		Out:                e.stdout,
		Timeout:            *timeout,
		InsecureSkipVerify: *insecure,
		Keep:               *keep,
	}
	if err := opts.Validate(); err != nil {
		// readToken checked the token; what is left comes from the flags.
		return usageErr(e, fs, flagNames.Replace(err.Error()))
	}
	rep, err := selftest.Run(ctx, opts)
	if err != nil {
		return fail(e, "selftest", err)
	}
	if !rep.OK() {
		return fail(e, "selftest", fmt.Errorf("%d of %d steps failed", rep.Failed, len(rep.Steps)))
	}
	return exitOK
}

// readToken reads the bearer token from path ("-" for stdin), without its trailing line
// break. Errors name the file, never its content.
func readToken(e *env, path string) (string, error) {
	var r io.Reader
	if path == "-" {
		r = e.stdin
	} else {
		f, err := os.Open(path)
		if err != nil {
			return "", fmt.Errorf("reading the token: %w", err)
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, maxTokenFileBytes+1))
	if err != nil {
		return "", fmt.Errorf("reading the token from %s: %w", path, err)
	}
	if len(b) > maxTokenFileBytes {
		return "", fmt.Errorf("reading the token from %s: over %d bytes", path, maxTokenFileBytes)
	}
	token := strings.TrimRight(string(b), "\r\n")
	switch {
	case token == "":
		return "", errors.New("reading the token from " + path + ": it is empty")
	case strings.ContainsAny(token, "\r\n"):
		return "", errors.New("reading the token from " + path + ": it has more than one line")
	}
	return token, nil
}
