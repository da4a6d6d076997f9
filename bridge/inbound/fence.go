package inbound

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/scimbridge/scimbridge/ldapstore"
	"github.com/scimbridge/scimbridge/mapping"
)

// The fence: one resolver decides what the SCIM side may see and touch, on every path (by id,
// by filter, in lists, as a member, as a manager, as the target of a create, rename or move).
// An entry is visible when
//
//   - it lies below one of its kind's bases (users: and the disabled base),
//   - it matches one LDAP filter, kind.fence: the kind's filter ([ldap.users] filter), the
//     kind's inbound.scope_filter and, in managed mode, the managed marker, and
//   - it is not protected: the bridge's own bind DN, inbound.protected_dns, the
//     inbound.protected_groups themselves, their members and the members of groups nested in
//     them (a guard, rebuilt at most every protectedTTL).
//
// Searches carry kind.fence, and every entry they return is checked against the guard. Lists
// also exclude the protected DNs in the LDAP filter, so that totalResults and pages stay exact.
// Lookups by id and of members and managers do not: they find a protected entry, hide it, and
// record the refusal (an audit event with result=denied), which a plain "not found" could not.

// Protection is what the SCIM side must never see or touch, whatever the bases and filters say.
type Protection struct {
	// BindDN is the bridge's own account: always protected.
	BindDN string
	// DNs are further protected entries (inbound.protected_dns). A DN that does not exist yet is
	// protected all the same: SCIM cannot create an entry there.
	DNs []string
	// Groups are protected groups (inbound.protected_groups): each group, its members and the
	// members of the groups nested in it, however deep. A group that does not exist is an error.
	Groups []string
}

// protectedTTL bounds how long a change of a protected group's membership takes to apply:
// the guard is rebuilt from the groups at most this often.
const protectedTTL = 2 * time.Second

const (
	// maxProtectedReads bounds the entries read to expand the protected groups once.
	maxProtectedReads = 512
	// maxProtectedInBases bounds the protected DNs below one kind's bases, which every listing
	// excludes in its LDAP filter.
	maxProtectedInBases = 1000
)

// Reasons an entry is protected, for the audit log (never a DN).
const (
	whyBindDN    = "bind_dn"
	whyDNs       = "protected_dns"
	whyGroups    = "protected_groups"
	whyNotInBase = "outside_bases"
)

// protection is the resolved, static part of a Protection in one state.
type protection struct {
	static map[string]string // NormalizeDN(dn) → why
	groups []string
	// dnAttr is the attribute that filters on an entry's DN (entryDN, distinguishedName); ""
	// when the directory has none, and listings then only drop protected entries afterwards.
	dnAttr string
}

// guard is the protected set at one moment.
type guard struct {
	st    *state
	dns   map[string]string // NormalizeDN(dn) → why
	built time.Time
	// exclude is, per kind, the LDAP clause that drops the protected DNs below its bases ("":
	// none there).
	exclude map[*kind]string
}

// why returns why dn is protected.
func (g *guard) why(dn string) (string, bool) {
	w, ok := g.dns[ldapstore.NormalizeDN(dn)]
	return w, ok
}

// hidden reports whether an entry of kind k at dn is invisible to the SCIM side, and why.
func (g *guard) hidden(k *kind, dn string) (string, bool) {
	if !k.inScope(dn) {
		return whyNotInBase, true
	}
	return g.why(dn)
}

// newProtection resolves a Protection for a state; errors name the configuration keys.
func newProtection(p Protection, dnAttr string) (protection, []error) {
	out := protection{static: map[string]string{}, dnAttr: dnAttr}
	var errs []error
	if p.BindDN != "" {
		if _, err := ldapstore.ParseDN(p.BindDN); err != nil {
			errs = append(errs, fmt.Errorf("inbound: ldap.bind_dn: %q is not a DN", p.BindDN))
		} else {
			out.static[ldapstore.NormalizeDN(p.BindDN)] = whyBindDN
		}
	}
	for _, dn := range p.DNs {
		if _, err := ldapstore.ParseDN(dn); err != nil {
			errs = append(errs, fmt.Errorf("inbound: inbound.protected_dns: %q is not a DN", dn))
			continue
		}
		if _, ok := out.static[ldapstore.NormalizeDN(dn)]; !ok {
			out.static[ldapstore.NormalizeDN(dn)] = whyDNs
		}
	}
	for _, dn := range p.Groups {
		if _, err := ldapstore.ParseDN(dn); err != nil {
			errs = append(errs, fmt.Errorf("inbound: inbound.protected_groups: %q is not a DN", dn))
			continue
		}
		out.groups = append(out.groups, dn)
	}
	return out, errs
}

