//go:build e2e

package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// lockOf returns the path and state of the gateway "default"'s lock in a
// scrape, and how many such locks there are.
func lockOf(r scrapeResult) (path, state string, n int) {
	for _, m := range r.Families["clawdbot_lock_owner_state"].GetMetric() {
		l := map[string]string{}
		for _, lp := range m.GetLabel() {
			l[lp.GetName()] = lp.GetValue()
		}
		if strings.HasSuffix(l["path"], "/gateway.state.lock") {
			continue // openclaw's per-state-directory lock; see locks_openclaw_test.go
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
				t.Fatalf("gateway lock: %d locks, state %q:\n%s", n, state, r.Samples())
			}
			t.Logf("%s lock %s, metrics:\n%s", tc.product, path, grep(r.Samples(), "clawdbot_lock_", "clawdbot_process_"))
			if v, _ := r.Value("clawdbot_lock_owner_pid", map[string]string{"path": path}); int(v) != g.Pid() {
				t.Errorf("lock owner pid %v, gateway pid %d", v, g.Pid())
			}
			if v, _ := r.Value("clawdbot_process_info", map[string]string{"method": "lock"}); v != 1 {
				t.Error("process not found by its lock")
			}
			if v, _ := r.Value("clawdbot_process_resident_memory_bytes", nil); v < 50<<20 {
				t.Errorf("gateway RSS %v, want a Node process's (> 50 MiB)", v)
			}
			// The config collector reads the real gateway's config.
			for _, c := range []struct {
				name   string
				labels map[string]string
				want   float64
			}{
				{"clawdbot_config_parse_ok", nil, 1},
				{"clawdbot_config_info", map[string]string{"bind": "loopback", "auth_mode": "token"}, 1},
				{"clawdbot_config_exposed_without_auth", nil, 0},
				{"clawdbot_config_unknown_key", map[string]string{"key": "session.historyLimit"}, 0},
			} {
				if v, ok := r.Value(c.name, c.labels); !ok || v != c.want {
					t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, v, ok, c.want)
				}
			}
			for _, c := range []string{"config", "lock", "process", "sessions", "probe"} {
				if v, _ := r.Value("clawdbot_exporter_collector_success", map[string]string{"collector": c}); v != 1 {
					t.Errorf("collector %s failed beside a real %s", c, tc.product)
				}
			}
			promtoolCheck(t, r.Body)

			tc.stop(g, t)
			if _, err := os.Stat(path); err != nil {
				t.Fatalf("lock gone after stop: %v", err)
			}
			r = e.scrape(t, "")
			if _, state, _ := lockOf(r); state != "dead" {
				t.Errorf("after stop: lock %q, want dead", state)
			}
			if v, _ := r.Value("clawdbot_lock_stale", map[string]string{"path": path}); v != 1 {
				t.Error("lock_stale != 1 after stop")
			}
			if v, _ := r.Value("clawdbot_process_up", nil); v != 0 {
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

			if tc.product == "clawdbot" {
				seedSessions(t, filepath.Join(g.Home, ".clawdbot", "agents", "main", "sessions"))
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
			if tc.product == "clawdbot" {
				// The gateway's own count (health) and the exporter's
				// reading of the same store agree.
				main := map[string]string{"agent": "main"}
				fromGateway, _ := r.Value("clawdbot_agent_sessions", main)
				fromDisk, _ := r.Value("clawdbot_session_store_sessions", main)
				lines, _ := r.Value("clawdbot_session_store_largest_transcript_lines", main)
				t.Logf("sessions: gateway says %v, store has %v; largest transcript %v lines", fromGateway, fromDisk, lines)
				if fromGateway != 3 || fromDisk != 3 || lines != 41 {
					t.Errorf("sessions: gateway %v, disk %v (want 3 each); largest transcript %v lines, want 41", fromGateway, fromDisk, lines)
				}
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

// seedSessions writes a clawdbot session store as the gateway does: three
// sessions, the largest transcript a header and 40 messages.
func seedSessions(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UnixMilli()
	store := map[string]any{}
	for i, n := range []int{40, 5, 1} {
		id := fmt.Sprintf("00000000-0000-4000-8000-00000000000%d", i)
		store[fmt.Sprintf("agent:main:e2e-%d", i)] = map[string]any{"sessionId": id, "updatedAt": now - int64(i)*60000, "chatType": "direct"}
		var b strings.Builder
		b.WriteString(`{"type":"session","version":3,"id":"` + id + `"}` + "\n")
		for m := 0; m < n; m++ {
			b.WriteString(`{"type":"message","message":{"role":"user","content":"hello"}}` + "\n")
		}
		if err := os.WriteFile(filepath.Join(dir, id+".jsonl"), []byte(b.String()), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	raw, _ := json.Marshal(store)
	if err := os.WriteFile(filepath.Join(dir, "sessions.json"), raw, 0o600); err != nil {
		t.Fatal(err)
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
