package ldapstore

import (
	"bufio"
	"context"
	"encoding/base64"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/mapping"
)

// loadLDIF reads recorded entries (content records, "::" base64 values, folded lines) into
// the form toEntry gives them: objectGUID in text form.
func loadLDIF(t *testing.T, path string) []mapping.Entry {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, " ") && len(lines) > 0 {
			lines[len(lines)-1] += l[1:]
			continue
		}
		lines = append(lines, l)
	}
	require.NoError(t, sc.Err())
	var out []mapping.Entry
	var cur *mapping.Entry
	flush := func() {
		if cur != nil {
			out = append(out, *cur)
			cur = nil
		}
	}
	for _, l := range lines {
		if strings.HasPrefix(l, "#") {
			continue
		}
		if strings.TrimSpace(l) == "" {
			flush()
			continue
		}
		name, val, ok := strings.Cut(l, ":")
		require.True(t, ok, "bad LDIF line %q", l)
		if strings.HasPrefix(val, ":") {
			b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(val[1:]))
			require.NoError(t, err)
			val = string(b)
			if strings.EqualFold(name, "objectGUID") {
				val = FormatGUID(b)
			}
		} else {
			val = strings.TrimPrefix(val, " ")
		}
		if strings.EqualFold(name, "dn") {
			flush()
			cur = &mapping.Entry{DN: val, Attrs: map[string][]string{}}
			continue
		}
		require.NotNil(t, cur, "attribute before dn: %q", l)
		cur.Attrs[name] = append(cur.Attrs[name], val)
	}
	flush()
	return out
}

// fakeChangelog serves recorded retro changelog entries; first and last play the root DSE.
type fakeChangelog struct {
	recs        []mapping.Entry
	first, last uint64
	ids         map[string]string // DN → nsUniqueId, for records without targetUniqueId
	log         string            // the changelog identity; "" is "cl-1"
}

func (f *fakeChangelog) bounds(context.Context) (uint64, uint64, error) { return f.first, f.last, nil }

func (f *fakeChangelog) number(e mapping.Entry) uint64 {
	var n uint64
	for _, c := range e.First("changeNumber") {
		n = n*10 + uint64(c-'0')
	}
	return n
}

func (f *fakeChangelog) entry(_ context.Context, n uint64) (mapping.Entry, bool, error) {
	if n < f.first || n > f.last {
		return mapping.Entry{}, false, nil
	}
	for _, e := range f.recs {
		if f.number(e) == n {
			return e, true, nil
		}
	}
	return mapping.Entry{}, false, nil
}

func (f *fakeChangelog) entries(_ context.Context, from, to uint64) ([]mapping.Entry, error) {
	var out []mapping.Entry
	// Reversed on purpose: the source must not rely on the server's order.
	for i := len(f.recs) - 1; i >= 0; i-- {
		if n := f.number(f.recs[i]); n >= from && n <= to && n >= f.first && n <= f.last {
			out = append(out, f.recs[i])
		}
	}
	return out, nil
}

func (f *fakeChangelog) idOf(_ context.Context, dn string) (string, error) {
	return f.ids[strings.ToLower(dn)], nil
}

func (f *fakeChangelog) identity(context.Context) (string, error) {
	if f.log == "" {
		return "cl-1", nil
	}
	return f.log, nil
}

const (
	svcDN = "cn=scimbridge,ou=services,dc=example,dc=com"
	adaID = "4a3c1e01-a91f11ee-8e5fd3a1-2b1c0000"
)

func newFakeChangelog(t *testing.T) (*fakeChangelog, *Changelog389) {
	recs := loadLDIF(t, "testdata/changelog389.ldif")
	require.Len(t, recs, 9)
	f := &fakeChangelog{recs: recs, first: 1, last: 9, ids: map[string]string{"uid=ada.lovelace,ou=staff,dc=example,dc=com": adaID}}
	return f, newChangelog389(f, ChangelogOptions{BridgeDNs: []string{"CN=scimbridge, ou=Services,dc=example,dc=com"}})
}