// finish fills in the exclusion clauses of a guard whose DNs are complete.
func (g *guard) finish() error {
	g.exclude = map[*kind]string{}
	for _, k := range []*kind{g.st.users, g.st.groups} {
		var subs []mapping.LDAPFilter
		for dn := range g.dns {
			if k.inScope(dn) {
				subs = append(subs, mapping.LDAPFilter{Op: mapping.FilterEqual, Attr: g.st.prot.dnAttr, Value: dn})
			}
		}
		if len(subs) > maxProtectedInBases {
			return fmt.Errorf("inbound: inbound.protected_groups: %d protected entries below the %s bases (at most %d): protect a smaller group, or fence with inbound.scope_filter", len(subs), strings.ToLower(k.name), maxProtectedInBases)
		}
		if len(subs) == 0 || g.st.prot.dnAttr == "" {
			continue
		}
		inner := mapping.LDAPFilter{Op: mapping.FilterOr, Subs: subs}
		if len(subs) == 1 {
			inner = subs[0]
		}
		g.exclude[k] = ldapstore.RenderFilter(mapping.LDAPFilter{Op: mapping.FilterNot, Subs: []mapping.LDAPFilter{inner}})
	}
	return nil
}

// staticGuard is the guard of a state without protected groups: it never changes.
func staticGuard(st *state) (*guard, error) {
	g := &guard{st: st, dns: st.prot.static, built: time.Now()}
	return g, g.finish()
}

// guardCache holds the current guard and builds the next one once for everybody. A build that
// failed is remembered for protectedTTL too: requests fail fast meanwhile, and the directory
// and the log see one attempt per period, not one per request.
type guardCache struct {
	mu     sync.Mutex
	cur    *guard
	flight *guardFlight
	failed *guardFlight // the last failed build
	failAt time.Time
}

type guardFlight struct {
	st   *state
	done chan struct{}
	g    *guard
	err  error
}

