// Package mixin holds the monitoring mixin (jsonnet) and its tests: the
// rendered files are fresh, the sources formatted, the alerts follow the
// conventions mixtool lint checks, and every metric a rule or a dashboard
// queries is one the exporter exposes.
package mixin

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-jsonnet"
	"github.com/google/go-jsonnet/formatter"
	"gopkg.in/yaml.v3"

	"github.com/clawdbot-exporter/clawdbot_exporter/internal/testutil/mixinrender"
)

// render evaluates the mixin, with overrides merged into it (a jsonnet
// object, "" for none), into path -> file content as `make mixin` writes.
func render(t *testing.T, overrides string) map[string]string {
	t.Helper()
	return mixinrender.Render(t, "..", overrides)
}

func TestMixinRenderedFilesAreFresh(t *testing.T) {
	files := render(t, "")
	for path, want := range files {
		got, err := os.ReadFile(filepath.Join("..", path))
		if err != nil {
			t.Errorf("%s: %v; run make mixin", path, err)
			continue
		}
		if string(got) != want {
			t.Errorf("%s differs from a fresh render of mixin/: run make mixin", path)
		}
	}
	for _, pattern := range []string{"../alerts/*.yaml", "../grafana/*.json"} {
		existing, _ := filepath.Glob(pattern)
		for _, p := range existing {
			if _, ok := files[strings.TrimPrefix(p, "../")]; !ok {
				t.Errorf("%s is not rendered from mixin/ any more: remove it", p)
			}
		}
	}
}

func TestMixinJsonnetFormatted(t *testing.T) {
	n := 0
	err := filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if ext := filepath.Ext(path); ext != ".libsonnet" && ext != ".jsonnet" {
			return nil
		}
		n++
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		formatted, err := formatter.Format(path, string(src), formatter.DefaultOptions())
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if formatted != string(src) {
			t.Errorf("jsonnetfmt would change mixin/%s: run make mixin", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("no jsonnet sources found")
	}
}

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []rule `yaml:"rules"`
	} `yaml:"groups"`
}