func TestChangelog389RecordedEntries(t *testing.T) {
	_, src := newFakeChangelog(t)
	ctx := context.Background()
	var evs []Event
	cursor := ""
	for {
		b, err := src.Poll(ctx, cursor, 4)
		require.NoError(t, err)
		evs = append(evs, b.Events...)
		cursor = b.Cursor
		if !b.More {
			break
		}
	}
	require.True(t, strings.HasPrefix(cursor, "changelog:cl-1:9:"), cursor)
	const (
		grace = "4a3c1e02-a91f11ee-8e5fd3a1-2b1c0000"
		team  = "4a3c1e03-a91f11ee-8e5fd3a1-2b1c0000"
		base  = "dc=example,dc=com"
	)
	type sum struct {
		Kind        EventKind
		ID, DN, Old string
		Origin      Origin
		Pos         string
	}
	var got []sum
	for _, ev := range evs {
		got = append(got, sum{ev.Kind, ev.ID, ev.DN, ev.OldDN, ev.Origin, ev.Position})
		require.False(t, ev.Time.IsZero())
	}
	require.Equal(t, []sum{
		{EventUpsert, adaID, "uid=ada,ou=people," + base, "", OriginExternal, "1"},
		{EventUpsert, grace, "uid=grace,ou=people," + base, "", OriginBridge, "2"},
		{EventUpsert, adaID, "uid=ada,ou=people," + base, "", OriginBridge, "3"},
		{EventRename, adaID, "uid=ada.l,ou=people," + base, "uid=ada,ou=people," + base, OriginExternal, "4"},
		{EventRename, adaID, "uid=ada.lovelace,ou=staff," + base, "uid=ada.l,ou=people," + base, OriginExternal, "5"},
		{EventUpsert, team, "cn=team,ou=groups," + base, "", OriginBridge, "6"},
		{EventUpsert, team, "cn=team,ou=groups," + base, "", OriginExternal, "7"},
		{EventDelete, grace, "uid=grace,ou=people," + base, "", OriginUnknown, "8"},
		// No targetUniqueId: the id is read from the entry where it is now.
		{EventUpsert, adaID, "uid=ada.lovelace,ou=staff," + base, "", OriginBridge, "9"},
	}, got)

	// Head is the last change; nothing after it.
	head, err := src.Head(ctx)
	require.NoError(t, err)
	b, err := src.Poll(ctx, head, 10)
	require.NoError(t, err)
	require.Empty(t, b.Events)
	require.False(t, b.More)
}

func TestChangelog389ExpiredCursors(t *testing.T) {
	ctx := context.Background()
	for name, tc := range map[string]struct {
		mutate func(f *fakeChangelog)
		want   string
	}{
		"trimmed":                {func(f *fakeChangelog) { f.first = 6 }, "trimmed"},
		"re-created changelog":   {func(f *fakeChangelog) { f.log = "cl-2" }, "re-created"},
		"restored from a backup": {func(f *fakeChangelog) { f.last = 2; f.recs = f.recs[:2] }, "before the cursor"},
		"another server": {func(f *fakeChangelog) {
			f.recs[2] = mapping.Entry{DN: f.recs[2].DN, Attrs: map[string][]string{
				"changeNumber": {"3"}, "targetDN": {"uid=someone,dc=example,dc=com"}, "changeTime": {"20250101000000Z"}, "changeType": {"add"},
			}}
		}, "another server"},
	} {
		t.Run(name, func(t *testing.T) {
			f, src := newFakeChangelog(t)
			f.last = 3
			b, err := src.Poll(ctx, "", 3)
			require.NoError(t, err)
			require.Len(t, b.Events, 3)
			f.last = 9
			tc.mutate(f)
			_, err = src.Poll(ctx, b.Cursor, 3)
			require.ErrorIs(t, err, ErrCursorExpired)
			require.Contains(t, err.Error(), tc.want)
		})
	}
	t.Run("the record after the cursor trimmed is still fine", func(t *testing.T) {
		f, src := newFakeChangelog(t)
		b, err := src.Poll(ctx, "", 3)
		require.NoError(t, err)
		f.first = 4
		b, err = src.Poll(ctx, b.Cursor, 3)
		require.NoError(t, err)
		require.Equal(t, "4", b.Events[0].Position)
	})
	t.Run("a cursor of another source", func(t *testing.T) {
		_, src := newFakeChangelog(t)
		_, err := src.Poll(ctx, "usn:x:1", 3)
		require.ErrorIs(t, err, ErrCursorExpired)
	})
}

