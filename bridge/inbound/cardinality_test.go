package inbound_test

import (
	"bytes"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/stretchr/testify/require"
)

// TestMetricsStayBoundedUnderRandomRequests: 1,000 requests with made-up methods and paths,
// with and without a token, add a fixed, small number of series to /metrics, and the log
// lines about failed authentications stay short and few.
func TestMetricsStayBoundedUnderRandomRequests(t *testing.T) {
	e := newEnv(t)
	metrics := httptestServer(t, promhttp.HandlerFor(e.reg, promhttp.HandlerOpts{}))
	rnd := rand.New(rand.NewPCG(1, 2))
	letters := "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	word := func(n int) string {
		var b strings.Builder
		for range n {
			b.WriteByte(letters[rnd.IntN(len(letters))])
		}
		return b.String()
	}
	type call struct {
		method, path string
		auth         bool
	}
	calls := make(chan call, 1000)
	for i := range 1000 {
		c := call{method: word(1 + rnd.IntN(2048)), path: "/" + strings.ToLower(word(1+rnd.IntN(2048))), auth: i%2 == 0}
		switch i % 4 {
		case 1:
			c.path = "/scim/v2" + c.path
		case 2:
			c.path = "/scim/v2/Users/" + word(40)
		}
		calls <- c
	}
	close(calls)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for c := range calls {
				req, err := http.NewRequest(c.method, e.http.URL+c.path, nil)
				if err != nil {
					t.Error(err)
					return
				}
				if c.auth {
					req.Header.Set("Authorization", "Bearer "+testToken)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
			}
		})
	}
	wg.Wait()

	mfs, err := e.reg.Gather()
	require.NoError(t, err)
	series, methods := 0, map[string]bool{}
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "scimbridge_inbound_") {
			continue
		}
		for _, m := range mf.GetMetric() {
			series++
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "method" {
					methods[lp.GetValue()] = true
				}
			}
		}
	}
	// Endpoints other, Users, Users/{id} × one method label × a handful of statuses.
	require.LessOrEqual(t, series, 40, "series of the inbound metrics")
	require.Equal(t, map[string]bool{"other": true}, methods, "made-up methods share one label value")

	resp, err := http.Get(metrics.URL)
	require.NoError(t, err)
	defer resp.Body.Close()
	var body bytes.Buffer
	_, _ = body.ReadFrom(resp.Body)
	require.Less(t, body.Len(), 64<<10, "/metrics stays small")

	var authLines int
	for _, line := range strings.Split(e.logs.String(), "\n") {
		if strings.Contains(line, "authentication fail") {
			authLines++
			require.Less(t, len(line), 512, "a log line about an unauthenticated request is short: %s", line)
		}
	}
	require.Positive(t, authLines, "failed authentications are logged")
	require.Less(t, authLines, 60, "but not one line each: their rate is capped")
}
