package client

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the client's Prometheus collectors. Every call counts against
// the service it named and the version that served it (Coexist-Served-By),
// or the version chosen when no answer named one; a call that found no route
// has an empty version, and a call to a service the table does not know an
// empty service too, so that callers cannot grow the label sets at will.
type metrics struct {
	calls     *prometheus.CounterVec
	failures  *prometheus.CounterVec
	retries   *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	staleness prometheus.GaugeFunc

	// cache holds the children of each (service, version) seen, so that a
	// call finds its counters with two map reads and no allocation. It is
	// copied on write, which happens once per version.
	mu    sync.Mutex
	cache atomic.Pointer[map[string]map[string]*versionMetrics]
}

type versionMetrics struct {
	calls, failures, retries prometheus.Counter
	duration                 prometheus.Observer
}

func newMetrics(name, version string, staleness func() time.Duration) *metrics {
	labels := prometheus.Labels{"client": name, "client_version": version}
	by := []string{"service", "version"}
	m := &metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "coexist_client_calls_total",
			Help:        "Calls made through the SDK, by service and the version that served them.",
			ConstLabels: labels,
		}, by),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "coexist_client_failures_total",
			Help:        "Calls that failed: no route, an error, or a 5xx answer after any retries.",
			ConstLabels: labels,
		}, by),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "coexist_client_retries_total",
			Help:        "Attempts retried on another choice: refused as safe to retry, or never connected; by the version refused.",
			ConstLabels: labels,
		}, by),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:        "coexist_client_call_duration_seconds",
			Help:        "Duration of calls up to the answer's headers, retries included.",
			ConstLabels: labels,
			Buckets:     []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, by),
	}
	m.staleness = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "coexist_client_route_table_age_seconds",
		Help:        "Age of the route table: how long since the registry last confirmed it (see Client.Staleness).",
		ConstLabels: labels,
	}, func() float64 { return staleness().Seconds() })
	empty := map[string]map[string]*versionMetrics{}
	m.cache.Store(&empty)
	return m
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.calls, m.failures, m.retries, m.duration, m.staleness}
}

// of returns the counters of (service, version).
func (m *metrics) of(service, version string) *versionMetrics {
	if vm := (*m.cache.Load())[service][version]; vm != nil {
		return vm
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	old := *m.cache.Load()
	if vm := old[service][version]; vm != nil {
		return vm
	}
	// Cloned: service and version may point into a request or an answer.
	service, version = strings.Clone(service), strings.Clone(version)
	vm := &versionMetrics{
		calls:    m.calls.WithLabelValues(service, version),
		failures: m.failures.WithLabelValues(service, version),
		retries:  m.retries.WithLabelValues(service, version),
		duration: m.duration.WithLabelValues(service, version),
	}
	next := make(map[string]map[string]*versionMetrics, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	versions := make(map[string]*versionMetrics, len(old[service])+1)
	for k, v := range old[service] {
		versions[k] = v
	}
	versions[version] = vm
	next[service] = versions
	m.cache.Store(&next)
	return vm
}
