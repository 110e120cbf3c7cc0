//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// system is the whole loop on loopback: a real clawdbot gateway under a
// supervisor, the exporter with remediation, a real Prometheus with the
// rendered rules and a real Alertmanager, with the configs from deploy/local.
type system struct {
	g        *Gateway
	e        *Exporter
	prom, am string
	timings  [][2]string
}

// expand fills a deploy/local template.
func expand(t *testing.T, name string, vars map[string]string, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "deploy", "local", name))
	if err != nil {
		t.Fatal(err)
	}
	out := os.Expand(string(b), func(k string) string {
		v, ok := vars[k]
		if !ok {
			t.Fatalf("%s: no value for ${%s}", name, k)
		}
		return v
	})
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func startSystem(t *testing.T) *system {
	t.Helper()
	promBin, err := exec.LookPath("prometheus")
	require(t, err == nil, "prometheus (apt-get install prometheus)")
	amBin, err := exec.LookPath("prometheus-alertmanager")
	require(t, err == nil, "alertmanager (apt-get install prometheus-alertmanager)")

	s := &system{g: startGateway(t, "clawdbot", gatewayOpts{supervised: true})}
	dir := t.TempDir()
	token := secretFile(t, "system-webhook-token")
	exporterAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	amAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	promAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))

	// The exporter: deploy/local's config, with no warm-up and a short
	// cooldown so that a test can see several restarts.
	cfg := expand(t, "clawdbot_exporter.yml", map[string]string{
		"GATEWAY_CONFIG":  filepath.Join(s.g.Home, ".clawdbot", "clawdbot.json"),
		"WARMUP":          "0s",
		"COOLDOWN":        "1s",
		"RESTART_COMMAND": filepath.Join(root, "deploy", "local", "restart-gateway.sh") + ", " + s.g.Home,
	}, dir)
	env := []string{"HOME=" + s.g.Home, "TMPDIR=" + filepath.Join(s.g.Home, "tmp")}
	s.e = startExporterAt(t, exporterAddr, env, "--config.file", cfg, "--remediation.token-file", token)

	// The rules, with durations short enough for a test.
	rulesDir := filepath.Join(dir, "rules")
	_ = os.MkdirAll(rulesDir, 0o755)
	for name, content := range renderMixin(t, `{_config+:: {gatewayDownFor: "3s", gatewayWarmupSeconds: 3, lockStaleFor: "2s", remediationBreakerOpenFor: "1s"}}`) {
		if strings.HasPrefix(name, "alerts/") {
			if err := os.WriteFile(filepath.Join(rulesDir, filepath.Base(name)), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	promCfg := expand(t, "prometheus.yml", map[string]string{"SCRAPE_INTERVAL": "1s", "RULES_DIR": rulesDir,
		"ALERTMANAGER_ADDR": amAddr, "EXPORTER_ADDR": exporterAddr}, dir)
	amCfg := expand(t, "alertmanager.yml", map[string]string{"GROUP_WAIT": "0s", "GROUP_INTERVAL": "1s",
		"REPEAT_INTERVAL": "2s", "EXPORTER_ADDR": exporterAddr, "TOKEN_FILE": token}, dir)

	run := func(name string, args ...string) {
		cmd := exec.Command(name, args...)
		log := &syncBuffer{}
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	}
	run(amBin, "--config.file="+amCfg, "--storage.path="+filepath.Join(dir, "am"), "--web.listen-address="+amAddr, "--cluster.listen-address=")
	run(promBin, "--config.file="+promCfg, "--storage.tsdb.path="+filepath.Join(dir, "prom"), "--web.listen-address="+promAddr, "--log.level=warn")
	s.prom, s.am = "http://"+promAddr, "http://"+amAddr
	s.waitFor(t, "Prometheus to see the gateway up", time.Minute, func() bool { return s.value(t, `clawdbot_up{job="clawdbot"}`) == 1 })
	return s
}

// value is the single value of a PromQL query, -1 when empty.
func (s *system) value(t *testing.T, q string) float64 {
	resp, err := http.Get(s.prom + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var r struct {
		Data struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if json.NewDecoder(resp.Body).Decode(&r) != nil || len(r.Data.Result) == 0 {
		return -1
	}
	var v float64
	_, _ = fmt.Sscan(fmt.Sprint(r.Data.Result[0].Value[1]), &v)
	return v
}

// firing lists the names of the alerts firing in Prometheus.
func (s *system) firing(t *testing.T) map[string]bool {
	out := map[string]bool{}
	resp, err := http.Get(s.prom + "/api/v1/alerts")
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	var r struct {
		Data struct {
			Alerts []struct {
				Labels map[string]string `json:"labels"`
				State  string            `json:"state"`
			} `json:"alerts"`
		} `json:"data"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&r)
	for _, a := range r.Data.Alerts {
		if a.State == "firing" {
			out[a.Labels["alertname"]] = true
		}
	}
	return out
}

func (s *system) waitFor(t *testing.T, what string, limit time.Duration, ok func() bool) time.Duration {
	t.Helper()
	begin := time.Now()
	for !ok() {
		if time.Since(begin) > limit {
			t.Fatalf("no %s after %v; firing: %v\nexporter log:\n%s", what, limit, s.firing(t), tail(s.e.log.String(), 40))
		}
		time.Sleep(100 * time.Millisecond)
	}
	return time.Since(begin)
}

func (s *system) record(what string, d time.Duration) {
	s.timings = append(s.timings, [2]string{what, fmt.Sprintf("%.1f s", d.Seconds())})
}

func (s *system) remediation(t *testing.T, result string) float64 {
	v, _ := s.e.scrape(t, "").Value("clawdbot_remediation_actions_total", map[string]string{"result": result})
	return v
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// screenshot saves the exporter's status page as a PNG with headless
// Chromium, into $E2E_SCREENSHOT_DIR (the README's pictures) or a temporary
// directory, and checks the page said what it should.
func screenshot(t *testing.T, e *Exporter, name, mustShow string) {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	require(t, err == nil, "chromium (apt-get install chromium)")
	dir := os.Getenv("E2E_SCREENSHOT_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	resp, err := http.Get("http://" + e.Addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), mustShow) {
		t.Errorf("status page lacks %q", mustShow)
	}
	out := filepath.Join(dir, name)
	cmd := exec.Command(bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--no-first-run", "--disable-component-update", "--disable-sync", "--user-data-dir="+t.TempDir(),
		"--hide-scrollbars", "--window-size=1280,1500", "--screenshot="+out, "http://"+e.Addr+"/")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chromium: %v\n%s", err, b)
	}
	st, err := os.Stat(out)
	if err != nil || st.Size() < 10000 {
		t.Fatalf("screenshot %s: %v (%d bytes)", out, err, st.Size())
	}
	t.Logf("screenshot %s (%d KiB)", out, st.Size()>>10)
}

// TestSystem: steady state; a frozen gateway detected, restarted through
// Alertmanager and the webhook, and resolved; a killed gateway's stale lock
// cleaned and the gateway restarted without the lock wait; a restart storm
// stopped by the circuit breaker; all the while the exporter serves /metrics
// and its memory stays flat. Prints the timings.
func TestSystem(t *testing.T) {
	s := startSystem(t)
	g, e := s.g, s.e

	// Nothing is lost: scrape all the time.
	var scrapes, failures atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(250 * time.Millisecond):
			}
			scrapes.Add(1)
			resp, err := http.Get("http://" + e.Addr + "/metrics")
			if err != nil {
				failures.Add(1)
				continue
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				failures.Add(1)
			}
		}
	}()
	heap := func() float64 {
		v, _ := e.scrape(t, "").Value("go_memstats_heap_inuse_bytes", nil)
		return v
	}

	// 1. Steady state.
	time.Sleep(4 * time.Second) // several evaluations
	if f := s.firing(t); f["ClawdbotGatewayDown"] || f["ClawdbotLockStale"] {
		t.Fatalf("alerts firing in steady state: %v", f)
	}
	heapStart := heap()
	screenshot(t, e, "status-up.png", "UP")

	// 2. Frozen: detected, restarted, resolved.
	frozen := time.Now()
	if err := syscall.Kill(g.GatewayPid(t), syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	s.record("frozen: probe says timeout", s.waitFor(t, "clawdbot_up 0", time.Minute, func() bool {
		return s.value(t, `clawdbot_probe_failing{reason="timeout"}`) == 1
	}))
	s.record("frozen: ClawdbotGatewayDown firing", time.Since(frozen)+s.waitFor(t, "ClawdbotGatewayDown firing", time.Minute, func() bool {
		return s.firing(t)["ClawdbotGatewayDown"]
	}))
	screenshot(t, e, "status-down.png", "DOWN")
	s.waitFor(t, "the remediation to restart the gateway", 2*time.Minute, func() bool { return s.remediation(t, "recovered") >= 1 })
	s.record("frozen: verified up again (from freeze)", time.Since(frozen))
	recovery := histogramSum(e.scrape(t, ""), "clawdbot_remediation_recovery_seconds")
	s.record("frozen: action start to verified up", time.Duration(recovery*float64(time.Second)))
	s.waitFor(t, "ClawdbotGatewayDown to resolve", 2*time.Minute, func() bool { return !s.firing(t)["ClawdbotGatewayDown"] })
	s.record("frozen: alert resolved (from freeze)", time.Since(frozen))
	screenshot(t, e, "status-remediated.png", "recovered")

	// 3. Killed: the lock stays with a dead owner; the alert fires; the
	// remediation removes the lock and starts the gateway.
	if err := os.WriteFile(filepath.Join(g.Home, "manual"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	if err := syscall.Kill(g.GatewayPid(t), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	s.record("killed: ClawdbotLockStale firing", s.waitFor(t, "ClawdbotLockStale", time.Minute, func() bool { return s.firing(t)["ClawdbotLockStale"] }))
	s.waitFor(t, "the second recovery", 2*time.Minute, func() bool { return s.remediation(t, "recovered") >= 2 })
	s.record("killed: lock removed, gateway up (from kill)", time.Since(killed))
	if strings.Contains(g.Log(), "lock timeout") || strings.Contains(g.Log(), "already running") {
		t.Errorf("the restarted gateway waited for the lock")
	}
	if !strings.Contains(e.log.String(), "remediation removed stale lock") {
		t.Errorf("no stale lock removal in the exporter's log")
	}
	s.waitFor(t, "ClawdbotLockStale to resolve", time.Minute, func() bool { return !s.firing(t)["ClawdbotLockStale"] })

	// 4. A restart storm: every start crashes after a few seconds. The
	// breaker allows 3 restarts an hour, then holds the rest back.
	if err := os.WriteFile(filepath.Join(g.Home, "crash-after"), []byte("6"), 0o644); err != nil {
		t.Fatal(err)
	}
	storm := time.Now()
	_ = syscall.Kill(g.GatewayPid(t), syscall.SIGKILL)
	s.record("storm: breaker open (from first crash)", s.waitFor(t, "the breaker to open", 4*time.Minute, func() bool {
		v, _ := e.scrape(t, "").Value("clawdbot_remediation_breaker_open", nil)
		return v == 1
	}))
	s.record("storm: ClawdbotRemediationBreakerOpen firing (from first crash)", time.Since(storm)+s.waitFor(t, "ClawdbotRemediationBreakerOpen", time.Minute, func() bool {
		return s.firing(t)["ClawdbotRemediationBreakerOpen"]
	}))
	r := e.scrape(t, "")
	actions := 0.0
	for _, res := range []string{"recovered", "not_recovered", "error"} {
		v, _ := r.Value("clawdbot_remediation_actions_total", map[string]string{"result": res})
		actions += v
	}
	time.Sleep(8 * time.Second) // alerts keep coming: nothing more happens
	r = e.scrape(t, "")
	after := 0.0
	for _, res := range []string{"recovered", "not_recovered", "error"} {
		v, _ := r.Value("clawdbot_remediation_actions_total", map[string]string{"result": res})
		after += v
	}
	held, _ := r.Value("clawdbot_remediation_skipped_total", map[string]string{"reason": "breaker"})
	// The breaker counts every action of its window (3 an hour): the two
	// restarts above and the storm's first. The storm's next crash is held.
	t.Logf("restart storm: %v actions in the hour, breaker held back %v deliveries", after, held)
	if after != actions || after != 3 || held < 1 {
		t.Errorf("actions %v then %v (want 3: the breaker's limit for the hour), held back %v", actions, after, held)
	}

	// 5. Nothing lost.
	close(stop)
	<-done
	heapEnd := heap()
	t.Logf("exporter: %d scrapes during the run, %d failed; heap in use %.1f MiB -> %.1f MiB",
		scrapes.Load(), failures.Load(), heapStart/(1<<20), heapEnd/(1<<20))
	if failures.Load() > 0 {
		t.Errorf("%d of %d scrapes failed", failures.Load(), scrapes.Load())
	}
	if heapEnd > heapStart+16<<20 {
		t.Errorf("exporter heap grew from %.1f to %.1f MiB", heapStart/(1<<20), heapEnd/(1<<20))
	}

	var b strings.Builder
	b.WriteString("\n| what | time |\n|---|---|\n")
	for _, row := range s.timings {
		fmt.Fprintf(&b, "| %s | %s |\n", row[0], row[1])
	}
	fmt.Print(b.String())
	t.Log("timings:" + b.String())
}
