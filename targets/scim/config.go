package scim

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/scimbridge/scimbridge/targets"
)

// The values of the auth key.
const (
	AuthOAuth2 = "oauth2"
	AuthBearer = "bearer"
	AuthBasic  = "basic"
	AuthNone   = "none"
)

// The values of the token_auth_style key: how the OAuth2 client authenticates to the token
// endpoint.
const (
	TokenAuthHeader = "header" // HTTP Basic (RFC 6749 §2.3.1, what every server must accept).
	TokenAuthParams = "params" // client_id and client_secret in the form body.
)

// Config is a SCIM provisioner's type-specific keys (TOML). Start from DefaultConfig (or
// NewConfig), decode over it, call SetDirectory, Validate, then Open.
type Config struct {
	// URL is the SCIM base URL, e.g. "https://api.example.com/scim/v2". Required; http or
	// https, no credentials, query or fragment.
	URL string `toml:"url"`

	// Auth is how requests authenticate: "oauth2" (client credentials), "bearer", "basic" or
	// "none". Defaults to "bearer", so that a provisioner configured without credentials fails
	// validation instead of silently calling the target anonymously: "none" must be explicit.
	Auth string `toml:"auth"`

	// TokenURL is the OAuth2 token endpoint (auth = "oauth2").
	TokenURL string `toml:"token_url"`
	// ClientID is the OAuth2 client id (auth = "oauth2").
	ClientID string `toml:"client_id"`
	// ClientSecret is the OAuth2 client secret; prefer ClientSecretFile.
	ClientSecret targets.Secret `toml:"client_secret"`
	// ClientSecretFile holds the OAuth2 client secret (trailing newline trimmed).
	ClientSecretFile string `toml:"client_secret_file"`
	// Scopes are the OAuth2 scopes requested.
	Scopes []string `toml:"scopes"`
	// TokenParams are extra form parameters for the token request (e.g. audience).
	TokenParams map[string]string `toml:"token_params"`
	// TokenAuthStyle is how the client authenticates to the token endpoint: "header" (HTTP
	// Basic) or "params" (form body). Defaults to "header": RFC 6749 requires servers to
	// support it, and auto-detection would send the secret twice on a failure.
	TokenAuthStyle string `toml:"token_auth_style"`

	// Token is the bearer token (auth = "bearer"); prefer TokenFile.
	Token targets.Secret `toml:"token"`
	// TokenFile holds the bearer token (trailing newline trimmed). It is read at Open and
	// again after a 401, so a rotated token is picked up without a reload.
	TokenFile string `toml:"token_file"`

	// Username is the HTTP Basic user (auth = "basic").
	Username string `toml:"username"`
	// Password is the HTTP Basic password; prefer PasswordFile.
	Password targets.Secret `toml:"password"`
	// PasswordFile holds the HTTP Basic password (trailing newline trimmed).
	PasswordFile string `toml:"password_file"`

	// CAFile is a PEM bundle of the CAs trusted for the target instead of the system roots.
	// The token endpoint trusts both (identity providers usually have public certificates).
	CAFile string `toml:"ca_file"`
	// ClientCertFile and ClientKeyFile are the PEM client certificate and key for mutual TLS;
	// set both or neither.
	ClientCertFile string `toml:"client_cert_file"`
	ClientKeyFile  string `toml:"client_key_file"`
	// InsecureSkipVerify disables verification of the target's (and the token endpoint's)
	// certificate. Never in production; Open logs a warning.
	InsecureSkipVerify bool `toml:"insecure_skip_verify"`

	// Timeout bounds each HTTP request (each try). Defaults to 30s.
	Timeout targets.Duration `toml:"timeout"`
	// MaxRetries is the number of quick retries inside one delivery, for network errors and
	// for 5xx/429 answers to idempotent requests (never a POST). Defaults to 3; 0 disables
	// them. Longer outages are the outbox's business (max_attempts).
	MaxRetries int `toml:"max_retries"`
	// MinBackoff and MaxBackoff bound the jittered exponential wait between quick retries.
	// A Retry-After from the target is honoured but capped at MaxBackoff. Default to 500ms
	// and 30s.
	MinBackoff targets.Duration `toml:"min_backoff"`
	MaxBackoff targets.Duration `toml:"max_backoff"`

	// UserPath and GroupPath are the resource endpoints relative to URL. Default to "/Users"
	// and "/Groups".
	UserPath  string `toml:"user_path"`
	GroupPath string `toml:"group_path"`
	// MembersPerRequest is how many member changes one group PATCH carries. Defaults to 100,
	// well under the operation limits SaaS SCIM APIs document.
	MembersPerRequest int `toml:"members_per_request"`
	// PageSize is the count asked for per page when listing. Defaults to 100.
	PageSize int `toml:"page_size"`

	// Headers are extra HTTP headers sent with every request (values are treated as secrets:
	// they are never logged or printed).
	Headers map[string]targets.Secret `toml:"headers"`

	dir string
	// instance is the bridge instance's id, sent in the User-Agent (SetInstance).
	instance string
}

