package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/promslog"

	"github.com/clawdbot-exporter/clawdbot_exporter/config"
	gt "github.com/clawdbot-exporter/clawdbot_exporter/gateway/gatewaytest"
	"github.com/clawdbot-exporter/clawdbot_exporter/internal/metrictest"
)

// /probe takes its modules from the running configuration: a module the
// file defines probes with its token; a reload that drops it makes it
// unknown (400).
func TestSetupProbeFollowsReload(t *testing.T) {
	srv := gt.New(gt.Options{Protocol: 4})
	defer srv.Close()
	dir := t.TempDir()
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte(gt.DefaultToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "config.yaml")
	write := func(doc string) {
		if err := os.WriteFile(cfg, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("modules:\n  fleet:\n    token_file: " + token + "\n")
	logger := promslog.NewNopLogger()
	holder, err := config.NewHolder(config.Sources{Path: cfg, Env: func(string) string { return "" }, Home: dir}, nil, logger)
	if err != nil {
		t.Fatal(err)
	}
	offset, timeout, items := 500*time.Millisecond, 5*time.Second, 500
	mux := http.NewServeMux()
	reg := prometheus.NewRegistry()
	setupProbe(mux, &flags{timeoutOffset: &offset, probeTimeout: &timeout, probeMaxItems: &items}, holder, reg, logger)
	get := func(module string) (int, string) {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/probe?"+url.Values{"target": {srv.Addr()}, "module": {module}}.Encode(), nil))
		b, _ := io.ReadAll(rec.Result().Body)
		return rec.Code, string(b)
	}
	code, body := get("fleet")
	if code != http.StatusOK {
		t.Fatalf("answered %d: %s", code, body)
	}
	fams, err := metrictest.Parse(body)
	if err != nil {
		t.Fatal(err)
	}
	if up, _ := fams.Value("clawdbot_up", nil); up != 1 {
		t.Errorf("clawdbot_up %v, want 1 (the module's token)", up)
	}
	write("modules:\n  other: {}\n")
	if err := holder.Reload(); err != nil {
		t.Fatal(err)
	}
	if code, body := get("fleet"); code != http.StatusBadRequest || !strings.Contains(body, "unknown module") {
		t.Errorf("after the reload dropped it: %d %q, want 400 unknown module", code, body)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, mf := range mfs {
		found = found || mf.GetName() == "clawdbot_exporter_probe_requests_total"
	}
	if !found {
		t.Error("the endpoint's counters are not on the exporter's registry")
	}
}
