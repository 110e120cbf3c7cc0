package mixin

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/clawdbot-exporter/clawdbot_exporter/internal/testutil"
)

// The rules are checked and unit-tested with two promtools: Prometheus 2.x
// (Debian's 2.42, what many users still run) and 3.x, where range selectors
// are left-open: a sample exactly one window old is out of the window. A
// test that passes on one and fails on the other sits on a window boundary.
//
//   - 2.x: promtool on PATH (apt-get install prometheus).
//   - 3.x: $PROMTOOL3, else the binary scripts/install-tools.sh builds into
//     ${TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/clawdbot_exporter/tools}/promtool-<version>/.
//
// A missing one skips its subtests, and fails them in CI (CI=true).

// promtoolBin is one promtool and the Prometheus major version it is.
type promtoolBin struct {
	name string // "promtool2", "promtool3"
	path string // "" when missing
	hint string // how to get it
}

var promtoolVersion = regexp.MustCompile(`(?m)^promtool, version (\d+)\.`)

// promtoolMajor runs promtool --version: "2", "3", or "" when the binary
// does not run or prints no version (a build without version stamps).
func promtoolMajor(path string) string {
	out, err := exec.Command(path, "--version").CombinedOutput()
	if err != nil {
		return ""
	}
	if m := promtoolVersion.FindSubmatch(out); m != nil {
		return string(m[1])
	}
	return ""
}

// installToolsVersion reads a version variable (NAME=value) of
// scripts/install-tools.sh, the one place the tool versions are pinned.
func installToolsVersion(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("../scripts/install-tools.sh")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^` + name + `=(\S+)$`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("no %s= line in scripts/install-tools.sh", name)
	}
	return string(m[1])
}

// toolsCache is the directory scripts/install-tools.sh builds into.
func toolsCache() string {
	if d := os.Getenv("TOOLS_CACHE"); d != "" {
		return d
	}
	base := os.Getenv("XDG_CACHE_HOME")
	if base == "" {
		home, _ := os.UserHomeDir()
		base = filepath.Join(home, ".cache")
	}
	return filepath.Join(base, "clawdbot_exporter", "tools")
}

// promtools finds both promtools; each has path "" when it is missing or is
// not the version it should be.
func promtools(t *testing.T) []promtoolBin {
	t.Helper()
	p2 := promtoolBin{name: "promtool2", hint: "apt-get install prometheus (promtool 2.x on PATH)"}
	if p, err := exec.LookPath("promtool"); err == nil {
		if v := promtoolMajor(p); v == "2" {
			p2.path = p
		} else {
			p2.hint = "promtool on PATH (" + p + ") is not Prometheus 2.x but " + v + ".x: put Debian's 2.42 first on PATH"
		}
	}
	version := installToolsVersion(t, "PROMTOOL3_VERSION")
	p3 := promtoolBin{name: "promtool3", hint: "scripts/install-tools.sh promtool, or PROMTOOL3=/path/to/promtool (Prometheus 3.x)"}
	cand := os.Getenv("PROMTOOL3")
	if cand == "" {
		cand = filepath.Join(toolsCache(), "promtool-"+version, "promtool")
	}
	if _, err := os.Stat(cand); err == nil {
		// A binary built without version stamps prints no version: trust
		// PROMTOOL3 or the cache path then, refuse only a 2.x.
		if v := promtoolMajor(cand); v == "3" || v == "" {
			p3.path = cand
		} else {
			p3.hint = cand + " is Prometheus " + v + ".x, not 3.x"
		}
	}
	return []promtoolBin{p2, p3}
}

// need skips (fails in CI) when the promtool is missing.
func (p promtoolBin) need(t *testing.T) string {
	t.Helper()
	if p.path == "" {
		testutil.Missing(t, "%s: %s", p.name, p.hint)
	}
	return p.path
}

// TestPromtoolCheckRules: the rendered rules are valid, and so are the alerts
// rendered with the remediation alerts switched off, for both promtools.
func TestPromtoolCheckRules(t *testing.T) {
	dir := t.TempDir()
	files := render(t, "{_config+:: {remediationAlertsEnabled: false}}")
	p := filepath.Join(dir, "alerts.yaml")
	if err := os.WriteFile(p, []byte(files["alerts/clawdbot-alerts.yaml"]), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, pt := range promtools(t) {
		t.Run(pt.name, func(t *testing.T) {
			bin := pt.need(t)
			run := func(args ...string) {
				t.Helper()
				out, err := exec.Command(bin, args...).CombinedOutput()
				if err != nil {
					t.Errorf("%s %v: %v\n%s", pt.name, args, err, out)
				}
			}
			run("check", "rules", "../alerts/clawdbot-alerts.yaml", "../alerts/clawdbot-rules.yaml")
			run("check", "rules", p)
		})
	}
}

// TestPromtoolTestRules runs the unit tests of every alert group on the
// checked-in rendered rules, with both promtools.
func TestPromtoolTestRules(t *testing.T) {
	files, _ := filepath.Glob("tests/*.yaml")
	if len(files) == 0 {
		t.Fatal("no tests in mixin/tests")
	}
	for _, pt := range promtools(t) {
		t.Run(pt.name, func(t *testing.T) {
			bin := pt.need(t)
			for _, f := range files {
				t.Run(filepath.Base(f), func(t *testing.T) {
					out, err := exec.Command(bin, "test", "rules", f).CombinedOutput()
					if err != nil {
						t.Errorf("%s test rules %s: %v\n%s", pt.name, f, err, out)
					}
				})
			}
		})
	}
}