// fakeDC serves recorded AD objects: for each objectGUID, the latest record with
// uSNChanged <= highest, as a DC keeps only an object's current state.
type fakeDC struct {
	recs       []mapping.Entry
	highest    uint64
	invocation string
}

func (f *fakeDC) server(context.Context) (string, uint64, error) { return f.invocation, f.highest, nil }

func usnOf(e mapping.Entry) uint64 {
	var n uint64
	for _, c := range e.First("uSNChanged") {
		n = n*10 + uint64(c-'0')
	}
	return n
}

func (f *fakeDC) visible() map[string]mapping.Entry {
	cur := map[string]mapping.Entry{}
	for _, e := range f.recs {
		u := usnOf(e)
		if u > f.highest {
			continue
		}
		g := e.First("objectGUID")
		if old, ok := cur[g]; !ok || usnOf(old) < u {
			cur[g] = e
		}
	}
	return cur
}

func (f *fakeDC) pick(from, to uint64, deleted bool) []mapping.Entry {
	var out []mapping.Entry
	for _, e := range f.visible() {
		u := usnOf(e)
		if u >= from && u <= to && (e.First("isDeleted") == "TRUE") == deleted {
			out = append(out, e)
		}
	}
	return out
}

func (f *fakeDC) changed(_ context.Context, from, to uint64) ([]mapping.Entry, error) {
	return f.pick(from, to, false), nil
}

func (f *fakeDC) deleted(_ context.Context, from, to uint64) ([]mapping.Entry, error) {
	return f.pick(from, to, true), nil
}

func TestUSNRecordedObjects(t *testing.T) {
	recs := loadLDIF(t, "testdata/ad-usn.ldif")
	require.Len(t, recs, 4)
	dc := &fakeDC{recs: recs, highest: 12800, invocation: "7e1d6b3a-5c4f-4e2d-8a1b-9c0d1e2f3a4b"}
	src := &USN{r: dc}
	ctx := context.Background()
	head, err := src.Head(ctx)
	require.NoError(t, err)
	require.Equal(t, "usn:7e1d6b3a-5c4f-4e2d-8a1b-9c0d1e2f3a4b:12800", head)

	// Ada created, then the Team group.
	dc.highest = 12803
	b, err := src.Poll(ctx, head, 1000)
	require.NoError(t, err)
	require.Len(t, b.Events, 2)
	ada, team := b.Events[0], b.Events[1]
	require.Equal(t, EventUpsert, ada.Kind)
	require.Equal(t, "0f3a2d4c-1b2a-4c5d-9e8f-0a1b2c3d4e5f", ada.ID, "objectGUID in its usual text form")
	require.Equal(t, "CN=Ada Lovelace,CN=Users,DC=example,DC=com", ada.DN)
	require.Equal(t, OriginUnknown, ada.Origin)
	require.Equal(t, "1f3a2d4c-1b2a-4c5d-9e8f-0a1b2c3d4e5f", team.ID)
	require.Equal(t, "usn:7e1d6b3a-5c4f-4e2d-8a1b-9c0d1e2f3a4b:12803", b.Cursor)

	// Grace deleted (a tombstone), Ada moved to OU=Staff; read in small USN steps.
	dc.highest = 12807
	var evs []Event
	cursor := b.Cursor
	for {
		b, err = src.Poll(ctx, cursor, 2)
		require.NoError(t, err)
		evs = append(evs, b.Events...)
		cursor = b.Cursor
		if !b.More {
			break
		}
	}
	require.Len(t, evs, 2)
	require.Equal(t, EventDelete, evs[0].Kind)
	require.Equal(t, "2f3a2d4c-1b2a-4c5d-9e8f-0a1b2c3d4e5f", evs[0].ID)
	require.Equal(t, "CN=Grace Hopper,CN=Users,DC=example,DC=com", evs[0].DN, "the DN it had, not the tombstone's")
	require.Equal(t, EventUpsert, evs[1].Kind)
	require.Equal(t, "CN=Ada L,OU=Staff,DC=example,DC=com", evs[1].DN)
	require.Equal(t, "12807", evs[1].Position)

	// Another DC, or this one restored from a backup: a new invocationId.
	dc.invocation = "00000000-5c4f-4e2d-8a1b-9c0d1e2f3a4b"
	_, err = src.Poll(ctx, cursor, 10)
	require.ErrorIs(t, err, ErrCursorExpired)
	require.Contains(t, err.Error(), "restored from a backup")
	// A USN beyond the DC's highest.
	dc.invocation, dc.highest = "7e1d6b3a-5c4f-4e2d-8a1b-9c0d1e2f3a4b", 12000
	_, err = src.Poll(ctx, cursor, 10)
	require.ErrorIs(t, err, ErrCursorExpired)
}

