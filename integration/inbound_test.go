package integration

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/ldapstore"
	"github.com/scimbridge/scimbridge/ldapstore/ldaptest"
	"github.com/scimbridge/scimbridge/mapping"
)

func f(filter string) string { return url.QueryEscape(filter) }

// TestInboundEntraSequence drives `scimbridge serve` over HTTP through Microsoft Entra ID's
// documented provisioning sequence on each kind of directory, checking the directory with
// LDAP searches after each step.
func TestInboundEntraSequence(t *testing.T) {
	for _, k := range ldaptest.Kinds {
		t.Run(string(k), func(t *testing.T) { entraSequence(t, k) })
	}
}

// dirView says where the daemon's writes land in one kind of directory: its dialect's
// default maps and naming.
type dirView struct {
	kind                                             ldaptest.Kind
	idAttr, userClass, groupClass                    string
	userName, externalID, employeeNumber, department string
}

var views = map[ldaptest.Kind]dirView{
	ldaptest.KindOpenLDAP: {ldaptest.KindOpenLDAP, "entryUUID", "inetOrgPerson", "groupOfNames", "uid", "businessCategory", "employeeNumber", "departmentNumber"},
	ldaptest.Kind389DS:    {ldaptest.Kind389DS, "nsUniqueId", "inetOrgPerson", "groupOfNames", "uid", "businessCategory", "employeeNumber", "departmentNumber"},
	ldaptest.KindAD:       {ldaptest.KindAD, "objectGUID", "user", "group", "userPrincipalName", "adminDescription", "employeeID", "department"},
}

func (v dirView) ad() bool { return v.kind == ldaptest.KindAD }

// userDN is where a user created with userName lands: named by uid, or on AD by the
// sAMAccountName derived from it.
func (v dirView) userDN(people, userName string) string {
	if v.ad() {
		return "CN=" + mapping.SAMAccountName(userName, mapping.MaxUserSAMAccountName) + "," + people
	}
	return "uid=" + userName + "," + people
}

// idFilter finds an entry by its SCIM id.
func (v dirView) idFilter(t *testing.T, id string) string {
	f, err := ldapstore.IDFilter(v.idAttr, id)
	require.NoError(t, err)
	return f
}

// disabled reads the dialect's disabled marker.
func (v dirView) disabled(e mapping.Entry) bool {
	switch v.kind {
	case ldaptest.Kind389DS:
		return strings.EqualFold(e.First("nsAccountLock"), "true")
	case ldaptest.KindAD:
		n, _ := strconv.Atoi(e.First("userAccountControl"))
		return n&2 != 0
	}
	return slices.Contains(e.Get("employeeType"), "scimbridge:disabled")
}

// members are a group's member values; an empty OpenLDAP group holds the placeholder.
func (v dirView) emptyMembers() []string {
	if v.kind == ldaptest.KindOpenLDAP {
		return []string{""}
	}
	return nil
}

