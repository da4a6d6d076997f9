package integration

import (
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

type pkg struct {
	ImportPath string
	Imports    []string
	Deps       []string
}

func listPackages(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json=ImportPath,Imports,Deps", "-test=false", "github.com/scimbridge/scimbridge/...")
	out, err := cmd.Output()
	require.NoError(t, err)
	dec := json.NewDecoder(strings.NewReader(string(out)))
	var pkgs []pkg
	for {
		var p pkg
		err := dec.Decode(&p)
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		pkgs = append(pkgs, p)
	}
	require.NotEmpty(t, pkgs)
	return pkgs
}

// TestDeps enforces the package boundaries: only ldapstore talks LDAP, mapping and targets
// are independent of it, and only cmd handles signals.
func TestDeps(t *testing.T) {
	const module = "github.com/scimbridge/scimbridge/"
	for _, p := range listPackages(t) {
		rel := strings.TrimPrefix(p.ImportPath, module)
		inLDAPStore := rel == "ldapstore" || strings.HasPrefix(rel, "ldapstore/")
		for _, imp := range p.Imports {
			if strings.HasPrefix(imp, "github.com/go-ldap/ldap") || strings.HasPrefix(imp, "github.com/go-asn1-ber/") {
				require.True(t, inLDAPStore, "%s imports %s: only ldapstore may talk LDAP", p.ImportPath, imp)
			}
			if imp == "os/signal" {
				require.True(t, strings.HasPrefix(rel, "cmd/"), "%s imports os/signal: only cmd/ handles signals", p.ImportPath)
			}
		}
		if rel == "mapping" || strings.HasPrefix(rel, "mapping/") || rel == "targets" || strings.HasPrefix(rel, "targets/") {
			for _, d := range p.Deps {
				require.False(t, strings.HasPrefix(d, "github.com/go-ldap/"), "%s depends on %s", p.ImportPath, d)
				require.False(t, strings.HasPrefix(d, module+"ldapstore"), "%s depends on %s", p.ImportPath, d)
				require.False(t, strings.HasPrefix(d, module+"bridge"), "%s depends on %s", p.ImportPath, d)
			}
		}
		if rel == "mapping" {
			for _, d := range p.Imports {
				for _, banned := range []string{"net/http", "os", "github.com/rs/zerolog", "context"} {
					require.NotEqual(t, banned, d, "mapping is a leaf: no I/O, logger or context (%s)", d)
				}
			}
		}
	}
}

// TestEveryPackageHasDoc checks that each package has a doc.go with a package comment.
func TestEveryPackageHasDoc(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.Dir}} {{.Doc}}", "github.com/scimbridge/scimbridge/...").Output()
	require.NoError(t, err)
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		dir, doc, _ := strings.Cut(line, " ")
		require.NotEmpty(t, strings.TrimSpace(doc), "%s has no package comment (doc.go)", dir)
	}
}

// TestShippedBinaryLinksNoTestCode checks that the dependency closure of cmd/scimbridge (what
// the shipped binary links) holds no testing package and no test helper of this module: the
// demo's directory and sample target are product packages, not the tests' helpers.
func TestShippedBinaryLinksNoTestCode(t *testing.T) {
	const module = "github.com/scimbridge/scimbridge/"
	out, err := exec.Command("go", "list", "-deps", "-test=false", module+"cmd/scimbridge").Output()
	require.NoError(t, err)
	deps := strings.Fields(string(out))
	require.Contains(t, deps, module+"bridge", "the listing is the binary's closure")
	for _, d := range deps {
		require.NotEqual(t, "testing", d, "cmd/scimbridge links the testing package")
		require.False(t, strings.HasPrefix(d, "testing/"), "cmd/scimbridge links %s", d)
		require.NotEqual(t, "net/http/httptest", d, "cmd/scimbridge links net/http/httptest")
		for _, helper := range []string{"ldapstore/ldaptest", "targets/targettest"} {
			require.NotEqual(t, module+helper, d, "cmd/scimbridge links the test helper %s", d)
		}
	}
}
