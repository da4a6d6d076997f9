package ldapstore_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/ldapstore"
	"github.com/scimbridge/scimbridge/ldapstore/ldaptest"
)

// drain polls src from cursor until the log has nothing more, keeping the events under base.
func drain(t testing.TB, src interface {
	Poll(context.Context, string, int) (ldapstore.Batch, error)
}, cursor string, limit int, base string,
) ([]ldapstore.Event, string) {
	t.Helper()
	var out []ldapstore.Event
	for {
		b, err := src.Poll(context.Background(), cursor, limit)
		require.NoError(t, err)
		for _, ev := range b.Events {
			if under(ev.DN, base) || under(ev.OldDN, base) {
				out = append(out, ev)
			}
		}
		cursor = b.Cursor
		if !b.More {
			return out, cursor
		}
	}
}

func under(dn, base string) bool {
	return dn != "" && strings.HasSuffix(strings.ToLower(dn), strings.ToLower(base))
}

func uuidOf(t testing.TB, st *ldapstore.Store, dn string) string {
	t.Helper()
	e, err := st.Get(context.Background(), dn, []string{"entryUUID"})
	require.NoError(t, err)
	id := e.First("entryUUID")
	require.NotEmpty(t, id)
	return id
}

type evSummary struct {
	Kind   ldapstore.EventKind
	ID     string
	DN     string
	OldDN  string
	Origin ldapstore.Origin
}

func summarize(evs []ldapstore.Event) []evSummary {
	out := make([]evSummary, len(evs))
	for i, ev := range evs {
		out[i] = evSummary{ev.Kind, ev.ID, strings.ToLower(ev.DN), strings.ToLower(ev.OldDN), ev.Origin}
	}
	return out
}

func TestAccesslogReportsEveryKindOfChange(t *testing.T) {
	s, ou := ldaptest.OU(t, "alkinds")
	st := storeFor(t, s)
	ctx := context.Background()
	src := ldapstore.NewAccesslog(st, ldapstore.AccesslogOptions{Overlap: 2 * time.Second})
	head, err := src.Head(ctx)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(head, "accesslog:"), head)

	people, groups := "ou=people,"+ou, "ou=groups,"+ou
	ada, grace := "uid=ada,"+people, "uid=grace,"+people
	// An admin adds Ada with ldapmodify; the bridge (the store's account) adds Grace.
	require.NoError(t, s.LDIF("dn: "+ada+"\nobjectClass: inetOrgPerson\nuid: ada\ncn: Ada\nsn: Lovelace\n"))
	require.NoError(t, st.Add(ctx, grace, person("grace")))
	adaID, graceID := uuidOf(t, st, ada), uuidOf(t, st, grace)
	require.NoError(t, st.Modify(ctx, ada, []ldapstore.Change{{Op: ldapstore.ModReplace, Attr: "title", Values: []string{"Countess"}}}, ldapstore.ModifyOptions{}))
	// A rename in place, then a move to another parent (newSuperior).
	require.NoError(t, st.ModifyDN(ctx, ada, "uid=ada.l", true, ""))
	require.NoError(t, s.LDIF("dn: uid=ada.l,"+people+"\nchangetype: modrdn\nnewrdn: uid=ada.lovelace\ndeleteoldrdn: 1\nnewsuperior: "+groups+"\n"))
	moved := "uid=ada.lovelace," + groups
	// A group, and a membership change on it.
	team := "cn=team," + groups
	require.NoError(t, st.Add(ctx, team, map[string][]string{"objectClass": {"groupOfNames"}, "cn": {"team"}, "member": {grace}}))
	teamID := uuidOf(t, st, team)
	require.NoError(t, st.Modify(ctx, team, []ldapstore.Change{{Op: ldapstore.ModAdd, Attr: "member", Values: []string{moved}}}, ldapstore.ModifyOptions{}))
	require.NoError(t, s.LDIF("dn: "+team+"\nchangetype: modify\ndelete: member\nmember: "+grace+"\n"))
	require.NoError(t, st.Delete(ctx, grace))
	require.NoError(t, s.LDIF("dn: "+moved+"\nchangetype: delete\n"))

	evs, _ := drain(t, src, head, 3, ou)
	ext, br := ldapstore.OriginExternal, ldapstore.OriginBridge
	want := []evSummary{
		{ldapstore.EventUpsert, adaID, strings.ToLower(ada), "", ext},
		{ldapstore.EventUpsert, graceID, strings.ToLower(grace), "", br},
		{ldapstore.EventUpsert, adaID, strings.ToLower(ada), "", br},
		{ldapstore.EventRename, adaID, strings.ToLower("uid=ada.l," + people), strings.ToLower(ada), br},
		{ldapstore.EventRename, adaID, strings.ToLower(moved), strings.ToLower("uid=ada.l," + people), ext},
		{ldapstore.EventUpsert, teamID, strings.ToLower(team), "", br},
		{ldapstore.EventUpsert, teamID, strings.ToLower(team), "", br},
		{ldapstore.EventUpsert, teamID, strings.ToLower(team), "", ext},
		{ldapstore.EventDelete, graceID, strings.ToLower(grace), "", br},
		{ldapstore.EventDelete, adaID, strings.ToLower(moved), "", ext},
	}
	require.Equal(t, want, summarize(evs))
	for _, ev := range evs {
		require.False(t, ev.Time.IsZero())
		require.WithinDuration(t, time.Now(), ev.Time, time.Minute)
		require.NotEmpty(t, ev.Actor)
		require.NotEmpty(t, ev.Position)
	}
	require.True(t, ldapstore.DNEqual(s.RootDN, evs[0].Actor), "the admin's writes name the rootdn: %q", evs[0].Actor)
}

