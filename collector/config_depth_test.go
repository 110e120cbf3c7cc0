package collector

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/promslog"

	"github.com/clawdbot-exporter/clawdbot_exporter/gateway"
)

// TestConfigCollectorDeepConfig: a config nested too deep is a parse error
// (parse_ok 0), not a crash. The largest one under the 4 MiB read limit,
// `{a:` + 2,097,134 × `[` + as many `]` + `}`, killed the exporter with a
// stack overflow.
func TestConfigCollectorDeepConfig(t *testing.T) {
	tests := []struct {
		name   string
		depth  int // brackets inside {a: … }
		wantOK float64
	}{
		{name: "real configs nest less than 20 deep", depth: 18, wantOK: 1},
		{name: "one past the limit", depth: 128, wantOK: 0},
		{name: "the largest under the read limit", depth: (4<<20 - 4) / 2, wantOK: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "clawdbot.json")
			doc := append([]byte("{a:"), bytes.Repeat([]byte("["), tc.depth)...)
			doc = append(append(doc, bytes.Repeat([]byte("]"), tc.depth)...), '}')
			if err := os.WriteFile(path, doc, 0o600); err != nil {
				t.Fatal(err)
			}
			targets := []gateway.Target{{Name: "gw", URL: "ws://127.0.0.1:1", ConfigPath: path}}
			exp, err := New(Config{Gateways: targets}, []string{"config"}, promslog.NewNopLogger())
			if err != nil {
				t.Fatal(err)
			}
			h := NewHandler(exp, prometheus.NewRegistry(), HandlerOpts{MaxTimeout: 5 * time.Second, Logger: promslog.NewNopLogger()})
			for range 2 { // the second from the inspector's cache
				res := doScrape(t, h, "")
				if v, ok := res.Value("clawdbot_config_parse_ok", map[string]string{"gateway": "gw"}); !ok || v != tc.wantOK {
					t.Errorf("config_parse_ok = %v (present %v), want %v", v, ok, tc.wantOK)
				}
				if v, ok := res.Value("clawdbot_exporter_collector_success", map[string]string{"collector": "config"}); !ok || v != 1 {
					t.Errorf("collector_success{config} = %v (present %v), want 1", v, ok)
				}
			}
		})
	}
}
