package doctor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/scimbridge/scimbridge/bridge"
	"github.com/scimbridge/scimbridge/ldapstore"
	"github.com/scimbridge/scimbridge/mapping"
)

// checkBind opens a small pool as the service account and reads the root DSE.
func checkBind(ctx context.Context, r *run) []Result {
	const name = "ldap.bind"
	lc := bridge.LDAPConfig(r.cfg)
	lc.PoolSize = 2
	store, err := ldapstore.Open(ctx, lc, r.log)
	switch {
	case errors.Is(err, ldapstore.ErrDenied):
		return []Result{fail(name,
			fmt.Sprintf("put the service account's password in ldap.bind_password_file (reset it with: ldappasswd -x -H %s -D <admin DN> -W -S %q), and check ldap.bind_dn", lc.URLs[0], lc.BindDN),
			"the directory refused the bind as %q: wrong password or DN", lc.BindDN)}
	case err != nil:
		return []Result{fail(name,
			"check ldap.url (scheme, host, port), that the directory runs and listens there, firewalls, and ldap.ca_file / ldap.start_tls for TLS",
			"no directory server answered at %s: %v", strings.Join(lc.URLs, ", "), err)}
	}
	r.store = store
	dse, err := store.RootDSE(ctx)
	if err != nil {
		return []Result{fail(name, "let the service account read the root DSE (access to dn.base=\"\" by * read)", "reading the root DSE: %v", err)}
	}
	r.dse = dse
	// The dialect's defaults ([ldap.users] object classes, id attribute…) apply to every
	// check that follows, as they do in the daemon.
	if err := bridge.ApplyDialect(ctx, r.cfg, store); err != nil {
		return []Result{fail(name, "see the error; the directory must answer the service account's searches", "%v", err)}
	}
	vendor := dse.VendorName
	if vendor == "" {
		vendor = "vendor not published"
	}
	return []Result{pass(name, "bound as %q; the directory is %s (%s)", lc.BindDN, dse.Dialect, vendor)}
}

