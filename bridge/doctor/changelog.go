package doctor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/scimbridge/scimbridge/bridge/capture"
	"github.com/scimbridge/scimbridge/ldapstore"
	"github.com/scimbridge/scimbridge/mapping"
)

// accesslogBase is the accesslog database's suffix the bridge reads.
const accesslogBase = "cn=accesslog"

// checkChangeLog checks that the change source the bridge will use is there, readable by the
// service account and (for the accesslog) recording writes, with a purge age the poll
// interval can keep up with.
func checkChangeLog(ctx context.Context, r *run) []Result {
	source := r.cfg.Changes.Source
	if source == "" {
		source = capture.DefaultSource(r.dse.Dialect)
	}
	name := "changes." + source
	if source == "accesslog" {
		return checkAccesslog(ctx, r, name)
	}
	src, err := capture.NewSource(ctx, r.cfg, r.store)
	if err == nil {
		_, err = src.Head(ctx)
	}
	if err != nil {
		return []Result{fail(name, "make the change log readable by the service account, or choose another changes.source (timestamp works everywhere)", "reading the change log: %v", err)}
	}
	r.logReadable = true
	return []Result{pass(name, "the change log is readable")}
}

func checkAccesslog(ctx context.Context, r *run, name string) []Result {
	bind := r.cfg.LDAP.BindDN
	if !slices.ContainsFunc(r.dse.NamingContexts, func(nc string) bool { return ldapstore.SameDN(nc, accesslogBase) }) {
		return []Result{fail(name,
			"load the accesslog overlay on the data database, logging to its own database \"cn=accesslog\" defined before it (logops writes, logsuccess TRUE, logpurge 07+00:00 01+00:00; see the README), or set changes.source = \"timestamp\"",
			"the directory has no %s database: the accesslog overlay is not configured", accesslogBase)}
	}
	src, err := capture.NewSource(ctx, r.cfg, r.store)
	if err == nil {
		_, err = src.Head(ctx)
	}
	switch {
	case errors.Is(err, ldapstore.ErrNotFound) || errors.Is(err, ldapstore.ErrDenied):
		return []Result{fail(name,
			fmt.Sprintf("grant read access to the log: access to dn.subtree=%q by dn.exact=%q read by * none (before any rule that hides it)", accesslogBase, bind),
			"%s exists but the service account cannot read it (an ACL hides it)", accesslogBase)}
	case err != nil:
		return []Result{fail(name, "see the error", "reading %s: %v", accesslogBase, err)}
	}
	r.logReadable = true
	out := []Result{pass(name, "%s is readable by the service account", accesslogBase)}
	cfgResults := r.checkAccesslogConfig(ctx, name)
	out = append(out, cfgResults...)
	if Worst(cfgResults) == Fail {
		// The settings already explain why changes are missing from the log.
		return append(out, skip(name+".recent", "not compared: see the settings above"))
	}
	return append(out, r.checkAccesslogRecent(ctx, name))
}

