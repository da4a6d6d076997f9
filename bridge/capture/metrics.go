package capture

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the Reader's collectors.
type metrics struct {
	events     *prometheus.CounterVec
	lag        prometheus.Gauge
	lastPoll   prometheus.Gauge
	reconciles *prometheus.CounterVec
	errors     prometheus.Counter
	push       prometheus.Gauge
}

func newMetrics() *metrics {
	return &metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scimbridge_changes_events_total",
			Help: "Change-log events read from the directory, by kind (upsert, rename, delete).",
		}, []string{"kind"}),
		lag: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "scimbridge_changes_lag_seconds",
			Help: "Time between the directory's write of the newest event in the last batch and its commit by the bridge; 0 when a poll found nothing new.",
		}),
		lastPoll: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "scimbridge_changes_last_poll_timestamp_seconds",
			Help: "When the change log was last read successfully.",
		}),
		reconciles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scimbridge_changes_reconciles_total",
			Help: "Full reconciles of the directory against the id map, by result.",
		}, []string{"result"}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "scimbridge_changes_errors_total",
			Help: "Polls or reconciles that failed (retried at the next poll interval).",
		}),
		push: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "scimbridge_changes_push_active",
			Help: "1 while the change log's push stream (accesslog refreshAndPersist sync search) is open and every write triggers a poll at once; 0 while changes are found by polling every poll_interval alone.",
		}),
	}
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.events, m.lag, m.lastPoll, m.reconciles, m.errors, m.push}
}

func (m *metrics) register(reg prometheus.Registerer) error {
	var done []prometheus.Collector
	for _, c := range m.collectors() {
		if err := reg.Register(c); err != nil {
			for _, d := range done {
				reg.Unregister(d)
			}
			return err
		}
		done = append(done, c)
	}
	return nil
}

func (m *metrics) unregister(reg prometheus.Registerer) {
	for _, c := range m.collectors() {
		reg.Unregister(c)
	}
}
