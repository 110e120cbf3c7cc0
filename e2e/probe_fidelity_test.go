//go:build e2e

package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// probeZeroConfig runs the probe subcommand with no flags at all and HOME
// pointing at the gateway's home: what a user who set nothing gets.
func probeZeroConfig(t *testing.T, home string, extra ...string) probeJSON {
	cmd := exec.Command(exporter, append([]string{"probe", "--json"}, extra...)...)
	cmd.Env = []string{"HOME=" + home, "PATH=/usr/bin:/bin"}
	out, _ := cmd.Output()
	var r probeJSON
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("probe --json printed %q: %v", out, err)
	}
	return r
}

// adminCall connects to the gateway as the CLI does, with the gateway token
// and scope operator.admin (never the exporter's scopes), and calls method.
func adminCall(t *testing.T, g *Gateway, method string, params any) json.RawMessage {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	conn, _, err := d.Dial(g.URL(), nil)
	if err != nil {
		t.Fatalf("admin dial: %v", err)
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	read := func(match func(map[string]json.RawMessage) bool) map[string]json.RawMessage {
		for {
			_, b, err := conn.ReadMessage()
			if err != nil {
				t.Fatalf("admin read: %v", err)
			}
			var f map[string]json.RawMessage
			if json.Unmarshal(b, &f) == nil && match(f) {
				return f
			}
		}
	}
	is := func(key, want string) func(map[string]json.RawMessage) bool {
		return func(f map[string]json.RawMessage) bool {
			var v string
			_ = json.Unmarshal(f[key], &v)
			return v == want
		}
	}
	read(is("event", "connect.challenge"))
	call := func(id, method string, params any) json.RawMessage {
		if err := conn.WriteJSON(map[string]any{"type": "req", "id": id, "method": method, "params": params}); err != nil {
			t.Fatalf("admin write: %v", err)
		}
		f := read(is("id", id))
		if string(f["ok"]) != "true" {
			t.Fatalf("%s answered %s", method, f["error"])
		}
		return f["payload"]
	}
	// Exactly the keys the gateway's connect schema allows.
	call("c1", "connect", map[string]any{
		"minProtocol": 3, "maxProtocol": 4,
		"client": map[string]string{"id": "cli", "version": "e2e", "platform": "linux", "mode": "cli"},
		"role":   "operator", "scopes": []string{"operator.admin"},
		"auth": map[string]string{"token": g.Token},
	})
	return call("r1", method, params)
}

// TestOpenclawProbeFidelity, on a real openclaw 2026.9.6: every payload
// metric of issue 9 §4 present with a plausible value; an in-process
// restart (gateway.restart.request: same pid, same start time, the uptime
// runs on, only the bootId changes) counted exactly once; and
// clawdbot_http_ready 0, not absent, while the gateway is down.
func TestOpenclawProbeFidelity(t *testing.T) {
	t.Parallel()
	g := startGateway(t, "openclaw", gatewayOpts{})
	e := startExporter(t, nil, append(g.credentialArgs(t), "--probe.timeout=5s")...)

	var r scrapeResult
	for end := time.Now().Add(30 * time.Second); ; time.Sleep(time.Second) {
		r = e.scrape(t, "10")
		if v, _ := r.Value("clawdbot_up", nil); v == 1 {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("not up: %v\n%s", r.Failing(""), r.Samples())
		}
	}
	t.Run("payload metrics", func(t *testing.T) {
		v := func(name string, labels map[string]string) float64 {
			t.Helper()
			x, ok := r.Value(name, labels)
			if !ok {
				t.Errorf("%s%v absent", name, labels)
			}
			return x
		}
		between := func(name string, labels map[string]string, lo, hi float64) {
			t.Helper()
			if x := v(name, labels); x < lo || x > hi {
				t.Errorf("%s%v = %v, want %v..%v", name, labels, x, lo, hi)
			}
		}
		between("clawdbot_event_loop_degraded_duration_seconds", nil, 0, 3600)
		between("clawdbot_event_loop_cpu_core_ratio", nil, 0, 64)
		reasons := 0.0
		for _, reason := range []string{"event_loop_delay", "event_loop_utilization", "cpu", "other"} {
			reasons += v("clawdbot_event_loop_degraded_reason", map[string]string{"reason": reason})
		}
		if degraded := v("clawdbot_event_loop_degraded", nil); degraded == 0 && reasons != 0 {
			t.Errorf("event loop not degraded, yet %v reasons", reasons)
		}
		between("clawdbot_model_runtime_pending_agents", nil, 0, 100)
		if s := v("clawdbot_hot_reload_status", map[string]string{"status": "active"}) +
			v("clawdbot_hot_reload_status", map[string]string{"status": "disabled"}) +
			v("clawdbot_hot_reload_status", map[string]string{"status": "other"}); s != 1 {
			t.Errorf("hot reload statuses sum to %v, want 1", s)
		}
		used, total := v("clawdbot_gateway_heap_used_bytes", nil), v("clawdbot_gateway_heap_total_bytes", nil)
		if used < 1<<20 || used > total || total > 16<<30 {
			t.Errorf("heap used %v of total %v: implausible", used, total)
		}
		between("clawdbot_gateway_external_memory_bytes", nil, 1, 16<<30)
		tracked := v("clawdbot_tasks_tracked", nil)
		between("clawdbot_tasks_active", nil, 0, tracked)
		between("clawdbot_tasks_failures", nil, 0, tracked)
		between("clawdbot_tasks_lost", nil, 0, tracked)
		between("clawdbot_tasks_timed_out", nil, 0, tracked)
		between("clawdbot_task_audit_warnings", nil, 0, 1e6)
		between("clawdbot_task_audit_errors", nil, 0, 1e6)
		between("clawdbot_status_age_seconds", nil, 0, 120)
		between("clawdbot_http_ready", nil, 1, 1)
		for _, check := range []string{"startup-sidecars", "state-database", "gateway-draining", "plugin-reload", "internal"} {
			between("clawdbot_http_ready_check_failing", map[string]string{"check": check}, 0, 0)
		}
		found := false
		for _, m := range r.Families["clawdbot_gateway_info"].GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "build_id" && strings.HasPrefix(l.GetValue(), "2026.9.6") {
					found = true
					t.Logf("build_id %q", l.GetValue())
				}
			}
		}
		if !found {
			t.Errorf("no gateway_info with a build_id of 2026.9.6:\n%s", r.Samples())
		}
		// The status payload is cached: its age grows between scrapes.
		age1 := v("clawdbot_status_age_seconds", nil)
		time.Sleep(2 * time.Second)
		if age2, _ := e.scrape(t, "10").Value("clawdbot_status_age_seconds", nil); age2 < age1+1 {
			t.Errorf("status age %v then %v: fetched again within a minute", age1, age2)
		}
	})

	t.Run("in-process restart counted once", func(t *testing.T) {
		before, _ := e.scrape(t, "10").Value("clawdbot_gateway_restarts_total", nil)
		uptimeBefore, _ := e.scrape(t, "10").Value("clawdbot_gateway_uptime_seconds", nil)
		pid := g.Pid()
		t.Logf("clawdbot_gateway_restarts_total before: %v (pid %d, uptime %.0f s)", before, pid, uptimeBefore)
		res := adminCall(t, g, "gateway.restart.request", map[string]any{"reason": "e2e in-process restart", "skipDeferral": true})
		t.Logf("gateway.restart.request answered %s", res)
		var after float64
		reasons := map[string]int{}
		for end := time.Now().Add(2 * time.Minute); ; time.Sleep(time.Second) {
			r := e.scrape(t, "10")
			after, _ = r.Value("clawdbot_gateway_restarts_total", nil)
			for _, f := range r.Failing("") {
				reasons[f]++
			}
			if up, _ := r.Value("clawdbot_up", nil); after > before && up == 1 {
				break
			}
			if time.Now().After(end) {
				t.Fatalf("restart not seen in 2 min: restarts %v, reasons %v\n%s", after, reasons, g.Log())
			}
		}
		// More scrapes of the restarted gateway add nothing.
		for range 5 {
			time.Sleep(time.Second)
			after, _ = e.scrape(t, "10").Value("clawdbot_gateway_restarts_total", nil)
		}
		uptimeAfter, _ := e.scrape(t, "10").Value("clawdbot_gateway_uptime_seconds", nil)
		t.Logf("clawdbot_gateway_restarts_total after: %v (pid %d, uptime %.0f s); reasons while it restarted: %v", after, g.Pid(), uptimeAfter, reasons)
		if after != before+1 {
			t.Errorf("restarts %v -> %v, want exactly one more", before, after)
		}
		if select1(g.exited) || g.Pid() != pid {
			t.Errorf("the gateway process changed: not an in-process restart")
		}
		if uptimeAfter < uptimeBefore {
			t.Logf("uptime went down (%v -> %v): openclaw restarted its uptime too", uptimeBefore, uptimeAfter)
		}
	})

	t.Run("http_ready 0 while down", func(t *testing.T) {
		g.Stop(t)
		r := e.scrape(t, "3")
		if v, ok := r.Value("clawdbot_http_ready", nil); !ok || v != 0 {
			t.Errorf("http_ready of a stopped openclaw = %v (present %v), want 0", v, ok)
		}
		if v, _ := r.Value("clawdbot_up", nil); v != 0 {
			t.Errorf("up = %v", v)
		}
	})
}

