package config

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/scimbridge/scimbridge/ldapstore"
	"github.com/scimbridge/scimbridge/mapping"
	"github.com/scimbridge/scimbridge/targets"
)

// Secret is a string that prints, marshals and logs as "<secret>".
type Secret = targets.Secret

// Duration decodes from TOML strings such as "30s".
type Duration = targets.Duration

func dur(d time.Duration) Duration { return Duration{Duration: d} }

// Config is the whole configuration file.
type Config struct {
	Log     Log     `toml:"log"`
	State   State   `toml:"state"`
	Admin   Admin   `toml:"admin"`
	LDAP    LDAP    `toml:"ldap"`
	Changes Changes `toml:"changes"`
	Inbound Inbound `toml:"inbound"`
	HA      HA      `toml:"ha"`
	// Provisioners are decoded by hand (see decodeProvisioners): each one's keys depend on
	// its target type.
	Provisioners []Provisioner `toml:"-"`

	// Path is the file the configuration was loaded from; relative paths in it resolve
	// against its directory.
	Path string `toml:"-"`
	// written is [ldap.users] and [ldap.groups] before defaults (see ApplyDialect).
	written *writtenObjects
	// Warnings are not errors but deserve the admin's attention (a literal secret in the
	// file, TLS verification off).
	Warnings []string `toml:"-"`
}

// Log configures the logger.
type Log struct {
	// Level is one of debug, info, warn, error. Defaults to "info".
	Level string `toml:"level"`
	// Format is "json" (for journald) or "console". Defaults to "json".
	Format string `toml:"format"`
}

// State is where the bridge keeps its durable state.
type State struct {
	// Dir holds state.db (cursors, id maps, outboxes, dead letters) and the control socket.
	// Defaults to "/var/lib/scimbridge", systemd's StateDirectory.
	Dir string `toml:"dir"`
}

// Admin is the admin HTTP listener.
type Admin struct {
	// Listen is the address of /healthz, /readyz, /metrics and /status; "" turns the listener
	// off. Defaults to "127.0.0.1:9480": loopback, since /status and /metrics are not public.
	Listen string `toml:"listen"`
	// TokenFile holds a bearer token that /metrics and /status then require (Prometheus's
	// authorization credentials_file sends it); /healthz and /readyz stay open. Read at start
	// and on every reload.
	TokenFile string `toml:"token_file"`
	// Token is TokenFile's content, read by LoadSecrets.
	Token Secret `toml:"-"`
}

// LDAP is how the bridge reaches the directory.
type LDAP struct {
	// URL is one server; URLs several, tried in order (failover). Set one of the two.
	URL  string   `toml:"url"`
	URLs []string `toml:"urls"`
	// StartTLS upgrades ldap:// connections. Defaults to false.
	StartTLS bool `toml:"start_tls"`
	// CAFile verifies the server certificate.
	CAFile string `toml:"ca_file"`
	// InsecureSkipVerify turns certificate checks off (warned about). Defaults to false.
	InsecureSkipVerify bool   `toml:"insecure_skip_verify"`
	BindDN             string `toml:"bind_dn"`
	// BindPassword is allowed but warned about; prefer BindPasswordFile (systemd
	// LoadCredential) or the SCIMBRIDGE_LDAP_BIND_PASSWORD environment variable.
	BindPassword     Secret `toml:"bind_password"`
	BindPasswordFile string `toml:"bind_password_file"`
	// BaseDN is the directory's suffix; users and groups default below it.
	BaseDN string `toml:"base_dn"`
	// Dialect is auto (read from the root DSE), openldap, 389ds, ad or generic. Defaults to "auto".
	Dialect string `toml:"dialect"`
	// PoolSize bounds the connections to the directory. Defaults to 8.
	PoolSize int `toml:"pool_size"`
	// Timeout bounds each LDAP request. Defaults to "30s".
	Timeout Duration `toml:"timeout"`
	// DialTimeout bounds connecting and binding. Defaults to "5s".
	DialTimeout Duration `toml:"dial_timeout"`
	// PageSize is the paged-search page size. Defaults to 500 (slapd's default sizelimit).
	PageSize int `toml:"page_size"`
	// RangeSize reads Active Directory's member in ranges of this many values; 0 (the
	// default) leaves the size to the DC. A restart applies it.
	RangeSize int    `toml:"range_size"`
	Users     Users  `toml:"users"`
	Groups    Groups `toml:"groups"`
}

// Users says where users live and what they look like.
type Users struct {
	// BaseDN defaults to "ou=people,<ldap.base_dn>".
	BaseDN string `toml:"base_dn"`
	// ObjectClasses of created users. Defaults to ["inetOrgPerson"] (AD: ["user"]).
	ObjectClasses []string `toml:"object_classes"`
	// RDNAttribute names new entries. Defaults to "uid" (AD: "cn").
	RDNAttribute string `toml:"rdn_attribute"`
	// Filter selects users below BaseDN. Defaults to "(objectClass=inetOrgPerson)".
	Filter string `toml:"filter"`
	// IDAttribute is the stable id. Defaults per dialect: entryUUID, nsUniqueId, objectGUID.
	IDAttribute string `toml:"id_attribute"`
}

// Groups says where groups live and what they look like.
type Groups struct {
	// BaseDN defaults to "ou=groups,<ldap.base_dn>".
	BaseDN string `toml:"base_dn"`
	// ObjectClasses of created groups. Defaults to ["groupOfNames"] (AD: ["group"]).
	ObjectClasses []string `toml:"object_classes"`
	// RDNAttribute defaults to "cn".
	RDNAttribute string `toml:"rdn_attribute"`
	// MemberAttribute defaults to "member" ("uniqueMember" for groupOfUniqueNames).
	MemberAttribute string `toml:"member_attribute"`
	// Filter defaults to "(objectClass=groupOfNames)".
	Filter string `toml:"filter"`
}

