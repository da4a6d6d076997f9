package inbound_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/bridge/inbound"
	"github.com/scimbridge/scimbridge/ldapstore"
	"github.com/scimbridge/scimbridge/mapping"
)

// faulty wraps the real directory: it records the operations and can fail or run a hook
// before chosen ones.
type faulty struct {
	inbound.Directory
	mu          sync.Mutex
	ops         []string
	fail        map[string]error  // operation → error returned instead of running it
	before      map[string]func() // operation → hook run (once) before it
	noVLV       bool
	searchAttrs [][]string
}

func newFaulty(d inbound.Directory) *faulty {
	return &faulty{Directory: d, fail: map[string]error{}, before: map[string]func(){}}
}

func (f *faulty) enter(op string) error {
	f.mu.Lock()
	f.ops = append(f.ops, op)
	hook := f.before[op]
	delete(f.before, op)
	err := f.fail[op]
	f.mu.Unlock()
	if hook != nil {
		hook()
	}
	return err
}

func (f *faulty) setFail(op string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil {
		delete(f.fail, op)
	} else {
		f.fail[op] = err
	}
}

func (f *faulty) setBefore(op string, fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.before[op] = fn
}

func (f *faulty) reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ops, f.searchAttrs = nil, nil
}

func (f *faulty) count(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, o := range f.ops {
		if o == op {
			n++
		}
	}
	return n
}

// readAttribute reports whether any search or read since reset asked for attr.
func (f *faulty) readAttribute(attr string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, attrs := range f.searchAttrs {
		if slices.ContainsFunc(attrs, func(a string) bool { return strings.EqualFold(a, attr) || a == "*" }) {
			return true
		}
	}
	return false
}

func (f *faulty) Walk(ctx context.Context, q ldapstore.Search, fn func(mapping.Entry) error) error {
	f.mu.Lock()
	f.searchAttrs = append(f.searchAttrs, q.Attrs)
	f.mu.Unlock()
	if err := f.enter("search"); err != nil {
		return err
	}
	return f.Directory.Walk(ctx, q, fn)
}

func (f *faulty) Get(ctx context.Context, dn string, attrs []string) (mapping.Entry, error) {
	f.mu.Lock()
	f.searchAttrs = append(f.searchAttrs, attrs)
	f.mu.Unlock()
	if err := f.enter("get"); err != nil {
		return mapping.Entry{}, err
	}
	return f.Directory.Get(ctx, dn, attrs)
}

func (f *faulty) Add(ctx context.Context, dn string, attrs map[string][]string) error {
	if err := f.enter("add"); err != nil {
		return err
	}
	return f.Directory.Add(ctx, dn, attrs)
}

func (f *faulty) Modify(ctx context.Context, dn string, changes []ldapstore.Change, opts ldapstore.ModifyOptions) error {
	if err := f.enter("modify"); err != nil {
		return err
	}
	return f.Directory.Modify(ctx, dn, changes, opts)
}

func (f *faulty) ModifyDN(ctx context.Context, dn, newRDN string, del bool, super string) error {
	if err := f.enter("modifydn"); err != nil {
		return err
	}
	return f.Directory.ModifyDN(ctx, dn, newRDN, del, super)
}

func (f *faulty) Delete(ctx context.Context, dn string) error {
	if err := f.enter("delete"); err != nil {
		return err
	}
	return f.Directory.Delete(ctx, dn)
}

func (f *faulty) SetPassword(ctx context.Context, dn, pw string) error {
	if err := f.enter("password"); err != nil {
		return err
	}
	return f.Directory.SetPassword(ctx, dn, pw)
}

func (f *faulty) SupportsVLV(ctx context.Context) (bool, error) {
	if f.noVLV {
		return false, nil
	}
	return f.Directory.SupportsVLV(ctx)
}

// injected is an error as the store returns it, carrying an LDAP diagnostic and a DN that must
// never reach the client.
func injected(kind error) error {
	return errors.Join(kind, errors.New(`ldapstore: modify "uid=secret,ou=people,dc=example,dc=org": LDAP Result Code 19 "Constraint Violation": password fails quality checking policy`))
}

// newFaultyEnv is an env whose directory is wrapped by a faulty; setup (may be nil) runs before
// the server reads the directory's capabilities.
func newFaultyEnv(t *testing.T, setup func(*faulty), opts ...envOption) (*env, *faulty) {
	t.Helper()
	var f *faulty
	e := newEnvOn(t, func(d inbound.Directory) inbound.Directory {
		f = newFaulty(d)
		if setup != nil {
			setup(f)
		}
		return f
	}, opts...)
	require.NotNil(t, f)
	return e, f
}
