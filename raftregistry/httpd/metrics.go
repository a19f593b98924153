package httpd

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/coexist-dev/coexist/raftregistry/state"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the API's Prometheus collectors and what serves them.
type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	handler  http.Handler
}

func newMetrics(reg prometheus.Registerer, store Store) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "coexist", Subsystem: "http", Name: "requests_total",
			Help: "HTTP API requests by route pattern, method (GET, PUT, POST, DELETE, HEAD or other) and status class (2xx, 4xx, ...).",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "coexist", Subsystem: "http", Name: "request_duration_seconds",
			Help:    "HTTP API request duration by route pattern and method, blocking waits included.",
			Buckets: []float64{.001, .005, .01, .05, .1, .5, 1, 5, 30, 60, 300, 600},
		}, []string{"route", "method"}),
	}
	collectors := []prometheus.Collector{
		m.requests,
		m.duration,
		&stateCollector{store: store},
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "coexist", Subsystem: "raft", Name: "is_leader",
			Help: "1 when this server is the Raft leader, else 0.",
		}, func() float64 {
			if store.IsLeader() {
				return 1
			}
			return 0
		}),
	}
	// What /v1/metrics serves: the registry given when it can be gathered,
	// else a private one (with the collectors registered in both).
	private := prometheus.NewRegistry()
	var gatherer prometheus.Gatherer = private
	if reg == nil {
		reg = private
	} else if g, ok := reg.(prometheus.Gatherer); ok {
		gatherer = g
	} else {
		for _, c := range collectors {
			if err := private.Register(c); err != nil {
				return nil, fmt.Errorf("register metrics: %w", err)
			}
		}
	}
	for _, c := range collectors {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	m.handler = promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{})
	return m, nil
}

// stateCollector reports the index and record count of every table of the
// local replica, read at scrape time.
type stateCollector struct {
	store Store
}

var (
	tableIndexDesc = prometheus.NewDesc("coexist_state_table_index",
		"Raft index of the last change to each table of the local replica.", []string{"table"}, nil)
	tableRecordsDesc = prometheus.NewDesc("coexist_state_table_records",
		"Number of records in each table of the local replica.", []string{"table"}, nil)
)

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- tableIndexDesc
	ch <- tableRecordsDesc
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.store.State()
	counts := st.Counts()
	for _, t := range state.Tables() {
		name := t.String()
		ch <- prometheus.MustNewConstMetric(tableIndexDesc, prometheus.GaugeValue, float64(st.Index(t)), name)
		ch <- prometheus.MustNewConstMetric(tableRecordsDesc, prometheus.GaugeValue, float64(counts[name]), name)
	}
}

// observe records one answered request. Its labels take values from fixed
// sets only, never the caller's own words (docs/design.md §5): a method
// nobody routes counts as "other", a code by its class.
func (s *Server) observe(rec *recorder, r *http.Request, route string, start time.Time) {
	code := rec.code
	if code == 0 {
		code = http.StatusOK
	}
	took := time.Since(start)
	method := methodLabel(r.Method)
	s.metrics.requests.WithLabelValues(route, method, statusClass(code)).Inc()
	s.metrics.duration.WithLabelValues(route, method).Observe(took.Seconds())
	s.logger.Trace("request", "method", method, "path", r.URL.Path, "code", code, "took", took)
}

// methodLabel returns the method label of a request: one of the methods the
// API routes, or "other".
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodPut, http.MethodPost, http.MethodDelete, http.MethodHead:
		return m
	}
	return "other"
}

// statusClass returns the code label of a status: "2xx", "4xx", ...
func statusClass(code int) string {
	if code < 100 || code > 599 {
		return "other"
	}
	return strconv.Itoa(code/100) + "xx"
}

func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request, _ *call) error {
	s.metrics.handler.ServeHTTP(w, r)
	return nil
}

// recorder remembers the status code of an answer, for metrics, and whether
// the answer has started.
type recorder struct {
	http.ResponseWriter
	code  int
	wrote bool
}

func newRecorder(w http.ResponseWriter) *recorder { return &recorder{ResponseWriter: w} }

func (w *recorder) WriteHeader(code int) {
	if !w.wrote {
		w.code = code
		w.wrote = true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recorder) Write(b []byte) (int, error) {
	if !w.wrote {
		w.code = http.StatusOK
		w.wrote = true
	}
	return w.ResponseWriter.Write(b)
}

// Flush lets the reverse proxy stream a forwarded answer.
func (w *recorder) Flush() {
	if !w.wrote {
		w.code = http.StatusOK
		w.wrote = true
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection.
func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }
