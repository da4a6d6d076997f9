package lease

import (
	"context"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/ldapstore"
	"github.com/scimbridge/scimbridge/ldapstore/ldaptest"
)

func TestMain(m *testing.M) { os.Exit(ldaptest.RunMain(m, ldaptest.Options{})) }

// directory connects as the service account, with the ACL the README documents.
func directory(t *testing.T) (*ldapstore.Store, string) {
	t.Helper()
	srv, ou := ldaptest.OU(t, "lease")
	s, err := ldapstore.New(ldapstore.Config{URLs: []string{srv.URL}, BindDN: srv.ServiceDN, BindPassword: srv.ServicePW, PoolSize: 2}, zerolog.Nop())
	require.NoError(t, err)
	t.Cleanup(s.Close)
	return s, "cn=scimbridge-lease," + ou
}

func elector(t *testing.T, dir Directory, dn, id string, d time.Duration) *Elector {
	t.Helper()
	e, err := New(Options{Directory: dir, DN: dn, ID: id, Duration: d, Renew: d / 3, Logger: zerolog.Nop()})
	require.NoError(t, err)
	return e
}

// TestOneWinnerOfARace: instances racing for an absent lease, and then for a lapsed one, get
// one term between them each time (the Add, then the delete-old/add-new Modify, decide).
func TestOneWinnerOfARace(t *testing.T) {
	dir, dn := directory(t)
	ctx := context.Background()
	const n = 6
	race := func(es []*Elector) []*Term {
		var (
			mu    sync.Mutex
			terms []*Term
			wg    sync.WaitGroup
		)
		for _, e := range es {
			wg.Go(func() {
				if term := e.tryTake(ctx); term != nil {
					mu.Lock()
					terms = append(terms, term)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		return terms
	}
	var es []*Elector
	for i := range n {
		es = append(es, elector(t, dir, dn, string(rune('a'+i)), 3*time.Second))
	}
	terms := race(es)
	require.Len(t, terms, 1, "an absent lease is created by one instance")
	first := terms[0]
	defer first.end(nil)
	require.EqualValues(t, 1, first.Term)

	// The others saw the value; once it stays unchanged for a whole duration, all of them
	// find it free at once and race again: the swap from the same old value lets one win.
	var standbys []*Elector
	for _, e := range es {
		if e.term != first {
			require.Nil(t, e.tryTake(ctx), "held: no standby takes it")
			standbys = append(standbys, e)
		}
	}
	require.Len(t, standbys, n-1)
	require.Eventually(t, func() bool { return first.Allow() != nil }, 5*time.Second, 50*time.Millisecond, "the unrenewed holder is fenced")
	time.Sleep(3*time.Second - Guard(3*time.Second) + 100*time.Millisecond)
	terms = race(standbys)
	require.Len(t, terms, 1, "a lapsed lease is taken by one instance")
	defer terms[0].end(nil)
	require.EqualValues(t, 2, terms[0].Term)
	require.NotEqual(t, first.Takeover, terms[0].Takeover)
}

// TestStandbyWaitsAndTheOldHolderIsFenced: a standby takes the lease only after it saw the
// value unchanged for a whole lease duration on its own clock, and the holder stops before
// that (the guard); once the standby holds it, the old holder's renewal fails.
func TestStandbyWaitsAndTheOldHolderIsFenced(t *testing.T) {
	dir, dn := directory(t)
	ctx := context.Background()
	const d = 3 * time.Second
	a, b := elector(t, dir, dn, "a", d), elector(t, dir, dn, "b", d)
	var cursor atomic.Value
	cursor.Store("c-1")
	a.SetCursor(func() string { return cursor.Load().(string) })

	ta := a.tryTake(ctx)
	require.NotNil(t, ta)
	defer ta.end(nil)
	require.Nil(t, b.tryTake(ctx), "held: the standby waits")

	// A renewal carries the committed cursor, and restarts the standby's wait.
	cursor.Store("c-2")
	require.NoError(t, a.renew(ctx, ta))
	require.Nil(t, b.tryTake(ctx))
	seen := time.Now()

	// The holder pauses (no renewal). Its fence comes first ...
	for ta.Allow() == nil {
		require.Nil(t, b.tryTake(ctx), "the standby took the lease while the holder may still push")
		time.Sleep(50 * time.Millisecond)
	}
	fenced := time.Since(seen)
	require.Less(t, fenced, d, "the holder stops before the lease lapses for the others")
	require.ErrorIs(t, ta.Context().Err(), context.Canceled, "the term's context ends at the fence")

	// ... the standby takes it once a whole duration passed since it saw the last value.
	var tb *Term
	require.Eventually(t, func() bool { tb = b.tryTake(ctx); return tb != nil }, 2*d, 100*time.Millisecond)
	defer tb.end(nil)
	require.GreaterOrEqual(t, time.Since(seen), d)
	require.False(t, tb.Continued)
	require.Equal(t, "a", tb.Previous.Holder)
	require.Equal(t, "c-2", tb.Previous.Cursor, "the new leader starts from the cursor the old one committed")

	// The old holder, resumed, cannot renew nor take the lease back.
	require.ErrorIs(t, a.renew(ctx, ta), ErrFenced)
	require.Nil(t, a.tryTake(ctx))
	st := b.Status()
	require.Equal(t, "leader", st.Role)
	require.Equal(t, "b", st.Holder)
	require.Equal(t, "standby", a.Status().Role)
}

// TestRenewalLostToAnotherWriter: a renewal whose compare fails (another instance wrote the
// entry) ends the term at once, without waiting for the fence.
func TestRenewalLostToAnotherWriter(t *testing.T) {
	dir, dn := directory(t)
	ctx := context.Background()
	a := elector(t, dir, dn, "a", 30*time.Second)
	ta := a.tryTake(ctx)
	require.NotNil(t, ta)
	defer ta.end(nil)
	raw, _, err := a.read(ctx)
	require.NoError(t, err)
	require.NoError(t, dir.Modify(ctx, dn, []ldapstore.Change{{Op: ldapstore.ModReplace, Attr: attr, Values: []string{Value{Holder: "intruder", Term: 9}.Encode()}}}, ldapstore.ModifyOptions{}))
	require.ErrorIs(t, a.renew(ctx, ta), ErrFenced)
	now, _, err := a.read(ctx)
	require.NoError(t, err)
	require.NotEqual(t, raw, now)
	require.Contains(t, now, "intruder", "the failed renewal changed nothing")
}

// TestLeaseHeldTwice: a lease entry holding two values (two instances wrote it on different
// servers of a multi-provider pair, and replication merged both) fences the holder at its next
// renewal, and nobody takes it: no leader rather than two, said loudly.
func TestLeaseHeldTwice(t *testing.T) {
	dir, dn := directory(t)
	ctx := context.Background()
	a, b := elector(t, dir, dn, "a", 30*time.Second), elector(t, dir, dn, "b", 30*time.Second)
	ta := a.tryTake(ctx)
	require.NotNil(t, ta)
	defer ta.end(nil)
	require.NoError(t, dir.Modify(ctx, dn, []ldapstore.Change{{Op: ldapstore.ModAdd, Attr: attr, Values: []string{Value{Holder: "b", Term: 1}.Encode()}}}, ldapstore.ModifyOptions{}))
	require.ErrorIs(t, a.renew(ctx, ta), ErrFenced)
	require.Contains(t, a.Status().LastError, "several lease values")
	require.Nil(t, b.tryTake(ctx))
	require.Contains(t, b.Status().LastError, "several lease values")
}

// TestReleaseHandsOver: a leader that stops releases the lease after its work returned; a
// standby takes it at once, with the cursor.
func TestReleaseHandsOver(t *testing.T) {
	dir, dn := directory(t)
	a, b := elector(t, dir, dn, "a", 30*time.Second), elector(t, dir, dn, "b", 30*time.Second)
	a.SetCursor(func() string { return "c-9" })
	ctx, cancel := context.WithCancel(context.Background())
	led := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		a.Run(ctx, func(term *Term) {
			close(led)
			<-term.Context().Done()
		})
	}()
	<-led
	require.Nil(t, b.tryTake(context.Background()))
	cancel()
	<-stopped
	tb := b.tryTake(context.Background())
	require.NotNil(t, tb, "a released lease is free at once")
	defer tb.end(nil)
	require.Empty(t, tb.Previous.Holder)
	require.Equal(t, "c-9", tb.Previous.Cursor)
}

// TestPrecreatedEntry: an entry an admin created at lease_dn (with a description of their
// own) gets the lease value beside it; the admin's value stays.
func TestPrecreatedEntry(t *testing.T) {
	dir, dn := directory(t)
	ctx := context.Background()
	require.NoError(t, dir.Add(ctx, dn, map[string][]string{"objectClass": {"applicationProcess"}, "cn": {"scimbridge-lease"}, "description": {"the scimbridge lease"}}))
	a, b := elector(t, dir, dn, "a", 3*time.Second), elector(t, dir, dn, "b", 3*time.Second)
	require.Nil(t, a.tryTake(ctx), "first a placeholder")
	ta := b.tryTake(ctx)
	require.NotNil(t, ta, "taken from the placeholder")
	defer ta.end(nil)
	require.Nil(t, a.tryTake(ctx))
	en, err := dir.Get(ctx, dn, []string{attr})
	require.NoError(t, err)
	require.Len(t, en.Attrs[attr], 2)
	require.Contains(t, en.Attrs[attr], "the scimbridge lease")
	_, err = Decode("the scimbridge lease")
	require.Error(t, err)
}
