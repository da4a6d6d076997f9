package doctor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/scimbridge/scimbridge/bridge/config"
	"github.com/scimbridge/scimbridge/ldapstore"
	"github.com/scimbridge/scimbridge/mapping"
	"github.com/scimbridge/scimbridge/targets"
)

// maxClockSkew is how far a target's clock may be from ours: OAuth2 tokens and signed
// requests carry times, and log correlation needs them.
const maxClockSkew = time.Minute

// probeTimeout bounds one target's probe (each try is bounded by the target's own timeout).
const probeTimeout = 2 * time.Minute

// checkProvisioners checks each provisioner: its scope's groups and filter against the
// directory, then its target: reachable, accepting the credentials, with a clock close to ours.
func checkProvisioners(ctx context.Context, r *run) []Result {
	var out []Result
	for _, p := range r.cfg.Provisioners {
		out = append(out, r.checkScope(ctx, p)...)
		out = append(out, r.checkTarget(ctx, p)...)
	}
	return out
}

func (r *run) checkScope(ctx context.Context, p config.Provisioner) []Result {
	name := fmt.Sprintf("provisioner %q.scope", p.Name)
	if r.store == nil {
		return []Result{skip(name, "not checked: the bind failed")}
	}
	var out []Result
	for _, g := range p.Groups {
		if _, err := r.store.Get(ctx, g, []string{"1.1"}); err != nil {
			if errors.Is(err, ldapstore.ErrNotFound) {
				out = append(out, fail(name, "correct the DN in groups, or create the group", "the group %q in groups does not exist (or the service account cannot see it): the provisioner would stop", g))
				continue
			}
			out = append(out, fail(name, "see the error", "reading the group %q: %v", g, err))
		}
	}
	if p.Filter != "" {
		f := "(&" + r.cfg.LDAP.Users.Filter + p.Filter + ")"
		err := r.store.WalkWith(ctx, ldapstore.Search{Base: r.cfg.LDAP.Users.BaseDN, Scope: ldapstore.ScopeSub, Filter: f, Attrs: []string{"1.1"}},
			ldapstore.SearchOptions{SizeLimit: 1}, func(mapping.Entry) error { return nil })
		if err != nil && !errors.Is(err, ldapstore.ErrNotFound) {
			out = append(out, fail(name, "correct the LDAP filter in filter", "the directory refuses the filter %s: %v", p.Filter, err))
		}
	}
	if len(out) == 0 {
		out = append(out, pass(name, "every group in groups exists (%d); the filter is accepted", len(p.Groups)))
	}
	return out
}

func (r *run) checkTarget(ctx context.Context, p config.Provisioner) []Result {
	name := fmt.Sprintf("provisioner %q", p.Name)
	t, err := p.Target.Open(p.Name, r.log)
	if err != nil {
		return []Result{fail(name, "see the error: a secret file the daemon reads must be readable here too (run doctor with the daemon's credentials)", "%v", err)}
	}
	if c, ok := t.(targets.Closer); ok {
		defer c.Close()
	}
	prober, ok := t.(targets.Prober)
	if !ok {
		return []Result{pass(name, "type %q reaches nothing outside this host", p.Type)}
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	res, err := prober.Probe(ctx)
	switch {
	case errors.Is(err, targets.ErrCredentialsRejected):
		return []Result{fail(name, "check the credentials: token_file (auth = \"bearer\"), client_id and client_secret_file with token_url and scopes (oauth2), or username and password_file (basic)",
			"the target rejected the credentials: %v", err)}
	case errors.Is(err, targets.ErrUnreachable):
		return []Result{fail(name, "check url, DNS, the firewall and proxies between here and the target, and ca_file if it uses a private CA",
			"the target cannot be reached: %v", err)}
	case err != nil:
		return []Result{fail(name, "check url (it must end at the SCIM base, e.g. …/scim/v2)", "unexpected answer: %v", err)}
	}
	out := []Result{pass(name, "reachable and accepting the credentials (%s)", res.Detail)}
	if res.Date.IsZero() {
		return append(out, warn(name+".clock", "nothing to do unless tokens are refused for their times: compare the clocks by hand", "the target sent no Date header: its clock cannot be compared"))
	}
	skew := r.now().Sub(res.Date)
	if skew.Abs() > maxClockSkew {
		return append(out, fail(name+".clock", "synchronise this host's clock (timedatectl set-ntp true; chrony or systemd-timesyncd)",
			"the target's clock differs from ours by %s", skew.Round(time.Second)))
	}
	return append(out, pass(name+".clock", "the target's clock is within %s of ours", maxClockSkew))
}
