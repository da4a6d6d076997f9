package mapping

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// syntax is the LDAP syntax of an attribute, as far as mapping needs to know it: what values
// the server accepts, how it compares them, and which filter operators work.
type syntax int

const (
	synDirectoryString syntax = iota // 1.3.6.1.4.1.1466.115.121.1.15, caseIgnoreMatch
	synTelephone                     // 1.3.6.1.4.1.1466.115.121.1.50, a PrintableString
	synFax                           // 1.3.6.1.4.1.1466.115.121.1.22, no matching rule at all
	synIA5                           // 1.3.6.1.4.1.1466.115.121.1.26, ASCII only
	synPostalAddress                 // 1.3.6.1.4.1.1466.115.121.1.41, lines joined by '$'
	synDN                            // 1.3.6.1.4.1.1466.115.121.1.12
	synGeneralizedTime               // 1.3.6.1.4.1.1466.115.121.1.24
	synUUID                          // 1.3.6.1.1.16.1 (entryUUID)
)

// attrInfo is what mapping knows about an LDAP attribute of the stock OpenLDAP schemas (core,
// cosine, inetorgperson) and of the operational attributes it reads. Checked against
// /etc/ldap/schema/*.schema of OpenLDAP 2.5 and a running slapd.
type attrInfo struct {
	syn syntax
	// noEquality: the attribute has no EQUALITY rule, so (a=v) never matches.
	noEquality bool
	// noSubstr: no SUBSTR rule, so (a=*v*) never matches.
	noSubstr bool
	// ordering: an ORDERING rule exists, so (a>=v) and (a<=v) work. None of the stock
	// user attributes (uid, cn, mail, …) has one.
	ordering bool
}

var stockAttrs = func() map[string]attrInfo {
	m := map[string]attrInfo{}
	set := func(info attrInfo, names ...string) {
		for _, n := range names {
			m[strings.ToLower(n)] = info
		}
	}
	set(attrInfo{syn: synDirectoryString},
		"uid", "userid", "cn", "commonName", "sn", "surname", "givenName", "gn", "initials",
		"displayName", "title", "o", "organizationName", "ou", "organizationalUnitName",
		"l", "localityName", "st", "stateOrProvinceName", "street", "streetAddress",
		"postalCode", "postOfficeBox", "physicalDeliveryOfficeName", "businessCategory",
		"description", "employeeNumber", "employeeType", "departmentNumber", "carLicense",
		"preferredLanguage", "roomNumber", "uniqueIdentifier")
	// labeledURI is built into slapd with caseExactMatch and no substring rule.
	set(attrInfo{syn: synDirectoryString, noSubstr: true}, "labeledURI")
	set(attrInfo{syn: synTelephone},
		"telephoneNumber", "mobile", "mobileTelephoneNumber", "homePhone",
		"homeTelephoneNumber", "pager", "pagerTelephoneNumber")
	set(attrInfo{syn: synFax, noEquality: true, noSubstr: true}, "facsimileTelephoneNumber", "fax")
	set(attrInfo{syn: synIA5}, "mail", "rfc822Mailbox")
	set(attrInfo{syn: synPostalAddress}, "postalAddress", "homePostalAddress", "registeredAddress")
	set(attrInfo{syn: synDN, noSubstr: true},
		"manager", "secretary", "seeAlso", "owner", "member", "uniqueMember", "distinguishedName", "roleOccupant")
	set(attrInfo{syn: synGeneralizedTime, noSubstr: true, ordering: true},
		"createTimestamp", "modifyTimestamp", "pwdAccountLockedTime")
	set(attrInfo{syn: synUUID, noSubstr: true, ordering: true}, "entryUUID")
	return m
}()

// ldapInfo returns what is known about attr; an attribute outside the stock schemas is taken to
// be a directory string with equality and substring rules and no ordering rule.
func ldapInfo(attr string) attrInfo {
	return stockAttrs[strings.ToLower(baseName(attr))]
}

