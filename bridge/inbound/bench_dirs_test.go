package inbound_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/scimbridge/scimbridge/bridge/inbound"
	"github.com/scimbridge/scimbridge/ldapstore"
	"github.com/scimbridge/scimbridge/ldapstore/ldaptest"
	"github.com/scimbridge/scimbridge/mapping"
)

// benchDirUsers is the directory size of BenchmarkInboundDirectories
// (SCIMBRIDGE_BENCH_DIR_USERS, default 5,000): 389-DS and Samba are seeded over LDAP, not
// offline, so it is smaller than BenchmarkInbound's.
func benchDirUsers() int {
	if v, err := strconv.Atoi(os.Getenv("SCIMBRIDGE_BENCH_DIR_USERS")); err == nil && v > 0 {
		return v
	}
	return 5000
}

// dirBench is what BenchmarkInboundDirectories measured on one kind of directory.
type dirBench struct {
	kind                 ldaptest.Kind
	users                int
	scimRate, rawRate    float64
	p50, rp50, p99, rp99 time.Duration
	skipped              string
}

// BenchmarkInboundDirectories measures the SCIM server on OpenLDAP, 389-DS and Samba AD side by
// side, each against raw LDAP on the same server in the same run (8 clients): creates (SCIM
// POST /Users ÷ raw adds of the same entries, as the dialect writes them: on AD one add with
// the account enabled, where the bridge adds it disabled, then enables it) and userName eq
// lookups (p50 and p99 ÷ the same indexed search). Each server is private and seeded over
// LDAP with SCIMBRIDGE_BENCH_DIR_USERS users; slapd runs with dbnosync and Samba with
// ldb:nosync, as in the tests, 389-DS durable (its default).
func BenchmarkInboundDirectories(b *testing.B) {
	n := benchDirUsers()
	var results []dirBench
	for iter := 0; iter < b.N; iter++ {
		results = results[:0]
		for _, k := range ldaptest.Kinds {
			results = append(results, benchDirectory(b, k, n))
		}
	}
	w := os.Stdout
	fmt.Fprintf(w, "\nBenchmarkInboundDirectories: %d users each, %d clients, HTTP over loopback\n", n, benchConcurrency)
	fmt.Fprintf(w, "  %-10s %12s %12s %8s %12s %12s %8s %12s %12s %8s\n", "directory", "SCIM c/s", "raw c/s", "ratio", "SCIM p50", "raw p50", "ratio", "SCIM p99", "raw p99", "ratio")
	for _, r := range results {
		if r.skipped != "" {
			fmt.Fprintf(w, "  %-10s skipped: %s\n", r.kind, r.skipped)
			continue
		}
		fmt.Fprintf(w, "  %-10s %12.0f %12.0f %8.2f %12s %12s %8.2f %12s %12s %8.2f\n", r.kind,
			r.scimRate, r.rawRate, r.scimRate/r.rawRate,
			r.p50.Round(time.Microsecond), r.rp50.Round(time.Microsecond), float64(r.p50)/float64(r.rp50),
			r.p99.Round(time.Microsecond), r.rp99.Round(time.Microsecond), float64(r.p99)/float64(r.rp99))
		b.ReportMetric(r.scimRate/r.rawRate, string(r.kind)+"_create_ratio")
		b.ReportMetric(float64(r.p50)/float64(r.rp50), string(r.kind)+"_lookup_p50_ratio")
	}
}

