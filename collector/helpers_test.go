package collector

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/promslog"

	"github.com/clawdbot-exporter/clawdbot_exporter/gateway"
	"github.com/clawdbot-exporter/clawdbot_exporter/internal/metrictest"
)

// scrapeResult is one parsed /metrics answer.
type scrapeResult = metrictest.Scrape

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
	res, err := metrictest.ParseScrape(string(body), elapsed)
	if err != nil {
		t.Fatalf("unparseable /metrics: %v\n%s", err, body)
	}
	return res
}

func newRecorder() *httptest.ResponseRecorder { return httptest.NewRecorder() }

func newMetricsRequest() *http.Request { return httptest.NewRequest(http.MethodGet, "/metrics", nil) }
