package ldapstore_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/scimbridge/scimbridge/ldapstore"
)

// FuzzRDN builds a DN from a client's value as the inbound server names new entries
// (RDN(attr, value) + "," + parent, value a userName or displayName) and checks that no value
// can escape its place: the DN parses, has exactly one RDN more than its parent, lies below
// the parent and nowhere else, gives the value back unchanged, and names a different entry
// than the parent or any other value would.
func FuzzRDN(f *testing.F) {
	for _, s := range []string{
		"jdoe@contoso.com", "O'Malley", "a,ou=admins", "x+cn=y", `back\slash`, "#hash", " lead", "trail ",
		"=", "\"quoted\"", "<>;", "日本語", "uid=root,dc=example,dc=org", "a\x00b", "\n",
	} {
		f.Add("uid", s)
		f.Add("cn", s)
	}
	const parent = "ou=people,dc=example,dc=org"
	p, err := ldapstore.ParseDN(parent)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, attr, value string) {
		if attr != "uid" && attr != "cn" {
			return // the RDN attributes come from the configuration, not the client
		}
		if !utf8.ValidString(value) || strings.ContainsRune(value, 0) || strings.TrimSpace(value) == "" {
			return // refused before a DN is built
		}
		dn := ldapstore.RDN(attr, value) + "," + parent
		if _, err := ldapstore.ParseDN(dn); err != nil {
			t.Fatalf("%q: the DN does not parse: %v", dn, err)
		}
		rdn, up, err := ldapstore.SplitDN(dn)
		if err != nil {
			t.Fatalf("%q: %v", dn, err)
		}
		if !ldapstore.SameDN(up, parent) {
			t.Fatalf("%q escaped its parent: its parent is %q", dn, up)
		}
		if !p.Contains(dn) || ldapstore.SameDN(dn, parent) {
			t.Fatalf("%q is not below %q", dn, parent)
		}
		got, err := ldapstore.RDNValue(dn, attr)
		if err != nil || got != value {
			t.Fatalf("%q: value %q came back as %q (%v)", dn, value, got, err)
		}
		if strings.Count(ldapstore.NormalizeDN(dn), ",") < strings.Count(ldapstore.NormalizeDN(parent), ",")+1 {
			t.Fatalf("%q: fewer RDNs than expected", dn)
		}
		// The RDN written into a ModifyDN (rename) names the same entry.
		if !ldapstore.SameDN(rdn+","+parent, dn) {
			t.Fatalf("%q: SplitDN's RDN %q names another entry", dn, rdn)
		}
		if n := ldapstore.NormalizeDN(dn); ldapstore.NormalizeDN(n) != n {
			t.Fatalf("%q: NormalizeDN is not idempotent: %q", dn, n)
		}
	})
}
