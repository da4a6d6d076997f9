package bridge

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/scimbridge/scimbridge/bridge/capture"
	"github.com/scimbridge/scimbridge/bridge/config"
	"github.com/scimbridge/scimbridge/bridge/outbound"
	"github.com/scimbridge/scimbridge/bridge/state"
	"github.com/scimbridge/scimbridge/bridge/watchdog"
	"github.com/scimbridge/scimbridge/ldapstore"
	"github.com/scimbridge/scimbridge/targets"
)

// provisioning is the outbound side of a daemon (or of a one-shot `scimbridge sync`): the
// state file, the change reader, the provisioning engine and, in the daemon, the control
// socket. One reader follows the change log; its Sink is the engine's, so every batch's work
// items commit with the cursor advance.
type provisioning struct {
	log zerolog.Logger
	// cfg is the configuration in force; guarded by mu once the daemon runs.
	cfg    *config.Config
	db     *state.DB
	store  *ldapstore.Store
	engine *outbound.Engine
	reader *capture.Reader
	reg    prometheus.Registerer
	// interval is changes.reconcile_interval ([changes] needs a restart to change).
	interval time.Duration

	// passMu serialises reconcile passes (startup, interval, sync --full, reloads).
	passMu sync.Mutex

	mu            sync.Mutex
	targets       map[string]targets.Target
	readerRunning bool
	runCtx        context.Context
	specs         []outbound.Spec
	// running is set once run has loaded the membership index and started the engine.
	running bool
	// closing refuses new goroutines once the owner waits for them (wg) before closing.
	closing bool
	wg      sync.WaitGroup

	// setMu serialises changes of the provisioner set: run's first one and reloads.
	setMu sync.Mutex

	// takeover asks run for a full reconcile of every provisioner before following the
	// change log: this instance took the lease over from another ([ha]).
	takeover bool
	// gate, with [ha], fences every request a control-socket call makes (nil: none).
	gate func() error
}

// spawn runs fn in a goroutine that the owner joins (join) before the state file and the
// targets close; once joining has begun it runs nothing and returns false.
func (pv *provisioning) spawn(fn func()) bool {
	pv.mu.Lock()
	defer pv.mu.Unlock()
	if pv.closing {
		return false
	}
	pv.wg.Add(1)
	go func() {
		defer pv.wg.Done()
		fn()
	}()
	return true
}

// join waits for every goroutine spawn started; the context they run with must be done (or
// about to be).
func (pv *provisioning) join() {
	pv.mu.Lock()
	pv.closing = true
	pv.mu.Unlock()
	pv.wg.Wait()
}

func provisioningOf(b *Bridge) *provisioning {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.prov
}

// Specs opens every provisioner's target and returns the engine's view of the configuration;
// failures are joined, each naming its provisioner, and the targets that did open are closed.
func Specs(cfg *config.Config, logger zerolog.Logger) ([]outbound.Spec, map[string]targets.Target, error) {
	var (
		specs []outbound.Spec
		errs  []error
	)
	opened := map[string]targets.Target{}
	for _, p := range cfg.Provisioners {
		tl := logger.With().Str("provisioner", p.Name).Str("type", p.Type).Logger()
		// With several instances a target's log must tell which one pushed; a lone instance
		// keeps its host name and paths to itself.
		if is, ok := p.Target.(targets.InstanceSetter); ok && cfg.HA.Enabled {
			is.SetInstance(cfg.HA.InstanceID)
		}
		t, err := p.Target.Open(p.Name, tl)
		if err != nil {
			errs = append(errs, fmt.Errorf("provisioner %q: %w", p.Name, err))
			continue
		}
		opened[p.Name] = t
		specs = append(specs, outbound.Spec{
			Name: p.Name, Type: p.Type, Target: t,
			Groups: p.Groups, NestedGroups: p.NestedGroups, Filter: p.Filter, PushGroups: p.PushGroups,
			Deprovision: p.Deprovision, MatchAttribute: p.MatchAttribute, CreateLookup: p.CreateLookup,
			RateLimit: p.RateLimit, Concurrency: p.Concurrency, MaxAttempts: p.MaxAttempts,
			MaxDeletes: p.MaxDeletes, DeleteWindow: p.DeleteWindow.Duration,
			MinRetryDelay: p.MinRetryDelay.Duration, MaxRetryDelay: p.MaxRetryDelay.Duration,
			UserMapping: p.UserMapping, GroupMapping: p.GroupMapping,
			Hash: provisionerHash(cfg, p),
		})
	}
	if len(errs) > 0 {
		closeTargets(opened)
		return nil, nil, errors.Join(errs...)
	}
	return specs, opened, nil
}

