//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/clawdbot-exporter/clawdbot_exporter/gateway/lockfile"
)

// labelsOf finds the labels of the first sample of name whose labels
// include want.
func labelsOf(r scrapeResult, name string, want map[string]string) map[string]string {
	for _, m := range r.Families[name].GetMetric() {
		l := map[string]string{}
		for _, lp := range m.GetLabel() {
			l[lp.GetName()] = lp.GetValue()
		}
		ok := true
		for k, v := range want {
			ok = ok && l[k] == v
		}
		if ok {
			return l
		}
	}
	return nil
}

// TestLocksOpenclawReclaimGuard is issue 11 §1 on a real openclaw 2026.9.6:
// a gateway killed while it reclaims a stale lock leaves a
// gateway.<h>.lock.reclaim directory behind. The exporter reports it as
// blocking the next start, a start indeed fails ("lock timeout"), `locks
// --remove-stale` clears it, and the gateway then starts and comes up.
func TestLocksOpenclawReclaimGuard(t *testing.T) {
	g := startGateway(t, "openclaw", gatewayOpts{})
	env := []string{"HOME=" + g.Home, "TMPDIR=" + filepath.Join(g.Home, "tmp")}
	e := startExporter(t, env)

	// The whole set while it runs: config lock and state lock, alive,
	// held by the gateway, with owner id and port; the coordinator held
	// by the gateway's pid; nothing blocks.
	r := e.scrape(t, "")
	t.Logf("running openclaw:\n%s", grep(r.Samples(), "clawdbot_lock_"))
	cfgLock := labelsOf(r, "clawdbot_lock_info", map[string]string{"gateway": "default", "kind": "config"})
	stateLock := labelsOf(r, "clawdbot_lock_info", map[string]string{"gateway": "default", "kind": "state"})
	if cfgLock == nil || stateLock == nil {
		t.Fatalf("config lock %v, state lock %v:\n%s", cfgLock, stateLock, r.Samples())
	}
	for _, l := range []map[string]string{cfgLock, stateLock} {
		if l["product"] != "openclaw" || l["role"] != "gateway" {
			t.Errorf("lock %s: %v, want product openclaw, role gateway", l["path"], l)
		}
		p := map[string]string{"path": l["path"]}
		if v, _ := r.Value("clawdbot_lock_owner_state", map[string]string{"path": l["path"], "state": "alive"}); v != 1 {
			t.Errorf("%s not alive", l["path"])
		}
		if v, _ := r.Value("clawdbot_lock_owner_id_present", p); v != 1 {
			t.Errorf("%s: no owner id", l["path"])
		}
		if v, _ := r.Value("clawdbot_lock_owner_pid", p); int(v) != g.Pid() {
			t.Errorf("%s: owner pid %v, gateway %d", l["path"], v, g.Pid())
		}
	}
	if v, _ := r.Value("clawdbot_lock_port", map[string]string{"path": cfgLock["path"]}); int(v) != g.Port {
		t.Errorf("lock port %v, gateway port %d", v, g.Port)
	}
	if v, ok := r.Value("clawdbot_lock_coordinator_holder_pid", map[string]string{"gateway": "default"}); !ok || int(v) != g.Pid() {
		t.Errorf("coordinator holder pid %v (present %v), gateway pid %d", v, ok, g.Pid())
	}
	if n := len(r.Families["clawdbot_lock_blocking_start"].GetMetric()); n != 0 {
		t.Errorf("%d blocking states beside a running gateway:\n%s", n, r.Samples())
	}

	// A crash during a reclaim: the gateway dies by SIGKILL, its locks
	// stay with a dead pid, and the reclaim guard it had made stays too.
	// The guard dates from two minutes ago: the exporter calls a guard
	// stuck only after a minute with nobody reclaiming.
	g.Kill(t)
	lock := cfgLock["path"]
	guard := lock + ".reclaim"
	if err := os.Mkdir(guard, 0o700); err != nil {
		t.Fatal(err)
	}
	then := time.Now().Add(-2 * time.Minute)
	if err := os.Chtimes(guard, then, then); err != nil {
		t.Fatal(err)
	}
	r = e.scrape(t, "")
	t.Logf("after the crash:\n%s", grep(r.Samples(), "clawdbot_lock_"))
	if v, _ := r.Value("clawdbot_lock_blocking_start", map[string]string{"gateway": "default", "path": guard, "why": "reclaim_guard_stuck"}); v != 1 {
		t.Errorf("clawdbot_lock_blocking_start for the guard = %v, want 1:\n%s", v, r.Samples())
	}
	if v, ok := r.Value("clawdbot_lock_reclaim_guard_reclaiming", map[string]string{"path": guard}); !ok || v != 0 {
		t.Errorf("reclaim_guard_reclaiming = %v (present %v), want 0", v, ok)
	}
	if v, _ := r.Value("clawdbot_lock_reclaim_guard_age_seconds", map[string]string{"path": guard}); v < 110 {
		t.Errorf("guard age %v s, want about 120", v)
	}
	// The listing is a check: what blocks a start makes it exit 1.
	out, code := runLocks(t, env, "--json")
	if code != 1 || !strings.Contains(out, `"blocks_start":"reclaim_guard_stuck"`) {
		t.Errorf("locks --json: exit %d\n%s", code, out)
	}

	// Without clean-up, a start fails: it waits for the guard and gives up
	// with "lock timeout" (bounded here at 90 s; openclaw gives up after
	// about 24 s).
	argv, genv := g.command()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	start := exec.CommandContext(ctx, argv[0], argv[1:]...)
	start.Env, start.Dir = genv, g.Home
	start.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	start.Cancel = func() error { return syscall.Kill(-start.Process.Pid, syscall.SIGKILL) }
	begin := time.Now()
	startOut, err := start.CombinedOutput()
	failedAfter := time.Since(begin)
	if start.Process != nil {
		_ = syscall.Kill(-start.Process.Pid, syscall.SIGKILL) // its children, if any
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ctx.Err() != nil || !strings.Contains(string(startOut), "lock timeout") {
		t.Fatalf("a start with the guard left behind: err %v after %v, want a failure with \"lock timeout\":\n%s", err, failedAfter, lastBytes(string(startOut), 3000))
	}
	t.Logf("start without clean-up failed after %v (exit %d): %s", failedAfter.Round(time.Second), ee.ExitCode(), lastLine(string(startOut), "lock timeout"))

	// locks --remove-stale clears the guard (and the dead locks), exit 0.
	out, code = runLocks(t, env, "--remove-stale", "--json")
	t.Logf("locks --remove-stale --json:\n%s", out)
	if code != 0 || strings.Contains(out, "still_blocking") {
		t.Fatalf("locks --remove-stale: exit %d\n%s", code, out)
	}
	if _, err := os.Lstat(guard); !os.IsNotExist(err) {
		t.Fatalf("guard still there: %v", err)
	}

	// Now the gateway starts and comes up, without waiting for a lock.
	g.Start(t)
	if strings.Contains(g.Log(), "lock timeout") {
		t.Errorf("restart waited for a lock:\n%s", g.Log())
	}
	r = e.scrape(t, "")
	if n := len(r.Families["clawdbot_lock_blocking_start"].GetMetric()); n != 0 {
		t.Errorf("%d blocking states after the clean-up:\n%s", n, r.Samples())
	}
	if v, _ := r.Value("clawdbot_lock_owner_state", map[string]string{"path": lock, "state": "alive"}); v != 1 {
		t.Errorf("config lock not alive after the restart:\n%s", grep(r.Samples(), "clawdbot_lock_"))
	}
}

// TestLocksFlood is issue 10 item 4: 100,000 lock files in the state
// directory. Every scrape answers within its deadline + 1 s, the lock
// collector says what it cut, the gateway's own lock is still reported, and
// the exporter's peak RSS (VmHWM of the real process) stays under 300 MB.
func TestLocksFlood(t *testing.T) {
	home := t.TempDir()
	stateDir := filepath.Join(home, ".openclaw")
	if err := os.MkdirAll(filepath.Join(home, "tmp"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(stateDir, "openclaw.json")
	port := freePort(t) // nobody listens: the probe fails fast
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`{"gateway":{"mode":"local","port":%d,"bind":"loopback","auth":{"mode":"token","token":"t"}}}`, port)), 0o600); err != nil {
		t.Fatal(err)
	}
	const n = 100_000
	content := []byte(`{"pid":4194000,"createdAt":"2026-12-01T00:00:00.000Z","configPath":"/elsewhere/openclaw.json","startTime":1}`)
	begin := time.Now()
	for i := range n {
		if err := os.WriteFile(filepath.Join(stateDir, fmt.Sprintf("gateway.%08x.lock", i)), content, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	own := filepath.Join(stateDir, lockfile.Name("openclaw", cfg))
	if err := os.WriteFile(own, content, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d lock files written in %v", n+1, time.Since(begin).Round(time.Millisecond))

	e := startExporter(t, []string{"HOME=" + home, "TMPDIR=" + filepath.Join(home, "tmp")})
	const deadline = 5 * time.Second
	var last float64
	for i := range 3 {
		r := e.scrape(t, strconv.Itoa(int(deadline.Seconds())))
		// Lock files past the per-directory cap, and entries past the
		// listing cap (not even read).
		dropped, _ := r.Value("clawdbot_exporter_items_dropped_total", map[string]string{"collector": "lock", "kind": "lock_files"})
		entries, _ := r.Value("clawdbot_exporter_items_dropped_total", map[string]string{"collector": "lock", "kind": "dir_entries"})
		dropped += entries
		locks := len(r.Families["clawdbot_lock_present"].GetMetric())
		success, _ := r.Value("clawdbot_exporter_collector_success", map[string]string{"collector": "lock"})
		t.Logf("scrape %d: %v, %d bytes, %d locks reported, dropped in all %v (dir_entries %v), lock collector success %v", i+1, r.Elapsed.Round(time.Millisecond), len(r.Body), locks, dropped, entries, success)
		if success != 1 {
			t.Errorf("scrape %d: the lock collector failed", i+1)
		}
		if r.Elapsed > deadline+time.Second {
			t.Errorf("scrape %d took %v, past the deadline %v + 1 s", i+1, r.Elapsed, deadline)
		}
		if dropped-last < n-2*lockfile.DefaultMaxFilesPerDir {
			t.Errorf("scrape %d: dropped %v (before %v), want this scrape's cut (about %d) counted", i+1, dropped, last, n)
		}
		last = dropped
		if locks > lockfile.DefaultMaxFilesPerDir+10 {
			t.Errorf("scrape %d: %d locks reported, more than the cap", i+1, locks)
		}
		if v, _ := r.Value("clawdbot_lock_present", map[string]string{"path": own}); v != 1 {
			t.Errorf("scrape %d: the gateway's own lock %s not reported", i+1, own)
		}
	}
	hwm := vmHWM(t, e.cmd.Process.Pid)
	t.Logf("exporter peak RSS (VmHWM) after 3 scrapes of %d locks: %.1f MB", n+1, float64(hwm)/1e6)
	if hwm >= 300e6 {
		t.Errorf("peak RSS %.1f MB, want < 300 MB", float64(hwm)/1e6)
	}
}

// vmHWM is a process's peak resident set size in bytes.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb * 1024
		}
	}
	t.Fatal("no VmHWM in /proc/<pid>/status")
	return 0
}

func lastBytes(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func lastLine(s, containing string) string {
	lines := strings.Split(s, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], containing) {
			return strings.TrimSpace(lines[i])
		}
	}
	return ""
}
