//go:build e2e

package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gt "github.com/clawdbot-exporter/clawdbot_exporter/gateway/gatewaytest"
	"github.com/clawdbot-exporter/clawdbot_exporter/internal/testutil"
)

// TestFleetFileSD is the multi-target pattern end to end (issue 16): a
// real Prometheus discovers 53 gateways through file_sd (3 real ones:
// clawdbot, openclaw, openclaw with TLS; 50 fakes, 20 of them with faults)
// and scrapes one exporter's /probe for each, relabelling the target into
// the URL. For a minute every target's clawdbot_up is what its gateway
// deserves, no scrape fails or runs past its deadline, and the series
// carry the gateway label from service discovery.
func TestFleetFileSD(t *testing.T) {
	promBin, err := exec.LookPath("prometheus")
	require(t, err == nil, "prometheus (apt-get install prometheus)")

	type target struct {
		addr, gateway, module string
		up                    bool
	}
	var targets []target
	dir := t.TempDir()
	modules := map[string]string{}

	// The real gateways, one module each (each has its own token).
	claw := startGateway(t, "clawdbot", gatewayOpts{})
	oc := startGateway(t, "openclaw", gatewayOpts{})
	ocTLS := startGateway(t, "openclaw", gatewayOpts{tls: true})
	fp := certFingerprint(t, filepath.Join(ocTLS.Home, ".openclaw", "gateway", "tls", "gateway-cert.pem"))
	modules["clawdbot"] = "token_file: " + secretFile(t, claw.Token)
	modules["openclaw"] = "token_file: " + secretFile(t, oc.Token)
	modules["openclaw-tls"] = "token_file: " + secretFile(t, ocTLS.Token) + "\n    tls_fingerprint: " + fp
	targets = append(targets,
		target{fmt.Sprintf("127.0.0.1:%d", claw.Port), "clawdbot", "clawdbot", true},
		target{fmt.Sprintf("ws://127.0.0.1:%d", oc.Port), "openclaw", "openclaw", true},
		target{fmt.Sprintf("wss://127.0.0.1:%d", ocTLS.Port), "openclaw-tls", "openclaw-tls", true},
	)

	// 50 fakes in this process: every tenth refuses the token, never
	// answers health, has its port closed or says ok:false.
	modules["fake"] = "token_file: " + secretFile(t, gt.DefaultToken)
	for i := range 50 {
		opts, up := gt.Options{Protocol: 3 + i%2}, true
		closed := false
		switch i % 10 {
		case 1:
			opts.Token, up = "someone-else", false
		case 2:
			opts.Fault, up = gt.FaultStallHealth, false
		case 3:
			closed, up = true, false
		case 4:
			opts.Fault, up = gt.FaultHealthNotOK, false
		}
		var addr string
		if closed {
			addr = testutil.RefusedAddr(t)
		} else {
			srv := gt.New(opts)
			t.Cleanup(srv.Close)
			addr = srv.Addr()
		}
		targets = append(targets, target{addr, fmt.Sprintf("fake-%02d", i), "fake", up})
	}

	var cfg strings.Builder
	cfg.WriteString("modules:\n")
	for name, body := range modules {
		fmt.Fprintf(&cfg, "  %s:\n    %s\n", name, body)
	}
	cfgPath := filepath.Join(dir, "exporter.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	// A central prober: no local gateway, so no collector of /metrics.
	e := startExporter(t, nil, "--config.file="+cfgPath, "--collector.disable-defaults", "--probe.timeout=5s")

	// The SSRF guard through the binary: beyond loopback, refused.
	if code := get(t, "http://"+e.Addr+"/probe?module=fake&target=192.0.2.1:18789"); code != http.StatusForbidden {
		t.Errorf("a target outside allowed_targets answered %d, want 403", code)
	}

	// file_sd: the target, its gateway name and module as labels.
	type group struct {
		Targets []string          `json:"targets"`
		Labels  map[string]string `json:"labels"`
	}
	var groups []group
	for _, tg := range targets {
		groups = append(groups, group{Targets: []string{tg.addr}, Labels: map[string]string{
			"gateway": tg.gateway, "module": tg.module, "expected_up": map[bool]string{true: "1", false: "0"}[tg.up]}})
	}
	sd, _ := json.Marshal(groups)
	if err := os.WriteFile(filepath.Join(dir, "gateways.json"), sd, 0o644); err != nil {
		t.Fatal(err)
	}
	// The README's relabelling, with a 2 s interval.
	promCfg := fmt.Sprintf(`global:
  scrape_interval: 2s
  scrape_timeout: 2s
scrape_configs:
  - job_name: clawdbot-probe
    metrics_path: /probe
    file_sd_configs:
      - files: [%q]
        refresh_interval: 1s
    relabel_configs:
      - source_labels: [__address__]
        target_label: __param_target
      - source_labels: [module]
        target_label: __param_module
      - source_labels: [__param_target]
        target_label: instance
      - target_label: __address__
        replacement: %q
`, filepath.Join(dir, "gateways.json"), e.Addr)
	prom := startPrometheus(t, promBin, dir, promCfg)
	query := prom.query

	n := len(targets)
	begin := time.Now()
	for {
		r, err := query(`up{job="clawdbot-probe"} == 1`)
		if err == nil && len(r) == n {
			break
		}
		if time.Since(begin) > time.Minute {
			down, _ := query(`up{job="clawdbot-probe"} == 0`)
			t.Fatalf("exporter log, lines above debug:\n%s\nprometheus log:\n%s\n%d of %d /probe targets up after a minute (%v); down: %s", aboveDebug(e.log.String()), tail(prom.log.String(), 30), len(r), n, err, down)
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("all %d /probe targets scraped after %v", n, time.Since(begin).Round(time.Millisecond))
	time.Sleep(time.Minute)

	checks := []struct {
		what  string
		query string
		want  int    // series
		why   string // lists the offenders when the count is off
	}{
		{"scrapes that failed or ran past the deadline in the last minute", `min_over_time(up{job="clawdbot-probe"}[55s]) == 0`, 0, ""},
		{"scrapes slower than the timeout", `max_over_time(scrape_duration_seconds{job="clawdbot-probe"}[55s]) >= 2`, 0, ""},
		{"targets with clawdbot_up", `clawdbot_up`, n, `up{job="clawdbot-probe"} unless on(instance) clawdbot_up`},
		{"expected up and up all minute", `min_over_time(clawdbot_up{expected_up="1"}[55s]) == 1`, n - 20, `min_over_time(clawdbot_up{expected_up="1"}[55s]) < 1`},
		{"expected down and down all minute", `max_over_time(clawdbot_up{expected_up="0"}[55s]) == 0`, 20, `max_over_time(clawdbot_up{expected_up="0"}[55s]) > 0`},
		{"series with an exported_gateway (relabelling clashed)", `{job="clawdbot-probe", exported_gateway!=""}`, 0, ""},
		{"the TLS gateway, openclaw, by its discovered name", `clawdbot_gateway_info{gateway="openclaw-tls", product="openclaw"}`, 1, `clawdbot_gateway_info`},
		{"the clawdbot gateway, by its discovered name", `clawdbot_gateway_info{gateway="clawdbot", product="clawdbot"}`, 1, `clawdbot_gateway_info`},
		{"refused logins", `clawdbot_probe_failing{reason="auth"} == 1`, 5, `clawdbot_probe_failing == 1`},
		{"timeouts", `clawdbot_probe_failing{reason="timeout"} == 1`, 5, `clawdbot_probe_failing == 1`},
		{"local-state series from /probe", `{job="clawdbot-probe", __name__=~"clawdbot_(lock|process|session_store|config)_.*"}`, 0, ""},
	}
	// The failures come last in the output, after the exporter's log, so
	// that a CI summary which shows only the tail still shows them.
	var failures []string
	for _, c := range checks {
		r, err := query(c.query)
		if err != nil {
			failures = append(failures, fmt.Sprintf("%s: %s: %v", c.what, c.query, err))
			continue
		}
		if len(r) != c.want {
			msg := fmt.Sprintf("%s: %d series, want %d: %s", c.what, len(r), c.want, r)
			if c.why != "" {
				w, _ := query(c.why)
				msg += fmt.Sprintf("\n    %s: %s", c.why, w)
			}
			failures = append(failures, msg)
		}
	}
	if slow, err := query(`topk(5, max_over_time(scrape_duration_seconds{job="clawdbot-probe"}[55s]))`); err == nil {
		t.Logf("slowest scrapes in the last minute: %s", slow)
	}
	// The exporter counted its probes and refused one.
	body := getBody(t, "http://"+e.Addr+"/metrics")
	for _, want := range []string{`clawdbot_exporter_probe_requests_total{module="fake",result="probed"}`, `clawdbot_exporter_probe_requests_total{module="fake",result="forbidden"} 1`} {
		if !strings.Contains(body, want) {
			failures = append(failures, "/metrics lacks "+want)
		}
	}
	if len(failures) > 0 {
		t.Logf("exporter log, lines above debug:\n%s\nits last lines:\n%s", aboveDebug(e.log.String()), tail(e.log.String(), 30))
		t.Logf("prometheus log:\n%s", tail(prom.log.String(), 30))
		for _, f := range failures {
			t.Error(f)
		}
	}
}

// aboveDebug keeps a log's lines at info level or higher: a fleet's debug
// log is thousands of lines.
func aboveDebug(log string) string {
	var keep []string
	for _, l := range strings.Split(log, "\n") {
		if l != "" && !strings.Contains(l, "level=DEBUG") {
			keep = append(keep, l)
		}
	}
	return tail(strings.Join(keep, "\n"), 60)
}

func certFingerprint(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("the TLS gateway wrote no certificate: %v", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM", path)
	}
	sum := sha256.Sum256(blk.Bytes)
	return hex.EncodeToString(sum[:])
}

func get(t *testing.T, u string) int {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func getBody(t *testing.T, u string) string {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
