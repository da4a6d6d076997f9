package bridge

import (
	"context"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/scimbridge/scimbridge/bridge/config"
	"github.com/scimbridge/scimbridge/bridge/inbound"
	"github.com/scimbridge/scimbridge/ldapstore"
)

// maxReadHeaderTimeout bounds the time a client may take to send its request headers, which is
// what a slowloris attack stretches; the body gets inbound.read_timeout.
const maxReadHeaderTimeout = 10 * time.Second

// inboundComponent is the running SCIM server of one Bridge.
type inboundComponent struct {
	srv  *inbound.Server
	cert atomic.Pointer[tls.Certificate]
}

// InboundConfig translates the configuration's [inbound] and [ldap.users]/[ldap.groups]
// sections for the inbound server. Token files must have been read (config.LoadSecrets).
func InboundConfig(cfg *config.Config) (inbound.Config, error) {
	in, u, g := cfg.Inbound, cfg.LDAP.Users, cfg.LDAP.Groups
	out := inbound.Config{
		BasePath: in.BasePath, MaxBodyBytes: in.MaxBodyBytes,
		Users: inbound.Users{
			BaseDN: u.BaseDN, ObjectClasses: u.ObjectClasses, RDNAttribute: u.RDNAttribute, Filter: u.Filter,
			ScopeFilter: in.ScopeFilter.Users, IDAttribute: u.IDAttribute,
		},
		Groups: inbound.Groups{
			BaseDN: g.BaseDN, ObjectClasses: g.ObjectClasses, RDNAttribute: g.RDNAttribute, Filter: g.Filter,
			ScopeFilter: in.ScopeFilter.Groups, MemberAttribute: g.MemberAttribute,
		},
		UserAttributes:  in.UserAttributes,
		GroupAttributes: in.GroupAttributes,
		Disable:         in.Disable, DisabledBaseDN: in.DisabledBaseDN,
		Protect:     inbound.Protection{BindDN: cfg.LDAP.BindDN, DNs: in.ProtectedDNs, Groups: in.ProtectedGroups},
		ManagedOnly: in.ManagedOnly, AdoptExisting: in.AdoptExisting,
		MaxMembers:     in.MaxMembersPerRequest,
		AllowSensitive: in.AllowSensitiveAttributes,
		MaxConcurrent:  in.MaxConcurrentRequests, MaxQueued: in.MaxQueuedRequests,
		// A request that waited half the write timeout could not be answered in time anyway.
		QueueTimeout:            in.WriteTimeout.Duration / 2,
		PublicURL:               in.PublicURL,
		AllowCleartextPasswords: in.AllowCleartextPasswords,
	}
	if out.MaxQueued == 0 {
		out.MaxQueued = -1 // max_queued_requests = 0: no queue
	}
	for _, url := range cfg.LDAP.URLs {
		if !config.ProtectedTransport(url, cfg.LDAP.StartTLS) {
			out.CleartextDirectory = true
		}
	}
	var errs []error
	for _, p := range in.TrustedProxies {
		pfx, err := config.ParseProxy(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("inbound.trusted_proxies: %w", err))
			continue
		}
		out.TrustedProxies = append(out.TrustedProxies, pfx)
	}
	for i, t := range in.Tokens {
		sum, err := hex.DecodeString(t.SHA256)
		if err != nil || len(sum) != 32 {
			errs = append(errs, fmt.Errorf("inbound.token[%d] %q: no SHA-256 (is its file readable?)", i, t.Name))
			continue
		}
		tok := inbound.Token{Name: t.Name}
		copy(tok.SHA256[:], sum)
		out.Tokens = append(out.Tokens, tok)
	}
	out.Extensions = in.MappingExtensions()
	return out, errors.Join(errs...)
}

