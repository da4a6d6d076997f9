package capture_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/bridge/capture"
	"github.com/scimbridge/scimbridge/bridge/config"
	"github.com/scimbridge/scimbridge/bridge/state"
	"github.com/scimbridge/scimbridge/ldapstore"
	"github.com/scimbridge/scimbridge/ldapstore/ldaptest"
	"github.com/scimbridge/scimbridge/mapping"
)

func TestMain(m *testing.M) { os.Exit(ldaptest.RunMain(m, ldaptest.Options{})) }

// recorder is the Sink of the tests: it keeps every batch and writes one outbox item per
// change through the transaction, as the outbound engine will.
type recorder struct {
	mu      sync.Mutex
	batches [][]capture.Change
	fail    error
}

func (r *recorder) sink(_ context.Context, tx *state.Tx, batch []capture.Change) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	out, err := tx.Bucket("outbox", "test")
	if err != nil {
		return err
	}
	for _, ch := range batch {
		seq, err := out.NextSequence()
		if err != nil {
			return err
		}
		if err := out.PutJSON(fmt.Appendf(nil, "%020d", seq), map[string]string{"id": ch.ID, "kind": string(ch.Kind)}); err != nil {
			return err
		}
	}
	r.batches = append(r.batches, batch)
	return nil
}

// take returns and forgets the changes recorded so far, flattened.
func (r *recorder) take() []capture.Change {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []capture.Change
	for _, b := range r.batches {
		out = append(out, b...)
	}
	r.batches = nil
	return out
}

type env struct {
	s              *ldaptest.Server
	st             *ldapstore.Store
	people, groups string
	dir            string
	db             *state.DB
	rec            *recorder
	r              *capture.Reader
	reg            *prometheus.Registry
	src            capture.Source
	// scope is the Reader's; the zero value is OpenLDAP's below people and groups.
	scope capture.Scope
}

func openStore(t *testing.T, s *ldaptest.Server) *ldapstore.Store {
	t.Helper()
	st, err := ldapstore.Open(context.Background(), ldapstore.Config{
		URLs: []string{s.URL}, BindDN: s.ServiceDN, BindPassword: s.ServicePW,
		PoolSize: 4, DialTimeout: 2 * time.Second, Timeout: 5 * time.Second, PageSize: 100,
	}, zerolog.Nop())
	require.NoError(t, err)
	t.Cleanup(st.Close)
	return st
}

func accesslog(st *ldapstore.Store) capture.Source {
	return ldapstore.NewAccesslog(st, ldapstore.AccesslogOptions{Overlap: 2 * time.Second})
}

func newEnv(t *testing.T, s *ldaptest.Server, base string, src func(*ldapstore.Store) capture.Source) *env {
	t.Helper()
	e := &env{s: s, st: openStore(t, s), people: "ou=people," + base, groups: "ou=groups," + base, dir: t.TempDir(), rec: &recorder{}}
	e.src = src(e.st)
	e.open(t, 1000)
	return e
}

// open (re)opens the state file and builds a Reader over it.
func (e *env) open(t *testing.T, batch int) {
	t.Helper()
	db, err := state.Open(e.dir)
	require.NoError(t, err)
	e.db = db
	t.Cleanup(func() { _ = db.Close() })
	e.reg = prometheus.NewRegistry()
	if e.scope.IDAttribute == "" {
		e.scope = capture.Scope{
			Users:       ldapstore.Search{Base: e.people, Filter: "(objectClass=inetOrgPerson)"},
			Groups:      ldapstore.Search{Base: e.groups, Filter: "(objectClass=groupOfNames)"},
			IDAttribute: "entryUUID",
		}
	}
	r, err := capture.New(capture.Options{
		Source: e.src, Directory: e.st, State: db, Sink: capture.CommitFunc(e.rec.sink), Logger: zerolog.Nop(), Registerer: e.reg,
		Scope:        e.scope,
		PollInterval: 50 * time.Millisecond, BatchSize: batch,
	})
	require.NoError(t, err)
	t.Cleanup(r.Close)
	e.r = r
}

func (e *env) close(t *testing.T) {
	t.Helper()
	e.r.Close()
	require.NoError(t, e.db.Close())
}

func (e *env) sync(t *testing.T) []capture.Change {
	t.Helper()
	_, err := e.r.Sync(context.Background())
	require.NoError(t, err)
	return e.rec.take()
}

func (e *env) idmap(t *testing.T) map[string]state.IDEntry {
	t.Helper()
	out := map[string]state.IDEntry{}
	require.NoError(t, e.db.View(func(tx *state.Tx) error {
		ids, err := tx.IDMap("directory")
		if err != nil {
			return err
		}
		return ids.ForEach(func(id string, v state.IDEntry) error { out[id] = v; return nil })
	}))
	return out
}