func entraSequence(t *testing.T, k ldaptest.Kind) {
	v := views[k]
	d := startSCIMOn(t, k, "entra", "", "http")

	// Test Connection: a random userName → 200 with no results.
	r := d.call("GET", "/Users?filter="+f(`userName eq "e9e30dba-f08f-4109-8486-d5c6a331660a"`), nil)
	d.expect(r, http.StatusOK, "")
	require.EqualValues(t, 0, r.body["totalResults"])
	require.Equal(t, []any{}, r.body["Resources"])

	// Create User (Entra's documented body).
	r = d.call("POST", "/Users", `{
		"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
		"externalId": "0a21f0f2-8d2a-4f8e-bf98-7371c9e4dc6c",
		"userName": "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1",
		"active": true,
		"emails": [{"primary": true, "type": "work", "value": "Test_User_fd0ea19b-0777-472c-9f96-4f70d2226f2e@testuser.com"}],
		"meta": {"resourceType": "User"},
		"name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
		"roles": [],
		"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"employeeNumber": "701984", "department": "Tour Operations", "costCenter": "4130"}
	}`)
	d.expect(r, http.StatusCreated, "")
	id := r.body["id"].(string)
	require.Equal(t, d.base+"/Users/"+id, r.header.Get("Location"))
	dn := v.userDN(d.people, "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1")
	require.Equal(t, []string{strings.ToLower(dn)}, d.search(d.people, v.idFilter(t, id)), "id is the %s of the new entry", v.idAttr)
	e, _ := d.get(dn)
	require.Contains(t, e.Get("objectClass"), v.userClass)
	require.Equal(t, "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1", e.First(v.userName))
	require.Equal(t, "familyName", e.First("sn"))
	require.Equal(t, "givenName", e.First("givenName"))
	require.Equal(t, "Test_User_fd0ea19b-0777-472c-9f96-4f70d2226f2e@testuser.com", e.First("mail"))
	require.Equal(t, "0a21f0f2-8d2a-4f8e-bf98-7371c9e4dc6c", e.First(v.externalID))
	require.Equal(t, "701984", e.First(v.employeeNumber))
	require.Equal(t, "Tour Operations", e.First(v.department))
	require.False(t, v.disabled(e), "created active")
	if v.ad() {
		require.Equal(t, "Test_User_ab649-b775", e.First("sAMAccountName"), "derived from userName within AD's 20 characters: a prefix and a hash of the whole")
		require.Equal(t, "512", e.First("userAccountControl"), "an enabled normal account, nothing else")
	} else {
		require.Equal(t, "givenName familyName", e.First("cn"))
	}

	// Get User; by filter on userName and on externalId.
	r = d.call("GET", "/Users/"+id, nil)
	d.expect(r, http.StatusOK, "")
	require.Equal(t, "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1", r.body["userName"])
	require.Equal(t, r.header.Get("ETag"), r.body["meta"].(map[string]any)["version"])
	for _, filter := range []string{`userName eq "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1"`, `externalId eq "0a21f0f2-8d2a-4f8e-bf98-7371c9e4dc6c"`} {
		r = d.call("GET", "/Users?filter="+f(filter), nil)
		d.expect(r, http.StatusOK, "")
		require.EqualValues(t, 1, r.body["totalResults"], filter)
		require.Equal(t, id, listed(r)[0]["id"])
	}

	// PATCH multi-valued and single-valued attributes (capitalised ops, path filters).
	r = d.call("PATCH", "/Users/"+id, ops(
		scimOp("Replace", `emails[type eq "work"].value`, "updatedEmail@microsoft.com"),
		scimOp("Replace", "name.familyName", "updatedFamilyName"),
		scimOp("Add", "title", "Tour guide"),
	))
	d.expect(r, http.StatusOK, "")
	e, _ = d.get(dn)
	require.Equal(t, []string{"updatedEmail@microsoft.com"}, e.Get("mail"))
	require.Equal(t, []string{"updatedFamilyName"}, e.Get("sn"))
	require.Equal(t, []string{"Tour guide"}, e.Get("title"))

	// Manager as a plain string, by id: stored as the manager's DN.
	r = d.call("POST", "/Users", map[string]any{"schemas": []any{scimUser}, "userName": "the.manager", "name": map[string]any{"familyName": "Boss"}})
	d.expect(r, http.StatusCreated, "")
	mgr := r.body["id"].(string)
	mgrDN := v.userDN(d.people, "the.manager")
	r = d.call("PATCH", "/Users/"+id, ops(scimOp("Add", scimEnt+":manager", mgr)))
	d.expect(r, http.StatusOK, "")
	e, _ = d.get(dn)
	require.True(t, hasDN(e.Get("manager"), mgrDN))

	// Disable with the string "False", as Entra sends it.
	r = d.call("PATCH", "/Users/"+id, ops(scimOp("Replace", "active", "False")))
	d.expect(r, http.StatusOK, "")
	require.Equal(t, false, r.body["active"])
	e, _ = d.get(dn)
	require.True(t, v.disabled(e), "the dialect's disabled marker is set")
	r = d.call("GET", "/Users?filter="+f(`active eq false`), nil)
	d.expect(r, http.StatusOK, "")
	require.EqualValues(t, 1, r.body["totalResults"], "active filters on the dialect's marker")

	// Groups: create without members, add and remove members.
	r = d.call("POST", "/Groups", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group","http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
		"externalId":"8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159","displayName":"Tour Guides","meta":{"resourceType":"Group"}}`)
	d.expect(r, http.StatusCreated, "")
	gid := r.body["id"].(string)
	gdn := "cn=Tour Guides," + d.groups
	g, ok := d.get(gdn)
	require.True(t, ok)
	require.Contains(t, g.Get("objectClass"), v.groupClass)
	require.Equal(t, v.emptyMembers(), g.Get("member"), "a group may be created empty")
	require.Equal(t, "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159", g.First(v.externalID))
	r = d.call("GET", "/Groups?excludedAttributes=members&filter="+f(`displayName eq "Tour Guides"`), nil)
	d.expect(r, http.StatusOK, "")
	require.EqualValues(t, 1, r.body["totalResults"])
	r = d.call("PATCH", "/Groups/"+gid, ops(scimOp("Add", "members", []any{map[string]any{"$ref": nil, "value": id}, map[string]any{"value": mgr}})))
	d.expect(r, http.StatusNoContent, "")
	g, _ = d.get(gdn)
	require.Len(t, g.Get("member"), 2)
	require.True(t, hasDN(g.Get("member"), dn))
	require.True(t, hasDN(g.Get("member"), mgrDN))
	// Entra adds a member again (at-least-once): harmless, on AD too (68 there).
	r = d.call("PATCH", "/Groups/"+gid, ops(scimOp("Add", "members", []any{map[string]any{"value": mgr}})))
	d.expect(r, http.StatusNoContent, "")
	r = d.call("PATCH", "/Groups/"+gid, ops(scimOp("Remove", "members", []any{map[string]any{"value": mgr}})))
	d.expect(r, http.StatusNoContent, "")
	g, _ = d.get(gdn)
	require.Len(t, g.Get("member"), 1)
	// And removes it again: harmless too (53 on AD).
	r = d.call("PATCH", "/Groups/"+gid, ops(scimOp("Remove", "members", []any{map[string]any{"value": mgr}})))
	d.expect(r, http.StatusNoContent, "")

	// Rename: a new userName. Where userName is the RDN (uid) the entry is renamed; on AD
	// the entry keeps its name (its sAMAccountName) and only userPrincipalName changes. The
	// id stays, and the group member follows.
	r = d.call("PATCH", "/Users/"+id, ops(scimOp("Replace", "userName", "renamed.user@testuser.com")))
	d.expect(r, http.StatusOK, "")
	require.Equal(t, id, r.body["id"])
	newDN := "uid=renamed.user@testuser.com," + d.people
	if v.ad() {
		newDN = dn
	}
	require.Equal(t, []string{strings.ToLower(newDN)}, d.search(d.people, v.idFilter(t, id)))
	e, _ = d.get(newDN)
	require.Equal(t, "renamed.user@testuser.com", e.First(v.userName))
	g, _ = d.get(gdn)
	require.True(t, hasDN(g.Get("member"), newDN), "the group member DN follows the rename")

	// A group rename: displayName is the group's RDN, changed with ModifyDN only (AD refuses
	// a Modify of its naming attribute).
	r = d.call("PATCH", "/Groups/"+gid, ops(scimOp("Replace", "displayName", "Tour Leaders")))
	d.expect(r, http.StatusNoContent, "")
	_, ok = d.get(gdn)
	require.False(t, ok)
	gdn = "cn=Tour Leaders," + d.groups
	g, ok = d.get(gdn)
	require.True(t, ok)
	require.True(t, hasDN(g.Get("member"), newDN), "members stay")

	// An admin's ldapmodify is visible on the next GET.
	require.NoError(t, d.slapd.LDIF("dn: "+newDN+"\nchangetype: modify\nreplace: title\ntitle: Countess\n"))
	r = d.call("GET", "/Users/"+id, nil)
	d.expect(r, http.StatusOK, "")
	require.Equal(t, "Countess", r.body["title"])

	// Remove the last member with a filter path: the group stays valid.
	r = d.call("PATCH", "/Groups/"+gid, ops(scimOp("Remove", `members[value eq "`+id+`"]`, nil)))
	d.expect(r, http.StatusNoContent, "")
	g, _ = d.get(gdn)
	require.Equal(t, v.emptyMembers(), g.Get("member"))

	// Delete the user and the group.
	r = d.call("DELETE", "/Users/"+id, nil)
	d.expect(r, http.StatusNoContent, "")
	require.Empty(t, d.search(d.people, v.idFilter(t, id)))
	r = d.call("GET", "/Users/"+id, nil)
	d.expect(r, http.StatusNotFound, "")
	r = d.call("DELETE", "/Groups/"+gid, nil)
	d.expect(r, http.StatusNoContent, "")
	_, ok = d.get(gdn)
	require.False(t, ok)

	// Audit events and metrics.
	// The last audit event may be written just after its response went out.
	waitFor(t, "the audit event of the group delete", func() bool {
		return strings.Contains(d.stderr.String(), `"audit":true,"actor":"entra","resource":"Group","id":"`+gid+`","op":"delete","result":"success"`)
	})
	require.Contains(t, d.stderr.String(), `"audit":true,"actor":"entra","resource":"User","id":"`+id+`","op":"create","result":"success"`)
	_, metrics := d.daemon.get("/metrics")
	require.Contains(t, metrics, `scimbridge_inbound_requests_total{endpoint="Users",method="POST",status="201"} 2`)
	require.Contains(t, metrics, `scimbridge_inbound_request_duration_seconds_count{endpoint="Groups/{id}",method="PATCH"}`)
	require.Equal(t, 0, d.stop())
}

// TestInboundBadInput: each bad request is a SCIM error with the right status and scimType,
// leaks no DN or LDAP diagnostic, and leaves the directory untouched.
func TestInboundBadInput(t *testing.T) {
	d := startSCIM(t, "badinput", "", "http")
	r := d.call("POST", "/Users", map[string]any{"userName": "victim", "title": "kept"})
	d.expect(r, http.StatusCreated, "")
	id := r.body["id"].(string)
	svc, ok := d.get(d.slapd.ServiceDN)
	require.True(t, ok)
	svcID := svc.First("entryUUID")

	patch := func(path string, value any) map[string]any { return ops(scimOp("replace", path, value)) }
	deep := `userName eq "x"`
	for i := range 20 {
		deep = fmt.Sprintf(`title eq "t%d" %s (%s)`, i, []string{"and", "or"}[i%2], deep)
	}
	for _, tc := range []struct {
		name, method, path string
		body               any
		headers            []string
		status             int
		scimType           string
	}{
		{"malformed JSON", "POST", "/Users", `{"userName": "x",`, nil, 400, "invalidSyntax"},
		{"wrong type", "POST", "/Users", `{"userName":"x","active":[1]}`, nil, 400, "invalidValue"},
		{"wrong type in PATCH", "PATCH", "/Users/" + id, patch("name", 5), nil, 400, "invalidValue"},
		{"attribute in no schema", "POST", "/Users", `{"userName":"x","shoeSize":"44"}`, nil, 400, "invalidSyntax"},
		{"path in no schema", "PATCH", "/Users/" + id, patch("shoeSize", "44"), nil, 400, "invalidPath"},
		{"bad filter", "GET", "/Users?filter=" + f(`userName eq`), nil, nil, 400, "invalidFilter"},
		{"unmappable filter", "GET", "/Users?filter=" + f(`nickName eq "x"`), nil, nil, 400, "invalidFilter"},
		{"over-deep filter", "GET", "/Users?filter=" + f(deep), nil, nil, 400, "invalidFilter"},
		{"injection in filter", "GET", "/Users?filter=" + f(`userName eq "*)(uid=*"`), nil, nil, 200, ""},
		{"backslash in filter", "GET", "/Users?filter=" + f(`userName eq "\\"`), nil, nil, 200, ""},
		{"injection as manager", "PATCH", "/Users/" + id, patch(scimEnt+":manager", "*)(uid=*"), nil, 400, "invalidValue"},
		{"injection as id", "DELETE", "/Users/*", nil, nil, 404, ""},
		{"injection as id 2", "GET", "/Users/" + url.PathEscape("*)(entryUUID=*"), nil, nil, 404, ""},
		{"NUL in a value", "PATCH", "/Users/" + id, `{"schemas":["` + scimPatch + `"],"Operations":[{"op":"replace","path":"title","value":"a\u0000b"}]}`, nil, 400, "invalidValue"},
		{"non-UTF-8", "POST", "/Users", []byte("{\"userName\":\"x\xff\"}"), nil, 400, "invalidSyntax"},
		{"body over the limit", "POST", "/Users", `{"userName":"big","title":"` + strings.Repeat("x", 70000) + `"}`, nil, 413, ""},
		{"missing token", "GET", "/Users", nil, []string{"Authorization", ""}, 401, ""},
		{"wrong token", "DELETE", "/Users/" + id, nil, []string{"Authorization", "Bearer wrong"}, 401, ""},
		{"service account by id", "GET", "/Users/" + svcID, nil, nil, 404, ""},
		{"service account PATCH", "PATCH", "/Users/" + svcID, patch("title", "pwned"), nil, 404, ""},
		{"service account DELETE", "DELETE", "/Users/" + svcID, nil, nil, 404, ""},
		{"service account as group", "DELETE", "/Groups/" + svcID, nil, nil, 404, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dd := *d
			dd.t = t
			before := dd.dump()
			r := dd.call(tc.method, tc.path, tc.body, tc.headers...)
			dd.expect(r, tc.status, tc.scimType)
			if tc.status == 200 {
				require.EqualValues(t, 0, r.body["totalResults"], "an injected value is compared literally")
			}
			require.Equal(t, before, dd.dump(), "the directory is untouched")
		})
	}
	r = d.call("GET", "/Users?filter="+f(`id eq "`+svcID+`"`), nil)
	d.expect(r, http.StatusOK, "")
	require.EqualValues(t, 0, r.body["totalResults"], "the service account is invisible")
	_, ok = d.get(d.slapd.ServiceDN)
	require.True(t, ok, "and untouched")
	require.NotContains(t, d.stderr.String(), d.slapd.ServicePW)
}

// TestInboundTLSAndTokenRotation: with a certificate configured the server speaks TLS; a
// SIGHUP with a new token file accepts the new token (and the old one while both are listed,
// the rotation), without a restart.
func TestInboundTLSAndTokenRotation(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := selfSigned(t, dir)
	d := startSCIM(t, "tls", fmt.Sprintf("tls_cert_file = %q\ntls_key_file = %q\nread_timeout = \"5s\"\n", certFile, keyFile), "https")
	r := d.call("GET", "/ServiceProviderConfig", nil)
	d.expect(r, http.StatusOK, "")
	require.Equal(t, true, r.body["etag"].(map[string]any)["supported"])

	// The certificate's expiry is a metric, for the alert that warns before it.
	pemBytes, err := os.ReadFile(certFile)
	require.NoError(t, err)
	block, _ := pem.Decode(pemBytes)
	leaf, err := x509.ParseCertificate(block.Bytes)
	require.NoError(t, err)
	_, metrics := d.daemon.get("/metrics")
	require.Contains(t, metrics, fmt.Sprintf("scimbridge_inbound_certificate_expiry_timestamp_seconds %g", float64(leaf.NotAfter.Unix())))

	plain, err := http.Get("http://" + strings.TrimPrefix(d.base, "https://") + "/Users")
	if err == nil {
		plain.Body.Close()
		require.NotEqual(t, http.StatusOK, plain.StatusCode, "plain HTTP is not served")
	}

	// Rotation: add a second token from a file, SIGHUP.
	const next = "the-next-integration-token-xyz123"
	require.NoError(t, os.WriteFile(filepath.Join(d.dir, "next.token"), []byte(next+"\n"), 0o600))
	cfg, err := os.ReadFile(d.cfgPath)
	require.NoError(t, err)
	cfg = append(cfg, []byte("\n[[inbound.token]]\nname = \"entra-next\"\nfile = \"next.token\"\n")...)
	require.NoError(t, os.WriteFile(d.cfgPath, cfg, 0o600))
	d.signal(syscall.SIGHUP)
	waitFor(t, "the new token", func() bool {
		return d.call("GET", "/Users?count=1", nil, "Authorization", "Bearer "+next).status == http.StatusOK
	})
	r = d.call("GET", "/Users?count=1", nil)
	d.expect(r, http.StatusOK, "")
	r = d.call("POST", "/Users", map[string]any{"userName": "rotated"}, "Authorization", "Bearer "+next)
	d.expect(r, http.StatusCreated, "")
	// The audit event may be written just after the response went out.
	waitFor(t, "the audit event naming the new token", func() bool {
		return strings.Contains(d.stderr.String(), `"actor":"entra-next","resource":"User"`)
	})
	require.Equal(t, 0, d.stop())
}

// selfSigned writes a throwaway certificate for 127.0.0.1.
func selfSigned(t *testing.T, dir string) (string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "scimbridge test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	kder, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600))
	return certFile, keyFile
}

// TestInboundPassesSelftest: `scimbridge selftest`, which replays Entra ID's documented
// conversation, passes every step against `scimbridge serve` on each kind of directory, and
// cleans up after itself.
func TestInboundPassesSelftest(t *testing.T) {
	for _, k := range ldaptest.Kinds {
		t.Run(string(k), func(t *testing.T) {
			v := views[k]
			d := startSCIMOn(t, k, "selftest", "", "http")
			tokenFile := filepath.Join(t.TempDir(), "token")
			require.NoError(t, os.WriteFile(tokenFile, []byte(d.token+"\n"), 0o600))
			out, err := exec.Command(binary(t), "selftest", "--url", d.base, "--token-file", tokenFile).CombinedOutput()
			require.NoError(t, err, "selftest failed:\n%s", out)
			t.Logf("selftest:\n%s", out)
			require.NotContains(t, string(out), "FAIL")
			require.Contains(t, string(out), "PASS")
			require.Empty(t, d.search(d.people, "(objectClass="+v.userClass+")"), "selftest removed its users")
			require.Empty(t, d.search(d.groups, "(objectClass="+v.groupClass+")"), "and its groups")
		})
	}
}
