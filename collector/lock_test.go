package collector

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"

	"github.com/clawdbot-exporter/clawdbot_exporter/gateway"
	"github.com/clawdbot-exporter/clawdbot_exporter/gateway/lockfile"
)

// TestLockCollectorHostileNames: a lock file whose name is not UTF-8, or
// too long for a label, costs its own entry, under a sanitised path label,
// and nothing else: the collectors that read locks succeed and every other
// lock is reported as before.
func TestLockCollectorHostileNames(t *testing.T) {
	const (
		garbage = `{{{`
		dead    = `{"pid":4194303,"startTime":1}`
	)
	tests := []struct {
		name  string
		files map[string]string // name -> content
		want  map[string]string // name whose labelValue(path) is the label -> state
	}{
		{
			name:  "not UTF-8, garbage inside",
			files: map[string]string{"gateway.\xff\xfe.lock": garbage},
			want:  map[string]string{"gateway.\xff\xfe.lock": "unknown"},
		},
		{
			name:  "not UTF-8, a dead owner inside",
			files: map[string]string{"gateway.\xc3(.lock": dead},
			want:  map[string]string{"gateway.\xc3(.lock": "dead"},
		},
		{
			// Both get the same label: the first is reported, the
			// second skipped, so that no series is sent twice.
			name:  "two names sanitised alike",
			files: map[string]string{"gateway.\xff.lock": garbage, "gateway.\xfe.lock": garbage},
			want:  map[string]string{"gateway.\xff.lock": "unknown"},
		},
		{
			name:  "too long for a label",
			files: map[string]string{"gateway." + strings.Repeat("é", 120) + ".lock": dead},
			want:  map[string]string{"gateway." + strings.Repeat("é", 120) + ".lock": "dead"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			good := filepath.Join(dir, "gateway.deadbeef.lock")
			files := map[string]string{filepath.Base(good): dead}
			for name, content := range tc.files {
				files[name] = content
			}
			for name, content := range files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			targets := []gateway.Target{{Name: "main", URL: "ws://127.0.0.1:1", StateDir: t.TempDir()}}
			exp, err := New(Config{Gateways: targets, LockDirs: []string{dir}}, []string{"lock", "process"}, promslog.NewNopLogger())
			if err != nil {
				t.Fatal(err)
			}
			gatherLog := &syncBuffer{} // the registry's complaints, such as a series sent twice
			h := NewHandler(exp, prometheus.NewRegistry(), HandlerOpts{MaxTimeout: 5 * time.Second, Logger: slog.New(slog.NewTextHandler(gatherLog, nil))})
			res := doScrape(t, h, "")
			if gatherLog.String() != "" {
				t.Errorf("gathering failed: %s", gatherLog)
			}
			for _, c := range []string{"lock", "process"} {
				if v, ok := res.Value("clawdbot_exporter_collector_success", map[string]string{"collector": c}); !ok || v != 1 {
					t.Errorf("collector_success{%s} = %v (present %v), want 1", c, v, ok)
				}
			}
			want := map[string]string{good: "dead"}
			for name, state := range tc.want {
				want[labelValue(filepath.Join(dir, name))] = state
			}
			for path, state := range want {
				for _, s := range lockfile.OwnerStates() {
					v, ok := res.Value("clawdbot_lock_owner_state", map[string]string{"path": path, "state": string(s)})
					if !ok || v != boolValue(string(s) == state) {
						t.Errorf("lock_owner_state{path=%q,state=%s} = %v (present %v), want the state %s\n%s", path, s, v, ok, state, res.Body)
					}
				}
			}
			if n := strings.Count(res.Body, "clawdbot_lock_present{"); n != len(want) {
				t.Errorf("%d locks reported, want %d\n%s", n, len(want), res.Body)
			}
		})
	}
}

