package inbound

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/scimbridge/scimbridge/ldapstore"
	"github.com/scimbridge/scimbridge/mapping"
)

// defaultMaxMembers is the default of Config.MaxMembers.
const defaultMaxMembers = 20000

// state is everything derived from one Config; Reload swaps it whole.
type state struct {
	cfg    Config
	tokens []Token
	umap   mapping.UserMap
	gmap   mapping.GroupMap
	marker mapping.ActiveMarker
	idAttr string
	users  *kind
	groups *kind
	// userAttrs are read for every user; groupAttrs for groups, with and without members.
	userAttrs                       []string
	groupAttrs, groupAttrsNoMembers []string
	managerAttr                     string
	disco                           http.Handler
	spc                             map[string]any
	// prot is what is protected; static is its guard when no protected group needs reading.
	prot   protection
	static *guard
	// queue bounds the requests worked on at once.
	queue *workQueue
	// profile is the dialect's: default maps, marker, derived names, empty groups.
	profile mapping.Profile
	// ad: Active Directory's rules apply (see dialect.go).
	ad bool
}

// kind is one resource type and where its entries live.
type kind struct {
	name     string // "User" or "Group": meta.resourceType and the audit resource
	endpoint string // "Users" or "Groups"
	// base receives new entries; bases are searched (users: and the disabled base when it is
	// not below base).
	base   string
	bases  []string
	scopes []ldapstore.DN // bases, parsed
	// filter selects the kind's entries ([ldap.users] filter): uniqueness is checked against
	// all of them. fence is what the SCIM side may see and touch: filter, the kind's
	// inbound.scope_filter and, in managed mode, the managed marker.
	filter string
	// scoped is filter ANDed with the kind's inbound.scope_filter: what adoption may take over.
	scoped  string
	fence   string
	rdnAttr string
	// managed is the marker the bridge adds to what it creates in managed mode (zero: not in
	// managed mode).
	managed       managedMarker
	objectClasses []string
	// nameAttr holds userName or displayName: uniqueness checks and sort order.
	nameAttr string
	sortKey  ldapstore.SortKey
}

func (k *kind) isUser() bool { return k.name == "User" }

// inScope reports whether dn is one of k's bases or below one.
func (k *kind) inScope(dn string) bool {
	for _, b := range k.scopes {
		if b.Contains(dn) {
			return true
		}
	}
	return false
}

// fenced ANDs f (already rendered and escaped) with the kind's fence.
func (k *kind) fenced(f string) string { return and(k.fence, f) }

// and ANDs LDAP filters, leaving out empty ones; none is every entry.
func and(filters ...string) string {
	if f := ldapstore.JoinFilters('&', filters...); f != "" {
		return f
	}
	return "(objectClass=*)"
}

