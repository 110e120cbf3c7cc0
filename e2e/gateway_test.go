//go:build e2e

package e2e

import (
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRealGateways runs each real gateway through the states the exporter
// must tell apart: up, wrong token, frozen, stopped.
func TestRealGateways(t *testing.T) {
	for _, tc := range []struct {
		product, protocol, version string
	}{
		{"clawdbot", "3", ""}, // clawdbot reports version "dev": no label value
		{"openclaw", "4", "2026.9.6"},
	} {
		t.Run(tc.product, func(t *testing.T) {
			t.Parallel()
			g := startGateway(t, tc.product, gatewayOpts{})
			e := startExporter(t, nil, g.credentialArgs(t)...)

			r := e.scrape(t, "")
			t.Logf("real /metrics from %s:\n%s", tc.product, r.Samples())
			expectUp(t, r)
			if _, ok := r.Value("clawdbot_gateway_info", map[string]string{"product": tc.product, "protocol": tc.protocol, "version": tc.version}); !ok {
				t.Errorf("gateway_info{product=%s,protocol=%s,version=%q} missing", tc.product, tc.protocol, tc.version)
			}
			for _, name := range []string{"clawdbot_health_ok", "clawdbot_gateway_uptime_seconds", "clawdbot_heartbeat_interval_seconds"} {
				if v, ok := r.Value(name, nil); !ok || v <= 0 {
					t.Errorf("%s = %v (present %v), want > 0", name, v, ok)
				}
			}
			if v, ok := r.Value("clawdbot_agent_heartbeat_interval_seconds", map[string]string{"agent": "main"}); !ok || v != 1800 {
				t.Errorf("agent heartbeat = %v (present %v), want the default 1800", v, ok)
			}
			if _, ok := r.Value("clawdbot_agent_sessions", map[string]string{"agent": "main"}); !ok {
				t.Error("agent_sessions{agent=main} missing")
			}
			for _, p := range []string{"connect", "upgrade", "challenge", "hello", "health"} {
				if v, _ := r.Value("clawdbot_probe_duration_seconds", map[string]string{"phase": p}); v <= 0 {
					t.Errorf("phase %s = %v", p, v)
				}
			}
			if tc.product == "openclaw" {
				for _, name := range []string{"clawdbot_event_loop_delay_p99_seconds", "clawdbot_event_loop_delay_max_seconds",
					"clawdbot_event_loop_utilization_ratio", "clawdbot_event_loop_degraded", "clawdbot_model_runtime_degraded"} {
					if _, ok := r.Value(name, nil); !ok {
						t.Errorf("%s missing on openclaw", name)
					}
				}
				waitFor(t, e, 60*time.Second, "http_ready 1", func(r scrapeResult) bool {
					v, ok := r.Value("clawdbot_http_ready", nil)
					return ok && v == 1
				})
			} else if _, ok := r.Value("clawdbot_http_ready", nil); ok {
				t.Error("clawdbot has no /readyz, but http_ready is exported")
			}
			// The probe subcommand (one shot) asks /readyz only after
			// hello-ok: openclaw's readiness is there, clawdbot has none.
			if pr := g.probe(t, "--probe.timeout=5s"); !pr.Up || (pr.Ready != nil) != (tc.product == "openclaw") || (pr.Ready != nil && !*pr.Ready) {
				t.Errorf("probe subcommand: up=%v reason=%q http_ready=%v; want up, http_ready true on openclaw only", pr.Up, pr.Reason, pr.Ready)
			}
			promtoolCheck(t, r.Body)

			// Zero configuration: the exporter finds port and token in the
			// gateway's own config, as it would run beside it.
			zero := startExporter(t, []string{"HOME=" + g.Home})
			zr := zero.scrape(t, "")
			expectUp(t, zr)
			// The runtime's defaults, with no GOGC or GOMAXPROCS in the
			// environment: one CPU and GOGC 50 (README, Memory); an
			// environment that sets them wins.
			if v, _ := zr.Value("go_gc_gogc_percent", nil); v != 50 {
				t.Errorf("go_gc_gogc_percent = %v, want the exporter's default 50", v)
			}
			if v, _ := zr.Value("go_sched_gomaxprocs_threads", nil); v != 1 {
				t.Errorf("go_sched_gomaxprocs_threads = %v, want --runtime.gomaxprocs's default 1", v)
			}
			if r := startExporter(t, []string{"HOME=" + g.Home, "GOGC=80", "GOMAXPROCS=2"}).scrape(t, ""); !valueIs(r, "go_gc_gogc_percent", 80) || !valueIs(r, "go_sched_gomaxprocs_threads", 2) {
				t.Error("GOGC=80 GOMAXPROCS=2 in the environment: not what the runtime runs with")
			}

			// 1,000 probes leave no connection behind on the gateway.
			for range 1000 {
				if v, _ := e.scrape(t, "").Value("clawdbot_up", nil); v != 1 {
					t.Fatal("gateway went down during 1,000 probes")
				}
			}
			time.Sleep(300 * time.Millisecond)
			if open := openConns(t, g.Port); len(open) > 0 {
				t.Errorf("after 1,000 probes, connections left on the gateway:\n%s", strings.Join(open, "\n"))
			}

			// A wrong token: down, reason auth.
			wrong := startExporter(t, nil, "--gateway.url", g.URL(), "--gateway.token-file", secretFile(t, "not-the-token"))
			expectDown(t, wrong.scrape(t, ""), "auth")

			// Frozen (SIGSTOP): down, reason timeout, within the deadline.
			if err := syscall.Kill(g.Pid(), syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
			r = e.scrape(t, "2") // deadline 2 s - 0.5 s offset
			_ = syscall.Kill(g.Pid(), syscall.SIGCONT)
			expectDown(t, r, "timeout")
			if r.Elapsed > 1600*time.Millisecond {
				t.Errorf("scrape of a frozen gateway took %v, deadline 1.5 s", r.Elapsed)
			}
			t.Logf("frozen gateway: scrape returned in %v (deadline 1.5 s)", r.Elapsed)
			waitFor(t, e, 30*time.Second, "up after SIGCONT", func(r scrapeResult) bool {
				v, _ := r.Value("clawdbot_up", nil)
				return v == 1
			})

			// Stopped (SIGTERM): down, reason dial.
			g.Stop(t)
			expectDown(t, e.scrape(t, ""), "dial")
			if v, _ := e.scrape(t, "").Value("clawdbot_probe_failures_total", map[string]string{"reason": "timeout"}); v < 1 {
				t.Errorf("failures_total{timeout} = %v, want the frozen probe counted", v)
			}
		})
	}
}

// TestClawdbotPasswordMode: a password-mode clawdbot needs a placeholder
// token beside the password (docs/protocol.md#credentials).
func TestClawdbotPasswordMode(t *testing.T) {
	g := startGateway(t, "clawdbot", gatewayOpts{password: true})
	expectUp(t, startExporter(t, nil, g.credentialArgs(t)...).scrape(t, ""))
	// And found from the gateway's config without flags.
	expectUp(t, startExporter(t, []string{"HOME=" + g.Home}).scrape(t, ""))
	wrong := startExporter(t, nil, "--gateway.url", g.URL(), "--gateway.password-file", secretFile(t, "wrong-password"))
	expectDown(t, wrong.scrape(t, ""), "auth")
}

// TestNoAuthGateways: a loopback gateway without auth must be probed
// without credentials (clawdbot: any token; openclaw: backend client).
func TestNoAuthGateways(t *testing.T) {
	for _, product := range []string{"clawdbot", "openclaw"} {
		t.Run(product, func(t *testing.T) {
			t.Parallel()
			g := startGateway(t, product, gatewayOpts{noAuth: true})
			e := startExporter(t, []string{"HOME=" + g.Home})
			expectUp(t, e.scrape(t, ""))
			expectUp(t, e.scrape(t, ""))
		})
	}
}

// TestClawdbotConfiguredChannel: channel metrics from a real gateway with a
// configured telegram channel (disabled: enabled, it needs the network).
func TestClawdbotConfiguredChannel(t *testing.T) {
	g := startGateway(t, "clawdbot", gatewayOpts{extra: map[string]any{
		"plugins": map[string]any{"enabled": true, "allow": []string{"telegram"},
			"entries": map[string]any{"telegram": map[string]any{"enabled": true}}, "slots": map[string]any{"memory": "none"}},
		"channels": map[string]any{"telegram": map[string]any{"enabled": false, "botToken": "123456:e2e-fake",
			"accounts": map[string]any{"second": map[string]any{"enabled": false, "botToken": "654321:e2e-fake"}}}},
	}})
	r := startExporter(t, nil, g.credentialArgs(t)...).scrape(t, "")
	expectUp(t, r)
	t.Logf("channel metrics from a real clawdbot:\n%s", r.Samples())
	labels := map[string]string{"channel": "telegram", "account": "second"}
	if v, ok := r.Value("clawdbot_channel_configured", labels); !ok || v != 1 {
		t.Errorf("channel_configured%v = %v (present %v)", labels, v, ok)
	}
	if v, ok := r.Value("clawdbot_channel_running", labels); !ok || v != 0 {
		t.Errorf("channel_running%v = %v (present %v), want 0 for a disabled channel", labels, v, ok)
	}
}

func expectUp(t *testing.T, r scrapeResult) {
	t.Helper()
	if v, ok := r.Value("clawdbot_up", nil); !ok || v != 1 {
		t.Fatalf("clawdbot_up = %v (present %v), failing %v", v, ok, r.Failing(""))
	}
}

func expectDown(t *testing.T, r scrapeResult, reason string) {
	t.Helper()
	if v, _ := r.Value("clawdbot_up", nil); v != 0 {
		t.Errorf("clawdbot_up = %v, want 0", v)
	}
	if got := r.Failing(""); len(got) != 1 || got[0] != reason {
		t.Errorf("failing = %v, want [%s]", got, reason)
	}
}

func waitFor(t *testing.T, e *Exporter, limit time.Duration, what string, ok func(scrapeResult) bool) {
	t.Helper()
	end := time.Now().Add(limit)
	for {
		r := e.scrape(t, "")
		if ok(r) {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("no %s after %v:\n%s", what, limit, r.Samples())
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// promtoolCheck lints a /metrics body with the real promtool.
func promtoolCheck(t *testing.T, body string) {
	t.Helper()
	path, err := exec.LookPath("promtool")
	require(t, err == nil, "promtool (apt-get install prometheus)")
	cmd := exec.Command(path, "check", "metrics")
	cmd.Stdin = strings.NewReader(body)
	out, err := cmd.CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// openConns lists the gateway's TCP connections on port that are still open
// (ss: anything but LISTEN and TIME-WAIT, on the gateway's side).
func openConns(t *testing.T, port int) []string {
	t.Helper()
	ss, err := exec.LookPath("ss")
	require(t, err == nil, "ss (apt-get install iproute2)")
	out, err := exec.Command(ss, "-Htan", "sport = :"+strconv.Itoa(port)).Output()
	if err != nil {
		t.Fatalf("ss: %v", err)
	}
	var open []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l != "" && !strings.HasPrefix(l, "LISTEN") && !strings.HasPrefix(l, "TIME-WAIT") {
			open = append(open, l)
		}
	}
	return open
}

func valueIs(r scrapeResult, name string, want float64) bool {
	v, ok := r.Value(name, nil)
	return ok && v == want
}
