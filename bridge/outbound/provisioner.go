package outbound

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/scimbridge/scimbridge/bridge/state"
	"github.com/scimbridge/scimbridge/bridge/watchdog"
	"github.com/scimbridge/scimbridge/mapping"
	"github.com/scimbridge/scimbridge/targets"
)

// Create modes (Spec.CreateLookup).
const (
	CreateByLookup   = "lookup"
	CreateByConflict = "conflict"
)

// Deprovision modes.
const (
	DeprovisionDisable = "disable"
	DeprovisionDelete  = "delete"
)

// Spec is one provisioner's configuration as the engine needs it.
type Spec struct {
	Name string
	// Type is the target type (for status).
	Type   string
	Target targets.Target
	// Groups are group DNs whose members are in scope; NestedGroups follows groups inside them.
	Groups       []string
	NestedGroups bool
	// Filter is an LDAP filter users must match (ANDed with Groups).
	Filter         string
	PushGroups     bool
	Deprovision    string
	MatchAttribute string
	// CreateLookup is CreateByLookup (the default) or CreateByConflict: how a user is
	// created outside a reconcile pass (see create).
	CreateLookup string
	// RateLimit caps the requests per second (0: AdaptiveCeiling). Below it the pace adapts
	// to the target's answers when the target reports them (targets.Paced).
	RateLimit float64
	// Concurrency is the number of workers, the most requests in flight (0:
	// DefaultConcurrency).
	Concurrency int
	MaxAttempts int
	// MaxDeletes deprovisions within DeleteWindow (or in one reconcile pass) stop the
	// provisioner; 0 turns the deletion breaker off.
	MaxDeletes    int
	DeleteWindow  time.Duration
	MinRetryDelay time.Duration
	MaxRetryDelay time.Duration
	// UserMapping and GroupMapping override the defaults key by key ("" removes a key).
	UserMapping  map[string]string
	GroupMapping map[string]string
	// Hash identifies the configuration: a reload rebuilds only provisioners whose Hash
	// changed.
	Hash string
}

// Provisioner delivers one outbox to one target.
type Provisioner struct {
	e    *Engine
	spec Spec
	log  zerolog.Logger

	userMap, groupMap *mapping.TemplateMapping
	mappingHash       string
	// keysID: the user mapping sends the directory id as externalId (rebuild.go); userKeys
	// are its keys, lower-cased.
	keysID    bool
	userKeys  map[string]bool
	snapAttrs []string
	pace      *pacer
	paced     bool // the target reports every request to pace (targets.Paced)
	q         *queue
	health    *health

	mu       sync.Mutex
	users    accounts        // directory id → active, for users with a target account
	groups   map[string]bool // directory ids of groups with a target group
	breaker  breakerState
	resume   chan struct{} // closed when the deletion breaker is released
	lastErr  string
	lastErrT time.Time
	lastOK   time.Time
	listing  *listing
	// posted holds the keys whose create was POSTed by this process and not yet followed by
	// a successful delivery: a listing cannot vouch for them (see find).
	posted map[string]struct{}
	// inherited holds the keys this provisioner found pending (in the outbox or the dead
	// letters) when it loaded the state file: an earlier process (or the provisioner this
	// one replaced on a reload) may have POSTed their create without recording the outcome.
	// Cleared like posted.
	inherited map[string]struct{}
	lastRec   time.Time
	loaded    bool
	// missing are the configured scope groups the index did not show at the last batch:
	// while there are, deprovisioning is held (scope.go).
	missing []string

	delivered, failed, dead atomic.Uint64

	cancel  context.CancelFunc
	workers sync.WaitGroup
}

// listing is what a target listing showed during a reconcile pass: the target ids by match
// value, so creates of users the target does not have skip the lookup before POST, and
// existing accounts are adopted without one.
type listing struct {
	users  map[string]string // lower-cased match value → target id
	groups map[string]string
	at     time.Time
}