// Changes configures change capture.
type Changes struct {
	// Source is accesslog, changelog, dirsync, usn or timestamp. Defaults per dialect:
	// openldap → accesslog, 389ds → changelog, ad → dirsync, generic → timestamp.
	Source string `toml:"source"`
	// PollInterval is how often the change log is read. Defaults to "1s".
	PollInterval Duration `toml:"poll_interval"`
	// ReconcileInterval is how often every provisioner compares its scope with what it
	// pushed, to repair drift and see deletes a source cannot. Defaults to "6h".
	ReconcileInterval Duration `toml:"reconcile_interval"`
	// Overlap is how far back each poll re-reads, because start order is not commit order
	// (accesslog) and timestamps have one-second granularity. Defaults to "10s".
	Overlap Duration `toml:"overlap"`
}

// HA configures several instances on one directory: every instance serves SCIM, and the
// holder of a lease entry in the directory runs the change reader and the provisioners.
type HA struct {
	// Enabled turns the lease on. Defaults to false: one instance runs everything, and no
	// lease entry is read or written.
	Enabled bool `toml:"enabled"`
	// InstanceID names this instance in the lease, its logs, its audit events and (with
	// Enabled) the User-Agent of its outbound requests. Defaults to the host name and the state
	// directory ("host:/var/lib/scimbridge"), which tells apart two instances on one host.
	InstanceID string `toml:"instance_id"`
	// LeaseDN is the lease entry. Defaults to "cn=scimbridge-lease," + ldap.users.base_dn,
	// where the documented service-account ACL already lets the bridge write.
	LeaseDN string `toml:"lease_dn"`
	// LeaseURL is the one directory server the lease is taken and renewed on: with
	// multi-provider replication two providers would each accept a competing write.
	// Defaults to the first of ldap.urls.
	LeaseURL string `toml:"lease_url"`
	// LeaseDuration is how long a lease holds without a renewal. Defaults to "30s".
	LeaseDuration Duration `toml:"lease_duration"`
	// RenewInterval is how often the holder renews (and standbys look). Defaults to "10s";
	// at most a third of lease_duration.
	RenewInterval Duration `toml:"renew_interval"`
}

// Inbound configures the SCIM server.
type Inbound struct {
	// Enabled turns the SCIM server on. Defaults to true.
	Enabled bool `toml:"enabled"`
	// Listen defaults to "127.0.0.1:8080": put a TLS reverse proxy in front, or set the TLS
	// files and listen on a public address.
	Listen string `toml:"listen"`
	// BasePath defaults to "/scim/v2".
	BasePath    string `toml:"base_path"`
	TLSCertFile string `toml:"tls_cert_file"`
	TLSKeyFile  string `toml:"tls_key_file"`
	// MaxBodyBytes bounds a request body (413 beyond). Defaults to 1 MiB.
	MaxBodyBytes int64 `toml:"max_body_bytes"`
	// Disable is what active=false does: "attribute" (a marker value; the entry stays),
	// "move" (to DisabledBaseDN) or "delete". Defaults to "attribute".
	Disable string `toml:"disable"`
	// DisabledBaseDN receives disabled users when Disable = "move".
	DisabledBaseDN string `toml:"disabled_base_dn"`
	// ReadTimeout, WriteTimeout and IdleTimeout of the HTTP server. Defaults "30s", "60s", "120s".
	ReadTimeout  Duration `toml:"read_timeout"`
	WriteTimeout Duration `toml:"write_timeout"`
	IdleTimeout  Duration `toml:"idle_timeout"`
	// MaxHeaderBytes defaults to 64 KiB.
	MaxHeaderBytes int `toml:"max_header_bytes"`
	// Tokens are the accepted bearer tokens; several at once allow rotation.
	Tokens []Token `toml:"token"`
	// UserAttributes overrides the SCIM path → LDAP attribute map ("" unmaps).
	UserAttributes map[string]string `toml:"user_attributes"`
	// GroupAttributes overrides the group map.
	GroupAttributes map[string]string `toml:"group_attributes"`
	// Extensions declare custom SCIM schema extensions for users.
	Extensions []Extension `toml:"extension"`

	// ProtectedDNs are entries the SCIM side never sees or touches, besides the bridge's own
	// bind DN, which always is protected.
	ProtectedDNs []string `toml:"protected_dns"`
	// ProtectedGroups are groups whose members (through nested groups too) and themselves the
	// SCIM side never sees or touches. Each must exist.
	ProtectedGroups []string `toml:"protected_groups"`
	// ScopeFilter is an LDAP filter per kind ANDed to every SCIM read and write.
	ScopeFilter ScopeFilter `toml:"scope_filter"`
	// ManagedOnly makes the SCIM side see and change only the entries it created (marked).
	// Defaults to false.
	ManagedOnly bool `toml:"managed_only"`
	// AdoptExisting lets a POST in managed mode take over an unmarked entry of the same name
	// instead of answering 409. Defaults to false.
	AdoptExisting bool `toml:"adopt_existing"`
	// MaxMembersPerRequest caps the member ids of one group request (413 beyond). Defaults to 20000.
	MaxMembersPerRequest int `toml:"max_members_per_request"`
	// MaxConcurrentRequests bounds the SCIM requests worked on at once. Defaults to 16.
	MaxConcurrentRequests int `toml:"max_concurrent_requests"`
	// MaxQueuedRequests bounds the requests waiting for their turn; a full queue answers 503
	// with Retry-After. Defaults to 1024.
	MaxQueuedRequests int `toml:"max_queued_requests"`
	// PublicURL is the base URL clients reach the SCIM endpoints at (https://scim.example.org/scim/v2),
	// used for Location and meta.location. Empty: built from the request.
	PublicURL string `toml:"public_url"`
	// TrustedProxies are the addresses or CIDR ranges whose X-Forwarded-Proto and
	// X-Forwarded-Host headers are believed. Defaults to none.
	TrustedProxies []string `toml:"trusted_proxies"`
	// AllowCleartextPasswords lets SCIM set passwords over an LDAP connection that is neither
	// TLS nor loopback/ldapi. Defaults to false.
	AllowCleartextPasswords bool `toml:"allow_cleartext_passwords"`
	// AllowSensitiveAttributes names LDAP attributes that give control of logins (uidNumber,
	// loginShell, authzTo, …) which the attribute maps may use all the same. Defaults to none.
	AllowSensitiveAttributes []string `toml:"allow_sensitive_attributes"`
}