func benchDirectory(b *testing.B, k ldaptest.Kind, n int) dirBench {
	res := dirBench{kind: k, users: n}
	if ok, hint := ldaptest.KindInstalled(k); !ok {
		res.skipped = hint
		return res
	}
	s, err := ldaptest.StartKind(k, ldaptest.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	open := func() *ldapstore.Store { return benchStore(b, s) }
	raw := open()
	defer raw.Close()
	dialect, err := raw.Dialect(ctx)
	if err != nil {
		b.Fatal(err)
	}
	p := mapping.ProfileFor(string(dialect))
	ad := k == ldaptest.KindAD
	// entry is what the bridge writes for a user created with userName uid.
	entry := func(uid string) (string, map[string][]string) {
		if ad {
			sam := mapping.SAMAccountName(uid, mapping.MaxUserSAMAccountName)
			return "CN=" + sam + "," + s.PeopleDN, map[string][]string{
				"objectClass": {"user"}, "sAMAccountName": {sam}, "userPrincipalName": {uid},
				"givenName": {"Bench"}, "sn": {"User"}, "displayName": {"Bench User"}, "mail": {uid + "@example.org"}, "title": {"Engineer"}, "userAccountControl": {"512"},
			}
		}
		return "uid=" + uid + "," + s.PeopleDN, map[string][]string{
			"objectClass": {"inetOrgPerson"}, "uid": {uid}, "cn": {"Bench User"}, "sn": {"User"},
			"givenName": {"Bench"}, "displayName": {"Bench User"}, "mail": {uid + "@example.org"}, "title": {"Engineer"},
		}
	}
	seed := func(i int) string { return fmt.Sprintf("s%06d", i) }
	parallel(benchConcurrency, n, func(i int) {
		dn, attrs := entry(seed(i))
		if err := raw.Add(ctx, dn, attrs); err != nil {
			b.Error(err)
		}
	})

	const token = "benchmark-token-0123456789"
	scimStore := open()
	defer scimStore.Close()
	srv, err := inbound.New(ctx, inbound.Options{Directory: scimStore, Logger: zerolog.Nop(), Config: inbound.Config{
		BasePath: "/scim/v2", Users: inbound.Users{BaseDN: s.PeopleDN}, Groups: inbound.Groups{BaseDN: s.GroupsDN},
		Tokens: []inbound.Token{{Name: "bench", SHA256: sha256.Sum256([]byte(token))}},
	}})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	hs := httptest.NewServer(srv)
	defer hs.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: benchConcurrency * 2}}
	call := func(method, path string, body []byte) (int, []byte) {
		req, _ := http.NewRequest(method, hs.URL+"/scim/v2"+path, strings.NewReader(string(body)))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/scim+json")
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, data
	}

	umap, err := mapping.NewUserMapFor(p, nil)
	if err != nil {
		b.Fatal(err)
	}
	userAttrs := umap.SearchAttributes(p.Marker, dialect.IDAttribute())
	nameAttr := umap.LDAPAttr("userName")
	pick := func(i int) string { return seed((i*7919 + rand.IntN(97)) % n) }
	var rawTime, scimTime time.Duration
	var rawLat, scimLat []time.Duration
	for round := range 2 {
		prefix := fmt.Sprintf("%s-r%d", k, round)
		t0 := time.Now()
		parallel(benchConcurrency, benchCreates/2, func(i int) {
			dn, attrs := entry(fmt.Sprintf("%s-raw-%05d", prefix, i))
			if err := raw.Add(ctx, dn, attrs); err != nil {
				b.Error(err)
			}
		})
		rawTime += time.Since(t0)
		t0 = time.Now()
		parallel(benchConcurrency, benchCreates/2, func(i int) {
			uid := fmt.Sprintf("%s-scim-%05d", prefix, i)
			body, _ := json.Marshal(map[string]any{
				"schemas": []any{mapping.UserSchemaURN}, "userName": uid, "title": "Engineer", "displayName": "Bench User",
				"name":   map[string]any{"givenName": "Bench", "familyName": "User"},
				"emails": []any{map[string]any{"value": uid + "@example.org", "type": "work", "primary": true}},
			})
			if code, data := call("POST", "/Users", body); code != http.StatusCreated {
				b.Errorf("%s create: %d %s", k, code, data)
			}
		})
		scimTime += time.Since(t0)
		off := round * benchLookups
		rawLat = append(rawLat, latencies(benchConcurrency, benchLookups/2, func(i int) {
			q := ldapstore.Search{
				Base: s.PeopleDN, Scope: ldapstore.ScopeSub, Attrs: userAttrs,
				Filter: "(&" + p.UserFilter + "(" + nameAttr + "=" + ldapstore.EscapeFilter(pick(off+i)) + "))",
			}
			got, err := raw.SearchAll(ctx, q)
			if err != nil || len(got) != 1 {
				b.Errorf("%s raw lookup: %v %d", k, err, len(got))
			}
		})...)
		scimLat = append(scimLat, latencies(benchConcurrency, benchLookups/2, func(i int) {
			code, data := call("GET", "/Users?filter="+urlQuery(`userName eq "`+pick(off+i)+`"`), nil)
			if code != http.StatusOK || !strings.Contains(string(data), `"totalResults":1`) {
				b.Errorf("%s scim lookup: %d %s", k, code, data)
			}
		})...)
	}
	sortDurations(rawLat)
	sortDurations(scimLat)
	res.rawRate, res.scimRate = float64(benchCreates)/rawTime.Seconds(), float64(benchCreates)/scimTime.Seconds()
	res.p50, res.rp50, res.p99, res.rp99 = pct(scimLat, 50), pct(rawLat, 50), pct(scimLat, 99), pct(rawLat, 99)
	return res
}