// openclawLockSet lays out openclaw's lock set for a target with state
// directory stateDir, as a crash during a reclaim leaves it: a dead config
// lock with owner id and port, a state lock held by a live non-gateway
// (role sqlite-maintenance, this test process), a reclaim guard two
// minutes old, and the lifecycle coordinator under $TMPDIR held (a POSIX
// lock) by this test process. It returns the lock directory and the
// guard's path; the coordinator stays held until the test ends.
func openclawLockSet(t *testing.T, stateDir, configPath string) (dir, guard string) {
	t.Helper()
	dir = filepath.Join(stateDir, "tmp", fmt.Sprintf("openclaw-%d", os.Getuid()))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		t.Fatal(err)
	}
	self, err := fs.Self()
	if err != nil {
		t.Fatal(err)
	}
	st, err := self.Stat()
	if err != nil {
		t.Fatal(err)
	}
	lock := filepath.Join(dir, lockfile.Name("openclaw", configPath))
	write := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(lock, fmt.Sprintf("{\n  \"pid\": 4194000,\n  \"ownerId\": \"u\",\n  \"createdAt\": \"2026-12-01T00:00:00.000Z\",\n  \"configPath\": %q,\n  \"port\": 18789,\n  \"startTime\": 1\n}\n  \t\n", configPath))
	write(filepath.Join(dir, lockfile.StateLockName), fmt.Sprintf(`{"pid":%d,"ownerId":"v","createdAt":"2026-12-01T00:00:00.000Z","configPath":%q,"role":"sqlite-maintenance","startTime":%d}`, os.Getpid(), configPath, st.Starttime))
	guard = lock + ".reclaim"
	if err := os.Mkdir(guard, 0o700); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-2 * time.Minute)
	if err := os.Chtimes(guard, old, old); err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	cdir := filepath.Join(tmp, fmt.Sprintf("openclaw-state-locks-%d", os.Getuid()))
	if err := os.MkdirAll(cdir, 0o700); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(cdir, lockfile.CoordinatorName(stateDir)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	lk := unix.Flock_t{Type: unix.F_WRLCK, Start: 1 << 30, Len: 1}
	if err := unix.FcntlFlock(f.Fd(), unix.F_SETLK, &lk); err != nil {
		t.Fatal(err)
	}
	return dir, guard
}

// TestLockCollectorOpenclawSet reports every member of openclaw's lock
// set and, as one series each, what blocks the next start.
func TestLockCollectorOpenclawSet(t *testing.T) {
	stateDir := t.TempDir()
	cfg := filepath.Join(stateDir, "openclaw.json")
	dir, guard := openclawLockSet(t, stateDir, cfg)
	lock := filepath.Join(dir, lockfile.Name("openclaw", cfg))
	state := filepath.Join(dir, lockfile.StateLockName)
	targets := []gateway.Target{{Name: "oc", URL: "ws://127.0.0.1:1", ConfigPath: cfg, StateDir: stateDir}}
	exp, err := New(Config{Gateways: targets}, []string{"lock"}, promslog.NewNopLogger())
	if err != nil {
		t.Fatal(err)
	}
	h := NewHandler(exp, prometheus.NewRegistry(), HandlerOpts{MaxTimeout: 5 * time.Second, Logger: promslog.NewNopLogger()})
	res := doScrape(t, h, "")
	coord := filepath.Join(os.Getenv("TMPDIR"), fmt.Sprintf("openclaw-state-locks-%d", os.Getuid()), lockfile.CoordinatorName(stateDir))
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"clawdbot_lock_info", map[string]string{"path": lock, "kind": "config", "product": "openclaw", "role": "gateway"}, 1},
		{"clawdbot_lock_info", map[string]string{"path": state, "kind": "state", "product": "openclaw", "role": "sqlite-maintenance"}, 1},
		{"clawdbot_lock_owner_state", map[string]string{"path": lock, "state": "dead"}, 1},
		{"clawdbot_lock_owner_state", map[string]string{"path": state, "state": "alive"}, 1},
		{"clawdbot_lock_owner_id_present", map[string]string{"path": lock}, 1},
		{"clawdbot_lock_port", map[string]string{"path": lock}, 18789},
		{"clawdbot_lock_reclaim_guard_reclaiming", map[string]string{"gateway": "oc", "path": guard}, 0},
		{"clawdbot_lock_coordinator_held", map[string]string{"gateway": "oc", "path": coord}, 1},
		{"clawdbot_lock_coordinator_holder_pid", map[string]string{"gateway": "oc", "path": coord}, float64(os.Getpid())},
		{"clawdbot_lock_coordinator_waiters", map[string]string{"gateway": "oc", "path": coord}, 0},
		{"clawdbot_lock_blocking_start", map[string]string{"gateway": "oc", "path": guard, "why": lockfile.WhyReclaimGuardStuck}, 1},
		{"clawdbot_lock_blocking_start", map[string]string{"gateway": "oc", "path": state, "why": lockfile.WhyHeldByNonGateway}, 1},
		{"clawdbot_lock_blocking_start", map[string]string{"gateway": "oc", "path": coord, "why": lockfile.WhyCoordinatorHeld}, 1},
		{"clawdbot_exporter_items_dropped_total", map[string]string{"collector": "lock", "kind": lockfile.DroppedLockFiles}, 0},
		{"clawdbot_exporter_collector_success", map[string]string{"collector": "lock"}, 1},
	} {
		if v, ok := res.Value(c.name, c.labels); !ok || v != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, v, ok, c.want)
		}
	}
	if v, _ := res.Value("clawdbot_lock_reclaim_guard_age_seconds", map[string]string{"path": guard}); v < 110 || v > 200 {
		t.Errorf("guard age %v s, want about 120", v)
	}
	if n := strings.Count(res.Body, "clawdbot_lock_blocking_start{"); n != 3 {
		t.Errorf("%d blocking series, want 3:\n%s", n, res.Body)
	}
}

