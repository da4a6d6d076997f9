package mapping

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Profile is what one kind of directory asks of the mapping: the default attribute maps, how
// active=false is stored, whether users get a derived cn and sn, and whether a group may hold
// no member. ProfileFor returns a dialect's profile; the bridge picks it from the detected
// dialect, and [inbound.user_attributes] / [inbound.group_attributes] override its maps key by
// key.
type Profile struct {
	// Dialect is the directory kind the profile is for: "openldap", "389ds", "ad" or "generic".
	Dialect string
	// UserAttributes and GroupAttributes are the default SCIM path → LDAP attribute maps.
	UserAttributes  map[string]string
	GroupAttributes map[string]string
	// Marker stores active=false.
	Marker ActiveMarker
	// DerivedNames: cn and sn are filled in when the client sends none, because inetOrgPerson
	// requires both. An Active Directory user needs neither (its cn is its RDN).
	DerivedNames bool
	// EmptyGroups: a group may hold no member value (389-DS and AD). Otherwise an empty group
	// keeps PlaceholderMember: OpenLDAP's groupOfNames requires a member.
	EmptyGroups bool

	// The directory layout defaults of [ldap.users] and [ldap.groups]: the containers below
	// ldap.base_dn (as an RDN), object classes of new entries, the users' RDN attribute, and
	// the filters that select users and groups.
	UsersRDN, GroupsRDN                   string
	UserObjectClasses, GroupObjectClasses []string
	UserRDNAttribute                      string
	UserFilter, GroupFilter               string

	// Schema is what scimbridge's optional schema (etc/schema, in this dialect's variant) adds
	// when the directory has it.
	Schema OptionalSchema
}

// OptionalSchema is what one variant of scimbridge's optional schema (etc/schema) gives a
// dialect: homes for the SCIM attributes Microsoft Entra ID sends that the dialect's stock
// schema cannot hold.
type OptionalSchema struct {
	// Detect is the attribute type whose presence in the directory's subschema says the
	// variant is loaded.
	Detect string
	// UserAttributes are the SCIM path → LDAP attribute mappings the variant adds to the
	// profile's UserAttributes; [inbound.user_attributes] overrides them like any default.
	UserAttributes map[string]string
	// Attributes are the LDAP attributes the variant's auxiliary class allows.
	Attributes []string
	// AuxiliaryClass is the class a user entry must have to hold Attributes, added by the
	// bridge to the users that need it; "" when the variant links its class to the users' own
	// class (Active Directory's auxiliaryClass), so that every user may hold them as is.
	AuxiliaryClass string
}

