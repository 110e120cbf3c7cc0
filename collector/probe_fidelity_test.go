package collector

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"github.com/prometheus/common/promslog"

	"github.com/clawdbot-exporter/clawdbot_exporter/gateway"
	gt "github.com/clawdbot-exporter/clawdbot_exporter/gateway/gatewaytest"
)

// The payload metrics of openclaw 2026.9 (docs/protocol.md#payloads): event loop,
// model runtime, hot reload, the status RPC, build id and restarts.
func TestProbeOpenclawPayloadMetrics(t *testing.T) {
	srv := gt.New(gt.Options{Protocol: 4})
	defer srv.Close()
	h := newTestHandler(t, []gateway.Target{{Name: "gw", URL: srv.URL(), Token: gt.DefaultToken}}, 5*time.Second)
	res := doScrape(t, h, "")
	want := []struct {
		name   string
		labels map[string]string
		v      float64
	}{
		{"clawdbot_event_loop_degraded_duration_seconds", nil, 0},
		{"clawdbot_event_loop_cpu_core_ratio", nil, 0.04},
		{"clawdbot_event_loop_degraded_reason", map[string]string{"reason": "cpu"}, 0},
		{"clawdbot_event_loop_degraded_reason", map[string]string{"reason": "other"}, 0},
		{"clawdbot_model_runtime_pending_agents", nil, 0},
		{"clawdbot_hot_reload_status", map[string]string{"status": "active"}, 1},
		{"clawdbot_hot_reload_status", map[string]string{"status": "disabled"}, 0},
		{"clawdbot_gateway_heap_used_bytes", nil, 120 << 20},
		{"clawdbot_gateway_heap_total_bytes", nil, 160 << 20},
		{"clawdbot_gateway_external_memory_bytes", nil, 10 << 20},
		{"clawdbot_tasks_tracked", nil, gt.StatusTasksTotal},
		{"clawdbot_tasks_active", nil, 1},
		{"clawdbot_tasks_failures", nil, 2},
		{"clawdbot_tasks_lost", nil, 0},
		{"clawdbot_tasks_timed_out", nil, 1},
		{"clawdbot_task_audit_warnings", nil, 1},
		{"clawdbot_task_audit_errors", nil, 0},
		{"clawdbot_http_ready", nil, 1},
		{"clawdbot_http_ready_check_failing", map[string]string{"check": "startup-sidecars"}, 0},
		{"clawdbot_gateway_restarts_total", nil, 0},
		{"clawdbot_gateway_info", map[string]string{"build_id": "gatewaytest", "version": gt.VersionProtocol4}, 1},
		{"clawdbot_exporter_items_dropped_total", map[string]string{"collector": "probe", "kind": "channel"}, 0},
	}
	for _, w := range want {
		got, ok := res.Value(w.name, w.labels)
		if !ok || got != w.v {
			t.Errorf("%s%v = %v (present %v), want %v", w.name, w.labels, got, ok, w.v)
		}
	}
	if age, ok := res.Value("clawdbot_status_age_seconds", nil); !ok || age < 0 || age > 60 {
		t.Errorf("status age = %v (present %v), want 0 to 60 s", age, ok)
	}
	problems, err := promlint.New(strings.NewReader(res.Body)).Lint()
	if err != nil || len(problems) > 0 {
		t.Errorf("promlint: %v %v", err, problems)
	}

	// An in-process restart counts once, however many scrapes see it.
	srv.RestartInProcess()
	for range 3 {
		res = doScrape(t, h, "")
	}
	if v, _ := res.Value("clawdbot_gateway_restarts_total", nil); v != 1 {
		t.Errorf("restarts after one in-process restart = %v, want 1", v)
	}
	// The status payload is cached: one status call for four scrapes.
	if n := countMethod(srv, "status"); n != 1 {
		t.Errorf("status calls = %d, want 1", n)
	}

	// Down, the gateway that has /readyz is not ready, not absent.
	srv.Close()
	res = doScrape(t, h, "1")
	if v, ok := res.Value("clawdbot_http_ready", nil); !ok || v != 0 {
		t.Errorf("http_ready of a down openclaw = %v (present %v), want 0", v, ok)
	}
}