func (s *Server) newState(cfg Config) (*state, error) {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf("inbound: "+format, args...)) }
	cfg.BasePath = "/" + strings.Trim(cfg.BasePath, "/")
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	if cfg.MaxResults <= 0 {
		cfg.MaxResults = 1000
	}
	if cfg.DefaultCount <= 0 {
		cfg.DefaultCount = min(100, cfg.MaxResults)
	}
	if cfg.MaxMembers <= 0 {
		cfg.MaxMembers = defaultMaxMembers
	}
	if cfg.MaxConcurrent <= 0 {
		cfg.MaxConcurrent = defaultMaxConcurrent
	}
	switch {
	case cfg.MaxQueued == 0:
		cfg.MaxQueued = defaultMaxQueued
	case cfg.MaxQueued < 0:
		cfg.MaxQueued = 0
	}
	if cfg.QueueTimeout <= 0 {
		cfg.QueueTimeout = defaultQueueTimeout
	}
	if cfg.AdoptExisting && !cfg.ManagedOnly {
		add("inbound.adopt_existing: only has a meaning with inbound.managed_only = true")
	}
	for key, f := range map[string]string{"inbound.scope_filter.users": cfg.Users.ScopeFilter, "inbound.scope_filter.groups": cfg.Groups.ScopeFilter} {
		if f != "" {
			if err := ldapstore.CheckFilter(f); err != nil {
				add("%s: %q is not a valid LDAP filter", key, f)
			}
		}
	}
	prot, perrs := newProtection(cfg.Protect, s.caps.dnAttr)
	errs = append(errs, perrs...)
	if len(cfg.Tokens) == 0 {
		add("inbound.token: no token: every request would be refused")
	}
	if cfg.Disable == "" {
		cfg.Disable = DisableAttribute
	}
	switch cfg.Disable {
	case DisableAttribute, DisableDelete:
	case DisableMove:
		if _, _, err := ldapstore.SplitDN(cfg.DisabledBaseDN); err != nil {
			add("inbound.disabled_base_dn: %q is not a DN (required with disable = \"move\")", cfg.DisabledBaseDN)
		}
	default:
		add("inbound.disable: unknown value %q", cfg.Disable)
	}
	u, g := cfg.Users, cfg.Groups
	if _, _, err := ldapstore.SplitDN(u.BaseDN); err != nil {
		add("ldap.users.base_dn: %q is not a DN", u.BaseDN)
	}
	if _, _, err := ldapstore.SplitDN(g.BaseDN); err != nil {
		add("ldap.groups.base_dn: %q is not a DN", g.BaseDN)
	}
	ad := s.caps.dialect == ldapstore.DialectAD
	profile := mapping.ProfileFor(string(s.caps.dialect))
	if len(u.ObjectClasses) == 0 {
		u.ObjectClasses = profile.UserObjectClasses
	}
	if len(g.ObjectClasses) == 0 {
		g.ObjectClasses = profile.GroupObjectClasses
	}
	if u.RDNAttribute == "" {
		u.RDNAttribute = profile.UserRDNAttribute
	}
	if g.RDNAttribute == "" {
		g.RDNAttribute = "cn"
	}
	if u.Filter == "" {
		u.Filter = profile.DefaultUserFilter(u.ObjectClasses)
	}
	if g.Filter == "" {
		g.Filter = profile.DefaultGroupFilter(g.ObjectClasses)
	}
	if g.MemberAttribute == "" {
		g.MemberAttribute = "member"
	}
	marker := profile.Marker
	if s.caps.ppolicy && (s.caps.dialect == ldapstore.DialectOpenLDAP || s.caps.dialect == ldapstore.DialectGeneric) {
		// Only OpenLDAP's ppolicy overlay enforces the lock; 389-DS and AD have their own.
		marker.LockAttr = "pwdAccountLockedTime"
	}
	idAttr := u.IDAttribute
	if idAttr == "" {
		idAttr = s.caps.dialect.IDAttribute()
	}
	// The optional schema's attributes map by default when the directory has it; the
	// configuration overrides them like any default.
	userOver := map[string]string{}
	if s.caps.schema {
		for k, v := range profile.Schema.UserAttributes {
			userOver[k] = v
		}
	}
	for k, v := range cfg.UserAttributes {
		userOver[k] = v
	}
	umap, err := mapping.NewUserMapFor(profile, userOver, cfg.Extensions...)
	if err != nil {
		errs = append(errs, fmt.Errorf("inbound: %w", err))
	}
	gover := map[string]string{"members": g.MemberAttribute}
	for k, v := range cfg.GroupAttributes {
		gover[k] = v
	}
	gmap, err := mapping.NewGroupMapFor(profile, gover)
	if err != nil {
		errs = append(errs, fmt.Errorf("inbound: %w", err))
	}
	errs = append(errs, sensitiveErrors(cfg.AllowSensitive, umap, gmap)...)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	ordering := "caseIgnoreOrderingMatch"
	if s.caps.dialect == ldapstore.DialectAD {
		ordering = ""
	}
	userName := umap.LDAPAttr("userName")
	if userName == "" {
		return nil, errors.New("inbound: inbound.user_attributes: userName must be mapped")
	}
	displayName := gmap.LDAPAttr("displayName")
	if displayName == "" {
		displayName = "cn"
	}
	users := &kind{
		name: "User", endpoint: "Users", base: u.BaseDN, bases: []string{u.BaseDN}, filter: u.Filter,
		rdnAttr: u.RDNAttribute, objectClasses: u.ObjectClasses, nameAttr: userName,
		sortKey: ldapstore.SortKey{Attr: userName, OrderingRule: ordering},
	}
	if cfg.ManagedOnly {
		users.managed = defaultManagedMarker(s.caps.dialect, true)
	}
	users.scoped = and(users.filter, u.ScopeFilter)
	users.fence = and(users.scoped, users.managed.filter())
	if cfg.Disable == DisableMove && !ldapstore.InScope(cfg.DisabledBaseDN, u.BaseDN) {
		users.bases = append(users.bases, cfg.DisabledBaseDN)
	}
	groups := &kind{
		name: "Group", endpoint: "Groups", base: g.BaseDN, bases: []string{g.BaseDN}, filter: g.Filter,
		rdnAttr: g.RDNAttribute, objectClasses: g.ObjectClasses, nameAttr: displayName,
		sortKey: ldapstore.SortKey{Attr: displayName, OrderingRule: ordering},
	}
	if cfg.ManagedOnly {
		groups.managed = defaultManagedMarker(s.caps.dialect, false)
	}
	groups.scoped = and(groups.filter, g.ScopeFilter)
	groups.fence = and(groups.scoped, groups.managed.filter())
	for _, k := range []*kind{users, groups} {
		for _, b := range k.bases {
			d, err := ldapstore.ParseDN(b)
			if err != nil {
				return nil, fmt.Errorf("inbound: base %q: %w", b, err)
			}
			k.scopes = append(k.scopes, d)
		}
	}
	st := &state{
		cfg: cfg, tokens: cfg.Tokens, umap: umap, gmap: gmap, marker: marker, idAttr: idAttr,
		users: users, groups: groups,
		userAttrs:           umap.SearchAttributes(marker, idAttr),
		groupAttrs:          gmap.SearchAttributes(idAttr, true),
		groupAttrsNoMembers: gmap.SearchAttributes(idAttr, false),
		managerAttr:         umap.LDAPAttr(mapping.EnterpriseSchemaURN + ":manager"),
		prot:                prot,
		profile:             profile, ad: ad,
	}
	if s.caps.schema && profile.Schema.AuxiliaryClass != "" {
		// A write that gives a user an attribute of the optional schema adds its auxiliary
		// class when the entry lacks it.
		st.userAttrs = umap.SearchAttributes(marker, idAttr, "objectClass")
	}
	if st.static, err = staticGuard(st); err != nil {
		return nil, err
	}
	// A reload keeps the queue (and the requests in it) when its bounds stay.
	if old := s.state.Load(); old != nil && old.queue.sameBounds(cfg.MaxConcurrent, cfg.MaxQueued, cfg.QueueTimeout) {
		st.queue = old.queue
	} else {
		st.queue = newWorkQueue(cfg.MaxConcurrent, cfg.MaxQueued, cfg.QueueTimeout)
	}
	if st.disco, err = discoveryHandler(st); err != nil {
		return nil, err
	}
	st.spc = serviceProviderConfig(st)
	return st, nil
}

// sensitiveErrors refuses the mappings to sensitive LDAP attributes that the admin did not
// allow by name.
func sensitiveErrors(allowed []string, umap mapping.UserMap, gmap mapping.GroupMap) []error {
	var errs []error
	for _, sm := range mapping.SensitiveMappings(allowed, umap.Mappings(), gmap.Mappings()) {
		errs = append(errs, fmt.Errorf("inbound: %q → %s: refused: %s; SCIM would control it. Name it in inbound.allow_sensitive_attributes to map it all the same", sm.Key, sm.Attr, sm.Why))
	}
	return errs
}

// relPath returns the request path below the base path ("/Users/…"); ok is false outside it.
func (st *state) relPath(path string) (string, bool) {
	base := st.cfg.BasePath
	if base == "/" {
		return path, true
	}
	if path == base {
		return "/", true
	}
	if strings.HasPrefix(path, base+"/") {
		return path[len(base):], true
	}
	return "", false
}
