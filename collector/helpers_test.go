package collector

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/common/promslog"

	"github.com/clawdbot-exporter/clawdbot_exporter/gateway"
)

// scrapeResult is one parsed /metrics answer.
type scrapeResult struct {
	body     string
	families map[string]*dto.MetricFamily
	elapsed  time.Duration
}

// value returns the value of the sample of family name whose labels include
// all of labels; ok is false when there is none.
func (r scrapeResult) value(name string, labels map[string]string) (float64, bool) {
	mf := r.families[name]
	if mf == nil {
		return 0, false
	}
next:
	for _, m := range mf.GetMetric() {
		have := map[string]string{}
		for _, lp := range m.GetLabel() {
			have[lp.GetName()] = lp.GetValue()
		}
		for k, v := range labels {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Untyped != nil:
			return m.GetUntyped().GetValue(), true
		}
	}
	return 0, false
}

// failing returns the reasons whose clawdbot_probe_failing is 1.
func (r scrapeResult) failing(gw string) []string {
	var out []string
	for _, m := range r.families["clawdbot_probe_failing"].GetMetric() {
		labels := map[string]string{}
		for _, lp := range m.GetLabel() {
			labels[lp.GetName()] = lp.GetValue()
		}
		if labels["gateway"] == gw && m.GetGauge().GetValue() == 1 {
			out = append(out, labels["reason"])
		}
	}
	sort.Strings(out)
	return out
}

func newTestHandler(t testing.TB, targets []gateway.Target, maxTimeout time.Duration) http.Handler {
	t.Helper()
	exp, err := New(Config{Gateways: targets, ClientVersion: "test"}, []string{"probe"}, promslog.NewNopLogger())
	if err != nil {
		t.Fatal(err)
	}
	return NewHandler(exp, prometheus.NewRegistry(), HandlerOpts{
		TimeoutOffset: 500 * time.Millisecond, MaxTimeout: maxTimeout, Logger: promslog.NewNopLogger(),
	})
}

// doScrape calls the handler the way Prometheus does, with a scrape-timeout
// header (empty: none).
func doScrape(t testing.TB, h http.Handler, timeoutHeader string) scrapeResult {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	if timeoutHeader != "" {
		req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", timeoutHeader)
	}
	rec := httptest.NewRecorder()
	begin := time.Now()
	h.ServeHTTP(rec, req)
	elapsed := time.Since(begin)
	body, _ := io.ReadAll(rec.Result().Body)
	if rec.Code != http.StatusOK {
		t.Fatalf("scrape answered %d: %s", rec.Code, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("unparseable /metrics: %v\n%s", err, body)
	}
	return scrapeResult{body: string(body), families: fams, elapsed: elapsed}
}

func newRecorder() *httptest.ResponseRecorder { return httptest.NewRecorder() }

func newMetricsRequest() *http.Request { return httptest.NewRequest(http.MethodGet, "/metrics", nil) }
