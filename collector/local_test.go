package collector

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/procfs"

	"github.com/clawdbot-exporter/clawdbot_exporter/gateway"
	"github.com/clawdbot-exporter/clawdbot_exporter/gateway/lockfile"
)

// TestLockAndProcessCollectors: a real child process owns the gateway's
// lock; a dead lock and a garbage lock lie beside it; a second configured
// gateway has no lock at all.
func TestLockAndProcessCollectors(t *testing.T) {
	home := t.TempDir()
	cfg := filepath.Join(home, ".clawdbot", "clawdbot.json")
	other := filepath.Join(home, ".clawdbot-work", "clawdbot.json")
	for _, p := range []string{cfg, other} {
		_ = os.MkdirAll(filepath.Dir(p), 0o700)
		_ = os.WriteFile(p, []byte(`{}`), 0o600)
	}
	lockDir := filepath.Join(t.TempDir(), fmt.Sprintf("clawdbot-%d", os.Getuid()))
	_ = os.MkdirAll(lockDir, 0o755)

	child := exec.Command("sleep", "60")
	child.Env = append(os.Environ(), "NODE_OPTIONS=--max-old-space-size=1536")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = child.Process.Kill(); _ = child.Wait() }()
	fs, _ := procfs.NewDefaultFS()
	p, _ := fs.Proc(child.Process.Pid)
	// The kernel's RSS counters of a process that just started can read 0
	// for a moment (per-CPU counters not yet folded in).
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if st, err := p.Stat(); err == nil && st.ResidentMemory() > 0 {
			break
		}
	}
	stat, err := p.Stat()
	if err != nil {
		t.Fatal(err)
	}
	mine := filepath.Join(lockDir, lockfile.Name("clawdbot", cfg))
	created := time.Now().Add(-90 * time.Second).UTC().Format(time.RFC3339Nano)
	write := func(path, content string) {
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(mine, fmt.Sprintf(`{"pid":%d,"createdAt":%q,"configPath":%q,"startTime":%d}`, child.Process.Pid, created, cfg, stat.Starttime))
	dead := filepath.Join(lockDir, "gateway.deadbeef.lock")
	write(dead, `{"pid":4194303,"startTime":1}`)
	garbage := filepath.Join(lockDir, "gateway.garbage0.lock")
	write(garbage, `{{{`)

	targets := []gateway.Target{
		{Name: "main", URL: "ws://127.0.0.1:1", ConfigPath: cfg, StateDir: filepath.Dir(cfg)},
		{Name: "work", URL: "ws://127.0.0.1:2", ConfigPath: other, StateDir: filepath.Dir(other)},
	}
	exp, err := New(Config{Gateways: targets, LockDirs: []string{lockDir}}, []string{"lock", "process"}, promslog.NewNopLogger())
	if err != nil {
		t.Fatal(err)
	}
	h := NewHandler(exp, prometheus.NewRegistry(), HandlerOpts{MaxTimeout: 5 * time.Second, Logger: promslog.NewNopLogger()})
	res := doScrape(t, h, "")

	state := func(path, s string) float64 {
		v, _ := res.Value("clawdbot_lock_owner_state", map[string]string{"path": path, "state": s})
		return v
	}
	for path, want := range map[string]string{mine: "alive", dead: "dead", garbage: "unknown"} {
		for _, s := range lockfile.OwnerStates() {
			if got, exp := state(path, string(s)), boolValue(string(s) == want); got != exp {
				t.Errorf("%s state %s = %v, want %v", filepath.Base(path), s, got, exp)
			}
		}
	}
	checks := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"clawdbot_lock_present", map[string]string{"path": mine, "gateway": "main"}, 1},
		{"clawdbot_lock_owner_pid", map[string]string{"path": mine}, float64(child.Process.Pid)},
		{"clawdbot_lock_stale", map[string]string{"path": mine}, 0},
		{"clawdbot_lock_stale", map[string]string{"path": dead, "gateway": ""}, 1},
		{"clawdbot_lock_stale", map[string]string{"path": garbage}, 0},
		{"clawdbot_lock_present", map[string]string{"gateway": "work"}, 0},
		{"clawdbot_process_up", map[string]string{"gateway": "main"}, 1},
		{"clawdbot_process_info", map[string]string{"gateway": "main", "method": "lock"}, 1},
		{"clawdbot_process_memory_limit_bytes", map[string]string{"gateway": "main", "kind": "v8_heap"}, 1536 << 20},
		{"clawdbot_process_threads", map[string]string{"gateway": "main"}, 1},
		{"clawdbot_process_up", map[string]string{"gateway": "work"}, 0},
	}
	for _, c := range checks {
		if v, ok := res.Value(c.name, c.labels); !ok || v != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, v, ok, c.want)
		}
	}
	if age, _ := res.Value("clawdbot_lock_age_seconds", map[string]string{"path": mine}); age < 89 || age > 120 {
		t.Errorf("lock age %v, want about 90 s from createdAt", age)
	}
	for _, name := range []string{"clawdbot_process_resident_memory_bytes", "clawdbot_process_virtual_memory_bytes",
		"clawdbot_process_start_time_seconds", "clawdbot_process_open_fds", "clawdbot_process_max_fds"} {
		if v, ok := res.Value(name, map[string]string{"gateway": "main"}); !ok || v <= 0 {
			t.Errorf("%s = %v (present %v)", name, v, ok)
		}
	}
	if start, _ := res.Value("clawdbot_process_start_time_seconds", nil); time.Since(time.Unix(int64(start), 0)) > time.Minute {
		t.Errorf("start time %v is not the child's", start)
	}
	if _, ok := res.Value("clawdbot_lock_filesystem_info", map[string]string{"path": mine}); !ok {
		t.Error("no filesystem info")
	}
	for _, c := range []string{"lock", "process"} {
		if v, _ := res.Value("clawdbot_exporter_collector_success", map[string]string{"collector": c}); v != 1 {
			t.Errorf("collector %s failed", c)
		}
	}
	problems, err := promlint.New(strings.NewReader(res.Body)).Lint()
	if err != nil || len(problems) > 0 {
		t.Errorf("promlint: %v %v", err, problems)
	}

	// The owner exits: the lock stays (as clawdbot's does) and is dead.
	_ = child.Process.Kill()
	_ = child.Wait()
	res = doScrape(t, h, "")
	if v, _ := res.Value("clawdbot_lock_stale", map[string]string{"path": mine}); v != 1 {
		t.Error("lock of an exited owner is not stale")
	}
	if v, _ := res.Value("clawdbot_process_up", map[string]string{"gateway": "main"}); v != 0 {
		t.Error("process_up after the owner exited")
	}
}
