package ldapstore_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/ldapstore"
	"github.com/scimbridge/scimbridge/ldapstore/ldaptest"
)

func TestTimestampSourceSeesAddsModifiesAndRenamesButNotDeletes(t *testing.T) {
	s, ou := ldaptest.OU(t, "ts")
	st := storeFor(t, s)
	ctx := context.Background()
	people := "ou=people," + ou
	require.NoError(t, st.Add(ctx, "uid=before,"+people, person("before")))

	src, err := ldapstore.NewTimestamp(st, ldapstore.TimestampOptions{
		Bases: []string{ou}, Filter: "(objectClass=inetOrgPerson)", IDAttribute: "entryUUID", Overlap: 2 * time.Second,
	})
	require.NoError(t, err)
	// From an empty cursor, every entry in scope.
	evs, _ := drain(t, src, "", 10, ou)
	require.Len(t, evs, 1)
	require.Equal(t, ldapstore.EventUpsert, evs[0].Kind)

	cur, err := src.Head(ctx)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(cur, "timestamp:2"), cur)
	// Head's cursor may re-deliver the last second's entries once (the engine dedupes by hash).
	_, cur = drain(t, src, cur, 10, ou)

	ada := "uid=ada," + people
	require.NoError(t, st.Add(ctx, ada, person("ada")))
	adaID := uuidOf(t, st, ada)
	evs, cur = drain(t, src, cur, 10, ou)
	require.Len(t, evs, 1)
	require.Equal(t, adaID, evs[0].ID)
	require.Equal(t, ldapstore.OriginBridge, evs[0].Origin, "modifiersName is the bridge's account")

	// Two modifies within the same second are both seen: the content differs.
	require.NoError(t, st.Modify(ctx, ada, []ldapstore.Change{{Op: ldapstore.ModReplace, Attr: "title", Values: []string{"one"}}}, ldapstore.ModifyOptions{}))
	evs, cur = drain(t, src, cur, 10, ou)
	require.Len(t, evs, 1)
	require.NoError(t, s.LDIF("dn: "+ada+"\nchangetype: modify\nreplace: title\ntitle: two\n"))
	evs, cur = drain(t, src, cur, 10, ou)
	require.Len(t, evs, 1)
	require.Equal(t, ldapstore.OriginExternal, evs[0].Origin)
	// Polling again delivers nothing twice.
	evs, cur = drain(t, src, cur, 10, ou)
	require.Empty(t, evs)

	// A rename is an upsert at the new DN (the consumer compares with its id map).
	require.NoError(t, st.ModifyDN(ctx, ada, "uid=ada2", true, ""))
	evs, cur = drain(t, src, cur, 10, ou)
	require.Len(t, evs, 1)
	require.Equal(t, adaID, evs[0].ID)
	require.True(t, ldapstore.DNEqual("uid=ada2,"+people, evs[0].DN))

	// A delete leaves no trace to poll: the reconcile finds it (bridge/capture tests).
	require.NoError(t, st.Delete(ctx, "uid=ada2,"+people))
	evs, _ = drain(t, src, cur, 10, ou)
	require.Empty(t, evs)

	_, err = src.Poll(ctx, "accesslog::0:", 10)
	require.ErrorIs(t, err, ldapstore.ErrCursorExpired)
}