// baseName strips attribute options: "cn;lang-de" → "cn".
func baseName(attr string) string {
	if i := strings.IndexByte(attr, ';'); i >= 0 {
		return attr[:i]
	}
	return attr
}

var ldapNameRE = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9-]*|[0-9]+(\.[0-9]+)+)(;[A-Za-z0-9-]+)*$`)

// reservedLDAP are attributes that a SCIM attribute must never be mapped to: structure,
// credentials, server-maintained operational attributes and password-policy state.
var reservedLDAP = map[string]string{
	"objectclass":           "it is the entry's structure",
	"userpassword":          "passwords are set with the Password Modify operation",
	"unicodepwd":            "passwords are set with the directory's own mechanism",
	"entryuuid":             "it is maintained by the server",
	"entrycsn":              "it is maintained by the server",
	"entrydn":               "it is maintained by the server",
	"createtimestamp":       "it is maintained by the server",
	"modifytimestamp":       "it is maintained by the server",
	"creatorsname":          "it is maintained by the server",
	"modifiersname":         "it is maintained by the server",
	"structuralobjectclass": "it is maintained by the server",
	"subschemasubentry":     "it is maintained by the server",
	"hassubordinates":       "it is maintained by the server",
	"memberof":              "it is maintained by the server",
	"nsuniqueid":            "it is maintained by the server",
	"objectguid":            "it is maintained by the server",
	"objectsid":             "it is maintained by the server",
	"usnchanged":            "it is maintained by the server",
	"whenchanged":           "it is maintained by the server",
	"pwdaccountlockedtime":  "it belongs to the active marker and the password policy",
	"pwdchangedtime":        "it belongs to the password policy",
	"pwdfailuretime":        "it belongs to the password policy",
	"pwdhistory":            "it belongs to the password policy",
	"pwdgraceusetime":       "it belongs to the password policy",
	"pwdreset":              "it belongs to the password policy",
	"pwdpolicysubentry":     "it belongs to the password policy",
}

// checkLDAPName validates an LDAP attribute name given in the configuration.
func checkLDAPName(name string) error {
	if !ldapNameRE.MatchString(name) {
		return fmt.Errorf("%q is not a valid LDAP attribute name", name)
	}
	if why, ok := reservedLDAP[strings.ToLower(baseName(name))]; ok {
		return fmt.Errorf("LDAP attribute %q cannot be mapped: %s", name, why)
	}
	return nil
}

// isPrintable reports whether s is a PrintableString (RFC 4517 §3.2), the syntax of
// telephone numbers: slapd refuses "#", ";", "*", "x@y" and every non-ASCII letter in them.
func isPrintable(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte(`'()+,-./:=? `, c) >= 0:
		default:
			return false
		}
	}
	return true
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// encodePostal turns a SCIM formatted address ("\n" between lines) into the LDAP Postal
// Address syntax (RFC 4517 §3.3.28): lines joined by '$', with '\' and '$' escaped as \5C and
// \24. Blank lines are dropped.
func encodePostal(s string) string {
	var lines []string
	for _, line := range strings.Split(strings.ReplaceAll(s, "\r\n", "\n"), "\n") {
		line = strings.TrimRight(line, "\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		line = strings.ReplaceAll(line, `\`, `\5C`)
		line = strings.ReplaceAll(line, `$`, `\24`)
		lines = append(lines, line)
	}
	return strings.Join(lines, "$")
}

// decodePostal is the inverse of encodePostal.
func decodePostal(s string) string {
	lines := strings.Split(s, "$")
	for i, line := range lines {
		var b strings.Builder
		for j := 0; j < len(line); j++ {
			if line[j] == '\\' && j+2 < len(line) {
				switch strings.ToUpper(line[j+1 : j+3]) {
				case "24":
					b.WriteByte('$')
					j += 2
					continue
				case "5C":
					b.WriteByte('\\')
					j += 2
					continue
				}
			}
			b.WriteByte(line[j])
		}
		lines[i] = b.String()
	}
	return strings.Join(lines, "\n")
}

// phoneSeparators are ignored by telephoneNumberMatch.
var phoneSeparators = strings.NewReplacer(" ", "", "-", "")

// valueKey is how the directory compares two values of attr for equality, close enough to tell
// which values it would refuse as duplicates ("Type or value exists").
func valueKey(attr, v string) string {
	switch ldapInfo(attr).syn {
	case synTelephone, synFax:
		return strings.ToLower(phoneSeparators.Replace(v))
	case synDN:
		return normDN(v)
	default:
		return strings.ToLower(strings.Join(strings.Fields(v), " "))
	}
}

// normDN is a lenient DN normalisation for comparisons: lower case, no spaces around the RDN
// separators. It is not RFC 4514 canonicalisation; it only has to recognise the DNs the
// directory itself returns.
func normDN(dn string) string {
	parts := strings.Split(dn, ",")
	for i, p := range parts {
		if k, v, ok := strings.Cut(p, "="); ok {
			p = strings.TrimSpace(k) + "=" + strings.TrimSpace(v)
		}
		parts[i] = strings.ToLower(strings.TrimSpace(p))
	}
	return strings.Join(parts, ",")
}

// dedupe removes values of attr that the directory would consider equal to an earlier value.
func dedupe(attr string, vals []string) []string {
	seen := make(map[string]bool, len(vals))
	out := vals[:0:0]
	for _, v := range vals {
		k := valueKey(attr, v)
		if seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, v)
	}
	return out
}

