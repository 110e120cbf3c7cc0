package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	gt "github.com/clawdbot-exporter/clawdbot_exporter/gateway/gatewaytest"
)

func remediationConfig(t *testing.T, gwURL, action string) string {
	t.Helper()
	return write(t, "config.yml", fmt.Sprintf(`gateways:
  - name: main
    url: %s
remediation:
  targets:
    - name: restart-main
      gateway: main
      warmup: 0s
      verify_timeout: 5s
      action:
%s
`, gwURL, action))
}

func TestConfigCheck(t *testing.T) {
	isolate(t)
	good := remediationConfig(t, "ws://127.0.0.1:1", "        type: exec\n        exec:\n          command: [/bin/true]")
	if code, out, errOut := runCLI("--config.file", good, "--config.check", "--web.listen-address", "127.0.0.1:9789"); code != 0 || !strings.Contains(out, "OK: 1 gateway(s), 1 remediation target(s)") {
		t.Errorf("valid: exit %d %s %s", code, out, errOut)
	}
	// The check applies the start's exposure rule too: on every address,
	// remediation needs authentication.
	if code, _, errOut := runCLI("--config.file", good, "--config.check"); code != 1 || !strings.Contains(errOut, "refusing to serve remediation beyond loopback") {
		t.Errorf("exposed without auth: exit %d %s", code, errOut)
	}
	for name, action := range map[string]string{
		"relative command": "        type: exec\n        exec:\n          command: [restart.sh]",
		"unknown type":     "        type: reboot",
		"two actions":      "        type: exec\n        exec:\n          command: [/bin/true]\n        signal:\n          signal: SIGTERM",
		"bad signal":       "        type: signal\n        signal:\n          signal: SIGSTOP",
		"bad unit":         "        type: systemd\n        systemd:\n          unit: '../../etc/passwd'",
	} {
		bad := remediationConfig(t, "ws://127.0.0.1:1", action)
		if code, _, errOut := runCLI("--config.file", bad, "--config.check", "--web.listen-address", "127.0.0.1:9789"); code != 1 || !strings.Contains(errOut, "remediation") {
			t.Errorf("%s: exit %d %s", name, code, errOut)
		}
	}
	unknownGW := write(t, "c.yml", "remediation:\n  targets:\n    - name: x\n      gateway: nope\n      action: {type: signal}\n")
	if code, _, errOut := runCLI("--config.file", unknownGW, "--config.check"); code != 1 || !strings.Contains(errOut, `gateway "nope" is not one the exporter probes`) {
		t.Errorf("unknown gateway: exit %d %s", code, errOut)
	}
}

func TestRemediationRefusesExposureWithoutAuth(t *testing.T) {
	isolate(t)
	cfg := remediationConfig(t, "ws://127.0.0.1:1", "        type: exec\n        exec:\n          command: [/bin/true]")
	code, _, errOut := runCLI("--config.file", cfg, "--web.listen-address", ":0")
	if code != 1 || !strings.Contains(errOut, "refusing to serve remediation beyond loopback without authentication") {
		t.Errorf("exit %d: %s", code, errOut)
	}
}