// defaultConfig holds the defaults, applied before decoding (see the field comments for why).
var defaultConfig = Config{
	Auth:              AuthBearer,
	TokenAuthStyle:    TokenAuthHeader,
	Timeout:           targets.Duration{Duration: 30 * time.Second},
	MaxRetries:        3,
	MinBackoff:        targets.Duration{Duration: 500 * time.Millisecond},
	MaxBackoff:        targets.Duration{Duration: 30 * time.Second},
	UserPath:          "/Users",
	GroupPath:         "/Groups",
	MembersPerRequest: 100,
	PageSize:          100,
}

// DefaultConfig returns a Config holding the defaults, ready to decode a provisioner into.
func DefaultConfig() *Config {
	c := defaultConfig
	return &c
}

// NewConfig is DefaultConfig as a targets.Config, the shape of the bridge's registry.
func NewConfig() targets.Config { return DefaultConfig() }

// SetDirectory sets the directory relative file paths resolve against (the config file's).
func (c *Config) SetDirectory(dir string) { c.dir = dir }

// SetInstance names the bridge instance in the User-Agent of every request.
func (c *Config) SetInstance(id string) { c.instance = id }

const (
	maxRetriesLimit = 10
	maxBatchLimit   = 1000
)

// Validate checks the configuration without reading files or connecting anywhere, and reports
// every problem at once, each prefixed with its key.
func (c *Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if c.URL == "" {
		add("url: required")
	} else if err := checkURL(c.URL); err != nil {
		add("url: %w", err)
	}

	// Keys of the other auth methods are mistakes worth reporting: the admin believes a
	// credential is in use that is not.
	unused := func(key string, set bool) {
		if set {
			add("%s: only used when auth = %q", key, authOfKey[key])
		}
	}
	pair := func(lit, file string, litSet, fileSet bool) {
		switch {
		case litSet && fileSet:
			add("%s and %s: set at most one", lit, file)
		case !litSet && !fileSet:
			add("%s or %s: required when auth = %q", lit, file, c.Auth)
		}
	}
	oauth := func() {
		unused("token_url", c.TokenURL != "")
		unused("client_id", c.ClientID != "")
		unused("client_secret", c.ClientSecret != "")
		unused("client_secret_file", c.ClientSecretFile != "")
		unused("scopes", len(c.Scopes) > 0)
		unused("token_params", len(c.TokenParams) > 0)
	}
	bearer := func() {
		unused("token", c.Token != "")
		unused("token_file", c.TokenFile != "")
	}
	basic := func() {
		unused("username", c.Username != "")
		unused("password", c.Password != "")
		unused("password_file", c.PasswordFile != "")
	}
	switch c.Auth {
	case AuthOAuth2:
		if c.TokenURL == "" {
			add("token_url: required when auth = %q", AuthOAuth2)
		} else if err := checkURL(c.TokenURL); err != nil {
			add("token_url: %w", err)
		}
		if c.ClientID == "" {
			add("client_id: required when auth = %q", AuthOAuth2)
		}
		pair("client_secret", "client_secret_file", c.ClientSecret != "", c.ClientSecretFile != "")
		switch c.TokenAuthStyle {
		case TokenAuthHeader, TokenAuthParams:
		default:
			add("token_auth_style: unknown value %q (want %q or %q)", c.TokenAuthStyle, TokenAuthHeader, TokenAuthParams)
		}
		bearer()
		basic()
	case AuthBearer:
		pair("token", "token_file", c.Token != "", c.TokenFile != "")
		oauth()
		basic()
	case AuthBasic:
		if c.Username == "" {
			add("username: required when auth = %q", AuthBasic)
		} else if strings.Contains(c.Username, ":") {
			add("username: must not contain \":\" (HTTP Basic)")
		}
		pair("password", "password_file", c.Password != "", c.PasswordFile != "")
		oauth()
		bearer()
	case AuthNone:
		oauth()
		bearer()
		basic()
	default:
		add("auth: unknown value %q (want %q, %q, %q or %q)", c.Auth, AuthOAuth2, AuthBearer, AuthBasic, AuthNone)
	}

	if (c.ClientCertFile == "") != (c.ClientKeyFile == "") {
		add("client_cert_file and client_key_file: set both or neither")
	}
	if c.Timeout.Duration <= 0 {
		add("timeout: must be positive, got %s", c.Timeout.Duration)
	}
	if c.MaxRetries < 0 || c.MaxRetries > maxRetriesLimit {
		add("max_retries: must be between 0 and %d, got %d", maxRetriesLimit, c.MaxRetries)
	}
	if c.MinBackoff.Duration <= 0 {
		add("min_backoff: must be positive, got %s", c.MinBackoff.Duration)
	}
	if c.MaxBackoff.Duration < c.MinBackoff.Duration {
		add("max_backoff: must be at least min_backoff (%s), got %s", c.MinBackoff.Duration, c.MaxBackoff.Duration)
	}
	for _, kp := range [][2]string{{"user_path", c.UserPath}, {"group_path", c.GroupPath}} {
		if p := kp[1]; !strings.HasPrefix(p, "/") || strings.ContainsAny(p, "?#") {
			add("%s: must be a path starting with \"/\", got %q", kp[0], p)
		}
	}
	if c.MembersPerRequest < 1 || c.MembersPerRequest > maxBatchLimit {
		add("members_per_request: must be between 1 and %d, got %d", maxBatchLimit, c.MembersPerRequest)
	}
	if c.PageSize < 1 || c.PageSize > maxBatchLimit {
		add("page_size: must be between 1 and %d, got %d", maxBatchLimit, c.PageSize)
	}
	names := make([]string, 0, len(c.Headers))
	for name := range c.Headers {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		v := c.Headers[name]
		switch {
		case !validHeaderName(name):
			add("headers: invalid header name %q", name)
		case reservedHeaders[http.CanonicalHeaderKey(name)]:
			add("headers: %q is set by scimbridge and cannot be overridden", name)
		case http.CanonicalHeaderKey(name) == "Authorization" && c.Auth != AuthNone:
			add("headers: %q conflicts with auth = %q (use auth = \"none\" to send your own)", name, c.Auth)
		case strings.ContainsAny(string(v), "\r\n\x00"):
			add("headers: invalid value for %q", name)
		}
	}
	return errors.Join(errs...)
}

