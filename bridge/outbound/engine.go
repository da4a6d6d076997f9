package outbound

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/scimbridge/scimbridge/bridge/capture"
	"github.com/scimbridge/scimbridge/bridge/state"
	"github.com/scimbridge/scimbridge/bridge/watchdog"
	"github.com/scimbridge/scimbridge/ldapstore"
	"github.com/scimbridge/scimbridge/mapping"
)

// Directory is what the engine reads from the directory. *ldapstore.Store implements it.
type Directory interface {
	// Walk streams the entries matching q; cancelling ctx stops it with an error.
	Walk(ctx context.Context, q ldapstore.Search, fn func(mapping.Entry) error) error
	// FindByID reads the entry with the stable id below q.Base matching q.Filter;
	// ldapstore.ErrNotFound when there is none.
	FindByID(ctx context.Context, q ldapstore.Search, idAttr, id string) (mapping.Entry, error)
}

var _ Directory = (*ldapstore.Store)(nil)

// Options are an Engine's dependencies.
type Options struct {
	State     *state.DB
	Directory Directory
	// Scope says where users and groups live and which attribute is the stable id (the
	// change reader's scope).
	Scope capture.Scope
	// MemberAttribute is the groups' member attribute. Defaults to "member".
	MemberAttribute string
	Logger          zerolog.Logger
	// Registerer receives the engine's metrics; nil registers none.
	Registerer prometheus.Registerer
	// DrainTimeout is how long deliveries in flight may take to finish once the engine is
	// stopped. Defaults to 10s.
	DrainTimeout time.Duration
	// ReconcileAhead is how many keys a provisioner may have pending before a reconcile
	// pass waits for its deliveries (throttle.go). Defaults to 4096.
	ReconcileAhead int
}

// Engine runs the provisioners: its Sink turns change batches into outbox items, its workers
// deliver them.
type Engine struct {
	// adoptListed: reconcile passes rebuild the id map from target listings (rebuild.go).
	adoptListed atomic.Bool

	o   Options
	log zerolog.Logger
	idx *index
	m   *metrics

	mu      sync.RWMutex
	provs   []*Provisioner
	runCtx  context.Context
	deliver context.Context
	stopped bool

	commits chan *completion
	// running counts the goroutines Start started (committer, stopper, gauges): Wait joins them.
	running sync.WaitGroup
	loaded  bool
}

// New checks the options and builds an Engine; Load, then SetProvisioners and Start, bring
// it up.
func New(o Options) (*Engine, error) {
	var errs []error
	if o.State == nil {
		errs = append(errs, errors.New("outbound: Options.State is required"))
	}
	if o.Directory == nil {
		errs = append(errs, errors.New("outbound: Options.Directory is required"))
	}
	if o.Scope.IDAttribute == "" {
		errs = append(errs, errors.New("outbound: Options.Scope.IDAttribute is required"))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = 10 * time.Second
	}
	if o.ReconcileAhead <= 0 {
		o.ReconcileAhead = defaultReconcileAhead
	}
	e := &Engine{
		o:       o,
		log:     o.Logger.With().Str("component", "outbound").Logger(),
		idx:     newIndex(o.MemberAttribute),
		m:       newMetrics(),
		commits: make(chan *completion, 4096),
	}
	if o.Registerer != nil {
		if err := e.m.register(o.Registerer); err != nil {
			return nil, fmt.Errorf("outbound: registering metrics: %w", err)
		}
	}
	return e, nil
}

// Close unregisters the engine's metrics.
func (e *Engine) Close() {
	if e.o.Registerer != nil {
		e.m.unregister(e.o.Registerer)
	}
}

func (e *Engine) usersSearch() ldapstore.Search {
	q := e.o.Scope.Users
	q.Scope = ldapstore.ScopeSub
	if q.Filter == "" {
		q.Filter = "(objectClass=*)"
	}
	q.Attrs = []string{"*", e.o.Scope.IDAttribute}
	return q
}

func (e *Engine) groupsSearch() ldapstore.Search {
	q := e.o.Scope.Groups
	q.Scope = ldapstore.ScopeSub
	if q.Filter == "" {
		q.Filter = "(objectClass=*)"
	}
	q.Attrs = []string{"*", e.o.Scope.IDAttribute}
	return q
}