// TestRemediationServed: the served webhook, authenticated, restarts a
// down gateway through an exec action and verifies it; a reload keeps working.
func TestRemediationServed(t *testing.T) {
	isolate(t)
	srv := gt.New(gt.Options{Fault: gt.FaultHealthNotOK, AuthMode: "none"})
	defer srv.Close()
	marker := filepath.Join(t.TempDir(), "ran")
	script := write(t, "restart.sh", "#!/bin/sh\necho \"$ALERT_NAME $ALERT_LABEL_GATEWAY\" > "+marker+"\n")
	_ = os.Chmod(script, 0o755)
	cfg := remediationConfig(t, srv.URL(), "        type: exec\n        exec:\n          command: ["+script+"]")
	token := write(t, "token", "webhook-token-1")
	addr := freeAddr(t)
	go runCLI("--config.file", cfg, "--web.listen-address", addr, "--remediation.token-file", token)

	post := func(auth string) int {
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/alertmanager/webhook", strings.NewReader(`{"version":"4","alerts":[
{"status":"firing","labels":{"alertname":"ClawdbotGatewayDown","gateway":"main","remediation":"restart"},"fingerprint":"f1","startsAt":"2026-11-25T03:00:00Z"}]}`))
		req.Header.Set("Authorization", auth)
		req.Header.Set("Content-Type", "application/json")
		for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				resp.Body.Close()
				return resp.StatusCode
			}
		}
		t.Fatal("exporter did not start")
		return 0
	}
	if code := post("Bearer wrong"); code != 401 {
		t.Fatalf("wrong token: %d", code)
	}
	srv.SetFault(gt.FaultNone) // the "restart" fixes it, as far as verification can tell
	if code := post("Bearer webhook-token-1"); code != 200 {
		t.Fatalf("webhook: %d", code)
	}
	var ran []byte
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end) && len(ran) == 0; time.Sleep(20 * time.Millisecond) {
		ran, _ = os.ReadFile(marker)
	}
	if strings.TrimSpace(string(ran)) != "ClawdbotGatewayDown main" {
		t.Fatalf("action ran with %q", ran)
	}
	metrics := func() string {
		for end := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			resp, err := http.Get("http://" + addr + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			body := readAll(resp)
			if strings.Contains(body, `result="recovered",target="restart-main"} 1`) || time.Now().After(end) {
				return body
			}
		}
	}()
	for _, want := range []string{
		`clawdbot_remediation_actions_total{action="exec",result="recovered",target="restart-main"} 1`,
		`clawdbot_remediation_webhook_requests_total{code="401"} 1`,
		`clawdbot_remediation_breaker_open{target="restart-main"} 0`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	reload := func(auth, origin string) int {
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/-/reload", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// With a webhook token, a reload needs it too; no web page may reload.
	if code := reload("", ""); code != 401 {
		t.Errorf("reload without the token: %d, want 401", code)
	}
	if code := reload("Bearer webhook-token-1", "http://evil.example"); code != 403 {
		t.Errorf("cross-origin reload: %d, want 403", code)
	}
	if code := reload("Bearer webhook-token-1", ""); code != 200 {
		t.Fatalf("reload: %d", code)
	}
	// The same alert again: a duplicate, even after the reload.
	if code := post("Bearer webhook-token-1"); code != 200 {
		t.Fatalf("webhook after reload: %d", code)
	}
}

func readAll(resp *http.Response) string {
	defer resp.Body.Close()
	b := new(strings.Builder)
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			return b.String()
		}
	}
}

// TestReloadWithoutRemediation: SIGHUP and POST /-/reload work on an
// exporter without a remediation section (they used to kill it and answer
// 404), pick up a gateway added to the file, and are counted.
func TestReloadWithoutRemediation(t *testing.T) {
	isolate(t)
	srv := gt.New(gt.Options{})
	defer srv.Close()
	cfg := write(t, "config.yml", "gateways:\n  - name: a\n    url: "+srv.URL()+"\n    token_file: "+write(t, "tok", gt.DefaultToken)+"\n")
	addr := freeAddr(t)
	go runCLI("--config.file", cfg, "--web.listen-address", addr)
	metrics := func() string {
		for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
			if resp, err := http.Get("http://" + addr + "/metrics"); err == nil {
				return readAll(resp)
			}
		}
		t.Fatal("exporter did not start")
		return ""
	}
	if m := metrics(); !strings.Contains(m, `clawdbot_up{gateway="a"} 1`) || !strings.Contains(m, "clawdbot_exporter_config_last_reload_successful 1") {
		t.Fatalf("before reload:\n%s", m)
	}
	if err := os.WriteFile(cfg, []byte("gateways:\n  - name: a\n    url: "+srv.URL()+"\n  - name: b\n    url: "+srv.URL()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	var m string
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if m = metrics(); strings.Contains(m, `clawdbot_up{gateway="b"}`) {
			break
		}
	}
	if !strings.Contains(m, `clawdbot_up{gateway="b"}`) {
		t.Fatalf("SIGHUP did not reload:\n%s", m)
	}
	// A broken file: the reload fails, says so in a metric, keeps both.
	if err := os.WriteFile(cfg, []byte("gateways: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post("http://"+addr+"/-/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(resp)
	if resp.StatusCode != 500 || strings.Contains(body, "yaml") || strings.Contains(body, cfg) {
		t.Errorf("broken reload: %d %q (the reason belongs in the log, not the answer)", resp.StatusCode, body)
	}
	if m := metrics(); !strings.Contains(m, "clawdbot_exporter_config_last_reload_successful 0") || !strings.Contains(m, `clawdbot_up{gateway="b"}`) {
		t.Errorf("after a failed reload:\n%s", m)
	}
	if resp, err := http.Get("http://" + addr + "/alertmanager/webhook"); err != nil || resp.StatusCode != 404 {
		t.Errorf("webhook without remediation: %v %v", err, resp)
	}
}