// MergeMapping overlays overrides on defaults; an override of "" removes the key.
func MergeMapping(defaults, overrides map[string]string) map[string]string {
	out := maps.Clone(defaults)
	if out == nil {
		out = map[string]string{}
	}
	for k, v := range overrides {
		// Keys are case-insensitive SCIM paths: an override replaces a default spelled
		// differently.
		for dk := range out {
			if strings.EqualFold(dk, k) {
				delete(out, dk)
			}
		}
		if strings.TrimSpace(v) != "" {
			out[k] = v
		}
	}
	return out
}

func (e *Engine) newProvisioner(spec Spec) (*Provisioner, error) {
	if spec.Name == "" || spec.Target == nil {
		return nil, errors.New("outbound: a provisioner needs a name and a target")
	}
	if spec.Deprovision == "" {
		spec.Deprovision = DeprovisionDisable
	}
	if spec.MatchAttribute == "" {
		spec.MatchAttribute = "userName"
	}
	if spec.CreateLookup == "" {
		spec.CreateLookup = CreateByLookup
	}
	if spec.Concurrency <= 0 {
		spec.Concurrency = DefaultConcurrency
	}
	spec.MaxAttempts = max(spec.MaxAttempts, 1)
	if spec.MinRetryDelay <= 0 {
		spec.MinRetryDelay = time.Second
	}
	spec.MaxRetryDelay = max(spec.MaxRetryDelay, spec.MinRetryDelay)
	if spec.DeleteWindow <= 0 {
		spec.DeleteWindow = time.Hour
	}
	idAttr := e.o.Scope.IDAttribute
	um := MergeMapping(mapping.DefaultUserMappingFor(mapping.ProfileFor(string(e.o.Scope.Dialect)), idAttr), spec.UserMapping)
	userMap, err := mapping.CompileUserMapping(um)
	if err != nil {
		return nil, fmt.Errorf("provisioner %q: %w", spec.Name, err)
	}
	gm := MergeMapping(mapping.DefaultGroupMapping(idAttr), spec.GroupMapping)
	groupMap, err := mapping.CompileGroupMapping(gm)
	if err != nil {
		return nil, fmt.Errorf("provisioner %q: group_mapping: %w", spec.Name, err)
	}
	paced := false
	if pt, ok := spec.Target.(targets.Paced); ok {
		paced = pt.Paced()
	}
	p := &Provisioner{
		e: e, spec: spec,
		log:         e.log.With().Str("provisioner", spec.Name).Str("type", spec.Type).Logger(),
		userMap:     userMap,
		keysID:      keysID(um, idAttr),
		userKeys:    lowerKeys(um),
		groupMap:    groupMap,
		mappingHash: digest(um, gm),
		paced:       paced,
		q:           newQueue(),
		groups:      map[string]bool{},
		posted:      map[string]struct{}{},
		inherited:   map[string]struct{}{},
		resume:      make(chan struct{}),
	}
	p.health = newHealth(spec.Concurrency, spec.MinRetryDelay, spec.MaxRetryDelay)
	p.pace = newPacer(max(spec.RateLimit, 0), paced, p.rateMoved)
	e.m.rate.WithLabelValues(spec.Name).Set(p.pace.current())
	attrs := map[string]bool{}
	for _, a := range userMap.Attributes() {
		attrs[strings.ToLower(a)] = true
		p.snapAttrs = append(p.snapAttrs, a)
	}
	if !attrs[strings.ToLower(idAttr)] && idAttr != "" {
		p.snapAttrs = append(p.snapAttrs, idAttr)
	}
	return p, nil
}

// Name is the provisioner's name.
func (p *Provisioner) Name() string { return p.spec.Name }

