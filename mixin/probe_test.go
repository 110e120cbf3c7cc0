package mixin

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestPromtoolProbeJob: with the /probe job in the selector (README,
// "Fleets"), the gateway alerts fire on its series and the exporter and
// local-state alerts do not misfire on it (testdata/probe-job.yaml).
func TestPromtoolProbeJob(t *testing.T) {
	dir := t.TempDir()
	files := render(t, `{_config+:: {clawdbotExporterSelector: 'job=~"clawdbot|clawdbot-probe"'}}`)
	for name, path := range map[string]string{"clawdbot-alerts.yaml": "alerts/clawdbot-alerts.yaml", "clawdbot-rules.yaml": "alerts/clawdbot-rules.yaml"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(files[path]), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	test, err := os.ReadFile("testdata/probe-job.yaml")
	if err != nil {
		t.Fatal(err)
	}
	testFile := filepath.Join(dir, "probe-job.yaml")
	if err := os.WriteFile(testFile, test, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, pt := range promtools(t) {
		t.Run(pt.name, func(t *testing.T) {
			out, err := exec.Command(pt.need(t), "test", "rules", testFile).CombinedOutput()
			if err != nil {
				t.Errorf("%s test rules: %v\n%s", pt.name, err, out)
			}
		})
	}
}
