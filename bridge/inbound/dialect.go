package inbound

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/scimbridge/scimbridge/ldapstore"
	"github.com/scimbridge/scimbridge/mapping"
)

// Active Directory differs from an LDAP server in what it asks of a new entry and in how an
// entry changes:
//
//   - Every user and group has a sAMAccountName, unique in the domain: the bridge derives it
//     from userName (users: at most 20 characters) or displayName (groups: at most
//     maxGroupSAM) when the entry is created, and answers 409 when it is taken. A user's cn,
//     its RDN, is that sAMAccountName, so that two people with the same name never collide;
//     displayName stays the client's.
//   - A new user is created disabled (userAccountControl NORMAL_ACCOUNT|ACCOUNTDISABLE) and
//     enabled after its password is set: AD refuses to enable an account without a password
//     its policy accepts, and so does the bridge, undoing the create.
//   - The naming attribute (cn) changes only through ModifyDN, never in a Modify.
//   - member and manager are linked attributes: AD itself keeps them right when an entry is
//     renamed or deleted, so the bridge does not rewrite them.
//   - Adding a member already present is answered 68, removing one that is absent 53: like
//     20 and 16 elsewhere, harmless under at-least-once delivery.

// maxGroupSAM bounds the sAMAccountName derived for a group.
const maxGroupSAM = 64

// samAttr is AD's pre-Windows 2000 name.
const samAttr = "sAMAccountName"

// adNewEntry fills in the sAMAccountName of a new AD user or group of kind k from name
// (userName or displayName) unless the client's mapping already provides one, and makes it the
// user's cn. It answers 409 when the name is taken anywhere in the domain.
func (q *request) adNewEntry(k *kind, attrs map[string][]string, name, nameField string) error {
	sam := first(attrs, samAttr)
	if sam == "" {
		limit := mapping.MaxUserSAMAccountName
		if !k.isUser() {
			limit = maxGroupSAM
		}
		sam = mapping.SAMAccountName(name, limit)
		if sam == "" {
			return badRequest(mapping.ScimTypeInvalidValue, nameField+" leaves no usable Active Directory account name (sAMAccountName)")
		}
		attrs[samAttr] = []string{sam}
	}
	taken, err := q.s.samTaken(q.ctx(), sam)
	if err != nil {
		return err
	}
	if taken {
		return &apiError{
			status: http.StatusConflict, scimType: mapping.ScimTypeUniqueness,
			detail: nameField + " is already in use: its Active Directory account name " + sam + " is taken",
		}
	}
	if k.isUser() {
		attrs["cn"] = []string{sam}
		// Created disabled; enabled after the password (see addEntry).
		attrs[q.st.marker.Attr] = []string{adDisabledUser}
	}
	return nil
}

// adDisabledUser is userAccountControl NORMAL_ACCOUNT | ACCOUNTDISABLE.
const adDisabledUser = "514"

// samTaken reports whether any account of the domain (user, group, computer) holds sam.
func (s *Server) samTaken(ctx context.Context, sam string) (bool, error) {
	taken := false
	f := ldapstore.RenderFilter(mapping.LDAPFilter{Op: mapping.FilterEqual, Attr: samAttr, Value: sam})
	err := s.dir.Walk(ctx, ldapstore.Search{Base: s.caps.domainNC, Scope: ldapstore.ScopeSub, Filter: f, Attrs: []string{"1.1"}}, func(mapping.Entry) error {
		taken = true
		return errStop
	})
	if errors.Is(err, errStop) {
		err = nil
	}
	return taken, err
}

// adEnable clears ACCOUNTDISABLE on a user just created disabled. AD refuses when the account
// has no password its policy accepts.
func (q *request) adEnable(dn string) error {
	err := q.s.dir.Modify(q.ctx(), dn, []ldapstore.Change{{Op: ldapstore.ModReplace, Attr: q.st.marker.Attr, Values: []string{adEnabledUser}}}, ldapstore.ModifyOptions{})
	if errors.Is(err, ldapstore.ErrInvalid) {
		return &apiError{
			status: http.StatusBadRequest, scimType: mapping.ScimTypeInvalidValue,
			detail: "Active Directory refused to enable the account: send a password that meets the domain's policy (the bridge must reach AD over LDAPS), or create the user inactive", cause: err,
		}
	}
	return err
}

// adEnabledUser is userAccountControl NORMAL_ACCOUNT.
const adEnabledUser = "512"

// dropRDN drops the naming attribute from changes where the directory takes it only through
// ModifyDN: a value there, even an unchanged one, would be refused ("not allowed on RDN").
func dropRDN(changes map[string][]string, rdnAttr string) {
	if _, key, ok := lookup(changes, rdnAttr); ok {
		delete(changes, key)
	}
}

// isHarmlessMemberError reports errors of a membership change that only mean some members were
// already in (or already out of) the group: 20 and 16, and AD's 68 and 53 (which the caller
// confirms by retrying with only the changes still to do).
func (s *Server) isHarmlessMemberError(err error) bool {
	switch {
	case errors.Is(err, ldapstore.ErrValueExists), errors.Is(err, ldapstore.ErrNoSuchAttribute):
		return true
	case s.caps.dialect == ldapstore.DialectAD && errors.Is(err, ldapstore.ErrInvalid):
		return true
	}
	return false
}

// domainNC is the naming context a root DSE names as the domain's (AD's defaultNamingContext),
// or "" when it names none.
func domainNC(dse *ldapstore.RootDSE) string {
	for k, v := range dse.Raw {
		if strings.EqualFold(k, "defaultNamingContext") && len(v) > 0 {
			return v[0]
		}
	}
	return ""
}
