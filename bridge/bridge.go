package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/scimbridge/scimbridge/bridge/config"
	"github.com/scimbridge/scimbridge/bridge/lease"
	"github.com/scimbridge/scimbridge/bridge/watchdog"
	"github.com/scimbridge/scimbridge/ldapstore"
)

// shutdownTimeout bounds Stop: in-flight SCIM requests and deliveries get this long to finish
// before connections are closed. systemd's TimeoutStopSec must be larger (the unit says 45s).
const shutdownTimeout = 30 * time.Second

// Options are a Bridge's dependencies.
type Options struct {
	Config *config.Config
	Logger zerolog.Logger
	// Registry receives every metric; a fresh one per Bridge keeps tests independent.
	Registry *prometheus.Registry
	// Notify reports lifecycle states to the service manager (systemd's sd_notify); nil
	// means nobody listens.
	Notify func(state string) bool
	// Watchdog is the service manager's watchdog timeout (systemd's WatchdogSec=, see
	// WatchdogTimeout); 0 turns the watchdog off. While it is on, Notify gets "WATCHDOG=1"
	// every half of it, as long as no main loop has been stuck for longer than it.
	Watchdog time.Duration
	// Log, when set, is where Logger writes: a reload applies [log] to it. Without it a
	// change of [log] needs a restart.
	Log *LogOutput
}

// Bridge is the daemon: the directory pool, the admin listener, the inbound SCIM server and
// the provisioners.
type Bridge struct {
	opts    Options
	logger  zerolog.Logger
	metrics *metrics

	mu      sync.Mutex
	cfg     *config.Config
	store   *ldapstore.Store
	servers []*http.Server
	ready   bool
	started bool
	stopped bool
	done    chan struct{}
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	// prov is the outbound side while it runs (nil without provisioners or after Stop).
	prov *provisioning
	// elector keeps the [ha] lease (nil without [ha]).
	elector *lease.Elector
	// in is the SCIM server while it runs (nil when inbound is off, or after Stop).
	in *inboundComponent

	// adminAddr and inboundAddr are the bound listener addresses (useful with port 0).
	adminAddr, inboundAddr string

	// watchdog watches the main loops (nil when Options.Watchdog is 0).
	watchdog *watchdog.Monitor
	// reloadMu serialises reloads; reload (under mu) is how the last one went.
	reloadMu sync.Mutex
	reload   ReloadStatus
	// admin guards /metrics and /status with admin.token_file's token.
	admin adminAuth
}

// New checks the options and builds a Bridge; Start brings it up.
func New(o Options) (*Bridge, error) {
	var errs []error
	if o.Config == nil {
		errs = append(errs, errors.New("bridge: Options.Config is required"))
	}
	if o.Registry == nil {
		errs = append(errs, errors.New("bridge: Options.Registry is required"))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if o.Notify == nil {
		o.Notify = func(string) bool { return false }
	}
	o.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Every line, audit events included, names the instance: with [ha] several share a log
	// pipeline and a directory.
	logger := o.Logger.With().Str("instance", o.Config.HA.InstanceID).Logger()
	b := &Bridge{opts: o, logger: logger, cfg: o.Config, metrics: newMetrics(o.Registry), done: make(chan struct{})}
	if o.Watchdog > 0 {
		b.watchdog = watchdog.New(o.Watchdog)
	}
	o.Registry.MustRegister(newStateFileCollector(b))
	b.metrics.reloadOK.Set(1)
	b.metrics.reloadTime.SetToCurrentTime()
	return b, nil
}

// Start binds the admin listener, connects to the directory (retrying with backoff until ctx
// ends: a directory that is down at boot delays readiness, it does not crash the daemon),
// starts the inbound server and provisioners, and tells systemd READY=1.
func (b *Bridge) Start(ctx context.Context) error {
	b.mu.Lock()
	if b.started {
		b.mu.Unlock()
		return errors.New("bridge: already started")
	}
	b.started = true
	cfg := b.cfg
	b.mu.Unlock()

	runCtx, cancel := context.WithCancel(context.Background())
	b.cancel = cancel
	// The components find the watchdog in their context and register their loops with it.
	runCtx = watchdog.WithMonitor(runCtx, b.watchdog)
	if b.watchdog != nil {
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			b.watchdog.Run(runCtx, b.opts.Watchdog/2, b.opts.Notify, b.logger)
		}()
	}

	b.admin.set(cfg)
	if cfg.Admin.Listen != "" {
		l, err := net.Listen("tcp", cfg.Admin.Listen)
		if err != nil {
			cancel()
			return fmt.Errorf("bridge: admin.listen %s: %w", cfg.Admin.Listen, err)
		}
		b.adminAddr = l.Addr().String()
		srv := &http.Server{Handler: b.adminHandler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 60 * time.Second}
		b.serve(srv, l, "admin")
		b.logger.Info().Str("listen", b.adminAddr).Msg("admin listener started")
	}

	store, err := b.connect(ctx, cfg)
	if err != nil {
		cancel()
		b.shutdownServers(context.Background())
		return err
	}
	if err := ApplyDialect(ctx, cfg, store); err != nil {
		cancel()
		b.shutdownServers(context.Background())
		store.Close()
		return err
	}
	b.mu.Lock()
	b.store = store
	b.mu.Unlock()

	// Everything but the SCIM server shares one part of the pool (the SCIM server takes its
	// own view in startInbound): see poolShares.
	_, rest := poolShares(cfg.LDAP.PoolSize)
	if err := b.startComponents(runCtx, cfg, store.Share(rest)); err != nil {
		cancel()
		b.shutdownServers(context.Background())
		store.Close()
		return err
	}
	b.mu.Lock()
	b.ready = true
	b.mu.Unlock()
	b.opts.Notify("READY=1\nSTATUS=running")
	b.logger.Info().Msg("scimbridge ready")
	return nil
}

