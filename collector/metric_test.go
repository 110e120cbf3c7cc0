package collector

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/promslog"

	"github.com/clawdbot-exporter/clawdbot_exporter/gateway"
	gt "github.com/clawdbot-exporter/clawdbot_exporter/gateway/gatewaytest"
)

// TestProbeSurvivesHostileLabels scrapes, through the real handler, fake
// gateways whose payloads would make label values invalid (a version cut
// inside a character) or huge. The scrape must answer, the gateway be up,
// and every label value be valid UTF-8 and bounded.
func TestProbeSurvivesHostileLabels(t *testing.T) {
	long := strings.Repeat("x", 10_000)
	tests := []struct {
		name        string
		version     string
		health      string // replaces the health payload when set
		wantVersion string
	}{
		{name: "version cut inside a character", version: strings.Repeat("a", 63) + "é", wantVersion: strings.Repeat("a", 63)},
		{name: "version of 64 bytes ending in a character", version: strings.Repeat("a", 62) + "é", wantVersion: strings.Repeat("a", 62) + "é"},
		{name: "version of 4-byte characters", version: strings.Repeat("𝄞", 17), wantVersion: strings.Repeat("𝄞", 16)},
		{name: "huge version", version: long, wantVersion: long[:64]},
		{
			name: "huge channel, account and agent ids", version: "2026.9.6", wantVersion: "2026.9.6",
			health: `{"ok":true,"channels":{"` + long + `":{"accounts":{"` + long + `é":{"configured":true}}}},` +
				`"agents":[{"agentId":"` + long + `","sessions":{"count":3}}]}`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			opts := gt.Options{Protocol: 4, ServerVersion: tc.version}
			if tc.health != "" {
				opts.Health = []byte(tc.health)
			}
			srv := gt.New(opts)
			defer srv.Close()
			h := newTestHandler(t, []gateway.Target{{Name: "gw", URL: srv.URL(), Token: gt.DefaultToken}}, 5*time.Second)
			res := doScrape(t, h, "")
			if v, ok := res.Value("clawdbot_up", map[string]string{"gateway": "gw"}); !ok || v != 1 {
				t.Fatalf("clawdbot_up = %v (present %v), want 1\n%.2000s", v, ok, res.Body)
			}
			if v, ok := res.Value("clawdbot_exporter_collector_success", map[string]string{"collector": "probe"}); !ok || v != 1 {
				t.Errorf("collector_success{probe} = %v (present %v), want 1", v, ok)
			}
			if v, ok := res.Value("clawdbot_gateway_info", map[string]string{"version": tc.wantVersion}); !ok || v != 1 {
				t.Errorf("no gateway_info with version %q\n%.2000s", tc.wantVersion, res.Body)
			}
			for _, f := range res.Families {
				for _, m := range f.GetMetric() {
					for _, l := range m.GetLabel() {
						if v := l.GetValue(); !utf8.ValidString(v) || len(v) > maxLabelValueLen {
							t.Errorf("%s{%s}: label value of %d bytes, valid UTF-8 %v", f.GetName(), l.GetName(), len(v), utf8.ValidString(v))
						}
					}
				}
			}
			if tc.health != "" {
				if _, ok := res.Value("clawdbot_agent_sessions", nil); !ok {
					t.Errorf("the agent with a huge id is missing\n%.2000s", res.Body)
				}
				if _, ok := res.Value("clawdbot_channel_configured", nil); !ok {
					t.Errorf("the channel with a huge id is missing\n%.2000s", res.Body)
				}
			}
		})
	}
}

// TestGoroutinePanicIsReported: a panic in a goroutine a collector starts
// is recovered, fails that collector only, and its reason is logged.
func TestGoroutinePanicIsReported(t *testing.T) {
	logs := &syncBuffer{}
	e := &Exporter{
		logger:    slog.New(slog.NewTextHandler(logs, nil)),
		lateGrace: 20 * time.Millisecond,
		collectors: map[string]Collector{
			"good": fakeCollector(func(_ context.Context, ch chan<- prometheus.Metric) error {
				ch <- newMetric(testDesc, prometheus.GaugeValue, 42)
				return nil
			}),
			"goroutine": fakeCollector(func(_ context.Context, ch chan<- prometheus.Metric) error {
				var g safeGroup
				g.Go(func() { ch <- newMetric(testDesc, prometheus.GaugeValue, 1, "one label too many") })
				g.Go(func() { panic("bug in a goroutine") })
				g.Go(func() {})
				return g.Wait()
			}),
			"goroutine-error": fakeCollector(func(context.Context, chan<- prometheus.Metric) error {
				var g safeGroup
				g.Go(func() { panic(errors.New("a runtime error in a collector goroutine")) })
				return errors.Join(g.Wait(), errors.New("and an error"))
			}),
		},
	}
	h := NewHandler(e, prometheus.NewRegistry(), HandlerOpts{MaxTimeout: 5 * time.Second, Logger: promslog.NewNopLogger()})
	res := doScrape(t, h, "")
	for name, want := range map[string]float64{"good": 1, "goroutine": 0, "goroutine-error": 0} {
		if v, ok := res.Value("clawdbot_exporter_collector_success", map[string]string{"collector": name}); !ok || v != want {
			t.Errorf("collector_success{%s} = %v (present %v), want %v", name, v, ok, want)
		}
	}
	if v, _ := res.Value("test_value", nil); v != 42 {
		t.Errorf("test_value = %v, want the good collector's 42", v)
	}
	for _, want := range []string{"bug in a goroutine", "a runtime error in a collector goroutine", "metric_test.go"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log does not say %q:\n%s", want, logs)
		}
	}
}

