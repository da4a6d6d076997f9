package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/scimbridge/scimbridge/bridge"
	"github.com/scimbridge/scimbridge/bridge/config"
	"github.com/scimbridge/scimbridge/ldapstore/dirserver"
	"github.com/scimbridge/scimbridge/targets/scimserver"
)

// demoSeed is the sample directory: a few people and two groups.
const demoSeed = `dn: uid=ada,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: ada
cn: Ada Lovelace
givenName: Ada
sn: Lovelace
displayName: Ada Lovelace
mail: ada@example.org
title: Analyst

dn: uid=grace,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: grace
cn: Grace Hopper
givenName: Grace
sn: Hopper
displayName: Grace Hopper
mail: grace@example.org
title: Rear Admiral

dn: uid=alan,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: alan
cn: Alan Turing
givenName: Alan
sn: Turing
displayName: Alan Turing
mail: alan@example.org

dn: uid=edsger,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: edsger
cn: Edsger Dijkstra
givenName: Edsger
sn: Dijkstra
mail: edsger@example.org

dn: cn=staff,ou=groups,dc=example,dc=org
objectClass: groupOfNames
cn: staff
member: uid=ada,ou=people,dc=example,dc=org
member: uid=grace,ou=people,dc=example,dc=org
member: uid=alan,ou=people,dc=example,dc=org
member: uid=edsger,ou=people,dc=example,dc=org

dn: cn=saas-users,ou=groups,dc=example,dc=org
objectClass: groupOfNames
cn: saas-users
member: uid=ada,ou=people,dc=example,dc=org
member: uid=grace,ou=people,dc=example,dc=org
`

func cmdDemo(ctx context.Context, e *env, args []string) int {
	fs := newFlags(e, "demo", "[--listen ADDR] [--dir DIR]")
	listen := fs.String("listen", "127.0.0.1:8080", "inbound SCIM listen address (a free port is used if it is taken)")
	adminListen := fs.String("admin-listen", "127.0.0.1:9480", "admin listen address (a free port is used if it is taken)")
	dir := fs.String("dir", "", "working directory (default: a new temporary directory, removed at exit)")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if !dirserver.Installed() {
		return fail(e, "demo", fmt.Errorf("%s", dirserver.InstallHint))
	}
	work := *dir
	if work == "" {
		d, err := os.MkdirTemp("", "scimbridge-demo-")
		if err != nil {
			return fail(e, "demo", err)
		}
		defer os.RemoveAll(d)
		work = d
	}
	if err := os.MkdirAll(filepath.Join(work, "slapd"), 0o700); err != nil {
		return fail(e, "demo", err)
	}

	slapdDir := filepath.Join(work, "slapd")
	directory, err := dirserver.Start(dirserver.Options{Dir: slapdDir, Seed: demoSeed, Durable: true})
	if err != nil {
		return fail(e, "demo", err)
	}
	defer directory.Close()

	targetToken := randomToken()
	target := scimserver.NewServer(scimserver.Options{BasePath: "/scim/v2", BearerTokens: []string{targetToken}})
	defer target.Close()

	token := randomToken()
	sum := sha256.Sum256([]byte(token))
	cfgText := fmt.Sprintf(`# written by scimbridge demo
[log]
level = "info"
format = "console"

[state]
dir = %q

[admin]
listen = %q

[ldap]
url = %q
bind_dn = %q
bind_password_file = "ldap-password"
base_dn = %q

[inbound]
listen = %q

[[inbound.token]]
name = "demo"
sha256 = %q
%s`, filepath.Join(work, "state"), freeAddr(*adminListen), directory.URL, directory.ServiceDN, directory.Suffix, freeAddr(*listen),
		hex.EncodeToString(sum[:]), demoProvisioners(target.URL, "target-token"))
	files := map[string]string{"scimbridge.toml": cfgText, "ldap-password": directory.ServicePW + "\n", "target-token": targetToken + "\n"}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(work, name), []byte(content), 0o600); err != nil {
			return fail(e, "demo", err)
		}
	}
	cfgPath := filepath.Join(work, "scimbridge.toml")
	cfg, err := loadForDaemon(cfgPath)
	if err != nil {
		return fail(e, "demo", err)
	}
	logger, out := newLogger(e.stderr, cfg.Log)
	return serveConfig(ctx, e, cfg, logger, out, func() (*config.Config, error) { return loadForDaemon(cfgPath) }, func(b *bridge.Bridge) {
		printDemoBanner(e, b, directory, target, targetToken, token, cfgPath)
	})
}