// provisionerHash identifies a provisioner's effective configuration and the directory
// settings its scope depends on (configDigest): a reload rebuilds a provisioner only when
// it changed. A rotated literal secret changes it; a rotated secret file does not (the
// target reads the file again on its next 401).
func provisionerHash(cfg *config.Config, p config.Provisioner) string {
	return configDigest(p, cfg.LDAP.Users, cfg.LDAP.Groups)
}

func closeTargets(ts map[string]targets.Target) {
	for _, t := range ts {
		if c, ok := t.(targets.Closer); ok {
			_ = c.Close()
		}
	}
}

// newProvisioning opens the state file and builds the reader and the engine for cfg.
// observeWrite, when set, is told how long each state write transaction held the file.
func newProvisioning(ctx context.Context, cfg *config.Config, store *ldapstore.Store, logger zerolog.Logger, reg prometheus.Registerer, observeWrite func(time.Duration)) (*provisioning, error) {
	db, err := state.OpenWith(cfg.State.Dir, state.Options{ObserveWrite: observeWrite})
	if err != nil {
		return nil, fmt.Errorf("bridge: %w", err)
	}
	if from := db.MigratedFrom(); from > 0 {
		logger.Info().Str("path", db.Path()).Int("from", from).Int("to", state.SchemaVersion).Msg("state file migrated to the new schema version")
	}
	pv, err := buildProvisioning(ctx, cfg, store, db, logger, reg)
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	return pv, nil
}

func buildProvisioning(ctx context.Context, cfg *config.Config, store *ldapstore.Store, db *state.DB, logger zerolog.Logger, reg prometheus.Registerer) (*provisioning, error) {
	d, err := store.Dialect(ctx)
	if err != nil {
		return nil, fmt.Errorf("bridge: reading the directory's dialect: %w", err)
	}
	scope := capture.ScopeFromConfig(cfg, d)
	engine, err := outbound.New(outbound.Options{
		State: db, Directory: store, Scope: scope, MemberAttribute: cfg.LDAP.Groups.MemberAttribute,
		Logger: logger, Registerer: reg,
	})
	if err != nil {
		return nil, err
	}
	src, err := capture.NewSource(ctx, cfg, store)
	if err != nil {
		engine.Close()
		return nil, err
	}
	reader, err := capture.New(capture.Options{
		Source: src, Directory: store, State: db, Scope: scope, Sink: engine.Sink(), Logger: logger,
		PollInterval: cfg.Changes.PollInterval.Duration, ReconcileInterval: cfg.Changes.ReconcileInterval.Duration,
		Registerer: reg,
	})
	if err != nil {
		engine.Close()
		return nil, err
	}
	return &provisioning{
		log: logger.With().Str("component", "provisioning").Logger(), cfg: cfg, db: db, store: store,
		engine: engine, reader: reader, reg: reg, targets: map[string]targets.Target{},
		interval: cfg.Changes.ReconcileInterval.Duration,
	}, nil
}

// close releases the reader's metrics, the engine's, the targets and the state file. The
// engine must have stopped (Wait).
func (pv *provisioning) close() {
	pv.reader.Close()
	pv.engine.Close()
	pv.mu.Lock()
	closeTargets(pv.targets)
	pv.targets = map[string]targets.Target{}
	pv.mu.Unlock()
	if err := pv.db.Close(); err != nil {
		pv.log.Error().Err(err).Msg("closing the state file")
	}
}

// startProvisioning is the daemon's outbound component: it opens the state file (refusing
// to start when another process holds it), serves the control socket, loads membership and
// starts the provisioners, then follows the change log until the bridge stops. With [ha]
// enabled it only starts the lease: provisioning runs on this instance while it holds it.
func startProvisioning(ctx context.Context, b *Bridge, cfg *config.Config, store *ldapstore.Store) error {
	if cfg.HA.Enabled {
		return startHA(ctx, b, cfg, store)
	}
	done, err := launchProvisioning(ctx, b, cfg, store, nil)
	if err != nil {
		return err
	}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		<-done
	}()
	return nil
}

