package collector

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/clawdbot-exporter/clawdbot_exporter/gateway"
	gt "github.com/clawdbot-exporter/clawdbot_exporter/gateway/gatewaytest"
	"github.com/clawdbot-exporter/clawdbot_exporter/internal/secret"
	"github.com/clawdbot-exporter/clawdbot_exporter/internal/testutil"
)

func TestProbeFaults(t *testing.T) {
	// Prometheus sends 1 s, the offset is 0.5 s: the deadline is 0.5 s.
	const header, deadline = "1", 500 * time.Millisecond
	plainHTTP := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("<html>not a gateway</html>"))
	}))
	t.Cleanup(plainHTTP.Close)

	tests := []struct {
		name   string
		opts   gt.Options
		url    string // instead of a fake gateway
		token  secret.Secret
		reason string
		phase  string // the phase whose duration must be non-zero
	}{
		{name: "refused", url: "ws://" + testutil.RefusedAddr(t), reason: "dial", phase: "connect"},
		{name: "plain HTTP server", url: strings.Replace(plainHTTP.URL, "http", "ws", 1), reason: "upgrade", phase: "upgrade"},
		{name: "accepts TCP, never upgrades", opts: gt.Options{Fault: gt.FaultNoUpgrade}, reason: "timeout", phase: "upgrade"},
		{name: "upgrades, never challenges", opts: gt.Options{Fault: gt.FaultNoChallenge}, reason: "timeout", phase: "challenge"},
		{name: "stalls after challenge, answers pings (throttled login)", opts: gt.Options{Fault: gt.FaultStallAfterChallenge}, reason: "hello_timeout", phase: "hello"},
		{name: "freezes after challenge", opts: gt.Options{Fault: gt.FaultFreezeAfterChallenge}, reason: "timeout", phase: "hello"},
		{name: "never answers health", opts: gt.Options{Fault: gt.FaultStallHealth}, reason: "timeout", phase: "health"},
		{name: "slower than the deadline", opts: gt.Options{Delay: 300 * time.Millisecond}, reason: "timeout", phase: "hello"},
		{name: "wrong token", opts: gt.Options{Token: "right"}, token: "wrong", reason: "auth", phase: "hello"},
		{name: "wrong password", opts: gt.Options{AuthMode: "password", Password: "right"}, reason: "auth", phase: "hello"},
		{name: "protocol mismatch", opts: gt.Options{Protocol: 5}, reason: "protocol", phase: "hello"},
		{name: "restart mid-handshake (1012)", opts: gt.Options{Fault: gt.FaultRestart}, reason: "closed", phase: "hello"},
		{name: "TCP dropped", opts: gt.Options{Fault: gt.FaultDropTCP}, reason: "closed", phase: "hello"},
		{name: "garbage frame", opts: gt.Options{Fault: gt.FaultGarbage}, reason: "bad_frame", phase: "challenge"},
		{name: "binary frame", opts: gt.Options{Fault: gt.FaultBinaryFrame}, reason: "bad_frame", phase: "challenge"},
		{name: "oversized frame", opts: gt.Options{Fault: gt.FaultOversized}, reason: "bad_frame", phase: "challenge"},
		{name: "no hello-ok", opts: gt.Options{Fault: gt.FaultHelloNotOK}, reason: "bad_frame", phase: "hello"},
		{name: "health ok:false", opts: gt.Options{Fault: gt.FaultHealthNotOK}, reason: "unhealthy", phase: "health"},
		{name: "health RPC error", opts: gt.Options{Fault: gt.FaultHealthError}, reason: "rpc", phase: "health"},
		{name: "openclaw starting", opts: gt.Options{Protocol: 4, Fault: gt.FaultStarting}, reason: "starting", phase: "hello"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			target := gateway.Target{Name: "gw", URL: tc.url, Token: tc.token}
			var srv *gt.Server
			if tc.url == "" {
				srv = gt.New(tc.opts)
				defer srv.Close()
				target.URL = srv.URL()
				if target.Token == "" {
					target.Token = gt.DefaultToken
				}
				if tc.opts.AuthMode == "password" {
					target.Password = "wrong"
				}
			}
			res := doScrape(t, newTestHandler(t, []gateway.Target{target}, 5*time.Second), header)

			// A hang, not speed: a loaded machine may be late, never by seconds.
			if res.Elapsed > deadline+2*time.Second {
				t.Errorf("scrape took %v, deadline %v", res.Elapsed, deadline)
			}
			if v, ok := res.Value("clawdbot_up", map[string]string{"gateway": "gw"}); !ok || v != 0 {
				t.Errorf("clawdbot_up = %v (present %v), want 0", v, ok)
			}
			if got := res.Failing("gw"); len(got) != 1 || got[0] != tc.reason {
				t.Errorf("failing reasons = %v, want [%s]", got, tc.reason)
			}
			if v, _ := res.Value("clawdbot_probe_failures_total", map[string]string{"gateway": "gw", "reason": tc.reason}); v != 1 {
				t.Errorf("failures_total{reason=%s} = %v, want 1", tc.reason, v)
			}
			if v, _ := res.Value("clawdbot_probe_duration_seconds", map[string]string{"phase": tc.phase}); v <= 0 {
				t.Errorf("phase %s duration = %v, want > 0", tc.phase, v)
			}
			// The probe collector did its job: a down gateway is not a
			// failed scrape.
			if v, _ := res.Value("clawdbot_exporter_collector_success", map[string]string{"collector": "probe"}); v != 1 {
				t.Errorf("collector_success = %v", v)
			}
			if srv != nil {
				for _, m := range srv.Methods() {
					if m == "config.get" {
						t.Error("the probe called config.get")
					}
				}
				waitNoConns(t, srv)
			}
		})
	}
}

