package outbound

import (
	"encoding/hex"
	"strings"

	"github.com/scimbridge/scimbridge/ldapstore"
)

// normDN returns a canonical form of a DN for comparing member values with entry DNs:
// attribute types and values lower-cased, spaces around separators dropped, escapes decoded
// and re-escaped uniformly. It is not a full RFC 4514 parser (multi-valued RDNs keep their
// order), but it treats the spellings directories and admins produce for the same DN as equal.
func normDN(dn string) string {
	if ldapstore.IsSimpleDN(dn) {
		// Nothing to trim, decode or escape: the general path would give the same
		// (FuzzNormDN), and a DN already in lower case is returned without a copy.
		return strings.ToLower(dn)
	}
	return normDNGeneral(dn)
}

// normDNGeneral is normDN for any string.
func normDNGeneral(dn string) string {
	var out strings.Builder
	out.Grow(len(dn))
	rdns := splitUnescaped(strings.TrimSpace(dn), ',')
	for i, rdn := range rdns {
		if i > 0 {
			out.WriteByte(',')
		}
		avas := splitUnescaped(rdn, '+')
		for j, ava := range avas {
			if j > 0 {
				out.WriteByte('+')
			}
			typ, val, ok := strings.Cut(ava, "=")
			if !ok {
				out.WriteString(strings.ToLower(strings.TrimSpace(ava)))
				continue
			}
			out.WriteString(strings.ToLower(strings.TrimSpace(typ)))
			out.WriteByte('=')
			out.WriteString(escapeValue(strings.ToLower(unescapeValue(strings.TrimSpace(val)))))
		}
	}
	return out.String()
}

// splitUnescaped splits s at sep when it is not escaped with a backslash.
func splitUnescaped(s string, sep byte) []string {
	var parts []string
	start := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case sep:
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}

// unescapeValue decodes \XX hex pairs and \c escapes of an attribute value.
func unescapeValue(v string) string {
	if !strings.Contains(v, `\`) {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] != '\\' || i+1 >= len(v) {
			b.WriteByte(v[i])
			continue
		}
		if i+2 < len(v) {
			if dec, err := hex.DecodeString(v[i+1 : i+3]); err == nil {
				b.Write(dec)
				i += 2
				continue
			}
		}
		b.WriteByte(v[i+1])
		i++
	}
	return b.String()
}

// escapeValue escapes the characters RFC 4514 requires, always the same way.
func escapeValue(v string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case strings.IndexByte(`,+"\<>;=`, c) >= 0:
			b.WriteByte('\\')
			b.WriteByte(c)
		case c == '#' && i == 0:
			b.WriteString(`\#`)
		case c < 0x20:
			b.WriteString(`\` + hex.EncodeToString([]byte{c}))
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// memberDN strips the optional UID suffix of a uniqueMember value ("dn#'0101'B").
func memberDN(v string) string {
	if i := strings.LastIndex(v, "#'"); i > 0 && strings.HasSuffix(v, "'B") {
		return v[:i]
	}
	return v
}