func (e *env) cursor(t *testing.T) string {
	t.Helper()
	var c string
	require.NoError(t, e.db.View(func(tx *state.Tx) error {
		cur, _, err := tx.Cursor("changes")
		c = cur.Value
		return err
	}))
	return c
}

func (e *env) outboxLen(t *testing.T) int {
	t.Helper()
	n := 0
	require.NoError(t, e.db.View(func(tx *state.Tx) error {
		b, err := tx.Bucket("outbox", "test")
		if err != nil {
			return err
		}
		n = b.Len()
		return nil
	}))
	return n
}

func person(uid string) map[string][]string {
	return map[string][]string{"objectClass": {"inetOrgPerson"}, "uid": {uid}, "cn": {uid}, "sn": {uid}}
}

func idOf(t *testing.T, st *ldapstore.Store, dn string) string {
	t.Helper()
	e, err := st.Get(context.Background(), dn, []string{"entryUUID"})
	require.NoError(t, err)
	return e.First("entryUUID")
}

type sum struct {
	Kind   ldapstore.EventKind
	Object capture.Object
	ID     string
	DN     string
	OldDN  string
}

func summarize(chs []capture.Change) []sum {
	out := make([]sum, len(chs))
	for i, c := range chs {
		out[i] = sum{c.Kind, c.Object, c.ID, strings.ToLower(c.DN), strings.ToLower(c.OldDN)}
	}
	return out
}

func lower(s string) string { return strings.ToLower(s) }

func TestFirstSyncReconcilesThenFollowsTheLog(t *testing.T) {
	s, ou := ldaptest.OU(t, "follow")
	e := newEnv(t, s, ou, accesslog)
	ctx := context.Background()
	ada, team := "uid=ada,"+e.people, "cn=team,"+e.groups
	require.NoError(t, s.LDIF("dn: "+ada+"\nobjectClass: inetOrgPerson\nuid: ada\ncn: Ada\nsn: Lovelace\n"))
	require.NoError(t, s.LDIF("dn: "+team+"\nobjectClass: groupOfNames\ncn: team\nmember: "+ada+"\n"))
	adaID, teamID := idOf(t, e.st, ada), idOf(t, e.st, team)

	// No cursor yet: a reconcile enumerates the scope and sets the cursor.
	chs := e.sync(t)
	require.Equal(t, []sum{
		{ldapstore.EventUpsert, capture.ObjectUser, adaID, lower(ada), ""},
		{ldapstore.EventUpsert, capture.ObjectGroup, teamID, lower(team), ""},
	}, summarize(chs))
	for _, c := range chs {
		require.True(t, c.Reconcile)
		require.Nil(t, c.Prev)
		require.NotNil(t, c.Entry)
		require.NotEmpty(t, c.Hash)
	}
	require.True(t, strings.HasPrefix(e.cursor(t), "accesslog:"))
	require.Empty(t, e.sync(t), "nothing new")

	// The bridge adds Grace.
	grace := "uid=grace," + e.people
	require.NoError(t, e.st.Add(ctx, grace, person("grace")))
	graceID := idOf(t, e.st, grace)
	chs = e.sync(t)
	require.Equal(t, []sum{{ldapstore.EventUpsert, capture.ObjectUser, graceID, lower(grace), ""}}, summarize(chs))
	require.Equal(t, ldapstore.OriginBridge, chs[0].Origin)
	require.Nil(t, chs[0].Prev)
	require.False(t, chs[0].Reconcile)

	// An admin modifies Ada.
	require.NoError(t, s.LDIF("dn: "+ada+"\nchangetype: modify\nreplace: title\ntitle: Countess\n"))
	chs = e.sync(t)
	require.Equal(t, []sum{{ldapstore.EventUpsert, capture.ObjectUser, adaID, lower(ada), ""}}, summarize(chs))
	require.Equal(t, ldapstore.OriginExternal, chs[0].Origin)
	require.NotNil(t, chs[0].Prev)
	require.NotEqual(t, chs[0].Prev.Hash, chs[0].Hash)
	require.False(t, chs[0].Unchanged())
	require.Equal(t, []string{"Countess"}, chs[0].Entry.Get("title"))

	// Renames: in place, then to another parent inside the users base (newSuperior).
	require.NoError(t, e.st.ModifyDN(ctx, ada, "uid=ada.l", true, ""))
	ada2 := "uid=ada.l," + e.people
	chs = e.sync(t)
	require.Equal(t, []sum{{ldapstore.EventRename, capture.ObjectUser, adaID, lower(ada2), lower(ada)}}, summarize(chs))
	require.NoError(t, e.st.Add(ctx, "ou=staff,"+e.people, map[string][]string{"objectClass": {"organizationalUnit"}, "ou": {"staff"}}))
	require.NoError(t, s.LDIF("dn: "+ada2+"\nchangetype: modrdn\nnewrdn: uid=ada.l\ndeleteoldrdn: 1\nnewsuperior: ou=staff,"+e.people+"\n"))
	ada3 := "uid=ada.l,ou=staff," + e.people
	chs = e.sync(t)
	require.Equal(t, []sum{{ldapstore.EventRename, capture.ObjectUser, adaID, lower(ada3), lower(ada2)}}, summarize(chs),
		"the OU is not in scope: no change for it")

	// Group membership: the group changes, not the user.
	require.NoError(t, e.st.Modify(ctx, team, []ldapstore.Change{{Op: ldapstore.ModReplace, Attr: "member", Values: []string{ada3, grace}}}, ldapstore.ModifyOptions{}))
	chs = e.sync(t)
	require.Equal(t, []sum{{ldapstore.EventUpsert, capture.ObjectGroup, teamID, lower(team), ""}}, summarize(chs))
	require.ElementsMatch(t, []string{lower(ada3), lower(grace)}, lowerAll(chs[0].Entry.Get("member")))

	// Moving Ada out of the users base is leaving scope: a delete for the bridge.
	require.NoError(t, e.st.ModifyDN(ctx, ada3, "uid=ada.l", true, ou))
	chs = e.sync(t)
	require.Equal(t, []sum{{ldapstore.EventDelete, capture.ObjectUser, adaID, lower(ada3), ""}}, summarize(chs))
	require.NotContains(t, e.idmap(t), adaID)

	// A delete.
	require.NoError(t, e.st.Modify(ctx, team, []ldapstore.Change{{Op: ldapstore.ModReplace, Attr: "member", Values: []string{"uid=ada.l," + ou}}}, ldapstore.ModifyOptions{}))
	require.NoError(t, e.st.Delete(ctx, grace))
	chs = e.sync(t)
	require.Equal(t, []sum{
		{ldapstore.EventUpsert, capture.ObjectGroup, teamID, lower(team), ""},
		{ldapstore.EventDelete, capture.ObjectUser, graceID, lower(grace), ""},
	}, summarize(chs))
	m := e.idmap(t)
	require.Len(t, m, 1)
	require.Equal(t, "group", m[teamID].Kind)

	// Every change was written to the outbox in the cursor's transaction.
	require.Equal(t, 10, e.outboxLen(t))
	require.Greater(t, eventsMetric(t, e.reg, "upsert"), 0.0)
}

