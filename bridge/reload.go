package bridge

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/scimbridge/scimbridge/bridge/config"
)

// A reload (SIGHUP) applies a new configuration as a whole or not at all. Keys the running
// daemon cannot change (listeners, the directory pool, the change reader, the state file)
// are listed in restartRules: a reload that changes one of them is refused, naming them, and
// nothing changes. Otherwise every component prepares its new state first (the SCIM
// server's tokens and maps, rebuilt provisioners, the log level and format); only when all
// of them succeeded is it swapped in. etc/scimbridge.example.toml marks every key
// "[restart]" or "[reload]", and a test holds that file to this table.

// RestartRule is a configuration key whose change the running daemon cannot apply.
type RestartRule struct {
	// Key is the TOML path as etc/scimbridge.example.toml spells it.
	Key string
	// When narrows the rule to some changes ("switching TLS on or off"); "" is any change.
	When string
	// changed reports whether the key changed from old to cfg in a way that needs a restart.
	changed func(old, cfg *config.Config) bool
}

func ldapKey(key string, get func(config.LDAP) any) RestartRule {
	return RestartRule{Key: key, changed: func(o, c *config.Config) bool { return !equalValue(get(o.LDAP), get(c.LDAP)) }}
}

// inboundKey is a restart rule for a key of the SCIM server: it only matters when the server
// runs.
func inboundKey(key string, get func(config.Inbound) any) RestartRule {
	return RestartRule{Key: key, changed: func(o, c *config.Config) bool {
		return o.Inbound.Enabled && c.Inbound.Enabled && !equalValue(get(o.Inbound), get(c.Inbound))
	}}
}

func changesKey(key string, get func(config.Changes) any) RestartRule {
	return RestartRule{Key: key, changed: func(o, c *config.Config) bool { return !equalValue(get(o.Changes), get(c.Changes)) }}
}

// equalValue compares two configuration values by their canonical encoding.
func equalValue(a, b any) bool { return configDigest(a) == configDigest(b) }

