package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/scimbridge/scimbridge/bridge"
)

// Set with -ldflags "-X main.version=… -X main.commit=…" by the Makefile.
var (
	version = ""
	commit  = ""
)

func cmdVersion(_ context.Context, e *env, args []string) int {
	fs := newFlags(e, "version", "")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	v, c := version, commit
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v == "" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && c == "" {
				c = s.Value
			}
		}
	}
	if v == "" || v == "(devel)" {
		v = "devel"
	}
	if c == "" {
		c = "unknown"
	}
	fmt.Fprintf(e.stdout, "scimbridge %s (commit %s, %s %s/%s)\n", v, c, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return exitOK
}

func cmdToken(_ context.Context, e *env, args []string) int {
	fs := newFlags(e, "token", "new [--name NAME]")
	if len(args) == 0 || args[0] != "new" {
		return usageErr(e, fs, "token: want the subcommand \"new\"")
	}
	name := fs.String("name", "entra", "the token's name: the actor in the audit log")
	if code, ok := parse(fs, args[1:]); !ok {
		return code
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return fail(e, "token", err)
	}
	tok := base64.RawURLEncoding.EncodeToString(b[:])
	sum := sha256.Sum256([]byte(tok))
	fmt.Fprintf(e.stdout, "token (shown once; give it to the SCIM client as its secret token):\n  %s\n\n", tok)
	fmt.Fprintf(e.stdout, "add to the configuration:\n[[inbound.token]]\nname = %q\nsha256 = %q\n", *name, hex.EncodeToString(sum[:]))
	return exitOK
}

func cmdCheckConfig(_ context.Context, e *env, args []string) int {
	fs := newFlags(e, "check-config", "--config FILE")
	path := fs.String("config", "", "configuration file (required)")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if *path == "" {
		return usageErr(e, fs, "check-config: --config is required")
	}
	cfg, err := bridge.LoadConfig(*path)
	if cfg != nil {
		for _, w := range cfg.Warnings {
			fmt.Fprintf(e.stderr, "scimbridge check-config: warning: %s\n", w)
		}
	}
	if err != nil {
		return fail(e, "check-config", err)
	}
	// Secrets may live where only the daemon sees them (systemd credentials): say what is
	// missing here, but it is not a configuration error.
	if err := cfg.LoadSecrets(); err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Fprintf(e.stderr, "scimbridge check-config: warning: %s (unreadable here; the daemon must be able to read it)\n", line)
		}
	}
	fmt.Fprintf(e.stdout, "%s: OK (%d provisioners, inbound %s)\n", *path, len(cfg.Provisioners), onOff(cfg.Inbound.Enabled))
	return exitOK
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}
