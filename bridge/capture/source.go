package capture

import (
	"context"
	"fmt"

	"github.com/scimbridge/scimbridge/bridge/config"
	"github.com/scimbridge/scimbridge/ldapstore"
	"github.com/scimbridge/scimbridge/mapping"
)

// DefaultSource is the change source used for a dialect when changes.source is not set.
func DefaultSource(d ldapstore.Dialect) string {
	switch d {
	case ldapstore.DialectOpenLDAP:
		return "accesslog"
	case ldapstore.Dialect389DS:
		return "changelog"
	case ldapstore.DialectAD:
		return "dirsync"
	}
	return "timestamp"
}

// IDAttribute is the configured stable-id attribute, or the dialect's.
func IDAttribute(cfg *config.Config, d ldapstore.Dialect) string {
	if cfg.LDAP.Users.IDAttribute != "" {
		return cfg.LDAP.Users.IDAttribute
	}
	return d.IDAttribute()
}

// ScopeFromConfig builds the Reader's scope from [ldap.users] and [ldap.groups].
func ScopeFromConfig(cfg *config.Config, d ldapstore.Dialect) Scope {
	sc := Scope{
		Users:       ldapstore.Search{Base: cfg.LDAP.Users.BaseDN, Scope: ldapstore.ScopeSub, Filter: cfg.LDAP.Users.Filter},
		Groups:      ldapstore.Search{Base: cfg.LDAP.Groups.BaseDN, Scope: ldapstore.ScopeSub, Filter: cfg.LDAP.Groups.Filter},
		IDAttribute: IDAttribute(cfg, d),
		Dialect:     d,
	}
	// The disabled marker may be operational (389-DS's nsAccountLock), which "*" leaves out.
	if m := mapping.ProfileFor(string(d)).Marker; m.Attr != "" {
		sc.Attrs = append(sc.Attrs, m.Attr)
	}
	return sc
}

// NewSource builds the change source [changes] names (source, overlap), or the dialect's
// default, over store. It reads the root DSE to settle the dialect.
func NewSource(ctx context.Context, cfg *config.Config, store *ldapstore.Store) (Source, error) {
	d, err := store.Dialect(ctx)
	if err != nil {
		return nil, err
	}
	name := cfg.Changes.Source
	if name == "" {
		name = DefaultSource(d)
	}
	overlap := cfg.Changes.Overlap.Duration
	switch name {
	case "accesslog":
		return ldapstore.NewAccesslog(store, ldapstore.AccesslogOptions{Overlap: overlap}), nil
	case "changelog":
		return ldapstore.NewChangelog389(store, ldapstore.ChangelogOptions{}), nil
	case "dirsync":
		return ldapstore.NewDirSync(ctx, store, ldapstore.DirSyncOptions{Filter: classFilter(cfg)})
	case "usn":
		var bases []string
		if cfg.LDAP.BaseDN != "" {
			bases = []string{cfg.LDAP.BaseDN}
		}
		return ldapstore.NewUSN(ctx, store, ldapstore.USNOptions{Bases: bases, Filter: anyOf(cfg.LDAP.Users.Filter, cfg.LDAP.Groups.Filter)})
	case "timestamp":
		attr := "modifyTimestamp"
		if d == ldapstore.DialectAD {
			attr = "whenChanged"
		}
		// Poll the whole suffix, so an entry moved out of the users or groups base is seen
		// (and leaves scope) without waiting for the reconcile.
		bases := []string{cfg.LDAP.BaseDN}
		if cfg.LDAP.BaseDN == "" {
			bases = []string{cfg.LDAP.Users.BaseDN, cfg.LDAP.Groups.BaseDN}
		}
		return ldapstore.NewTimestamp(store, ldapstore.TimestampOptions{
			Bases: nonEmpty(bases), Filter: anyOf(cfg.LDAP.Users.Filter, cfg.LDAP.Groups.Filter),
			IDAttribute: IDAttribute(cfg, d), Attribute: attr, Overlap: overlap,
		})
	}
	return nil, fmt.Errorf("capture: changes.source: unknown value %q (want \"accesslog\", \"changelog\", \"dirsync\", \"usn\" or \"timestamp\")", name)
}

// classFilter selects the objects of the users' and groups' structural classes (the last of
// each list), which deleted objects keep: a filter on other attributes would miss deletes.
func classFilter(cfg *config.Config) string {
	var parts []string
	for _, classes := range [][]string{cfg.LDAP.Users.ObjectClasses, cfg.LDAP.Groups.ObjectClasses} {
		if len(classes) > 0 {
			parts = append(parts, "(objectClass="+ldapstore.EscapeFilter(classes[len(classes)-1])+")")
		}
	}
	return anyOf(parts...)
}

func anyOf(filters ...string) string { return ldapstore.JoinFilters('|', filters...) }

func nonEmpty(s []string) []string {
	var out []string
	for _, v := range s {
		if v != "" {
			out = append(out, v)
		}
	}
	return out
}
