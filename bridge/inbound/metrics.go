package inbound

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the inbound server's collectors.
type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	ignored  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scimbridge_inbound_requests_total",
			Help: "SCIM requests answered by the inbound server, by endpoint, method and HTTP status.",
		}, []string{"endpoint", "method", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "scimbridge_inbound_request_duration_seconds",
			Help:    "Latency of SCIM requests answered by the inbound server, by endpoint and method.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"endpoint", "method"}),
		ignored: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "scimbridge_inbound_ignored_attributes_total",
			Help: "SCIM attribute values received that have no LDAP mapping and were ignored.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.duration, m.ignored)
	}
	return m
}

func (m *metrics) observe(endpoint, method string, status int, d time.Duration) {
	m.requests.WithLabelValues(endpoint, method, strconv.Itoa(status)).Inc()
	m.duration.WithLabelValues(endpoint, method).Observe(d.Seconds())
}

// endpointLabel names the endpoint of a path relative to the base path with a bounded set of
// values (ids never become label values).
func endpointLabel(rel string) string {
	first, rest, _ := strings.Cut(strings.TrimPrefix(rel, "/"), "/")
	switch first {
	case "Users", "Groups":
		switch rest {
		case "":
			return first
		case ".search":
			return first + "/.search"
		default:
			return first + "/{id}"
		}
	case "ServiceProviderConfig", "Schemas", "ResourceTypes", "Bulk", "Me", ".search":
		return first
	}
	return "other"
}

// statusRecorder remembers the status a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