type rule struct {
	Alert       string            `yaml:"alert"`
	Record      string            `yaml:"record"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

func parseRules(t *testing.T, content string) []rule {
	t.Helper()
	var f ruleFile
	if err := yaml.Unmarshal([]byte(content), &f); err != nil {
		t.Fatal(err)
	}
	var out []rule
	for _, g := range f.Groups {
		if len(g.Rules) == 0 {
			t.Errorf("group %s has no rules", g.Name)
		}
		out = append(out, g.Rules...)
	}
	return out
}

// restartable are the alerts a restart of the gateway can fix: the only
// ones that may carry the remediation label.
var restartable = []string{"ClawdbotGatewayDown", "ClawdbotGatewayUnhealthy", "ClawdbotGatewayStartingTooLong"}

const runbookPrefix = "https://github.com/clawdbot-exporter/clawdbot_exporter/blob/main/mixin/runbook.md#"

// remediationAlerts watch the remediation webhook itself; they are rendered
// by default and need a person, never a restart.
var remediationAlerts = []string{"ClawdbotRemediationBreakerOpen", "ClawdbotRemediationFailing", "ClawdbotRemediationNeedsPerson", "ClawdbotRemediationTooFrequent"}

// TestAlertConventions checks what mixtool lint would, on the rendered
// alerts.
func TestAlertConventions(t *testing.T) {
	all := render(t, "")
	alerts := parseRules(t, all["alerts/clawdbot-alerts.yaml"])
	runbook, err := os.ReadFile("runbook.md")
	if err != nil {
		t.Fatal(err)
	}
	headings := map[string]bool{}
	for _, l := range strings.Split(string(runbook), "\n") {
		if h, ok := strings.CutPrefix(l, "## "); ok {
			headings[strings.TrimSpace(h)] = true
		}
	}
	tested := testedAlerts(t)
	name := regexp.MustCompile(`^Clawdbot[A-Z][a-zA-Z0-9]*$`)
	seen := map[string]bool{}
	var withRemediation []string
	for _, a := range alerts {
		if a.Alert == "" {
			t.Errorf("a recording rule %q in the alerts file", a.Record)
			continue
		}
		if seen[a.Alert] {
			t.Errorf("%s: defined twice", a.Alert)
		}
		seen[a.Alert] = true
		if !name.MatchString(a.Alert) {
			t.Errorf("%s: name is not CamelCase with the prefix Clawdbot", a.Alert)
		}
		if s := a.Labels["severity"]; s != "critical" && s != "warning" && s != "info" {
			t.Errorf("%s: severity %q", a.Alert, s)
		}
		for k := range a.Labels {
			if k != "severity" && k != "remediation" {
				t.Errorf("%s: unexpected label %s", a.Alert, k)
			}
		}
		if v, ok := a.Labels["remediation"]; ok {
			if v != "restart" {
				t.Errorf("%s: remediation=%q", a.Alert, v)
			}
			withRemediation = append(withRemediation, a.Alert)
		}
		sum := a.Annotations["summary"]
		if sum == "" || strings.Contains(sum, "{{") || !strings.HasSuffix(sum, ".") {
			t.Errorf("%s: summary %q must be a static sentence ending with a period", a.Alert, sum)
		}
		if d := a.Annotations["description"]; !strings.Contains(d, "{{") || !strings.HasSuffix(d, ".") {
			t.Errorf("%s: description %q must be templated and end with a period", a.Alert, d)
		}
		if u := a.Annotations["runbook_url"]; u != runbookPrefix+strings.ToLower(a.Alert) {
			t.Errorf("%s: runbook_url %q", a.Alert, u)
		}
		if !headings[a.Alert] {
			t.Errorf("%s: no section \"## %s\" in runbook.md", a.Alert, a.Alert)
		}
		for k := range a.Annotations {
			if k != "summary" && k != "description" && k != "runbook_url" {
				t.Errorf("%s: unexpected annotation %s", a.Alert, k)
			}
		}
		if !tested[a.Alert] {
			t.Errorf("%s: no promtool test in mixin/tests/ expects it to fire", a.Alert)
		}
	}
	sort.Strings(withRemediation)
	want := slices.Clone(restartable)
	sort.Strings(want)
	if !slices.Equal(withRemediation, want) {
		t.Errorf("alerts with the remediation label: %v, want exactly %v", withRemediation, want)
	}
	for h := range headings {
		if strings.HasPrefix(h, "Clawdbot") && !seen[h] {
			t.Errorf("runbook.md has a section for %s, which is no alert", h)
		}
	}

	// The remediation alerts are on by default, and remediationAlertsEnabled
	// false leaves out exactly them.
	for _, r := range remediationAlerts {
		if !seen[r] {
			t.Errorf("%s not rendered by default", r)
		}
	}
	var left []string
	for _, a := range parseRules(t, render(t, "{_config+:: {remediationAlertsEnabled: false}}")["alerts/clawdbot-alerts.yaml"]) {
		if strings.HasPrefix(a.Alert, "ClawdbotRemediation") {
			t.Errorf("%s rendered although remediationAlertsEnabled is false", a.Alert)
		}
		left = append(left, a.Alert)
	}
	if len(left)+len(remediationAlerts) != len(alerts) {
		t.Errorf("remediationAlertsEnabled false renders %d alerts, want %d", len(left), len(alerts)-len(remediationAlerts))
	}

	// level:metric:operations (prometheus.io naming practice): the labels
	// kept, an exporter metric (or what it counts), the operations.
	record := regexp.MustCompile(`^[a-z]+(_[a-z]+)*:clawdbot_[a-z0-9_]+:[a-z0-9_]+$`)
	for _, r := range parseRules(t, all["alerts/clawdbot-rules.yaml"]) {
		if !record.MatchString(r.Record) || r.Alert != "" {
			t.Errorf("recording rule %q: want level:clawdbot_<metric>:<operations>", r.Record)
		}
	}
}

// TestRecordingRulesUsed: every recording rule is used by an alert, another
// rule or a dashboard.
func TestRecordingRulesUsed(t *testing.T) {
	files := render(t, "")
	var uses []string
	for _, f := range []string{"alerts/clawdbot-alerts.yaml", "alerts/clawdbot-rules.yaml"} {
		for _, r := range parseRules(t, files[f]) {
			uses = append(uses, r.Expr, r.Annotations["description"])
		}
	}
	for path, content := range files {
		if strings.HasPrefix(path, "grafana/") {
			uses = append(uses, content)
		}
	}
	all := strings.Join(uses, "\n")
	for _, r := range parseRules(t, files["alerts/clawdbot-rules.yaml"]) {
		if !strings.Contains(all, r.Record) {
			t.Errorf("recording rule %s is used by no alert, rule or dashboard", r.Record)
		}
	}
}

// TestHealthyScenarioCoversEveryAlert: tests/healthy.yaml (a healthy gateway
// for hours, scripts/gen-healthy-test.py) expects every alert silent.
func TestHealthyScenarioCoversEveryAlert(t *testing.T) {
	quiet := map[string]bool{}
	for _, a := range alertRuleTests(t, "tests/healthy.yaml") {
		if len(a.ExpAlerts) > 0 {
			t.Errorf("tests/healthy.yaml expects %s to fire", a.Alertname)
		}
		quiet[a.Alertname] = true
	}
	for _, a := range parseRules(t, render(t, "")["alerts/clawdbot-alerts.yaml"]) {
		if !quiet[a.Alert] {
			t.Errorf("tests/healthy.yaml does not check %s: run scripts/gen-healthy-test.py", a.Alert)
		}
	}
}

// alertRuleTest is one alert_rule_test of a promtool test file.
type alertRuleTest struct {
	Alertname string `yaml:"alertname"`
	ExpAlerts []any  `yaml:"exp_alerts"`
}

// alertRuleTests reads every alert_rule_test of a promtool test file.
func alertRuleTests(t *testing.T, path string) []alertRuleTest {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Tests []struct {
			AlertRuleTest []alertRuleTest `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var out []alertRuleTest
	for _, tc := range doc.Tests {
		out = append(out, tc.AlertRuleTest...)
	}
	return out
}

