package ldapstore

import (
	"cmp"
	"context"
	"encoding/base64"
	"errors"
	"slices"
	"strconv"
	"strings"

	"github.com/go-ldap/ldap/v3"

	"github.com/scimbridge/scimbridge/mapping"
)

// DirSyncOptions configure the Active Directory DirSync source.
type DirSyncOptions struct {
	// Filter selects the objects followed. Defaults to "(|(objectClass=user)(objectClass=group))":
	// object classes only, since a deleted object keeps its objectClass but loses most other
	// attributes (objectCategory, …) and must still match to be reported.
	Filter string
}

// DirSync follows an Active Directory domain with the DirSync control (MS-ADTS 3.1.1.3.4.1.3,
// OID 1.2.840.113556.1.4.841): each poll asks the DC for the objects changed since the cookie
// it returned last, deleted objects included (as tombstones with isDeleted: TRUE). The objects
// come with the attributes that changed; the consumer re-reads each by objectGUID. AD records
// no author (the origin is unknown) and no old DN of a rename: the consumer compares the DN
// with its id map.
//
// DirSync runs against the domain's naming context and needs the "Replicating Directory
// Changes" right on it (members of Domain Admins have it; or grant it to the bridge's
// account). Cookies belong to one DC's database, so the cursor "dirsync:INVOCATIONID:COOKIE"
// names the DC's invocationId: another DC, or this DC restored from a backup (which gets a new
// invocationId), gives ErrCursorExpired, answered with a full reconcile.
type DirSync struct {
	s    *Store
	dc   *storeUSN // for the DC's invocationId
	nc   string
	opts DirSyncOptions
}

const (
	dirSyncSource = "dirsync"
	// dirSyncNoMatch matches no object: a DirSync with it walks the changes without returning
	// any, and its cookie marks the end of the log (Head).
	dirSyncNoMatch = "(&(objectClass=user)(!(objectClass=user)))"
)

// NewDirSync builds the DirSync source over s, which should name one domain controller (a
// failover to another DC is detected and answered with a reconcile).
func NewDirSync(ctx context.Context, s *Store, opts DirSyncOptions) (*DirSync, error) {
	e, err := s.Get(ctx, "", []string{"defaultNamingContext"})
	if err != nil {
		return nil, err
	}
	nc := e.First("defaultNamingContext")
	if nc == "" {
		return nil, &Error{Op: "dirsync source", Err: errors.New("the root DSE has no defaultNamingContext: not an Active Directory DC"), kind: ErrUnsupported}
	}
	if opts.Filter == "" {
		opts.Filter = "(|(objectClass=user)(objectClass=group))"
	}
	return &DirSync{s: s, dc: &storeUSN{s: s}, nc: nc, opts: opts}, nil
}

// Name is the source's name, as configured in changes.source.
func (d *DirSync) Name() string { return dirSyncSource }

func (d *DirSync) encode(inv string, cookie []byte) string {
	return dirSyncSource + ":" + inv + ":" + base64.RawURLEncoding.EncodeToString(cookie)
}

func (d *DirSync) decode(cursor string) (string, []byte, error) {
	if cursor == "" {
		return "", nil, nil
	}
	f, err := splitCursor(dirSyncSource, dirSyncSource, cursor, 2)
	if err != nil {
		return "", nil, err
	}
	cookie, err := base64.RawURLEncoding.DecodeString(f[1])
	if err != nil {
		return "", nil, expired(dirSyncSource, "malformed cookie in cursor %q", abbrev(cursor))
	}
	return f[0], cookie, nil
}

// dirsync runs DirSync searches from cookie until the DC has no more, handing each object to
// fn; it returns the last cookie.
func (d *DirSync) dirsync(ctx context.Context, filter string, attrs []string, cookie []byte, fn func(*ldap.Entry)) ([]byte, bool, error) {
	more := false
	err := d.s.withConn(ctx, "dirsync", true, func(c *ldap.Conn) error {
		req := ldap.NewSearchRequest(d.nc, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false, filter, attrs, nil)
		res, err := c.DirSync(req, 0, 0, cookie)
		if err != nil {
			if ldap.IsErrorWithCode(err, ldap.LDAPResultInsufficientAccessRights) {
				return &Error{
					Op: "dirsync", DN: d.nc, Code: int(ldap.LDAPResultInsufficientAccessRights), kind: ErrDenied,
					Err: errors.New("the bridge's account needs the Replicating Directory Changes right on the domain for DirSync (or use changes.source = \"usn\")"),
				}
			}
			return wrap("dirsync", d.nc, err)
		}
		ctrl, _ := ldap.FindControl(res.Controls, ldap.ControlTypeDirSync).(*ldap.ControlDirSync)
		if ctrl == nil {
			return &Error{Op: "dirsync", DN: d.nc, Err: errors.New("the DC sent no DirSync response control"), kind: ErrUnsupported}
		}
		for _, e := range res.Entries {
			fn(e)
		}
		cookie, more = ctrl.Cookie, ctrl.Flags != 0
		return nil
	})
	return cookie, more, err
}

// Head returns a cursor at the end of the DC's changes: a DirSync with a filter that matches
// nothing runs through them all and returns only its cookie.
func (d *DirSync) Head(ctx context.Context) (string, error) {
	inv, _, err := d.dc.server(ctx)
	if err != nil {
		return "", err
	}
	var cookie []byte
	for {
		next, more, err := d.dirsync(ctx, dirSyncNoMatch, []string{"objectGUID"}, cookie, func(*ldap.Entry) {})
		if err != nil {
			return "", err
		}
		cookie = next
		if !more {
			return d.encode(inv, cookie), nil
		}
	}
}

