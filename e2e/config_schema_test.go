//go:build e2e

package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestOpenclawConfigSchema: while a real openclaw runs, an edit of its config
// that its own schema refuses (so that its next start would exit 78) is
// flagged at once, from the schema the exporter fetched from that gateway;
// session.historyLimit, which guides recommend, among them
// (docs/local-state.md#schema-strictness).
func TestOpenclawConfigSchema(t *testing.T) {
	t.Parallel()
	g := startGateway(t, "openclaw", gatewayOpts{})
	e := startExporter(t, []string{"HOME=" + g.Home})
	waitFor(t, e, 30*time.Second, "the gateway's own schema", func(r scrapeResult) bool {
		v, _ := r.Value("clawdbot_config_schema_info", map[string]string{"source": "gateway", "version": "2026.9.6"})
		return v == 1
	})
	if r := e.scrape(t, ""); r.Families["clawdbot_config_unknown_key"] != nil {
		t.Fatalf("the gateway's own config has unknown keys:\n%s", r.Samples())
	}
	path := filepath.Join(g.Home, ".openclaw", "openclaw.json")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	doc["session"] = map[string]any{"historyLimit": 50}
	doc["gateway"].(map[string]any)["tlsPort"] = 1
	b, _ = json.Marshal(doc)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, e, 10*time.Second, "the refused keys flagged", func(r scrapeResult) bool {
		a, _ := r.Value("clawdbot_config_unknown_key", map[string]string{"key": "session.historyLimit"})
		b, _ := r.Value("clawdbot_config_unknown_key", map[string]string{"key": "gateway.tlsPort"})
		return a == 1 && b == 1
	})
}