// eventsMetric reads scimbridge_changes_events_total for kind from the registry.
func eventsMetric(t *testing.T, reg *prometheus.Registry, kind string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != "scimbridge_changes_events_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "kind" && l.GetValue() == kind {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// metricValue reads a counter or gauge of reg: the series whose label has value (any series
// when label is ""); 0 when there is none.
func metricValue(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := label == ""
			for _, l := range m.GetLabel() {
				match = match || l.GetName() == label && l.GetValue() == value
			}
			if !match {
				continue
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

func lowerAll(v []string) []string {
	out := make([]string, len(v))
	for i, s := range v {
		out[i] = lower(s)
	}
	return out
}

func TestSinkFailureLeavesTheCursorAndRetries(t *testing.T) {
	s, ou := ldaptest.OU(t, "sinkfail")
	e := newEnv(t, s, ou, accesslog)
	require.Empty(t, e.sync(t))
	before := e.cursor(t)

	require.NoError(t, e.st.Add(context.Background(), "uid=ada,"+e.people, person("ada")))
	e.rec.fail = errors.New("outbox full")
	_, err := e.r.Sync(context.Background())
	require.ErrorContains(t, err, "outbox full")
	require.Equal(t, before, e.cursor(t), "no cursor advance without its work")
	require.Empty(t, e.idmap(t))
	require.Zero(t, e.outboxLen(t))
	require.Contains(t, e.r.Stats().LastError, "outbox full")

	e.rec.fail = nil
	chs := e.sync(t)
	require.Len(t, chs, 1)
	require.Equal(t, 1, e.outboxLen(t))
	require.NotEqual(t, before, e.cursor(t))
	require.Empty(t, e.r.Stats().LastError)
}

func TestChangesWhileStoppedArriveInOrderAfterRestart(t *testing.T) {
	s, ou := ldaptest.OU(t, "restart")
	e := newEnv(t, s, ou, accesslog)
	ctx := context.Background()
	require.Empty(t, e.sync(t))
	e.close(t)

	var want []string
	for i := range 9 {
		dn := fmt.Sprintf("uid=u%d,%s", i, e.people)
		require.NoError(t, e.st.Add(ctx, dn, person(fmt.Sprintf("u%d", i))))
		want = append(want, "upsert "+lower(dn))
	}
	require.NoError(t, e.st.Delete(ctx, "uid=u0,"+e.people))
	// u0 is gone when the reader comes back: the engine never knew it, so neither its add
	// nor its delete is news.
	want = want[1:]
	// Reopened state, a new Reader, small batches: everything else, in log order.
	e.open(t, 2)
	var got []string
	for _, c := range e.sync(t) {
		got = append(got, string(c.Kind)+" "+lower(c.DN))
	}
	require.Equal(t, want, got)
}

func TestPurgedAccesslogLeadsToAReconcile(t *testing.T) {
	s := ldaptest.Private(t, ldaptest.Options{LogPurge: "00:00:02 00:00:01"})
	e := newEnv(t, s, ldaptest.DefaultSuffix, accesslog)
	ctx := context.Background()
	bob, carol := "uid=bob,"+e.people, "uid=carol,"+e.people
	require.NoError(t, e.st.Add(ctx, bob, person("bob")))
	require.NoError(t, e.st.Add(ctx, carol, person("carol")))
	bobID, carolID := idOf(t, e.st, bob), idOf(t, e.st, carol)
	require.Len(t, e.sync(t), 2)
	cursor := e.cursor(t)
	e.close(t)

	// While the reader is stopped: an add, a change and a delete, and the log is purged
	// past the cursor.
	alice := "uid=alice," + e.people
	require.NoError(t, e.st.Add(ctx, alice, person("alice")))
	aliceID := idOf(t, e.st, alice)
	require.NoError(t, e.st.Modify(ctx, bob, []ldapstore.Change{{Op: ldapstore.ModReplace, Attr: "title", Values: []string{"new"}}}, ldapstore.ModifyOptions{}))
	require.NoError(t, e.st.Delete(ctx, carol))
	require.Eventually(t, func() bool {
		_, err := e.src.Poll(ctx, cursor, 10)
		return errors.Is(err, ldapstore.ErrCursorExpired)
	}, 20*time.Second, 200*time.Millisecond)

	e.open(t, 1000)
	byID := requireReconciled(t, e, cursor, aliceID, bobID, carolID)
	require.Equal(t, lower(carol), lower(byID[carolID].DN))

	// And the log is followed again from the new cursor.
	require.NoError(t, e.st.Delete(ctx, alice))
	chs := e.sync(t)
	require.Equal(t, []sum{{ldapstore.EventDelete, capture.ObjectUser, aliceID, lower(alice), ""}}, summarize(chs))
}

// requireReconciled syncs e's reader, which must find the cursor lost and reconcile: the add
// (added), modify (changed) and delete (deleted) made meanwhile, a fresh cursor, one reconcile.
func requireReconciled(t *testing.T, e *env, cursor, added, changed, deleted string) map[string]capture.Change {
	t.Helper()
	byID := map[string]capture.Change{}
	n, err := e.r.Sync(context.Background())
	require.NoError(t, err)
	require.Equal(t, 3, n, "the sync counts what the reconcile changed and deleted")
	for _, c := range e.rec.take() {
		require.True(t, c.Reconcile)
		byID[c.ID] = c
	}
	require.Len(t, byID, 3)
	require.Equal(t, ldapstore.EventUpsert, byID[added].Kind)
	require.Nil(t, byID[added].Prev, "the add made meanwhile")
	require.False(t, byID[changed].Unchanged(), "the change made meanwhile")
	require.Equal(t, ldapstore.EventDelete, byID[deleted].Kind, "the delete made meanwhile")
	require.NotEqual(t, cursor, e.cursor(t), "a fresh cursor")
	require.Equal(t, uint64(1), e.r.Stats().Reconciles)
	require.InDelta(t, 1, metricValue(t, e.reg, "scimbridge_changes_reconciles_total", "result", "ok"), 0)
	require.InDelta(t, 0, metricValue(t, e.reg, "scimbridge_changes_reconciles_total", "result", "error"), 0)
	return byID
}

func TestTimestampSourceFindsDeletesThroughTheReconcile(t *testing.T) {
	s, ou := ldaptest.OU(t, "tsdel")
	e := newEnv(t, s, ou, func(st *ldapstore.Store) capture.Source {
		src, err := ldapstore.NewTimestamp(st, ldapstore.TimestampOptions{Bases: []string{ou}, IDAttribute: "entryUUID", Overlap: 2 * time.Second})
		require.NoError(t, err)
		return src
	})
	ctx := context.Background()
	ada, grace := "uid=ada,"+e.people, "uid=grace,"+e.people
	require.NoError(t, e.st.Add(ctx, ada, person("ada")))
	require.NoError(t, e.st.Add(ctx, grace, person("grace")))
	graceID := idOf(t, e.st, grace)
	require.Len(t, e.sync(t), 2)

	require.NoError(t, e.st.Modify(ctx, ada, []ldapstore.Change{{Op: ldapstore.ModReplace, Attr: "title", Values: []string{"x"}}}, ldapstore.ModifyOptions{}))
	require.NoError(t, e.st.Delete(ctx, grace))
	chs := e.sync(t)
	for _, c := range chs {
		require.NotEqual(t, ldapstore.EventDelete, c.Kind, "modifyTimestamp cannot show a delete")
	}
	require.Contains(t, e.idmap(t), graceID)

	res, err := e.r.Reconcile(ctx)
	require.NoError(t, err)
	require.Equal(t, capture.ReconcileResult{Entries: 1, Changed: 0, Deleted: 1}, res)
	var deletes []sum
	for _, c := range e.rec.take() {
		if c.Kind == ldapstore.EventDelete {
			deletes = append(deletes, summarize([]capture.Change{c})[0])
		} else {
			require.True(t, c.Unchanged(), "the modify was already seen by the poll")
		}
	}
	require.Equal(t, []sum{{ldapstore.EventDelete, capture.ObjectUser, graceID, lower(grace), ""}}, deletes)
	require.NotContains(t, e.idmap(t), graceID)
}

// failingDir passes through to the store but breaks the enumeration after n entries.
type failingDir struct {
	capture.Directory
	after int
}

func (f failingDir) Walk(ctx context.Context, q ldapstore.Search, fn func(mapping.Entry) error) error {
	n := 0
	err := f.Directory.Walk(ctx, q, func(e mapping.Entry) error {
		if n == f.after {
			return fmt.Errorf("connection lost: %w", ldapstore.ErrUnavailable)
		}
		n++
		return fn(e)
	})
	return err
}

func TestReconcileNeverDeletesOnAFailedEnumeration(t *testing.T) {
	s := ldaptest.Private(t, ldaptest.Options{})
	e := newEnv(t, s, ldaptest.DefaultSuffix, accesslog)
	ctx := context.Background()
	for _, u := range []string{"a", "b", "c"} {
		require.NoError(t, e.st.Add(ctx, "uid="+u+","+e.people, person(u)))
	}
	require.Len(t, e.sync(t), 3)

	// A partial result (the walk breaking off): TestCaptureNeverDeletesOnAPartialRead, on
	// every kind of directory. Here, the directory down altogether.
	require.NoError(t, s.Stop())
	_, err := e.r.Reconcile(ctx)
	require.ErrorIs(t, err, ldapstore.ErrUnavailable)
	require.InDelta(t, 1, metricValue(t, e.reg, "scimbridge_changes_reconciles_total", "result", "error"), 0)
	_, err = e.r.Sync(ctx)
	require.Error(t, err)
	require.InDelta(t, 1, metricValue(t, e.reg, "scimbridge_changes_errors_total", "", ""), 0)
	require.NotEmpty(t, e.r.Stats().LastError)
	require.Empty(t, e.rec.take())
	require.Len(t, e.idmap(t), 3)

	// Back up: nothing was lost, nothing is deleted.
	require.NoError(t, s.Start())
	res, err := e.r.Reconcile(ctx)
	require.NoError(t, err)
	require.Equal(t, capture.ReconcileResult{Entries: 3}, res)
	_, err = e.r.Sync(ctx)
	require.NoError(t, err)
	require.InDelta(t, 1, metricValue(t, e.reg, "scimbridge_changes_errors_total", "", ""), 0, "only the failed sync counted")
	require.Empty(t, e.r.Stats().LastError, "cleared by the sync that worked")
}

func TestRunFollowsUntilCancelled(t *testing.T) {
	s, ou := ldaptest.OU(t, "run")
	e := newEnv(t, s, ou, accesslog)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.r.Run(ctx) }()
	require.Eventually(t, func() bool { return e.cursor(t) != "" }, 10*time.Second, 20*time.Millisecond)
	written := time.Now()
	require.NoError(t, e.st.Add(context.Background(), "uid=ada,"+e.people, person("ada")))
	var got []capture.Change
	require.Eventually(t, func() bool { got = append(got, e.rec.take()...); return len(got) == 1 }, 10*time.Second, 10*time.Millisecond)
	t.Logf("write to sink: %s", time.Since(written).Round(time.Millisecond))
	cancel()
	require.NoError(t, <-done)
	st := e.r.Stats()
	require.Equal(t, "accesslog", st.Source)
	require.Equal(t, uint64(1), st.Events[ldapstore.EventUpsert])
	require.False(t, st.LastPoll.IsZero())
	require.InDelta(t, 1.0, eventsMetric(t, e.reg, "upsert"), 0)
	require.InDelta(t, float64(time.Now().Unix()), metricValue(t, e.reg, "scimbridge_changes_last_poll_timestamp_seconds", "", ""), 60,
		"the last poll, in Unix seconds")
	mfs, err := e.reg.Gather()
	require.NoError(t, err)
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
	}
	require.Subset(t, names, []string{"scimbridge_changes_lag_seconds", "scimbridge_changes_reconciles_total", "scimbridge_changes_last_poll_timestamp_seconds"})
}

func testConfig(dir, base string) *config.Config {
	return &config.Config{
		State: config.State{Dir: dir},
		LDAP: config.LDAP{
			BaseDN: base,
			Users:  config.Users{BaseDN: "ou=people," + base, Filter: "(objectClass=inetOrgPerson)"},
			Groups: config.Groups{BaseDN: "ou=groups," + base, Filter: "(objectClass=groupOfNames)"},
		},
		Changes: config.Changes{PollInterval: config.Duration{Duration: 50 * time.Millisecond}, Overlap: config.Duration{Duration: 2 * time.Second}},
	}
}

func TestPrintChanges(t *testing.T) {
	s, ou := ldaptest.OU(t, "print")
	e := newEnv(t, s, ou, accesslog)
	ctx := context.Background()
	require.Empty(t, e.sync(t))
	e.close(t) // the daemon stopped: its cursor is readable

	ada, team := "uid=ada,"+e.people, "cn=team,"+e.groups
	require.NoError(t, e.st.Add(ctx, ada, person("ada")))
	require.NoError(t, s.LDIF("dn: "+team+"\nobjectClass: groupOfNames\ncn: team\nmember: "+ada+"\n"))
	require.NoError(t, e.st.Add(ctx, "cn=elsewhere,"+ou, map[string][]string{"objectClass": {"organizationalRole"}, "cn": {"elsewhere"}}))
	require.NoError(t, e.st.ModifyDN(ctx, ada, "uid=ada2", true, ""))

	cfg := testConfig(e.dir, ou)
	var out bytes.Buffer
	require.NoError(t, capture.PrintChanges(ctx, cfg, e.st, &out, false))
	lines := decodeLines(t, out.Bytes())
	require.Len(t, lines, 3, out.String())
	require.Equal(t, "upsert", lines[0]["kind"])
	require.Equal(t, "user", lines[0]["object"])
	require.Equal(t, "bridge", lines[0]["origin"])
	require.Equal(t, "group", lines[1]["object"])
	require.Equal(t, "external", lines[1]["origin"])
	require.Equal(t, "rename", lines[2]["kind"])
	require.Equal(t, lower(ada), lower(lines[2]["old_dn"].(string)))
	for _, l := range lines {
		for _, k := range []string{"kind", "id", "dn", "object", "origin", "actor", "time", "position"} {
			require.Contains(t, l, k)
		}
	}
	// It read the cursor without consuming it and without holding the file.
	db, err := state.Open(e.dir)
	require.NoError(t, err)
	require.NoError(t, db.View(func(tx *state.Tx) error {
		c, _, err := tx.Cursor("changes")
		require.NotEmpty(t, c.Value)
		return err
	}))

	// --follow: keeps printing new events until cancelled, even while the daemon holds the
	// state file (then it starts from the oldest event the log has).
	fctx, cancel := context.WithCancel(ctx)
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- capture.PrintChanges(fctx, cfg, e.st, pw, true); pw.Close() }()
	sc := bufio.NewScanner(pr)
	require.NoError(t, e.st.Add(ctx, "uid=zed,"+e.people, person("zed")))
	found := false
	for sc.Scan() {
		var l map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &l))
		if strings.HasPrefix(lower(l["dn"].(string)), "uid=zed,") {
			found = true
			break
		}
	}
	require.True(t, found)
	cancel()
	go func() {
		for sc.Scan() { //nolint:revive // drain until the writer closes
		}
	}()
	require.NoError(t, <-done)

	// A stored cursor the log no longer covers: what the log still has is printed.
	require.NoError(t, db.Update(func(tx *state.Tx) error {
		c, _, err := tx.Cursor("changes")
		if err != nil {
			return err
		}
		stale := regexp.MustCompile(`\d{14}\.\d{6}Z`).ReplaceAllString(c.Value, "20000101000000.000000Z")
		require.NotEqual(t, c.Value, stale)
		return tx.SetCursor("changes", stale)
	}))
	require.NoError(t, db.Close())
	out.Reset()
	require.NoError(t, capture.PrintChanges(ctx, cfg, e.st, &out, false))
	require.GreaterOrEqual(t, len(decodeLines(t, out.Bytes())), 4, "from the oldest record: ada, team, the rename, zed")
}