func TestCursorWindowRoundTrip(t *testing.T) {
	w := newWindow()
	for i := range 5000 {
		w.add(seenKey{sec: 1_700_000_000 + int64(i%20), key: uint64(i) * 7919})
	}
	enc := w.encode()
	require.Less(t, len(enc), 5000*8, "compact: %d bytes", len(enc))
	back, err := decodeWindow(w.hw, enc)
	require.NoError(t, err)
	require.Equal(t, w.seen, back.seen)
	w.prune(5 * 1e9)
	for k := range w.seen {
		require.GreaterOrEqual(t, k.sec, w.hw-5)
	}
	_, err = decodeWindow(1, "!!")
	require.Error(t, err)
}

func TestOriginIsDNNormalised(t *testing.T) {
	bridge := []string{"cn=scimbridge,ou=services,dc=example,dc=org"}
	require.Equal(t, OriginBridge, originOf("CN=SCIMBridge, OU=services,DC=example,DC=org", bridge))
	require.Equal(t, OriginBridge, originOf("dn:cn=scimbridge,ou=services,dc=example,dc=org", bridge))
	require.Equal(t, OriginExternal, originOf("cn=admin,dc=example,dc=org", bridge))
	require.Equal(t, OriginUnknown, originOf("", bridge))
	// An actor that is not a DN is compared as a string, case-insensitively.
	require.Equal(t, OriginBridge, originOf("Service Account", []string{"", "service account"}))
	require.Equal(t, OriginExternal, originOf("Service Account", []string{"other"}))
}

// TestChangelog389WaitsForACountedRecord: 389-DS counts a change (lastchangenumber) before its
// record is readable. A number missing below visible ones is waited for, not stepped over,
// until the later records are older than the gap grace (an aborted operation's number).
func TestChangelog389WaitsForACountedRecord(t *testing.T) {
	f, src := newFakeChangelog(t)
	ctx := context.Background()
	missing := f.recs[3] // change 4
	f.recs = append(f.recs[:3:3], f.recs[4:]...)
	recorded, _ := time.Parse("20060102150405Z", "20240102030405Z")
	src.now = func() time.Time { return recorded.Add(time.Second) }

	b, err := src.Poll(ctx, "", 100)
	require.NoError(t, err)
	require.Len(t, b.Events, 3, "changes 1 to 3, then the gap")
	require.True(t, strings.HasPrefix(b.Cursor, "changelog:cl-1:3:"), b.Cursor)
	require.False(t, b.More)

	// The record appears: it and everything after it are delivered, nothing twice.
	f.recs = append(f.recs[:3:3], append([]mapping.Entry{missing}, f.recs[3:]...)...)
	b2, err := src.Poll(ctx, b.Cursor, 100)
	require.NoError(t, err)
	require.Len(t, b2.Events, 6)
	require.Equal(t, "4", b2.Events[0].Position)

	// A number that never comes is stepped over once the grace has passed.
	f.recs = append(f.recs[:3:3], f.recs[4:]...)
	src.now = func() time.Time { return recorded.Add(time.Hour) }
	b3, err := src.Poll(ctx, b.Cursor, 100)
	require.NoError(t, err)
	require.Len(t, b3.Events, 5)
	require.Equal(t, "5", b3.Events[0].Position)
}
