package capture_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/scimbridge/scimbridge/bridge/capture"
	"github.com/scimbridge/scimbridge/ldapstore"
	"github.com/scimbridge/scimbridge/ldapstore/ldaptest"
)

// kit writes to one kind of directory as its administrators do (ldapmodify), for the change
// capture suite that runs on every kind and source.
type kit struct {
	kind                  ldaptest.Kind
	source                string
	idAttr                string
	userClass, groupClass string
	userRDN               string
}

// kits are every (directory, change source) pair the suite runs: the accesslog on OpenLDAP,
// the retro changelog on 389-DS, and DirSync and uSNChanged on Active Directory.
var kits = []kit{
	{ldaptest.KindOpenLDAP, "accesslog", "entryUUID", "inetOrgPerson", "groupOfNames", "uid"},
	{ldaptest.Kind389DS, "changelog", "nsUniqueId", "inetOrgPerson", "groupOfNames", "uid"},
	{ldaptest.KindAD, "dirsync", "objectGUID", "user", "group", "CN"},
	{ldaptest.KindAD, "usn", "objectGUID", "user", "group", "CN"},
}

func (k kit) name() string { return string(k.kind) + "/" + k.source }

func (k kit) user(parent, name string) string { return k.userRDN + "=" + name + "," + parent }

// userLDIF adds a user; AD's needs a sAMAccountName unique in the domain.
func (k kit) userLDIF(dn, name, ou string) string {
	if k.kind == ldaptest.KindAD {
		return fmt.Sprintf("dn: %s\nobjectClass: user\nsAMAccountName: %s\n", dn, samFor(name, ou))
	}
	return fmt.Sprintf("dn: %s\nobjectClass: inetOrgPerson\nuid: %s\ncn: %s\nsn: %s\n", dn, name, name, name)
}

// samFor makes a short sAMAccountName unique to the test's OU.
func samFor(name, ou string) string {
	_, suffix, _ := strings.Cut(strings.SplitN(ou, ",", 2)[0], "-")
	return name + "-" + suffix[:6]
}

func (k kit) groupLDIF(dn string, members ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "dn: %s\nobjectClass: %s\n", dn, k.groupClass)
	if k.kind == ldaptest.KindAD {
		_, cn, _ := strings.Cut(strings.SplitN(dn, ",", 2)[0], "=")
		fmt.Fprintf(&b, "sAMAccountName: %s-%x\n", cn, time.Now().UnixNano()&0xffffff)
	}
	for _, m := range members {
		fmt.Fprintf(&b, "member: %s\n", m)
	}
	return b.String()
}

func (k kit) newSource(t *testing.T, st *ldapstore.Store) capture.Source {
	t.Helper()
	ctx := context.Background()
	switch k.source {
	case "changelog":
		return ldapstore.NewChangelog389(st, ldapstore.ChangelogOptions{})
	case "dirsync":
		src, err := ldapstore.NewDirSync(ctx, st, ldapstore.DirSyncOptions{})
		require.NoError(t, err)
		return src
	case "usn":
		src, err := ldapstore.NewUSN(ctx, st, ldapstore.USNOptions{})
		require.NoError(t, err)
		return src
	}
	return accesslog(st)
}

// newKitEnv is newEnv for kit k: the kind's filters and id attribute.
func newKitEnv(t *testing.T, k kit, s *ldaptest.Server, base string) *env {
	t.Helper()
	e := &env{s: s, st: openStore(t, s), people: "ou=people," + base, groups: "ou=groups," + base, dir: t.TempDir(), rec: &recorder{}}
	e.src = k.newSource(t, e.st)
	e.scope = capture.Scope{
		Users:       ldapstore.Search{Base: e.people, Filter: "(objectClass=" + k.userClass + ")"},
		Groups:      ldapstore.Search{Base: e.groups, Filter: "(objectClass=" + k.groupClass + ")"},
		IDAttribute: k.idAttr,
	}
	e.open(t, 1000)
	return e
}

func kitID(t *testing.T, k kit, st *ldapstore.Store, dn string) string {
	t.Helper()
	e, err := st.Get(context.Background(), dn, []string{k.idAttr})
	require.NoError(t, err)
	require.NotEmpty(t, e.First(k.idAttr))
	return e.First(k.idAttr)
}

// only returns the changes for id, and fails when anything else but extra group upserts
// came (AD's linked attributes change a group when a member is deleted).
func only(t *testing.T, chs []capture.Change, id string) []sum {
	t.Helper()
	var out []sum
	for _, c := range chs {
		if c.ID == id {
			out = append(out, summarize([]capture.Change{c})[0])
			continue
		}
		require.Equal(t, capture.ObjectGroup, c.Object, "unexpected change %+v", c)
	}
	return out
}