// waitNoConns asserts the probe left no connection open on the gateway.
func waitNoConns(t *testing.T, srv *gt.Server) {
	t.Helper()
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if srv.OpenConns() == 0 {
			return
		}
	}
	t.Errorf("%d connections left open on the gateway", srv.OpenConns())
}

func TestProbeUp(t *testing.T) {
	for _, tc := range []struct {
		name            string
		opts            gt.Options
		product, proto  string
		version         string
		openclawMetrics bool
	}{
		{name: "clawdbot", opts: gt.Options{Protocol: 3, InterleaveEvents: true}, product: "clawdbot", proto: "3", version: ""},
		{name: "openclaw", opts: gt.Options{Protocol: 4, InterleaveEvents: true}, product: "openclaw", proto: "4", version: gt.VersionProtocol4, openclawMetrics: true},
		{name: "no-auth gateway", opts: gt.Options{AuthMode: "none"}, product: "clawdbot", proto: "3"},
		{name: "openclaw auth none", opts: gt.Options{Protocol: 4, AuthMode: "none"}, product: "openclaw", proto: "4", version: gt.VersionProtocol4, openclawMetrics: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := gt.New(tc.opts)
			defer srv.Close()
			target := gateway.Target{Name: "gw", URL: srv.URL(), Token: gt.DefaultToken}
			if tc.opts.AuthMode == "none" {
				target.Token = ""
			}
			h := newTestHandler(t, []gateway.Target{target}, 5*time.Second)
			res := doScrape(t, h, "")
			want := map[string]float64{
				"clawdbot_up":                         1,
				"clawdbot_health_ok":                  1,
				"clawdbot_agent_sessions":             gt.HealthSessionsCount,
				"clawdbot_heartbeat_interval_seconds": gt.HealthHeartbeatSecs,
			}
			for name, v := range want {
				if got, ok := res.Value(name, map[string]string{"gateway": "gw"}); !ok || got != v {
					t.Errorf("%s = %v (present %v), want %v", name, got, ok, v)
				}
			}
			if _, ok := res.Value("clawdbot_gateway_info", map[string]string{"product": tc.product, "protocol": tc.proto, "version": tc.version}); !ok {
				t.Errorf("no gateway_info{product=%s,protocol=%s,version=%q}:\n%s", tc.product, tc.proto, tc.version, res.Body)
			}
			if up, ok := res.Value("clawdbot_gateway_uptime_seconds", nil); !ok || up < 0 {
				t.Errorf("uptime = %v %v", up, ok)
			}
			age, ok := res.Value("clawdbot_agent_last_activity_age_seconds", map[string]string{"agent": "main"})
			if !ok || age < gt.HealthRecentAgeMs/1000-1 || age > gt.HealthRecentAgeMs/1000+60 {
				t.Errorf("last activity age = %v (present %v), want about %d s", age, ok, gt.HealthRecentAgeMs/1000)
			}
			if _, ok := res.Value("clawdbot_channel_configured", map[string]string{"channel": "telegram"}); !ok {
				t.Errorf("no channel metrics:\n%s", res.Body)
			}
			_, hasLoop := res.Value("clawdbot_event_loop_delay_p99_seconds", nil)
			_, hasReady := res.Value("clawdbot_http_ready", nil)
			if hasLoop != tc.openclawMetrics || hasReady != tc.openclawMetrics {
				t.Errorf("openclaw metrics present: event loop %v, http_ready %v; want %v", hasLoop, hasReady, tc.openclawMetrics)
			}
			if got := res.Failing("gw"); len(got) != 0 {
				t.Errorf("failing = %v", got)
			}
			problems, err := promlint.New(strings.NewReader(res.Body)).Lint()
			if err != nil || len(problems) > 0 {
				t.Errorf("promlint: %v %v", err, problems)
			}
			waitNoConns(t, srv)
			// Every connection, the refused cli one of the openclaw
			// auth-none fallback too, ends with a close frame.
			if got, want := srv.CleanCloses(), int64(len(srv.ConnectParams())); got != want {
				t.Errorf("clean closes = %d, want %d (close frame before TCP close)", got, want)
			}
			if tc.opts.Protocol == 4 && tc.opts.AuthMode == "none" {
				checkBackendFallback(t, srv, h)
				return
			}
			checkConnectParams(t, srv, target)
		})
	}
}

