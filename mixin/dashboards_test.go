package mixin

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/clawdbot-exporter/clawdbot_exporter/internal/testutil"
)

// The rendered dashboards, checked in at the repository's root.
const dashGlob = "../grafana/*.json"

// dashVariables are the template variables every dashboard must have; every
// query is filtered by them.
var dashVariables = []string{"datasource", "job", "instance", "gateway"}

type dashDatasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type dashTarget struct {
	RefID      string          `json:"refId"`
	Expr       string          `json:"expr"`
	Datasource *dashDatasource `json:"datasource"`
}

type dashPanel struct {
	ID          int             `json:"id"`
	Type        string          `json:"type"`
	Title       string          `json:"title"`
	Description string          `json:"description"`
	Datasource  *dashDatasource `json:"datasource"`
	GridPos     *struct {
		X, Y, W, H int
	} `json:"gridPos"`
	FieldConfig struct {
		Defaults struct {
			Unit string `json:"unit"`
		} `json:"defaults"`
	} `json:"fieldConfig"`
	Targets []dashTarget `json:"targets"`
	// A collapsed row holds its panels.
	Panels []dashPanel `json:"panels"`
}

type dashVariable struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Query      json.RawMessage `json:"query"`
	Definition string          `json:"definition"`
	Datasource *dashDatasource `json:"datasource"`
}

type dashInput struct {
	Name     string `json:"name"`
	Type     string `json:"type"`
	PluginID string `json:"pluginId"`
}

type dashboard struct {
	Inputs   []dashInput `json:"__inputs"`
	Requires []struct {
		Type string `json:"type"`
		ID   string `json:"id"`
	} `json:"__requires"`
	UID        string `json:"uid"`
	Title      string `json:"title"`
	Templating struct {
		List []dashVariable `json:"list"`
	} `json:"templating"`
	Annotations struct {
		List []struct {
			Name       string          `json:"name"`
			Expr       string          `json:"expr"`
			Datasource *dashDatasource `json:"datasource"`
		} `json:"list"`
	} `json:"annotations"`
	Panels []dashPanel `json:"panels"`
}

// dashQuery is one PromQL expression of a dashboard and where it is.
type dashQuery struct {
	where string
	expr  string
}

func dashLoad(t *testing.T) map[string]dashboard {
	t.Helper()
	files, err := filepath.Glob(dashGlob)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no dashboards match %s: run make mixin", dashGlob)
	}
	out := map[string]dashboard{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !json.Valid(b) {
			t.Errorf("%s: not valid JSON", f)
			continue
		}
		var d dashboard
		if err := json.Unmarshal(b, &d); err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		out[filepath.Base(f)] = d
	}
	return out
}

// dashPanels lists the dashboard's panels, those nested in rows included.
func dashPanels(panels []dashPanel) []dashPanel {
	var out []dashPanel
	for _, p := range panels {
		out = append(out, p)
		out = append(out, dashPanels(p.Panels)...)
	}
	return out
}

// dashQueries lists every PromQL expression of the dashboard: panel targets,
// annotations, and the series selectors of label_values() variables.
func dashQueries(d dashboard) []dashQuery {
	var out []dashQuery
	for _, p := range dashPanels(d.Panels) {
		for _, tg := range p.Targets {
			out = append(out, dashQuery{fmt.Sprintf("panel %d %q target %s", p.ID, p.Title, tg.RefID), tg.Expr})
		}
	}
	for _, a := range d.Annotations.List {
		if a.Expr != "" {
			out = append(out, dashQuery{fmt.Sprintf("annotation %q", a.Name), a.Expr})
		}
	}
	for _, v := range d.Templating.List {
		if m := dashLabelValues.FindStringSubmatch(v.Definition); m != nil {
			out = append(out, dashQuery{fmt.Sprintf("variable %q", v.Name), m[1]})
		}
	}
	return out
}

var (
	dashLabelValues = regexp.MustCompile(`^label_values\((.+),\s*(\w+)\)$`)
	dashUID         = regexp.MustCompile(`^[A-Za-z0-9_-]{1,40}$`)
	// A use of a Grafana variable: $name, ${name} or ${name:format}.
	dashVarRef = regexp.MustCompile(`\$\{(\w+)(?::[^}]*)?\}|\$(\w+)`)
	// An exporter metric, or a recording rule on one (level:clawdbot_x:ops),
	// and its selector, if any.
	dashMetricSel = regexp.MustCompile(`\bclawdbot_[A-Za-z0-9_]+(?::[A-Za-z0-9_]+)?(\{[^}]*\})?`)
)

// dashBuiltins are Grafana's own variables, replaced by a value PromQL takes.
var dashBuiltins = map[string]string{
	"__rate_interval": "5m",
	"__interval":      "1m",
	"__range":         "1h",
}