func decodeLines(t *testing.T, b []byte) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var m map[string]any
		require.NoError(t, json.Unmarshal(line, &m))
		out = append(out, m)
	}
	return out
}

func TestNewSourceFollowsTheDialect(t *testing.T) {
	s, ou := ldaptest.OU(t, "source")
	st := openStore(t, s)
	ctx := context.Background()
	cfg := testConfig(t.TempDir(), ou)
	src, err := capture.NewSource(ctx, cfg, st)
	require.NoError(t, err)
	require.Equal(t, "accesslog", src.Name())
	cfg.Changes.Source = "timestamp"
	src, err = capture.NewSource(ctx, cfg, st)
	require.NoError(t, err)
	require.IsType(t, &ldapstore.Timestamp{}, src)
	cfg.Changes.Source = "nope"
	_, err = capture.NewSource(ctx, cfg, st)
	require.ErrorContains(t, err, `unknown value "nope"`)
	require.Equal(t, "changelog", capture.DefaultSource(ldapstore.Dialect389DS))
	require.Equal(t, "dirsync", capture.DefaultSource(ldapstore.DialectAD))
	require.Equal(t, "timestamp", capture.DefaultSource(ldapstore.DialectGeneric))

	_, err = capture.New(capture.Options{})
	require.ErrorContains(t, err, "Options.Source is required")
	require.ErrorContains(t, err, "Options.Sink is required")
	require.ErrorContains(t, err, "Options.Scope needs a users or a groups base")
	opts := capture.Options{
		Source: src, Directory: st, State: db(t), Sink: capture.CommitFunc(nil),
		Scope: capture.Scope{Groups: ldapstore.Search{Base: "ou=groups," + s.Suffix}, IDAttribute: "entryUUID"},
	}
	_, err = capture.New(opts)
	require.NoError(t, err, "a groups base alone will do")
	opts.Scope = capture.Scope{Users: ldapstore.Search{Base: "ou=people," + s.Suffix}, IDAttribute: "entryUUID"}
	_, err = capture.New(opts)
	require.NoError(t, err, "a users base alone will do")

	// Close unregisters the metrics, so that a replacement can register its own; without a
	// registry there is nothing to unregister.
	reg := prometheus.NewRegistry()
	opts.Registerer = reg
	r, err := capture.New(opts)
	require.NoError(t, err)
	_, err = capture.New(opts)
	require.ErrorContains(t, err, "registering metrics")
	r.Close()
	r, err = capture.New(opts)
	require.NoError(t, err)
	r.Close()
	opts.Registerer = nil
	r, err = capture.New(opts)
	require.NoError(t, err)
	r.Close()
}

