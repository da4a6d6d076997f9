package integration

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/ldapstore"
	"github.com/scimbridge/scimbridge/ldapstore/ldaptest"
	"github.com/scimbridge/scimbridge/mapping"
)

const (
	scimUser  = "urn:ietf:params:scim:schemas:core:2.0:User"
	scimGroup = "urn:ietf:params:scim:schemas:core:2.0:Group"
	scimEnt   = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
	scimPatch = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
)

// scimDaemon is a running `scimbridge serve` with its inbound server on its own OU.
type scimDaemon struct {
	*daemon
	t      *testing.T
	slapd  *ldaptest.Server
	ou     string
	people string
	groups string
	token  string
	base   string // https?://addr/scim/v2
	client *http.Client
	root   *ldapstore.Store // bound as the rootdn, for checks
}

// inboundTOML is the [inbound] configuration of a test daemon on its own OU.
func inboundTOML(ou, listen, token, extra string) string {
	sum := sha256.Sum256([]byte(token))
	if !strings.Contains(extra, "max_body_bytes") {
		extra = "max_body_bytes = 65536\n" + extra
	}
	return fmt.Sprintf(`[ldap.users]
base_dn = "ou=people,%[1]s"
[ldap.groups]
base_dn = "ou=groups,%[1]s"
[inbound]
listen = %[2]q
%[4]s
[[inbound.token]]
name = "entra"
sha256 = %[3]q
`, ou, listen, hex.EncodeToString(sum[:]), extra)
}

// startSCIM runs the real binary with the inbound server on a fresh OU of the shared slapd.
// extraInbound is added to the [inbound] table; scheme is "http" or "https".
func startSCIM(t *testing.T, name, extraInbound, scheme string) *scimDaemon {
	t.Helper()
	return startSCIMOn(t, ldaptest.KindOpenLDAP, name, extraInbound, scheme)
}

// startSCIMOn is startSCIM on the package's server of kind k.
func startSCIMOn(t *testing.T, k ldaptest.Kind, name, extraInbound, scheme string) *scimDaemon {
	t.Helper()
	return startSCIMWith(t, k, name, "", extraInbound, scheme)
}

// startSCIMWith is startSCIMOn with extraLDAP added to the [ldap] table and the
// configuration passed through edits before the daemon starts.
func startSCIMWith(t *testing.T, k ldaptest.Kind, name, extraLDAP, extraInbound, scheme string, edits ...func(string) string) *scimDaemon {
	t.Helper()
	s := ldaptest.SharedKind(t, k)
	ou := ldaptest.NewOU(t, s, name)
	return startSCIMAt(t, s, ou, extraLDAP, extraInbound, scheme, edits...)
}

// startSCIMAt runs the real binary on server s with the users and groups bases ou=people and
// ou=groups below ou; extraLDAP is added to the [ldap] table, extraInbound to [inbound], and
// the configuration passes through edits before the daemon starts.
func startSCIMAt(t *testing.T, s *ldaptest.Server, ou, extraLDAP, extraInbound, scheme string, edits ...func(string) string) *scimDaemon {
	t.Helper()
	dir := t.TempDir()
	cfg, admin, inbound := baseConfig(t, s, dir, extraLDAP)
	const token = "integration-token-0123456789abcdef"
	cfg += inboundTOML(ou, inbound, token, extraInbound)
	for _, edit := range edits {
		cfg = edit(cfg)
	}
	d := startDaemon(t, dir, cfg, admin, inbound)
	root, err := ldapstore.Open(context.Background(), ldapstore.Config{URLs: []string{s.URL}, BindDN: s.RootDN, BindPassword: s.RootPW}, zerolog.Nop())
	require.NoError(t, err)
	t.Cleanup(root.Close)
	client := &http.Client{Timeout: 30 * time.Second}
	if scheme == "https" {
		client.Transport = &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}} //nolint:gosec // the test's own self-signed certificate
	}
	return &scimDaemon{
		daemon: d, t: t, slapd: s, ou: ou, people: "ou=people," + ou, groups: "ou=groups," + ou, token: token,
		base: scheme + "://" + inbound + "/scim/v2", client: client, root: root,
	}
}