// TestLockCollectorFlood: a lock directory flooded past the cap costs a
// bounded scan; the cut is counted in items_dropped_total, every scrape.
func TestLockCollectorFlood(t *testing.T) {
	dir := t.TempDir()
	const n = 2000
	for i := range n {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("gateway.%08x.lock", i)), []byte(`{"pid":4194000}`), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	targets := []gateway.Target{{Name: "main", URL: "ws://127.0.0.1:1", StateDir: t.TempDir()}}
	exp, err := New(Config{Gateways: targets, LockDirs: []string{dir}}, []string{"lock", "process"}, promslog.NewNopLogger())
	if err != nil {
		t.Fatal(err)
	}
	h := NewHandler(exp, prometheus.NewRegistry(), HandlerOpts{MaxTimeout: 5 * time.Second, Logger: promslog.NewNopLogger()})
	for i := 1; i <= 2; i++ {
		res := doScrape(t, h, "")
		want := float64(i * (n - lockfile.DefaultMaxFilesPerDir))
		if v, _ := res.Value("clawdbot_exporter_items_dropped_total", map[string]string{"collector": "lock", "kind": lockfile.DroppedLockFiles}); v != want {
			t.Errorf("scrape %d: dropped %v, want %v", i, v, want)
		}
		if got := strings.Count(res.Body, "clawdbot_lock_present{"); got != lockfile.DefaultMaxFilesPerDir {
			t.Errorf("scrape %d: %d locks reported, want the cap %d", i, got, lockfile.DefaultMaxFilesPerDir)
		}
	}
}

// TestLockScanStopsAtDeadline: a scrape whose deadline has passed gets a
// lock scan that stops at once, and the collector fails, instead of a
// scan that runs on behind the scrape.
func TestLockScanStopsAtDeadline(t *testing.T) {
	dir := t.TempDir()
	for i := range 500 {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("gateway.%08x.lock", i)), []byte(`{"pid":4194000}`), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	targets := []gateway.Target{{Name: "main", URL: "ws://127.0.0.1:1", ConfigPath: filepath.Join(dir, "clawdbot.json")}}
	c, err := newLockCollector(Config{Gateways: targets, LockDirs: []string{dir}}, promslog.NewNopLogger())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ch := make(chan prometheus.Metric, 10000)
	if err := c.Update(ctx, ch); err == nil {
		t.Error("no error from a scan cut by its context")
	}
	close(ch)
	n := 0
	for m := range ch {
		if strings.Contains(m.Desc().String(), "lock_present") {
			n++
		}
	}
	if n != 0 {
		t.Errorf("%d lock_present series after the deadline (locks inspected, or a lock called absent by a scan that never looked)", n)
	}
}

// TestLockScannerShared: the lock and process collectors built together
// share one scanner, so that what it keeps of a scan serves both, and a
// collector built alone has one of its own.
func TestLockScannerShared(t *testing.T) {
	exp, err := New(Config{Gateways: []gateway.Target{{Name: "main", URL: "ws://127.0.0.1:1"}}}, []string{"lock", "process"}, promslog.NewNopLogger())
	if err != nil {
		t.Fatal(err)
	}
	lc, pc := exp.collectors["lock"].(*lockCollector), exp.collectors["process"].(*processCollector)
	if lc.scanner == nil || lc.scanner != pc.locks {
		t.Errorf("lock collector's scanner %p, process collector's %p: want one", lc.scanner, pc.locks)
	}
	alone, err := newLockCollector(Config{}, promslog.NewNopLogger())
	if err != nil {
		t.Fatal(err)
	}
	if s := alone.(*lockCollector).scanner; s == nil || s == lc.scanner {
		t.Errorf("a collector built alone shares scanner %p", s)
	}
}
