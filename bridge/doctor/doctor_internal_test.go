package doctor

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/bridge/config"
)

func TestParsePurgeAge(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"07+00:00 01+00:00": 7 * 24 * time.Hour,
		"7+00:00 1+00:00":   7 * 24 * time.Hour,
		"00:00:30 00:01":    30 * time.Second,
		"01:30 00:10":       90 * time.Minute,
	} {
		got, err := parsePurgeAge(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	for _, bad := range []string{"", "7", "x+00:00", "00:aa"} {
		_, err := parsePurgeAge(bad)
		require.Error(t, err, bad)
	}
}

func TestLogsWrites(t *testing.T) {
	require.True(t, logsWrites([]string{"writes"}))
	require.True(t, logsWrites([]string{"all"}))
	require.True(t, logsWrites([]string{"add delete modify modrdn"}))
	require.True(t, logsWrites([]string{"add", "delete", "modify", "modrdn", "search"}))
	require.False(t, logsWrites([]string{"add delete modify"}))
	require.False(t, logsWrites([]string{"reads"}))
	require.False(t, logsWrites(nil))
}

func TestSizeLimits(t *testing.T) {
	const bind = "cn=scimbridge,ou=services,dc=example,dc=org"
	for _, tc := range []struct {
		limits string
		match  bool
		n      int
	}{
		{`{0}dn.exact="cn=scimbridge,ou=services,dc=example,dc=org" size=unlimited time=unlimited`, true, unlimited},
		{`{0}dn.base="CN=scimbridge,OU=services,DC=example,DC=org" size=unlimited`, true, unlimited},
		{`{1}dn.subtree="ou=services,dc=example,dc=org" size.soft=1000 size.hard=soft`, true, 1000},
		{`dn.children="ou=services,dc=example,dc=org" size=-1`, true, unlimited},
		{`dn.onelevel="ou=services,dc=example,dc=org" size.soft=10 size.hard=20`, true, 20},
		{`users size=100 size.prtotal=unlimited`, true, unlimited},
		{`* size.soft=10 size.hard=0`, true, 10},
		{`dn.exact="cn=other,dc=example,dc=org" size=unlimited`, false, 0},
		{`dn.children="cn=scimbridge,ou=services,dc=example,dc=org" size=unlimited`, false, 0},
		{`anonymous size=unlimited`, false, 0},
	} {
		who, rest := splitLimits(tc.limits)
		require.Equal(t, tc.match, limitsMatch(who, bind), tc.limits)
		if tc.match {
			n, ok := parseSizeLimit(rest)
			require.True(t, ok, tc.limits)
			require.Equal(t, tc.n, n, tc.limits)
		}
	}
	n, ok := parseSizeLimit("500")
	require.True(t, ok)
	require.Equal(t, 500, n)
	n, ok = parseSizeLimit("unlimited")
	require.True(t, ok)
	require.Equal(t, unlimited, n)
}

// writeCert writes a self-signed certificate for names, valid from notBefore to notAfter,
// and its key; it returns the two paths.
func writeCert(t *testing.T, names []string, notBefore, notAfter time.Time) (string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		NotBefore: notBefore, NotAfter: notAfter, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	kder, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	dir := t.TempDir()
	cert, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	require.NoError(t, os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600))
	return cert, keyFile
}

func TestInboundTLS(t *testing.T) {
	now := time.Date(2027, 3, 1, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	tlsRun := func(cert, key, listen string) *run {
		c := &config.Config{Inbound: config.Inbound{Enabled: true, Listen: listen, TLSCertFile: cert, TLSKeyFile: key}}
		return &run{cfg: c, now: func() time.Time { return now }}
	}
	statuses := func(res []Result) map[string]Status {
		out := map[string]Status{}
		for _, r := range res {
			out[r.Check] = max(out[r.Check], r.Status)
		}
		return out
	}
	text := func(res []Result) string {
		var b strings.Builder
		for _, r := range res {
			b.WriteString(r.String() + "\n")
		}
		return b.String()
	}

	cert, key := writeCert(t, []string{"scim.example.org"}, now.Add(-day), now.Add(90*day))
	res := inboundTLS(tlsRun(cert, key, "0.0.0.0:443"), "https://scim.example.org/scim/v2")
	require.Equal(t, map[string]Status{"inbound.tls": Pass, "inbound.tls.chain": Warn}, statuses(res), text(res))
	require.Contains(t, text(res), "valid until 2027-05-30")

	res = inboundTLS(tlsRun(cert, key, "0.0.0.0:443"), "https://other.example.org/scim/v2")
	require.Equal(t, Fail, statuses(res)["inbound.tls.name"], text(res))

	cert, key = writeCert(t, []string{"scim.example.org"}, now.Add(-60*day), now.Add(10*day))
	res = inboundTLS(tlsRun(cert, key, "0.0.0.0:443"), "")
	require.Equal(t, Warn, statuses(res)["inbound.tls"], text(res))
	require.Contains(t, text(res), "in 10 days")

	cert, key = writeCert(t, []string{"scim.example.org"}, now.Add(-60*day), now.Add(-day))
	res = inboundTLS(tlsRun(cert, key, "0.0.0.0:443"), "")
	require.Equal(t, Fail, Worst(res), text(res))
	require.Contains(t, text(res), "expired on 2027-02-28")

	_, otherKey := writeCert(t, []string{"scim.example.org"}, now.Add(-day), now.Add(90*day))
	res = inboundTLS(tlsRun(cert, otherKey, "0.0.0.0:443"), "")
	require.Equal(t, Fail, Worst(res), text(res))

	require.Equal(t, Pass, Worst(inboundTLS(tlsRun("", "", "127.0.0.1:8080"), "")))
	require.Equal(t, Warn, Worst(inboundTLS(tlsRun("", "", "0.0.0.0:8080"), "")))
}
