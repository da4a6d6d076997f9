package mapping

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ParseGeneralizedTime parses an LDAP GeneralizedTime (RFC 4517 §3.3.13):
// YYYYMMDDHH[MM[SS]][(.|,)fraction](Z|±HH[MM]), e.g. "20240102150405Z" or
// "20240102150405.123456Z" (the time part of an entryCSN).
func ParseGeneralizedTime(s string) (time.Time, error) {
	bad := func(why string) (time.Time, error) {
		return time.Time{}, fmt.Errorf("mapping: generalized time %q: %s", s, why)
	}
	digits := func(from, n int) (int, bool) {
		if from+n > len(s) {
			return 0, false
		}
		v := 0
		for i := from; i < from+n; i++ {
			if s[i] < '0' || s[i] > '9' {
				return 0, false
			}
			v = v*10 + int(s[i]-'0')
		}
		return v, true
	}
	year, ok1 := digits(0, 4)
	month, ok2 := digits(4, 2)
	day, ok3 := digits(6, 2)
	hour, ok4 := digits(8, 2)
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return bad("want at least YYYYMMDDHH")
	}
	i := 10
	minute, sec := 0, 0
	if v, ok := digits(i, 2); ok {
		minute, i = v, i+2
		if v, ok := digits(i, 2); ok {
			sec, i = v, i+2
		}
	}
	nsec := 0
	if i < len(s) && (s[i] == '.' || s[i] == ',') {
		j := i + 1
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		frac := s[i+1 : j]
		if frac == "" {
			return bad("empty fraction")
		}
		if len(frac) > 9 {
			frac = frac[:9]
		}
		n, _ := strconv.Atoi(frac + strings.Repeat("0", 9-len(frac)))
		nsec, i = n, j
	}
	if i >= len(s) {
		return bad("missing time zone")
	}
	loc := time.UTC
	switch s[i] {
	case 'Z':
		if i+1 != len(s) {
			return bad("trailing characters")
		}
	case '+', '-':
		hh, ok := digits(i+1, 2)
		if !ok {
			return bad("bad time zone offset")
		}
		mm := 0
		end := i + 3
		if v, ok := digits(i+3, 2); ok {
			mm, end = v, i+5
		}
		if end != len(s) || hh > 23 || mm > 59 {
			return bad("bad time zone offset")
		}
		off := hh*3600 + mm*60
		if s[i] == '-' {
			off = -off
		}
		loc = time.FixedZone("", off)
	default:
		return bad("missing time zone")
	}
	if month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || sec > 60 {
		return bad("field out of range")
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, nsec, loc)
	if t.Day() != day {
		return bad("no such day")
	}
	return t.UTC(), nil
}

// FormatGeneralizedTime formats t as an LDAP GeneralizedTime in UTC, with a fraction only when
// t has one: "20240102150405Z".
func FormatGeneralizedTime(t time.Time) string {
	t = t.UTC()
	s := t.Format("20060102150405")
	if ns := t.Nanosecond(); ns != 0 {
		s += strings.TrimRight(fmt.Sprintf(".%09d", ns), "0")
	}
	return s + "Z"
}

var errDateTime = errors.New("not an xsd:dateTime")

// parseDateTime parses a SCIM dateTime (xsd:dateTime, RFC 7643 §2.3.5); a value without a time
// zone is taken as UTC.
func parseDateTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation("2006-01-02T15:04:05.999999999", s, time.UTC); err == nil {
		return t, nil
	}
	return time.Time{}, errDateTime
}