// checkConnectParams asserts what the probe sends: the exact connect the
// real gateways accept (docs/protocol.md#connect-params).
func checkConnectParams(t *testing.T, srv *gt.Server, target gateway.Target) {
	t.Helper()
	params := srv.ConnectParams()
	if len(params) != 1 {
		t.Fatalf("%d connect requests, want 1", len(params))
	}
	var p struct {
		MinProtocol, MaxProtocol int
		Client                   map[string]string
		Role                     string
		Scopes                   []string
		Auth                     map[string]string
	}
	if err := json.Unmarshal(params[0], &p); err != nil {
		t.Fatal(err)
	}
	if p.MinProtocol != 3 || p.MaxProtocol != 4 || p.Client["id"] != "cli" || p.Client["mode"] != "cli" ||
		p.Role != "operator" || len(p.Scopes) != 1 || p.Scopes[0] != "operator.read" {
		t.Errorf("connect params = %s", params[0])
	}
	if p.Auth["token"] == "" {
		t.Errorf("empty token sent: %s", params[0])
	}
	if target.Token != "" && p.Auth["token"] != target.Token.Reveal() {
		t.Errorf("token = %q", p.Auth["token"])
	}
	// openclaw: status too (read-only, at most once a minute).
	want := "connect,health"
	if srv.Options().Protocol >= 4 {
		want += ",status"
	}
	if got := srv.Methods(); strings.Join(got, ",") != want {
		t.Errorf("methods = %v, want %s", got, want)
	}
}

// checkBackendFallback: against openclaw with auth none, the first probe is
// refused as cli and retried as gateway-client/backend; later probes go
// straight to backend.
func checkBackendFallback(t *testing.T, srv *gt.Server, h http.Handler) {
	t.Helper()
	clients := func() []string {
		var out []string
		for _, raw := range srv.ConnectParams() {
			var p struct{ Client map[string]string }
			_ = json.Unmarshal(raw, &p)
			out = append(out, p.Client["id"]+"/"+p.Client["mode"])
		}
		return out
	}
	if got := strings.Join(clients(), ","); got != "cli/cli,gateway-client/backend" {
		t.Errorf("first scrape connected as %s", got)
	}
	if v, _ := doScrape(t, h, "").Value("clawdbot_up", nil); v != 1 {
		t.Error("second scrape down")
	}
	if got := clients(); len(got) != 3 || got[2] != "gateway-client/backend" {
		t.Errorf("second scrape connected as %v, want backend at once", got)
	}
}