// connect opens the directory pool, retrying with capped backoff while it is unavailable.
// Wrong credentials or a bad URL are not retried: they will not fix themselves.
func (b *Bridge) connect(ctx context.Context, cfg *config.Config) (*ldapstore.Store, error) {
	backoff := 500 * time.Millisecond
	loop := b.watchdog.Loop("directory connect")
	defer loop.Stop()
	for {
		loop.Beat()
		store, err := ldapstore.Open(ctx, LDAPConfig(cfg), b.logger.With().Str("component", "ldap").Logger(), ldapstore.WithObserver(b.metrics.observeLDAP))
		if err == nil {
			return store, nil
		}
		if !errors.Is(err, ldapstore.ErrUnavailable) {
			return nil, fmt.Errorf("bridge: connecting to the directory: %w", err)
		}
		b.logger.Warn().Err(err).Dur("retry_in", backoff).Msg("directory unavailable at start; retrying")
		b.opts.Notify("STATUS=waiting for the directory")
		loop.Wait()
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("bridge: connecting to the directory: %w", context.Cause(ctx))
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 30*time.Second)
	}
}

// LDAPConfig translates the configuration's [ldap] section for ldapstore.
func LDAPConfig(cfg *config.Config) ldapstore.Config {
	l := cfg.LDAP
	return ldapstore.Config{
		URLs: l.URLs, StartTLS: l.StartTLS, CAFile: l.CAFile, InsecureSkipVerify: l.InsecureSkipVerify,
		BindDN: l.BindDN, BindPassword: l.BindPassword.Reveal(), PoolSize: l.PoolSize,
		DialTimeout: l.DialTimeout.Duration, Timeout: l.Timeout.Duration, PageSize: l.PageSize,
		Dialect: ldapstore.Dialect(l.Dialect), RangeSize: l.RangeSize,
	}
}

// startComponents starts what runs on top of the directory pool. Each component adds itself
// in its own file (inbound.go, provision.go) through this one place.
func (b *Bridge) startComponents(ctx context.Context, cfg *config.Config, store *ldapstore.Store) error {
	for _, start := range componentStarters {
		if err := start(ctx, b, cfg, store); err != nil {
			return err
		}
	}
	return nil
}

// componentStarters are called in order by Start.
var componentStarters = []func(ctx context.Context, b *Bridge, cfg *config.Config, store *ldapstore.Store) error{startInbound, startProvisioning}

func (b *Bridge) serve(srv *http.Server, l net.Listener, name string) {
	b.mu.Lock()
	b.servers = append(b.servers, srv)
	b.mu.Unlock()
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		var err error
		if srv.TLSConfig != nil {
			err = srv.ServeTLS(l, "", "")
		} else {
			err = srv.Serve(l)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			b.logger.Error().Err(err).Str("server", name).Msg("listener failed")
		}
	}()
}

