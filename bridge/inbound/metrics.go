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
	// inFlight and queued are the requests being worked on and waiting for their turn;
	// rejected counts those a full queue or the queue timeout turned away.
	inFlight prometheus.Gauge
	queued   prometheus.Gauge
	rejected *prometheus.CounterVec
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
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "scimbridge_inbound_requests_in_flight",
			Help: "SCIM requests being worked on (at most inbound.max_concurrent_requests).",
		}),
		queued: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "scimbridge_inbound_requests_queued",
			Help: "SCIM requests waiting for their turn (at most inbound.max_queued_requests).",
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scimbridge_inbound_requests_rejected_total",
			Help: "SCIM requests answered 503 because the queue was full or they waited too long, by reason.",
		}, []string{"reason"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.duration, m.ignored, m.inFlight, m.queued, m.rejected)
	}
	return m
}

// observe counts one answered request. Every label value comes from a fixed set: the
// endpoint from endpointLabel, the method from methodLabel and the status from this server's
// own answers, never from what a client chose.
func (m *metrics) observe(endpoint, method string, status int, d time.Duration) {
	method = methodLabel(method)
	m.requests.WithLabelValues(endpoint, method, statusLabel(status)).Inc()
	m.duration.WithLabelValues(endpoint, method).Observe(d.Seconds())
}

// methodLabel maps a request method to the bounded set GET, POST, PUT, PATCH, DELETE and
// other: a client may send any token as a method, and one label value per made-up method would
// grow /metrics without bound.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
		return m
	}
	return "other"
}

// statusLabel is the status code as a label value, with anything outside 100–599 as "other".
func statusLabel(status int) string {
	if status < 100 || status > 599 {
		return "other"
	}
	return strconv.Itoa(status)
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
