package ldapstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"

	"github.com/scimbridge/scimbridge/mapping"
)

// OIDVLVResponse is the Virtual List View response control.
const OIDVLVResponse = "2.16.840.1.113730.3.4.10"

// resultVLVError is LDAP result 76 (virtualListViewError): the offset lies beyond the list.
const resultVLVError = 76

// SortKey orders a paged search. OpenLDAP's uid, cn and mail have no ORDERING rule of their
// own: name one explicitly ("caseIgnoreOrderingMatch") or the server refuses to sort.
type SortKey struct {
	Attr         string
	OrderingRule string
	Reverse      bool
}

// Page is one window of a sorted search and the size of the whole result.
type Page struct {
	Entries []mapping.Entry
	// Total is the number of entries matching the search (the VLV content count).
	Total int
}

// PagerOptions tune a Pager. The zero value is sensible.
type PagerOptions struct {
	// Conns bounds the dedicated connections that hold sort contexts, and so the number of
	// list requests sorted at the same time. Defaults to 2: OpenLDAP allows few concurrent
	// sorts for the whole server (sssvlv-max), shared with every other client.
	Conns int
	// Reuse is how long a sort context may serve further pages of the same search. Within it,
	// a page costs a walk of the server's in-memory sorted list instead of a new search and
	// sort; the membership of the list is then a snapshot as old as the context (attributes are
	// always read fresh). Invalidate ends every context at once. Defaults to 10s; negative
	// turns reuse off.
	Reuse time.Duration
	// ContextsPerConn is how many sort contexts one connection may create before it is closed
	// and redialed. OpenLDAP's sssvlv frees a VLV sort context only when its connection closes
	// and refuses new sorts on a connection past sssvlv-maxperconn (default 5). Defaults to 4.
	ContextsPerConn int
}

// Pager runs Virtual List View searches (draft-ietf-ldapext-ldapv3-vlv with RFC 2891 server-side
// sorting) on a few connections of its own, so that the sort contexts the server keeps per
// connection never pile up on the shared pool. A page costs one search whatever its offset:
// the server sorts the matching entries and sends only the window. It is safe for concurrent use.
type Pager struct {
	store *Store
	opts  PagerOptions
	sem   chan struct{} // bounds concurrent VLV searches to opts.Conns

	mu     sync.Mutex
	gen    uint64
	conns  []*vlvConn
	closed bool
}

// vlvConn is a dedicated connection and the last sort context it created.
type vlvConn struct {
	conn     *ldap.Conn
	busy     bool
	contexts int // sort contexts created on conn (the server frees them only on close)
	key      string
	context  []byte
	gen      uint64
	built    time.Time
	total    int
	lastUse  time.Time
	idleTick *time.Timer
}

// NewPager returns a Pager over the store's directory. Close it to release its connections.
func (s *Store) NewPager(o PagerOptions) *Pager {
	if o.Conns <= 0 {
		o.Conns = 2
	}
	if o.Reuse == 0 {
		o.Reuse = 10 * time.Second
	}
	if o.ContextsPerConn <= 0 {
		o.ContextsPerConn = 4
	}
	return &Pager{store: s, opts: o, sem: make(chan struct{}, o.Conns)}
}

// SupportsVLV reports whether the directory advertises both the VLV and the server-side sort
// controls, which SearchPage needs.
func (s *Store) SupportsVLV(ctx context.Context) (bool, error) {
	dse, err := s.RootDSE(ctx)
	if err != nil {
		return false, err
	}
	return dse.Supports(OIDVLV) && dse.Supports(OIDServerSideSort), nil
}

// Invalidate ends the reuse of every sort context: the next page of any search sees the
// directory as it is now. The inbound server calls it after each of its writes.
func (p *Pager) Invalidate() {
	p.mu.Lock()
	p.gen++
	p.mu.Unlock()
}

// Close closes the pager's connections, which frees their sort contexts on the server.
func (p *Pager) Close() {
	p.mu.Lock()
	p.closed = true
	conns := p.conns
	p.conns = nil
	p.mu.Unlock()
	for _, c := range conns {
		c.close()
	}
}

