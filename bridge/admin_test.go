package bridge_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/bridge"
	"github.com/scimbridge/scimbridge/bridge/config"
	"github.com/scimbridge/scimbridge/ldapstore/ldaptest"
)

// TestAdminToken: with admin.token_file, /metrics and /status need the token as a bearer token
// (what Prometheus sends from authorization.credentials_file); /healthz and /readyz stay open;
// a reload rotates the token.
func TestAdminToken(t *testing.T) {
	s := ldaptest.Shared(t)
	dir := t.TempDir()
	tokenPath := filepath.Join(dir, "admin.token")
	require.NoError(t, os.WriteFile(tokenPath, []byte("first-admin-token-0123\n"), 0o600))
	base := testConfig(t, s)
	load := func() *config.Config {
		cfg := *base
		cfg.Admin.TokenFile = tokenPath
		require.NoError(t, cfg.LoadSecrets())
		return &cfg
	}
	b, err := bridge.New(bridge.Options{Config: load(), Logger: zerolog.Nop(), Registry: prometheus.NewRegistry()})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, b.Start(ctx))
	t.Cleanup(func() { _ = b.Stop(context.Background()) })
	admin := "http://" + b.AdminAddr()
	with := func(path, token string) int {
		req, err := http.NewRequest("GET", admin+path, nil)
		require.NoError(t, err)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, p := range []string{"/metrics", "/status"} {
		require.Equal(t, http.StatusUnauthorized, with(p, ""), p)
		require.Equal(t, http.StatusUnauthorized, with(p, "wrong-token-0123456789"), p)
		require.Equal(t, http.StatusOK, with(p, "first-admin-token-0123"), p)
	}
	require.Equal(t, http.StatusOK, with("/healthz", ""))
	require.Equal(t, http.StatusOK, with("/readyz", ""))

	require.NoError(t, os.WriteFile(tokenPath, []byte("second-admin-token-0123\n"), 0o600))
	require.NoError(t, b.Reload(load()))
	require.Equal(t, http.StatusUnauthorized, with("/metrics", "first-admin-token-0123"))
	require.Equal(t, http.StatusOK, with("/metrics", "second-admin-token-0123"))
}