// checkAccesslogConfig reads the overlay's settings from cn=config when the service account
// may: logops must include the writes, and logpurge must keep records longer than a poll.
func (r *run) checkAccesslogConfig(ctx context.Context, name string) []Result {
	olc := r.loadOLC(ctx)
	verify := "verify by hand: ldapsearch -Y EXTERNAL -H ldapi:/// -b cn=config '(objectClass=olcAccessLogConfig)' olcAccessLogOps olcAccessLogPurge (want writes, and a purge age of days), or let the service account read cn=config"
	if olc == nil {
		return []Result{warn(name+".config", verify, "cn=config is not readable by the service account: logops and logpurge cannot be checked")}
	}
	overlay, ok := olc.accesslogOverlay(accesslogBase)
	if !ok {
		return []Result{warn(name+".config", verify, "no accesslog overlay logging to %s found in cn=config", accesslogBase)}
	}
	var out []Result
	ops := overlay.Get("olcAccessLogOps")
	if logsWrites(ops) {
		out = append(out, pass(name+".logops", "logops %s records every write", strings.Join(ops, " ")))
	} else {
		out = append(out, fail(name+".logops", "set logops writes (olcAccessLogOps: writes) on the accesslog overlay",
			"logops is %q: adds, modifies, renames or deletes are not recorded, and the bridge would miss them", strings.Join(ops, " ")))
	}
	purge := overlay.First("olcAccessLogPurge")
	age, err := parsePurgeAge(purge)
	poll := r.cfg.Changes.PollInterval.Duration
	switch {
	case purge == "":
		out = append(out, pass(name+".logpurge", "no logpurge: records are kept until removed by hand"))
	case err != nil:
		out = append(out, warn(name+".logpurge", "set logpurge to an age and an interval, e.g. 07+00:00 01+00:00", "cannot read logpurge %q: %v", purge, err))
	case age < poll:
		out = append(out, fail(name+".logpurge", "set logpurge to keep records for days (olcAccessLogPurge: 07+00:00 01+00:00)",
			"logpurge keeps records for %s, less than changes.poll_interval %s: changes are purged before the bridge reads them", human(age), poll))
	case age < 24*time.Hour:
		out = append(out, warn(name+".logpurge", "keep records for days (olcAccessLogPurge: 07+00:00 01+00:00)",
			"logpurge keeps records for only %s: a bridge stopped longer than that needs a full reconcile", human(age)))
	default:
		out = append(out, pass(name+".logpurge", "logpurge keeps records for %s", human(age)))
	}
	return out
}

// logsWrites reports whether logops values cover add, delete, modify and modrdn.
func logsWrites(ops []string) bool {
	have := map[string]bool{}
	for _, v := range ops {
		for _, o := range strings.Fields(strings.ToLower(v)) {
			have[o] = true
		}
	}
	if have["writes"] || have["all"] {
		return true
	}
	for _, o := range []string{"add", "delete", "modify", "modrdn"} {
		if !have[o] {
			return false
		}
	}
	return true
}

// parsePurgeAge reads the age of a logpurge value "[dd+]hh:mm[:ss] [dd+]hh:mm[:ss]".
func parsePurgeAge(v string) (time.Duration, error) {
	fields := strings.Fields(v)
	if len(fields) == 0 {
		return 0, errors.New("empty")
	}
	s := fields[0]
	var d time.Duration
	if days, rest, ok := strings.Cut(s, "+"); ok {
		var n int
		if _, err := fmt.Sscanf(days, "%d", &n); err != nil {
			return 0, fmt.Errorf("days %q", days)
		}
		d += time.Duration(n) * 24 * time.Hour
		s = rest
	}
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return 0, fmt.Errorf("want [dd+]hh:mm[:ss], got %q", fields[0])
	}
	for i, unit := range []time.Duration{time.Hour, time.Minute, time.Second}[:len(parts)] {
		var n int
		if _, err := fmt.Sscanf(parts[i], "%d", &n); err != nil {
			return 0, fmt.Errorf("want [dd+]hh:mm[:ss], got %q", fields[0])
		}
		d += time.Duration(n) * unit
	}
	return d, nil
}

// logStart finds from when the log covers [from, to]: from itself when it holds a write
// from before, else the second of its oldest write in the range (a binary search of a dozen
// one-entry searches). ok is false when the log holds no write up to to.
func (r *run) logStart(ctx context.Context, from, to time.Time) (time.Time, bool, error) {
	// before reports whether the log holds a write that started before the end of second t.
	before := func(t time.Time) (bool, error) {
		n := 0
		f := "(&(objectClass=auditWriteObject)(!(reqStart>=" + ldapstore.FormatTime(t.Add(time.Second)) + ")))"
		err := r.store.WalkWith(ctx, ldapstore.Search{Base: accesslogBase, Scope: ldapstore.ScopeOne, Filter: f, Attrs: []string{"1.1"}},
			ldapstore.SearchOptions{SizeLimit: 1}, func(mapping.Entry) error { n++; return nil })
		return n > 0, err
	}
	if ok, err := before(from); err != nil || ok {
		return from, ok, err
	}
	if ok, err := before(to); err != nil || !ok {
		return time.Time{}, false, err
	}
	lo, hi := from.Unix(), to.Unix() // before(lo) is false, before(hi) true
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		ok, err := before(time.Unix(mid, 0))
		if err != nil {
			return time.Time{}, false, err
		}
		if ok {
			hi = mid
		} else {
			lo = mid
		}
	}
	return time.Unix(hi, 0).UTC(), true, nil
}

