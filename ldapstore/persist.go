package ldapstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// Watch follows the accesslog with an RFC 4533 refreshAndPersist sync search (it needs the
// syncprov overlay on the accesslog database) and calls wake whenever a record is written,
// so the caller polls at once instead of at its next interval. It never reads records for
// the cursor: Poll does that, so a record the stream misses (dropped, out of order) is
// caught by the next poll, whose overlap re-read covers it.
//
// The search runs on a connection of its own, without a request timeout (a timeout would
// end the search after that long), which is closed when Watch returns: cancelling a
// persistent search sends no Abandon, and the server would keep answering on the
// connection. Watch returns nil when ctx ends, and an error when the server refuses the
// search or the connection drops; the caller then polls and tries again later.
func (a *Accesslog) Watch(ctx context.Context, wake func()) error {
	// Only records from the newest on (by the server's clock, so a skewed local clock
	// cannot hide them): the refresh phase then sends almost nothing.
	since := time.Now().UTC()
	t, ok, err := a.newest(ctx)
	if err != nil {
		return fmt.Errorf("ldap: accesslog watch: %w", err)
	}
	if ok {
		since = t
	}
	conn, err := a.s.connect(ctx)
	if err != nil {
		return fmt.Errorf("ldap: accesslog watch: %w", err)
	}
	defer conn.Close()
	conn.SetTimeout(0)
	req := ldap.NewSearchRequest(a.opts.Base, ldap.ScopeSingleLevel, ldap.NeverDerefAliases, 0, 0, false,
		"(&(objectClass=auditWriteObject)(reqStart>="+EscapeFilter(formatSec(since.Unix()))+"))",
		[]string{"reqStart"}, nil)
	resp := conn.Syncrepl(ctx, req, 64, ldap.SyncRequestModeRefreshAndPersist, nil, false)
	for resp.Next() {
		if resp.Entry() != nil {
			wake()
		}
	}
	if err := resp.Err(); err != nil && ctx.Err() == nil {
		return fmt.Errorf("ldap: accesslog watch: %w", err)
	}
	if ctx.Err() != nil {
		return nil
	}
	return errors.New("ldap: accesslog watch: the server ended the persistent search")
}