func TestProbePasswordModeSendsPlaceholderToken(t *testing.T) {
	// clawdbot refuses a password without a token ("device identity
	// required"): the probe must send both.
	srv := gt.New(gt.Options{Protocol: 3, AuthMode: "password", Password: "pw"})
	defer srv.Close()
	res := doScrape(t, newTestHandler(t, []gateway.Target{{Name: "gw", URL: srv.URL(), Password: "pw"}}, 5*time.Second), "")
	if v, _ := res.Value("clawdbot_up", nil); v != 1 {
		t.Fatalf("up = %v, failing %v", v, res.Failing("gw"))
	}
}

func TestProbeReadinessFailing(t *testing.T) {
	srv := gt.New(gt.Options{Protocol: 4, ReadyFailing: true})
	defer srv.Close()
	res := doScrape(t, newTestHandler(t, []gateway.Target{{Name: "gw", URL: srv.URL(), Token: gt.DefaultToken}}, 5*time.Second), "")
	if v, ok := res.Value("clawdbot_http_ready", nil); !ok || v != 0 {
		t.Fatalf("http_ready = %v (present %v), want 0", v, ok)
	}
	// The WebSocket side is fine: readiness is reported, not folded into up.
	if v, _ := res.Value("clawdbot_up", nil); v != 1 {
		t.Fatalf("up = %v", v)
	}
}

func TestProbeSeveralGatewaysConcurrently(t *testing.T) {
	// Three gateways that never answer and one healthy one: the scrape ends at
	// the one deadline, not after three of them.
	var targets []gateway.Target
	for i, f := range []gt.Fault{gt.FaultNoChallenge, gt.FaultNoChallenge, gt.FaultNoChallenge, gt.FaultNone} {
		srv := gt.New(gt.Options{Fault: f})
		defer srv.Close()
		targets = append(targets, gateway.Target{Name: string(rune('a' + i)), URL: srv.URL(), Token: gt.DefaultToken})
	}
	res := doScrape(t, newTestHandler(t, targets, 5*time.Second), "1")
	if res.Elapsed >= 1400*time.Millisecond {
		t.Errorf("scrape took %v, want one 0.5 s deadline (three in a row take 1.5 s)", res.Elapsed)
	}
	for _, n := range []string{"a", "b", "c"} {
		if got := res.Failing(n); len(got) != 1 || got[0] != "timeout" {
			t.Errorf("gateway %s failing %v", n, got)
		}
	}
	if v, _ := res.Value("clawdbot_up", map[string]string{"gateway": "d"}); v != 1 {
		t.Errorf("healthy gateway up = %v", v)
	}
}

func TestFailuresCounterAccumulates(t *testing.T) {
	srv := gt.New(gt.Options{Fault: gt.FaultHealthNotOK})
	defer srv.Close()
	h := newTestHandler(t, []gateway.Target{{Name: "gw", URL: srv.URL(), Token: gt.DefaultToken}}, 5*time.Second)
	for range 3 {
		doScrape(t, h, "")
	}
	srv.SetFault(gt.FaultNone)
	res := doScrape(t, h, "")
	if v, _ := res.Value("clawdbot_probe_failures_total", map[string]string{"reason": "unhealthy"}); v != 3 {
		t.Errorf("failures_total{unhealthy} = %v, want 3", v)
	}
	if v, _ := res.Value("clawdbot_up", nil); v != 1 {
		t.Errorf("up after recovery = %v", v)
	}
	if got := res.Failing("gw"); len(got) != 0 {
		t.Errorf("failing after recovery = %v", got)
	}
}
