package doctor

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/scimbridge/scimbridge/ldapstore"
	"github.com/scimbridge/scimbridge/mapping"
)

// olcConfig is what OpenLDAP's cn=config says about the databases, when the service account
// may read it (the README suggests it; doctor then checks logops, logpurge and size limits
// exactly instead of by experiment).
type olcConfig struct {
	entries []mapping.Entry
}

// loadOLC reads cn=config once; nil when it is absent or unreadable.
func (r *run) loadOLC(ctx context.Context) *olcConfig {
	if r.olcTried {
		return r.olc
	}
	r.olcTried = true
	entries, err := r.store.SearchAll(ctx, ldapstore.Search{
		Base: "cn=config", Scope: ldapstore.ScopeSub,
		Filter: "(|(objectClass=olcGlobal)(objectClass=olcDatabaseConfig)(objectClass=olcAccessLogConfig))",
		Attrs:  []string{"olcSuffix", "olcLimits", "olcSizeLimit", "olcAccessLogDB", "olcAccessLogOps", "olcAccessLogPurge", "olcAccess", "olcRootDN"},
	})
	if err != nil || len(entries) == 0 {
		return nil
	}
	r.olc = &olcConfig{entries: entries}
	return r.olc
}

// accesslogOverlay finds the accesslog overlay entry that logs into logdb.
func (c *olcConfig) accesslogOverlay(logdb string) (mapping.Entry, bool) {
	for _, e := range c.entries {
		if db := e.First("olcAccessLogDB"); db != "" && ldapstore.SameDN(db, logdb) {
			return e, true
		}
	}
	return mapping.Entry{}, false
}

// database finds the database entry whose suffix holds dn (the longest suffix wins).
func (c *olcConfig) database(dn string) (mapping.Entry, bool) {
	var best mapping.Entry
	bestLen := -1
	for _, e := range c.entries {
		for _, sfx := range e.Get("olcSuffix") {
			if ldapstore.InScope(dn, sfx) && len(sfx) > bestLen {
				best, bestLen = e, len(sfx)
			}
		}
	}
	return best, bestLen >= 0
}

// named finds the entry with the given RDN below cn=config ("olcDatabase={-1}frontend", "cn=config").
func (c *olcConfig) named(rdnPrefix string) (mapping.Entry, bool) {
	for _, e := range c.entries {
		if strings.HasPrefix(strings.ToLower(e.DN), strings.ToLower(rdnPrefix)) {
			return e, true
		}
	}
	return mapping.Entry{}, false
}

// unlimited is a size limit of "no limit".
const unlimited = -1

// slapdDefaultSizeLimit is slapd's sizelimit when none is configured.
const slapdDefaultSizeLimit = 500

// sizeLimitFor returns the number of entries a paged search by bindDN may return from the
// database holding dn (unlimited = -1), and where that limit comes from.
func (c *olcConfig) sizeLimitFor(dn, bindDN string) (int, string) {
	if db, ok := c.database(dn); ok {
		for _, l := range db.Get("olcLimits") {
			if who, rest := splitLimits(l); limitsMatch(who, bindDN) {
				if n, ok := parseSizeLimit(rest); ok {
					return n, fmt.Sprintf("olcLimits of %s", db.DN)
				}
			}
		}
		if v := db.First("olcSizeLimit"); v != "" {
			if n, ok := parseSizeLimit(v); ok {
				return n, fmt.Sprintf("olcSizeLimit of %s", db.DN)
			}
		}
	}
	for _, where := range []string{"olcDatabase={-1}frontend", "cn=config"} {
		if e, ok := c.named(where); ok && e.First("olcSizeLimit") != "" {
			if n, ok := parseSizeLimit(e.First("olcSizeLimit")); ok {
				return n, "olcSizeLimit of " + e.DN
			}
		}
	}
	return slapdDefaultSizeLimit, "slapd's default sizelimit"
}

// splitLimits splits an olcLimits value "{0}dn.exact="…" size=unlimited time=unlimited" into
// its selector and its limits.
func splitLimits(v string) (who, rest string) {
	if strings.HasPrefix(v, "{") {
		if i := strings.Index(v, "}"); i > 0 {
			v = v[i+1:]
		}
	}
	v = strings.TrimSpace(v)
	inQuote := false
	for i, ch := range v {
		switch {
		case ch == '"':
			inQuote = !inQuote
		case (ch == ' ' || ch == '\t') && !inQuote:
			return v[:i], strings.TrimSpace(v[i+1:])
		}
	}
	return v, ""
}

// limitsMatch reports whether a limits selector applies to bindDN (the forms slapd.conf(5)
// documents that do not need a group lookup or a regex).
func limitsMatch(who, bindDN string) bool {
	if who == "*" || strings.EqualFold(who, "users") {
		return true
	}
	kind, dn, ok := strings.Cut(who, "=")
	if !ok {
		return false
	}
	dn = strings.Trim(dn, `"`)
	switch strings.ToLower(kind) {
	case "dn", "dn.exact", "dn.base":
		return ldapstore.SameDN(dn, bindDN)
	case "dn.subtree":
		return ldapstore.InScope(bindDN, dn)
	case "dn.children":
		return ldapstore.InScope(bindDN, dn) && !ldapstore.SameDN(dn, bindDN)
	case "dn.onelevel", "dn.one":
		_, parent, err := ldapstore.SplitDN(bindDN)
		return err == nil && ldapstore.SameDN(parent, dn)
	}
	return false
}