// ScopeFilter is [inbound.scope_filter]: one LDAP filter per kind, for the SCIM side only.
type ScopeFilter struct {
	Users  string `toml:"users"`
	Groups string `toml:"groups"`
}

// Token is one accepted inbound bearer token, stored as its SHA-256.
type Token struct {
	// Name is the audit actor ("entra").
	Name string `toml:"name"`
	// SHA256 is the hex SHA-256 of the token (`scimbridge token new` prints it).
	SHA256 string `toml:"sha256"`
	// File holds the token itself (systemd LoadCredential); it is hashed at load.
	File string `toml:"file"`
}

// Extension is a custom SCIM schema extension for users.
type Extension struct {
	URN        string         `toml:"urn"`
	Name       string         `toml:"name"`
	Attributes []ExtAttribute `toml:"attribute"`
}

// ExtAttribute is one attribute of an Extension.
type ExtAttribute struct {
	Name string `toml:"name"`
	// Type is string, boolean, integer or dateTime. Defaults to "string".
	Type        string `toml:"type"`
	MultiValued bool   `toml:"multi_valued"`
	// LDAP is the attribute that stores it.
	LDAP string `toml:"ldap"`
}

// Provisioner is one outbound target and the rules that drive it.
type Provisioner struct {
	Name string `toml:"name"`
	// Type is the target type. Defaults to "scim".
	Type string `toml:"type"`
	// Groups are group DNs whose members are in scope.
	Groups []string `toml:"groups"`
	// NestedGroups resolves groups inside Groups. Defaults to true.
	NestedGroups bool `toml:"nested_groups"`
	// Filter is an LDAP filter users must match (ANDed with Groups when both are set).
	Filter string `toml:"filter"`
	// PushGroups creates Groups on the target and keeps their members. Defaults to false.
	PushGroups bool `toml:"push_groups"`
	// Deprovision is "disable" or "delete". Defaults to "disable": reversible.
	Deprovision string `toml:"deprovision"`
	// MatchAttribute finds existing target accounts to adopt. Defaults to "userName".
	MatchAttribute string `toml:"match_attribute"`
	// CreateLookup is how a user is created outside a reconcile pass: "lookup" (the default)
	// looks the account up by match_attribute and POSTs only when it is absent; "conflict"
	// POSTs first and adopts the existing account when the target answers 409, as RFC 7644
	// §3.3 requires for a duplicate userName.
	CreateLookup string `toml:"create_lookup"`
	// RateLimit caps the requests per second. Unset (0), the pace adapts to the target's
	// answers up to the adaptive ceiling (1000/s); set, it adapts below this cap.
	RateLimit float64 `toml:"rate_limit"`
	// Concurrency caps the workers, the most requests in flight. Unset (0): 16.
	Concurrency int `toml:"concurrency"`
	// MaxAttempts before an item is dead-lettered. Defaults to 10.
	MaxAttempts int `toml:"max_attempts"`
	// MaxDeletes deprovisions in one pass or window stop the provisioner. Defaults to 50.
	MaxDeletes int `toml:"max_deletes"`
	// DeleteWindow is the sliding window for MaxDeletes in the live stream. Defaults to "1h".
	DeleteWindow Duration `toml:"delete_window"`
	// MinRetryDelay and MaxRetryDelay bound the outbox's jittered backoff between deliveries
	// of a failed item (the target's own min_backoff/max_backoff are its quick retries inside
	// one delivery). Defaults "1s" and "5m".
	MinRetryDelay Duration `toml:"min_retry_delay"`
	MaxRetryDelay Duration `toml:"max_retry_delay"`
	// UserMapping maps target SCIM paths to Go templates over the LDAP entry.
	UserMapping map[string]string `toml:"user_mapping"`
	// GroupMapping does the same for groups.
	GroupMapping map[string]string `toml:"group_mapping"`

	// Target holds the type's own keys, decoded into the type's Config.
	Target targets.Config `toml:"-"`
}

// Registry maps a target type name to a constructor of its empty Config.
type Registry map[string]func() targets.Config

// defaults, applied before decoding so the file overrides them.
var defaultConfig = Config{
	Log:   Log{Level: "info", Format: "json"},
	State: State{Dir: "/var/lib/scimbridge"},
	Admin: Admin{Listen: "127.0.0.1:9480"},
	LDAP: LDAP{
		Dialect: "auto", PoolSize: 8, Timeout: dur(30 * time.Second), DialTimeout: dur(5 * time.Second), PageSize: 500,
	},
	Changes: Changes{PollInterval: dur(time.Second), ReconcileInterval: dur(6 * time.Hour), Overlap: dur(10 * time.Second)},
	// 30 s bounds how long outbound provisioning pauses after a leader dies; a renewal every
	// 10 s survives two lost renewals (a directory hiccup) before the holder stops pushing.
	HA: HA{LeaseDuration: dur(30 * time.Second), RenewInterval: dur(10 * time.Second)},
	Inbound: Inbound{
		Enabled: true, Listen: "127.0.0.1:8080", BasePath: "/scim/v2", MaxBodyBytes: 1 << 20, Disable: "attribute",
		ReadTimeout: dur(30 * time.Second), WriteTimeout: dur(60 * time.Second), IdleTimeout: dur(120 * time.Second),
		MaxHeaderBytes: 64 << 10,
		// Entra ID sends a group's members in PATCHes of a few at a time; other clients PUT a
		// whole group. 20,000 ids is about what max_body_bytes (1 MiB) carries.
		MaxMembersPerRequest: 20000,
		// Entra ID's pace (25 requests/s and more, a handful at once) never waits; the queue
		// absorbs bursts of any SCIM client rather than rejecting them.
		MaxConcurrentRequests: 16, MaxQueuedRequests: 1024,
	},
}

var defaultProvisioner = Provisioner{
	Type: "scim", NestedGroups: true, Deprovision: "disable", MatchAttribute: "userName", CreateLookup: "lookup",
	MaxAttempts: 10, MaxDeletes: 50, DeleteWindow: dur(time.Hour),
	MinRetryDelay: dur(time.Second), MaxRetryDelay: dur(5 * time.Minute),
}

