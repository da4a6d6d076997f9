package ldapstore

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-ldap/ldap/v3"
	"github.com/rs/zerolog"
)

// Config is what a Store needs to reach and bind to the directory. The bridge's TOML config
// translates into it; ldapstore reads no files but the CA file.
type Config struct {
	// URLs are tried in order; the first that answers is used until it fails (failover).
	URLs []string
	// StartTLS upgrades ldap:// connections right after dialing.
	StartTLS bool
	// CAFile is a PEM bundle that verifies the server's certificate (ldaps:// and StartTLS).
	CAFile string
	// InsecureSkipVerify turns certificate verification off. Tests only.
	InsecureSkipVerify bool
	// ServerName overrides the name checked in the server certificate.
	ServerName   string
	BindDN       string
	BindPassword string
	// PoolSize bounds the number of open connections. Defaults to 8.
	PoolSize int
	// DialTimeout bounds connecting and binding. Defaults to 5s.
	DialTimeout time.Duration
	// Timeout bounds each request on a pooled connection. Defaults to 30s.
	Timeout time.Duration
	// PageSize is the paged-results page size of every search. Defaults to 500.
	PageSize int
	// Dialect forces a dialect; "" or "auto" detects it from the root DSE.
	Dialect Dialect
	// RangeSize, on Active Directory, reads member in ranges of this many values
	// (member;range=0-N) instead of whatever the DC returns at once (MaxValRange, 1500 by
	// default). Either way every value is read. 0 leaves the size to the DC.
	RangeSize int
}

const (
	defaultPoolSize    = 8
	defaultDialTimeout = 5 * time.Second
	defaultTimeout     = 30 * time.Second
	defaultPageSize    = 500
)

// Observer is told about every directory operation; the bridge feeds its metrics with it.
type Observer func(op string, d time.Duration, err error)

// Store is a pool of bound connections to one directory (with failover across URLs).
// It is safe for concurrent use.
type Store struct {
	cfg     Config
	tls     *tls.Config
	logger  zerolog.Logger
	observe Observer

	slots chan struct{}   // one per open-or-borrowed connection: bounds the pool
	idle  chan *ldap.Conn // bound, idle connections
	dial  func(ctx context.Context, rawURL string) (*ldap.Conn, error)
	// share, when set, bounds the connections this view of the pool holds at once (Share).
	share chan struct{}

	// *shared is what every view of one pool has in common.
	*shared
}

// shared is the state common to a Store and its views.
type shared struct {
	next    atomic.Int32 // index of the URL that answered last
	mu      sync.Mutex
	closed  bool
	rootDSE *RootDSE
}

// Option adjusts a Store.
type Option func(*Store)

// WithObserver reports every operation to fn.
func WithObserver(fn Observer) Option { return func(s *Store) { s.observe = fn } }

// New builds a Store without connecting; the first operation dials. Use Open to connect and
// detect the dialect up front.
func New(cfg Config, logger zerolog.Logger, opts ...Option) (*Store, error) {
	if len(cfg.URLs) == 0 {
		return nil, errors.New("ldapstore: no directory URL")
	}
	for _, u := range cfg.URLs {
		if strings.HasPrefix(u, "ldapi://") {
			// A local socket, its path percent-encoded as the host (url.Parse refuses that).
			if cfg.StartTLS {
				return nil, fmt.Errorf("ldapstore: url %q: start_tls only goes with ldap://", u)
			}
			continue
		}
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "ldap" && p.Scheme != "ldaps") || p.Host == "" {
			return nil, fmt.Errorf("ldapstore: url %q: want ldap://host[:port], ldaps://host[:port] or ldapi://%%2Fpath%%2Fto%%2Fsocket", u)
		}
		if p.Scheme != "ldap" && cfg.StartTLS {
			return nil, fmt.Errorf("ldapstore: url %q: start_tls only goes with ldap://", u)
		}
	}
	if cfg.PoolSize <= 0 {
		cfg.PoolSize = defaultPoolSize
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = defaultDialTimeout
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = defaultTimeout
	}
	if cfg.PageSize <= 0 {
		cfg.PageSize = defaultPageSize
	}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: cfg.InsecureSkipVerify, ServerName: cfg.ServerName} //nolint:gosec // opt-in, for tests
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ldapstore: ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ldapstore: ca_file %s: no PEM certificate in it", cfg.CAFile)
		}
		tlsCfg.RootCAs = pool
	}
	s := &Store{
		cfg:     cfg,
		tls:     tlsCfg,
		logger:  logger,
		observe: func(string, time.Duration, error) {},
		slots:   make(chan struct{}, cfg.PoolSize),
		idle:    make(chan *ldap.Conn, cfg.PoolSize),
		shared:  &shared{},
	}
	s.dial = s.dialURL
	for _, o := range opts {
		o(s)
	}
	return s, nil
}