// toLDAP converts one canonical SCIM value of type scimType into the string stored in the LDAP
// attribute attr. It returns "" for a blank value, which is treated as unassigned.
func toLDAP(v any, scimType, attr, path string) (string, *Error) {
	switch x := v.(type) {
	case bool:
		if x {
			return "TRUE", nil
		}
		return "FALSE", nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case string:
		if strings.TrimSpace(x) == "" {
			return "", nil
		}
		if !utf8.ValidString(x) {
			return "", errorf(ScimTypeInvalidValue, "%s: the value is not valid UTF-8", path)
		}
		if strings.ContainsRune(x, 0) {
			// No directory string holds one (the inbound server refuses them earlier too).
			return "", errorf(ScimTypeInvalidValue, "%s: the value contains a NUL character", path)
		}
		if scimType == TypeDateTime {
			t, err := parseDateTime(x)
			if err != nil {
				return "", errorf(ScimTypeInvalidValue, "%s: %q is not an xsd:dateTime", path, x)
			}
			return FormatGeneralizedTime(t), nil
		}
		switch ldapInfo(attr).syn {
		case synTelephone, synFax:
			if !isPrintable(x) {
				return "", errorf(ScimTypeInvalidValue, "%s: a telephone number may only contain letters, digits, spaces and ' ( ) + , - . / : = ?", path)
			}
		case synIA5:
			if !isASCII(x) {
				return "", errorf(ScimTypeInvalidValue, "%s: the directory stores this attribute in ASCII only (IA5String)", path)
			}
		case synPostalAddress:
			return encodePostal(x), nil
		}
		return x, nil
	default:
		return "", errorf(ScimTypeInvalidValue, "%s: unexpected value type %T", path, v)
	}
}

// fromLDAP converts one LDAP value of attr into the SCIM value of type scimType; ok is false
// when the stored value does not fit the type (it is then left out of the resource).
func fromLDAP(v, scimType, attr string) (any, bool) {
	switch scimType {
	case TypeBoolean:
		switch {
		case strings.EqualFold(v, "TRUE"):
			return true, true
		case strings.EqualFold(v, "FALSE"):
			return false, true
		}
		return nil, false
	case TypeInteger:
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		return n, err == nil
	case TypeDateTime:
		if t, err := ParseGeneralizedTime(v); err == nil {
			return t.Format(time.RFC3339Nano), true
		}
		if t, err := parseDateTime(v); err == nil {
			return t.UTC().Format(time.RFC3339Nano), true
		}
		return nil, false
	}
	if ldapInfo(attr).syn == synPostalAddress {
		return decodePostal(v), true
	}
	return v, true
}