// demoProvisioners is the demo's outbound configuration: the members of saas-users (ada and
// grace) are pushed to the sample target with their group; try adding alan to saas-users with
// ldapmodify and watch him appear there.
var demoProvisioners = func(targetURL, tokenFile string) string {
	return fmt.Sprintf(`
[[provisioner]]
name = "sample-app"
type = "scim"
url = %q
auth = "bearer"
token_file = %q
groups = ["cn=saas-users,ou=groups,dc=example,dc=org"]
push_groups = true
deprovision = "disable"
`, targetURL, tokenFile)
}

func printDemoBanner(e *env, b *bridge.Bridge, directory *dirserver.Server, target *scimserver.Server, targetToken, token, cfgPath string) {
	w := e.stdout
	scim := ""
	if addr := b.InboundAddr(); addr != "" {
		scim = "http://" + addr + "/scim/v2"
	}
	fmt.Fprintf(w, "\nscimbridge demo is running. Ctrl-C stops everything.\n\n")
	fmt.Fprintf(w, "  directory     %s  (base dc=example,dc=org; admin %s / %s)\n", directory.URL, directory.RootDN, directory.RootPW)
	fmt.Fprintf(w, "  admin         http://%s/metrics  /status  /readyz\n", b.AdminAddr())
	if scim != "" {
		fmt.Fprintf(w, "  inbound SCIM  %s\n  token         %s\n", scim, token)
	}
	fmt.Fprintf(w, "  sample target %s  (a local SCIM server standing in for a SaaS app)\n", target.URL)
	fmt.Fprintf(w, "  config        %s\n\n", cfgPath)
	fmt.Fprintf(w, "Try:\n")
	if scim != "" {
		fmt.Fprintf(w, "  curl -s -H 'Authorization: Bearer %s' '%s/Users?filter=userName%%20eq%%20%%22ada%%22'\n", token, scim)
		fmt.Fprintf(w, "  curl -s -H 'Authorization: Bearer %s' -H 'Content-Type: application/scim+json' -d '{\"schemas\":[\"urn:ietf:params:scim:schemas:core:2.0:User\"],\"userName\":\"linus\",\"name\":{\"givenName\":\"Linus\",\"familyName\":\"Torvalds\"},\"emails\":[{\"value\":\"linus@example.org\",\"type\":\"work\",\"primary\":true}]}' %s/Users\n", token, scim)
		fmt.Fprintf(w, "  curl -s -H 'Authorization: Bearer %s' '%s/Groups?excludedAttributes=members&filter=displayName%%20eq%%20%%22staff%%22'\n", token, scim)
		fmt.Fprintf(w, "  printf '%%s\\n' '%s' | %s selftest --url %s --token-file -    # Entra ID's provisioning conversation\n", token, os.Args[0], scim)
	}
	fmt.Fprintf(w, "  ldapsearch -x -H %s -D '%s' -w %s -b ou=people,dc=example,dc=org '(uid=*)' cn mail\n", directory.URL, directory.RootDN, directory.RootPW)
	fmt.Fprintf(w, "  printf 'dn: uid=ada,ou=people,dc=example,dc=org\\nchangetype: modify\\nreplace: title\\ntitle: Countess\\n' | ldapmodify -x -H %s -D '%s' -w %s\n", directory.URL, directory.RootDN, directory.RootPW)
	fmt.Fprintf(w, "  printf 'dn: cn=saas-users,ou=groups,dc=example,dc=org\\nchangetype: modify\\nadd: member\\nmember: uid=alan,ou=people,dc=example,dc=org\\n' | ldapmodify -x -H %s -D '%s' -w %s\n", directory.URL, directory.RootDN, directory.RootPW)
	fmt.Fprintf(w, "  curl -s -H 'Authorization: Bearer %s' %s/Users    # what reached the sample app (members of saas-users)\n", targetToken, target.URL)
	fmt.Fprintf(w, "  %s status --config %s\n\n", os.Args[0], cfgPath)
}

func randomToken() string {
	var b [24]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// freeAddr returns addr when it can be bound, else a free port on the same host.
func freeAddr(addr string) string {
	l, err := net.Listen("tcp", addr)
	if err == nil {
		l.Close()
		return addr
	}
	host, _, _ := strings.Cut(addr, ":")
	l, err = net.Listen("tcp", host+":0")
	if err != nil {
		return addr
	}
	defer l.Close()
	return l.Addr().String()
}