// TestCaptureSuiteOnEveryServer: on each directory and its change sources, what an admin does
// reaches the Reader, in order, with the right kind: add, modify, rename, move, membership
// changes, leaving scope and delete, after a first reconcile.
func TestCaptureSuiteOnEveryServer(t *testing.T) {
	for _, k := range kits {
		t.Run(k.name(), func(t *testing.T) {
			s, ou := ldaptest.OUIn(t, k.kind, "suite-"+k.source)
			e := newKitEnv(t, k, s, ou)
			ada, team := k.user(e.people, "ada"), "cn=team,"+e.groups
			require.NoError(t, s.LDIF(k.userLDIF(ada, "ada", ou)))
			require.NoError(t, s.LDIF(k.groupLDIF(team, ada)))
			adaID, teamID := kitID(t, k, e.st, ada), kitID(t, k, e.st, team)

			chs := e.sync(t)
			require.ElementsMatch(t, []sum{
				{ldapstore.EventUpsert, capture.ObjectUser, adaID, lower(ada), ""},
				{ldapstore.EventUpsert, capture.ObjectGroup, teamID, lower(team), ""},
			}, summarize(chs), "the first sync is a reconcile")
			require.Empty(t, e.sync(t), "nothing new")

			// Add.
			grace := k.user(e.people, "grace")
			require.NoError(t, s.LDIF(k.userLDIF(grace, "grace", ou)))
			graceID := kitID(t, k, e.st, grace)
			require.Equal(t, []sum{{ldapstore.EventUpsert, capture.ObjectUser, graceID, lower(grace), ""}}, summarize(e.sync(t)))

			// Modify.
			require.NoError(t, s.LDIF("dn: "+ada+"\nchangetype: modify\nreplace: title\ntitle: Countess\n"))
			chs = e.sync(t)
			require.Equal(t, []sum{{ldapstore.EventUpsert, capture.ObjectUser, adaID, lower(ada), ""}}, summarize(chs))
			require.Equal(t, []string{"Countess"}, chs[0].Entry.Get("title"))
			require.False(t, chs[0].Unchanged())

			// Rename in place, then a move to another parent inside the users base.
			require.NoError(t, s.LDIF("dn: "+ada+"\nchangetype: modrdn\nnewrdn: "+k.userRDN+"=ada.l\ndeleteoldrdn: 1\n"))
			ada2 := k.user(e.people, "ada.l")
			require.Equal(t, []sum{{ldapstore.EventRename, capture.ObjectUser, adaID, lower(ada2), lower(ada)}}, only(t, e.sync(t), adaID))
			require.NoError(t, s.LDIF("dn: ou=staff,"+e.people+"\nobjectClass: organizationalUnit\nou: staff\n"))
			require.NoError(t, s.LDIF("dn: "+ada2+"\nchangetype: modrdn\nnewrdn: "+k.userRDN+"=ada.l\ndeleteoldrdn: 1\nnewsuperior: ou=staff,"+e.people+"\n"))
			ada3 := k.user("ou=staff,"+e.people, "ada.l")
			require.Equal(t, []sum{{ldapstore.EventRename, capture.ObjectUser, adaID, lower(ada3), lower(ada2)}}, only(t, e.sync(t), adaID))

			// Membership: the group changes, not the user.
			require.NoError(t, s.LDIF("dn: "+team+"\nchangetype: modify\nadd: member\nmember: "+grace+"\n"))
			chs = e.sync(t)
			require.Equal(t, []sum{{ldapstore.EventUpsert, capture.ObjectGroup, teamID, lower(team), ""}}, summarize(chs))
			require.Len(t, chs[0].Entry.Get("member"), 2)

			// Leaving the users base is leaving scope: a delete for the bridge.
			require.NoError(t, s.LDIF("dn: "+ada3+"\nchangetype: modrdn\nnewrdn: "+k.userRDN+"=ada.l\ndeleteoldrdn: 1\nnewsuperior: "+ou+"\n"))
			require.Equal(t, []sum{{ldapstore.EventDelete, capture.ObjectUser, adaID, lower(ada3), ""}}, only(t, e.sync(t), adaID))

			// A delete.
			require.NoError(t, s.LDIF("dn: "+grace+"\nchangetype: delete\n"))
			require.Equal(t, []sum{{ldapstore.EventDelete, capture.ObjectUser, graceID, lower(grace), ""}}, only(t, e.sync(t), graceID))
			m := e.idmap(t)
			require.Len(t, m, 1)
			require.Equal(t, "group", m[teamID].Kind)
			require.True(t, strings.HasPrefix(e.cursor(t), k.source+":"), e.cursor(t))
		})
	}
}