func db(t *testing.T) *state.DB {
	t.Helper()
	d, err := state.Open(t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() { _ = d.Close() })
	return d
}

// TestReconcileCommitsInBatches: a reconcile hands the sink BatchSize entries per commit and
// the rest at the end, and no empty commit when nothing was deleted.
func TestReconcileCommitsInBatches(t *testing.T) {
	s, ou := ldaptest.OU(t, "batches")
	e := newEnv(t, s, ou, accesslog)
	e.close(t)
	e.open(t, 2)
	ctx := context.Background()
	for _, u := range []string{"a", "b", "c", "d", "e"} {
		require.NoError(t, e.st.Add(ctx, "uid="+u+","+e.people, person(u)))
	}
	n, err := e.r.Sync(ctx)
	require.NoError(t, err)
	require.Equal(t, 5, n, "the first sync counts every entry it reconciled")
	e.rec.mu.Lock()
	var sizes []int
	for _, b := range e.rec.batches {
		sizes = append(sizes, len(b))
	}
	e.rec.mu.Unlock()
	require.Equal(t, []int{2, 2, 1}, sizes)
}

// TestStoredCursorWhileTheDaemonHoldsTheFile: `scimbridge changes` reads the stored cursor
// when the daemon does not hold the state file, and gives up quickly when it does.
func TestStoredCursorWhileTheDaemonHoldsTheFile(t *testing.T) {
	dir := t.TempDir()
	db, err := state.Open(dir)
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *state.Tx) error { return tx.SetCursor("changes", "c1") }))
	done := make(chan bool, 1)
	go func() { _, ok := capture.StoredCursor(dir); done <- ok }()
	select {
	case ok := <-done:
		require.False(t, ok, "held by another")
	case <-time.After(30 * time.Second):
		t.Fatal("StoredCursor waits for the daemon to let go of the state file")
	}
	require.NoError(t, db.Close())
	c, ok := capture.StoredCursor(dir)
	require.True(t, ok)
	require.Equal(t, "c1", c)
}

