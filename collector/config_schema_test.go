package collector

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/promslog"

	"github.com/clawdbot-exporter/clawdbot_exporter/gateway"
	gt "github.com/clawdbot-exporter/clawdbot_exporter/gateway/gatewaytest"
	"github.com/clawdbot-exporter/clawdbot_exporter/internal/testutil"
)

// A key the running gateway's own schema refuses is flagged while the
// gateway runs, before a restart would fail on it; the 2 MB schema is
// fetched once per gateway version, not on every scrape.
func TestConfigUnknownKeysFromGatewaySchema(t *testing.T) {
	srv := gt.New(gt.Options{Protocol: 4, ConfigSchema: testutil.RealConfigSchema(t, filepath.Join("..", "gateway", "testdata", "real", "openclaw-config.schema.json.gz"))})
	defer srv.Close()
	cfg := filepath.Join(t.TempDir(), "openclaw.json")
	write := func(doc string) {
		if err := os.WriteFile(cfg, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(`{gateway: {mode: "local", auth: {mode: "token", token: "x"}}}`)
	targets := []gateway.Target{{Name: "gw", URL: srv.URL(), Token: gt.DefaultToken, ConfigPath: cfg}}
	exp, err := New(Config{Gateways: targets}, []string{"probe", "config"}, promslog.NewNopLogger())
	if err != nil {
		t.Fatal(err)
	}
	h := NewHandler(exp, prometheus.NewRegistry(), HandlerOpts{MaxTimeout: 5 * time.Second, Logger: promslog.NewNopLogger()})
	doScrape(t, h, "") // the probe fetches the schema
	// An edit the gateway would refuse at its next start.
	write(`{gateway: {mode: "local", auth: {mode: "token", token: "x"}}, session: {historyLimit: 50}, agents: {defaults: {nope: 1}}}`)
	res := doScrape(t, h, "")
	for key, want := range map[string]float64{"session.historyLimit": 1, "agents.defaults.nope": 1} {
		if v, ok := res.Value("clawdbot_config_unknown_key", map[string]string{"gateway": "gw", "key": key}); !ok || v != want {
			t.Errorf("unknown_key{key=%s} = %v (present %v), want %v", key, v, ok, want)
		}
	}
	if v, _ := res.Value("clawdbot_config_schema_info", map[string]string{"source": "gateway", "version": gt.VersionProtocol4}); v != 1 {
		t.Errorf("schema_info{source=gateway} = %v:\n%s", v, res.Body)
	}
	for range 3 {
		doScrape(t, h, "")
	}
	if n := srv.SchemaCalls(); n != 1 {
		t.Errorf("config.schema asked %d times in 5 scrapes, want once per gateway version", n)
	}
}
