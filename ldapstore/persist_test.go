package ldapstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/ldapstore"
	"github.com/scimbridge/scimbridge/ldapstore/ldaptest"
)

// TestAccesslogWatch: the refreshAndPersist search on cn=accesslog announces a write as it
// happens (not at the next poll), ends without error when its context does, and reports an
// error when the server refuses it (here: a log base that does not exist), so the caller
// falls back to polling.
func TestAccesslogWatch(t *testing.T) {
	s, ou := ldaptest.OU(t, "alwatch")
	st := storeFor(t, s)
	src := ldapstore.NewAccesslog(st, ldapstore.AccesslogOptions{})
	ctx, cancel := context.WithCancel(t.Context())
	woke := make(chan struct{}, 100)
	done := make(chan error, 1)
	go func() {
		done <- src.Watch(ctx, func() { woke <- struct{}{} })
	}()
	// The search is open once a write made before it was sent is no longer announced and one
	// after is: write until the stream answers (each add is a new record).
	deadline := time.After(30 * time.Second)
	for i := 0; ; i++ {
		require.NoError(t, st.Add(ctx, "uid=w"+string(rune('a'+i%26))+string(rune('a'+i/26))+",ou=people,"+ou, person("w")))
		select {
		case <-woke:
		case <-time.After(500 * time.Millisecond):
			continue
		case <-deadline:
			t.Fatal("no write was announced by the persistent search")
		}
		break
	}
	// That wake may be the refresh phase's (the newest record is sent first); once it is
	// over, a write made now is announced by the persist phase.
	time.Sleep(time.Second)
	for len(woke) > 0 {
		<-woke
	}
	require.NoError(t, st.Add(ctx, "uid=live,ou=people,"+ou, person("live")))
	select {
	case <-woke:
	case <-time.After(10 * time.Second):
		t.Fatal("a write after the refresh was not announced")
	}
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err, "cancelled: no error")
	case <-time.After(30 * time.Second):
		t.Fatal("Watch did not return after its context ended")
	}

	bad := ldapstore.NewAccesslog(st, ldapstore.AccesslogOptions{Base: "cn=nolog,dc=example,dc=org"})
	require.Error(t, bad.Watch(t.Context(), func() {}))
}
