package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/secretd/secretd/errdefs"
	"github.com/secretd/secretd/internal/metrics"
	"github.com/secretd/secretd/internal/source"
)

func scrape(t *testing.T, h http.Handler) string {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("scrape: %d %s", rec.Code, rec.Body)
	}
	return rec.Body.String()
}

// value returns the sample of the series written exactly as series.
func value(t *testing.T, body, series string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no series %s in:\n%s", series, body)
	}
	return m[1]
}

func TestScrape(t *testing.T) {
	var mounts atomic.Int64
	var locked atomic.Bool
	m := metrics.New(metrics.State{
		Mounts:   func() int { return int(mounts.Load()) },
		Locked:   locked.Load,
		EngineUp: func() bool { return true },
		Version:  "v1.2.3",
	})
	h := m.Handler()

	body := scrape(t, h)
	for series, want := range map[string]string{
		"secretd_mounts_active":                         "0",
		"secretd_locked":                                "0",
		"secretd_engine_up":                             "1",
		"secretd_rotations_total":                       "0",
		"secretd_rotation_failures_total":               "0",
		"secretd_resyncs_total":                         "0",
		"secretd_mount_duration_seconds_count":          "0",
		`secretd_engine_events_total{action="destroy"}`: "0",
		`secretd_build_info{version="v1.2.3"}`:          "1",
	} {
		if got := value(t, body, series); got != want {
			t.Errorf("%s = %s, want %s", series, got, want)
		}
	}
	for _, prefix := range []string{"go_goroutines ", "process_open_fds "} {
		if !strings.Contains(body, "\n"+prefix) {
			t.Errorf("no %s... from the Go and process collectors", prefix)
		}
	}

	// Gauges follow the state without being told.
	mounts.Store(3)
	locked.Store(true)
	m.ObserveMount(4 * time.Millisecond)
	m.ObserveMount(30 * time.Millisecond)
	m.Rotated(5)
	m.Rotated(0)
	m.RotationFailed(2)
	m.RotationFailed(0)
	m.Event("destroy")
	m.Event("die")
	m.Event("exec_start: sh") // not followed: must not become a series of its own
	m.Resync()
	m.Error("mount", fmt.Errorf("mount: %w", errdefs.ErrLocked))
	m.Error("mount", errdefs.Errorf(errdefs.ErrNotFound, "secret 'db' not found"))
	m.Error("api", errdefs.Errorf(errdefs.ErrInUse, "secret 'db' is in use"))
	m.Error("rotate", errors.New("boom"))
	m.Error("mount", nil)
	m.Error("db_password", errors.New("x")) // an op outside the list

	body = scrape(t, h)
	for series, want := range map[string]string{
		"secretd_mounts_active":                             "3",
		"secretd_locked":                                    "1",
		"secretd_rotations_total":                           "5",
		"secretd_rotation_failures_total":                   "2",
		"secretd_resyncs_total":                             "1",
		"secretd_mount_duration_seconds_count":              "2",
		`secretd_mount_duration_seconds_bucket{le="0.005"}`: "1",
		`secretd_engine_events_total{action="destroy"}`:     "1",
		`secretd_engine_events_total{action="die"}`:         "1",
		`secretd_engine_events_total{action="other"}`:       "1",
		`secretd_errors_total{kind="locked",op="mount"}`:    "1",
		`secretd_errors_total{kind="not_found",op="mount"}`: "1",
		`secretd_errors_total{kind="in_use",op="api"}`:      "1",
		`secretd_errors_total{kind="other",op="rotate"}`:    "1",
		`secretd_errors_total{kind="other",op="other"}`:     "1",
	} {
		if got := value(t, body, series); got != want {
			t.Errorf("%s = %s, want %s", series, got, want)
		}
	}
	// Names of secrets and containers never become label values.
	for _, leak := range []string{"db_password", "'db'", "exec_start"} {
		if strings.Contains(body, leak) {
			t.Errorf("scrape contains %q", leak)
		}
	}
}

func TestNilMetricsCountNothing(t *testing.T) {
	var m *metrics.Metrics
	m.ObserveMount(time.Second)
	m.Rotated(1)
	m.Event("die")
	m.Resync()
	m.Error("mount", errors.New("x"))
}

func TestServe(t *testing.T) {
	m := metrics.New(metrics.State{})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Serve(ctx, l) }()
	resp, err := http.Get("http://" + l.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), "secretd_mounts_active 0") {
		t.Errorf("GET /metrics: %d\n%s", resp.StatusCode, b)
	}
	resp, err = http.Get("http://" + l.Addr().String() + "/secrets")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /secrets on the metrics listener: %d, want 404", resp.StatusCode)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after its context ended")
	}
}

func TestKind(t *testing.T) {
	for err, want := range map[error]string{
		errdefs.ErrLocked:                               "locked",
		fmt.Errorf("x: %w", errdefs.ErrCorrupt):         "corrupt",
		context.DeadlineExceeded:                        "timeout",
		errors.New("?"):                                 "other",
		fmt.Errorf("%w: bad", source.ErrInvalidOptions): "invalid",
		fmt.Errorf("%w: down", source.ErrUnavailable):   "unavailable",
		source.ErrTimeout:                               "timeout",
		// A driver that stopped at its deadline is unavailable, as before
		// the kinds moved to errdefs.
		fmt.Errorf("%w: stopped: %w", source.ErrUnavailable, context.DeadlineExceeded): "unavailable",
	} {
		if got := metrics.Kind(err); got != want {
			t.Errorf("Kind(%v) = %s, want %s", err, got, want)
		}
	}
}
