package remediate

import (
	"flag"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/clawdbot-exporter/clawdbot_exporter/config"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/promslog"

	"github.com/clawdbot-exporter/clawdbot_exporter/internal/metrictest"
)

var update = flag.Bool("update", false, "rewrite testdata/metrics.golden")

const goldenPath = "testdata/metrics.golden"

// TestMetricNamesGolden runs a real engine and webhook handler (a fake action
// and world) through one authenticated webhook request with a firing alert,
// so that every family, the histograms and the last action included, has a
// series, and compares the metric names with testdata/metrics.golden: the
// list the mixin's tests check the remediation alerts and panels against,
// next to collector/testdata/metrics.golden. -update rewrites it.
func TestMetricNamesGolden(t *testing.T) {
	cfg := config.Remediation{Targets: []Target{{Name: "restart-main", Gateway: "main", Action: ActionSpec{Type: "exec", Exec: &ExecSpec{Command: []string{"/bin/true"}}}}}}
	if err := cfg.Validate([]string{"main"}); err != nil {
		t.Fatal(err)
	}
	cfg.Targets[0].Action.Type = "fake"
	action := &fakeAction{}
	current = action
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	clock := &fakeClock{now: time.Date(2026, 11, 25, 4, 0, 0, 0, time.UTC)}
	e, err := NewEngine(cfg.Targets, &fakeWorld{up: true}, m, promslog.NewNopLogger(), Options{Clock: clock, VerifyInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	handler := &Handler{Engine: e, Token: func() []byte { return []byte("s3cret-token") }, Metrics: m, Logger: promslog.NewNopLogger()}
	req := httptest.NewRequest(http.MethodPost, DefaultWebhookPath, strings.NewReader(validBody))
	req.Header.Set("Authorization", "Bearer s3cret-token")
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"actions":1`) {
		t.Fatalf("webhook answered %d %q, want 200 with one action", rec.Code, rec.Body.String())
	}
	e.Wait()
	if action.runs.Load() != 1 {
		t.Fatalf("actions run: %d, want 1", action.runs.Load())
	}

	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range families {
		got = append(got, f.GetName())
	}
	metrictest.Golden(t, goldenPath, got, *update, "go test ./remediate/ -run TestMetricNamesGolden -update")
}