type scimResp struct {
	status int
	header http.Header
	raw    string
	body   map[string]any
}

func (d *scimDaemon) call(method, path string, body any, headers ...string) scimResp {
	d.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		require.NoError(d.t, err)
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, d.base+path, rd)
	require.NoError(d.t, err)
	req.Header.Set("Authorization", "Bearer "+d.token)
	req.Header.Set("Content-Type", "application/scim+json")
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
		} else {
			req.Header.Set(headers[i], headers[i+1])
		}
	}
	resp, err := d.client.Do(req)
	require.NoError(d.t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(d.t, err)
	r := scimResp{status: resp.StatusCode, header: resp.Header, raw: string(data)}
	if len(data) > 0 {
		_ = json.Unmarshal(data, &r.body)
	}
	return r
}

// expect checks the status; errors must be SCIM error JSON without DNs or LDAP diagnostics.
func (d *scimDaemon) expect(r scimResp, status int, scimType string) {
	d.t.Helper()
	require.Equal(d.t, status, r.status, "body: %s", r.raw)
	if status < 400 {
		return
	}
	require.Contains(d.t, r.header.Get("Content-Type"), "application/scim+json")
	require.Equal(d.t, []any{"urn:ietf:params:scim:api:messages:2.0:Error"}, r.body["schemas"], r.raw)
	require.Equal(d.t, strconv.Itoa(status), r.body["status"])
	if scimType != "" {
		require.Equal(d.t, scimType, r.body["scimType"], r.raw)
	}
	lower := strings.ToLower(r.raw)
	for _, leak := range []string{"dc=example", "ou=", "uid=", "cn=", "ldap result", "ldapstore", "127.0.0.1"} {
		require.NotContains(d.t, lower, leak, "an error shows no DN or LDAP detail")
	}
}

// get reads an entry as the rootdn; ok is false when it does not exist.
func (d *scimDaemon) get(dn string) (mapping.Entry, bool) {
	d.t.Helper()
	e, err := d.root.Get(context.Background(), dn, []string{"*", "+"})
	if err != nil {
		require.ErrorIs(d.t, err, ldapstore.ErrNotFound)
		return mapping.Entry{}, false
	}
	return e, true
}

// search returns the DNs below base matching filter.
func (d *scimDaemon) search(base, filter string) []string {
	d.t.Helper()
	got, err := d.root.SearchAll(context.Background(), ldapstore.Search{Base: base, Scope: ldapstore.ScopeSub, Filter: filter, Attrs: []string{"1.1"}})
	require.NoError(d.t, err)
	out := make([]string, len(got))
	for i, e := range got {
		out[i] = strings.ToLower(e.DN)
	}
	return out
}

// dump is every entry below the daemon's OU with its values, to prove nothing changed.
func (d *scimDaemon) dump() string {
	d.t.Helper()
	got, err := d.root.SearchAll(context.Background(), ldapstore.Search{Base: d.ou, Scope: ldapstore.ScopeSub, Attrs: []string{"*", "entryCSN"}})
	require.NoError(d.t, err)
	var b strings.Builder
	for _, e := range got {
		data, _ := json.Marshal(e.Attrs)
		fmt.Fprintf(&b, "%s %s\n", strings.ToLower(e.DN), data)
	}
	return b.String()
}

func ops(list ...map[string]any) map[string]any {
	l := make([]any, len(list))
	for i, o := range list {
		l[i] = o
	}
	return map[string]any{"schemas": []any{scimPatch}, "Operations": l}
}

func scimOp(name, path string, value any) map[string]any {
	m := map[string]any{"op": name}
	if path != "" {
		m["path"] = path
	}
	if value != nil {
		m["value"] = value
	}
	return m
}

func listed(r scimResp) []map[string]any {
	list, _ := r.body["Resources"].([]any)
	out := make([]map[string]any, 0, len(list))
	for _, x := range list {
		m, _ := x.(map[string]any)
		out = append(out, m)
	}
	return out
}

func hasDN(values []string, dn string) bool {
	for _, v := range values {
		if ldapstore.SameDN(v, dn) {
			return true
		}
	}
	return false
}