func countMethod(s *gt.Server, method string) int {
	n := 0
	for _, m := range s.Methods() {
		if m == method {
			n++
		}
	}
	return n
}

func TestProbeReadyChecks(t *testing.T) {
	srv := gt.New(gt.Options{Protocol: 4, ReadyFailing: true, ReadyChecks: []string{"startup-sidecars", "telegram", "telegram"}})
	defer srv.Close()
	res := doScrape(t, newTestHandler(t, []gateway.Target{{Name: "gw", URL: srv.URL(), Token: gt.DefaultToken}}, 5*time.Second), "")
	for check, want := range map[string]float64{"startup-sidecars": 1, "telegram": 1, "state-database": 0, "gateway-draining": 0} {
		if v, ok := res.Value("clawdbot_http_ready_check_failing", map[string]string{"check": check}); !ok || v != want {
			t.Errorf("check %s = %v (present %v), want %v", check, v, ok, want)
		}
	}
}

// hugeHealth is a health payload with n channels of k accounts each (0:
// the channel's top level is its one account) and m agents.
func hugeHealth(n, k, m int) json.RawMessage {
	var b bytes.Buffer
	b.WriteString(`{"ok":true,"channels":{`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		if k == 0 {
			fmt.Fprintf(&b, `"c%06d":{"configured":true}`, i)
			continue
		}
		fmt.Fprintf(&b, `"c%06d":{"accounts":{`, i)
		for j := range k {
			if j > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `"a%03d":{"configured":true}`, j)
		}
		b.WriteString(`}}`)
	}
	b.WriteString(`},"agents":[`)
	for i := range m {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"agentId":"g%06d","sessions":{"count":1}}`, i)
	}
	b.WriteString(`]}`)
	return b.Bytes()
}

// issue 10 item 5: 100k channels and 20k agents gave 120,000 series and
// 9.6 MB of /metrics. Capped: the first ones in sorted order get series,
// the rest is counted.
func TestProbeCardinalityCap(t *testing.T) {
	const limit = 50
	tests := []struct {
		name               string
		channels, accounts int
		agents             int
		wantSeries         int
		dropCh, dropAcc    float64
		firstCh            string
	}{
		{name: "100k channels, 20k agents", channels: 100_000, agents: 20_000, wantSeries: limit, dropCh: 100_000 - limit, firstCh: "c000000"},
		{name: "10 channels of 10 accounts", channels: 10, accounts: 10, agents: 3, wantSeries: limit, dropAcc: 50, firstCh: "c000000"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := gt.New(gt.Options{Health: hugeHealth(tc.channels, tc.accounts, tc.agents)})
			defer srv.Close()
			exp, err := New(Config{Gateways: []gateway.Target{{Name: "gw", URL: srv.URL(), Token: gt.DefaultToken}}, ProbeMaxItems: limit},
				[]string{"probe"}, promslog.NewNopLogger())
			if err != nil {
				t.Fatal(err)
			}
			h := NewHandler(exp, prometheus.NewRegistry(), HandlerOpts{TimeoutOffset: 500 * time.Millisecond, MaxTimeout: 30 * time.Second, Logger: promslog.NewNopLogger()})
			res := doScrape(t, h, "")
			if v, _ := res.Value("clawdbot_up", nil); v != 1 {
				t.Fatalf("up = %v, failing %v", v, res.Failing("gw"))
			}
			count := func(name string) int { return len(res.Families[name].GetMetric()) }
			if n := count("clawdbot_channel_configured"); n != tc.wantSeries {
				t.Errorf("channel account series = %d, want %d", n, tc.wantSeries)
			}
			if n, want := count("clawdbot_agent_sessions"), min(tc.agents, limit); n != want {
				t.Errorf("agent series = %d, want %d", n, want)
			}
			if _, ok := res.Value("clawdbot_channel_configured", map[string]string{"channel": tc.firstCh}); !ok {
				t.Error("the first channel in sorted order is missing")
			}
			dropAgents := float64(max(tc.agents-limit, 0))
			for kind, want := range map[string]float64{"channel": tc.dropCh, "account": tc.dropAcc, "agent": dropAgents} {
				if v, _ := res.Value("clawdbot_exporter_items_dropped_total", map[string]string{"collector": "probe", "kind": kind}); v != want {
					t.Errorf("dropped %s = %v, want %v", kind, v, want)
				}
			}
			t.Logf("%d series, %d bytes of /metrics, scrape %v", len(strings.Split(res.Body, "\n")), len(res.Body), res.Elapsed)
			if len(res.Body) > 1<<20 {
				t.Errorf("/metrics is %d bytes, want < 1 MiB", len(res.Body))
			}
		})
	}
}

// issue 10 item 13: duplicate agent ids logged an ERROR on every scrape and
// lost a value. The first one in the payload's order wins, every scrape.
func TestProbeDuplicateAgents(t *testing.T) {
	health := `{"ok":true,"agents":[
		{"agentId":"main","sessions":{"count":3}},
		{"agentId":"ops","sessions":{"count":1}},
		{"agentId":"main","sessions":{"count":7}}]}`
	srv := gt.New(gt.Options{Health: json.RawMessage(health)})
	defer srv.Close()
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	exp, err := New(Config{Gateways: []gateway.Target{{Name: "gw", URL: srv.URL(), Token: gt.DefaultToken}}}, []string{"probe"}, logger)
	if err != nil {
		t.Fatal(err)
	}
	h := NewHandler(exp, prometheus.NewRegistry(), HandlerOpts{TimeoutOffset: 500 * time.Millisecond, MaxTimeout: 5 * time.Second, Logger: logger})
	for i := range 3 {
		res := doScrape(t, h, "")
		if v, _ := res.Value("clawdbot_agent_sessions", map[string]string{"agent": "main"}); v != 3 {
			t.Errorf("scrape %d: main sessions = %v, want 3 (the first entry)", i, v)
		}
		if v, _ := res.Value("clawdbot_agent_sessions", map[string]string{"agent": "ops"}); v != 1 {
			t.Errorf("scrape %d: ops sessions = %v, want 1", i, v)
		}
		if v, _ := res.Value("clawdbot_exporter_items_dropped_total", map[string]string{"kind": "duplicate_agent"}); v != float64(i+1) {
			t.Errorf("scrape %d: duplicates dropped = %v, want %d", i, v, i+1)
		}
		if v, _ := res.Value("clawdbot_exporter_collector_success", map[string]string{"collector": "probe"}); v != 1 {
			t.Errorf("scrape %d: probe collector failed", i)
		}
	}
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("ERROR logged:\n%s", logs.String())
	}
}

// A TLS gateway with its certificate in its state dir: up with no TLS
// setting at all (the target comes from Resolve, as main builds it).
func TestProbeTLSZeroConfig(t *testing.T) {
	srv := gt.New(gt.Options{Protocol: 4, TLS: true})
	defer srv.Close()
	home := t.TempDir()
	state := filepath.Join(home, ".openclaw")
	if err := os.MkdirAll(filepath.Join(state, "gateway", "tls"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(state, "gateway", "tls", "gateway-cert.pem"), srv.CertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	port := srv.Addr()[strings.LastIndex(srv.Addr(), ":")+1:]
	cfg := fmt.Sprintf(`{gateway: {port: %s, tls: {enabled: true, autoGenerate: true}, auth: {mode: "token", token: %q}}}`, port, gt.DefaultToken)
	if err := os.WriteFile(filepath.Join(state, "openclaw.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	target, err := gateway.Resolve(gateway.Settings{}, func(string) string { return "" }, home, true)
	if err != nil {
		t.Fatal(err)
	}
	res := doScrape(t, newTestHandler(t, []gateway.Target{target}, 5*time.Second), "")
	for _, name := range []string{"clawdbot_up", "clawdbot_http_ready"} {
		if v, ok := res.Value(name, nil); !ok || v != 1 {
			t.Errorf("%s = %v (present %v), want 1; failing %v", name, v, ok, res.Failing(""))
		}
	}
}