// Open builds a Store, binds once and reads the root DSE to settle the dialect. A directory
// that does not answer gives an error wrapping ErrUnavailable.
func Open(ctx context.Context, cfg Config, logger zerolog.Logger, opts ...Option) (*Store, error) {
	s, err := New(cfg, logger, opts...)
	if err != nil {
		return nil, err
	}
	if _, err := s.RootDSE(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Close closes every idle connection; borrowed ones close when returned.
func (s *Store) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	for {
		select {
		case c := <-s.idle:
			c.Close()
		default:
			return
		}
	}
}

func (s *Store) dialURL(ctx context.Context, rawURL string) (*ldap.Conn, error) {
	d := &net.Dialer{Timeout: s.cfg.DialTimeout}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < s.cfg.DialTimeout {
		d.Deadline = dl
	}
	tlsCfg := s.tls.Clone()
	if tlsCfg.ServerName == "" {
		if p, err := url.Parse(rawURL); err == nil {
			tlsCfg.ServerName = p.Hostname()
		}
	}
	conn, err := ldap.DialURL(rawURL, ldap.DialWithDialer(d), ldap.DialWithTLSConfig(tlsCfg))
	if err != nil {
		return nil, err
	}
	// Until the bind is done, the request timeout is the dial timeout: a server that accepts
	// TCP but never answers must not hold us for Timeout.
	conn.SetTimeout(s.cfg.DialTimeout)
	if s.cfg.StartTLS {
		// go-ldap refuses StartTLS with requests outstanding: do it before anything else.
		if err := conn.StartTLS(tlsCfg); err != nil {
			conn.Close()
			return nil, fmt.Errorf("starttls: %w", err)
		}
	}
	if s.cfg.BindDN != "" {
		if err := conn.Bind(s.cfg.BindDN, s.cfg.BindPassword); err != nil {
			conn.Close()
			return nil, err
		}
	}
	conn.SetTimeout(s.cfg.Timeout)
	return conn, nil
}

// connect dials the URLs in order, starting with the one that answered last.
func (s *Store) connect(ctx context.Context) (*ldap.Conn, error) {
	n := len(s.cfg.URLs)
	start := int(s.next.Load())
	var errs []error
	for i := 0; i < n; i++ {
		idx := (start + i) % n
		u := s.cfg.URLs[idx]
		conn, err := s.dial(ctx, u)
		if err == nil {
			if idx != start {
				s.logger.Warn().Str("url", u).Msg("ldap failover: using another server")
			}
			s.next.Store(int32(idx))
			return conn, nil
		}
		if ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
			// Wrong credentials are wrong on every replica: say so instead of failing over.
			return nil, &Error{Op: "bind", DN: s.cfg.BindDN, Code: int(ldap.LDAPResultInvalidCredentials), Err: err, kind: ErrDenied}
		}
		errs = append(errs, fmt.Errorf("%s: %w", u, err))
		if ctx.Err() != nil {
			break
		}
	}
	return nil, &Error{Op: "connect", Err: errors.Join(errs...), kind: ErrUnavailable}
}

// withConn borrows a bound connection for fn and returns it to the pool, or discards it when
// fn saw a network error. When retry is true (the operation is idempotent) a network error is
// retried once on a fresh connection, which is how callers ride out a server restart.
func (s *Store) withConn(ctx context.Context, op string, retry bool, fn func(*ldap.Conn) error) error {
	start := time.Now()
	err := s.withConnOnce(ctx, fn)
	if err != nil && retry && isNetwork(err) && ctx.Err() == nil {
		err = s.withConnOnce(ctx, fn)
	}
	s.observe(op, time.Since(start), err)
	return err
}

func (s *Store) withConnOnce(ctx context.Context, fn func(*ldap.Conn) error) error {
	// A view's own share first, then a slot of the pool: a view that waits for its share holds
	// nothing another view could use.
	if s.share != nil {
		select {
		case s.share <- struct{}{}:
		case <-ctx.Done():
			return &Error{Op: "acquire", Err: context.Cause(ctx), kind: ErrUnavailable}
		}
		defer func() { <-s.share }()
	}
	select {
	case s.slots <- struct{}{}:
	case <-ctx.Done():
		return &Error{Op: "acquire", Err: context.Cause(ctx), kind: ErrUnavailable}
	}
	defer func() { <-s.slots }()

	var conn *ldap.Conn
	for conn == nil {
		select {
		case c := <-s.idle:
			if c.IsClosing() {
				c.Close()
				continue
			}
			conn = c
		default:
			c, err := s.connect(ctx)
			if err != nil {
				return err
			}
			conn = c
		}
	}
	err := fn(conn)
	if err != nil && (isNetwork(err) || conn.IsClosing()) {
		conn.Close()
		if !errors.Is(err, ErrUnavailable) {
			code, _ := classify(err)
			err = &Error{Op: "request", Code: code, Err: err, kind: ErrUnavailable}
		}
		return err
	}
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		conn.Close()
		return err
	}
	select {
	case s.idle <- conn:
	default:
		conn.Close()
	}
	return err
}

// Share returns a view of the store that uses its pool — its connections, failover and root
// DSE — but holds at most n connections at once (at least 1; at most the pool size). Give
// each consumer of one pool a view whose share leaves room for the others, and no consumer
// can starve another: with a pool of 8 and two views of 6, each always has 2. A view needs
// no Close of its own; closing the store closes the pool of all its views.
func (s *Store) Share(n int) *Store {
	n = max(1, min(n, s.cfg.PoolSize))
	v := *s
	v.share = make(chan struct{}, n)
	return &v
}

// ShareSize is the bound Share gave this view, or the pool size for the store itself.
func (s *Store) ShareSize() int {
	if s.share != nil {
		return cap(s.share)
	}
	return s.cfg.PoolSize
}

// Ping checks that the directory answers (the root DSE is read on a pooled connection).
func (s *Store) Ping(ctx context.Context) error {
	return s.withConn(ctx, "ping", true, func(c *ldap.Conn) error {
		_, err := c.Search(ldap.NewSearchRequest("", ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1, int(s.cfg.Timeout/time.Second), false,
			"(objectClass=*)", []string{"1.1"}, nil))
		return wrap("ping", "", err)
	})
}

// PageSize is the configured page size.
func (s *Store) PageSize() int { return s.cfg.PageSize }

// Config returns the store's configuration with the password removed.
func (s *Store) Config() Config {
	c := s.cfg
	c.BindPassword = ""
	return c
}

// BindDN is the identity the pool binds as (the origin of the bridge's own writes).
func (s *Store) BindDN() string { return s.cfg.BindDN }