// TestCaptureResumesFromTheCursor: changes made while the reader is stopped arrive in order
// when it comes back, from the stored cursor (no reconcile).
func TestCaptureResumesFromTheCursor(t *testing.T) {
	for _, k := range kits {
		t.Run(k.name(), func(t *testing.T) {
			s, ou := ldaptest.OUIn(t, k.kind, "resume-"+k.source)
			e := newKitEnv(t, k, s, ou)
			require.Empty(t, e.sync(t))
			e.close(t)
			var want []string
			for i := range 6 {
				dn := k.user(e.people, "u"+strconv.Itoa(i))
				require.NoError(t, s.LDIF(k.userLDIF(dn, "u"+strconv.Itoa(i), ou)))
				want = append(want, "upsert "+lower(dn))
			}
			require.NoError(t, s.LDIF("dn: "+k.user(e.people, "u0")+"\nchangetype: delete\n"))
			want = want[1:] // u0 came and went: no news for the bridge
			e.open(t, 2)
			var got []string
			for _, c := range e.sync(t) {
				require.False(t, c.Reconcile, "resumed from the cursor")
				got = append(got, string(c.Kind)+" "+lower(c.DN))
			}
			require.Equal(t, want, got)
			require.Zero(t, e.r.Stats().Reconciles)
		})
	}
}

// TestCaptureLostLogLeadsToAReconcile: a cursor the log no longer covers — a 389-DS changelog
// trimmed past it, an AD DC restored from a backup (a new invocationId) — is answered with a
// full reconcile that finds what happened meanwhile, the delete included.
func TestCaptureLostLogLeadsToAReconcile(t *testing.T) {
	for _, k := range kits {
		if k.kind == ldaptest.KindOpenLDAP {
			continue // TestPurgedAccesslogLeadsToAReconcile, on a private slapd
		}
		t.Run(k.name(), func(t *testing.T) {
			s, ou := ldaptest.OUIn(t, k.kind, "lost-"+k.source)
			e := newKitEnv(t, k, s, ou)
			ctx := context.Background()
			bob, carol := k.user(e.people, "bob"), k.user(e.people, "carol")
			require.NoError(t, s.LDIF(k.userLDIF(bob, "bob", ou)))
			require.NoError(t, s.LDIF(k.userLDIF(carol, "carol", ou)))
			bobID, carolID := kitID(t, k, e.st, bob), kitID(t, k, e.st, carol)
			require.Len(t, e.sync(t), 2)
			cursor := e.cursor(t)
			e.close(t)

			alice := k.user(e.people, "alice")
			require.NoError(t, s.LDIF(k.userLDIF(alice, "alice", ou)))
			aliceID := kitID(t, k, e.st, alice)
			require.NoError(t, s.LDIF("dn: "+bob+"\nchangetype: modify\nreplace: title\ntitle: new\n"))
			require.NoError(t, s.LDIF("dn: "+carol+"\nchangetype: delete\n"))
			if k.kind == ldaptest.Kind389DS {
				f := strings.Split(cursor, ":")
				n, err := strconv.ParseUint(f[2], 10, 64)
				require.NoError(t, err)
				require.NoError(t, s.TrimChangelog(n+1))
			} else {
				require.NoError(t, s.NewInvocationID())
			}
			_, err := e.src.Poll(ctx, cursor, 10)
			require.ErrorIs(t, err, ldapstore.ErrCursorExpired)

			e.open(t, 1000)
			requireReconciled(t, e, cursor, aliceID, bobID, carolID)

			// And the log is followed again from the new cursor.
			require.NoError(t, s.LDIF("dn: "+alice+"\nchangetype: delete\n"))
			require.Equal(t, []sum{{ldapstore.EventDelete, capture.ObjectUser, aliceID, lower(alice), ""}}, summarize(e.sync(t)))
		})
	}
}

// TestCaptureNeverDeletesOnAPartialRead: on every directory, a reconcile whose enumeration
// breaks off deletes nothing.
func TestCaptureNeverDeletesOnAPartialRead(t *testing.T) {
	for _, k := range kits {
		t.Run(k.name(), func(t *testing.T) {
			s, ou := ldaptest.OUIn(t, k.kind, "partial-"+k.source)
			e := newKitEnv(t, k, s, ou)
			ctx := context.Background()
			for _, u := range []string{"a", "b", "c"} {
				require.NoError(t, s.LDIF(k.userLDIF(k.user(e.people, u), u, ou)))
			}
			require.Len(t, e.sync(t), 3)
			r, err := capture.New(capture.Options{
				Source: e.src, Directory: failingDir{Directory: e.st, after: 1}, State: e.db, Sink: capture.CommitFunc(e.rec.sink), Logger: zerolog.Nop(),
				Scope: e.scope,
			})
			require.NoError(t, err)
			_, err = r.Reconcile(ctx)
			require.ErrorIs(t, err, ldapstore.ErrUnavailable)
			for _, c := range e.rec.take() {
				require.NotEqual(t, ldapstore.EventDelete, c.Kind)
			}
			require.Len(t, e.idmap(t), 3)
		})
	}
}