// loadTx fills the in-memory mirrors and the queue from the state file.
func (p *Provisioner) loadTx(tx *state.Tx) error {
	{
		ids, err := tx.IDMap(idmapName(p.spec.Name))
		if err != nil {
			return err
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		err = ids.ForEach(func(id string, e state.IDEntry) error {
			r := recordFrom(e)
			if r.TargetID == "" {
				return nil
			}
			if r.Kind == kindGroup {
				p.groups[id] = true
			} else {
				p.users.set(id, r.Active)
			}
			return nil
		})
		if err != nil {
			return err
		}
		ob, err := tx.Outbox(p.spec.Name)
		if err != nil {
			return err
		}
		err = ob.ForEach(func(it state.Item) error {
			p.q.push(it.Key, it.Seq, it.NotBefore)
			p.inherited[it.Key] = struct{}{}
			return nil
		})
		if err != nil {
			return err
		}
		dl, err := tx.DeadLetters(p.spec.Name)
		if err != nil {
			return err
		}
		err = dl.ForEach(func(d state.DeadLetter) error {
			p.inherited[d.Item.Key] = struct{}{}
			return nil
		})
		if err != nil {
			return err
		}
		meta, err := tx.Bucket("outbound", p.spec.Name, "meta")
		if err != nil {
			return err
		}
		if _, err := meta.GetJSON([]byte("breaker"), &p.breaker); err != nil {
			return fmt.Errorf("outbound: %s: breaker: %w", p.spec.Name, err)
		}
		var le lastError
		if ok, _ := meta.GetJSON([]byte("last_error"), &le); ok {
			p.lastErr, p.lastErrT = le.Error, le.At
		}
		_, _ = meta.GetJSON([]byte("last_success"), &p.lastOK)
		_, _ = meta.GetJSON([]byte("last_reconcile"), &p.lastRec)
		p.loaded = true
		return nil
	}
}

type lastError struct {
	Error string    `json:"error"`
	At    time.Time `json:"at"`
}

const (
	kindUser  = "user"
	kindGroup = "group"
)

// start runs the workers until ctx ends; deliveries in flight get drainCtx.
func (p *Provisioner) start(ctx context.Context, deliverCtx context.Context) {
	ctx, p.cancel = context.WithCancel(ctx)
	for i := 0; i < p.spec.Concurrency; i++ {
		p.workers.Add(1)
		loop := watchdog.From(ctx).Loop(fmt.Sprintf("provisioner %q worker %d", p.spec.Name, i))
		go func() {
			defer p.workers.Done()
			defer loop.Stop()
			p.work(ctx, watchdog.WithLoop(deliverCtx, loop), loop)
		}()
	}
}

// stop stops taking work and waits for the deliveries in flight.
func (p *Provisioner) stop() {
	if p.cancel != nil {
		p.cancel()
	}
	p.workers.Wait()
}

// breakerTripped reports whether the deletion breaker holds the provisioner, and a channel
// closed when it is released.
func (p *Provisioner) breakerTripped() (bool, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.breaker.Tripped, p.resume
}

// work is one worker's loop: wait until the provisioner may deliver, take the first ready
// key, deliver it.
func (p *Provisioner) work(ctx, deliverCtx context.Context, loop *watchdog.Loop) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	sleep := func(d time.Duration, wake <-chan struct{}) bool {
		if d <= 0 || d > time.Hour {
			d = time.Hour
		}
		timer.Reset(d)
		loop.Wait() // for work, a breaker or a backoff: alive however long
		defer func() {
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
		}()
		select {
		case <-ctx.Done():
			return false
		case <-wake:
		case <-timer.C:
		}
		return true
	}
	for ctx.Err() == nil {
		loop.Beat()
		if tripped, resume := p.breakerTripped(); tripped {
			if !sleep(time.Hour, resume) {
				return
			}
			continue
		}
		probe, wait := p.health.acquire(time.Now())
		if wait > 0 {
			if !sleep(wait, p.health.changed()) {
				return
			}
			continue
		}
		key, wait, ok := p.q.pop(time.Now())
		if !ok {
			if probe {
				p.health.release()
			}
			if !sleep(wait, p.q.wake) {
				return
			}
			continue
		}
		if p.q.hasReady(time.Now()) {
			p.q.signal() // more work: wake another worker
		}
		p.process(deliverCtx, key, probe)
	}
}
