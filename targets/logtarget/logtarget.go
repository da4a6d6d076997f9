package logtarget

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/rs/zerolog"

	"github.com/scimbridge/scimbridge/mapping"
	"github.com/scimbridge/scimbridge/targets"
)

var (
	_ targets.Target    = (*Target)(nil)
	_ targets.Lister    = (*Target)(nil)
	_ targets.Config    = (*Config)(nil)
	_ targets.Validator = (*Config)(nil)
)

// Config is the log target's keys (TOML).
type Config struct {
	// Level is the level the operations are logged at: "debug", "info" or "warn". Defaults
	// to "info", so a dry run shows in the default log.
	Level string `toml:"level"`
}

var defaultConfig = Config{Level: "info"}

// DefaultConfig returns a Config holding the defaults, ready to decode into.
func DefaultConfig() *Config {
	c := defaultConfig
	return &c
}

// NewConfig is DefaultConfig as a targets.Config, the shape of the bridge's registry.
func NewConfig() targets.Config { return DefaultConfig() }

var levels = map[string]zerolog.Level{"debug": zerolog.DebugLevel, "info": zerolog.InfoLevel, "warn": zerolog.WarnLevel}

// Validate checks the level.
func (c *Config) Validate() error {
	if _, ok := levels[c.Level]; !ok {
		return fmt.Errorf("level: unknown value %q (want \"debug\", \"info\" or \"warn\")", c.Level)
	}
	return nil
}

// Open returns the dry-run target for provisioner name.
func (c *Config) Open(name string, logger zerolog.Logger) (targets.Target, error) {
	return New(c, name, logger)
}

// New is Open returning the concrete type.
func New(c *Config, name string, logger zerolog.Logger) (*Target, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("logtarget: %w", err)
	}
	return &Target{name: name, log: logger, level: levels[c.Level], known: map[key]targets.Result{}}, nil
}

// Target logs every operation as an audit event (audit=true, actor, resource, id, op,
// match_attribute, match_value, result="dry_run") and answers with synthetic ids that are
// stable across runs: "log-" and a hash of kind, match attribute and match value. It
// remembers, in memory only, what it "created", so a second pass in the same process finds
// those resources (and List lists them) like a real target would. Safe for concurrent use.
type Target struct {
	name  string
	log   zerolog.Logger
	level zerolog.Level

	mu    sync.Mutex
	known map[key]targets.Result
}

type key struct {
	kind        mapping.Kind
	attr, value string
}

func keyOf(kind mapping.Kind, attr, value string) key {
	return key{kind: kind, attr: strings.ToLower(attr), value: strings.ToLower(value)}
}

// SyntheticID returns the id the log target gives the resource of kind matched by attr and
// value: stable across runs and processes.
func SyntheticID(kind mapping.Kind, attr, value string) string {
	k := keyOf(kind, attr, value)
	sum := sha256.Sum256([]byte(string(k.kind) + "\x00" + k.attr + "\x00" + k.value))
	return "log-" + hex.EncodeToString(sum[:8])
}

// Apply logs op and answers success. On a cancelled ctx it returns an error wrapping
// ctx.Err() and logs nothing.
func (t *Target) Apply(ctx context.Context, op mapping.Op) (targets.Result, error) {
	if err := ctx.Err(); err != nil {
		return targets.Result{}, fmt.Errorf("logtarget: %s %s: %w", op.Type, op.Kind, err)
	}
	id := op.TargetID
	if id == "" {
		id = SyntheticID(op.Kind, op.MatchAttribute, op.MatchValue)
	}
	res := targets.Result{ID: id, Kind: op.Kind}
	t.mu.Lock()
	switch op.Type {
	case mapping.OpCreate:
		res.Attrs = op.Resource
		if op.MatchAttribute != "" {
			t.known[keyOf(op.Kind, op.MatchAttribute, op.MatchValue)] = res
		}
	case mapping.OpDelete:
		for k, r := range t.known {
			if r.ID == id && k.kind == op.Kind {
				delete(t.known, k)
			}
		}
	}
	t.mu.Unlock()

	e := t.log.WithLevel(t.level).
		Bool("audit", true).
		Str("actor", t.name).
		Str("resource", string(op.Kind)).
		Str("id", id).
		Str("op", string(op.Type)).
		Str("result", "dry_run")
	if op.MatchAttribute != "" {
		e = e.Str("match_attribute", op.MatchAttribute).Str("match_value", op.MatchValue)
	}
	if len(op.Patch) > 0 {
		paths := make([]string, 0, len(op.Patch))
		for _, p := range op.Patch {
			paths = append(paths, strings.ToLower(p.Op)+" "+p.Path)
		}
		e = e.Strs("changes", paths)
	}
	if op.Resource != nil {
		attrs := make([]string, 0, len(op.Resource))
		for k := range op.Resource {
			attrs = append(attrs, k)
		}
		slices.Sort(attrs)
		e = e.Strs("attributes", attrs)
	}
	e.Msg("dry run: operation not sent")
	return res, nil
}

// Find reports resources this target "created" earlier in the process; nothing else exists.
func (t *Target) Find(ctx context.Context, kind mapping.Kind, attr, value string) (targets.Result, bool, error) {
	if err := ctx.Err(); err != nil {
		return targets.Result{}, false, fmt.Errorf("logtarget: find %s: %w", kind, err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	r, ok := t.known[keyOf(kind, attr, value)]
	return r, ok, nil
}

// List lists the resources this target "created" earlier in the process, in id order.
func (t *Target) List(ctx context.Context, kind mapping.Kind, fn func(targets.Result) error) error {
	t.mu.Lock()
	var out []targets.Result
	for k, r := range t.known {
		if k.kind == kind {
			out = append(out, r)
		}
	}
	t.mu.Unlock()
	slices.SortFunc(out, func(a, b targets.Result) int { return strings.Compare(a.ID, b.ID) })
	for _, r := range out {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("logtarget: list %s: %w", kind, err)
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}