// recentHorizon is how far back checkAccesslogRecent looks for changes in the directory.
const recentHorizon = time.Hour

// checkAccesslogRecent compares the directory with the log: when an entry below the users or
// groups bases changed recently (in the last hour, and since the log began) but the log holds
// no write from that moment on, the overlay is not recording the writes the bridge needs
// (logops, or the overlay on another database). Internal writes of overlays such as refint
// are not logged, but the write that caused them is, at the same time.
func (r *run) checkAccesslogRecent(ctx context.Context, name string) Result {
	name += ".recent"
	since, ok, err := r.logStart(ctx, r.now().Truncate(time.Second).Add(-recentHorizon), r.now())
	switch {
	case err != nil:
		return warn(name, "see the error", "reading %s: %v", accesslogBase, err)
	case !ok:
		return warn(name, "make a change in the directory (e.g. ldapmodify a test user) and run doctor again to see it recorded",
			"%s holds no write yet: whether it records the directory's writes cannot be seen", accesslogBase)
	}
	var newest time.Time
	var newestDN string
	for _, base := range []string{r.cfg.LDAP.Users.BaseDN, r.cfg.LDAP.Groups.BaseDN} {
		f := "(modifyTimestamp>=" + ldapstore.FormatTime(since) + ")"
		err := r.store.WalkWith(ctx, ldapstore.Search{Base: base, Scope: ldapstore.ScopeSub, Filter: f, Attrs: []string{"modifyTimestamp"}},
			ldapstore.SearchOptions{SizeLimit: 1000}, func(e mapping.Entry) error {
				if t, err := ldapstore.ParseTime(e.First("modifyTimestamp")); err == nil && t.After(newest) {
					newest, newestDN = t, e.DN
				}
				return nil
			})
		if err != nil && !errors.Is(err, ldapstore.ErrNotFound) {
			return warn(name, "see the error", "searching recent changes below %q: %v", base, err)
		}
	}
	if newest.IsZero() {
		return pass(name, "no entry below the users and groups bases changed since %s: nothing to compare with the log", since.Format(time.RFC3339))
	}
	logged := 0
	f := "(&(objectClass=auditWriteObject)(reqStart>=" + ldapstore.FormatTime(newest.Add(-time.Second)) + "))"
	err = r.store.WalkWith(ctx, ldapstore.Search{Base: accesslogBase, Scope: ldapstore.ScopeOne, Filter: f, Attrs: []string{"1.1"}},
		ldapstore.SearchOptions{SizeLimit: 1}, func(mapping.Entry) error { logged++; return nil })
	if err != nil {
		return warn(name, "see the error", "searching %s: %v", accesslogBase, err)
	}
	if logged == 0 {
		return fail(name, "make the accesslog overlay log writes (logops writes) on the database that holds the users and groups bases",
			"%q changed at %s but %s holds no write since: the bridge would not see such changes", newestDN, newest.Format(time.RFC3339), accesslogBase)
	}
	return pass(name, "%s records writes: the latest change below the bases (%s) is in it", accesslogBase, newest.Format(time.RFC3339))
}

// human prints a duration of days as days.
func human(d time.Duration) string {
	if d >= 24*time.Hour && d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%d days", d/(24*time.Hour))
	}
	return d.String()
}