// TestPollOutsideTheBasesCommitsNothing: a poll whose events all lie outside the bases hands
// the sink no (empty) batch.
func TestPollOutsideTheBasesCommitsNothing(t *testing.T) {
	s, ou := ldaptest.OU(t, "outside")
	e := newEnv(t, s, ou, accesslog)
	ctx := context.Background()
	require.Empty(t, e.sync(t))
	require.NoError(t, e.st.Add(ctx, "cn=elsewhere,"+ou, map[string][]string{"objectClass": {"organizationalRole"}, "cn": {"elsewhere"}}))
	n, err := e.r.Sync(ctx)
	require.NoError(t, err)
	require.Zero(t, n)
	e.rec.mu.Lock()
	defer e.rec.mu.Unlock()
	require.Empty(t, e.rec.batches)
}

// throttlingSink records, each time the Reader asks it to throttle, how many changes had
// been committed; it lets the pass go on once, then asks it to stop asking.
type throttlingSink struct {
	capture.CommitFunc
	rec   *recorder
	calls []int
}

func (s *throttlingSink) Throttle(context.Context) bool {
	s.rec.mu.Lock()
	n := 0
	for _, b := range s.rec.batches {
		n += len(b)
	}
	s.rec.mu.Unlock()
	s.calls = append(s.calls, n)
	return len(s.calls) < 2
}

