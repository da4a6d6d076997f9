package scim_test

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/mapping"
	"github.com/scimbridge/scimbridge/targets"
	"github.com/scimbridge/scimbridge/targets/scim"
	"github.com/scimbridge/scimbridge/targets/targettest"
)

func TestProbe(t *testing.T) {
	tg, srv, _ := newTarget(t, targettest.Options{}, nil)
	res, err := tg.Probe(t.Context())
	require.NoError(t, err)
	require.Equal(t, "GET /ServiceProviderConfig: 200", res.Detail)
	require.WithinDuration(t, time.Now(), res.Date, 2*time.Second)
	require.Equal(t, 1, srv.CountRequests(http.MethodGet, "/ServiceProviderConfig"))

	t.Run("wrong token", func(t *testing.T) {
		tg, _, _ := newTarget(t, targettest.Options{}, func(c *scim.Config) { c.Token = "not-the-token-at-all" })
		_, err := tg.Probe(t.Context())
		require.ErrorIs(t, err, targets.ErrCredentialsRejected)
	})
	t.Run("token endpoint refuses the client", func(t *testing.T) {
		srv := newServer(t, targettest.Options{OAuth2: &targettest.OAuth2Options{ClientID: "bridge", ClientSecret: clientSecret}})
		secret := filepath.Join(t.TempDir(), "secret")
		require.NoError(t, os.WriteFile(secret, []byte("wrong-secret\n"), 0o600))
		c := testConfig(srv)
		oauthConfig(srv, secret)(c)
		tg, _ := open(t, c)
		_, err := tg.Probe(t.Context())
		require.ErrorIs(t, err, targets.ErrCredentialsRejected)
		require.Contains(t, err.Error(), "token endpoint")
	})
	t.Run("unavailable, without quick retries", func(t *testing.T) {
		tg, srv, _ := newTarget(t, targettest.Options{}, nil)
		srv.FailNext(5, http.StatusServiceUnavailable)
		_, err := tg.Probe(t.Context())
		require.ErrorIs(t, err, targets.ErrUnreachable)
		require.Equal(t, 1, srv.CountRequests(http.MethodGet, "/ServiceProviderConfig"))
	})
	t.Run("nothing listens", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := l.Addr().String()
		require.NoError(t, l.Close())
		c := testConfig(srv)
		c.URL = "http://" + addr + "/scim/v2"
		tg, _ := open(t, c)
		_, err = tg.Probe(t.Context())
		require.ErrorIs(t, err, targets.ErrUnreachable)
	})
	t.Run("wrong path", func(t *testing.T) {
		c := testConfig(srv)
		c.URL = srv.URL + "/not-scim"
		tg, _ := open(t, c)
		_, err := tg.Probe(t.Context())
		require.Error(t, err)
		require.True(t, targets.IsPermanent(err))
		require.NotErrorIs(t, err, targets.ErrUnreachable)
	})
}

func TestProgressIsReportedPerTry(t *testing.T) {
	tg, srv, _ := newTarget(t, targettest.Options{}, nil)
	srv.FailNext(2, http.StatusServiceUnavailable)
	n := 0
	ctx := targets.WithProgress(context.Background(), func() { n++ })
	_, _, err := tg.Find(ctx, mapping.KindUser, "userName", "nobody")
	require.NoError(t, err)
	require.Equal(t, 3, n, "one progress report per try")
}