// schemaAttributes are the LDAP attributes of mappings, sorted.
func schemaAttributes(mappings map[string]string) []string {
	out := make([]string, 0, len(mappings))
	for _, a := range mappings {
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	slices.Sort(out)
	return out
}

// The dialect names of ProfileFor.
const (
	DialectOpenLDAP = "openldap"
	Dialect389DS    = "389ds"
	DialectAD       = "ad"
	DialectGeneric  = "generic"
)

// ProfileFor returns the profile of a dialect; an unknown dialect gets OpenLDAP's, whose
// defaults need only the stock core, cosine and inetorgperson schemas.
func ProfileFor(dialect string) Profile {
	switch dialect {
	case Dialect389DS:
		// 389-DS ships the same inetOrgPerson as OpenLDAP; it locks accounts itself with
		// nsAccountLock (a locked user cannot bind), and its groupOfNames may be empty.
		p := openLDAPProfile()
		p.Dialect = Dialect389DS
		p.Marker = ActiveMarker{Attr: "nsAccountLock", Value: "TRUE", Single: true}
		p.EmptyGroups = true
		return p
	case DialectAD:
		return adProfile()
	}
	p := openLDAPProfile()
	if dialect == DialectGeneric {
		p.Dialect = DialectGeneric
	}
	return p
}

// DefaultUserFilter is the users' filter when none is configured: the profile's for its own
// object classes, else one on the last of the configured classes.
func (p Profile) DefaultUserFilter(classes []string) string {
	return defaultFilter(classes, p.UserObjectClasses, p.UserFilter)
}

// DefaultGroupFilter is DefaultUserFilter for groups.
func (p Profile) DefaultGroupFilter(classes []string) string {
	return defaultFilter(classes, p.GroupObjectClasses, p.GroupFilter)
}

func defaultFilter(classes, own []string, ownFilter string) string {
	if len(classes) == 0 || slices.EqualFunc(classes, own, strings.EqualFold) {
		return ownFilter
	}
	return "(objectClass=" + classes[len(classes)-1] + ")"
}

func openLDAPProfile() Profile {
	return Profile{
		Dialect:         DialectOpenLDAP,
		UserAttributes:  DefaultUserAttributes(),
		GroupAttributes: DefaultGroupAttributes(),
		Marker:          DefaultActiveMarker(),
		DerivedNames:    true,
		UsersRDN:        "ou=people", GroupsRDN: "ou=groups",
		UserObjectClasses: []string{"inetOrgPerson"}, GroupObjectClasses: []string{"groupOfNames"},
		UserRDNAttribute: "uid",
		UserFilter:       "(objectClass=inetOrgPerson)", GroupFilter: "(objectClass=groupOfNames)",
		// etc/schema/scimbridge.schema and .ldif; 389-DS: scimbridge-389ds.ldif and
		// 60scimbridge.ldif.
		Schema: OptionalSchema{
			Detect:         "scimbridgeOtherMail",
			UserAttributes: copyMap(schemaUserAttributes),
			Attributes:     schemaAttributes(schemaUserAttributes),
			AuxiliaryClass: SchemaAuxiliaryClass,
		},
	}
}

// The Active Directory filters leave out computers (which are users too), the objects AD
// marks critical (Administrator, krbtgt, Guest, Domain Admins, Domain Users, …) and the
// accounts and groups AdminSDHolder protects (adminCount=1: members of privileged groups and
// the groups themselves): the SCIM side never sees, changes or deletes them, even in
// CN=Users.
const (
	adUserFilter  = "(&(objectCategory=person)(objectClass=user)(!(isCriticalSystemObject=TRUE))(!(adminCount=1)))"
	adGroupFilter = "(&(objectClass=group)(!(isCriticalSystemObject=TRUE))(!(adminCount=1)))"
)

// ADAccountDisable is userAccountControl's ACCOUNTDISABLE bit.
const ADAccountDisable = 0x2

// adUserAttributes are the Active Directory defaults of [inbound.user_attributes]: every
// attribute is one the user class allows in the schema AD (and Samba) ship.
var adUserAttributes = map[string]string{
	// The user logs on with userPrincipalName; sAMAccountName (the pre-Windows 2000 name,
	// at most 20 characters) is derived from userName when the user is created and names the
	// entry (its cn), so that two people with the same name never collide.
	"userName": "userPrincipalName",
	// adminDescription is allowed on every object (users and groups alike), single-valued,
	// and not used by AD's own tools, Exchange or Entra Connect (which owns
	// mS-DS-ConsistencyGuid): a safe home for a foreign key.
	"externalId":      "adminDescription",
	"name.givenName":  "givenName",
	"name.familyName": "sn",
	"name.middleName": "middleName",
	"displayName":     "displayName",
	"profileUrl":      "wWWHomePage",
	"title":           "title",
	// preferredLanguage is in AD's user class (from inetOrgPerson).
	"preferredLanguage": "preferredLanguage",
	// mail is single-valued in AD. Entra ID's "other" addresses (proxyAddresses) go to
	// otherMailbox; home addresses have no home of their own and are not stored (sharing
	// otherMailbox would read them back as "other").
	`emails[type eq "work"].value`:         "mail",
	`emails[type eq "other"].value`:        "otherMailbox",
	`phoneNumbers[type eq "work"].value`:   "telephoneNumber",
	`phoneNumbers[type eq "mobile"].value`: "mobile",
	`phoneNumbers[type eq "fax"].value`:    "facsimileTelephoneNumber",
	`phoneNumbers[type eq "home"].value`:   "homePhone",
	`phoneNumbers[type eq "pager"].value`:  "pager",
	// The address fields ADUC shows on its Address tab. co is the free-text country name
	// (c takes only a 2-letter code, which Entra does not guarantee).
	`addresses[type eq "work"].streetAddress`: "streetAddress",
	`addresses[type eq "work"].locality`:      "l",
	`addresses[type eq "work"].region`:        "st",
	`addresses[type eq "work"].postalCode`:    "postalCode",
	`addresses[type eq "work"].country`:       "co",
	// Entra ID sends the office (AD's own physicalDeliveryOfficeName, "Office" in ADUC, which
	// Entra Connect fills) as the "other" address.
	`addresses[type eq "other"].formatted`: "physicalDeliveryOfficeName",
	// Entra's employeeId is AD's employeeID (what Entra Connect synchronises); AD's own
	// department, company and division hold the rest.
	EnterpriseSchemaURN + ":employeeNumber": "employeeID",
	EnterpriseSchemaURN + ":department":     "department",
	EnterpriseSchemaURN + ":organization":   "company",
	EnterpriseSchemaURN + ":division":       "division",
	EnterpriseSchemaURN + ":manager":        "manager",
}

// adSchemaUserAttributes are the mappings etc/schema/scimbridge-ad.ldif adds to the AD
// defaults: the two attributes of Entra ID's default mapping (and of the enterprise extension)
// that AD's user class has no home for. The country, the "other" e-mails and the division have
// stock homes in AD (co, otherMailbox, division).
var adSchemaUserAttributes = map[string]string{
	// AD has no cost-center attribute.
	EnterpriseSchemaURN + ":costCenter": "scimbridgeCostCenter",
	// On AD cn is the RDN, derived from the unique sAMAccountName, and displayName is SCIM's
	// displayName: the full name needs a home of its own.
	"name.formatted": "scimbridgeFormattedName",
}

var adGroupAttributes = map[string]string{
	// cn names the group: a displayName change renames it (ModifyDN, the only way AD changes
	// a naming attribute). sAMAccountName is derived from it when the group is created.
	"displayName": "cn",
	"externalId":  "adminDescription",
	"members":     "member",
}

func adProfile() Profile {
	return Profile{
		Dialect:         DialectAD,
		UserAttributes:  copyMap(adUserAttributes),
		GroupAttributes: copyMap(adGroupAttributes),
		Marker:          ActiveMarker{Attr: "userAccountControl", Flag: ADAccountDisable},
		EmptyGroups:     true,
		UsersRDN:        "CN=Users", GroupsRDN: "CN=Users",
		UserObjectClasses: []string{"user"}, GroupObjectClasses: []string{"group"},
		UserRDNAttribute: "cn",
		UserFilter:       adUserFilter, GroupFilter: adGroupFilter,
		// etc/schema/scimbridge-ad.ldif links scimbridgePerson to the user class.
		Schema: OptionalSchema{
			Detect:         "scimbridgeCostCenter",
			UserAttributes: copyMap(adSchemaUserAttributes),
			Attributes:     schemaAttributes(adSchemaUserAttributes),
		},
	}
}

func copyMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// sAMAccountName rules: at most 20 characters for users, none of these, and not only dots
// and spaces.
const (
	maxSAMAccountName = 20
	samInvalid        = "\"/\\[]:;|=,+*?<>@"
)

// SAMAccountName derives an Active Directory pre-Windows 2000 logon name from a SCIM userName
// (or a group's displayName): the part before '@', without the characters AD forbids. A name
// longer than max characters (20 for users) keeps its first max-5 characters and ends in '-'
// and 4 hex digits of a hash of the whole name, so that long names sharing a prefix
// ("christopher.montgomery1", "christopher.montgomery2") do not collide; the same name always
// gives the same result. It returns "" when nothing usable is left.
func SAMAccountName(name string, limit int) string {
	whole := name
	if local, _, ok := strings.Cut(name, "@"); ok && local != "" {
		name = local
	}
	var clean []rune
	for _, r := range strings.TrimSpace(name) {
		if r < 0x20 || r == 0x7f || strings.ContainsRune(samInvalid, r) {
			continue
		}
		clean = append(clean, r)
	}
	out := string(clean)
	if len(clean) > limit {
		sum := sha256.Sum256([]byte(strings.ToLower(whole)))
		keep := limit - 5
		if keep < 1 {
			keep = limit
		}
		out = strings.TrimRight(string(clean[:keep]), ". ")
		if keep < limit {
			out += "-" + hex.EncodeToString(sum[:2])
		}
	}
	out = strings.TrimRight(out, ". ")
	if strings.Trim(out, ". ") == "" {
		return ""
	}
	return out
}

// MaxUserSAMAccountName is AD's limit for a user's sAMAccountName.
const MaxUserSAMAccountName = maxSAMAccountName

// flagSet reports whether the integer in v has bit set.
func flagSet(v string, bit uint32) bool {
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	return err == nil && uint32(n)&bit != 0
}

// withFlag returns v with bit set or cleared; an empty v starts from AD's NORMAL_ACCOUNT.
func withFlag(v string, bit uint32, set bool) string {
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil {
		n = adNormalAccount
	}
	u := uint32(n)
	if set {
		u |= bit
	} else {
		u &^= bit
	}
	return fmt.Sprint(int32(u))
}

// adNormalAccount is userAccountControl's NORMAL_ACCOUNT.
const adNormalAccount = 0x200