// dashSubstitute replaces Grafana variables as Grafana would before sending
// the query: its interval variables by durations, the dashboard's variables
// by the regex of "All".
func dashSubstitute(expr string) string {
	return dashVarRef.ReplaceAllStringFunc(expr, func(ref string) string {
		m := dashVarRef.FindStringSubmatch(ref)
		name := m[1] + m[2]
		if v, ok := dashBuiltins[name]; ok {
			return v
		}
		return ".*"
	})
}

func TestDashboardsStructure(t *testing.T) {
	uids := map[string]string{}
	for file, d := range dashLoad(t) {
		t.Run(file, func(t *testing.T) {
			// A stable uid: the file's name, the same on every render, and
			// unique.
			if !dashUID.MatchString(d.UID) {
				t.Errorf("uid %q: want 1-40 of [A-Za-z0-9_-]", d.UID)
			}
			if want := strings.TrimSuffix(file, ".json"); d.UID != want {
				t.Errorf("uid %q, want %q (the file name)", d.UID, want)
			}
			if other, dup := uids[d.UID]; dup {
				t.Errorf("uid %q also used by %s", d.UID, other)
			}
			uids[d.UID] = file
			if d.Title == "" {
				t.Error("no title")
			}

			// Importable: Grafana's import asks for the datasource.
			if !slices.ContainsFunc(d.Inputs, func(in dashInput) bool {
				return in.Name == "DS_PROMETHEUS" && in.Type == "datasource" && in.PluginID == "prometheus"
			}) {
				t.Errorf("__inputs has no DS_PROMETHEUS prometheus datasource: %+v", d.Inputs)
			}
			if len(d.Requires) == 0 {
				t.Error("no __requires")
			}

			vars := map[string]dashVariable{}
			for _, v := range d.Templating.List {
				vars[v.Name] = v
			}
			for _, name := range dashVariables {
				v, ok := vars[name]
				switch {
				case !ok:
					t.Errorf("no %q variable", name)
				case name == "datasource":
					if v.Type != "datasource" || string(v.Query) != `"prometheus"` {
						t.Errorf("variable datasource: type %q query %s, want a prometheus datasource variable", v.Type, v.Query)
					}
				default:
					if v.Type != "query" || !dashLabelValues.MatchString(v.Definition) {
						t.Errorf("variable %s: type %q definition %q, want a label_values() query", name, v.Type, v.Definition)
					}
					dashCheckDatasource(t, "variable "+name, v.Datasource)
				}
			}
			for _, a := range d.Annotations.List {
				if a.Expr != "" {
					dashCheckDatasource(t, "annotation "+a.Name, a.Datasource)
				}
			}

			ids := map[int]bool{}
			n := 0
			for _, p := range dashPanels(d.Panels) {
				where := fmt.Sprintf("panel %d %q", p.ID, p.Title)
				if ids[p.ID] {
					t.Errorf("%s: duplicate id", where)
				}
				ids[p.ID] = true
				if p.Title == "" {
					t.Errorf("%s: no title", where)
				}
				if p.GridPos == nil || p.GridPos.W == 0 || p.GridPos.H == 0 || p.GridPos.X+p.GridPos.W > 24 {
					t.Errorf("%s: bad gridPos %+v", where, p.GridPos)
				}
				if p.Type == "row" {
					continue
				}
				n++
				if p.Description == "" {
					t.Errorf("%s: no description", where)
				}
				if p.FieldConfig.Defaults.Unit == "" {
					t.Errorf("%s: no unit (fieldConfig.defaults.unit)", where)
				}
				dashCheckDatasource(t, where, p.Datasource)
				if len(p.Targets) == 0 {
					t.Errorf("%s: no targets", where)
				}
				for _, tg := range p.Targets {
					if strings.TrimSpace(tg.Expr) == "" {
						t.Errorf("%s target %s: empty expr", where, tg.RefID)
					}
					dashCheckDatasource(t, where+" target "+tg.RefID, tg.Datasource)
				}
			}
			if n == 0 {
				t.Error("no panels")
			}

			// Every query is filtered by the dashboard's variables, and uses
			// only variables that exist.
			for _, q := range dashQueries(d) {
				for _, m := range dashVarRef.FindAllStringSubmatch(q.expr, -1) {
					name := m[1] + m[2]
					if _, builtin := dashBuiltins[name]; !builtin && vars[name].Name == "" {
						t.Errorf("%s: uses undefined variable $%s", q.where, name)
					}
				}
				if strings.HasPrefix(q.where, "variable") {
					continue
				}
				for _, m := range dashMetricSel.FindAllStringSubmatch(q.expr, -1) {
					want := []string{`job=~"$job"`, `instance=~"$instance"`}
					// The exporter's own series have no gateway label.
					if !strings.HasPrefix(m[0], "clawdbot_exporter_") && !strings.HasPrefix(m[0], "clawdbot_remediation_") {
						want = append(want, `gateway=~"$gateway"`)
					}
					for _, w := range want {
						if !strings.Contains(m[1], w) {
							t.Errorf("%s: %s is not filtered by %s", q.where, m[0], w)
						}
					}
				}
			}
		})
	}
}

