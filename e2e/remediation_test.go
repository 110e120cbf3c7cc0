//go:build e2e

package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// remediationExporter starts the exporter with a remediation target for
// gateway "main" and a webhook token; it returns the exporter and the token.
func remediationExporter(t *testing.T, env []string, gatewayYAML, actionYAML string) (*Exporter, string) {
	t.Helper()
	token := "e2e-webhook-token"
	tokenFile := secretFile(t, token)
	cfg := filepath.Join(t.TempDir(), "config.yml")
	doc := fmt.Sprintf(`gateways:
  - name: main
%s
remediation:
  targets:
    - name: restart-main
      gateway: main
      warmup: 0s
      cooldown: 1s
      remove_stale_lock: true
      verify_timeout: 90s
      action:
%s
`, gatewayYAML, actionYAML)
	if err := os.WriteFile(cfg, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return startExporter(t, env, "--config.file", cfg, "--remediation.token-file", tokenFile), token
}

// webhook posts an Alertmanager-style message for one firing alert.
func webhook(t *testing.T, e *Exporter, token, fingerprint string) int {
	t.Helper()
	body := fmt.Sprintf(`{"version":"4","status":"firing","receiver":"clawdbot","alerts":[{"status":"firing",
"labels":{"alertname":"ClawdbotGatewayDown","gateway":"main","remediation":"restart"},"fingerprint":%q,
"startsAt":%q}]}`, fingerprint, time.Now().UTC().Format(time.RFC3339Nano))
	req, _ := http.NewRequest(http.MethodPost, "http://"+e.Addr+"/alertmanager/webhook", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestRemediationRecoversFrozenGateway freezes a real clawdbot gateway that
// runs under a restart loop (systemd Restart=always), sends the webhook an
// alert as Alertmanager would, and waits for the action to restart it and
// the probe to see it up: once with the signal action (SIGTERM to the lock's
// owner, SIGCONT so a frozen process can act on it), once with exec (a
// script that kills the pid the supervisor recorded).
func TestRemediationRecoversFrozenGateway(t *testing.T) {
	for _, tc := range []struct {
		name   string
		action func(g *Gateway) string
	}{
		{"signal", func(*Gateway) string {
			return "        type: signal\n        signal:\n          signal: SIGTERM\n          kill_after: 10s"
		}},
		{"exec", func(g *Gateway) string {
			script := filepath.Join(g.Home, "restart.sh")
			_ = os.WriteFile(script, []byte("#!/bin/sh\n# what `systemctl restart` does, for this test's supervisor\nkill -KILL \"$(cat "+g.PidFile()+")\"\n"), 0o755)
			return "        type: exec\n        exec:\n          command: [" + script + "]\n          timeout: 30s"
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := startGateway(t, "clawdbot", gatewayOpts{supervised: true})
			env := []string{"HOME=" + g.Home, "TMPDIR=" + filepath.Join(g.Home, "tmp")}
			e, token := remediationExporter(t, env,
				"    config_path: "+filepath.Join(g.Home, ".clawdbot", "clawdbot.json"), tc.action(g))

			old := g.GatewayPid(t)
			if err := syscall.Kill(old, syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
			expectDown(t, e.scrape(t, "2"), "timeout")

			begin := time.Now()
			if code := webhook(t, e, token, "fp-"+tc.name); code != 200 {
				t.Fatalf("webhook answered %d", code)
			}
			accepted := time.Since(begin)
			var r scrapeResult
			for end := time.Now().Add(2 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
				r = e.scrape(t, "")
				if v, _ := r.Value("clawdbot_remediation_actions_total", map[string]string{"result": "recovered"}); v == 1 {
					break
				}
				if v, _ := r.Value("clawdbot_remediation_actions_total", map[string]string{"result": "error"}); v > 0 || time.Now().After(end) {
					t.Fatalf("no recovery:\n%s\n%s", grep(r.Body, "clawdbot_remediation_"), e.log.String())
				}
			}
			recovered := time.Since(begin)
			sum, _ := r.Value("clawdbot_remediation_recovery_seconds_sum", nil)
			if sum == 0 {
				sum = histogramSum(r, "clawdbot_remediation_recovery_seconds")
			}
			t.Logf("%s: webhook answered in %v; webhook to verified recovery %v (action start to probe up: %.2f s)",
				tc.name, accepted.Round(time.Millisecond), recovered.Round(time.Millisecond), sum)
			if accepted > time.Second {
				t.Errorf("the webhook answered after %v: it must not wait for the action", accepted)
			}
			expectUp(t, e.scrape(t, ""))
			if now := g.GatewayPid(t); now == old {
				t.Errorf("gateway pid unchanged (%d): not restarted", old)
			}
			// The same alert again does nothing.
			if code := webhook(t, e, token, "fp-"+tc.name); code != 200 {
				t.Fatalf("webhook answered %d", code)
			}
		})
	}
}

func histogramSum(r scrapeResult, name string) float64 {
	for _, m := range r.Families[name].GetMetric() {
		if h := m.GetHistogram(); h != nil {
			return h.GetSampleSum()
		}
	}
	return 0
}

// startAlertmanager runs a real Alertmanager that sends every alert to the
// exporter's webhook with the bearer token in tokenFile.
func startAlertmanager(t *testing.T, webhookURL, tokenFile string) string {
	t.Helper()
	bin, err := exec.LookPath("prometheus-alertmanager")
	if err != nil {
		bin, err = exec.LookPath("alertmanager")
	}
	require(t, err == nil, "alertmanager (apt-get install prometheus-alertmanager)")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "alertmanager.yml")
	doc := fmt.Sprintf(`route:
  receiver: clawdbot
  group_by: [alertname, gateway]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 2s
receivers:
  - name: clawdbot
    webhook_configs:
      - url: %s
        send_resolved: true
        http_config:
          authorization:
            type: Bearer
            credentials_file: %s
`, webhookURL, tokenFile)
	if err := os.WriteFile(cfg, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cmd := exec.Command(bin, "--config.file="+cfg, "--storage.path="+dir, "--web.listen-address="+addr, "--cluster.listen-address=")
	log := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if resp, err := http.Get("http://" + addr + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return "http://" + addr
			}
		}
	}
	t.Fatalf("alertmanager did not start:\n%s", log.String())
	return ""
}

// postAlert hands an alert to Alertmanager as Prometheus does.
func postAlert(t *testing.T, am string, labels map[string]string, startsAt time.Time, endsAt time.Time) {
	t.Helper()
	a := map[string]any{"labels": labels, "annotations": map[string]string{"summary": "e2e."}, "startsAt": startsAt.Format(time.RFC3339Nano)}
	if !endsAt.IsZero() {
		a["endsAt"] = endsAt.Format(time.RFC3339Nano)
	}
	b, _ := json.Marshal([]any{a})
	resp, err := http.Post(am+"/api/v2/alerts", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("alertmanager refused the alert: %d", resp.StatusCode)
	}
}

// TestAlertmanagerDelivery: real Alertmanagers deliver to the webhook. An HA
// pair both delivering the same alert, and repeating it, cause exactly one
// action; its resolution causes none; an Alertmanager with the wrong token is
// refused, and its retries never act.
func TestAlertmanagerDelivery(t *testing.T) {
	runs := filepath.Join(t.TempDir(), "runs")
	script := filepath.Join(t.TempDir(), "act.sh")
	_ = os.WriteFile(script, []byte("#!/bin/sh\necho \"$ALERT_FINGERPRINT $ALERT_LABEL_VIA\" >> "+runs+"\n"), 0o755)
	e, token := remediationExporter(t, nil, fmt.Sprintf("    url: ws://127.0.0.1:%d", freePort(t)),
		"        type: exec\n        exec:\n          command: ["+script+"]")
	hook := "http://" + e.Addr + "/alertmanager/webhook"
	good := secretFile(t, token)
	am1, am2 := startAlertmanager(t, hook, good), startAlertmanager(t, hook, good)
	am3 := startAlertmanager(t, hook, secretFile(t, "not-the-token"))

	lines := func() []string {
		b, _ := os.ReadFile(runs)
		return strings.Fields(strings.TrimSpace(string(b)))
	}
	labels := map[string]string{"alertname": "ClawdbotGatewayDown", "gateway": "main", "remediation": "restart", "via": "pair"}
	startsAt := time.Now().Add(-time.Minute).UTC()
	postAlert(t, am1, labels, startsAt, time.Time{})
	postAlert(t, am2, labels, startsAt, time.Time{})
	for end := time.Now().Add(20 * time.Second); len(lines()) == 0; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("no action:\n%s", e.log.String())
		}
	}
	time.Sleep(6 * time.Second) // both Alertmanagers, several repeat intervals
	if got := lines(); len(got) != 2 || got[1] != "pair" {
		t.Fatalf("actions run: %q, want exactly one", got)
	}
	r := e.scrape(t, "")
	dups, _ := r.Value("clawdbot_remediation_skipped_total", map[string]string{"reason": "duplicate"})
	t.Logf("HA pair: 1 action, %v duplicate deliveries skipped", dups)
	if dups < 2 {
		t.Errorf("duplicates skipped: %v, want the second Alertmanager and the repeats", dups)
	}

	// Resolved: no action.
	postAlert(t, am1, labels, startsAt, time.Now().UTC())
	postAlert(t, am2, labels, startsAt, time.Now().UTC())
	for end := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if v, _ := e.scrape(t, "").Value("clawdbot_remediation_skipped_total", map[string]string{"reason": "resolved"}); v >= 1 {
			break
		}
		if time.Now().After(end) {
			t.Fatal("no resolved notification arrived")
		}
	}

	// The wrong token: refused, and never an action.
	wrong := map[string]string{"alertname": "ClawdbotGatewayDown", "gateway": "main", "remediation": "restart", "via": "wrongtoken"}
	postAlert(t, am3, wrong, time.Now().UTC(), time.Time{})
	for end := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if v, _ := e.scrape(t, "").Value("clawdbot_remediation_webhook_requests_total", map[string]string{"code": "401"}); v >= 2 {
			t.Logf("wrong token refused %v times", v)
			break
		}
		if time.Now().After(end) {
			t.Fatal("the wrong-token Alertmanager was not refused (twice)")
		}
	}
	if got := lines(); len(got) != 2 {
		t.Errorf("actions after resolution and wrong-token deliveries: %q", got)
	}
}
