package bridge

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/scimbridge/scimbridge/bridge/config"
	"github.com/scimbridge/scimbridge/bridge/lease"
	"github.com/scimbridge/scimbridge/bridge/state"
	"github.com/scimbridge/scimbridge/ldapstore"
	"github.com/scimbridge/scimbridge/targets"
)

// leadership is one term of the lease as provisioning sees it.
type leadership struct {
	b       *Bridge
	elector *lease.Elector
	term    *lease.Term
}

// LeaseStore opens the pool the lease is kept through: the [ldap] settings, but only
// ha.lease_url (a lease must be taken on one server: with multi-provider replication two
// providers would each accept a competing write) and two connections.
func LeaseStore(cfg *config.Config, logger zerolog.Logger, opts ...ldapstore.Option) (*ldapstore.Store, error) {
	lc := LDAPConfig(cfg)
	lc.URLs, lc.PoolSize = []string{cfg.HA.LeaseURL}, 2
	lc.Timeout = min(lc.Timeout, cfg.HA.LeaseDuration.Duration/3)
	return ldapstore.New(lc, logger, opts...)
}

// startHA runs the lease: while this instance holds it, the outbound side runs under the
// term's context, each of its target requests fenced by the term (targets.WithGate).
func startHA(ctx context.Context, b *Bridge, cfg *config.Config, store *ldapstore.Store) error {
	ls, err := LeaseStore(cfg, b.logger.With().Str("component", "ldap").Logger(), ldapstore.WithObserver(b.metrics.observeLDAP))
	if err != nil {
		return fmt.Errorf("bridge: ha.lease_url: %w", err)
	}
	el, err := lease.New(lease.Options{
		Directory: ls, DN: cfg.LeaseDNOrDefault(), ID: cfg.HA.InstanceID,
		Duration: cfg.HA.LeaseDuration.Duration, Renew: cfg.HA.RenewInterval.Duration,
		Logger: b.logger,
	})
	if err != nil {
		ls.Close()
		return fmt.Errorf("bridge: %w", err)
	}
	b.mu.Lock()
	b.elector = el
	b.mu.Unlock()
	b.opts.Registry.MustRegister(newHACollector(el))
	b.logger.Info().Str("lease_dn", cfg.LeaseDNOrDefault()).Str("lease_url", cfg.HA.LeaseURL).
		Dur("lease_duration", cfg.HA.LeaseDuration.Duration).Msg("standing by for the lease")
	// While standing by, the control socket answers status and refuses the rest: a one-shot
	// `scimbridge sync` on this host must not push behind the leader's back.
	standby := func() *controlServer {
		if err := os.MkdirAll(cfg.State.Dir, 0o700); err != nil {
			b.logger.Warn().Err(err).Msg("no control socket while standing by")
			return nil
		}
		ctl, err := listenControl(cfg.State.Dir, b.standbyControl(el), b.logger)
		if err != nil {
			b.logger.Warn().Err(err).Msg("no control socket while standing by")
			return nil
		}
		return ctl
	}
	ctl := standby()
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		defer ls.Close()
		defer func() {
			if ctl != nil {
				_ = ctl.Close()
			}
		}()
		el.Run(ctx, func(term *lease.Term) {
			if ctl != nil {
				_ = ctl.Close()
				ctl = nil
			}
			defer func() {
				if ctx.Err() == nil {
					ctl = standby()
				}
			}()
			// The term's context carries the watchdog of ctx and ends with either.
			tctx, cancel := context.WithCancelCause(ctx)
			stop := context.AfterFunc(term.Context(), func() { cancel(context.Cause(term.Context())) })
			defer stop()
			defer cancel(nil)
			tctx = targets.WithGate(tctx, term.Allow)
			l := &leadership{b: b, elector: el, term: term}
			done, err := launchProvisioning(tctx, b, b.Config(), store, l)
			if err != nil {
				b.logger.Error().Err(err).Msg("starting provisioning as the leader failed; stepping down")
				return
			}
			<-done
		})
	}()
	return nil
}