// startInbound starts the SCIM server on [inbound] listen, with TLS when the certificate and
// key are set, every HTTP timeout and the header limit from the configuration.
func startInbound(ctx context.Context, b *Bridge, cfg *config.Config, store *ldapstore.Store) error {
	if !cfg.Inbound.Enabled {
		return nil
	}
	icfg, err := InboundConfig(cfg)
	if err != nil {
		return fmt.Errorf("bridge: %w", err)
	}
	logger := b.logger.With().Str("component", "inbound").Logger()
	// The SCIM side's own share of the pool: heavy SCIM requests can never take the
	// connections the change reader and the provisioners need (see poolShares).
	share, _ := poolShares(cfg.LDAP.PoolSize)
	srv, err := inbound.New(ctx, inbound.Options{Config: icfg, Directory: store.Share(share), Logger: logger, Registry: b.opts.Registry})
	if err != nil {
		return fmt.Errorf("bridge: %w", err)
	}
	c := &inboundComponent{srv: srv}
	in := cfg.Inbound
	hs := &http.Server{
		Handler:           srv,
		ReadHeaderTimeout: min(in.ReadTimeout.Duration, maxReadHeaderTimeout),
		ReadTimeout:       in.ReadTimeout.Duration,
		WriteTimeout:      in.WriteTimeout.Duration,
		IdleTimeout:       in.IdleTimeout.Duration,
		MaxHeaderBytes:    in.MaxHeaderBytes,
		ErrorLog:          log.New(logger, "", 0),
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	if in.TLSCertFile != "" {
		if err := c.loadCert(in); err != nil {
			srv.Close()
			return err
		}
		b.observeCert(c)
		hs.TLSConfig = &tls.Config{
			MinVersion:     tls.VersionTLS12,
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return c.cert.Load(), nil },
		}
	}
	l, err := net.Listen("tcp", in.Listen)
	if err != nil {
		srv.Close()
		return fmt.Errorf("bridge: inbound.listen %s: %w", in.Listen, err)
	}
	b.inboundAddr = l.Addr().String()
	useTLS := hs.TLSConfig != nil // read before serving: the server then owns hs
	b.serve(hs, l, "inbound")
	b.mu.Lock()
	b.in = c
	b.mu.Unlock()
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		<-ctx.Done()
		b.mu.Lock()
		b.in = nil
		b.mu.Unlock()
		srv.Close()
	}()
	logger.Info().Str("listen", b.inboundAddr).Str("base_path", icfg.BasePath).Bool("tls", useTLS).Msg("inbound scim server started")
	return nil
}

// inboundOf returns the bridge's running SCIM server (nil when off or stopped).
func inboundOf(b *Bridge) *inboundComponent {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.in
}

func (c *inboundComponent) loadCert(in config.Inbound) error {
	cert, err := readCert(in)
	if err != nil {
		return err
	}
	c.cert.Store(cert)
	return nil
}

// observeCert publishes the expiry of the certificate in use (the alerting rules warn before it).
func (b *Bridge) observeCert(c *inboundComponent) {
	if cert := c.cert.Load(); cert != nil && cert.Leaf != nil {
		b.metrics.certExpiry.Set(float64(cert.Leaf.NotAfter.Unix()))
	}
}

func readCert(in config.Inbound) (*tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(in.TLSCertFile, in.TLSKeyFile)
	if err != nil {
		return nil, fmt.Errorf("bridge: inbound.tls_cert_file, inbound.tls_key_file: %w", err)
	}
	return &cert, nil
}

// poolShares splits the directory pool between the SCIM server and everything else (the
// change reader, the provisioners, /readyz): each may hold all connections but a reserve of a
// quarter of the pool (at least one), which stays for the other. Neither can starve the other,
// and either can use most of the pool while the other is idle. A pool of one cannot be split.
func poolShares(poolSize int) (inbound, rest int) {
	if poolSize < 2 {
		return 1, 1
	}
	reserve := max(1, poolSize/4)
	return poolSize - reserve, poolSize - reserve
}

// reloadTimeout bounds what preparing a reload reads from the directory (the protected groups).
const reloadTimeout = 30 * time.Second

// prepareInbound checks a new configuration for the running SCIM server completely — tokens,
// limits, bases, fences (the protected groups are read), attribute maps, a renewed TLS
// certificate (read now, so that an unreadable one fails the reload) — and returns the step
// that applies all of it at once. Nothing changes before commit. Listen addresses, timeouts
// and switching TLS on or off are restart rules (reload.go).
func prepareInbound(b *Bridge, _, cfg *config.Config) (*reloadStep, error) {
	c := inboundOf(b)
	if c == nil || !cfg.Inbound.Enabled {
		return nil, nil
	}
	icfg, err := InboundConfig(cfg)
	if err != nil {
		return nil, err
	}
	var cert *tls.Certificate
	if cfg.Inbound.TLSCertFile != "" {
		if cert, err = readCert(cfg.Inbound); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), reloadTimeout)
	defer cancel()
	commitSrv, err := c.srv.Prepare(ctx, icfg)
	if err != nil {
		return nil, fmt.Errorf("bridge: inbound: %w", err)
	}
	return &reloadStep{name: "inbound", commit: func() {
		if cert != nil {
			c.cert.Store(cert)
			b.observeCert(c)
		}
		commitSrv()
	}}, nil
}

// inboundStatus is the inbound section of /status.
func inboundStatus(_ context.Context, b *Bridge) (string, any) {
	if inboundOf(b) == nil {
		return "", nil
	}
	b.mu.Lock()
	cfg := b.cfg
	b.mu.Unlock()
	names := make([]string, 0, len(cfg.Inbound.Tokens))
	for _, t := range cfg.Inbound.Tokens {
		names = append(names, t.Name)
	}
	return "inbound", map[string]any{
		"listen": b.inboundAddr, "base_path": cfg.Inbound.BasePath, "tls": cfg.Inbound.TLSCertFile != "", "tokens": names,
	}
}
