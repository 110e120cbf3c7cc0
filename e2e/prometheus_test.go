//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/clawdbot-exporter/clawdbot_exporter/internal/testutil/mixinrender"
)

// noDataOnHealthyGateways are the panel queries (matched by a substring of
// the expression) that rightly return nothing while every gateway is
// healthy, with the reason. Everything else must return data. (The clawdbot
// gateway is restarted once below, so the restart panels have data too.)
var noDataOnHealthyGateways = map[string]string{
	"clawdbot_channel_enabled{": "clawdbot's channels report configured and running but no enabled field (README); the openclaw gateway has no channel",
	"clawdbot_channel_probe_ok": "the gateway has not probed its channels (absent until it does; health probes channels only when asked)",
	"clawdbot_plugins_":         "openclaw only, and the openclaw gateway runs with plugins disabled (the metrics are absent then)",
	"clawdbot_remediation_":     "these exporters run without remediation (its metrics exist only then); TestSystem drives the remediation row's metrics",
}

// TestPrometheusMixin: a real Prometheus scrapes exporters beside a real
// clawdbot and a real openclaw gateway and loads the rendered rules; every
// dashboard panel's query returns data; then the clawdbot gateway stops and
// ClawdbotGatewayDown fires.
func TestPrometheusMixin(t *testing.T) {
	promBin, err := exec.LookPath("prometheus")
	require(t, err == nil, "prometheus (apt-get install prometheus)")

	type gw struct {
		g *Gateway
		e *Exporter
	}
	// A cgroup memory limit at the root of a sysfs fixture, found whatever
	// cgroup the gateway runs in: the test machine's gateways have none.
	sysfs := t.TempDir()
	for path, v := range map[string]string{"fs/cgroup/memory.max": "4294967296\n", "fs/cgroup/memory/memory.limit_in_bytes": "4294967296\n"} {
		_ = os.MkdirAll(filepath.Join(sysfs, filepath.Dir(path)), 0o755)
		if err := os.WriteFile(filepath.Join(sysfs, path), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var gws []gw
	for _, product := range []string{"clawdbot", "openclaw"} {
		o := gatewayOpts{}
		if product == "clawdbot" {
			// A configured (disabled) telegram channel, for the channel
			// panels, as in TestClawdbotConfiguredChannel.
			o.extra = map[string]any{
				"plugins": map[string]any{"enabled": true, "allow": []string{"telegram"},
					"entries": map[string]any{"telegram": map[string]any{"enabled": true}}, "slots": map[string]any{"memory": "none"}},
				"channels": map[string]any{"telegram": map[string]any{"enabled": false, "botToken": "123456:e2e-fake"}},
			}
		}
		g := startGateway(t, product, o)
		if product == "clawdbot" {
			// A fresh gateway has no session store: give it the sessions
			// fixture, and restart it so that its health reports them.
			state := filepath.Join(g.Home, ".clawdbot")
			if out, err := exec.Command("cp", "-r", filepath.Join(root, "gateway", "sessionstore", "testdata", "state", "agents"), state).CombinedOutput(); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			g.Stop(t)
			g.Start(t)
		}
		env := []string{"HOME=" + g.Home, "TMPDIR=" + filepath.Join(g.Home, "tmp")}
		gws = append(gws, gw{g, startExporter(t, env, "--path.sysfs="+sysfs)})
	}

	// The rules with short durations, rendered like `make mixin` does.
	dir := t.TempDir()
	rules := renderMixin(t, `{_config+:: {gatewayDownFor: "5s", gatewayUnhealthyFor: "5s"}}`)
	var ruleFiles []string
	for _, name := range []string{"alerts/clawdbot-alerts.yaml", "alerts/clawdbot-rules.yaml"} {
		p := filepath.Join(dir, filepath.Base(name))
		if err := os.WriteFile(p, []byte(rules[name]), 0o644); err != nil {
			t.Fatal(err)
		}
		ruleFiles = append(ruleFiles, p)
	}
	var targets []string
	for _, x := range gws {
		targets = append(targets, fmt.Sprintf("%q", x.e.Addr))
	}
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files: [%q, %q]
scrape_configs:
  - job_name: clawdbot
    static_configs:
      - targets: [%s]
`, ruleFiles[0], ruleFiles[1], strings.Join(targets, ", "))
	prom := startPrometheus(t, promBin, dir, cfg)
	api, query := prom.API, prom.query
	waitFor := func(what string, limit time.Duration, cond func() bool) time.Duration {
		t.Helper()
		begin := time.Now()
		for time.Since(begin) < limit {
			if cond() {
				return time.Since(begin)
			}
			time.Sleep(250 * time.Millisecond)
		}
		t.Fatalf("%s: not within %v; prometheus log:\n%s", what, limit, prom.log.String())
		return 0
	}
	took := waitFor("both targets up, gateways up", time.Minute, func() bool {
		r, err := query(`up{job="clawdbot"} == 1`)
		g, _ := query(`clawdbot_up == 1`)
		return err == nil && len(r) == 2 && len(g) == 2
	})
	t.Logf("prometheus scrapes both exporters, gateways up, after %v", took.Round(time.Millisecond))
	// Enough samples for rates and changes over the windows used below.
	time.Sleep(12 * time.Second)

	dashboards, _ := filepath.Glob(filepath.Join(root, "grafana", "*.json"))
	require(t, len(dashboards) > 0, "rendered dashboards in grafana/")
	vars := strings.NewReplacer("$__rate_interval", "10s", "$__interval", "10s", "$__range", "5m",
		"${job}", ".*", "$job", ".*", "${instance}", ".*", "$instance", ".*", "${gateway}", ".*", "$gateway", ".*")
	panels, empty := 0, map[string]bool{}
	for _, d := range dashboards {
		b, err := os.ReadFile(d)
		if err != nil {
			t.Fatal(err)
		}
		var doc any
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatal(err)
		}
		for _, q := range panelQueries(doc) {
			panels++
			expr := vars.Replace(q.expr)
			res, err := query(expr)
			if err != nil {
				t.Errorf("%s: panel %q: %s: %v", filepath.Base(d), q.title, expr, err)
				continue
			}
			if len(res) > 0 {
				continue
			}
			excused := false
			for sub, why := range noDataOnHealthyGateways {
				if strings.Contains(q.expr, sub) {
					t.Logf("%s: panel %q has no data, as expected: %s", filepath.Base(d), q.title, why)
					excused, empty[sub] = true, true
				}
			}
			if !excused {
				t.Errorf("%s: panel %q returns no data: %s", filepath.Base(d), q.title, expr)
			}
		}
	}
	t.Logf("%d panel queries in %d dashboards", panels, len(dashboards))
	var unused []string
	for sub := range noDataOnHealthyGateways {
		if !empty[sub] {
			unused = append(unused, sub)
		}
	}
	sort.Strings(unused)
	if len(unused) > 0 {
		t.Logf("exceptions not needed this run (their panels had data): %v", unused)
	}

	// The clawdbot gateway stops: ClawdbotGatewayDown fires.
	stopped := time.Now()
	gws[0].g.Stop(t)
	var alert string
	took = waitFor("ClawdbotGatewayDown firing", 2*time.Minute, func() bool {
		resp, err := http.Get(api + "alerts")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var r struct {
			Data struct {
				Alerts []struct {
					Labels      map[string]string `json:"labels"`
					Annotations map[string]string `json:"annotations"`
					State       string            `json:"state"`
				} `json:"alerts"`
			} `json:"data"`
		}
		if json.NewDecoder(resp.Body).Decode(&r) != nil {
			return false
		}
		for _, a := range r.Data.Alerts {
			if a.Labels["alertname"] == "ClawdbotGatewayDown" && a.State == "firing" {
				if a.Labels["instance"] != gws[0].e.Addr || a.Labels["remediation"] != "restart" || a.Labels["severity"] != "critical" {
					t.Errorf("ClawdbotGatewayDown for the wrong gateway or without its labels: %v", a.Labels)
				}
				alert = fmt.Sprintf("%v: %s", a.Labels, a.Annotations["description"])
				return true
			}
		}
		return false
	})
	t.Logf("ClawdbotGatewayDown firing %v after the gateway stopped (for: 5s, scrape and evaluation every 1s): %s",
		time.Since(stopped).Round(time.Millisecond), alert)
	_ = took
	// The openclaw gateway, still up, has no down alert.
	if r, _ := query(fmt.Sprintf(`ALERTS{alertname="ClawdbotGatewayDown", instance=%q}`, gws[1].e.Addr)); len(r) != 0 {
		t.Errorf("ClawdbotGatewayDown for the gateway that is up: %s", r)
	}
}

// renderMixin renders the mixin with overrides merged into it, as `make
// mixin` does.
func renderMixin(t *testing.T, overrides string) map[string]string {
	t.Helper()
	return mixinrender.Render(t, root, overrides)
}

type panelQuery struct{ title, expr string }

// panelQueries finds every panel target's expr, in rows too.
func panelQueries(doc any) []panelQuery {
	var out []panelQuery
	var walk func(v any, title string)
	walk = func(v any, title string) {
		switch v := v.(type) {
		case map[string]any:
			if s, ok := v["title"].(string); ok {
				title = s
			}
			if targets, ok := v["targets"].([]any); ok {
				for _, tg := range targets {
					if m, ok := tg.(map[string]any); ok {
						if e, ok := m["expr"].(string); ok && e != "" {
							out = append(out, panelQuery{title, e})
						}
					}
				}
			}
			for k, c := range v {
				if k != "targets" && k != "templating" {
					walk(c, title)
				}
			}
		case []any:
			for _, c := range v {
				walk(c, title)
			}
		}
	}
	walk(doc, "")
	return out
}
