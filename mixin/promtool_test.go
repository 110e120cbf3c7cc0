package mixin

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// promtool finds the real promtool: required in CI, skipped elsewhere.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("promtool is required in CI (apt-get install prometheus)")
		}
		t.Skip("promtool not installed (apt-get install prometheus)")
	}
	return p
}

// TestPromtoolCheckRules: the rendered rules are valid, and so are the alerts
// rendered with the remediation alerts switched off.
func TestPromtoolCheckRules(t *testing.T) {
	bin := promtool(t)
	run := func(args ...string) {
		t.Helper()
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %v: %v\n%s", args, err, out)
		}
	}
	run("check", "rules", "../alerts/clawdbot-alerts.yaml", "../alerts/clawdbot-rules.yaml")

	dir := t.TempDir()
	files := render(t, "{_config+:: {remediationAlertsEnabled: false}}")
	p := filepath.Join(dir, "alerts.yaml")
	if err := os.WriteFile(p, []byte(files["alerts/clawdbot-alerts.yaml"]), 0o644); err != nil {
		t.Fatal(err)
	}
	run("check", "rules", p)
}

// TestPromtoolTestRules runs the unit tests of every alert group on the
// checked-in rendered rules.
func TestPromtoolTestRules(t *testing.T) {
	bin := promtool(t)
	files, _ := filepath.Glob("tests/*.yaml")
	if len(files) == 0 {
		t.Fatal("no tests in mixin/tests")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			out, err := exec.Command(bin, "test", "rules", f).CombinedOutput()
			if err != nil {
				t.Errorf("promtool test rules %s: %v\n%s", f, err, out)
			}
		})
	}
}