// restartRules are the keys a reload cannot apply, in the order of the example file. Every
// other key is applied by a reload.
var restartRules = []RestartRule{
	{Key: "state.dir", changed: func(o, c *config.Config) bool { return o.State.Dir != c.State.Dir }},
	{Key: "admin.listen", changed: func(o, c *config.Config) bool { return o.Admin.Listen != c.Admin.Listen }},
	{Key: "ldap.url", changed: func(o, c *config.Config) bool { return o.LDAP.URL != c.LDAP.URL }},
	{Key: "ldap.urls", changed: func(o, c *config.Config) bool {
		return o.LDAP.URL == c.LDAP.URL && !slices.Equal(o.LDAP.URLs, c.LDAP.URLs)
	}},
	ldapKey("ldap.start_tls", func(l config.LDAP) any { return l.StartTLS }),
	ldapKey("ldap.ca_file", func(l config.LDAP) any { return l.CAFile }),
	ldapKey("ldap.insecure_skip_verify", func(l config.LDAP) any { return l.InsecureSkipVerify }),
	ldapKey("ldap.bind_dn", func(l config.LDAP) any { return l.BindDN }),
	{Key: "ldap.bind_password", changed: func(o, c *config.Config) bool {
		return o.LDAP.BindPasswordFile == "" && c.LDAP.BindPasswordFile == "" && o.LDAP.BindPassword != c.LDAP.BindPassword
	}},
	// A new password in the same file needs a restart too: the pool binds with it.
	{Key: "ldap.bind_password_file", changed: func(o, c *config.Config) bool {
		return o.LDAP.BindPasswordFile != c.LDAP.BindPasswordFile ||
			c.LDAP.BindPasswordFile != "" && o.LDAP.BindPassword != c.LDAP.BindPassword
	}},
	ldapKey("ldap.base_dn", func(l config.LDAP) any { return l.BaseDN }),
	ldapKey("ldap.dialect", func(l config.LDAP) any { return l.Dialect }),
	ldapKey("ldap.pool_size", func(l config.LDAP) any { return l.PoolSize }),
	ldapKey("ldap.timeout", func(l config.LDAP) any { return l.Timeout }),
	ldapKey("ldap.dial_timeout", func(l config.LDAP) any { return l.DialTimeout }),
	ldapKey("ldap.page_size", func(l config.LDAP) any { return l.PageSize }),
	ldapKey("ldap.range_size", func(l config.LDAP) any { return l.RangeSize }),
	ldapKey("ldap.users.base_dn", func(l config.LDAP) any { return l.Users.BaseDN }),
	ldapKey("ldap.users.object_classes", func(l config.LDAP) any { return l.Users.ObjectClasses }),
	ldapKey("ldap.users.rdn_attribute", func(l config.LDAP) any { return l.Users.RDNAttribute }),
	ldapKey("ldap.users.filter", func(l config.LDAP) any { return l.Users.Filter }),
	ldapKey("ldap.users.id_attribute", func(l config.LDAP) any { return l.Users.IDAttribute }),
	ldapKey("ldap.groups.base_dn", func(l config.LDAP) any { return l.Groups.BaseDN }),
	ldapKey("ldap.groups.object_classes", func(l config.LDAP) any { return l.Groups.ObjectClasses }),
	ldapKey("ldap.groups.rdn_attribute", func(l config.LDAP) any { return l.Groups.RDNAttribute }),
	ldapKey("ldap.groups.member_attribute", func(l config.LDAP) any { return l.Groups.MemberAttribute }),
	ldapKey("ldap.groups.filter", func(l config.LDAP) any { return l.Groups.Filter }),
	changesKey("changes.source", func(c config.Changes) any { return c.Source }),
	changesKey("changes.poll_interval", func(c config.Changes) any { return c.PollInterval }),
	changesKey("changes.reconcile_interval", func(c config.Changes) any { return c.ReconcileInterval }),
	changesKey("changes.overlap", func(c config.Changes) any { return c.Overlap }),
	{Key: "inbound.enabled", changed: func(o, c *config.Config) bool { return o.Inbound.Enabled != c.Inbound.Enabled }},
	inboundKey("inbound.listen", func(i config.Inbound) any { return i.Listen }),
	{Key: "inbound.tls_cert_file", When: "switching TLS on or off", changed: switchesTLS},
	{Key: "inbound.tls_key_file", When: "switching TLS on or off", changed: switchesTLS},
	inboundKey("inbound.read_timeout", func(i config.Inbound) any { return i.ReadTimeout }),
	inboundKey("inbound.write_timeout", func(i config.Inbound) any { return i.WriteTimeout }),
	inboundKey("inbound.idle_timeout", func(i config.Inbound) any { return i.IdleTimeout }),
	inboundKey("inbound.max_header_bytes", func(i config.Inbound) any { return i.MaxHeaderBytes }),
	haKey("ha.enabled", func(h config.HA) any { return h.Enabled }),
	haKey("ha.instance_id", func(h config.HA) any { return h.InstanceID }),
	haKey("ha.lease_dn", func(h config.HA) any { return h.LeaseDN }),
	haKey("ha.lease_url", func(h config.HA) any { return h.LeaseURL }),
	haKey("ha.lease_duration", func(h config.HA) any { return h.LeaseDuration }),
	haKey("ha.renew_interval", func(h config.HA) any { return h.RenewInterval }),
}

func haKey(key string, get func(config.HA) any) RestartRule {
	return RestartRule{Key: key, changed: func(o, c *config.Config) bool { return !equalValue(get(o.HA), get(c.HA)) }}
}

func switchesTLS(o, c *config.Config) bool {
	return o.Inbound.Enabled && c.Inbound.Enabled && (o.Inbound.TLSCertFile == "") != (c.Inbound.TLSCertFile == "")
}

// RestartRules lists the keys a reload cannot apply (the documentation's source).
func RestartRules() []RestartRule { return slices.Clone(restartRules) }

// RestartKeys lists the keys whose change from old to cfg needs a restart, in table order.
func RestartKeys(old, cfg *config.Config) []string {
	var keys []string
	for _, r := range restartRules {
		if r.changed(old, cfg) {
			keys = append(keys, r.Key)
		}
	}
	return keys
}

// ReloadStatus is how the last reload went, for /status.
type ReloadStatus struct {
	Successful bool      `json:"successful"`
	At         time.Time `json:"at"`
	// Error says why the last reload failed; the configuration in force is the one before it.
	Error string `json:"error,omitempty"`
	// NeedsRestart names the keys a refused reload changed that only a restart applies.
	NeedsRestart []string `json:"needs_restart,omitempty"`
}