// standbyControl is the control socket of a standby: status, and for everything else an
// error naming the holder.
func (b *Bridge) standbyControl(el *lease.Elector) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, b.Status(r.Context()))
	})
	refusal := func() error {
		holder := el.Status().Holder
		if holder == "" {
			holder = "none yet"
		}
		return fmt.Errorf("this instance stands by ([ha]): the outbound side runs on the lease holder (%s)", holder)
	}
	mux.HandleFunc("POST /v1/sync", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		_ = json.NewEncoder(w).Encode(SyncEvent{Done: true, Error: refusal().Error()})
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusConflict, refusal())
	})
	return mux
}

// prepare readies a new provisioning for the term: after a takeover its change cursor is
// the one in the lease, and a full reconcile runs first; renewals carry its committed cursor.
func (l *leadership) prepare(pv *provisioning) error {
	pv.gate = l.term.Allow
	if !l.term.Continued {
		pv.takeover = true
		cursor := l.term.Previous.Cursor
		err := pv.db.Update(func(tx *state.Tx) error {
			if cursor == "" {
				return nil
			}
			return tx.SetCursor("changes", cursor)
		})
		if err != nil {
			return fmt.Errorf("bridge: taking the lease's cursor over: %w", err)
		}
		l.b.logger.Info().Str("previous_holder", l.term.Previous.Holder).Str("cursor", cursor).
			Msg("taking over: following the change log from the lease's cursor after a full reconcile")
	}
	l.elector.SetCursor(func() string {
		var c string
		_ = pv.db.View(func(tx *state.Tx) error {
			cur, ok, err := tx.Cursor("changes")
			if ok {
				c = cur.Value
			}
			return err
		})
		return c
	})
	return nil
}

// finish stops renewals from reading the state file, which is about to close.
func (l *leadership) finish() { l.elector.SetCursor(nil) }

// HAStatus is the [ha] part of Status.
type HAStatus = lease.Status

func haStatus(_ context.Context, b *Bridge) (string, any) {
	b.mu.Lock()
	el := b.elector
	b.mu.Unlock()
	if el == nil {
		return "", nil
	}
	return "ha", el.Status()
}

// haCollector exports the Elector's view.
type haCollector struct {
	el                                     *lease.Elector
	leader, holder, expiry, term, takeover *prometheus.Desc
}

func newHACollector(el *lease.Elector) haCollector {
	return haCollector{
		el:       el,
		leader:   prometheus.NewDesc("scimbridge_ha_leader", "Whether this instance holds the lease and runs the outbound side (1) or stands by (0).", nil, nil),
		holder:   prometheus.NewDesc("scimbridge_ha_lease_holder_info", "The lease's holder as last read (always 1).", []string{"holder"}, nil),
		expiry:   prometheus.NewDesc("scimbridge_ha_lease_expiry_timestamp_seconds", "When the lease lapses by its holder's clock (Unix time), as last read.", nil, nil),
		term:     prometheus.NewDesc("scimbridge_ha_lease_term", "The lease's term number as last read: it grows by one at each take.", nil, nil),
		takeover: prometheus.NewDesc("scimbridge_ha_last_takeover_timestamp_seconds", "When this instance last took the lease over from another (Unix time; 0 never).", nil, nil),
	}
}

func (c haCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.leader, c.holder, c.expiry, c.term, c.takeover} {
		ch <- d
	}
}

func (c haCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.el.Status()
	leader := 0.0
	if st.Role == "leader" {
		leader = 1
	}
	ch <- prometheus.MustNewConstMetric(c.leader, prometheus.GaugeValue, leader)
	if st.Holder != "" {
		ch <- prometheus.MustNewConstMetric(c.holder, prometheus.GaugeValue, 1, st.Holder)
	}
	ch <- prometheus.MustNewConstMetric(c.expiry, prometheus.GaugeValue, unixOrZero(st.Expires))
	ch <- prometheus.MustNewConstMetric(c.term, prometheus.GaugeValue, float64(st.Term))
	ch <- prometheus.MustNewConstMetric(c.takeover, prometheus.GaugeValue, unixOrZero(st.LastTakeover))
}

func unixOrZero(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixNano()) / 1e9
}