// testedAlerts are the alerts some promtool test expects to fire.
func testedAlerts(t *testing.T) map[string]bool {
	t.Helper()
	files, _ := filepath.Glob("tests/*.yaml")
	out := map[string]bool{}
	for _, f := range files {
		for _, a := range alertRuleTests(t, f) {
			if len(a.ExpAlerts) > 0 {
				out[a.Alertname] = true
			}
		}
	}
	return out
}

// goldenFiles are the lists of the exporter's metric family names, each
// written by its package's own test (-update): the collectors' scrape, and
// the remediation webhook's registry.
var goldenFiles = []string{"../collector/testdata/metrics.golden", "../remediate/testdata/metrics.golden"}

// exposedMetrics is the exporter's metric family names, from the golden
// lists.
func exposedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, f := range goldenFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		names := strings.Fields(string(b))
		if len(names) == 0 {
			t.Fatalf("%s lists no names", f)
		}
		for _, l := range names {
			out[l] = true
		}
	}
	if len(out) < 20 {
		t.Fatalf("the golden files list only %d names", len(out))
	}
	return out
}

// histogramSeries are the suffixes of the series of a histogram (or
// summary) family: a query selects clawdbot_x_bucket of family clawdbot_x.
var histogramSeries = []string{"_bucket", "_sum", "_count"}

// exposedName reports whether the metric name n is a series of a family in
// exposed.
func exposedName(exposed map[string]bool, n string) bool {
	if exposed[n] {
		return true
	}
	for _, s := range histogramSeries {
		if base, ok := strings.CutSuffix(n, s); ok && exposed[base] {
			return true
		}
	}
	return false
}