// Config is the configuration in force.
func (b *Bridge) Config() *config.Config {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cfg
}

// AdminAddr is the admin listener's bound address ("" when off).
func (b *Bridge) AdminAddr() string { return b.adminAddr }

// InboundAddr is the SCIM listener's bound address ("" when off).
func (b *Bridge) InboundAddr() string { return b.inboundAddr }

// Store is the directory pool (nil before Start).
func (b *Bridge) Store() *ldapstore.Store {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.store
}

// Stop drains and stops everything. It is idempotent and bounded by shutdownTimeout (or ctx,
// whichever ends first); in-flight requests get that long to finish.
func (b *Bridge) Stop(ctx context.Context) error {
	b.mu.Lock()
	if b.stopped {
		b.mu.Unlock()
		return nil
	}
	b.stopped = true
	b.ready = false
	b.mu.Unlock()
	b.opts.Notify("STOPPING=1")
	ctx, cancel := context.WithTimeout(ctx, shutdownTimeout)
	defer cancel()
	b.shutdownServers(ctx)
	if b.cancel != nil {
		b.cancel()
	}
	waited := make(chan struct{})
	go func() { b.wg.Wait(); close(waited) }()
	var err error
	select {
	case <-waited:
	case <-ctx.Done():
		err = fmt.Errorf("bridge: stop: %w", ctx.Err())
	}
	if s := b.Store(); s != nil {
		s.Close()
	}
	close(b.done)
	b.logger.Info().Msg("scimbridge stopped")
	return err
}

func (b *Bridge) shutdownServers(ctx context.Context) {
	b.mu.Lock()
	servers := b.servers
	b.mu.Unlock()
	for _, s := range servers {
		_ = s.Shutdown(ctx)
	}
}

func (b *Bridge) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		ready, store := b.ready, b.store
		b.mu.Unlock()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !ready || store == nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("starting\n"))
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		if err := store.Ping(ctx); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("directory unavailable\n"))
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	auth := &b.admin
	mux.Handle("GET /metrics", auth.require(promhttp.HandlerFor(b.opts.Registry, promhttp.HandlerOpts{Registry: b.opts.Registry})))
	mux.Handle("GET /status", auth.require(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(b.Status(r.Context()))
	})))
	return mux
}

// Status is what `scimbridge status` and the admin /status show.
type Status struct {
	Ready     bool            `json:"ready"`
	Directory DirectoryStatus `json:"directory"`
	// Reload is how the last reload went (absent before the first).
	Reload *ReloadStatus  `json:"reload,omitempty"`
	Extra  map[string]any `json:"components,omitempty"`
}

// DirectoryStatus describes the directory connection.
type DirectoryStatus struct {
	URLs    []string `json:"urls"`
	Dialect string   `json:"dialect,omitempty"`
	Vendor  string   `json:"vendor,omitempty"`
	Error   string   `json:"error,omitempty"`
}

// statusProviders add a component's section to Status.
var statusProviders = []func(ctx context.Context, b *Bridge) (string, any){inboundStatus, provisioningStatus, haStatus}

// Status reports the daemon's state; it never includes secrets.
func (b *Bridge) Status(ctx context.Context) Status {
	b.mu.Lock()
	cfg, store, ready, reload := b.cfg, b.store, b.ready, b.reload
	b.mu.Unlock()
	st := Status{Ready: ready, Directory: DirectoryStatus{URLs: cfg.LDAP.URLs}}
	if !reload.At.IsZero() {
		st.Reload = &reload
	}
	if store != nil {
		if dse, err := store.RootDSE(ctx); err == nil {
			st.Directory.Dialect, st.Directory.Vendor = string(dse.Dialect), dse.VendorName
		}
		if err := store.Ping(ctx); err != nil {
			st.Directory.Error = "unavailable"
		}
	}
	for _, p := range statusProviders {
		if name, v := p(ctx, b); name != "" {
			if st.Extra == nil {
				st.Extra = map[string]any{}
			}
			st.Extra[name] = v
		}
	}
	return st
}

// Done is closed when Stop has finished.
func (b *Bridge) Done() <-chan struct{} { return b.done }