// TestReconcileWaitsForAThrottlingSink: a reconcile asks a Sink that throttles after each
// batch it committed (not before, so the Sink sees the work it waits on), and no more once
// the Sink said to stop asking.
func TestReconcileWaitsForAThrottlingSink(t *testing.T) {
	s, ou := ldaptest.OU(t, "throttle")
	e := newEnv(t, s, ou, accesslog)
	ctx := context.Background()
	for _, u := range []string{"a", "b", "c", "d", "e", "f", "g"} {
		require.NoError(t, e.st.Add(ctx, "uid="+u+","+e.people, person(u)))
	}
	sink := &throttlingSink{rec: e.rec}
	sink.CommitFunc = e.rec.sink
	r, err := capture.New(capture.Options{
		Source: e.src, Directory: e.st, State: e.db, Sink: sink, Logger: zerolog.Nop(),
		Scope: e.scope, PollInterval: 50 * time.Millisecond, BatchSize: 2,
	})
	require.NoError(t, err)
	t.Cleanup(r.Close)
	res, err := r.Reconcile(ctx)
	require.NoError(t, err)
	require.Equal(t, 7, res.Entries)
	require.Equal(t, []int{2, 4}, sink.calls, "asked after the first and second batch, then no more")
	require.Len(t, e.rec.take(), 7, "every entry committed")
}