func TestLabelValue(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", ""},
		{"plain", "telegram", "telegram"},
		{"UTF-8 kept", "agent-é-𝄞", "agent-é-𝄞"},
		{"invalid bytes replaced", "gateway.\xff\xfe.lock", "gateway.\uFFFD.lock"},
		{"cut character replaced", "a\xc3", "a\uFFFD"},
		{"at the limit", strings.Repeat("a", maxLabelValueLen), strings.Repeat("a", maxLabelValueLen)},
		{"over the limit", strings.Repeat("a", maxLabelValueLen+1), strings.Repeat("a", maxLabelValueLen)},
		{"cut on a character boundary", strings.Repeat("a", maxLabelValueLen-1) + "é", strings.Repeat("a", maxLabelValueLen-1)},
		{"replacement grows it past the limit", strings.Repeat("a", maxLabelValueLen-2) + "\xff", strings.Repeat("a", maxLabelValueLen-2)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := labelValue(tc.in)
			if got != tc.want {
				t.Errorf("labelValue(%q) = %q, want %q", tc.in, got, tc.want)
			}
			if !utf8.ValidString(got) || len(got) > maxLabelValueLen {
				t.Errorf("labelValue(%q) = %q: invalid or too long", tc.in, got)
			}
		})
	}
}

// TestNewMetricNeverPanics: what MustNewConstMetric panics on becomes a
// metric that fails the scrape's gathering of it, and only of it.
func TestNewMetricNeverPanics(t *testing.T) {
	desc := newDesc("test_labels", "test", "a", "b")
	tests := []struct {
		name    string
		labels  []string
		wantErr bool
		want    []string
	}{
		{name: "valid", labels: []string{"x", "y"}, want: []string{"x", "y"}},
		{name: "invalid UTF-8", labels: []string{"\xff", "63×a+é"}, want: []string{"\uFFFD", "63×a+é"}},
		{name: "too long", labels: []string{"x", strings.Repeat("a", maxLabelValueLen+1)}, want: []string{"x", strings.Repeat("a", maxLabelValueLen)}},
		{name: "too long and invalid UTF-8", labels: []string{"\xff", strings.Repeat("a", maxLabelValueLen+1)}, want: []string{"\uFFFD", strings.Repeat("a", maxLabelValueLen)}},
		{name: "too few labels", labels: []string{"x"}, wantErr: true},
		{name: "too many labels", labels: []string{"x", "y", "z"}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := strings.Join(tc.labels, "|")
			m := newMetric(desc, prometheus.GaugeValue, 1, tc.labels...)
			if strings.Join(tc.labels, "|") != before {
				t.Errorf("the caller's labels changed to %q", tc.labels)
			}
			var out dto.Metric
			err := m.Write(&out)
			if (err != nil) != tc.wantErr {
				t.Fatalf("Write: %v, want error %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			var got []string
			for _, l := range out.GetLabel() {
				got = append(got, l.GetValue())
			}
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("labels %q, want %q", got, tc.want)
			}
		})
	}
}

// FuzzLabelValue: any string becomes a valid, bounded label value; one that
// is already valid and short stays as it is, and sanitising twice changes
// nothing more.
func FuzzLabelValue(f *testing.F) {
	for _, s := range []string{"", "telegram", strings.Repeat("a", 63) + "é", "gateway.\xff\xfe.lock", "a\xc3",
		strings.Repeat("é", 200), strings.Repeat("a", maxLabelValueLen-1) + "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := labelValue(s)
		if !utf8.ValidString(got) || len(got) > maxLabelValueLen {
			t.Fatalf("labelValue(%q) = %q: invalid or %d bytes", s, got, len(got))
		}
		if utf8.ValidString(s) && len(s) <= maxLabelValueLen && got != s {
			t.Fatalf("labelValue(%q) = %q changed a valid label", s, got)
		}
		if utf8.ValidString(s) && !strings.HasPrefix(s, got) {
			t.Fatalf("labelValue(%q) = %q is not a prefix", s, got)
		}
		if again := labelValue(got); again != got {
			t.Fatalf("labelValue(%q) = %q, and again %q", s, got, again)
		}
		if _, err := prometheus.NewConstMetric(newDesc("fuzz", "fuzz", "l"), prometheus.GaugeValue, 1, got); err != nil {
			t.Fatalf("labelValue(%q) = %q: %v", s, got, err)
		}
	})
}
