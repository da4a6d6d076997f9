package capture

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/bridge/state"
	"github.com/scimbridge/scimbridge/ldapstore"
)

// TestDefaults: unset intervals and sizes get the documented defaults; set ones are kept.
func TestDefaults(t *testing.T) {
	db, err := state.Open(t.TempDir())
	require.NoError(t, err)
	defer db.Close()
	opts := Options{
		Source: &ldapstore.Timestamp{}, Directory: (*ldapstore.Store)(nil), State: db, Sink: CommitFunc(nil),
		Scope: Scope{Users: ldapstore.Search{Base: "ou=people,dc=x"}, IDAttribute: "entryUUID"},
	}
	r, err := New(opts)
	require.NoError(t, err)
	require.Equal(t, time.Second, r.o.PollInterval)
	require.Equal(t, 6*time.Hour, r.o.ReconcileInterval)
	require.Equal(t, 1000, r.o.BatchSize)
	require.Equal(t, "changes", r.o.CursorName)
	require.Equal(t, "directory", r.o.IDMapName)
	require.Equal(t, "(objectClass=*)", r.o.Scope.Users.Filter)
	require.Equal(t, ldapstore.ScopeSub, r.o.Scope.Users.Scope)

	opts.PollInterval, opts.ReconcileInterval, opts.BatchSize = time.Nanosecond, time.Nanosecond, 1
	r, err = New(opts)
	require.NoError(t, err)
	require.Equal(t, time.Nanosecond, r.o.PollInterval)
	require.Equal(t, time.Nanosecond, r.o.ReconcileInterval)
	require.Equal(t, 1, r.o.BatchSize)
}

// TestAnyOf: filters are ORed, empty ones left out.
func TestAnyOf(t *testing.T) {
	require.Empty(t, anyOf("", ""))
	require.Equal(t, "(a=1)", anyOf("", "(a=1)"))
	require.Equal(t, "(|(a=1)(b=2))", anyOf("(a=1)", "", "(b=2)"))
	require.Equal(t, []string{"x", "y"}, nonEmpty([]string{"", "x", "", "y"}))
}
