package doctor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/rs/zerolog"

	"github.com/scimbridge/scimbridge/bridge"
	"github.com/scimbridge/scimbridge/bridge/inbound"
	"github.com/scimbridge/scimbridge/ldapstore"
	"github.com/scimbridge/scimbridge/mapping"
)

// maxGrantReads bounds the entries read to expand the groups an access rule grants write to.
const maxGrantReads = 256

// checkFence checks the SCIM fence against the directory: the protected groups exist, and no
// account that may write the directory lies within SCIM's reach unprotected (a SCIM client
// could otherwise reset its password and act as it). Operators are found where the directory
// says who they are: OpenLDAP's olcRootDN and olcAccess (when cn=config is readable), Active
// Directory's adminCount.
func checkFence(ctx context.Context, r *run) []Result {
	const name = "inbound.fence"
	if !r.cfg.Inbound.Enabled {
		return []Result{pass(name, "the inbound SCIM server is off")}
	}
	icfg, err := bridge.InboundConfig(r.cfg)
	if err != nil {
		return []Result{fail(name, "correct the [inbound] section (scimbridge check-config names the key)", "%v", err)}
	}
	srv, err := inbound.New(ctx, inbound.Options{Config: icfg, Directory: r.store, Logger: zerolog.Nop()})
	if err != nil {
		fix := "correct the [inbound] section (scimbridge check-config names the key)"
		if strings.Contains(err.Error(), "inbound.protected_groups") {
			fix = "create the group, or correct its DN in inbound.protected_groups (the service account must be able to read it)"
		}
		return []Result{fail(name, fix, "%v", err)}
	}
	defer srv.Close()
	fence, err := srv.Fence(ctx)
	if err != nil {
		return []Result{fail(name, "create the group, or correct its DN in inbound.protected_groups (the service account must be able to read it)", "%v", err)}
	}

	var operators []grant
	var how string
	switch {
	case r.dse.Dialect == ldapstore.DialectAD:
		operators, err = r.adminCountAccounts(ctx, fence)
		how = "accounts with adminCount=1"
	case r.loadOLC(ctx) != nil:
		operators, err = r.olcOperators(ctx, fence)
		how = "olcRootDN and the write grants of olcAccess"
	default:
		return []Result{
			pass(name, "%d entries protected from SCIM (the service account, inbound.protected_dns, inbound.protected_groups and their members)", len(fence.Protected)),
			skip(name+".operators", "the directory does not say who may write it to the service account: make sure no operator account (one with write rights) lies below the users or groups bases unless inbound.protected_dns or inbound.protected_groups names it (on OpenLDAP, let the service account read cn=config and this is checked)"),
		}
	}
	if err != nil {
		return []Result{warn(name+".operators", "let the service account read what the check needs, or check by hand", "cannot list the directory's operators (%s): %v", how, err)}
	}
	var out []Result
	said := map[string]bool{}
	for _, g := range operators {
		key := ldapstore.NormalizeDN(g.dn)
		if said[key] || !fence.InReach(g.dn) || (g.via != "" && fence.InReach(g.via)) {
			continue // said once; a group's line covers its members
		}
		said[key] = true
		if g.group {
			out = append(out, fail(name+".operators", fmt.Sprintf("add %q to inbound.protected_groups (it protects the group and its members), or move it out of the groups base", g.dn),
				"the group %q grants write access to the directory (%s) and lies within SCIM's reach: a SCIM client could add itself to it", g.dn, g.source))
			continue
		}
		where := "inbound.protected_dns"
		if g.via != "" {
			where = fmt.Sprintf("inbound.protected_groups (add %q)", g.via)
		}
		out = append(out, fail(name+".operators", fmt.Sprintf("add it to %s, or move the account out of the users base", where),
			"%q may write the directory (%s) and lies within SCIM's reach: a SCIM client could reset its password and act as it", g.dn, g.source))
	}
	if len(out) > 0 {
		return out
	}
	return []Result{pass(name, "%d entries protected from SCIM; none of the directory's operators (%s) is within SCIM's reach", len(fence.Protected), how)}
}

