package scim

import (
	"errors"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/mapping"
)

func TestJitter(t *testing.T) {
	minWait, maxWait := 100*time.Millisecond, 2*time.Second
	for attempt := range 70 {
		want := maxWait
		if attempt < 5 {
			want = minWait << attempt
		}
		for range 50 {
			d := jitter(minWait, maxWait, attempt)
			require.GreaterOrEqual(t, d, want/2, "attempt %d", attempt)
			require.LessOrEqual(t, d, want, "attempt %d", attempt)
		}
	}
}

func TestBackoffHonoursRetryAfter(t *testing.T) {
	resp := &http.Response{StatusCode: 429, Header: http.Header{"Retry-After": {"2"}}}
	require.Equal(t, 2*time.Second, backoff(time.Millisecond, 10*time.Second, 0, resp))
	require.Equal(t, time.Second, backoff(time.Millisecond, time.Second, 0, resp), "capped")
	resp.Header.Set("Retry-After", "soon")
	require.LessOrEqual(t, backoff(time.Millisecond, time.Second, 0, resp), time.Millisecond, "unparsable: exponential")
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"0":            0,
		"120":          2 * time.Minute,
		" 5 ":          5 * time.Second,
		"999999999999": maxRetryAfter,
		now.Add(90 * time.Second).Format(http.TimeFormat): 90 * time.Second,
		now.Add(-time.Hour).Format(http.TimeFormat):       0,
		now.Add(48 * time.Hour).Format(http.TimeFormat):   maxRetryAfter,
	} {
		got, ok := parseRetryAfter(in, now)
		require.True(t, ok, in)
		require.Equal(t, want, got, in)
	}
	for _, in := range []string{"", "-1", "soon", "1.5"} {
		_, ok := parseRetryAfter(in, now)
		require.False(t, ok, in)
	}
}

func TestRedact(t *testing.T) {
	require.Equal(t, "https://h.example/scim/Users?<redacted>", redactRawURL("https://u:p@h.example/scim/Users?filter=userName+eq+%22x%22&token=t#frag"))
	require.Equal(t, "https://h.example/scim", redactRawURL("https://h.example/scim"))
	require.Equal(t, "<unparsable URL>", redactRawURL("http://[::1"))

	inner := &url.Error{Op: "Post", URL: "https://idp.example/token?client_secret=s", Err: errors.New("refused")}
	outer := &url.Error{Op: "Get", URL: "https://u:pw@h.example/Users?filter=x", Err: &tokenError{err: inner}}
	err := redactError(outer)
	require.NotContains(t, err.Error(), "pw")
	require.NotContains(t, err.Error(), "client_secret")
	require.NotContains(t, err.Error(), "filter")
}

func TestMemberSteps(t *testing.T) {
	steps, err := memberSteps(nil)
	require.NoError(t, err)
	require.Empty(t, steps)
	steps, err = memberSteps([]mapping.PatchOp{
		{Op: "add", Path: "members", Value: "a"},
		{Op: "ADD", Value: []map[string]string{{"value": "b"}}},
		{Op: "remove", Path: `members[value eq "c\"d"]`},
		{Op: "remove", Path: "Members", Value: []any{"e", map[string]any{"value": "f"}}},
		{Op: "add", Path: "members"},
	})
	require.NoError(t, err)
	require.Equal(t, []memberStep{{ids: []string{"a", "b"}}, {remove: true, ids: []string{`c"d`, "e", "f"}}}, steps)
	for _, bad := range []mapping.PatchOp{
		{Op: "replace", Path: "members"},
		{Op: "add", Path: "displayName", Value: "x"},
		{Op: "add", Path: `members[value eq "x"]`},
		{Op: "add", Path: "members", Value: 42},
		{Op: "add", Path: "members", Value: map[string]any{"display": "x"}},
	} {
		_, err := memberSteps([]mapping.PatchOp{bad})
		require.Error(t, err, "%+v", bad)
	}
}

// TestQuotaHeaders: every common way of announcing a quota is read, the reset as seconds or
// as a Unix time, and nothing is made up when the target said nothing.
func TestQuotaHeaders(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	for _, tc := range []struct {
		name      string
		h         http.Header
		remaining int
		reset     time.Duration
	}{
		{"none", http.Header{}, -1, 0},
		{"ietf fields", http.Header{"Ratelimit-Limit": {"100"}, "Ratelimit-Remaining": {"7"}, "Ratelimit-Reset": {"30"}}, 7, 30 * time.Second},
		{"ietf fields with policies", http.Header{"Ratelimit-Remaining": {"0, 50;w=60"}, "Ratelimit-Reset": {"2"}}, 0, 2 * time.Second},
		{"structured field", http.Header{"Ratelimit": {`"default";r=3;t=9`}}, 3, 9 * time.Second},
		{"older structured field", http.Header{"Ratelimit": {"limit=10, remaining=4, reset=5"}}, 4, 5 * time.Second},
		{"structured field, two policies", http.Header{"Ratelimit": {`"burst";r=1;t=2, "day";r=900;t=3600`}}, 1, 2 * time.Second},
		{"structured field without remaining", http.Header{"Ratelimit": {`"default";t=9`}}, -1, 0},
		{"x- headers, seconds", http.Header{"X-Ratelimit-Remaining": {"12"}, "X-Ratelimit-Reset": {"40"}}, 12, 40 * time.Second},
		{"x- headers, unix time", http.Header{"X-Ratelimit-Remaining": {"0"}, "X-Ratelimit-Reset": {"1800000060"}}, 0, time.Minute},
		{"garbage", http.Header{"X-Ratelimit-Remaining": {"lots"}, "X-Ratelimit-Reset": {"-3"}}, -1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			remaining, reset := quota(tc.h, now)
			require.Equal(t, tc.remaining, remaining)
			require.Equal(t, tc.reset, reset)
		})
	}
}
