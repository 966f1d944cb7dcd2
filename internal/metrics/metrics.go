// Package metrics is secretd's Prometheus instrumentation. Counters and the
// Mount histogram are fed by the controller and the API server through small
// method sets; gauges read the daemon's state at scrape time, so they can
// never drift from it. No metric is labelled by secret or container: label
// values come from short fixed lists, so cardinality stays bounded however
// many secrets and containers a host has.
package metrics

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/secretd/secretd/errdefs"
	"github.com/secretd/secretd/internal/source"
)

// Namespace prefixes every secretd metric.
const Namespace = "secretd"

// State is what the gauges read when Prometheus scrapes. A nil func
// reports 0.
type State struct {
	// Mounts counts the tmpfs mounts secretd holds for containers.
	Mounts func() int
	// Locked reports whether the store waits for 'secretd unlock'.
	Locked func() bool
	// EngineUp reports whether the Docker Engine's event stream is followed.
	EngineUp func() bool
	// Version is the daemon's version, for secretd_build_info.
	Version string
}

// Metrics holds secretd's collectors on a private registry, so nothing a
// library registers globally ends up on secretd's endpoint.
type Metrics struct {
	reg       *prometheus.Registry
	mountTime prometheus.Histogram
	rotations prometheus.Counter
	// rotationFailures counts container mounts a rotation did not reach.
	rotationFailures prometheus.Counter
	errors           *prometheus.CounterVec
	events           *prometheus.CounterVec
	resyncs          prometheus.Counter
}

// Ops are the values of the op label of secretd_errors_total.
var Ops = []string{"mount", "unmount", "rotate", "resync", "engine", "api", "source"}

// EventActions are the values of the action label of
// secretd_engine_events_total: the engine events the controller follows.
var EventActions = []string{"die", "destroy", "rename"}

// New returns Metrics reading gauges from s.
func New(s State) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		mountTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "mount_duration_seconds",
			Help: "Time to answer a volume Mount that succeeded: resolve, decrypt, build the tmpfs.",
			// Mounts take milliseconds; the long tail is an engine that is
			// slow to list containers.
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		rotations: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace, Name: "rotations_total",
			Help: "Container mounts rewritten in place with a new secret version.",
		}),
		rotationFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace, Name: "rotation_failures_total",
			Help: "Container mounts a secret update did not reach: they kept the previous version.",
		}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "errors_total",
			Help: "Failures by operation (mount, unmount, rotate, resync, engine, api) and kind (locked, not_found, invalid, in_use, ...).",
		}, []string{"op", "kind"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "engine_events_total",
			Help: "Docker Engine container events handled, by action.",
		}, []string{"action"}),
		resyncs: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace, Name: "resyncs_total",
			Help: "Full resyncs of the task table with the engine (at start and after each break of the event stream).",
		}),
	}
	for _, a := range EventActions {
		m.events.WithLabelValues(a)
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.mountTime, m.rotations, m.rotationFailures, m.errors, m.events, m.resyncs,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "mounts_active",
			Help: "tmpfs mounts held for containers now.",
		}, intFunc(s.Mounts)),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "locked",
			Help: "1 while the store is locked and waits for 'secretd unlock', else 0.",
		}, boolFunc(s.Locked)),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "engine_up",
			Help: "1 while the Docker Engine's event stream is followed, else 0.",
		}, boolFunc(s.EngineUp)),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "build_info",
			Help:        "Always 1; the version label says which secretd runs.",
			ConstLabels: prometheus.Labels{"version": s.Version},
		}, func() float64 { return 1 }),
	)
	return m
}

func intFunc(f func() int) func() float64 {
	return func() float64 {
		if f == nil {
			return 0
		}
		return float64(f())
	}
}

func boolFunc(f func() bool) func() float64 {
	return func() float64 {
		if f != nil && f() {
			return 1
		}
		return 0
	}
}

// Registry is the private registry, for tests and extra collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus exposition formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Serve serves the registry at /metrics on l until ctx ends.
func (m *Metrics) Serve(ctx context.Context, l net.Listener) error {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		hs.Shutdown(sctx)
	}()
	if err := hs.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// ObserveMount records one successful Mount and how long it took.
func (m *Metrics) ObserveMount(d time.Duration) {
	if m == nil {
		return
	}
	m.mountTime.Observe(d.Seconds())
}

// Rotated counts n container mounts rewritten with a new version.
func (m *Metrics) Rotated(n int) {
	if m == nil || n <= 0 {
		return
	}
	m.rotations.Add(float64(n))
}

// RotationFailed counts n container mounts a rotation did not reach.
func (m *Metrics) RotationFailed(n int) {
	if m == nil || n <= 0 {
		return
	}
	m.rotationFailures.Add(float64(n))
}

// Event counts one engine event handled.
func (m *Metrics) Event(action string) {
	if m == nil {
		return
	}
	m.events.WithLabelValues(oneOf(action, EventActions)).Inc()
}

// Resync counts one full resync.
func (m *Metrics) Resync() {
	if m == nil {
		return
	}
	m.resyncs.Inc()
}

// Error counts one failure of op, by the kind of err.
func (m *Metrics) Error(op string, err error) {
	if m == nil || err == nil {
		return
	}
	m.errors.WithLabelValues(oneOf(op, Ops), Kind(err)).Inc()
}

// oneOf keeps a label value within its list, so a caller's typo cannot
// add series.
func oneOf(v string, allowed []string) string {
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	return "other"
}

// Kind names the kind of err for the kind label (errdefs.Name). A secret
// driver's errors count as the kind they mean: a bad value or options as
// invalid, a driver not answering as unavailable, its deadline as a timeout.
func Kind(err error) string {
	if err == nil {
		return errdefs.Name(nil)
	}
	extra := []error{err}
	if errors.Is(err, source.ErrInvalidValue) || errors.Is(err, source.ErrInvalidOptions) || errors.Is(err, source.ErrUnknownDriver) {
		extra = append(extra, errdefs.ErrInvalid)
	}
	if errors.Is(err, source.ErrUnavailable) {
		extra = append(extra, errdefs.ErrUnavailable)
	}
	if errors.Is(err, source.ErrTimeout) {
		extra = append(extra, context.DeadlineExceeded)
	}
	return errdefs.Name(errors.Join(extra...))
}
