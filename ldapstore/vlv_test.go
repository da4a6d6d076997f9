package ldapstore_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/ldapstore"
	"github.com/scimbridge/scimbridge/ldapstore/ldaptest"
)

var uidOrder = ldapstore.SortKey{Attr: "uid", OrderingRule: "caseIgnoreOrderingMatch"}

func uids(p ldapstore.Page) []string {
	out := make([]string, len(p.Entries))
	for i, e := range p.Entries {
		out[i] = e.First("uid")
	}
	return out
}

// TestVLVPagesInSortedOrder walks a sorted list window by window and checks every edge: the
// first and last windows, one past the end, count 0 and a filter.
func TestVLVPagesInSortedOrder(t *testing.T) {
	s, ou := ldaptest.OU(t, "vlv")
	st := storeFor(t, s)
	ctx := context.Background()
	supported, err := st.SupportsVLV(ctx)
	require.NoError(t, err)
	require.True(t, supported)

	var want []string
	for i := range 37 {
		// Mixed case: the ordering rule is case-insensitive.
		uid := fmt.Sprintf("User%02d", (i*17)%37)
		if i%2 == 0 {
			uid = strings.ToLower(uid)
		}
		want = append(want, uid)
		require.NoError(t, st.Add(ctx, "uid="+uid+",ou=people,"+ou, person(uid)))
	}
	sort.Slice(want, func(i, j int) bool { return strings.ToLower(want[i]) < strings.ToLower(want[j]) })

	p := st.NewPager(ldapstore.PagerOptions{})
	defer p.Close()
	q := ldapstore.Search{Base: "ou=people," + ou, Scope: ldapstore.ScopeSub, Filter: "(objectClass=inetOrgPerson)", Attrs: []string{"uid"}}
	var got []string
	for offset := 1; offset <= 37; offset += 10 {
		page, err := p.SearchPage(ctx, q, uidOrder, offset, 10)
		require.NoError(t, err)
		require.Equal(t, 37, page.Total)
		got = append(got, uids(page)...)
	}
	require.Equal(t, want, got)

	page, err := p.SearchPage(ctx, q, uidOrder, 37, 10)
	require.NoError(t, err)
	require.Equal(t, want[36:], uids(page), "the last window is short")

	for _, fresh := range []bool{false, true} {
		if fresh {
			p.Invalidate()
		}
		page, err = p.SearchPage(ctx, q, uidOrder, 38, 10)
		require.NoError(t, err, "fresh=%v", fresh)
		require.Empty(t, page.Entries, "past the end: nothing (fresh=%v)", fresh)
		require.Equal(t, 37, page.Total)
	}

	page, err = p.SearchPage(ctx, q, uidOrder, 1, 0)
	require.NoError(t, err)
	require.Empty(t, page.Entries, "count 0 asks for the total only")
	require.Equal(t, 37, page.Total)

	rev := uidOrder
	rev.Reverse = true
	page, err = p.SearchPage(ctx, q, rev, 1, 3)
	require.NoError(t, err)
	require.Equal(t, []string{want[36], want[35], want[34]}, uids(page))

	fq := q
	fq.Filter = "(uid=user1*)"
	page, err = p.SearchPage(ctx, fq, uidOrder, 1, 100)
	require.NoError(t, err)
	require.Equal(t, 10, page.Total)
	require.Len(t, page.Entries, 10)

	fq.Filter = "(uid=nobody)"
	page, err = p.SearchPage(ctx, fq, uidOrder, 1, 100)
	require.NoError(t, err)
	require.Zero(t, page.Total)
	require.Empty(t, page.Entries)
}

