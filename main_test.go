package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gt "github.com/clawdbot-exporter/clawdbot_exporter/gateway/gatewaytest"
)

// isolate gives the test an empty HOME and none of the gateway variables,
// so discovery sees only what the test sets up.
func isolate(t *testing.T) string {
	t.Helper()
	home := t.TempDir()
	t.Setenv("HOME", home)
	for _, p := range []string{"CLAWDBOT", "OPENCLAW"} {
		for _, v := range []string{"_GATEWAY_TOKEN", "_GATEWAY_PASSWORD", "_GATEWAY_PORT", "_GATEWAY_URL", "_CONFIG_PATH", "_STATE_DIR", "_PROFILE"} {
			t.Setenv(p+v, "")
		}
	}
	return home
}

func runCLI(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func write(t *testing.T, name, content string) string {
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestBadInput(t *testing.T) {
	home := isolate(t)
	closed := freeAddr(t)
	invalidJSON5 := write(t, "clawdbot.json", `{gateway: {auth: {token: "SECRET-TOKEN-9"`)
	tests := []struct {
		name     string
		args     []string
		code     int
		inStdout string
		inStderr string
	}{
		{"unreachable gateway", []string{"probe", "--gateway.url", "ws://" + closed}, 1, "DOWN default ws://" + closed + ": dial", ""},
		{"bad URL scheme", []string{"probe", "--gateway.url", "ftp://gw"}, 1, "", "scheme must be ws or wss"},
		{"unparseable URL", []string{"probe", "--gateway.url", "ws://[::1"}, 1, "", "invalid gateway URL"},
		{"missing token file", []string{"probe", "--gateway.token-file", "/nonexistent/token"}, 1, "", "token file: open /nonexistent/token: no such file or directory"},
		{"config path is a directory", []string{"probe", "--gateway.config-path", home}, 1, "", "not a regular file"},
		{"invalid JSON5", []string{"probe", "--gateway.config-path", invalidJSON5}, 1, "", "invalid JSON5"},
		{"missing config file", []string{"--config.file", "/nonexistent.yml"}, 1, "", "config file: open /nonexistent.yml"},
		{"duplicate gateway names", []string{"--config.file", "testdata/duplicate.yml"}, 1, "", `duplicate name \"main\"`},
		{"unknown config key", []string{"--config.file", "testdata/typo.yml"}, 1, "", "field tokenfile not found"},
		{"flags and config file both", []string{"--config.file", "testdata/two-gateways.yml", "--gateway.url", "ws://x"}, 1, "", "not with --gateway.* flags"},
		{"unknown flag", []string{"--gateway.token", "x"}, 2, "", "unknown long flag '--gateway.token'"},
		{"bad duration", []string{"--probe.timeout", "soon"}, 2, "", "soon"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			done := make(chan struct{})
			var code int
			var stdout, stderr string
			go func() { defer close(done); code, stdout, stderr = runCLI(tc.args...) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("hangs")
			}
			if code != tc.code || !strings.Contains(stdout, tc.inStdout) || !strings.Contains(stderr, tc.inStderr) {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s\nwant stdout containing %q, stderr containing %q",
					code, tc.code, stdout, stderr, tc.inStdout, tc.inStderr)
			}
			if strings.Contains(stdout+stderr, "SECRET-TOKEN") || strings.Contains(stderr, "panic") {
				t.Errorf("output leaks a secret or panics:\n%s%s", stdout, stderr)
			}
		})
	}
}

func TestProbeCommand(t *testing.T) {
	isolate(t)
	srv := gt.New(gt.Options{Protocol: 4, Token: "right-token-1234"})
	defer srv.Close()

	good := write(t, "token", "right-token-1234\n")
	code, out, _ := runCLI("probe", "--gateway.url", srv.URL(), "--gateway.token-file", good)
	if code != 0 || !strings.HasPrefix(out, "UP default "+srv.URL()+": openclaw protocol 4 version "+gt.VersionProtocol4) {
		t.Errorf("exit %d: %s", code, out)
	}

	code, out, _ = runCLI("probe", "--json", "--gateway.url", srv.URL(), "--gateway.token-file", good)
	var r probeResult
	if err := json.Unmarshal([]byte(out), &r); err != nil || code != 0 || !r.Up || r.Product != "openclaw" || r.Protocol != 4 || r.PhaseTime["health"] <= 0 {
		t.Errorf("exit %d, %v: %s", code, err, out)
	}

	// The token comes from the environment; a wrong one fails with auth,
	// and neither output nor error shows it.
	t.Setenv("OPENCLAW_GATEWAY_TOKEN", "wrong-token-5678")
	code, out, errOut := runCLI("probe", "--gateway.url", srv.URL())
	if code != 1 || !strings.Contains(out, ": auth in phase hello") {
		t.Errorf("exit %d: %s", code, out)
	}
	if strings.Contains(out+errOut, "wrong-token-5678") || strings.Contains(out+errOut, "right-token-1234") {
		t.Errorf("a token leaked: %s %s", out, errOut)
	}

	// A frozen gateway: exit 1 with reason timeout, within the timeout.
	stalled := gt.New(gt.Options{Fault: gt.FaultNoChallenge})
	defer stalled.Close()
	begin := time.Now()
	code, out, _ = runCLI("probe", "--probe.timeout", "300ms", "--gateway.url", stalled.URL())
	if code != 1 || !strings.Contains(out, "timeout in phase challenge") || time.Since(begin) > 3*time.Second {
		t.Errorf("exit %d after %v: %s", code, time.Since(begin), out)
	}
}

func TestServe(t *testing.T) {
	isolate(t)
	srv := gt.New(gt.Options{})
	defer srv.Close()
	addr := freeAddr(t)
	tokenFile := write(t, "token", gt.DefaultToken)
	go runCLI("--web.listen-address", addr, "--gateway.url", srv.URL(), "--gateway.token-file", tokenFile, "--gateway.name", "home")

	get := func(path string) (int, string) {
		var err error
		for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
			var resp *http.Response
			if resp, err = http.Get("http://" + addr + path); err == nil {
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				return resp.StatusCode, string(b)
			}
		}
		t.Fatalf("GET %s: %v", path, err)
		return 0, ""
	}
	for path, want := range map[string]string{
		"/-/healthy": "Healthy",
		"/-/ready":   "Ready",
		"/":          "/metrics",
		"/metrics":   `clawdbot_up{gateway="home"} 1`,
	} {
		if code, body := get(path); code != 200 || !strings.Contains(body, want) {
			t.Errorf("GET %s: %d, want 200 with %q:\n%.500s", path, code, want, body)
		}
	}
	_, body := get("/metrics")
	for _, want := range []string{"clawdbot_exporter_build_info{", "go_goroutines ", "process_resident_memory_bytes ", "promhttp_metric_handler_requests_total{"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func TestHealthcheckCommand(t *testing.T) {
	isolate(t)
	srv := gt.New(gt.Options{})
	defer srv.Close()
	addr := freeAddr(t)
	if code, out, _ := runCLI("healthcheck", "--web.listen-address", addr); code != 1 || !strings.Contains(out, "unhealthy") {
		t.Errorf("nothing listening: exit %d %s", code, out)
	}
	go runCLI("--web.listen-address", addr, "--gateway.url", srv.URL())
	for end := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		code, out, _ := runCLI("healthcheck", "--web.listen-address", addr)
		if code == 0 && strings.HasPrefix(out, "healthy: http://"+addr+"/-/healthy") {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("exit %d %s", code, out)
		}
	}
}
