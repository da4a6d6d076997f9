package doctor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/scimbridge/scimbridge/bridge"
	"github.com/scimbridge/scimbridge/bridge/lease"
	"github.com/scimbridge/scimbridge/ldapstore"
)

// checkHA checks the [ha] lease: ha.lease_url answers the service account, and the lease
// entry can be read and written there (or, before the first instance created it, its parent
// exists and may be written below). Nothing is changed: write access is probed with a
// change the directory refuses either way.
func checkHA(ctx context.Context, r *run) []Result {
	const name = "ha.lease"
	if !r.cfg.HA.Enabled {
		return nil
	}
	dn := r.cfg.LeaseDNOrDefault()
	bind := r.cfg.LDAP.BindDN
	s, err := bridge.LeaseStore(r.cfg, r.log)
	if err != nil {
		return []Result{fail(name, "correct ha.lease_url", "%v", err)}
	}
	defer s.Close()
	acl := fmt.Sprintf("access to dn.base=%q by dn.exact=%q write (or keep the default lease_dn below the users base, which the documented ACL covers)", dn, bind)
	en, err := s.Get(ctx, dn, []string{"description"})
	switch {
	case errors.Is(err, ldapstore.ErrNotFound):
		_, parent, err := ldapstore.SplitDN(dn)
		if err != nil || parent == "" {
			return []Result{fail(name, "set ha.lease_dn to a DN below an existing entry", "%v", err)}
		}
		if _, err := s.Get(ctx, parent, []string{"1.1"}); err != nil {
			return []Result{fail(name, fmt.Sprintf("create %q, or set ha.lease_dn below an entry that exists", parent),
				"the lease entry %q does not exist yet and its parent cannot be read on %s: %v", dn, r.cfg.HA.LeaseURL, err)}
		}
		if err := s.ProbeWrite(ctx, parent); errors.Is(err, ldapstore.ErrDenied) {
			return []Result{fail(name, acl, "the service account may not create the lease entry %q on %s (insufficient access)", dn, r.cfg.HA.LeaseURL)}
		}
		return []Result{pass(name, "no lease entry yet: the first instance creates %q on %s", dn, r.cfg.HA.LeaseURL)}
	case err != nil:
		return []Result{fail(name, "ha.lease_url must answer the service account: the lease is only taken on that server", "reading %q on %s: %v", dn, r.cfg.HA.LeaseURL, err)}
	}
	if err := s.ProbeWrite(ctx, dn); err != nil {
		if errors.Is(err, ldapstore.ErrDenied) {
			return []Result{fail(name, acl, "the service account may not write the lease entry %q (insufficient access)", dn)}
		}
		return []Result{warn(name, "make sure the service account may modify "+dn, "write access to the lease entry could not be probed: %v", err)}
	}
	for _, v := range en.Attrs["description"] {
		if l, err := lease.Decode(v); err == nil {
			holder := l.Holder
			if holder == "" {
				holder = "nobody (released)"
			}
			return []Result{pass(name, "the lease entry %q on %s is readable and writable; held by %s, term %d, expires %s by the holder's clock",
				dn, r.cfg.HA.LeaseURL, holder, l.Term, l.Expires.Format(time.RFC3339))}
		}
	}
	return []Result{pass(name, "the lease entry %q on %s is readable and writable; it holds no lease value yet", dn, r.cfg.HA.LeaseURL)}
}