// launchProvisioning starts the outbound side under ctx; done is closed once it stopped and
// released the state file. term is the leadership it runs under (nil without [ha]).
func launchProvisioning(ctx context.Context, b *Bridge, cfg *config.Config, store *ldapstore.Store, term *leadership) (<-chan struct{}, error) {
	pv, err := newProvisioning(ctx, cfg, store, b.logger, b.opts.Registry, func(d time.Duration) { b.metrics.stateWrite.Observe(d.Seconds()) })
	if err != nil {
		return nil, err
	}
	if term != nil {
		if err := term.prepare(pv); err != nil {
			pv.close()
			return nil, err
		}
	}
	specs, opened, err := Specs(cfg, b.logger)
	if err != nil {
		pv.close()
		return nil, fmt.Errorf("bridge: %w", err)
	}
	pv.targets, pv.specs = opened, specs
	ctl, err := pv.serveControl(b, cfg.State.Dir)
	if err != nil {
		pv.close()
		return nil, err
	}
	b.mu.Lock()
	b.prov = pv
	b.mu.Unlock()
	pv.runCtx = ctx
	// The state file's write lock is shared by every loop: held past the watchdog's bound,
	// everything behind it is stuck.
	removeCheck := watchdog.From(ctx).Check("state file write lock", func(now time.Time) error {
		if held := pv.db.WriteHeld(now); held > watchdog.From(ctx).Stall() {
			return fmt.Errorf("held for %s", held.Round(time.Second))
		}
		return nil
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() {
			b.mu.Lock()
			b.prov = nil
			b.mu.Unlock()
		}()
		defer removeCheck()
		pv.run(ctx)
		pv.join()
		_ = ctl.Close()
		if term != nil {
			term.finish()
		}
		pv.close()
	}()
	return done, nil
}

// run loads the membership index (retrying while the directory is unavailable), starts the
// engine and the reader, and runs the periodic reconcile until ctx ends; then it waits for
// the deliveries in flight.
func (pv *provisioning) run(ctx context.Context) {
	loop := watchdog.From(ctx).Loop("provisioning")
	defer loop.Stop()
	lctx := watchdog.WithLoop(ctx, loop) // for the calls this loop makes itself, not the goroutines it starts
	backoff := time.Second
	for {
		loop.Beat()
		err := pv.engine.Load(lctx)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return
		}
		pv.log.Warn().Err(err).Dur("retry_in", backoff).Msg("loading group membership failed; provisioning waits")
		loop.Wait()
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, time.Minute)
	}
	pv.setMu.Lock()
	pv.mu.Lock()
	specs := pv.specs
	pv.mu.Unlock()
	if _, err := pv.engine.SetProvisioners(specs); err != nil {
		pv.log.Error().Err(err).Msg("starting provisioners failed")
	}
	pv.engine.Start(ctx)
	pv.mu.Lock()
	pv.running = true
	pv.mu.Unlock()
	pv.setMu.Unlock()
	defer pv.engine.Wait()
	if len(specs) > 0 {
		loop.Beat()
		pv.reconcileDue(lctx)
		pv.startReader(ctx)
	}
	interval := pv.interval
	tick := time.NewTicker(min(time.Minute, interval))
	defer tick.Stop()
	for {
		loop.Wait()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			loop.Beat()
			pv.reconcileDue(lctx)
		}
	}
}

func (pv *provisioning) startReader(ctx context.Context) {
	pv.mu.Lock()
	defer pv.mu.Unlock()
	if pv.readerRunning || pv.closing {
		return
	}
	pv.readerRunning = true
	pv.wg.Add(1) // pv.mu is held: spawn cannot be used, and join cannot have begun unseen
	go func() {
		defer pv.wg.Done()
		if err := pv.reader.Run(ctx); err != nil {
			pv.log.Error().Err(err).Msg("the change reader stopped")
		}
	}()
}

// reconcileDue runs a pass for the provisioners that never had one, or whose last one is
// older than changes.reconcile_interval. After a takeover every provisioner is due until a
// pass completed: another instance led since this one last did, its outbox is out of reach
// and this id map lacks what it pushed; a full pass lists each target (rebuilding the id map
// from it) and compares the whole scope.
func (pv *provisioning) reconcileDue(ctx context.Context) {
	due := pv.engine.NeedsReconcile(pv.interval)
	if pv.takeover {
		pv.engine.AdoptListed(true)
		due = due[:0]
		for _, p := range pv.engine.Provisioners() {
			due = append(due, p.Name())
		}
		if len(due) == 0 {
			return
		}
		if err := pv.pass(ctx, due); err != nil {
			if ctx.Err() == nil {
				pv.log.Warn().Err(err).Strs("provisioners", due).Msg("reconcile after takeover failed; retrying later")
			}
			return
		}
		// Adopting is for the takeover's pass only: later passes on a target shared with
		// another directory's bridge must not take its accounts for ours.
		pv.engine.AdoptListed(false)
		pv.takeover = false
		return
	}
	if len(due) == 0 {
		return
	}
	if err := pv.pass(ctx, due); err != nil && ctx.Err() == nil {
		pv.log.Warn().Err(err).Strs("provisioners", due).Msg("reconcile failed; retrying later")
	}
}

