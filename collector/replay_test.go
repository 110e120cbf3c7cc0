package collector

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/clawdbot-exporter/clawdbot_exporter/gateway"
	gt "github.com/clawdbot-exporter/clawdbot_exporter/gateway/gatewaytest"
)

// TestReplayRealHealthPayloads serves health payloads captured from the real
// gateways (gateway/testdata/real) and checks what the exporter makes of
// their shapes: channel entries without "enabled", plugin lists, disabled
// heartbeats with everyMs null, several agents.
func TestReplayRealHealthPayloads(t *testing.T) {
	type sample struct {
		name   string
		labels map[string]string
		want   float64
	}
	tests := []struct {
		file     string
		protocol int
		want     []sample
		absent   []string
		present  []string // values that depend on the clock
	}{
		{file: "clawdbot-health-channel-configured.json", protocol: 3, want: []sample{
			{"clawdbot_channel_configured", map[string]string{"channel": "telegram", "account": "second"}, 1},
			{"clawdbot_channel_running", map[string]string{"channel": "telegram", "account": "second"}, 0},
			{"clawdbot_heartbeat_interval_seconds", nil, 1800},
		}, absent: []string{"clawdbot_channel_enabled", "clawdbot_channel_probe_ok", "clawdbot_plugins_loaded"}},
		{file: "clawdbot-health-sessions-heartbeat.json", protocol: 3, want: []sample{
			{"clawdbot_agent_sessions", map[string]string{"agent": "main"}, 3},
			{"clawdbot_agent_sessions", map[string]string{"agent": "ops"}, 0},
			{"clawdbot_agent_heartbeat_interval_seconds", map[string]string{"agent": "main"}, 0},
			{"clawdbot_agent_heartbeat_interval_seconds", map[string]string{"agent": "ops"}, 900},
			{"clawdbot_heartbeat_interval_seconds", nil, 0},
		}, present: []string{"clawdbot_agent_last_activity_age_seconds"}},
		{file: "openclaw-health-plugins-enabled.json", protocol: 4, want: []sample{
			{"clawdbot_plugins_loaded", nil, 14},
			{"clawdbot_plugins_load_errors", nil, 0},
			{"clawdbot_plugins_unavailable", nil, 0},
			{"clawdbot_model_runtime_degraded", nil, 0},
		}},
		{file: "openclaw-health-multiagent-heartbeat.json", protocol: 4, want: []sample{
			{"clawdbot_agent_heartbeat_interval_seconds", map[string]string{"agent": "main"}, 0},
			{"clawdbot_agent_heartbeat_interval_seconds", map[string]string{"agent": "ops"}, 900},
			{"clawdbot_heartbeat_interval_seconds", nil, 900},
		}},
		{file: "openclaw-health.json", protocol: 4, want: []sample{
			{"clawdbot_event_loop_delay_p99_seconds", nil, 0.0217},
			{"clawdbot_event_loop_utilization_ratio", nil, 0.003},
			{"clawdbot_event_loop_degraded", nil, 0},
		}, absent: []string{"clawdbot_plugins_loaded", "clawdbot_channel_configured"}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join("..", "gateway", "testdata", "real", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			var frame struct{ Payload json.RawMessage }
			if err := json.Unmarshal(raw, &frame); err != nil {
				t.Fatal(err)
			}
			srv := gt.New(gt.Options{Protocol: tc.protocol, Health: frame.Payload})
			defer srv.Close()
			res := doScrape(t, newTestHandler(t, []gateway.Target{{Name: "gw", URL: srv.URL(), Token: gt.DefaultToken}}, 5*time.Second), "")
			if v, _ := res.Value("clawdbot_up", nil); v != 1 {
				t.Fatalf("up = %v, failing %v", v, res.Failing("gw"))
			}
			for _, s := range tc.want {
				if v, ok := res.Value(s.name, s.labels); !ok || v != s.want {
					t.Errorf("%s%v = %v (present %v), want %v", s.name, s.labels, v, ok, s.want)
				}
			}
			for _, name := range tc.present {
				if v, ok := res.Value(name, nil); !ok || v <= 0 {
					t.Errorf("%s = %v (present %v)", name, v, ok)
				}
			}
			for _, name := range tc.absent {
				if _, ok := res.Value(name, nil); ok {
					t.Errorf("%s present, the payload has no such field", name)
				}
			}
		})
	}
}
