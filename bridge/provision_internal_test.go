package bridge

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/bridge/config"
	"github.com/scimbridge/scimbridge/bridge/state"
	"github.com/scimbridge/scimbridge/ldapstore"
	"github.com/scimbridge/scimbridge/ldapstore/ldaptest"
	"github.com/scimbridge/scimbridge/targets/targettest"
)

// watchProxy is a TCP proxy in front of the directory that sees every byte the bridge sends
// it, on pooled and private connections alike. Each time a request reaches it while
// inTx() reports a state write transaction open, it records a violation.
type watchProxy struct {
	addr       string
	l          net.Listener
	inTx       atomic.Pointer[func() bool]
	violations atomic.Int64
	requests   atomic.Int64
	wg         sync.WaitGroup
}

func newWatchProxy(t *testing.T, target string) *watchProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &watchProxy{addr: l.Addr().String(), l: l}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.wg.Add(2)
			go func() { // bridge → directory: every read is (part of) a request
				defer p.wg.Done()
				defer s.Close()
				buf := make([]byte, 64<<10)
				for {
					n, err := c.Read(buf)
					if n > 0 {
						p.requests.Add(1)
						if f := p.inTx.Load(); f != nil && (*f)() {
							p.violations.Add(1)
						}
						if _, werr := s.Write(buf[:n]); werr != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			}()
			go func() {
				defer p.wg.Done()
				defer c.Close()
				_, _ = io.Copy(c, s)
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		p.wg.Wait()
	})
	return p
}

// seedUsers is LDIF for n users below people; every other one has employeeType staff.
func seedUsers(people string, n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "dn: uid=u%05d,%s\nobjectClass: inetOrgPerson\nuid: u%05d\ncn: User %d\nsn: User\nmail: u%05d@example.org\n", i, people, i, i, i)
		if i%2 == 0 {
			b.WriteString("employeeType: staff\n")
		}
		b.WriteString("\n")
	}
	return b.String()
}

// TestReconcileWithOnePoolSlotAndAFilter: with pool_size = 1, a provisioner filter and more
// users than a batch, a full reconcile completes (it used to take a second pool slot for the
// filter while its enumeration held the only one, and hang with the state file's write
// lock held), and no request reaches the directory while a state write transaction is open.
func TestReconcileWithOnePoolSlotAndAFilter(t *testing.T) {
	const users = 5000
	s := ldaptest.Private(t, ldaptest.Options{Seed: seedUsers("ou=people,"+ldaptest.DefaultSuffix, users)})
	proxy := newWatchProxy(t, strings.TrimPrefix(s.URL, "ldap://"))
	target := targettest.NewServer(targettest.Options{BasePath: "/scim/v2", BearerTokens: []string{"token-0123456789abcdef"}})
	defer target.Close()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "target-token"), []byte("token-0123456789abcdef\n"), 0o600))
	cfg, err := config.Parse([]byte(`
[state]
dir = "state"
[ldap]
url = "ldap://`+proxy.addr+`"
bind_dn = "`+s.ServiceDN+`"
bind_password = "`+s.ServicePW+`"
base_dn = "`+s.Suffix+`"
pool_size = 1
[inbound]
enabled = false
[[provisioner]]
name = "app"
url = "`+target.URL+`"
auth = "bearer"
token_file = "target-token"
filter = "(employeeType=staff)"
max_deletes = 0
`), dir, Targets)
	require.NoError(t, err)
	require.NoError(t, cfg.LoadSecrets())

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	store, err := ldapstore.Open(ctx, LDAPConfig(cfg), zerolog.Nop())
	require.NoError(t, err)
	defer store.Close()
	pv, err := newProvisioning(ctx, cfg, store, zerolog.Nop(), nil, nil)
	require.NoError(t, err)
	writing := pv.db.Writing
	proxy.inTx.Store(&writing)
	specs, opened, err := Specs(cfg, zerolog.Nop())
	require.NoError(t, err)
	pv.targets, pv.specs = opened, specs
	require.NoError(t, pv.engine.Load(ctx))
	_, err = pv.engine.SetProvisioners(specs)
	require.NoError(t, err)

	require.NoError(t, pv.pass(ctx, []string{"app"}), "the reconcile completes")
	cancel()
	pv.join()
	defer pv.close()

	var queued int
	require.NoError(t, pv.db.View(func(tx *state.Tx) error {
		ob, err := tx.Outbox("app")
		queued = ob.Len()
		return err
	}))
	require.Equal(t, users/2, queued, "one create per user matching the filter")
	require.Positive(t, proxy.requests.Load())
	require.Zero(t, proxy.violations.Load(), "requests reached the directory while a state write transaction was open")
}