// parseSizeLimit reads the size part of a limits or sizelimit value: "500", "unlimited",
// "size=…", "size.soft=… size.hard=… size.prtotal=…". A paged search is bounded by prtotal,
// which defaults to the hard limit, which defaults to the soft one.
func parseSizeLimit(v string) (int, bool) {
	vals := map[string]string{}
	for _, f := range strings.Fields(v) {
		k, val, ok := strings.Cut(f, "=")
		if !ok {
			k, val = "size", f
		}
		switch strings.ToLower(k) {
		case "size", "size.soft":
			vals["soft"] = val
		case "size.hard":
			vals["hard"] = val
		case "size.prtotal":
			vals["prtotal"] = val
		}
	}
	for _, k := range []string{"prtotal", "hard", "soft"} {
		val, ok := vals[k]
		if !ok || (k == "hard" && val == "soft") {
			continue
		}
		switch strings.ToLower(val) {
		case "unlimited", "-1", "none":
			return unlimited, true
		case "disabled":
			return 0, true
		}
		if n, err := strconv.Atoi(val); err == nil {
			if n == 0 && k == "hard" {
				continue // 0: the soft limit is the hard one
			}
			return n, true
		}
	}
	return 0, false
}

// sizeCountCap stops counting a base's entries: beyond it no realistic limit hides.
const sizeCountCap = 20000

var errCountCap = errors.New("count cap")

// checkSizeLimit finds a size limit on the service account: by experiment (a paged search of
// each base, as the bridge does, must not stop early), and from cn=config when readable,
// which also catches a limit the directory is still too small to hit.
func checkSizeLimit(ctx context.Context, r *run) []Result {
	const name = "ldap.size_limit"
	bind := r.cfg.LDAP.BindDN
	fix := fmt.Sprintf("give the service account no size limit on the data and accesslog databases: limits dn.exact=%q size=unlimited time=unlimited (olcLimits)", bind)
	bases := []string{r.cfg.LDAP.Users.BaseDN, r.cfg.LDAP.Groups.BaseDN}
	if r.logReadable && (r.cfg.Changes.Source == "" || r.cfg.Changes.Source == "accesslog") {
		bases = append(bases, accesslogBase)
	}
	largest := 0
	for _, base := range bases {
		n := 0
		err := r.store.Walk(ctx, ldapstore.Search{Base: base, Scope: ldapstore.ScopeSub, Attrs: []string{"1.1"}}, func(mapping.Entry) error {
			n++
			if n >= sizeCountCap {
				return errCountCap
			}
			return nil
		})
		switch {
		case errors.Is(err, ldapstore.ErrSizeLimit):
			return []Result{fail(name, fix, "the directory cut a paged search of %q short (size limit exceeded): a size limit applies to the service account", base)}
		case err != nil && !errors.Is(err, errCountCap) && !errors.Is(err, ldapstore.ErrNotFound):
			return []Result{fail(name, "see the error", "searching %q: %v", base, err)}
		}
		largest = max(largest, n)
	}
	switch r.dse.Dialect {
	case ldapstore.DialectAD:
		return []Result{pass(name, "Active Directory: MaxPageSize bounds one page, not a paged search (largest search: %d entries)", largest)}
	case ldapstore.Dialect389DS:
		return []Result{r.sizeLimit389(ctx, name, largest)}
	}
	if olc := r.loadOLC(ctx); olc != nil {
		for _, base := range bases {
			if n, where := olc.sizeLimitFor(base, bind); n != unlimited {
				return []Result{fail(name, fix, "%s limits the service account to %d entries per search of %q", where, n, base)}
			}
		}
		return []Result{pass(name, "cn=config gives the service account no size limit (largest search: %d entries)", largest)}
	}
	if largest >= slapdDefaultSizeLimit {
		return []Result{pass(name, "no size limit hit reading %d entries in one search", largest)}
	}
	return []Result{warn(name, "make sure of it: "+fix,
		"no size limit hit, but the largest search returned only %d entries and cn=config is not readable: a limit above that (slapd's default is %d) cannot be seen yet", largest, slapdDefaultSizeLimit)}
}

// ds389DefaultSizeLimit is 389 Directory Server's nsslapd-sizelimit when none is configured.
const ds389DefaultSizeLimit = 2000

// sizeLimit389 reads the service account's own limits on 389 Directory Server, which apply to
// a paged search as a whole (nsPagedSizeLimit, else nsSizeLimit, else the server's).
func (r *run) sizeLimit389(ctx context.Context, name string, largest int) Result {
	bind := r.cfg.LDAP.BindDN
	fix := fmt.Sprintf("set nsSizeLimit: -1 and nsPagedSizeLimit: -1 on %q (ldapmodify as Directory Manager)", bind)
	e, err := r.store.Get(ctx, bind, []string{"nsSizeLimit", "nsPagedSizeLimit"})
	if err == nil {
		limit := e.First("nsPagedSizeLimit")
		if limit == "" {
			limit = e.First("nsSizeLimit")
		}
		if limit == "-1" {
			return pass(name, "the service account has no size limit (nsSizeLimit/nsPagedSizeLimit -1; largest search: %d entries)", largest)
		}
		if n, err := strconv.Atoi(limit); err == nil {
			return fail(name, fix, "%q is limited to %d entries per search", bind, n)
		}
	}
	if largest >= ds389DefaultSizeLimit {
		return pass(name, "no size limit hit reading %d entries in one search", largest)
	}
	return warn(name, fix, "the service account has no limit of its own: the server's nsslapd-sizelimit (%d by default) cuts paged searches of more entries", ds389DefaultSizeLimit)
}