func dashCheckDatasource(t *testing.T, where string, ds *dashDatasource) {
	t.Helper()
	if ds == nil || ds.Type != "prometheus" || ds.UID != "${datasource}" {
		t.Errorf("%s: datasource %+v, want {prometheus ${datasource}}", where, ds)
	}
}

// TestDashboardsPromQL checks every dashboard query, with Grafana's variables
// substituted, by writing it as a recording rule and running promtool check
// rules on the file, with both promtools (2.x and 3.x).
func TestDashboardsPromQL(t *testing.T) {
	type rule struct {
		Record string `json:"record"`
		Expr   string `json:"expr"`
	}
	type group struct {
		Name  string `json:"name"`
		Rules []rule `json:"rules"`
	}
	var groups []group
	where := map[string]string{}
	total := 0
	for file, d := range dashLoad(t) {
		g := group{Name: file}
		for i, q := range dashQueries(d) {
			record := fmt.Sprintf("dashboard:%s:query%d", strings.NewReplacer("-", "_", ".", "_").Replace(file), i)
			g.Rules = append(g.Rules, rule{record, dashSubstitute(q.expr)})
			where[record] = file + " " + q.where
		}
		total += len(g.Rules)
		groups = append(groups, g)
	}
	// JSON is YAML.
	b, err := json.MarshalIndent(map[string]any{"groups": groups}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "dashboard-queries.yml")
	if err := os.WriteFile(f, b, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, pt := range promtools(t) {
		t.Run(pt.name, func(t *testing.T) {
			out, err := exec.Command(pt.need(t), "check", "rules", f).CombinedOutput()
			if err != nil {
				var index strings.Builder
				for _, g := range groups {
					for _, r := range g.Rules {
						fmt.Fprintf(&index, "%s = %s\n    %s\n", r.Record, where[r.Record], r.Expr)
					}
				}
				t.Fatalf("%s check rules: %v\n%s\nqueries:\n%s", pt.name, err, out, index.String())
			}
			if !strings.Contains(string(out), fmt.Sprintf("%d rules found", total)) {
				t.Errorf("%s checked fewer rules than the %d queries:\n%s", pt.name, total, out)
			}
			t.Logf("%d dashboard queries are valid PromQL for %s", total, pt.name)
		})
	}
}

func TestDashboardsSubstitute(t *testing.T) {
	for in, want := range map[string]string{
		`rate(x{job=~"$job"}[$__rate_interval])`:                   `rate(x{job=~".*"}[5m])`,
		`rate(x{instance=~"${instance}"}[${__rate_interval}])`:     `rate(x{instance=~".*"}[5m])`,
		`changes(x{gateway=~"${gateway:regex}"}[$__range])`:        `changes(x{gateway=~".*"}[1h])`,
		`avg_over_time(x[$__interval]) * on(job) group_left() y{}`: `avg_over_time(x[1m]) * on(job) group_left() y{}`,
	} {
		if got := dashSubstitute(in); got != want {
			t.Errorf("dashSubstitute(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestDashboardLinter runs grafana's dashboard-linter with --strict (any
// finding fails) on every rendered dashboard. The linter comes from
// $DASHBOARD_LINTER, else from the cache scripts/install-tools.sh builds
// into; missing, the test skips, and fails in CI.
func TestDashboardLinter(t *testing.T) {
	bin := os.Getenv("DASHBOARD_LINTER")
	if bin == "" {
		bin = filepath.Join(toolsCache(), "dashboard-linter-"+installToolsVersion(t, "DASHBOARD_LINTER_VERSION"), "dashboard-linter")
	}
	if _, err := os.Stat(bin); err != nil {
		testutil.Missing(t, "dashboard-linter (scripts/install-tools.sh dashboard-linter): %v", err)
	}
	// The linter reads exclusions from a .lint file next to the dashboard:
	// there must be none.
	if _, err := os.Stat("../grafana/.lint"); err == nil {
		t.Error("grafana/.lint exists: fix the dashboards instead of excluding rules")
	}
	files, _ := filepath.Glob(dashGlob)
	if len(files) == 0 {
		t.Fatalf("no dashboards match %s", dashGlob)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			out, err := exec.Command(bin, "lint", "--strict", f).CombinedOutput()
			if err != nil {
				t.Errorf("dashboard-linter lint --strict %s: %v\n%s", f, err, out)
			}
		})
	}
}