// Poll returns the objects changed after cursor, in the DC's order (an empty cursor starts
// from the beginning: every object). The DC decides how many come at once; limit is not
// applied. More says the DC has further changes.
func (d *DirSync) Poll(ctx context.Context, cursor string, _ int) (Batch, error) {
	inv, cookie, err := d.decode(cursor)
	if err != nil {
		return Batch{}, err
	}
	cur, _, err := d.dc.server(ctx)
	if err != nil {
		return Batch{}, err
	}
	if cursor != "" && !strings.EqualFold(inv, cur) {
		return Batch{}, expired(dirSyncSource, "the DC's invocationId is %s, the cursor's %s: another DC, or this one restored from a backup", cur, inv)
	}
	var b Batch
	var perr error
	next, more, err := d.dirsync(ctx, d.opts.Filter, nil, cookie, func(e *ldap.Entry) {
		if perr != nil {
			return
		}
		ev, ok, err := dirSyncEvent(toEntry(e))
		if err != nil {
			perr = err
			return
		}
		if ok {
			b.Events = append(b.Events, ev)
		}
	})
	if err != nil {
		return Batch{}, err
	}
	if perr != nil {
		return Batch{}, perr
	}
	if err := d.order(ctx, b.Events); err != nil {
		return Batch{}, err
	}
	b.Cursor, b.More = d.encode(cur, next), more
	return b, nil
}

// dirSyncChunk is how many objects one uSNChanged lookup reads.
const dirSyncChunk = 50

// order puts events in the order the DC wrote the objects: DirSync returns them in no
// particular order and without uSNChanged (which is not replicated), so it is read for each,
// tombstones included, and the events sorted by it. Position and Time come from there too.
func (d *DirSync) order(ctx context.Context, evs []Event) error {
	type stamp struct {
		usn  uint64
		time string
	}
	stamps := map[string]stamp{}
	for i := 0; i < len(evs); i += dirSyncChunk {
		var f strings.Builder
		f.WriteString("(|")
		for _, ev := range evs[i:min(i+dirSyncChunk, len(evs))] {
			idf, err := IDFilter("objectGUID", ev.ID)
			if err != nil {
				return err
			}
			f.WriteString(idf)
		}
		f.WriteString(")")
		err := d.s.WalkWith(ctx, Search{Base: d.nc, Scope: ScopeSub, Filter: f.String(), Attrs: []string{"objectGUID", "uSNChanged", "whenChanged"}},
			SearchOptions{ShowDeleted: true}, func(e mapping.Entry) error {
				usn, _ := strconv.ParseUint(strings.TrimSpace(e.First("uSNChanged")), 10, 64)
				stamps[e.First("objectGUID")] = stamp{usn, e.First("whenChanged")}
				return nil
			})
		if err != nil {
			return err
		}
	}
	for i := range evs {
		st, ok := stamps[evs[i].ID]
		if !ok {
			continue
		}
		evs[i].Position = strconv.FormatUint(st.usn, 10)
		if t, err := parseGenTime(st.time); err == nil {
			evs[i].Time = t
		}
	}
	slices.SortStableFunc(evs, func(a, b Event) int {
		return cmp.Compare(stamps[a.ID].usn, stamps[b.ID].usn)
	})
	return nil
}

// dirSyncEvent turns a DirSync result into an event; ok is false for an object without an id.
func dirSyncEvent(e mapping.Entry) (Event, bool, error) {
	id := e.First("objectGUID")
	if id == "" {
		return Event{}, false, nil
	}
	ev := Event{Kind: EventUpsert, ID: id, DN: e.DN, Origin: OriginUnknown, Position: e.First("uSNChanged")}
	if t, err := parseGenTime(e.First("whenChanged")); err == nil {
		ev.Time = t
	}
	if strings.EqualFold(e.First("isDeleted"), "TRUE") {
		ev.Kind = EventDelete
		ev.DN = deletedDN(e)
	}
	return ev, true, nil
}

// deletedDN is the DN a deleted object had. AD renames a tombstone "CN=name\0ADEL:guid" and
// moves it to CN=Deleted Objects; the name before "\0ADEL:" (or msDS-LastKnownRDN, which AD sets
// with the Recycle Bin) under lastKnownParent is where it was. Without lastKnownParent the
// tombstone's DN is all there is.
func deletedDN(e mapping.Entry) string {
	parent := plainDN(e.First("lastKnownParent"))
	rdn := e.First("msDS-LastKnownRDN")
	if rdn == "" {
		rdn = tombstoneName(e.DN)
	}
	if parent == "" || rdn == "" {
		return e.DN
	}
	return "CN=" + EscapeDN(rdn) + "," + parent
}

// plainDN drops the "<GUID=…>;<SID=…>;" prefix of an extended DN (MS-ADTS 3.1.1.3.4.1.5),
// which DirSync returns for DN-valued attributes.
func plainDN(dn string) string {
	for strings.HasPrefix(dn, "<") {
		i := strings.Index(dn, ">;")
		if i < 0 {
			break
		}
		dn = dn[i+2:]
	}
	return dn
}

// tombstoneName reads "name" from a tombstone's DN "CN=name\0ADEL:guid,CN=Deleted Objects,…".
func tombstoneName(dn string) string {
	d, err := ldap.ParseDN(dn)
	if err != nil || len(d.RDNs) == 0 || len(d.RDNs[0].Attributes) == 0 {
		return ""
	}
	v := d.RDNs[0].Attributes[0].Value
	if i := strings.Index(v, "\nDEL:"); i >= 0 {
		return v[:i]
	}
	return ""
}
