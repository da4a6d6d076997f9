package ldapstore_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scimbridge/scimbridge/ldapstore"
	"github.com/scimbridge/scimbridge/ldapstore/ldaptest"
)

// source is what the change-source benchmark needs of a source.
type source interface {
	Head(ctx context.Context) (string, error)
	Poll(ctx context.Context, cursor string, limit int) (ldapstore.Batch, error)
}

type sourceBench struct {
	name          string
	rate          float64
	p50, p99      time.Duration
	skipped, note string
}

// BenchmarkChangeSources measures every change source on its own kind of directory, side by
// side, like BenchmarkAccesslog: how fast it reads a backlog of 2,000 adds written by 4
// clients (events/s, from its head before the adds), and the lag from a modify's completion
// to its event for 500 modifies by one writer while a consumer polls without pause (a
// deployed reader adds up to changes.poll_interval). Each directory is private.
func BenchmarkChangeSources(b *testing.B) {
	var results []sourceBench
	for iter := 0; iter < b.N; iter++ {
		results = results[:0]
		for _, k := range ldaptest.Kinds {
			results = append(results, benchSources(b, k)...)
		}
	}
	w := os.Stdout
	fmt.Fprintf(w, "\nBenchmarkChangeSources: backlog of 2,000 adds (4 writers), lag of 500 modifies (1 writer)\n")
	fmt.Fprintf(w, "  %-20s %12s %12s %12s\n", "directory/source", "events/s", "lag p50", "lag p99")
	for _, r := range results {
		if r.skipped != "" {
			fmt.Fprintf(w, "  %-20s skipped: %s\n", r.name, r.skipped)
			continue
		}
		fmt.Fprintf(w, "  %-20s %12.0f %12s %12s  %s\n", r.name, r.rate, r.p50.Round(time.Millisecond), r.p99.Round(time.Millisecond), r.note)
		b.ReportMetric(r.rate, strings.ReplaceAll(r.name, "/", "_")+"_events/s")
	}
}

func benchSources(b *testing.B, k ldaptest.Kind) []sourceBench {
	if ok, hint := ldaptest.KindInstalled(k); !ok {
		return []sourceBench{{name: string(k), skipped: hint}}
	}
	s, err := ldaptest.StartKind(k, ldaptest.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	open := func() *ldapstore.Store {
		st, err := ldapstore.Open(ctx, ldapstore.Config{URLs: []string{s.URL}, BindDN: s.ServiceDN, BindPassword: s.ServicePW, PoolSize: 4}, nopLogger())
		if err != nil {
			b.Fatal(err)
		}
		return st
	}
	st := open()
	defer st.Close()
	type named struct {
		name string
		src  source
		note string
	}
	var srcs []named
	switch k {
	case ldaptest.Kind389DS:
		srcs = []named{{"389ds/changelog", ldapstore.NewChangelog389(st, ldapstore.ChangelogOptions{}), "389-DS durable (default)"}}
	case ldaptest.KindAD:
		ds, err := ldapstore.NewDirSync(ctx, st, ldapstore.DirSyncOptions{})
		if err != nil {
			b.Fatal(err)
		}
		usn, err := ldapstore.NewUSN(ctx, st, ldapstore.USNOptions{})
		if err != nil {
			b.Fatal(err)
		}
		srcs = []named{{"ad/dirsync", ds, "Samba 4.17, ldb:nosync"}, {"ad/usn", usn, "Samba 4.17, ldb:nosync"}}
	default:
		srcs = []named{{"openldap/accesslog", ldapstore.NewAccesslog(st, ldapstore.AccesslogOptions{}), "slapd, dbnosync"}}
	}
	heads := make([]string, len(srcs))
	for i, sc := range srcs {
		if heads[i], err = sc.src.Head(ctx); err != nil {
			b.Fatal(err)
		}
	}
	dn := func(i int) string {
		if k == ldaptest.KindAD {
			return fmt.Sprintf("CN=b%05d,%s", i, s.PeopleDN)
		}
		return fmt.Sprintf("uid=b%05d,%s", i, s.PeopleDN)
	}
	attrs := func(i int) map[string][]string {
		uid := fmt.Sprintf("b%05d", i)
		if k == ldaptest.KindAD {
			return map[string][]string{"objectClass": {"user"}, "sAMAccountName": {uid}}
		}
		return person(uid)
	}
	const backlog, writers = 2000, 4
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < backlog; i += writers {
				if err := st.Add(ctx, dn(i), attrs(i)); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()

	var out []sourceBench
	for i, sc := range srcs {
		r := sourceBench{name: sc.name, note: sc.note}
		start := time.Now()
		read, cursor := readAll(b, sc.src, heads[i])
		if read < backlog {
			b.Fatalf("%s read %d events of %d", sc.name, read, backlog)
		}
		r.rate = float64(read) / time.Since(start).Seconds()

		r.p50, r.p99 = measureLag(b, sc.src, cursor, 500, func(j int) (string, error) {
			d := dn(j)
			return d, st.Modify(ctx, d, []ldapstore.Change{{Op: ldapstore.ModReplace, Attr: "title", Values: []string{fmt.Sprint(i, j)}}}, ldapstore.ModifyOptions{})
		})
		out = append(out, r)
	}
	return out
}