// Load reads group membership from the directory and, from the state file, the users the
// change reader knows that those groups list. It fails, rather than loading part, when the
// directory cannot be read: scope decided from a partial view would deprovision people. It
// also checks the state file's DN index of those users (userdns.go) and writes what it lacks.
func (e *Engine) Load(ctx context.Context) error {
	idx := newIndex(e.o.MemberAttribute)
	if err := loadIndex(ctx, e.o.Directory, e.groupsSearch(), e.o.Scope.IDAttribute, idx); err != nil {
		return err
	}
	known, missing := 0, ""
	err := e.o.State.View(func(tx *state.Tx) error {
		ids, err := tx.IDMap(directoryIDMap)
		if err != nil {
			return err
		}
		dns, err := userDNBucket(tx)
		if err != nil {
			return err
		}
		return ids.ForEach(func(id string, r state.IDEntry) error {
			if r.Kind != string(capture.ObjectUser) {
				return nil
			}
			known++
			n := normDN(r.DN)
			idx.trackListed(id, n)
			if missing == "" && string(dns.Get([]byte(n))) != id {
				if _, held, err := holderOf(ids, dns, n); err != nil {
					return err
				} else if !held {
					missing = id
				}
			}
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("outbound: loading users: %w", err)
	}
	if missing != "" {
		written, err := e.repairUserDNs(missing)
		if err != nil {
			return err
		}
		e.log.Info().Int("entries", written).Msg("DN index of the directory's users completed from the id map")
	}
	e.mu.Lock()
	e.idx, e.loaded = idx, true
	e.mu.Unlock()
	g, u := idx.size()
	e.log.Info().Int("groups", g).Int("users", known).Int("users_in_groups", u).Msg("membership index loaded")
	return nil
}

func loadIndex(ctx context.Context, dir Directory, q ldapstore.Search, idAttr string, idx *index) error {
	if q.Base == "" {
		return nil
	}
	err := dir.Walk(ctx, q, func(en mapping.Entry) error {
		id := en.First(idAttr)
		if id == "" {
			return fmt.Errorf("group %q has no %s", en.DN, idAttr)
		}
		return idx.putGroup(id, en, nil)
	})
	if err != nil {
		return fmt.Errorf("outbound: loading groups: %w", err)
	}
	return nil
}

// Provisioners returns the running provisioners in configuration order.
func (e *Engine) Provisioners() []*Provisioner {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return slices.Clone(e.provs)
}

// Provisioner returns the provisioner called name.
func (e *Engine) Provisioner(name string) (*Provisioner, bool) {
	for _, p := range e.Provisioners() {
		if p.spec.Name == name {
			return p, true
		}
	}
	return nil, false
}

// SetProvisioners makes specs the running set (Prepare, then Commit). It returns the names
// of the new and changed provisioners, which need a reconcile.
func (e *Engine) SetProvisioners(specs []Spec) ([]string, error) {
	ps, err := e.Prepare(specs)
	if err != nil {
		return nil, err
	}
	return ps.Commit()
}

// ProvisionerSet is a set of provisioners built by Prepare and not running yet.
type ProvisionerSet struct {
	e       *Engine
	next    []*Provisioner
	fresh   []*Provisioner
	changed []string
}

// Prepare builds the provisioners of specs that are new or whose Hash changed (those whose
// Hash is unchanged are the running ones): templates compiled, limits set. It changes
// nothing; an error names every provisioner that cannot be built. Commit makes the set the
// running one.
func (e *Engine) Prepare(specs []Spec) (*ProvisionerSet, error) {
	e.mu.RLock()
	old := map[string]*Provisioner{}
	for _, p := range e.provs {
		old[p.spec.Name] = p
	}
	e.mu.RUnlock()
	ps := &ProvisionerSet{e: e}
	var errs []error
	for _, s := range specs {
		if p, ok := old[s.Name]; ok && p.spec.Hash == s.Hash && s.Hash != "" {
			ps.next = append(ps.next, p)
			continue
		}
		p, err := e.newProvisioner(s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		ps.next = append(ps.next, p)
		ps.fresh = append(ps.fresh, p)
		ps.changed = append(ps.changed, s.Name)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return ps, nil
}

// Changed names the new and changed provisioners of the set.
func (ps *ProvisionerSet) Changed() []string { return ps.changed }

// Commit makes the set the running one: provisioners left out stop (their state stays in
// the file), new and changed ones load their state and start. It returns the names of the
// new and changed provisioners, which need a reconcile; an error is a state file that could
// not be read for one of them (the others run).
func (ps *ProvisionerSet) Commit() ([]string, error) {
	e := ps.e
	e.mu.RLock()
	old := slices.Clone(e.provs)
	e.mu.RUnlock()
	next, fresh := ps.next, ps.fresh
	keep := map[*Provisioner]bool{}
	for _, p := range next {
		keep[p] = true
	}
	var retired []*Provisioner
	for _, p := range old {
		if !keep[p] {
			retired = append(retired, p)
		}
	}
	for _, p := range retired {
		p.stop()
		e.m.forget(p.spec.Name)
	}
	if len(retired) > 0 {
		// What the retired workers delivered must be in the file before their successors
		// read it.
		e.flush()
	}
	// Load and swap inside one write transaction: no change batch commits in between, so
	// every item the Sink wrote is either in the file the newcomers load or written by a
	// Sink that already sees them.
	var (
		runCtx, deliverCtx context.Context
		errs               []error
	)
	err := e.o.State.Update(func(tx *state.Tx) error {
		for _, p := range fresh {
			if err := p.loadTx(tx); err != nil {
				errs = append(errs, fmt.Errorf("outbound: provisioner %q: %w", p.spec.Name, err))
			}
		}
		if len(errs) > 0 {
			// The old ones are stopped already: run what loaded.
			next = slices.DeleteFunc(next, func(p *Provisioner) bool {
				return slices.Contains(fresh, p) && !p.loaded
			})
			fresh = slices.DeleteFunc(fresh, func(p *Provisioner) bool { return !p.loaded })
		}
		e.mu.Lock()
		e.provs = next
		runCtx, deliverCtx = e.runCtx, e.deliver
		e.mu.Unlock()
		return nil
	})
	if err != nil {
		errs = append(errs, err)
	}
	for _, p := range fresh {
		_, missing := p.scopeGroups()
		p.noteScope(missing)
		e.m.breaker.WithLabelValues(p.spec.Name, "deletes").Set(b2f(p.breaker.Tripped))
		e.refreshDeadGauge(p)
		if p.breaker.Tripped {
			p.log.Error().Str("reason", p.breaker.Reason).Msg("deletion breaker is tripped: provisioner stopped until an admin runs scimbridge sync --allow-deletes")
		}
		if runCtx != nil && runCtx.Err() == nil {
			p.start(runCtx, deliverCtx)
		}
	}
	e.refreshGauges()
	return ps.changed, errors.Join(errs...)
}

// flush waits until every completion handed to the committer so far is committed.
func (e *Engine) flush() {
	e.mu.RLock()
	running := e.runCtx != nil && !e.stopped
	e.mu.RUnlock()
	if !running {
		return
	}
	done := make(chan struct{})
	e.commits <- &completion{barrier: done}
	<-done
}

// Start runs the workers and the committer until ctx ends. Deliveries in flight then get
// DrainTimeout to finish; Wait returns when everything has stopped and committed.
func (e *Engine) Start(ctx context.Context) {
	deliverCtx, cancelDeliver := context.WithCancel(context.WithoutCancel(ctx))
	e.mu.Lock()
	e.runCtx, e.deliver = ctx, deliverCtx
	provs := slices.Clone(e.provs)
	e.mu.Unlock()
	e.running.Add(3)
	go func() {
		defer e.running.Done()
		loop := watchdog.From(ctx).Loop("outbound committer")
		defer loop.Stop()
		e.committer(loop)
	}()
	for _, p := range provs {
		p.start(ctx, deliverCtx)
	}
	go func() {
		defer e.running.Done()
		<-ctx.Done()
		t := time.AfterFunc(e.o.DrainTimeout, cancelDeliver)
		for _, p := range e.Provisioners() {
			p.stop()
		}
		t.Stop()
		cancelDeliver()
		e.mu.Lock()
		e.stopped = true
		e.mu.Unlock()
		close(e.commits)
	}()
	go func() {
		defer e.running.Done()
		e.gaugeLoop(ctx)
	}()
}

// Wait blocks until a started engine has stopped, committed what its workers delivered, and
// every goroutine Start started has ended.
func (e *Engine) Wait() { e.running.Wait() }

func (e *Engine) gaugeLoop(ctx context.Context) {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			e.refreshGauges()
		}
	}
}

func (e *Engine) refreshGauges() {
	now := time.Now()
	for _, p := range e.Provisioners() {
		pending, _, _ := p.q.counts(now)
		e.m.depth.WithLabelValues(p.spec.Name).Set(float64(pending))
		st, _, _ := p.health.state(now)
		e.m.breaker.WithLabelValues(p.spec.Name, "target").Set(b2f(st != CircuitClosed))
	}
}