// pass is one full reconcile for the named provisioners: list the targets and count the
// deprovisions against the breaker first, then compare every user and group in the
// directory with what was pushed (the reader's reconcile, through the engine's Sink).
func (pv *provisioning) pass(ctx context.Context, names []string) error {
	watchdog.Wait(ctx) // behind another pass (a reload, sync --full)
	pv.passMu.Lock()
	watchdog.Beat(ctx)
	defer pv.passMu.Unlock()
	start := time.Now()
	if err := pv.engine.PrepareReconcile(ctx, names); err != nil {
		return err
	}
	res, err := pv.reader.Reconcile(ctx)
	if err != nil {
		return err
	}
	if err := pv.engine.FinishReconcile(names); err != nil {
		return err
	}
	pv.log.Info().Strs("provisioners", names).Int("entries", res.Entries).Dur("took", time.Since(start)).Msg("reconcile pass queued its work")
	// The pass's target listing spares a lookup per create; drop it once its work is done.
	pv.spawn(func() {
		deadline := time.Now().Add(30 * time.Minute)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for ctx.Err() == nil && time.Now().Before(deadline) {
			if outbound.Idle(pv.engine.Progress(names, nil)) {
				break
			}
			select {
			case <-ctx.Done():
			case <-t.C:
			}
		}
		pv.engine.DropListings()
	})
	return nil
}

// SyncRequest asks for one pass now (control socket and one-shot sync).
type SyncRequest struct {
	// Provisioners restricts the pass (empty: all).
	Provisioners []string `json:"provisioners,omitempty"`
	// Full runs a full reconcile instead of reading the change log.
	Full bool `json:"full,omitempty"`
	// AllowDeletes releases the deletion breaker first.
	AllowDeletes bool `json:"allow_deletes,omitempty"`
}

// SyncEvent is one line of a sync's progress.
type SyncEvent struct {
	Message  string              `json:"message,omitempty"`
	Progress []outbound.Progress `json:"progress,omitempty"`
	Done     bool                `json:"done,omitempty"`
	Error    string              `json:"error,omitempty"`
}