var authOfKey = map[string]string{
	"token_url": AuthOAuth2, "client_id": AuthOAuth2, "client_secret": AuthOAuth2,
	"client_secret_file": AuthOAuth2, "scopes": AuthOAuth2, "token_params": AuthOAuth2,
	"token": AuthBearer, "token_file": AuthBearer,
	"username": AuthBasic, "password": AuthBasic, "password_file": AuthBasic,
}

var reservedHeaders = map[string]bool{
	"Content-Type": true, "Accept": true, "Host": true, "Content-Length": true,
	"Transfer-Encoding": true, "Connection": true,
}

func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("invalid URL %q", redactRawURL(raw))
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("scheme must be http or https, got %q", u.Scheme)
	case u.Host == "":
		return errors.New("host missing")
	case u.User != nil:
		return errors.New("must not carry credentials (use the auth keys)")
	case u.RawQuery != "" || u.Fragment != "":
		return errors.New("must not have a query or fragment")
	}
	return nil
}

// Warnings names plain-HTTP URLs to other machines that carry a credential: the bearer token,
// basic password or OAuth2 access token (url), and the OAuth2 client secret (token_url).
func (c *Config) Warnings() []string {
	var out []string
	plain := func(raw string) bool {
		u, err := url.Parse(raw)
		return err == nil && u.Scheme == "http" && !targets.IsLoopbackHost(u.Hostname())
	}
	if c.Auth != AuthNone && plain(c.URL) {
		out = append(out, fmt.Sprintf("url: %q is plain http to another machine: the %s credentials cross the network in plain; use https", redactRawURL(c.URL), c.Auth))
	}
	if c.Auth == AuthOAuth2 && plain(c.TokenURL) {
		out = append(out, fmt.Sprintf("token_url: %q is plain http to another machine: the OAuth2 client secret crosses the network in plain; use https", redactRawURL(c.TokenURL)))
	}
	return out
}

// validHeaderName reports whether name is an RFC 9110 token.
func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for _, r := range name {
		if r > 0x7e || r <= ' ' || strings.ContainsRune("\"(),/:;<=>?@[\\]{}", r) {
			return false
		}
	}
	return true
}