func TestAccesslogCursorIsExact(t *testing.T) {
	s, ou := ldaptest.OU(t, "alexact")
	st := storeFor(t, s)
	ctx := context.Background()
	src := ldapstore.NewAccesslog(st, ldapstore.AccesslogOptions{Overlap: 5 * time.Second})
	cur, err := src.Head(ctx)
	require.NoError(t, err)
	for i := range 5 {
		require.NoError(t, st.Add(ctx, fmt.Sprintf("uid=u%d,ou=people,%s", i, ou), person(fmt.Sprintf("u%d", i))))
	}
	evs, cur := drain(t, src, cur, 2, ou)
	require.Len(t, evs, 5)
	// Polling again from the returned cursor re-reads the overlap window but delivers
	// nothing twice.
	again, cur := drain(t, src, cur, 2, ou)
	require.Empty(t, again)
	require.NoError(t, st.Add(ctx, "uid=u5,ou=people,"+ou, person("u5")))
	evs, _ = drain(t, src, cur, 2, ou)
	require.Len(t, evs, 1)
	require.Equal(t, strings.ToLower("uid=u5,ou=people,"+ou), strings.ToLower(evs[0].DN))

	// A cursor of another source, or garbage, is not silently taken.
	_, err = src.Poll(ctx, "timestamp:20240101000000Z:", 10)
	require.ErrorIs(t, err, ldapstore.ErrCursorExpired)
	_, err = src.Poll(ctx, "accesslog:nonsense", 10)
	require.Error(t, err)
	// A cursor standing on a record this log never had (another server's) has expired.
	_, err = src.Poll(ctx, "accesslog:20200101000000.000001Z:1:", 10)
	require.ErrorIs(t, err, ldapstore.ErrCursorExpired)
}

func TestAccesslogDeliversChangesMadeWhileStoppedInOrder(t *testing.T) {
	s := ldaptest.Private(t, ldaptest.Options{})
	st := storeFor(t, s)
	ctx := context.Background()
	src := ldapstore.NewAccesslog(st, ldapstore.AccesslogOptions{Overlap: 2 * time.Second})
	cursor, err := src.Head(ctx)
	require.NoError(t, err)
	require.NoError(t, st.Add(ctx, "uid=first,"+s.PeopleDN, person("first")))
	_, cursor = drain(t, src, cursor, 100, s.PeopleDN)
	stored := cursor // what the daemon committed before it stopped
	st.Close()

	// While the consumer is down: writes, and a directory restart for good measure.
	w := storeFor(t, s)
	var want []string
	for i := range 12 {
		dn := fmt.Sprintf("uid=w%02d,%s", i, s.PeopleDN)
		require.NoError(t, w.Add(ctx, dn, person(fmt.Sprintf("w%02d", i))))
		want = append(want, "upsert "+dn)
		if i%3 == 0 {
			require.NoError(t, w.Modify(ctx, dn, []ldapstore.Change{{Op: ldapstore.ModReplace, Attr: "title", Values: []string{"t"}}}, ldapstore.ModifyOptions{}))
			want = append(want, "upsert "+dn)
		}
		if i%4 == 0 {
			require.NoError(t, w.Delete(ctx, dn))
			want = append(want, "delete "+dn)
		}
	}
	require.NoError(t, s.Stop())
	require.NoError(t, s.Start())

	// A new consumer over a new pool resumes from the stored cursor, in small batches.
	st2 := storeFor(t, s)
	src2 := ldapstore.NewAccesslog(st2, ldapstore.AccesslogOptions{Overlap: 2 * time.Second})
	evs, _ := drain(t, src2, stored, 4, s.PeopleDN)
	got := make([]string, len(evs))
	for i, ev := range evs {
		got[i] = string(ev.Kind) + " " + ev.DN
	}
	require.Equal(t, want, got)
}