// Enumerated values.
var (
	logLevels   = []string{"debug", "info", "warn", "error"}
	logFormats  = []string{"json", "console"}
	dialects    = []string{"auto", "openldap", "389ds", "ad", "generic"}
	sources     = []string{"accesslog", "changelog", "dirsync", "usn", "timestamp"}
	disables    = []string{"attribute", "move", "delete"}
	deprovs     = []string{"disable", "delete"}
	lookups     = []string{"lookup", "conflict"}
	extTypes    = []string{"string", "boolean", "integer", "dateTime"}
	nameRE      = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$`)
	sha256RE    = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)
	envPassword = "SCIMBRIDGE_LDAP_BIND_PASSWORD"
)

// Load reads, decodes strictly, defaults, resolves and validates the file at path. Every
// problem is reported at once (errors.Join), each naming its TOML key; the whole error is
// wrapped as "parsing PATH". Load reads secret files but connects nowhere.
func Load(path string, reg Registry) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	cfg, err := Parse(data, filepath.Dir(path), reg)
	if cfg != nil {
		cfg.Path = path
	}
	if err != nil {
		// One line per problem, each naming the file, so that the CLI prints them as they are.
		errs := unjoin(err)
		for i, e := range errs {
			errs[i] = fmt.Errorf("parsing %s: %w", path, e)
		}
		return cfg, errors.Join(errs...)
	}
	return cfg, nil
}

// Parse is Load on bytes; dir is where relative paths resolve.
func Parse(data []byte, dir string, reg Registry) (*Config, error) {
	cfg := defaultConfig
	cfg.Inbound.Tokens = nil
	var raw struct {
		Config
		Provisioner []toml.Primitive `toml:"provisioner"`
	}
	raw.Config = cfg
	md, err := toml.Decode(string(data), &raw)
	if err != nil {
		var perr toml.ParseError
		if errors.As(err, &perr) {
			return nil, fmt.Errorf("line %d: %s", perr.Position.Line, perr.Message)
		}
		return nil, err
	}
	cfg = raw.Config
	var errs []error
	for _, k := range md.Undecoded() {
		if len(k) > 0 && k[0] == "provisioner" {
			continue // checked per provisioner below
		}
		if isMapKey(k) {
			continue
		}
		errs = append(errs, fmt.Errorf("%s: unknown key", k.String()))
	}
	provs, warnings, perrs := decodeProvisioners(md, raw.Provisioner, dir, reg)
	cfg.Provisioners = provs
	cfg.Warnings = append(cfg.Warnings, warnings...)
	errs = append(errs, perrs...)
	cfg.applyDerivedDefaults()
	errs = append(errs, cfg.resolve(dir)...)
	errs = append(errs, cfg.validate(reg)...)
	cfg.collectWarnings()
	if len(errs) > 0 {
		return &cfg, errors.Join(errs...)
	}
	return &cfg, nil
}

// isMapKey reports keys below free-form tables, which are never "unknown".
func isMapKey(k toml.Key) bool {
	return len(k) > 2 && k[0] == "inbound" && (k[1] == "user_attributes" || k[1] == "group_attributes")
}

func decodeProvisioners(md toml.MetaData, prims []toml.Primitive, dir string, reg Registry) ([]Provisioner, []string, []error) {
	var out []Provisioner
	var errs []error
	var warnings []string
	for i, prim := range prims {
		p := defaultProvisioner
		p.UserMapping, p.GroupMapping = nil, nil
		label := fmt.Sprintf("provisioner[%d]", i)
		if err := md.PrimitiveDecode(prim, &p); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", label, err))
			continue
		}
		if p.Name != "" {
			label = fmt.Sprintf("provisioner %q", p.Name)
		}
		var keys map[string]any
		if err := md.PrimitiveDecode(prim, &keys); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", label, err))
			continue
		}
		allowed := tomlKeys(reflect.TypeOf(p))
		newCfg, ok := reg[p.Type]
		if !ok {
			errs = append(errs, fmt.Errorf("%s: type: unknown value %q (want %s)", label, p.Type, quoteList(sortedNames(reg))))
		} else {
			tc := newCfg()
			if err := md.PrimitiveDecode(prim, tc); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", label, err))
			}
			if ds, ok := tc.(targets.DirectorySetter); ok {
				ds.SetDirectory(dir)
			}
			p.Target = tc
			for _, k := range literalSecrets(tc) {
				warnings = append(warnings, fmt.Sprintf("%s: %s: a literal secret in the config file; prefer %s_file", label, k, k))
			}
			if w, ok := tc.(targets.Warner); ok {
				for _, msg := range w.Warnings() {
					warnings = append(warnings, label+": "+msg)
				}
			}
			for k := range tomlKeys(reflect.TypeOf(tc)) {
				allowed[k] = true
			}
		}
		for _, k := range sortedKeysAny(keys) {
			if !allowed[k] {
				errs = append(errs, fmt.Errorf("%s: %s: unknown key", label, k))
			}
		}
		out = append(out, p)
	}
	return out, warnings, errs
}

// literalSecrets names the non-empty Secret fields of a target config: secrets written into
// the file itself, which deserve a warning.
func literalSecrets(v any) []string {
	rv := reflect.ValueOf(v)
	for rv.Kind() == reflect.Pointer {
		rv = rv.Elem()
	}
	if rv.Kind() != reflect.Struct {
		return nil
	}
	var out []string
	secretType := reflect.TypeOf(Secret(""))
	for i := 0; i < rv.NumField(); i++ {
		f := rv.Type().Field(i)
		if f.Type == secretType && f.IsExported() && rv.Field(i).String() != "" {
			tag, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
			out = append(out, tag)
		}
	}
	return out
}

// tomlKeys lists the toml tags of a struct type's fields (embedded structs included).
func tomlKeys(t reflect.Type) map[string]bool {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	keys := map[string]bool{}
	if t.Kind() != reflect.Struct {
		return keys
	}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Anonymous {
			for k := range tomlKeys(f.Type) {
				keys[k] = true
			}
			continue
		}
		tag, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if tag == "-" || !f.IsExported() {
			continue
		}
		if tag == "" {
			tag = f.Name
		}
		keys[tag] = true
	}
	return keys
}

// applyDerivedDefaults fills defaults that depend on other keys. Those of [ldap.users] and
// [ldap.groups] depend on the directory's dialect: ldap.dialect's, or OpenLDAP's until
// ApplyDialect settles "auto" with the dialect the directory reports.
func (c *Config) applyDerivedDefaults() {
	if c.LDAP.URL != "" && len(c.LDAP.URLs) == 0 {
		c.LDAP.URLs = []string{c.LDAP.URL}
	}
	if c.HA.LeaseURL == "" && len(c.LDAP.URLs) > 0 {
		c.HA.LeaseURL = c.LDAP.URLs[0]
	}
	if c.HA.InstanceID == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "localhost"
		}
		c.HA.InstanceID = host + ":" + c.State.Dir
	}
	c.written = &writtenObjects{users: c.LDAP.Users, groups: c.LDAP.Groups}
	c.written.users.ObjectClasses = slices.Clone(c.LDAP.Users.ObjectClasses)
	c.written.groups.ObjectClasses = slices.Clone(c.LDAP.Groups.ObjectClasses)
	c.deriveObjectDefaults(c.LDAP.Dialect)
	for i := range c.Inbound.Extensions {
		for j := range c.Inbound.Extensions[i].Attributes {
			if c.Inbound.Extensions[i].Attributes[j].Type == "" {
				c.Inbound.Extensions[i].Attributes[j].Type = "string"
			}
		}
	}
}

// writtenObjects keeps [ldap.users] and [ldap.groups] as the file wrote them, so that
// ApplyDialect can derive their defaults again for another dialect.
type writtenObjects struct {
	users  Users
	groups Groups
}

// ApplyDialect fills the defaults of [ldap.users] and [ldap.groups] that the file left unset
// with those of the dialect the directory reported (openldap, 389ds, ad, generic), when
// ldap.dialect is "auto": Active Directory's users are user objects named by cn below
// CN=Users, for instance, not inetOrgPerson entries below ou=people. A configured dialect keeps
// its own defaults. Call it once the directory has been reached, before using those sections.
func (c *Config) ApplyDialect(dialect string) {
	if c.LDAP.Dialect != "" && c.LDAP.Dialect != "auto" {
		return
	}
	if c.written != nil {
		c.LDAP.Users, c.LDAP.Groups = c.written.users, c.written.groups
		c.LDAP.Users.ObjectClasses = slices.Clone(c.written.users.ObjectClasses)
		c.LDAP.Groups.ObjectClasses = slices.Clone(c.written.groups.ObjectClasses)
	}
	c.deriveObjectDefaults(dialect)
}

// deriveObjectDefaults fills the unset keys of [ldap.users] and [ldap.groups] with the
// dialect's defaults (mapping.ProfileFor).
func (c *Config) deriveObjectDefaults(dialect string) {
	p := mapping.ProfileFor(dialect)
	u := &c.LDAP.Users
	if u.BaseDN == "" && c.LDAP.BaseDN != "" {
		u.BaseDN = p.UsersRDN + "," + c.LDAP.BaseDN
	}
	if len(u.ObjectClasses) == 0 {
		u.ObjectClasses = slices.Clone(p.UserObjectClasses)
	}
	if u.RDNAttribute == "" {
		u.RDNAttribute = p.UserRDNAttribute
	}
	if u.Filter == "" {
		u.Filter = p.DefaultUserFilter(u.ObjectClasses)
	}
	g := &c.LDAP.Groups
	if g.BaseDN == "" && c.LDAP.BaseDN != "" {
		g.BaseDN = p.GroupsRDN + "," + c.LDAP.BaseDN
	}
	if len(g.ObjectClasses) == 0 {
		g.ObjectClasses = slices.Clone(p.GroupObjectClasses)
	}
	if g.RDNAttribute == "" {
		g.RDNAttribute = "cn"
	}
	if g.MemberAttribute == "" {
		g.MemberAttribute = "member"
		if slices.ContainsFunc(g.ObjectClasses, func(s string) bool { return strings.EqualFold(s, "groupOfUniqueNames") }) {
			g.MemberAttribute = "uniqueMember"
		}
	}
	if g.Filter == "" {
		g.Filter = p.DefaultGroupFilter(g.ObjectClasses)
	}
}

// resolve makes paths absolute and reads secrets from files and the environment.
func (c *Config) resolve(dir string) []error {
	var errs []error
	path := func(p string) string { return targets.ResolvePath(dir, os.ExpandEnv(p)) }
	c.State.Dir = path(c.State.Dir)
	c.LDAP.CAFile = path(c.LDAP.CAFile)
	c.Inbound.TLSCertFile = path(c.Inbound.TLSCertFile)
	c.Inbound.TLSKeyFile = path(c.Inbound.TLSKeyFile)
	c.Admin.TokenFile = path(c.Admin.TokenFile)

	c.LDAP.BindPasswordFile = path(c.LDAP.BindPasswordFile)
	switch {
	case c.LDAP.BindPassword != "" && c.LDAP.BindPasswordFile != "":
		errs = append(errs, errors.New("ldap: bind_password and bind_password_file: set at most one"))
	case c.LDAP.BindPassword != "":
		c.Warnings = append(c.Warnings, "ldap.bind_password: a literal secret in the config file; prefer bind_password_file or "+envPassword)
	case c.LDAP.BindPasswordFile == "":
		if v, ok := os.LookupEnv(envPassword); ok {
			c.LDAP.BindPassword = Secret(v)
		}
	}
	if c.LDAP.InsecureSkipVerify {
		c.Warnings = append(c.Warnings, "ldap.insecure_skip_verify: TLS certificates of the directory are not checked")
	}
	for i := range c.Inbound.Tokens {
		t := &c.Inbound.Tokens[i]
		t.File = path(t.File)
		if t.SHA256 != "" && t.File != "" {
			errs = append(errs, fmt.Errorf("%s: sha256 and file: set at most one", tokenKey(i, t.Name)))
		}
	}
	return errs
}

func tokenKey(i int, name string) string {
	if name != "" {
		return fmt.Sprintf("inbound.token %q", name)
	}
	return fmt.Sprintf("inbound.token[%d]", i)
}

// LoadSecrets reads the secret files the configuration names (the LDAP bind password, token
// files, which are hashed) and lets each target config read its own when it opens. It is
// separate from Load so that check-config can validate a file on a machine where the
// secrets are not (yet) present, such as systemd credentials, reporting them as warnings.
func (c *Config) LoadSecrets() error {
	var errs []error
	if c.LDAP.BindPasswordFile != "" {
		b, err := os.ReadFile(c.LDAP.BindPasswordFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("ldap.bind_password_file: %w", err))
		} else {
			c.LDAP.BindPassword = Secret(strings.TrimRight(string(b), "\r\n"))
		}
	}
	if c.Admin.TokenFile != "" {
		b, err := os.ReadFile(c.Admin.TokenFile)
		switch tok := strings.TrimSpace(string(b)); {
		case err != nil:
			errs = append(errs, fmt.Errorf("admin.token_file: %w", err))
		case len(tok) < 16:
			errs = append(errs, errors.New("admin.token_file: token shorter than 16 characters"))
		default:
			c.Admin.Token = Secret(tok)
		}
	}
	for i := range c.Inbound.Tokens {
		t := &c.Inbound.Tokens[i]
		if t.File == "" {
			continue
		}
		key := tokenKey(i, t.Name)
		b, err := os.ReadFile(t.File)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: file: %w", key, err))
			continue
		}
		tok := strings.TrimSpace(string(b))
		if len(tok) < 16 {
			errs = append(errs, fmt.Errorf("%s: file: token shorter than 16 characters", key))
			continue
		}
		sum := sha256.Sum256([]byte(tok))
		t.SHA256 = hex.EncodeToString(sum[:])
	}
	if c.Path != "" && len(errs) > 0 {
		for i, e := range errs {
			errs[i] = fmt.Errorf("%s: %w", c.Path, e)
		}
	}
	return errors.Join(errs...)
}

func (c *Config) validate(_ Registry) []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	enum := func(key, got string, allowed []string) {
		if !slices.Contains(allowed, got) {
			add("%s: unknown value %q (want %s)", key, got, quoteList(allowed))
		}
	}
	positive := func(key string, d Duration) {
		if d.Duration <= 0 {
			add("%s: must be a positive duration, got %q", key, d.Duration)
		}
	}
	enum("log.level", c.Log.Level, logLevels)
	enum("log.format", c.Log.Format, logFormats)
	if c.State.Dir == "" {
		add("state.dir: required")
	}

	l := c.LDAP
	switch {
	case l.URL != "" && len(l.URLs) > 1:
		add("ldap: url and urls: set one of them")
	case len(l.URLs) == 0:
		add("ldap.url: required (or ldap.urls)")
	}
	for _, u := range l.URLs {
		switch {
		case !strings.HasPrefix(u, "ldap://") && !strings.HasPrefix(u, "ldaps://") && !strings.HasPrefix(u, "ldapi://"):
			add("ldap.url: %q: want ldap://host[:port], ldaps://host[:port] or ldapi://%%2Fpath%%2Fto%%2Fsocket", u)
		case !strings.HasPrefix(u, "ldap://") && l.StartTLS:
			add("ldap.start_tls: does not go with %q (only ldap:// connections are upgraded)", u)
		}
	}
	if l.BaseDN == "" {
		add("ldap.base_dn: required")
	}
	if l.BindDN == "" {
		add("ldap.bind_dn: required (the bridge's service account)")
	} else if l.BindPassword == "" && l.BindPasswordFile == "" {
		add("ldap.bind_password_file: required with bind_dn (or bind_password, or %s)", envPassword)
	}
	enum("ldap.dialect", l.Dialect, dialects)
	if l.PoolSize < 1 || l.PoolSize > 256 {
		add("ldap.pool_size: must be between 1 and 256, got %d", l.PoolSize)
	}
	if l.PageSize < 1 || l.PageSize > 10000 {
		add("ldap.page_size: must be between 1 and 10000, got %d", l.PageSize)
	}
	if l.RangeSize < 0 || l.RangeSize > 100000 {
		add("ldap.range_size: must be between 0 and 100000, got %d", l.RangeSize)
	}
	positive("ldap.timeout", l.Timeout)
	errs = append(errs, c.HA.validate()...)
	positive("ldap.dial_timeout", l.DialTimeout)
	for key, f := range map[string]string{"ldap.users.filter": l.Users.Filter, "ldap.groups.filter": l.Groups.Filter} {
		if !validFilterShape(f) {
			add("%s: %q is not a parenthesised LDAP filter", key, f)
		}
	}
	if l.BaseDN != "" {
		for key, b := range map[string]string{"ldap.users.base_dn": l.Users.BaseDN, "ldap.groups.base_dn": l.Groups.BaseDN} {
			if !strings.HasSuffix(strings.ToLower(b), strings.ToLower(l.BaseDN)) {
				add("%s: %q is not below ldap.base_dn %q", key, b, l.BaseDN)
			}
		}
	}

	if c.Changes.Source != "" {
		enum("changes.source", c.Changes.Source, sources)
	}
	positive("changes.poll_interval", c.Changes.PollInterval)
	positive("changes.reconcile_interval", c.Changes.ReconcileInterval)
	if c.Changes.Overlap.Duration < 0 {
		add("changes.overlap: must not be negative")
	}

	in := c.Inbound
	if in.Enabled {
		if in.Listen == "" {
			add("inbound.listen: required when inbound.enabled")
		}
		if !strings.HasPrefix(in.BasePath, "/") {
			add("inbound.base_path: must start with /, got %q", in.BasePath)
		}
		if (in.TLSCertFile == "") != (in.TLSKeyFile == "") {
			add("inbound.tls_cert_file and inbound.tls_key_file: set both or neither")
		}
		if in.MaxBodyBytes < 1024 {
			add("inbound.max_body_bytes: must be at least 1024, got %d", in.MaxBodyBytes)
		}
		enum("inbound.disable", in.Disable, disables)
		if in.Disable == "move" && in.DisabledBaseDN == "" {
			add("inbound.disabled_base_dn: required when inbound.disable = \"move\"")
		}
		if len(in.Tokens) == 0 {
			add("inbound.token: at least one token is required when inbound.enabled (scimbridge token new makes one)")
		}
		positive("inbound.read_timeout", in.ReadTimeout)
		positive("inbound.write_timeout", in.WriteTimeout)
		positive("inbound.idle_timeout", in.IdleTimeout)
		if in.MaxHeaderBytes < 4096 {
			add("inbound.max_header_bytes: must be at least 4096, got %d", in.MaxHeaderBytes)
		}
		errs = append(errs, validateFence(in)...)
		if in.MaxMembersPerRequest < 1 || in.MaxMembersPerRequest > 1_000_000 {
			add("inbound.max_members_per_request: must be between 1 and 1000000, got %d", in.MaxMembersPerRequest)
		}
		if in.MaxConcurrentRequests < 1 || in.MaxConcurrentRequests > 1024 {
			add("inbound.max_concurrent_requests: must be between 1 and 1024, got %d", in.MaxConcurrentRequests)
		}
		if in.MaxQueuedRequests < 0 || in.MaxQueuedRequests > 1_000_000 {
			add("inbound.max_queued_requests: must be between 0 and 1000000, got %d", in.MaxQueuedRequests)
		}
		if in.PublicURL != "" {
			if err := checkPublicURL(in.PublicURL); err != nil {
				add("inbound.public_url: %v", err)
			}
		}
		for _, p := range in.TrustedProxies {
			if _, err := ParseProxy(p); err != nil {
				add("inbound.trusted_proxies: %v", err)
			}
		}
	}
	names := map[string]bool{}
	for i, t := range in.Tokens {
		key := fmt.Sprintf("inbound.token[%d]", i)
		if !nameRE.MatchString(t.Name) {
			add("%s.name: required, letters, digits, . _ - (got %q)", key, t.Name)
		} else if names[t.Name] {
			add("%s.name: %q is used twice", key, t.Name)
		}
		names[t.Name] = true
		if t.SHA256 == "" && t.File == "" {
			add("%s: sha256 or file: required", key)
		} else if t.SHA256 != "" && !sha256RE.MatchString(t.SHA256) {
			add("%s.sha256: want 64 hex digits (scimbridge token new prints it)", key)
		}
	}
	for i, e := range in.Extensions {
		key := fmt.Sprintf("inbound.extension[%d]", i)
		if !strings.HasPrefix(e.URN, "urn:") {
			add("%s.urn: want a URN (urn:…), got %q", key, e.URN)
		}
		for j, a := range e.Attributes {
			akey := fmt.Sprintf("%s.attribute[%d]", key, j)
			if a.Name == "" {
				add("%s.name: required", akey)
			}
			if a.LDAP == "" {
				add("%s.ldap: required", akey)
			}
			enum(akey+".type", a.Type, extTypes)
		}
	}

	pnames := map[string]bool{}
	for i, p := range c.Provisioners {
		label := fmt.Sprintf("provisioner[%d]", i)
		if p.Name != "" {
			label = fmt.Sprintf("provisioner %q", p.Name)
		}
		padd := func(format string, args ...any) { add(label+": "+format, args...) }
		switch {
		case !nameRE.MatchString(p.Name):
			padd("name: required, letters, digits, . _ - (got %q)", p.Name)
		case pnames[p.Name]:
			padd("name: used twice")
		}
		pnames[p.Name] = true
		if !slices.Contains(deprovs, p.Deprovision) {
			padd("deprovision: unknown value %q (want %s)", p.Deprovision, quoteList(deprovs))
		}
		if !slices.Contains(lookups, p.CreateLookup) {
			padd("create_lookup: unknown value %q (want %s)", p.CreateLookup, quoteList(lookups))
		}
		if p.Filter != "" && !validFilterShape(p.Filter) {
			padd("filter: %q is not a parenthesised LDAP filter", p.Filter)
		}
		if p.RateLimit < 0 || math.IsNaN(p.RateLimit) || math.IsInf(p.RateLimit, 0) {
			padd("rate_limit: must be positive (or left out: adaptive), got %v", p.RateLimit)
		}
		if p.Concurrency < 0 || p.Concurrency > 64 {
			padd("concurrency: must be between 1 and 64 (or left out: 16), got %d", p.Concurrency)
		}
		if p.MaxAttempts < 1 {
			padd("max_attempts: must be at least 1, got %d", p.MaxAttempts)
		}
		if p.MaxDeletes < 0 {
			padd("max_deletes: must not be negative, got %d", p.MaxDeletes)
		}
		if p.MinRetryDelay.Duration <= 0 || p.MaxRetryDelay.Duration < p.MinRetryDelay.Duration {
			padd("min_retry_delay and max_retry_delay: want 0 < min_retry_delay <= max_retry_delay")
		}
		if p.MatchAttribute == "" {
			padd("match_attribute: required")
		}
		for _, g := range p.Groups {
			if !strings.Contains(g, "=") {
				padd("groups: %q is not a DN", g)
			}
		}
		if v, ok := p.Target.(targets.Validator); ok {
			if err := v.Validate(); err != nil {
				for _, e := range unjoin(err) {
					padd("%v", e)
				}
			}
		}
	}
	errs = append(errs, validateMappings(c)...)
	return errs
}

// validateFence checks the keys of the SCIM fence: protected entries, scope filters and
// managed mode.
func validateFence(in Inbound) []error {
	var errs []error
	for key, dns := range map[string][]string{"inbound.protected_dns": in.ProtectedDNs, "inbound.protected_groups": in.ProtectedGroups} {
		for _, dn := range dns {
			if _, err := ldapstore.ParseDN(dn); err != nil || dn == "" {
				errs = append(errs, fmt.Errorf("%s: %q is not a DN", key, dn))
			}
		}
	}
	for key, f := range map[string]string{"inbound.scope_filter.users": in.ScopeFilter.Users, "inbound.scope_filter.groups": in.ScopeFilter.Groups} {
		if f == "" {
			continue
		}
		if err := ldapstore.CheckFilter(f); err != nil {
			errs = append(errs, fmt.Errorf("%s: %q is not a valid LDAP filter", key, f))
		}
	}
	if in.AdoptExisting && !in.ManagedOnly {
		errs = append(errs, errors.New("inbound.adopt_existing: only has a meaning with inbound.managed_only = true"))
	}
	for _, a := range in.AllowSensitiveAttributes {
		if _, ok := mapping.SensitiveAttribute(a); !ok {
			errs = append(errs, fmt.Errorf("inbound.allow_sensitive_attributes: %q is not a sensitive attribute (nothing to allow)", a))
		}
	}
	sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
	return errs
}

// checkPublicURL accepts an absolute http(s) URL without credentials, query or fragment.
func checkPublicURL(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return fmt.Errorf("%q is not a URL", raw)
	case u.Scheme != "https" && u.Scheme != "http":
		return fmt.Errorf("%q: want an https:// URL (the SCIM base as clients reach it)", raw)
	case u.Host == "":
		return fmt.Errorf("%q: host missing", raw)
	case u.User != nil, u.RawQuery != "", u.Fragment != "":
		return fmt.Errorf("%q: no credentials, query or fragment", raw)
	}
	return nil
}

// ParseProxy parses one inbound.trusted_proxies value: an IP address or a CIDR range.
func ParseProxy(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is neither an IP address nor a CIDR range", s)
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}

// ProtectedTransport reports whether a directory URL keeps what crosses it (the bind password,
// passwords set through SCIM) off the network in clear: ldaps://, ldapi:// (a local socket), a
// loopback host, or ldap:// with StartTLS.
func ProtectedTransport(rawURL string, startTLS bool) bool {
	if strings.HasPrefix(rawURL, "ldapi://") {
		return true
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return false
	}
	switch u.Scheme {
	case "ldaps", "ldapi":
		return true
	case "ldap":
		return startTLS || targets.IsLoopbackHost(u.Hostname())
	}
	return false
}

// collectWarnings adds the warnings about settings that work but expose something: plain LDAP
// to another machine, an admin listener off loopback, SCIM bases that take in the whole tree
// or the bridge's own account.
func (c *Config) collectWarnings() {
	warn := func(format string, args ...any) { c.Warnings = append(c.Warnings, fmt.Sprintf(format, args...)) }
	for _, u := range c.LDAP.URLs {
		if !ProtectedTransport(u, c.LDAP.StartTLS) {
			pw := "SCIM password writes are refused (inbound.allow_cleartext_passwords = false)"
			if c.Inbound.AllowCleartextPasswords {
				pw = "and so does every password set through SCIM (inbound.allow_cleartext_passwords = true)"
			}
			warn("ldap.url: %q is plain LDAP to another machine without start_tls: the bind password crosses the network in clear; %s. Use ldaps:// or start_tls = true", u, pw)
		}
	}
	if host, _, err := net.SplitHostPort(c.Admin.Listen); err == nil && !targets.IsLoopbackHost(host) {
		if c.Admin.TokenFile == "" {
			warn("admin.listen: %q is not a loopback address: /metrics and /status are open to the network; set admin.token_file, or keep it on 127.0.0.1", c.Admin.Listen)
		} else {
			warn("admin.listen: %q is not a loopback address: /healthz and /readyz are open to the network (/metrics and /status need admin.token_file's token)", c.Admin.Listen)
		}
	}
	if !c.Inbound.Enabled || c.LDAP.BaseDN == "" {
		return
	}
	for key, b := range map[string]string{"ldap.users.base_dn": c.LDAP.Users.BaseDN, "ldap.groups.base_dn": c.LDAP.Groups.BaseDN} {
		switch {
		case ldapstore.SameDN(b, c.LDAP.BaseDN):
			warn("%s: %q is the whole directory (ldap.base_dn): every account in it is within SCIM's reach unless inbound.protected_dns, protected_groups or scope_filter fence it off", key, b)
		case c.LDAP.BindDN != "" && ldapstore.InScope(c.LDAP.BindDN, b):
			warn("%s: %q contains the bridge's own account (ldap.bind_dn); SCIM never sees it, but move it out (ou=services)", key, b)
		}
	}
}

// validFilterShape is a cheap syntactic check; the directory has the last word.
func validFilterShape(f string) bool {
	if !strings.HasPrefix(f, "(") || !strings.HasSuffix(f, ")") {
		return false
	}
	depth := 0
	for _, r := range f {
		switch r {
		case '(':
			depth++
		case ')':
			depth--
			if depth < 0 {
				return false
			}
		}
	}
	return depth == 0
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func quoteList(vals []string) string {
	q := make([]string, len(vals))
	for i, v := range vals {
		q[i] = fmt.Sprintf("%q", v)
	}
	if len(q) == 1 {
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}

func sortedNames(reg Registry) []string {
	out := make([]string, 0, len(reg))
	for k := range reg {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func sortedKeysAny(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// LeaseDNOrDefault is ha.lease_dn, or its default below the users base.
func (c *Config) LeaseDNOrDefault() string {
	if c.HA.LeaseDN != "" {
		return c.HA.LeaseDN
	}
	return "cn=scimbridge-lease," + c.LDAP.Users.BaseDN
}

func (h HA) validate() []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	switch {
	case h.LeaseDuration.Duration < 3*time.Second:
		add("ha.lease_duration: must be at least 3s, got %q", h.LeaseDuration.Duration)
	case h.RenewInterval.Duration <= 0:
		add("ha.renew_interval: must be a positive duration, got %q", h.RenewInterval.Duration)
	case h.RenewInterval.Duration > h.LeaseDuration.Duration/3:
		add("ha.renew_interval: must be at most a third of ha.lease_duration (%s), got %q", h.LeaseDuration.Duration/3, h.RenewInterval.Duration)
	}
	if h.LeaseDN != "" && !strings.Contains(h.LeaseDN, "=") {
		add("ha.lease_dn: %q is not a DN", h.LeaseDN)
	}
	if h.LeaseURL != "" && !strings.HasPrefix(h.LeaseURL, "ldap://") && !strings.HasPrefix(h.LeaseURL, "ldaps://") && !strings.HasPrefix(h.LeaseURL, "ldapi://") {
		add("ha.lease_url: %q: want ldap://host[:port], ldaps://host[:port] or ldapi://…", h.LeaseURL)
	}
	if strings.ContainsAny(h.InstanceID, "\x00\n\r") || len(h.InstanceID) > 200 {
		add("ha.instance_id: at most 200 characters, no control characters")
	}
	return errs
}