func (c *vlvConn) close() {
	if c.idleTick != nil {
		c.idleTick.Stop()
	}
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
	c.contexts, c.key, c.context = 0, "", nil
}

// SearchPage returns the entries at positions offset … offset+count-1 (1-based) of the entries
// matching q sorted by key, and how many match in all. An offset beyond the end gives no
// entries and the total; count 0 gives only the total. The scope of q is honoured; its
// filter's values must be escaped (RenderFilter does).
func (p *Pager) SearchPage(ctx context.Context, q Search, key SortKey, offset, count int) (Page, error) {
	if offset < 1 {
		offset = 1
	}
	if count < 0 {
		count = 0
	}
	if q.Filter == "" {
		q.Filter = "(objectClass=*)"
	}
	select {
	case p.sem <- struct{}{}:
	case <-ctx.Done():
		return Page{}, &Error{Op: "vlv search", Err: context.Cause(ctx), kind: ErrUnavailable}
	}
	defer func() { <-p.sem }()

	start := time.Now()
	ck := cacheKey(q, key)
	vc, reuse, err := p.acquire(ck)
	if err != nil {
		return Page{}, err
	}
	page, err := p.search(ctx, vc, q, key, ck, reuse, offset, count)
	p.release(vc, err)
	p.store.observe("vlv search", time.Since(start), err)
	return page, err
}

func cacheKey(q Search, key SortKey) string {
	return fmt.Sprintf("%d\x00%s\x00%s\x00%s\x00%s\x00%t\x00%s",
		q.Scope, strings.ToLower(q.Base), q.Filter, strings.ToLower(key.Attr), strings.ToLower(key.OrderingRule), key.Reverse,
		strings.ToLower(strings.Join(q.Attrs, ",")))
}

// acquire picks an idle connection: one whose sort context can serve ck if there is one,
// else the least recently used. The semaphore guarantees one is idle.
func (p *Pager) acquire(ck string) (*vlvConn, bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, false, &Error{Op: "vlv search", Err: errors.New("pager closed"), kind: ErrUnavailable}
	}
	now := time.Now()
	var pick *vlvConn
	for _, c := range p.conns {
		if c.busy {
			continue
		}
		if c.conn != nil && c.context != nil && c.key == ck && c.gen == p.gen && p.opts.Reuse > 0 && now.Sub(c.built) < p.opts.Reuse {
			c.busy = true
			if c.idleTick != nil {
				c.idleTick.Stop()
			}
			return c, true, nil
		}
		if pick == nil || c.lastUse.Before(pick.lastUse) {
			pick = c
		}
	}
	if pick == nil {
		pick = &vlvConn{}
		p.conns = append(p.conns, pick)
	}
	pick.busy = true
	if pick.idleTick != nil {
		pick.idleTick.Stop()
	}
	return pick, false, nil
}

// release hands the connection back. A connection that failed is closed; an idle one is
// closed after the reuse window so that its sort contexts do not hold server memory.
func (p *Pager) release(c *vlvConn, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c.busy = false
	c.lastUse = time.Now()
	if p.closed || (err != nil && (isNetwork(err) || c.conn == nil || c.conn.IsClosing())) {
		c.close()
		return
	}
	if c.conn == nil {
		return
	}
	idle := p.opts.Reuse
	if idle <= 0 {
		idle = 10 * time.Second
	}
	used := c.lastUse
	c.idleTick = time.AfterFunc(idle, func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if !c.busy && c.lastUse.Equal(used) {
			c.close()
		}
	})
}

