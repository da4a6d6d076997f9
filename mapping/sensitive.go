package mapping

import (
	"strings"
)

// sensitive are LDAP attributes that decide who may log in where, as whom, with which
// privileges, or that hold credentials: mapping a SCIM attribute to one of them hands the SCIM
// client (and whoever holds its token) root-level control of every host that uses the
// directory for logins. They are refused in the attribute maps unless the admin names them in
// inbound.allow_sensitive_attributes. Each is listed by its lower-case name and aliases, and by
// its numeric OID where it is fixed by a standard or checked against a real server's subschema
// (TestSensitiveOIDsMatchSlapd checks the ones OpenLDAP ships).
var sensitive = func() map[string]string {
	m := map[string]string{}
	add := func(why string, names ...string) {
		for _, n := range names {
			m[strings.ToLower(n)] = why
		}
	}
	const (
		posix    = "it decides Unix logins (RFC 2307): uid and group numbers, home, shell, account expiry"
		authz    = "it decides which identities a user may act as (SASL proxy authorization)"
		keys     = "it holds a credential that logs the user in (SSH key, certificate, Kerberos key)"
		hosts    = "it decides which hosts and services a user may log in to"
		roles    = "it grants roles, access rights or resource limits in the directory"
		accounts = "it locks, unlocks or reshapes the account in the directory itself"
		creds    = "it holds a password or password hash"
	)
	add(posix,
		"uidNumber", "1.3.6.1.1.1.1.0", "gidNumber", "1.3.6.1.1.1.1.1",
		"homeDirectory", "1.3.6.1.1.1.1.3", "loginShell", "1.3.6.1.1.1.1.4",
		"shadowLastChange", "1.3.6.1.1.1.1.5", "shadowMin", "1.3.6.1.1.1.1.6",
		"shadowMax", "1.3.6.1.1.1.1.7", "shadowWarning", "1.3.6.1.1.1.1.8",
		"shadowInactive", "1.3.6.1.1.1.1.9", "shadowExpire", "1.3.6.1.1.1.1.10",
		"shadowFlag", "1.3.6.1.1.1.1.11", "memberUid", "1.3.6.1.1.1.1.12",
		"memberNisNetgroup", "1.3.6.1.1.1.1.13", "nisNetgroupTriple", "1.3.6.1.1.1.1.14",
		"unixHomeDirectory", "msSFU30HomeDirectory", "msSFU30LoginShell", "msSFU30UidNumber", "msSFU30GidNumber")
	add(authz,
		"authzTo", "saslAuthzTo", "1.3.6.1.4.1.4203.666.1.8",
		"authzFrom", "saslAuthzFrom", "1.3.6.1.4.1.4203.666.1.9")
	add(keys,
		"sshPublicKey", "1.3.6.1.4.1.24552.500.1.1.1.13", "nsSshPublicKey", "ipaSshPubKey",
		"userCertificate", "2.5.4.36", "userPKCS12", "2.16.840.1.113730.3.1.216", "altSecurityIdentities", "msDS-KeyCredentialLink",
		"krbPrincipalName", "krbPrincipalKey", "krbCanonicalName")
	add(hosts,
		"host", "0.9.2342.19200300.100.1.9", "authorizedService", "userWorkstations", "logonHours",
		"sudoUser", "sudoHost", "sudoCommand", "sudoRunAs", "sudoRunAsUser", "sudoRunAsGroup", "sudoOption",
		"servicePrincipalName", "msDS-AllowedToDelegateTo", "msDS-AllowedToActOnBehalfOfOtherIdentity")
	add(roles,
		"nsRoleDN", "nsRole", "aci", "nsSizeLimit", "nsTimeLimit", "nsLookThroughLimit", "nsIdleTimeout",
		"adminCount", "primaryGroupID", "sIDHistory", "nTSecurityDescriptor", "scriptPath", "profilePath",
		"sambaSID", "sambaPrimaryGroupSID", "sambaAcctFlags")
	add(accounts,
		"nsAccountLock", "2.16.840.1.113730.3.1.610", "userAccountControl", "1.2.840.113556.1.4.8",
		"accountExpires", "pwdPolicySubentry", "pwdReset")
	add(creds,
		"userPassword", "2.5.4.35", "authPassword", "unicodePwd", "sambaNTPassword", "sambaLMPassword",
		"pwdHistory", "clearTextPassword")
	return m
}()

// SensitiveAttribute reports whether an LDAP attribute (a name or a numeric OID, options
// ignored, any case) gives control of logins or holds credentials, and why.
func SensitiveAttribute(name string) (why string, ok bool) {
	why, ok = sensitive[strings.ToLower(baseName(strings.TrimSpace(name)))]
	return why, ok
}

// passwordAttrs are the attributes that hold passwords or their hashes: never read into an
// outbound template.
var passwordAttrs = map[string]bool{
	"userpassword": true, "2.5.4.35": true, "authpassword": true, "unicodepwd": true,
	"sambantpassword": true, "sambalmpassword": true, "pwdhistory": true, "krbprincipalkey": true,
	"cleartextpassword": true, "userpkcs12": true, "2.16.840.1.113730.3.1.216": true,
}

// IsPasswordAttribute reports whether an LDAP attribute holds a password, a password hash or a
// private key (name or OID, options ignored, any case).
func IsPasswordAttribute(name string) bool {
	return passwordAttrs[strings.ToLower(baseName(strings.TrimSpace(name)))]
}

// SensitiveMappings returns, for each mapped LDAP attribute of the maps that is sensitive and
// not in allowed, the configuration key that maps it and why it is refused. allowed holds
// attribute names or OIDs, any case.
func SensitiveMappings(allowed []string, maps ...map[string]string) []SensitiveMapping {
	ok := map[string]bool{}
	for _, a := range allowed {
		ok[strings.ToLower(baseName(strings.TrimSpace(a)))] = true
	}
	var out []SensitiveMapping
	for _, m := range maps {
		for _, key := range sortedKeys(m) {
			attr := m[key]
			why, bad := SensitiveAttribute(attr)
			if !bad || ok[strings.ToLower(baseName(attr))] {
				continue
			}
			out = append(out, SensitiveMapping{Key: key, Attr: attr, Why: why})
		}
	}
	return out
}

// SensitiveMapping is one mapping to a sensitive LDAP attribute.
type SensitiveMapping struct {
	Key, Attr, Why string
}