// TestReconcileTakesAnEntryInBothScopesOnce: an entry the users and the groups search both
// return becomes one change, of the scope enumerated first (users), as a lookup decides.
func TestReconcileTakesAnEntryInBothScopesOnce(t *testing.T) {
	s, ou := ldaptest.OU(t, "bothscopes")
	e := newEnv(t, s, ou, accesslog)
	e.close(t)
	e.scope = capture.Scope{
		Users:       ldapstore.Search{Base: ou, Filter: "(|(objectClass=inetOrgPerson)(objectClass=groupOfNames))"},
		Groups:      ldapstore.Search{Base: e.groups, Filter: "(objectClass=groupOfNames)"},
		IDAttribute: "entryUUID",
	}
	e.open(t, 1000)
	ada, team := "uid=ada,"+e.people, "cn=team,"+e.groups
	require.NoError(t, s.LDIF("dn: "+ada+"\nobjectClass: inetOrgPerson\nuid: ada\ncn: Ada\nsn: Lovelace\n"))
	require.NoError(t, s.LDIF("dn: "+team+"\nobjectClass: groupOfNames\ncn: team\nmember: "+ada+"\n"))
	adaID, teamID := idOf(t, e.st, ada), idOf(t, e.st, team)
	require.ElementsMatch(t, []sum{
		{ldapstore.EventUpsert, capture.ObjectUser, adaID, lower(ada), ""},
		{ldapstore.EventUpsert, capture.ObjectUser, teamID, lower(team), ""},
	}, summarize(e.sync(t)))
}