// search runs the VLV request on c, dialing or recycling the connection as needed.
func (p *Pager) search(ctx context.Context, c *vlvConn, q Search, key SortKey, ck string, reuse bool, offset, count int) (Page, error) {
	if reuse && offset > c.total {
		// The snapshot holds c.total entries: past its end there is nothing to read.
		return Page{Total: c.total}, nil
	}
	if !reuse && c.conn != nil && c.contexts >= p.opts.ContextsPerConn {
		c.close()
	}
	if c.conn == nil {
		conn, err := p.store.connect(ctx)
		if err != nil {
			return Page{}, err
		}
		c.conn = conn
		c.contexts = 0
	}
	var ctxID []byte
	if reuse {
		ctxID = c.context
	}
	page, resp, err := p.vlv(c, q, key, offset, count, ctxID)
	// slapd's sssvlv answers Busy while it still marks the previous sort on this connection as
	// running (it clears that just after sending the result), and when sssvlv-max contexts are
	// in use server-wide. Wait a moment and ask again; then free our own contexts (they live
	// until their connection closes) and start over on a fresh connection.
	for wait := 5 * time.Millisecond; err != nil && ldap.IsErrorWithCode(err, ldap.LDAPResultBusy) && wait <= 40*time.Millisecond; wait *= 2 {
		select {
		case <-ctx.Done():
			return Page{}, &Error{Op: "vlv search", Err: context.Cause(ctx), kind: ErrUnavailable}
		case <-time.After(wait):
		}
		page, resp, err = p.vlv(c, q, key, offset, count, ctxID)
	}
	if err != nil && ldap.IsErrorWithCode(err, ldap.LDAPResultBusy) {
		p.freeContexts(c)
		conn, cerr := p.store.connect(ctx)
		if cerr != nil {
			return Page{}, cerr
		}
		c.conn, c.contexts = conn, 0
		page, resp, err = p.vlv(c, q, key, offset, count, nil)
	}
	if err != nil && ldap.IsErrorWithCode(err, resultVLVError) && offset > 1 {
		// The offset lies past the end of the list (the server answers 76 without the
		// response control). Ask for the first entry to learn the total.
		page, resp, err = p.vlv(c, q, key, 1, 0, nil)
		if err == nil {
			page.Entries = nil
		}
	}
	if err != nil {
		var le *Error
		if errors.As(err, &le) {
			return Page{}, err
		}
		return Page{}, wrap("vlv search", q.Base, err)
	}
	if resp.contextID != nil {
		c.key, c.context, c.built, c.total = ck, resp.contextID, time.Now(), resp.contentCount
		p.mu.Lock()
		c.gen = p.gen
		p.mu.Unlock()
	} else {
		c.key, c.context = "", nil
	}
	return page, nil
}

// freeContexts closes c and every idle connection holding sort contexts, which releases them
// on the server.
func (p *Pager) freeContexts(c *vlvConn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c.close()
	for _, o := range p.conns {
		if o != c && !o.busy && o.conn != nil {
			o.close()
		}
	}
}

// vlv sends one VLV search and returns the page it describes.
func (p *Pager) vlv(c *vlvConn, q Search, key SortKey, offset, count int, ctxID []byte) (Page, vlvResponse, error) {
	after := count - 1
	if after < 0 {
		after = 0
	}
	sortCtrl := ldap.NewControlServerSideSortingWithSortKeys([]*ldap.SortKey{{AttributeType: key.Attr, MatchingRule: key.OrderingRule, Reverse: key.Reverse}})
	vlvCtrl := &vlvRequestControl{before: 0, after: after, offset: offset, contextID: ctxID}
	if ctxID == nil {
		// Counted before sending: even a failed request may leave a context on the server.
		c.contexts++
	}
	req := ldap.NewSearchRequest(q.Base, q.Scope.ldap(), ldap.NeverDerefAliases, 0, 0, false, q.Filter, p.store.rangeRequest(q.Attrs),
		[]ldap.Control{sortCtrl, vlvCtrl})
	res, err := c.conn.Search(req)
	if err != nil {
		return Page{}, vlvResponse{}, err
	}
	var resp vlvResponse
	found := false
	for _, ctrl := range res.Controls {
		if ctrl.GetControlType() != OIDVLVResponse {
			continue
		}
		cs, ok := ctrl.(*ldap.ControlString)
		if !ok {
			continue
		}
		r, err := parseVLVResponse([]byte(cs.ControlValue))
		if err != nil {
			return Page{}, vlvResponse{}, &Error{Op: "vlv search", DN: q.Base, Err: err, kind: ErrUnsupported}
		}
		resp, found = r, true
	}
	if !found {
		return Page{}, vlvResponse{}, &Error{Op: "vlv search", DN: q.Base, Err: errors.New("the server sent no VLV response control"), kind: ErrUnsupported}
	}
	if resp.result != 0 {
		return Page{}, vlvResponse{}, &Error{Op: "vlv search", DN: q.Base, Code: resp.result, Err: fmt.Errorf("VLV result %d", resp.result), kind: ErrUnsupported}
	}
	page := Page{Total: resp.contentCount}
	if count == 0 || resp.contentCount == 0 || offset > resp.contentCount {
		return page, resp, nil
	}
	// The window starts at the server's target position; drop anything before offset (a server
	// may clamp the target) and anything past count.
	skip := 0
	if resp.targetPosition > 0 && resp.targetPosition < offset {
		skip = offset - resp.targetPosition
	}
	for i, e := range res.Entries {
		if i < skip {
			continue
		}
		if len(page.Entries) == count {
			break
		}
		if err := p.store.completeRanges(c.conn, e); err != nil {
			return Page{}, vlvResponse{}, err
		}
		page.Entries = append(page.Entries, toEntry(e))
	}
	return page, resp, nil
}

