package ldapstore

import (
	"strings"
	"testing"

	"github.com/go-ldap/ldap/v3"
)

var simpleDNSeeds = []string{
	"uid=jdoe,ou=people,dc=example,dc=org", "UID=JDoe,OU=People,DC=Example,DC=org",
	"ou=people,dc=example,dc=org", "dc=org", "cn=John Smith,ou=Staff,dc=corp", "uid=j.doe@contoso.com,ou=x",
	"uid=a_b-c,dc=x", "uid=a,dc=x ", " uid=a,dc=x", "uid=a, dc=x", "uid =a,dc=x", "uid= a,dc=x", "uid=a ,dc=x",
	"uid=a+cn=b,dc=x", `uid=a\,b,dc=x`, "uid=#41,dc=x", "uid=,dc=x", "=a,dc=x", "uid=a=b,dc=x", "uid=a,,dc=x",
	"uid=a,", ",uid=a", "1uid=a,dc=x", "u-1=a,dc=x", "2.5.4.3=a,dc=x", "uid=a;dc=x", `uid="a",dc=x`, "uid=é,dc=x",
	"uid=a\x00,dc=x", "", " ", "uid=K,dc=x", "uid=\u212a,dc=x", "uid=a  b,dc=x", "uid=a,dc=x,dc=y",
}

// FuzzSimpleDN checks that every answer the fast path gives is the parser's: for one DN
// (NormalizeDN) and for pairs (SameDN, InScope, DN.Contains, and the change readers' DNUnder,
// DNEqual and originOf), whichever of them is simple.
func FuzzSimpleDN(f *testing.F) {
	for _, a := range simpleDNSeeds {
		for _, b := range []string{"dc=x", "ou=people,dc=example,dc=org", "DC=X", a} {
			f.Add(a, b)
		}
		f.Add("uid=q,"+a, a)
		f.Add("uid=q,x"+a, a)
		f.Add("uid=q,"+strings.ToUpper(a), a)
		f.Add(strings.ToUpper(a), a)
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		for _, s := range []string{a, b} {
			if got, want := NormalizeDN(s), parsedNormalize(s); got != want {
				t.Fatalf("NormalizeDN(%q) = %q, the parser says %q (simple: %v)", s, got, want, IsSimpleDN(s))
			}
			if IsSimpleDN(s) {
				if _, err := ldap.ParseDN(s); err != nil {
					t.Fatalf("%q is simple but does not parse: %v", s, err)
				}
			}
		}
		if got, want := SameDN(a, b), parsedSame(a, b); got != want {
			t.Fatalf("SameDN(%q, %q) = %v, the parser says %v", a, b, got, want)
		}
		if got, want := InScope(a, b), parsedInScope(a, b); got != want {
			t.Fatalf("InScope(%q, %q) = %v, the parser says %v", a, b, got, want)
		}
		_, errA := ldap.ParseDN(a)
		_, errB := ldap.ParseDN(b)
		if b != "" && errA == nil && errB == nil {
			if got, want := DNUnder(a, b), parsedInScope(a, b); got != want {
				t.Fatalf("DNUnder(%q, %q) = %v, the parser says %v", a, b, got, want)
			}
		}
		if got, want := DNEqual(a, b), strings.EqualFold(a, b) || parsedSame(a, b); got != want {
			t.Fatalf("DNEqual(%q, %q) = %v, the parser says %v", a, b, got, want)
		}
		if actor := strings.TrimSpace(a); actor != "" && !strings.HasPrefix(strings.ToLower(actor), "dn:") && b != "" {
			if _, err := ldap.ParseDN(actor); err == nil {
				want := OriginExternal
				if parsedSame(actor, b) {
					want = OriginBridge
				}
				if got := originOf(a, []string{"", b}); got != want {
					t.Fatalf("originOf(%q, %q) = %v, the parser says %v", a, b, got, want)
				}
			}
		}
		if base, err := ParseDN(b); err == nil {
			if got, want := base.Contains(a), parsedInScope(a, b); got != want {
				t.Fatalf("ParseDN(%q).Contains(%q) = %v, the parser says %v", b, a, got, want)
			}
		}
	})
}

// TestSimpleDN pins which DNs take the fast path: a DN wrongly thought complex only costs
// time, but FuzzSimpleDN only proves the fast answers right for the inputs it tries.
func TestSimpleDN(t *testing.T) {
	for dn, want := range map[string]bool{
		"uid=jdoe,ou=people,dc=example,dc=org": true,
		"cn=John Smith,ou=Staff,dc=corp":       true,
		"uid=j.doe@contoso.com,ou=x":           true,
		"u-1=a_b-c,dc=x":                       true,
		"uid=a,dc=x ":                          false,
		" uid=a,dc=x":                          false,
		"uid=a, dc=x":                          false,
		"uid= a,dc=x":                          false,
		"uid=a ,dc=x":                          false,
		"uid =a,dc=x":                          false,
		"uid=a+cn=b,dc=x":                      false,
		`uid=a\,b,dc=x`:                        false,
		"uid=#41,dc=x":                         false,
		"uid=,dc=x":                            false,
		"=a,dc=x":                              false,
		"uid=a=b,dc=x":                         false,
		"uid=a,,dc=x":                          false,
		"uid=a,":                               false,
		"1uid=a,dc=x":                          false,
		"2.5.4.3=a,dc=x":                       false,
		"uid=é,dc=x":                           false,
		"":                                     false,
		"uid":                                  false,
	} {
		if got := IsSimpleDN(dn); got != want {
			t.Errorf("IsSimpleDN(%q) = %v, want %v", dn, got, want)
		}
	}
	for _, c := range []struct {
		dn, base string
		want     bool
	}{
		{"uid=a,ou=people,dc=example,dc=org", "ou=people,dc=example,dc=org", true},
		{"UID=A,OU=People,DC=Example,DC=ORG", "ou=people,dc=example,dc=org", true},
		{"ou=people,dc=example,dc=org", "OU=People,dc=example,dc=org", true},
		{"uid=a,ou=xpeople,dc=example,dc=org", "ou=people,dc=example,dc=org", false},
		{"uid=a,xou=people,dc=example,dc=org", "ou=people,dc=example,dc=org", false},
		{"dc=example,dc=org", "ou=people,dc=example,dc=org", false},
		{"uid=a,ou=people,dc=example,dc=orgs", "ou=people,dc=example,dc=org", false},
	} {
		if got := simpleInScope(c.dn, c.base); got != c.want {
			t.Errorf("simpleInScope(%q, %q) = %v, want %v", c.dn, c.base, got, c.want)
		}
	}
}

// BenchmarkSimpleDN compares the fast path with the parser on a typical DN.
func BenchmarkSimpleDN(b *testing.B) {
	const dn, base = "uid=u012345,ou=people,dc=example,dc=org", "ou=people,dc=example,dc=org"
	b.Run("NormalizeDN", func(b *testing.B) {
		for b.Loop() {
			_ = NormalizeDN(dn)
		}
	})
	b.Run("NormalizeDN/parser", func(b *testing.B) {
		for b.Loop() {
			_ = parsedNormalize(dn)
		}
	})
	b.Run("InScope", func(b *testing.B) {
		for b.Loop() {
			_ = InScope(dn, base)
		}
	})
	b.Run("InScope/parser", func(b *testing.B) {
		for b.Loop() {
			_ = parsedInScope(dn, base)
		}
	})
}
