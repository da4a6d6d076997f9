package ldapstore

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/go-ldap/ldap/v3"
)

// Active Directory returns at most MaxValRange values (1500 by default) of a multi-valued
// attribute per search: a large group's member comes back as "member;range=0-1499", and the
// client asks for "member;range=1500-*" and so on until a range ends in '*' (ranged retrieval,
// MS-ADTS 3.1.1.3.1.3.3). The store does that for every entry it returns, so callers always
// see the whole attribute under its plain name. With Config.RangeSize set, it also asks for
// member in ranges of that many values from the start (a test can use a small size, or an
// administrator one below the DC's limit).

// rangedAttrs are the attributes asked for in ranges when Config.RangeSize is set.
var rangedAttrs = []string{"member"}

// rangeRequest rewrites the requested attributes for RangeSize on Active Directory:
// "member" → "member;range=0-(RangeSize-1)".
func (s *Store) rangeRequest(attrs []string) []string {
	if s.cfg.RangeSize <= 0 || !s.isAD() {
		return attrs
	}
	out := make([]string, len(attrs))
	for i, a := range attrs {
		out[i] = a
		for _, r := range rangedAttrs {
			if strings.EqualFold(a, r) {
				out[i] = fmt.Sprintf("%s;range=0-%d", a, s.cfg.RangeSize-1)
			}
		}
	}
	return out
}

// isAD reports whether the root DSE read so far says Active Directory (false before it is
// read: the first read is of the root DSE itself).
func (s *Store) isAD() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rootDSE != nil && s.rootDSE.Dialect == DialectAD
}

// parseRange splits "member;range=100-199" into "member", 100 and 199; high is -1 for '*'.
// ok is false for an attribute without a range option.
func parseRange(name string) (base string, low, high int, ok bool) {
	i := strings.Index(strings.ToLower(name), ";range=")
	if i < 0 {
		return "", 0, 0, false
	}
	base = name[:i]
	lo, hi, found := strings.Cut(name[i+len(";range="):], "-")
	if !found {
		return "", 0, 0, false
	}
	low, err := strconv.Atoi(lo)
	if err != nil {
		return "", 0, 0, false
	}
	if hi == "*" {
		return base, low, -1, true
	}
	if high, err = strconv.Atoi(hi); err != nil {
		return "", 0, 0, false
	}
	return base, low, high, true
}

// completeRanges reads the rest of every ranged attribute of e on c (a base search per range)
// and puts the whole attribute back under its plain name.
func (s *Store) completeRanges(c *ldap.Conn, e *ldap.Entry) error {
	ranged := false
	for _, a := range e.Attributes {
		if _, _, _, ok := parseRange(a.Name); ok {
			ranged = true
			break
		}
	}
	if !ranged {
		return nil
	}
	var kept []*ldap.EntryAttribute
	for _, a := range e.Attributes {
		base, _, high, ok := parseRange(a.Name)
		if !ok {
			kept = append(kept, a)
			continue
		}
		whole := &ldap.EntryAttribute{Name: base, Values: a.Values, ByteValues: a.ByteValues}
		for high >= 0 {
			next := high + 1
			want := fmt.Sprintf("%s;range=%d-*", base, next)
			if s.cfg.RangeSize > 0 {
				want = fmt.Sprintf("%s;range=%d-%d", base, next, next+s.cfg.RangeSize-1)
			}
			res, err := c.Search(ldap.NewSearchRequest(e.DN, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1, 0, false,
				"(objectClass=*)", []string{want}, nil))
			if err != nil {
				return wrap("ranged read", e.DN, err)
			}
			high = -1
			if len(res.Entries) != 1 {
				break
			}
			for _, ra := range res.Entries[0].Attributes {
				b, low, h, ok := parseRange(ra.Name)
				if !ok || !strings.EqualFold(b, base) || low != next {
					continue
				}
				whole.Values = append(whole.Values, ra.Values...)
				whole.ByteValues = append(whole.ByteValues, ra.ByteValues...)
				high = h
			}
		}
		kept = append(kept, whole)
	}
	e.Attributes = kept
	return nil
}