// checkTransport warns when the password and the change log travel in clear to another host.
func checkTransport(_ context.Context, r *run) []Result {
	const name = "ldap.transport"
	l := r.cfg.LDAP
	var plain []string
	for _, raw := range l.URLs {
		u, err := url.Parse(raw)
		if err != nil || u.Scheme == "ldaps" || l.StartTLS || isLoopback(u.Hostname()) {
			continue
		}
		plain = append(plain, raw)
	}
	if l.InsecureSkipVerify {
		return []Result{warn(name, "give ldap.ca_file the CA that signed the directory's certificate and remove insecure_skip_verify",
			"ldap.insecure_skip_verify is set: the directory's certificate is not verified")}
	}
	if len(plain) > 0 {
		return []Result{warn(name, "use ldaps:// or start_tls = true (with ldap.ca_file)",
			"%s is not loopback and not TLS: the bind password, user attributes and the change log travel in clear", strings.Join(plain, ", "))}
	}
	return []Result{pass(name, "TLS or loopback to every directory URL")}
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// checkUsersBase checks that the users base exists and that the service account may write
// there.
func checkUsersBase(ctx context.Context, r *run) []Result {
	return checkBase(ctx, r, "ldap.users.base_dn", r.cfg.LDAP.Users.BaseDN, "users")
}

// checkGroupsBase is checkUsersBase for the groups base.
func checkGroupsBase(ctx context.Context, r *run) []Result {
	return checkBase(ctx, r, "ldap.groups.base_dn", r.cfg.LDAP.Groups.BaseDN, "groups")
}

// checkBase reads the base and probes write access on it with a Modify the directory refuses
// either way (deleting a value that is not there): "no such value" means the ACL let it
// through, "insufficient access" that it did not. An ACL granting write on dn.subtree of the
// base, as the README shows, covers creating, changing, renaming and deleting the entries
// below it.
func checkBase(ctx context.Context, r *run, name, base, what string) []Result {
	bind := r.cfg.LDAP.BindDN
	if _, err := r.store.Get(ctx, base, []string{"1.1"}); err != nil {
		if errors.Is(err, ldapstore.ErrNotFound) {
			return []Result{fail(name,
				fmt.Sprintf("create %q (an organizationalUnit) or correct %s; the service account must be able to read it", base, name),
				"%q does not exist, or the service account cannot see it", base)}
		}
		return []Result{fail(name, "see the error; the directory must answer the service account's searches", "reading %q: %v", base, err)}
	}
	err := r.store.ProbeWrite(ctx, base)
	switch {
	case err == nil:
		return []Result{pass(name, "%q exists and the service account may write there (checked with a change the directory refuses and discards)", base)}
	case errors.Is(err, ldapstore.ErrDenied):
		return []Result{fail(name,
			fmt.Sprintf("grant the service account write access: access to dn.subtree=%q by dn.exact=%q write (before any rule that stops there)", base, bind),
			"the service account may not write %s below %q (insufficient access)", what, base)}
	}
	return []Result{warn(name, fmt.Sprintf("make sure %q may create, modify, rename and delete entries below %q", bind, base),
		"%q exists; write access could not be probed: %v", base, err)}
}

// checkOverlays reports the optional features the bridge uses when it finds them: VLV and
// server-side sort (sssvlv), the Assertion control, and ppolicy's lock attribute.
func checkOverlays(ctx context.Context, r *run) []Result {
	const name = "ldap.overlays"
	var out []Result
	if r.dse.Supports(ldapstore.OIDVLV) && r.dse.Supports(ldapstore.OIDServerSideSort) {
		out = append(out, pass(name+".sssvlv", "VLV and server-side sort: large SCIM listings are paged by the directory"))
	} else {
		out = append(out, warn(name+".sssvlv", "load the sssvlv overlay on the data database (olcOverlay: sssvlv) for directories of thousands of entries",
			"no VLV/server-side sort: SCIM listings past the first page are served from a short-lived snapshot of the whole result"))
	}
	if r.dse.Supports(ldapstore.OIDAssertion) {
		out = append(out, pass(name+".assertion", "the Assertion control: If-Match is checked atomically by the directory"))
	} else {
		out = append(out, warn(name+".assertion", "nothing to set up: this directory has no Assertion control (RFC 4528)",
			"no Assertion control: If-Match is checked just before the write (a concurrent change can slip in between)"))
	}
	switch r.dse.Dialect {
	case ldapstore.DialectAD:
		return append(out, pass(name+".disable", "Active Directory: a user disabled through SCIM (active=false) gets userAccountControl's ACCOUNTDISABLE and cannot bind"))
	case ldapstore.Dialect389DS:
		return append(out, pass(name+".disable", "389 Directory Server: a user disabled through SCIM (active=false) gets nsAccountLock: TRUE and cannot bind"))
	}
	sc, err := r.readSchema(ctx)
	if err != nil {
		return append(out, fail(name+".ppolicy", "let the service account read the subschema entry (cn=Subschema)", "reading the schema: %v", err))
	}
	marker := mapping.DefaultActiveMarker()
	if sc.HasAttribute(ppolicyLockAttr) {
		out = append(out, pass(name+".ppolicy", "ppolicy is loaded: a user disabled through SCIM (active=false) cannot bind, provided the password policy that applies has pwdLockout: TRUE"))
	} else {
		out = append(out, warn(name+".ppolicy",
			fmt.Sprintf("load the ppolicy overlay (with a default policy having pwdLockout: TRUE), or make every LDAP-backed service filter out (%s=%s)", marker.Attr, marker.Value),
			"ppolicy is not loaded: a user disabled through SCIM (active=false) keeps its password and can still bind"))
	}
	return out
}

// ppolicyLockAttr is the attribute the inbound server sets to lock a disabled user when the
// ppolicy overlay defines it.
const ppolicyLockAttr = "pwdAccountLockedTime"

func (r *run) readSchema(ctx context.Context) (*ldapstore.Schema, error) {
	if r.schema != nil {
		return r.schema, nil
	}
	sc, err := r.store.ReadSchema(ctx)
	if err != nil {
		return nil, err
	}
	r.schema = sc
	return sc, nil
}