// sync runs a SyncRequest, reporting progress to emit until nothing more can be delivered
// now.
func (pv *provisioning) sync(ctx context.Context, req SyncRequest, emit func(SyncEvent)) error {
	running := map[string]bool{}
	for _, p := range pv.engine.Provisioners() {
		running[p.Name()] = true
	}
	for _, n := range req.Provisioners {
		if !running[n] {
			return fmt.Errorf("no provisioner %q (configured: %s)", n, joinNames(slices.Sorted(maps.Keys(running))))
		}
	}
	names := req.Provisioners
	if len(names) == 0 {
		names = slices.Sorted(maps.Keys(running))
	}
	if len(names) == 0 {
		return errors.New("no provisioner is configured")
	}
	if req.AllowDeletes {
		released, err := pv.engine.AllowDeletes(req.Provisioners)
		if err != nil {
			return err
		}
		if len(released) == 0 {
			emit(SyncEvent{Message: "no deletion breaker was tripped"})
		}
		for _, n := range released {
			pv.log.Warn().Str("provisioner", n).Msg("deletion breaker released by scimbridge sync --allow-deletes")
			emit(SyncEvent{Message: fmt.Sprintf("provisioner %q: deletion breaker released; its deprovisions continue", n)})
		}
	}
	base := map[string]outbound.Progress{}
	for _, p := range pv.engine.Progress(names, nil) {
		base[p.Provisioner] = p
	}
	if req.Full {
		emit(SyncEvent{Message: "full reconcile: comparing the directory with what was pushed"})
		if err := pv.pass(ctx, names); err != nil {
			return err
		}
	} else {
		if _, err := pv.reader.Sync(ctx); err != nil {
			return fmt.Errorf("reading the change log: %w", err)
		}
	}
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		pr := pv.engine.Progress(names, base)
		if outbound.Idle(pr) {
			emit(SyncEvent{Progress: pr, Done: true})
			return nil
		}
		emit(SyncEvent{Progress: pr})
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

func joinNames(n []string) string {
	if len(n) == 0 {
		return "none"
	}
	return fmt.Sprintf("%q", n)
}

// prepareProvisioning prepares a new configuration for the running provisioners: it opens
// the targets of new and changed provisioners and builds them (Engine.Prepare); unchanged
// ones keep running untouched with their target. Commit swaps the set in, stops removed
// provisioners, and reconciles the new and changed ones; abort closes what was opened.
// [state] and [changes] are restart rules (reload.go).
func prepareProvisioning(b *Bridge, _, cfg *config.Config) (*reloadStep, error) {
	pv := provisioningOf(b)
	if pv == nil {
		return nil, nil
	}
	// Held until commit or abort: the set is prepared against the running one, which
	// nothing else may change meanwhile (the start of run sets it too).
	pv.setMu.Lock()
	pv.mu.Lock()
	oldSpecs := map[string]outbound.Spec{}
	for _, s := range pv.specs {
		oldSpecs[s.Name] = s
	}
	pv.mu.Unlock()
	specs, opened, err := Specs(cfg, b.logger)
	if err != nil {
		pv.setMu.Unlock()
		return nil, err
	}
	// An unchanged provisioner keeps its running target: close the one just opened.
	fresh := map[string]targets.Target{} // targets opened for new and changed provisioners
	for i, s := range specs {
		if o, ok := oldSpecs[s.Name]; ok && o.Hash == s.Hash {
			closeTargets(map[string]targets.Target{s.Name: opened[s.Name]})
			specs[i].Target = o.Target
			opened[s.Name] = o.Target
			continue
		}
		fresh[s.Name] = opened[s.Name]
	}
	set, err := pv.engine.Prepare(specs)
	if err != nil {
		closeTargets(fresh)
		pv.setMu.Unlock()
		return nil, fmt.Errorf("bridge: %w", err)
	}
	return &reloadStep{
		name: "provisioners",
		abort: func() {
			closeTargets(fresh)
			pv.setMu.Unlock()
		},
		commit: func() {
			defer pv.setMu.Unlock()
			changed, err := set.Commit()
			if err != nil {
				pv.log.Error().Err(err).Msg("starting provisioners failed")
			}
			pv.mu.Lock()
			retired := map[string]targets.Target{}
			for name, t := range pv.targets {
				if opened[name] != t {
					retired[name] = t
				}
			}
			pv.targets, pv.specs, pv.cfg = opened, specs, cfg
			ctx, running := pv.runCtx, pv.running
			pv.mu.Unlock()
			closeTargets(retired)
			// Before run has loaded the membership index, its own start reconciles whatever
			// is due: a reconcile now would decide scope from an empty index.
			if len(changed) > 0 && running {
				pv.log.Info().Strs("provisioners", changed).Msg("provisioners rebuilt; reconciling them")
				pv.startReader(ctx)
				pv.spawn(func() {
					if err := pv.pass(ctx, changed); err != nil && ctx.Err() == nil {
						pv.log.Warn().Err(err).Msg("reconcile after reload failed; retrying later")
					}
				})
			}
		},
	}, nil
}

// ProvisioningStatus is the outbound part of Status.
type ProvisioningStatus struct {
	Changes      *ChangesStatus    `json:"changes,omitempty"`
	Provisioners []outbound.Status `json:"provisioners"`
}

// ChangesStatus describes the change reader.
type ChangesStatus struct {
	Source        string    `json:"source,omitempty"`
	Cursor        string    `json:"cursor,omitempty"`
	CursorUpdated time.Time `json:"cursor_updated,omitzero"`
	LastPoll      time.Time `json:"last_poll,omitzero"`
	LagSeconds    float64   `json:"lag_seconds"`
	LastReconcile time.Time `json:"last_reconcile,omitzero"`
	LastError     string    `json:"last_error,omitempty"`
}

func provisioningStatus(_ context.Context, b *Bridge) (string, any) {
	pv := provisioningOf(b)
	if pv == nil {
		return "", nil
	}
	return "outbound", pv.status()
}

func (pv *provisioning) status() ProvisioningStatus {
	st := pv.reader.Stats()
	cs := &ChangesStatus{
		Source: st.Source, Cursor: st.Cursor, LastPoll: st.LastPoll, LagSeconds: st.Lag.Seconds(),
		LastReconcile: st.LastReconcile, LastError: st.LastError,
	}
	_ = pv.db.View(func(tx *state.Tx) error {
		if c, ok, err := tx.Cursor("changes"); err == nil && ok {
			cs.CursorUpdated = c.Updated
			if cs.Cursor == "" {
				cs.Cursor = c.Value
			}
		}
		return nil
	})
	ps := pv.engine.Status()
	if ps == nil {
		ps = []outbound.Status{}
	}
	return ProvisioningStatus{Changes: cs, Provisioners: ps}
}