func TestAccesslogPurgedCursorExpires(t *testing.T) {
	s := ldaptest.Private(t, ldaptest.Options{LogPurge: "00:00:02 00:00:01"})
	st := storeFor(t, s)
	ctx := context.Background()
	src := ldapstore.NewAccesslog(st, ldapstore.AccesslogOptions{Overlap: time.Second})
	require.NoError(t, st.Add(ctx, "uid=old,"+s.PeopleDN, person("old")))
	cursor, err := src.Head(ctx)
	require.NoError(t, err)
	_, err = src.Poll(ctx, cursor, 10)
	require.NoError(t, err, "a fresh cursor is covered")

	require.Eventually(t, func() bool {
		_, err := src.Poll(ctx, cursor, 10)
		return err != nil
	}, 20*time.Second, 250*time.Millisecond, "logpurge removes the record the cursor stands on")
	_, err = src.Poll(ctx, cursor, 10)
	require.ErrorIs(t, err, ldapstore.ErrCursorExpired)
	require.Contains(t, err.Error(), "no longer in cn=accesslog")
}

// TestAccesslogConcurrentBurst writes 10,000 changes from 4 clients at once while a consumer
// polls, and checks that every change arrives exactly once and in per-entry order, although
// reqStart order is not commit order.
func TestAccesslogConcurrentBurst(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000-change burst: skipped with -short")
	}
	s := ldaptest.Private(t, ldaptest.Options{})
	reader := storeFor(t, s)
	ctx := context.Background()
	src := ldapstore.NewAccesslog(reader, ldapstore.AccesslogOptions{Overlap: 2 * time.Second})
	cursor, err := src.Head(ctx)
	require.NoError(t, err)

	const writers, perWriter = 4, 500 // 5 changes per entry: 10,000 changes
	ops := []ldapstore.EventKind{ldapstore.EventUpsert, ldapstore.EventUpsert, ldapstore.EventUpsert, ldapstore.EventRename, ldapstore.EventDelete}
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each writer is its own LDAP client (its own connection).
			st, err := ldapstore.Open(ctx, ldapstore.Config{URLs: []string{s.URL}, BindDN: s.ServiceDN, BindPassword: s.ServicePW, PoolSize: 1}, nopLogger())
			if err != nil {
				errs <- err
				return
			}
			defer st.Close()
			for i := range perWriter {
				uid := fmt.Sprintf("w%d-%04d", w, i)
				dn := "uid=" + uid + "," + s.PeopleDN
				steps := []func() error{
					func() error { return st.Add(ctx, dn, person(uid)) },
					func() error {
						return st.Modify(ctx, dn, []ldapstore.Change{{Op: ldapstore.ModReplace, Attr: "title", Values: []string{"a"}}}, ldapstore.ModifyOptions{})
					},
					func() error {
						return st.Modify(ctx, dn, []ldapstore.Change{{Op: ldapstore.ModReplace, Attr: "title", Values: []string{"b"}}}, ldapstore.ModifyOptions{})
					},
					func() error { return st.ModifyDN(ctx, dn, "uid="+uid+"-r", true, "") },
					func() error { return st.Delete(ctx, "uid="+uid+"-r,"+s.PeopleDN) },
				}
				for _, step := range steps {
					if err := step(); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()

	var evs []ldapstore.Event
	poll := func() {
		for {
			b, err := src.Poll(ctx, cursor, 1000)
			require.NoError(t, err)
			evs = append(evs, b.Events...)
			cursor = b.Cursor
			if !b.More {
				return
			}
		}
	}
	start := time.Now()
	for running := true; running; {
		select {
		case <-done:
			running = false
		case <-time.After(100 * time.Millisecond):
		}
		poll()
	}
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	wrote := time.Since(start)
	// Late committers are covered by the overlap window: poll once more after it.
	time.Sleep(300 * time.Millisecond)
	poll()
	t.Logf("10,000 changes by %d writers in %s", writers, wrote.Round(time.Millisecond))

	byID := map[string][]ldapstore.EventKind{}
	positions := map[string]bool{}
	for _, ev := range evs {
		require.False(t, positions[ev.Position], "event at %s delivered twice", ev.Position)
		positions[ev.Position] = true
		byID[ev.ID] = append(byID[ev.ID], ev.Kind)
	}
	require.Len(t, evs, writers*perWriter*len(ops), "no event skipped, none invented")
	require.Len(t, byID, writers*perWriter)
	for id, kinds := range byID {
		require.Equal(t, ops, kinds, "entry %s: events out of order", id)
	}
}

func nopLogger() zerolog.Logger { return zerolog.Nop() }

// BenchmarkAccesslog measures how fast the accesslog source reads a backlog (events/s) and
// the lag from a write's completion to its event, with a consumer that polls as soon as the
// previous poll returned (a deployed reader adds up to changes.poll_interval to this).
func BenchmarkAccesslog(b *testing.B) {
	s := ldaptest.Private(b, ldaptest.Options{})
	ctx := context.Background()
	open := func() *ldapstore.Store {
		st, err := ldapstore.Open(ctx, ldapstore.Config{URLs: []string{s.URL}, BindDN: s.ServiceDN, BindPassword: s.ServicePW, PoolSize: 4}, nopLogger())
		require.NoError(b, err)
		b.Cleanup(st.Close)
		return st
	}
	reader := open()
	src := ldapstore.NewAccesslog(reader, ldapstore.AccesslogOptions{}) // the production overlap
	head, err := src.Head(ctx)
	require.NoError(b, err)

	// A backlog of 5,000 adds written by 4 clients.
	const backlog, writers = 5000, 4
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := open()
			for i := w; i < backlog; i += writers {
				uid := fmt.Sprintf("b%05d", i)
				if err := st.Add(ctx, "uid="+uid+","+s.PeopleDN, person(uid)); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()

	read := 0
	start := time.Now()
	for b.Loop() {
		n, _ := readAll(b, src, head)
		read += n
	}
	b.ReportMetric(float64(read)/time.Since(start).Seconds(), "events/s")

	// Lag: one writer modifies 1,000 entries while the consumer follows the log.
	cursor, err := src.Head(ctx)
	require.NoError(b, err)
	writer := open()
	p50, p99 := measureLag(b, src, cursor, 1000, func(i int) (string, error) {
		dn := fmt.Sprintf("uid=b%05d,%s", i, s.PeopleDN)
		return dn, writer.Modify(ctx, dn, []ldapstore.Change{{Op: ldapstore.ModReplace, Attr: "title", Values: []string{"x"}}}, ldapstore.ModifyOptions{})
	})
	b.ReportMetric(float64(p50.Microseconds())/1000, "lag-p50-ms")
	b.ReportMetric(float64(p99.Microseconds())/1000, "lag-p99-ms")
}

// readAll polls src from cursor until it has nothing more and returns the number of events
// and the cursor reached.
func readAll(b *testing.B, src interface {
	Poll(context.Context, string, int) (ldapstore.Batch, error)
}, cursor string,
) (int, string) {
	b.Helper()
	read := 0
	for {
		batch, err := src.Poll(context.Background(), cursor, 1000)
		if err != nil {
			b.Fatal(err)
		}
		read += len(batch.Events)
		cursor = batch.Cursor
		if !batch.More {
			return read, cursor
		}
	}
}

// measureLag has one writer make changes (modify writes the j-th and returns its DN) while the
// consumer polls src from cursor without pause, and returns the p50 and p99 of the time from
// each write's completion to the poll that returned its event.
func measureLag(b *testing.B, src interface {
	Poll(context.Context, string, int) (ldapstore.Batch, error)
}, cursor string, changes int, modify func(j int) (string, error),
) (time.Duration, time.Duration) {
	b.Helper()
	var mu sync.Mutex
	wrote := make(map[string]time.Time, changes)
	seen := make(map[string]time.Time, changes)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for j := range changes {
			dn, err := modify(j)
			if err != nil {
				b.Error(err)
				return
			}
			mu.Lock()
			wrote[ldapstore.NormalizeDN(dn)] = time.Now()
			mu.Unlock()
		}
	}()
	ctx := context.Background()
	for finished := false; !finished || len(seen) < changes; {
		select {
		case <-done:
			finished = true
		default:
		}
		batch, err := src.Poll(ctx, cursor, 1000)
		require.NoError(b, err)
		now := time.Now()
		for _, ev := range batch.Events {
			if k := ldapstore.NormalizeDN(ev.DN); seen[k].IsZero() {
				seen[k] = now
			}
		}
		cursor = batch.Cursor
		if finished && len(seen) < changes {
			time.Sleep(10 * time.Millisecond)
		}
	}
	lags := make([]time.Duration, 0, changes)
	mu.Lock()
	for dn, w := range wrote {
		lags = append(lags, max(seen[dn].Sub(w), 0))
	}
	mu.Unlock()
	slices.Sort(lags)
	return lags[len(lags)/2], lags[len(lags)*99/100]
}