// guard returns the guard for st: the static one without protected groups, else one built at
// most protectedTTL ago. A guard that cannot be built (a protected group is gone, the
// directory is down) is an error: the request fails rather than risk showing what is protected.
func (s *Server) guard(ctx context.Context, st *state) (*guard, error) {
	if len(st.prot.groups) == 0 {
		return st.static, nil
	}
	c := &s.guards
	c.mu.Lock()
	if g := c.cur; g != nil && g.st == st && time.Since(g.built) < protectedTTL {
		c.mu.Unlock()
		return g, nil
	}
	if f := c.failed; f != nil && f.st == st && time.Since(c.failAt) < protectedTTL {
		c.mu.Unlock()
		return nil, f.err
	}
	if f := c.flight; f != nil && f.st == st {
		c.mu.Unlock()
		select {
		case <-f.done:
			return f.g, f.err
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
	f := &guardFlight{st: st, done: make(chan struct{})}
	c.flight = f
	c.mu.Unlock()

	f.g, f.err = s.buildGuard(ctx, st)
	c.mu.Lock()
	if f.err == nil {
		c.cur, c.failed = f.g, nil
	} else if ctx.Err() == nil {
		c.failed, c.failAt = f, time.Now()
	}
	c.flight = nil
	c.mu.Unlock()
	close(f.done)
	if f.err != nil {
		s.logger.Error().Err(f.err).Msg("cannot read the protected groups: refusing scim requests until they can be read")
	}
	return f.g, f.err
}

// errGuard is what the client sees when the protected set cannot be built.
func errGuard(err error) *apiError {
	if errors.Is(err, ldapstore.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) {
		return classify(err)
	}
	return &apiError{status: http.StatusServiceUnavailable, detail: "the server cannot check its protected entries; retry later", cause: err, retryAfter: errRetryAfterSeconds}
}

// buildGuard reads the protected groups and, through their member attributes, every group
// nested in them. Every member DN is protected, whether or not it exists. Members below the
// users bases and not below the groups bases are taken as users and not read.
func (s *Server) buildGuard(ctx context.Context, st *state) (*guard, error) {
	g := &guard{st: st, dns: make(map[string]string, len(st.prot.static)+16)}
	for k, v := range st.prot.static {
		g.dns[k] = v
	}
	memberAttrs := uniqueFold("member", "uniqueMember", st.gmap.MemberAttr())
	visited := map[string]bool{}
	reads := 0
	var expand func(dn string, top bool) error
	expand = func(dn string, top bool) error {
		key := ldapstore.NormalizeDN(dn)
		if visited[key] {
			return nil
		}
		visited[key] = true
		if _, ok := g.dns[key]; !ok {
			g.dns[key] = whyGroups
		}
		if !top && st.users.inScope(dn) && !st.groups.inScope(dn) {
			return nil
		}
		if reads++; reads > maxProtectedReads {
			return fmt.Errorf("inbound: inbound.protected_groups: more than %d entries to read to expand them: protect smaller groups", maxProtectedReads)
		}
		e, err := s.dir.Get(ctx, dn, memberAttrs)
		switch {
		case errors.Is(err, ldapstore.ErrNotFound), errors.Is(err, ldapstore.ErrInvalid):
			if top {
				return fmt.Errorf("inbound: inbound.protected_groups: %q does not exist: refusing to guess who it protected", dn)
			}
			return nil // a member that does not exist (yet) stays protected
		case err != nil:
			return fmt.Errorf("inbound: reading protected group %q: %w", dn, err)
		}
		for _, a := range memberAttrs {
			for _, v := range e.Get(a) {
				if i := strings.Index(v, "#"); i >= 0 && strings.EqualFold(a, "uniqueMember") {
					v = v[:i] // groupOfUniqueNames: "DN#'0101'B" carries an optional unique id
				}
				if mapping.IsPlaceholder(v) {
					continue
				}
				if _, err := ldapstore.ParseDN(v); err != nil {
					continue
				}
				if err := expand(v, false); err != nil {
					return err
				}
			}
		}
		return nil
	}
	for _, dn := range st.prot.groups {
		if err := expand(dn, true); err != nil {
			return nil, err
		}
	}
	g.built = time.Now()
	return g, g.finish()
}

func uniqueFold(names ...string) []string {
	var out []string
	for _, n := range names {
		dup := false
		for _, o := range out {
			if strings.EqualFold(o, n) {
				dup = true
			}
		}
		if !dup && n != "" {
			out = append(out, n)
		}
	}
	return out
}

// deny records that the fence refused something the request named (why: bind_dn,
// protected_dns, protected_groups) and returns ae, the answer the client sees — 404, or 400
// for a member or manager, 409 for a name it may not take — exactly as for something that does
// not exist. The request's audit event then says result=denied, with why.
func (q *request) deny(why string, ae *apiError) *apiError {
	if q.denied == "" {
		q.denied = why
	}
	return ae
}

// Fence describes the fence of the running configuration: what it protects and where SCIM
// reads and writes. `scimbridge doctor` checks it against the directory.
type Fence struct {
	// Protected maps each protected DN (normalized) to why: bind_dn, protected_dns or
	// protected_groups (the groups, their members and nested members).
	Protected map[string]string
	// Bases are where SCIM reads and writes: the users bases (the disabled base too) and the
	// groups bases.
	Bases         []string
	users, groups *kind
}

// Fence reads the protected groups (as a request would) and returns the fence now in force.
func (s *Server) Fence(ctx context.Context) (Fence, error) {
	st := s.state.Load()
	g, err := s.guard(ctx, st)
	if err != nil {
		return Fence{}, err
	}
	return Fence{
		Protected: maps.Clone(g.dns),
		Bases:     slices.Concat(st.users.bases, st.groups.bases),
		users:     st.users, groups: st.groups,
	}, nil
}

// InReach reports whether an entry at dn lies where SCIM reads and writes — below a base of
// users or groups — and is not protected: SCIM can then change it (its password too) as far
// as the filters let it.
func (f Fence) InReach(dn string) bool {
	if !f.users.inScope(dn) && !f.groups.inScope(dn) {
		return false
	}
	_, protected := f.Protected[ldapstore.NormalizeDN(dn)]
	return !protected
}