// grant is an account or group that may write the directory, and where that is said.
type grant struct {
	dn     string
	group  bool   // a group whose members may write
	via    string // the group through which dn may write ("" for a direct grant)
	source string // "olcRootDN", "olcAccess {2}", "adminCount=1"
}

// adminCountAccounts lists the entries below the users and groups bases that Active Directory
// marks adminCount=1: members (even nested) of the protected groups such as Domain Admins, and
// those groups themselves.
func (r *run) adminCountAccounts(ctx context.Context, f inbound.Fence) ([]grant, error) {
	var out []grant
	for _, base := range f.Bases {
		err := r.store.Walk(ctx, ldapstore.Search{Base: base, Scope: ldapstore.ScopeSub, Filter: "(adminCount=1)", Attrs: []string{"objectClass"}}, func(e mapping.Entry) error {
			isGroup := slices.ContainsFunc(e.Get("objectClass"), func(c string) bool { return strings.EqualFold(c, "group") })
			out = append(out, grant{dn: e.DN, group: isGroup, source: "adminCount=1"})
			return nil
		})
		if err != nil && !errors.Is(err, ldapstore.ErrNotFound) {
			return nil, err
		}
	}
	return out, nil
}

// olcOperators lists the root DNs of OpenLDAP's databases and every DN and group olcAccess
// grants write (or manage) access to, with the members of those groups.
func (r *run) olcOperators(ctx context.Context, f inbound.Fence) ([]grant, error) {
	var out, groups []grant
	bases := f.Bases
	for _, e := range r.olc.entries {
		for _, dn := range e.Get("olcRootDN") {
			out = append(out, grant{dn: dn, source: "olcRootDN of " + e.DN})
		}
		for _, acl := range e.Get("olcAccess") {
			rule := parseACL(acl)
			if !rule.covers(bases) {
				continue
			}
			for _, g := range rule.writers {
				g.source = "olcAccess " + rule.index + " of " + e.DN
				if g.group {
					groups = append(groups, g)
				}
				out = append(out, g)
			}
		}
	}
	// A group's members may write too: read them, nested groups included.
	memberAttrs := []string{"member", "uniqueMember"}
	if a := r.cfg.LDAP.Groups.MemberAttribute; a != "" && !slices.ContainsFunc(memberAttrs, func(m string) bool { return strings.EqualFold(m, a) }) {
		memberAttrs = append(memberAttrs, a)
	}
	reads := 0
	visited := map[string]bool{}
	var expand func(dn, top, source string) error
	expand = func(dn, top, source string) error {
		if visited[ldapstore.NormalizeDN(dn)] {
			return nil
		}
		visited[ldapstore.NormalizeDN(dn)] = true
		if reads++; reads > maxGrantReads {
			return fmt.Errorf("more than %d entries in the groups olcAccess grants write to", maxGrantReads)
		}
		e, err := r.store.Get(ctx, dn, memberAttrs)
		if errors.Is(err, ldapstore.ErrNotFound) || errors.Is(err, ldapstore.ErrInvalid) {
			return nil // a member that is not an entry (yet), or not a group
		}
		if err != nil {
			return err
		}
		for _, a := range memberAttrs {
			for _, m := range e.Get(a) {
				m, _, _ = strings.Cut(m, "#") // uniqueMember's optional unique id
				if _, err := ldapstore.ParseDN(m); err != nil {
					continue
				}
				out = append(out, grant{dn: m, via: top, source: source})
				if err := expand(m, top, source); err != nil {
					return err
				}
			}
		}
		return nil
	}
	for _, g := range groups {
		if err := expand(g.dn, g.dn, g.source); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// aclRule is what checkFence needs of one olcAccess value.
type aclRule struct {
	index string // "{2}"
	// targets are the DNs of the "to" clause with their style; none means every entry.
	targets []aclTarget
	writers []grant
}

type aclTarget struct {
	style, dn string
}

// covers reports whether the rule may apply to an entry at or below one of bases.
func (r aclRule) covers(bases []string) bool {
	if len(r.targets) == 0 {
		return true
	}
	for _, t := range r.targets {
		if strings.HasPrefix(t.style, "regex") || strings.HasPrefix(t.style, "expand") {
			return true // cannot tell: assume it does
		}
		for _, b := range bases {
			if b != "" && (ldapstore.InScope(t.dn, b) || ldapstore.InScope(b, t.dn)) {
				return true
			}
		}
	}
	return false
}

// parseACL reads an olcAccess value ("{0}to dn.subtree=… by dn.exact=… write by * none") far
// enough to know what it applies to and which DNs and groups it lets write: "by" clauses of
// dn (exact or base) and group with the write or manage level, or privileges with w or m.
func parseACL(v string) aclRule {
	var rule aclRule
	if strings.HasPrefix(v, "{") {
		if i := strings.Index(v, "}"); i > 0 {
			rule.index, v = v[:i+1], v[i+1:]
		}
	}
	words := splitACL(v)
	i := 0
	if i < len(words) && strings.EqualFold(words[i], "to") {
		i++
	}
	for ; i < len(words) && !strings.EqualFold(words[i], "by"); i++ {
		key, val, ok := strings.Cut(words[i], "=")
		if !ok {
			continue
		}
		if base, style, _ := strings.Cut(key, "."); strings.EqualFold(base, "dn") {
			rule.targets = append(rule.targets, aclTarget{style: strings.ToLower(style), dn: unquote(val)})
		}
	}
	for i < len(words) {
		i++ // "by"
		var who []grant
		level := ""
		for ; i < len(words) && !strings.EqualFold(words[i], "by"); i++ {
			w := words[i]
			key, val, ok := strings.Cut(w, "=")
			switch {
			case !ok && level == "" && isAccessLevel(w):
				level = strings.ToLower(w)
			case ok && key == "" && level == "":
				level = w // "=wrscx"
			case ok && (strings.HasPrefix(key, "+") || strings.HasPrefix(key, "-")):
				level = w
			case ok:
				base, style, _ := strings.Cut(strings.ToLower(key), ".")
				exact := style == "" || style == "exact" || style == "base"
				switch {
				case base == "dn" && exact:
					who = append(who, grant{dn: unquote(val)})
				case (base == "group" || strings.HasPrefix(base, "group/")) && exact:
					who = append(who, grant{dn: unquote(val), group: true})
				}
			}
		}
		if writes(level) {
			rule.writers = append(rule.writers, who...)
		}
	}
	return rule
}

// isAccessLevel reports whether w is one of slapd's access levels (self prefixed or not).
func isAccessLevel(w string) bool {
	switch strings.TrimPrefix(strings.ToLower(w), "self") {
	case "none", "disclose", "auth", "compare", "search", "read", "write", "add", "delete", "manage":
		return true
	}
	return false
}

// writes reports whether an access level or privilege set lets its holder change entries.
func writes(level string) bool {
	switch level {
	case "write", "manage":
		return true
	}
	if strings.HasPrefix(level, "=") || strings.HasPrefix(level, "+") {
		return strings.ContainsAny(level[1:], "wm")
	}
	return false
}

// splitACL splits an ACL into words at spaces outside double quotes.
func splitACL(s string) []string {
	var out []string
	var cur strings.Builder
	quoted := false
	for _, c := range s {
		switch {
		case c == '"':
			quoted = !quoted
			cur.WriteRune(c)
		case !quoted && (c == ' ' || c == '\t' || c == '\n'):
			if cur.Len() > 0 {
				out = append(out, cur.String())
				cur.Reset()
			}
		default:
			cur.WriteRune(c)
		}
	}
	if cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out
}

func unquote(s string) string { return strings.Trim(s, `"`) }