var (
	promqlStrings   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|` + "`[^`]*`")
	promqlMatchers  = regexp.MustCompile(`\{[^{}]*\}`)
	promqlRanges    = regexp.MustCompile(`\[[^\[\]]*\]`)
	promqlLabelList = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)`)
	grafanaVars     = regexp.MustCompile(`\$\{[^}]*\}|\$__\w+|\$\w+|\[\[\w+\]\]`)
	promqlIdent     = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*(\s*\()?`)
	promqlKeywords  = map[string]bool{
		"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
		"and": true, "or": true, "unless": true, "bool": true, "offset": true, "inf": true, "nan": true, "Inf": true, "NaN": true,
	}
)

// metricNames are the metric names a PromQL expression (possibly with
// Grafana variables) selects.
func metricNames(expr string) []string {
	s := grafanaVars.ReplaceAllString(expr, "1")
	s = promqlStrings.ReplaceAllString(s, `""`)
	s = promqlMatchers.ReplaceAllString(s, "{}")
	s = promqlRanges.ReplaceAllString(s, "")
	s = promqlLabelList.ReplaceAllString(s, " ")
	var out []string
	for _, m := range promqlIdent.FindAllStringSubmatchIndex(s, -1) {
		if m[0] > 0 && strings.ContainsRune("0123456789.", rune(s[m[0]-1])) {
			continue // the exponent or unit of a number: 1e9, 5m
		}
		if m[2] >= 0 { // a function call
			continue
		}
		name := s[m[0]:m[1]]
		if promqlKeywords[name] {
			continue
		}
		out = append(out, name)
	}
	return out
}

func TestMetricNamesUsedExist(t *testing.T) {
	exposed := exposedMetrics(t)
	recorded := map[string]bool{}
	files := render(t, "")
	for _, r := range parseRules(t, files["alerts/clawdbot-rules.yaml"]) {
		recorded[r.Record] = true
	}
	// up is Prometheus' own per target.
	known := func(n string) bool { return exposedName(exposed, n) || recorded[n] || n == "up" }
	check := func(where, expr string) {
		names := metricNames(expr)
		if len(names) == 0 {
			t.Errorf("%s: no metric name found in %q", where, expr)
		}
		for _, n := range names {
			if !known(n) {
				t.Errorf("%s uses %s, which the exporter does not expose (collector/ and remediate/testdata/metrics.golden) and no rule records", where, n)
			}
		}
	}
	for _, f := range []string{"alerts/clawdbot-alerts.yaml", "alerts/clawdbot-rules.yaml"} {
		for _, r := range parseRules(t, files[f]) {
			check(r.Alert+r.Record, r.Expr)
		}
	}
	dashboards, _ := filepath.Glob("../grafana/*.json")
	for _, d := range dashboards {
		b, err := os.ReadFile(d)
		if err != nil {
			t.Fatal(err)
		}
		var doc any
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatalf("%s: %v", d, err)
		}
		for _, q := range dashboardQueries(doc) {
			check(filepath.Base(d)+": "+q.where, q.expr)
		}
	}
}

type query struct{ where, expr string }

var labelValues = regexp.MustCompile(`^\s*label_values\((.*),\s*\w+\s*\)\s*$`)

