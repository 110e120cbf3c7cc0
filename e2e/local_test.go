//go:build e2e

package e2e

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// lockOf returns the path and state of the gateway "default"'s lock in a
// scrape, and how many such locks there are.
func lockOf(r scrapeResult) (path, state string, n int) {
	for _, m := range r.Families["clawdbot_lock_owner_state"].GetMetric() {
		l := map[string]string{}
		for _, lp := range m.GetLabel() {
			l[lp.GetName()] = lp.GetValue()
		}
		if l["gateway"] == "default" && m.GetGauge().GetValue() == 1 {
			path, state = l["path"], l["state"]
			n++
		}
	}
	return path, state, n
}

func runLocks(t *testing.T, env []string, args ...string) (string, int) {
	cmd := exec.Command(exporter, append([]string{"locks"}, args...)...)
	cmd.Env = append([]string{"PATH=/usr/bin:/bin"}, env...)
	out, err := cmd.CombinedOutput()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code
}

// TestLocalState runs the lock and process collectors and the locks command
// beside each real gateway: alive while it runs; dead and stale after it
// stops (clawdbot keeps its lock on SIGTERM; any gateway keeps it when
// killed); removed by `locks --remove-stale`; then a clean start.
func TestLocalState(t *testing.T) {
	for _, tc := range []struct {
		product string
		stop    func(*Gateway, *testing.T)
	}{
		{"clawdbot", (*Gateway).Stop}, // SIGTERM: clawdbot 2026.1.24 leaves its lock
		{"openclaw", (*Gateway).Kill}, // openclaw removes its lock on SIGTERM; a crash leaves it
	} {
		t.Run(tc.product, func(t *testing.T) {
			t.Parallel()
			g := startGateway(t, tc.product, gatewayOpts{})
			// Beside the gateway: same HOME and TMPDIR, so the exporter
			// finds config, state dir and lock directory as it does.
			env := []string{"HOME=" + g.Home, "TMPDIR=" + filepath.Join(g.Home, "tmp")}
			e := startExporter(t, env)

			r := e.scrape(t, "")
			path, state, n := lockOf(r)
			if n != 1 || state != "alive" {
				t.Fatalf("gateway lock: %d locks, state %q:\n%s", n, state, r.samples())
			}
			t.Logf("%s lock %s, metrics:\n%s", tc.product, path, grep(r.samples(), "clawdbot_lock_", "clawdbot_process_"))
			if v, _ := r.value("clawdbot_lock_owner_pid", map[string]string{"path": path}); int(v) != g.Pid() {
				t.Errorf("lock owner pid %v, gateway pid %d", v, g.Pid())
			}
			if v, _ := r.value("clawdbot_process_info", map[string]string{"method": "lock"}); v != 1 {
				t.Error("process not found by its lock")
			}
			if v, _ := r.value("clawdbot_process_resident_memory_bytes", nil); v < 50<<20 {
				t.Errorf("gateway RSS %v, want a Node process's (> 50 MiB)", v)
			}
			promtoolCheck(t, r.body)

			tc.stop(g, t)
			if _, err := os.Stat(path); err != nil {
				t.Fatalf("lock gone after stop: %v", err)
			}
			r = e.scrape(t, "")
			if _, state, _ := lockOf(r); state != "dead" {
				t.Errorf("after stop: lock %q, want dead", state)
			}
			if v, _ := r.value("clawdbot_lock_stale", map[string]string{"path": path}); v != 1 {
				t.Error("lock_stale != 1 after stop")
			}
			if v, _ := r.value("clawdbot_process_up", nil); v != 0 {
				t.Error("process_up != 0 after stop")
			}

			out, code := runLocks(t, env)
			if code != 0 || !strings.Contains(out, "dead") || !strings.Contains(out, path) {
				t.Errorf("locks: exit %d\n%s", code, out)
			}
			out, code = runLocks(t, env, "--remove-stale")
			t.Logf("locks --remove-stale:\n%s", out)
			if code != 0 || !strings.Contains(out, "removed") {
				t.Errorf("locks --remove-stale: exit %d\n%s", code, out)
			}
			if _, err := os.Stat(path); !os.IsNotExist(err) {
				t.Errorf("stale lock still there: %v", err)
			}

			g.Start(t)
			t.Logf("%s restarted in %v", tc.product, g.BootTime)
			if strings.Contains(g.Log(), "already running") || strings.Contains(g.Log(), "lock timeout") {
				t.Errorf("restart waited for a lock:\n%s", g.Log())
			}
			r = e.scrape(t, "")
			if _, state, n := lockOf(r); n != 1 || state != "alive" {
				t.Errorf("after restart: %d locks, state %q", n, state)
			}
			// A live owner's lock is never removed.
			out, code = runLocks(t, env, "--remove-stale")
			if code != 0 || !strings.Contains(out, "kept") {
				t.Errorf("locks --remove-stale with a live gateway: exit %d\n%s", code, out)
			}
			if _, err := os.Stat(path); err != nil && tc.product == "clawdbot" {
				t.Errorf("live lock removed: %v", err)
			}
		})
	}
}

// grep keeps the lines that start with one of prefixes.
func grep(text string, prefixes ...string) string {
	var b strings.Builder
	for _, l := range strings.Split(text, "\n") {
		for _, p := range prefixes {
			if strings.HasPrefix(l, p) {
				b.WriteString(l + "\n")
				break
			}
		}
	}
	return b.String()
}
