package ldapstore

import "strings"

// A simple DN is one whose canonical form needs no parser: RDNs of one type=value each,
// separated by bare commas; every type a letter followed by letters, digits and hyphens; every
// value one or more of letters, digits, interior spaces and "-._@". Nothing in it is escaped,
// quoted, hex-encoded, multi-valued or padded with spaces, so go-ldap's ParseDN splits it where
// the commas and equals signs are, String gives it back unchanged but for the types' case, and
// its comparisons (EqualFold) are ASCII case-insensitive.
//
// Almost every DN the daemon handles is simple (uid=jdoe,ou=people,dc=example,dc=org). For
// those, NormalizeDN, SameDN, InScope, DN.Contains and the change readers' DN checks compare
// strings instead of parsing: a parse costs about 3 µs and 44 allocations (BenchmarkSimpleDN),
// and each entry read or change seen took several. Every other DN goes through ParseDN as
// before. FuzzSimpleDN checks each fast answer against the parser's.

// IsSimpleDN reports whether dn is a simple DN: one whose canonical form, under ldapstore's
// rules and under any normalisation that lower-cases types and values, trims the spaces around
// separators and escapes values uniformly, is dn lower-cased.
func IsSimpleDN(dn string) bool {
	if dn == "" {
		return false
	}
	inType := true // reading a type (else a value)
	start := 0     // index of the first byte of the current type or value
	for i := 0; i < len(dn); i++ {
		c := dn[i]
		switch {
		case inType && c == '=':
			if i == start {
				return false
			}
			inType, start = false, i+1
		case inType:
			if !isLetter(c) && (i == start || !isDigit(c) && c != '-') {
				return false
			}
		case c == ',':
			if i == start || dn[i-1] == ' ' {
				return false
			}
			inType, start = true, i+1
		case c == ' ':
			if i == start {
				return false
			}
		case !isLetter(c) && !isDigit(c) && c != '-' && c != '.' && c != '_' && c != '@':
			return false
		}
	}
	return !inType && start < len(dn) && dn[len(dn)-1] != ' '
}

func isLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// simpleInScope reports, for two simple DNs, whether dn is base or below it.
func simpleInScope(dn, base string) bool {
	switch {
	case len(dn) == len(base):
		return strings.EqualFold(dn, base)
	case len(dn) > len(base):
		cut := len(dn) - len(base)
		return dn[cut-1] == ',' && strings.EqualFold(dn[cut:], base)
	}
	return false
}
