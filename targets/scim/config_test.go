package scim_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/targets"
	"github.com/scimbridge/scimbridge/targets/scim"
)

// load decodes a testdata file strictly over the defaults, as the bridge does.
func load(t *testing.T, name string) (*scim.Config, error) {
	t.Helper()
	c := scim.DefaultConfig()
	md, err := toml.DecodeFile(filepath.Join("testdata", name), c)
	if err != nil {
		return nil, err
	}
	if und := md.Undecoded(); len(und) > 0 {
		return nil, errors.New("unknown key " + und[0].String())
	}
	return c, nil
}

func TestGoodConfigs(t *testing.T) {
	files, err := filepath.Glob("testdata/*.good.toml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			c, err := load(t, filepath.Base(f))
			require.NoError(t, err)
			require.NoError(t, c.Validate())
		})
	}

	c, err := load(t, "oauth2.good.toml")
	require.NoError(t, err)
	require.Equal(t, 10*time.Second, c.Timeout.Duration)
	require.Equal(t, time.Minute, c.MaxBackoff.Duration)
	require.Equal(t, []string{"scim.read", "scim.write"}, c.Scopes)
	require.Equal(t, map[string]string{"audience": "https://api.example.com"}, c.TokenParams)
	require.Equal(t, targets.Secret("acme"), c.Headers["X-Tenant"])

	c, err = load(t, "bearer.good.toml")
	require.NoError(t, err)
	require.Equal(t, scim.AuthBearer, c.Auth, "default auth")
	require.Equal(t, 30*time.Second, c.Timeout.Duration)
	require.Equal(t, 3, c.MaxRetries)
	require.Equal(t, 500*time.Millisecond, c.MinBackoff.Duration)
	require.Equal(t, 30*time.Second, c.MaxBackoff.Duration)
	require.Equal(t, "/Users", c.UserPath)
	require.Equal(t, "/Groups", c.GroupPath)
	require.Equal(t, 100, c.MembersPerRequest)
	require.Equal(t, 100, c.PageSize)
	require.Equal(t, scim.TokenAuthHeader, c.TokenAuthStyle)

	c, err = load(t, "basic.good.toml")
	require.NoError(t, err)
	require.Zero(t, c.MaxRetries, "0 disables quick retries; it is not replaced by the default")
}

func TestBadConfigs(t *testing.T) {
	expectedErrors := map[string][]string{
		"empty.bad.toml": {
			`url: required`,
			`token or token_file: required when auth = "bearer"`,
		},
		"auth.bad.toml": {
			`auth: unknown value "foo" (want "oauth2", "bearer", "basic" or "none")`,
		},
		"oauth2.bad.toml": {
			`token_url: required when auth = "oauth2"`,
			`client_id: required when auth = "oauth2"`,
			`client_secret or client_secret_file: required when auth = "oauth2"`,
			`token_auth_style: unknown value "body" (want "header" or "params")`,
			`token: only used when auth = "bearer"`,
		},
		"secrets.bad.toml": {
			`token and token_file: set at most one`,
			`client_id: only used when auth = "oauth2"`,
			`username: only used when auth = "basic"`,
		},
		"basic.bad.toml": {
			`username: must not contain ":" (HTTP Basic)`,
			`password and password_file: set at most one`,
		},
		"url.bad.toml": {
			`url: scheme must be http or https, got "ftp"`,
			`client_cert_file and client_key_file: set both or neither`,
		},
		"credentials_in_url.bad.toml": {
			`url: must not carry credentials (use the auth keys)`,
			`token_url: scheme must be http or https, got ""`,
		},
		"numbers.bad.toml": {
			`timeout: must be positive, got 0s`,
			`max_retries: must be between 0 and 10, got -1`,
			`max_backoff: must be at least min_backoff (1s), got 10ms`,
			`user_path: must be a path starting with "/", got "Users"`,
			`group_path: must be a path starting with "/", got "/Groups?x=1"`,
			`members_per_request: must be between 1 and 1000, got 0`,
			`page_size: must be between 1 and 1000, got 5000`,
		},
		"headers.bad.toml": {
			`headers: "Authorization" conflicts with auth = "bearer" (use auth = "none" to send your own)`,
			`headers: "Content-Type" is set by scimbridge and cannot be overridden`,
			`headers: invalid header name "bad name"`,
		},
	}
	files, err := filepath.Glob("testdata/*.bad.toml")
	require.NoError(t, err)
	decodeErrors := map[string]string{
		"duration.bad.toml":    `invalid duration "30" (want e.g. "30s" or "1m")`,
		"unknown_key.bad.toml": `unknown key tokenfile`,
	}
	require.Len(t, files, len(expectedErrors)+len(decodeErrors), "every bad file has expected errors")
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			c, err := load(t, name)
			if want, ok := decodeErrors[name]; ok {
				require.ErrorContains(t, err, want)
				return
			}
			require.NoError(t, err)
			err = c.Validate()
			require.Error(t, err)
			got := strings.Split(err.Error(), "\n")
			if diff := cmp.Diff(expectedErrors[name], got); diff != "" {
				t.Errorf("Validate() errors (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRelativePaths(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "slack.token"), []byte("x\n"), 0o600))
	c, err := load(t, "bearer.good.toml")
	require.NoError(t, err)
	_, err = c.Open("slack", zeroLogger())
	require.ErrorContains(t, err, "token_file: open slack.token", "relative to the working directory without SetDirectory")
	c.SetDirectory(dir)
	_, err = c.Open("slack", zeroLogger())
	require.NoError(t, err)
}