// dashboardQueries finds every panel target's expr and every templating
// query in a dashboard, in rows too.
func dashboardQueries(doc any) []query {
	var out []query
	var walk func(v any, where string)
	walk = func(v any, where string) {
		switch v := v.(type) {
		case map[string]any:
			if title, ok := v["title"].(string); ok {
				where = title
			}
			if targets, ok := v["targets"].([]any); ok {
				for _, tg := range targets {
					if m, ok := tg.(map[string]any); ok {
						if e, ok := m["expr"].(string); ok && e != "" {
							out = append(out, query{where, e})
						}
					}
				}
			}
			if tpl, ok := v["templating"].(map[string]any); ok {
				list, _ := tpl["list"].([]any)
				for _, it := range list {
					m, _ := it.(map[string]any)
					if m == nil || m["type"] != "query" {
						continue
					}
					q, _ := m["query"].(string)
					if qm, ok := m["query"].(map[string]any); ok {
						q, _ = qm["query"].(string)
					}
					if lv := labelValues.FindStringSubmatch(q); lv != nil {
						out = append(out, query{fmt.Sprintf("variable %v", m["name"]), lv[1]})
					}
				}
			}
			for k, c := range v {
				if k != "templating" && k != "targets" {
					walk(c, where)
				}
			}
		case []any:
			for _, c := range v {
				walk(c, where)
			}
		}
	}
	walk(doc, "dashboard")
	return out
}

func TestMetricNamesParser(t *testing.T) {
	for expr, want := range map[string][]string{
		`sum by (job, gateway) (rate(clawdbot_probe_failures_total{job=~"$job", reason!="x"}[$__rate_interval])) / ignoring (kind) foo:bar:baz`: {"clawdbot_probe_failures_total", "foo:bar:baz"},
		`histogram_quantile(0.9, x_bucket) > 1e9 and on (a) absent(up{job="clawdbot"}) unless b offset 5m`:                                      {"x_bucket", "up", "b"},
		`label_replace(clawdbot_up, "dst", "$1", "src", "(.*)") * time()`:                                                                       {"clawdbot_up"},
	} {
		if got := metricNames(expr); !slices.Equal(got, want) {
			t.Errorf("metricNames(%q) = %v, want %v", expr, got, want)
		}
	}
}

// TestProbeReasonsClassified: every reason the probe reports (the Reason
// constants of gateway/prober/probe.go) is either one a restart can fix, one that
// rejects the exporter (never down, never restarted), or starting/unhealthy,
// which have alerts of their own; and no reason is both.
func TestProbeReasonsClassified(t *testing.T) {
	src, err := os.ReadFile("../gateway/prober/probe.go")
	if err != nil {
		t.Fatal(err)
	}
	var reasons []string
	for _, m := range regexp.MustCompile(`(?m)^\s*Reason\w+\s+Reason\s*=\s*"(\w+)"`).FindAllStringSubmatch(string(src), -1) {
		reasons = append(reasons, m[1])
	}
	if len(reasons) < 10 {
		t.Fatalf("found only %d Reason constants in gateway/prober/probe.go: %v", len(reasons), reasons)
	}
	vm := jsonnet.MakeVM()
	vm.Importer(&jsonnet.FileImporter{JPaths: []string{"."}})
	out, err := vm.EvaluateAnonymousSnippet("reasons.jsonnet", `local c = (import "mixin.libsonnet")._config; {restartable: c.gatewayRestartableReasons, rejected: c.gatewayRejectedReasons}`)
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct{ Restartable, Rejected []string }
	if err := json.Unmarshal([]byte(out), &cfg); err != nil {
		t.Fatal(err)
	}
	class := map[string]string{"starting": "own alert", "unhealthy": "own alert"}
	for _, l := range []struct {
		name string
		list []string
	}{{"restartable", cfg.Restartable}, {"rejected", cfg.Rejected}} {
		for _, r := range l.list {
			if c, dup := class[r]; dup {
				t.Errorf("reason %q is both %s and %s", r, c, l.name)
			}
			class[r] = l.name
		}
	}
	for _, r := range reasons {
		if class[r] == "" {
			t.Errorf("probe reason %q is in neither gatewayRestartableReasons nor gatewayRejectedReasons (mixin/config.libsonnet)", r)
		}
	}
	// A throttled gateway answers: never down, never restarted.
	for _, r := range []string{"auth", "hello_timeout", "protocol", "tls", "upgrade"} {
		if class[r] != "rejected" {
			t.Errorf("reason %q: %s, want rejected", r, class[r])
		}
	}
}