// vlvRequestControl is the Virtual List View request control (by offset), which go-ldap lacks:
//
//	VirtualListViewRequest ::= SEQUENCE {
//	    beforeCount INTEGER, afterCount INTEGER,
//	    byOffset [0] SEQUENCE { offset INTEGER, contentCount INTEGER },
//	    contextID OCTET STRING OPTIONAL }
type vlvRequestControl struct {
	before, after, offset int
	contextID             []byte
}

func (c *vlvRequestControl) GetControlType() string { return OIDVLV }

func (c *vlvRequestControl) Encode() *ber.Packet {
	p := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "Control")
	p.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, OIDVLV, "Control Type (VLV)"))
	// Critical: a server that cannot honour it must fail rather than return everything.
	p.AppendChild(ber.NewBoolean(ber.ClassUniversal, ber.TypePrimitive, ber.TagBoolean, true, "Criticality"))
	seq := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "VirtualListViewRequest")
	seq.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, int64(c.before), "beforeCount"))
	seq.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, int64(c.after), "afterCount"))
	byOffset := ber.Encode(ber.ClassContext, ber.TypeConstructed, 0, nil, "byOffset")
	byOffset.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, int64(c.offset), "offset"))
	byOffset.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, int64(0), "contentCount"))
	seq.AppendChild(byOffset)
	if c.contextID != nil {
		seq.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, string(c.contextID), "contextID"))
	}
	p.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, string(seq.Bytes()), "Control Value (VLV)"))
	return p
}

func (c *vlvRequestControl) String() string {
	return fmt.Sprintf("Control Type: VLV (%q) Criticality: true before=%d after=%d offset=%d context=%t",
		OIDVLV, c.before, c.after, c.offset, c.contextID != nil)
}

// vlvResponse is the decoded VirtualListViewResponse.
type vlvResponse struct {
	targetPosition int
	contentCount   int
	result         int
	contextID      []byte
}

func parseVLVResponse(value []byte) (vlvResponse, error) {
	pkt, err := ber.DecodePacketErr(value)
	if err != nil {
		return vlvResponse{}, fmt.Errorf("VLV response control: %w", err)
	}
	if len(pkt.Children) < 3 {
		return vlvResponse{}, fmt.Errorf("VLV response control: %d elements, want at least 3", len(pkt.Children))
	}
	ints := make([]int, 3)
	for i := 0; i < 3; i++ {
		n, err := ber.ParseInt64(pkt.Children[i].Data.Bytes())
		if err != nil {
			return vlvResponse{}, fmt.Errorf("VLV response control: element %d: %w", i, err)
		}
		ints[i] = int(n)
	}
	r := vlvResponse{targetPosition: ints[0], contentCount: ints[1], result: ints[2]}
	if len(pkt.Children) > 3 {
		r.contextID = append([]byte(nil), pkt.Children[3].Data.Bytes()...)
	}
	return r, nil
}
