package bridge

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/scimbridge/scimbridge/ldapstore"
)

// metrics are the bridge's own collectors; components register theirs on the same registry.
type metrics struct {
	reloadOK     prometheus.Gauge
	reloadTime   prometheus.Gauge
	ldapDuration *prometheus.HistogramVec
	ldapErrors   *prometheus.CounterVec
	ldapUp       prometheus.Gauge
	certExpiry   prometheus.Gauge
	stateWrite   prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		reloadOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "scimbridge_config_last_reload_successful",
			Help: "Whether the last configuration reload succeeded (1) or kept the old configuration (0).",
		}),
		reloadTime: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "scimbridge_config_last_reload_success_timestamp_seconds",
			Help: "Time of the last successful configuration load.",
		}),
		ldapDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "scimbridge_ldap_operation_duration_seconds",
			Help:    "Latency of directory operations.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"op"}),
		ldapErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scimbridge_ldap_operation_errors_total",
			Help: "Directory operations that failed, by operation and class.",
		}, []string{"op", "class"}),
		ldapUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "scimbridge_ldap_up",
			Help: "Whether the last directory operation reached the server.",
		}),
		certExpiry: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "scimbridge_inbound_certificate_expiry_timestamp_seconds",
			Help: "When the inbound SCIM server's TLS certificate expires (Unix time); 0 when it does not speak TLS itself.",
		}),
		stateWrite: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "scimbridge_state_write_transaction_duration_seconds",
			Help:    "How long each state file write transaction held the file's only write lock (its work and its commit, fsync included).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
	}
	reg.MustRegister(m.reloadOK, m.reloadTime, m.ldapDuration, m.ldapErrors, m.ldapUp, m.certExpiry, m.stateWrite)
	return m
}

// stateFileCollector reports the state file's size and free space while the provisioning side
// has it open (nothing before, nor on an [ha] standby).
type stateFileCollector struct {
	b          *Bridge
	size, free *prometheus.Desc
}

func newStateFileCollector(b *Bridge) stateFileCollector {
	return stateFileCollector{
		b: b,
		size: prometheus.NewDesc("scimbridge_state_file_size_bytes",
			"Size of the state file as bbolt uses it (free pages included; the file never shrinks by itself).", nil, nil),
		free: prometheus.NewDesc("scimbridge_state_file_free_bytes",
			"Bytes of the state file in free pages, which bbolt reuses before it grows the file.", nil, nil),
	}
}

func (c stateFileCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.size
	ch <- c.free
}

func (c stateFileCollector) Collect(ch chan<- prometheus.Metric) {
	pv := provisioningOf(c.b)
	if pv == nil {
		return
	}
	fs, err := pv.db.FileStats()
	if err != nil {
		return // closing: the next scrape has no provisioning or a new file
	}
	ch <- prometheus.MustNewConstMetric(c.size, prometheus.GaugeValue, float64(fs.Size))
	ch <- prometheus.MustNewConstMetric(c.free, prometheus.GaugeValue, float64(fs.Free))
}

// observeLDAP is the ldapstore.Observer feeding the LDAP metrics.
func (m *metrics) observeLDAP(op string, d time.Duration, err error) {
	m.ldapDuration.WithLabelValues(op).Observe(d.Seconds())
	if err == nil {
		m.ldapUp.Set(1)
		return
	}
	class := "other"
	for _, c := range []struct {
		err  error
		name string
	}{
		{ldapstore.ErrUnavailable, "unavailable"},
		{ldapstore.ErrNotFound, "not_found"},
		{ldapstore.ErrAlreadyExists, "exists"},
		{ldapstore.ErrAssertionFailed, "assertion"},
		{ldapstore.ErrInvalid, "invalid"},
		{ldapstore.ErrDenied, "denied"},
	} {
		if errors.Is(err, c.err) {
			class = c.name
			break
		}
	}
	if class == "unavailable" {
		m.ldapUp.Set(0)
	} else {
		m.ldapUp.Set(1)
	}
	m.ldapErrors.WithLabelValues(op, class).Inc()
}
