package collector

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/promslog"
)

type fakeCollector func(ctx context.Context, ch chan<- prometheus.Metric) error

func (f fakeCollector) Update(ctx context.Context, ch chan<- prometheus.Metric) error {
	return f(ctx, ch)
}

var testDesc = prometheus.NewDesc("test_value", "test", nil, nil)

func TestScrapeIsolatesCollectors(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	e := &Exporter{logger: promslog.NewNopLogger(), lateGrace: 20 * time.Millisecond, collectors: map[string]Collector{
		"good": fakeCollector(func(_ context.Context, ch chan<- prometheus.Metric) error {
			ch <- prometheus.MustNewConstMetric(testDesc, prometheus.GaugeValue, 42)
			return nil
		}),
		"failing": fakeCollector(func(context.Context, chan<- prometheus.Metric) error { return errors.New("boom") }),
		"panicking": fakeCollector(func(context.Context, chan<- prometheus.Metric) error {
			panic("collector bug")
		}),
		// Ignores its context and sends after the deadline: the scrape
		// must not wait for it, and its late metric must go nowhere.
		"stuck": fakeCollector(func(_ context.Context, ch chan<- prometheus.Metric) error {
			<-release
			ch <- prometheus.MustNewConstMetric(testDesc, prometheus.GaugeValue, 666)
			return nil
		}),
	}}
	h := NewHandler(e, prometheus.NewRegistry(), HandlerOpts{TimeoutOffset: 0, MaxTimeout: 200 * time.Millisecond, Logger: promslog.NewNopLogger()})
	res := doScrape(t, h, "")
	// A hang, not speed: the stuck collector must not hold the scrape.
	if res.Elapsed > 2*time.Second {
		t.Errorf("scrape took %v with a 200 ms deadline", res.Elapsed)
	}
	for name, want := range map[string]float64{"good": 1, "failing": 0, "panicking": 0, "stuck": 0} {
		if v, ok := res.Value("clawdbot_exporter_collector_success", map[string]string{"collector": name}); !ok || v != want {
			t.Errorf("collector_success{%s} = %v (present %v), want %v", name, v, ok, want)
		}
		if _, ok := res.Value("clawdbot_exporter_collector_duration_seconds", map[string]string{"collector": name}); !ok {
			t.Errorf("no duration for %s", name)
		}
	}
	if v, _ := res.Value("test_value", nil); v != 42 {
		t.Errorf("test_value = %v, want the good collector's 42", v)
	}
}

func TestScrapeTimeout(t *testing.T) {
	const offset, maxT = 500 * time.Millisecond, 5 * time.Second
	for _, tc := range []struct {
		header string
		want   time.Duration
	}{
		{"", maxT},
		{"10", 5 * time.Second},
		{"3", 2500 * time.Millisecond},
		{"1.5", time.Second},
		{"0.4", 400 * time.Millisecond}, // the offset would leave nothing: keep the header's value
		{"garbage", maxT},
		{"-1", maxT},
		{"0", maxT},
		{"1e300", maxT},
	} {
		h := http.Header{}
		if tc.header != "" {
			h.Set("X-Prometheus-Scrape-Timeout-Seconds", tc.header)
		}
		if got := ScrapeTimeout(h, offset, maxT); got != tc.want {
			t.Errorf("header %q: %v, want %v", tc.header, got, tc.want)
		}
	}
}

func TestCollectorFlags(t *testing.T) {
	var defaults []string
	for _, n := range names() {
		if defaultEnabled[n] {
			defaults = append(defaults, n)
		}
	}
	if len(defaults) < 2 {
		t.Fatalf("default collectors %v", defaults)
	}
	withoutProbe := slices.DeleteFunc(slices.Clone(defaults), func(n string) bool { return n == "probe" })
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{nil, defaults},
		{[]string{"--no-collector.probe"}, withoutProbe},
		{[]string{"--collector.disable-defaults"}, nil},
		{[]string{"--collector.disable-defaults", "--collector.probe"}, []string{"probe"}},
	} {
		app := kingpin.New("test", "")
		f := AddFlags(app)
		if _, err := app.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		if got := f.Enabled(); !slices.Equal(got, tc.want) {
			t.Errorf("%v: enabled %v, want %v", tc.args, got, tc.want)
		}
	}
}

func TestMaxRequestsInFlight(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	e := &Exporter{logger: promslog.NewNopLogger(), lateGrace: time.Millisecond, collectors: map[string]Collector{
		"slow": fakeCollector(func(ctx context.Context, _ chan<- prometheus.Metric) error {
			started <- struct{}{}
			select {
			case <-release:
			case <-ctx.Done():
			}
			return nil
		}),
	}}
	h := NewHandler(e, prometheus.NewRegistry(), HandlerOpts{MaxTimeout: 5 * time.Second, MaxRequests: 1, Logger: promslog.NewNopLogger()})
	done := make(chan struct{})
	go func() { defer close(done); doScrape(t, h, "") }()
	<-started
	rec := newRecorder()
	h.ServeHTTP(rec, newMetricsRequest())
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("second concurrent scrape answered %d, want 503", rec.Code)
	}
	close(release)
	<-done
}