// TestVLVContextReuseAndInvalidate: within the reuse window a further page of the same search
// is served from the server's sorted snapshot; Invalidate makes the next one see new entries.
func TestVLVContextReuseAndInvalidate(t *testing.T) {
	s, ou := ldaptest.OU(t, "vlvreuse")
	st := storeFor(t, s)
	ctx := context.Background()
	for i := range 5 {
		require.NoError(t, st.Add(ctx, fmt.Sprintf("uid=u%d,ou=people,%s", i, ou), person(fmt.Sprintf("u%d", i))))
	}
	p := st.NewPager(ldapstore.PagerOptions{Conns: 1, Reuse: time.Minute})
	defer p.Close()
	q := ldapstore.Search{Base: "ou=people," + ou, Scope: ldapstore.ScopeOne, Attrs: []string{"uid", "title"}}
	page, err := p.SearchPage(ctx, q, uidOrder, 1, 2)
	require.NoError(t, err)
	require.Equal(t, 5, page.Total)

	require.NoError(t, st.Add(ctx, "uid=u9,ou=people,"+ou, person("u9")))
	require.NoError(t, st.Modify(ctx, "uid=u3,ou=people,"+ou, []ldapstore.Change{{Op: ldapstore.ModReplace, Attr: "title", Values: []string{"fresh"}}}, ldapstore.ModifyOptions{}))
	page, err = p.SearchPage(ctx, q, uidOrder, 3, 10)
	require.NoError(t, err)
	require.Equal(t, 5, page.Total, "a reused context is a snapshot of the list")
	require.Equal(t, []string{"u2", "u3", "u4"}, uids(page))
	require.Equal(t, "fresh", page.Entries[1].First("title"), "but attributes are read at send time")

	p.Invalidate()
	page, err = p.SearchPage(ctx, q, uidOrder, 3, 10)
	require.NoError(t, err)
	require.Equal(t, 6, page.Total)
	require.Equal(t, []string{"u2", "u3", "u4", "u9"}, uids(page))
}

// TestVLVManySearchesDoNotExhaustTheServer: slapd keeps every VLV sort context until its
// connection closes and refuses more than sssvlv-maxperconn per connection (8 here) and
// sssvlv-max for the server (32 here). Hundreds of distinct searches, some concurrent, must
// keep working, and a plain search on the shared pool must still be able to sort.
func TestVLVManySearchesDoNotExhaustTheServer(t *testing.T) {
	s, ou := ldaptest.OU(t, "vlvmany")
	st := storeFor(t, s)
	ctx := context.Background()
	for i := range 3 {
		require.NoError(t, st.Add(ctx, fmt.Sprintf("uid=m%d,ou=people,%s", i, ou), person(fmt.Sprintf("m%d", i))))
	}
	p := st.NewPager(ldapstore.PagerOptions{Conns: 2})
	defer p.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				// Distinct filters: no context can be reused.
				q := ldapstore.Search{
					Base: "ou=people," + ou, Scope: ldapstore.ScopeOne,
					Filter: fmt.Sprintf("(&(objectClass=inetOrgPerson)(!(uid=x%d-%d)))", w, i), Attrs: []string{"uid"},
				}
				page, err := p.SearchPage(ctx, q, uidOrder, 2, 1)
				if err == nil && (page.Total != 3 || len(page.Entries) != 1 || page.Entries[0].First("uid") != "m1") {
					err = fmt.Errorf("unexpected page %+v", page)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
}

// TestVLVIdleContextsAreReleased: an idle pager connection is closed after the reuse window,
// which is what frees its sort contexts on the server.
func TestVLVIdleContextsAreReleased(t *testing.T) {
	s, ou := ldaptest.OU(t, "vlvidle")
	st := storeFor(t, s)
	ctx := context.Background()
	require.NoError(t, st.Add(ctx, "uid=i1,ou=people,"+ou, person("i1")))
	// No recycling by count: only the idle timer can free the contexts.
	p := st.NewPager(ldapstore.PagerOptions{Conns: 1, Reuse: 50 * time.Millisecond, ContextsPerConn: 1000})
	defer p.Close()
	q := ldapstore.Search{Base: "ou=people," + ou, Scope: ldapstore.ScopeOne, Attrs: []string{"uid"}}
	// 20 rounds, pausing past the window every 5: more contexts than the server allows per
	// connection (8), so this only passes if idle connections are closed.
	for i := range 20 {
		q.Filter = fmt.Sprintf("(!(uid=z%d))", i)
		page, err := p.SearchPage(ctx, q, uidOrder, 1, 1)
		require.NoError(t, err)
		require.Equal(t, 1, page.Total)
		if i%5 == 4 {
			time.Sleep(150 * time.Millisecond)
		}
	}
}

func TestVLVBadSortKeyIsAnError(t *testing.T) {
	s, ou := ldaptest.OU(t, "vlvbad")
	st := storeFor(t, s)
	p := st.NewPager(ldapstore.PagerOptions{})
	defer p.Close()
	q := ldapstore.Search{Base: "ou=people," + ou, Scope: ldapstore.ScopeOne, Attrs: []string{"uid"}}
	// uid has no ORDERING rule of its own.
	_, err := p.SearchPage(context.Background(), q, ldapstore.SortKey{Attr: "uid"}, 1, 10)
	require.ErrorIs(t, err, ldapstore.ErrInvalid)
	// The pager still works afterwards.
	_, err = p.SearchPage(context.Background(), q, uidOrder, 1, 10)
	require.NoError(t, err)
}