func select1(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// TestOpenclawTLSZeroConfig: gateway.tls {enabled, autoGenerate} and an
// exporter with no flags at all (HOME only): wss:// and https:// with the
// gateway's own certificate pinned from its state dir.
func TestOpenclawTLSZeroConfig(t *testing.T) {
	t.Parallel()
	g := startGateway(t, "openclaw", gatewayOpts{tls: true})
	cert := filepath.Join(g.Home, ".openclaw", "gateway", "tls", "gateway-cert.pem")
	if _, err := os.Stat(cert); err != nil {
		t.Fatalf("autoGenerate wrote no certificate: %v", err)
	}
	// Plain ws:// fails in the upgrade, as documented.
	if r := probeWith(t, "--gateway.url", g.URL(), "--gateway.token-file", secretFile(t, g.Token), "--probe.timeout=3s"); r.Up {
		t.Errorf("ws:// to a TLS gateway is up: %+v", r)
	}
	e := startExporter(t, []string{"HOME=" + g.Home}, "--probe.timeout=5s")
	r := e.scrape(t, "10")
	for _, name := range []string{"clawdbot_up", "clawdbot_http_ready"} {
		if v, ok := r.Value(name, nil); !ok || v != 1 {
			t.Errorf("%s = %v (present %v), want 1; failing %v\n%s", name, v, ok, r.Failing(""), e.log.String())
		}
	}
	// A pinned fingerprint that is not the gateway's: reason tls.
	wrong := strings.Repeat("00", 32)
	if p := probeZeroConfig(t, g.Home, "--gateway.tls-fingerprint", wrong, "--probe.timeout=3s"); p.Up || p.Reason != "tls" {
		t.Errorf("wrong fingerprint: %+v, want reason tls", p)
	}
	up, _ := r.Value("clawdbot_up", nil)
	ready, _ := r.Value("clawdbot_http_ready", nil)
	t.Logf("TLS gateway with zero flags: clawdbot_up %v, clawdbot_http_ready %v", up, ready)
}
