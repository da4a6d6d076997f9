package targets_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/targets"
)

const hidden = "hunter2-s3cret"

type withSecret struct {
	Name     string         `json:"name" toml:"name"`
	Password targets.Secret `json:"password" toml:"password"`
}

func TestSecretNeverShows(t *testing.T) {
	s := targets.Secret(hidden)
	v := withSecret{Name: "bind", Password: s}
	var outputs []string
	outputs = append(outputs,
		fmt.Sprintf("%v %s %q %x %#v %+v", s, s, s, s, s, s),
		fmt.Sprintf("%v %+v %#v", v, v, v),
		fmt.Sprintf("%v %+v", &v, &v),
		fmt.Sprint(s), s.String(), s.GoString(),
	)
	js, err := json.Marshal(v)
	require.NoError(t, err)
	require.JSONEq(t, `{"name":"bind","password":"<secret>"}`, string(js))
	outputs = append(outputs, string(js))
	txt, err := s.MarshalText()
	require.NoError(t, err)
	outputs = append(outputs, string(txt))

	var tm bytes.Buffer
	require.NoError(t, toml.NewEncoder(&tm).Encode(v))
	outputs = append(outputs, tm.String())

	var logs bytes.Buffer
	log := zerolog.New(&logs).Level(zerolog.DebugLevel)
	log.Debug().Interface("secret", s).Stringer("stringer", s).Any("any", v).
		Interface("map", map[string]any{"p": s}).Msgf("%v", s)
	outputs = append(outputs, logs.String())
	require.Contains(t, logs.String(), `"secret":"<secret>"`)

	for _, out := range outputs {
		require.NotContains(t, out, hidden)
	}
	require.Equal(t, "<secret>", s.String())
	require.Equal(t, hidden, s.Reveal())

	// Decoding still reads the real value.
	var dec withSecret
	_, err = toml.Decode(`password = "`+hidden+`"`, &dec)
	require.NoError(t, err)
	require.Equal(t, hidden, dec.Password.Reveal())
	require.NoError(t, json.Unmarshal([]byte(`{"password":"`+hidden+`"}`), &dec))
	require.Equal(t, hidden, dec.Password.Reveal())
}

func TestDuration(t *testing.T) {
	var c struct {
		Timeout targets.Duration `toml:"timeout"`
	}
	_, err := toml.Decode(`timeout = "1m30s"`, &c)
	require.NoError(t, err)
	require.Equal(t, 90*time.Second, c.Timeout.Duration)
	_, err = toml.Decode(`timeout = "soon"`, &c)
	require.ErrorContains(t, err, `invalid duration "soon"`)
	b, err := c.Timeout.MarshalText()
	require.NoError(t, err)
	require.Equal(t, "1m30s", string(b))
}

func TestErrorClassification(t *testing.T) {
	base := errors.New("boom")
	re := fmt.Errorf("scim: create: %w", &targets.RetryableError{Err: base, After: 3 * time.Second})
	after, ok := targets.IsRetryable(re)
	require.True(t, ok)
	require.Equal(t, 3*time.Second, after)
	require.ErrorIs(t, re, base)
	require.False(t, targets.IsPermanent(re))
	require.Equal(t, "scim: create: boom (retry after 3s)", re.Error())

	pe := fmt.Errorf("scim: replace: %w", &targets.PermanentError{Status: 404, Body: "{}", Err: base})
	require.True(t, targets.IsPermanent(pe))
	require.True(t, targets.IsNotFound(pe))
	require.ErrorIs(t, pe, base)
	_, ok = targets.IsRetryable(pe)
	require.False(t, ok)
	require.False(t, targets.IsNotFound(&targets.PermanentError{Status: 400, Err: base}))

	_, ok = targets.IsRetryable(base)
	require.False(t, ok)
	require.False(t, targets.IsPermanent(base))
}

func TestTruncate(t *testing.T) {
	require.Equal(t, "short", targets.Truncate("short", 10))
	require.Equal(t, "abc…", targets.Truncate("abcdef", 3))
	// Never cuts a rune in half.
	got := targets.Truncate("ééé", 3)
	require.Equal(t, "é…", got)
	require.True(t, strings.HasSuffix(targets.Truncate(strings.Repeat("x", 5000), targets.MaxErrorBody), "…"))
}

func TestResolvePath(t *testing.T) {
	require.Equal(t, filepath.Join("/etc/scimbridge", "ca.pem"), targets.ResolvePath("/etc/scimbridge", "ca.pem"))
	require.Equal(t, "/abs/ca.pem", targets.ResolvePath("/etc/scimbridge", "/abs/ca.pem"))
	require.Equal(t, "ca.pem", targets.ResolvePath("", "ca.pem"))
	require.Empty(t, targets.ResolvePath("/etc", ""))
}