// reloadStep is one component's prepared reload: commit swaps it in (and cannot fail in a
// way that leaves the old state half changed), abort releases what prepare acquired.
type reloadStep struct {
	name   string
	commit func()
	abort  func()
}

// componentReloaders prepare a new configuration for the running components; nil means the
// component has nothing to change.
var componentReloaders = []func(b *Bridge, old, cfg *config.Config) (*reloadStep, error){prepareInbound, prepareProvisioning, prepareLog, prepareAdmin}

// Reload applies cfg as a whole or not at all. A change of a key that needs a restart
// (RestartRules) refuses the reload, naming the keys; otherwise every component prepares
// its new state, and only when all succeeded are they swapped in. A refused or failed
// reload changes nothing: the old configuration keeps running, the log and /status say why
// and scimbridge_config_last_reload_successful is 0.
func (b *Bridge) Reload(cfg *config.Config) error {
	b.reloadMu.Lock()
	defer b.reloadMu.Unlock()
	old := b.Config()
	if store := b.Store(); store != nil {
		// [ldap.users] and [ldap.groups] default per dialect, as at start.
		if d, err := store.Dialect(context.Background()); err == nil {
			cfg.ApplyDialect(string(d))
		}
	}
	if keys := RestartKeys(old, cfg); len(keys) > 0 {
		return b.reloadFailed(keys, fmt.Errorf("bridge: reload refused, nothing changed: %s %s a restart", strings.Join(keys, ", "), pluralNeeds(len(keys))))
	}
	var (
		steps []*reloadStep
		errs  []error
	)
	for _, prepare := range componentReloaders {
		st, err := prepare(b, old, cfg)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if st != nil {
			steps = append(steps, st)
		}
	}
	if len(errs) > 0 {
		for _, st := range steps {
			if st.abort != nil {
				st.abort()
			}
		}
		return b.reloadFailed(nil, fmt.Errorf("bridge: reload failed, nothing changed: %w", errors.Join(errs...)))
	}
	for _, st := range steps {
		st.commit()
	}
	b.mu.Lock()
	b.cfg = cfg
	b.reload = ReloadStatus{Successful: true, At: time.Now().UTC()}
	b.mu.Unlock()
	b.metrics.reloadOK.Set(1)
	b.metrics.reloadTime.SetToCurrentTime()
	names := make([]string, 0, len(steps))
	for _, st := range steps {
		names = append(names, st.name)
	}
	b.logger.Info().Strs("applied_to", names).Msg("configuration reloaded")
	return nil
}

func pluralNeeds(n int) string {
	if n == 1 {
		return "needs"
	}
	return "need"
}

// ReloadFailed records a reload that failed before reaching Reload (a configuration that
// does not load): the old configuration keeps running.
func (b *Bridge) ReloadFailed(err error) {
	b.reloadMu.Lock()
	defer b.reloadMu.Unlock()
	_ = b.reloadFailed(nil, err)
}

// reloadFailed records, logs and returns a failed reload.
func (b *Bridge) reloadFailed(keys []string, err error) error {
	b.mu.Lock()
	b.reload = ReloadStatus{At: time.Now().UTC(), Error: err.Error(), NeedsRestart: keys}
	b.mu.Unlock()
	b.metrics.reloadOK.Set(0)
	ev := b.logger.Error().Err(err)
	if len(keys) > 0 {
		ev = ev.Strs("needs_restart", keys)
	}
	ev.Msg("reload failed: the old configuration keeps running")
	return err
}

// prepareLog applies [log] to the log output, or asks for a restart when the bridge was
// given none.
func prepareLog(b *Bridge, old, cfg *config.Config) (*reloadStep, error) {
	if old.Log == cfg.Log {
		return nil, nil
	}
	if b.opts.Log == nil {
		return nil, errors.New("log: this bridge's logger was not built from [log]: a change needs a restart")
	}
	apply, err := b.opts.Log.prepare(cfg.Log)
	if err != nil {
		return nil, err
	}
	return &reloadStep{name: "log", commit: apply}, nil
}
