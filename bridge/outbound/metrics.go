package outbound

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/scimbridge/scimbridge/bridge/state"
)

type metrics struct {
	ops      *prometheus.CounterVec
	enqueued *prometheus.CounterVec
	depth    *prometheus.GaugeVec
	dead     *prometheus.GaugeVec
	breaker  *prometheus.GaugeVec
	latency  *prometheus.HistogramVec
	// scopeMissing counts the configured scope groups not found: deprovisioning is held.
	scopeMissing *prometheus.GaugeVec
	// rate is the pacer's current rate; rateMoves counts why it moved.
	rate      *prometheus.GaugeVec
	rateMoves *prometheus.CounterVec
}

func newMetrics() *metrics {
	return &metrics{
		ops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scimbridge_outbound_operations_total",
			Help: "Operations sent to targets, by provisioner, operation (create, adopt, update, replace, disable, delete, members, dead_letter) and result.",
		}, []string{"provisioner", "op", "result"}),
		enqueued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scimbridge_outbound_enqueued_total",
			Help: "Work items written to the outbox (a change to an entry with pending work replaces it).",
		}, []string{"provisioner"}),
		depth: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "scimbridge_outbound_outbox_depth",
			Help: "Entries with pending work in the provisioner's outbox.",
		}, []string{"provisioner"}),
		dead: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "scimbridge_outbound_dead_letters",
			Help: "Items in the provisioner's dead-letter store.",
		}, []string{"provisioner"}),
		breaker: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "scimbridge_outbound_breaker_open",
			Help: "1 while a breaker stops the provisioner: breaker=\"deletes\" (mass deprovision, needs an admin) or \"target\" (the target fails everything or asked to wait; clears by itself).",
		}, []string{"provisioner", "breaker"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "scimbridge_outbound_delivery_latency_seconds",
			Help:    "Time from the directory change to its delivery on the target.",
			Buckets: []float64{.05, .1, .25, .5, 1, 2, 3, 5, 10, 30, 60, 300, 1800},
		}, []string{"provisioner"}),
		scopeMissing: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "scimbridge_outbound_scope_groups_missing",
			Help: "Configured scope groups of the provisioner that the directory does not show (renamed, deleted, unreadable); while above 0 the provisioner deprovisions nobody.",
		}, []string{"provisioner"}),
		rate: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "scimbridge_outbound_rate_limit",
			Help: "The provisioner's current pace in requests per second (adaptive below rate_limit or the adaptive ceiling; 0 when unlimited).",
		}, []string{"provisioner"}),
		rateMoves: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scimbridge_outbound_rate_changes_total",
			Help: "Moves of the provisioner's pace, by reason: slow_start and increase (requests waited for the pace and the target kept up), 429, 503 and 5xx answers, latency (answers slowed well beyond the target's usual), retry_after and quota (the target asked to wait or announced its quota was running out).",
		}, []string{"provisioner", "reason"}),
	}
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.ops, m.enqueued, m.depth, m.dead, m.breaker, m.latency, m.scopeMissing, m.rate, m.rateMoves}
}

func (m *metrics) register(r prometheus.Registerer) error {
	for _, c := range m.collectors() {
		if err := r.Register(c); err != nil {
			return err
		}
	}
	return nil
}

func (m *metrics) unregister(r prometheus.Registerer) {
	for _, c := range m.collectors() {
		r.Unregister(c)
	}
}

// forget drops the series of a removed provisioner.
func (m *metrics) forget(name string) {
	l := prometheus.Labels{"provisioner": name}
	m.ops.DeletePartialMatch(l)
	m.enqueued.DeletePartialMatch(l)
	m.depth.DeletePartialMatch(l)
	m.dead.DeletePartialMatch(l)
	m.breaker.DeletePartialMatch(l)
	m.latency.DeletePartialMatch(l)
	m.scopeMissing.DeletePartialMatch(l)
	m.rate.DeletePartialMatch(l)
	m.rateMoves.DeletePartialMatch(l)
}

func (e *Engine) refreshDeadGauge(p *Provisioner) {
	_ = e.o.State.View(func(tx *state.Tx) error {
		dl, err := tx.DeadLetters(p.spec.Name)
		if err != nil {
			return err
		}
		e.m.dead.WithLabelValues(p.spec.Name).Set(float64(dl.Len()))
		return nil
	})
}
