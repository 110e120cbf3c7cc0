package collector

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"

	"github.com/clawdbot-exporter/clawdbot_exporter/gateway"
	"github.com/clawdbot-exporter/clawdbot_exporter/gateway/lockfile"
)

// TestProcessTree: a real process with two children owns the gateway's
// lock, as openclaw's gateway runs its spawn broker and SQLite worker; the
// tree metrics count all three, the main process's stay its own.
func TestProcessTree(t *testing.T) {
	cfg, lockDir := processGatewayHome(t, "openclaw")
	gw := exec.Command("sh", "-c", "sleep 60 & sleep 60 & wait")
	if err := gw.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = gw.Process.Kill(); _ = gw.Wait() }()
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		t.Fatal(err)
	}
	p, _ := fs.Proc(gw.Process.Pid)
	// Wait for both children (and for the kernel's RSS counters, which can
	// read 0 right after a start).
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", gw.Process.Pid, gw.Process.Pid))
		st, _ := p.Stat()
		if len(strings.Fields(string(b))) == 2 && st.ResidentMemory() > 0 {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("the children did not start: %q", b)
		}
	}
	stat, err := p.Stat()
	if err != nil {
		t.Fatal(err)
	}
	writeProcessLock(t, lockDir, cfg, gw.Process.Pid, stat.Starttime)
	targets := []gateway.Target{{Name: "main", URL: "ws://127.0.0.1:1", ConfigPath: cfg, StateDir: filepath.Dir(cfg)}}
	exp, err := New(Config{Gateways: targets, LockDirs: []string{lockDir}}, []string{"process"}, promslog.NewNopLogger())
	if err != nil {
		t.Fatal(err)
	}
	h := NewHandler(exp, prometheus.NewRegistry(), HandlerOpts{MaxTimeout: 5 * time.Second, Logger: promslog.NewNopLogger()})
	res := doScrape(t, h, "")
	gwLabel := map[string]string{"gateway": "main"}
	if v, ok := res.Value("clawdbot_process_up", gwLabel); !ok || v != 1 {
		t.Fatalf("process_up = %v (%v)\n%s", v, ok, res.Body)
	}
	if v, _ := res.Value("clawdbot_process_tree_processes", gwLabel); v != 3 {
		t.Errorf("tree_processes = %v, want 3 (sh and its two sleeps)", v)
	}
	rss, _ := res.Value("clawdbot_process_resident_memory_bytes", gwLabel)
	tree, _ := res.Value("clawdbot_process_tree_resident_memory_bytes", gwLabel)
	anon, okAnon := res.Value("clawdbot_process_tree_resident_memory_anon_bytes", gwLabel)
	if rss <= 0 || tree <= rss {
		t.Errorf("tree RSS %v, main RSS %v: want the tree larger than its root", tree, rss)
	}
	if !okAnon || anon <= 0 || anon > tree {
		t.Errorf("tree anon RSS %v (%v), tree RSS %v", anon, okAnon, tree)
	}
}

// The open-files limit is kept for keepLimitsFor, then read again; the V8
// heap limit (fixed at start) is kept for the process's life.
func TestProcessKeepsLimits(t *testing.T) {
	cfg, lockDir := processGatewayHome(t, "clawdbot")
	gw := exec.Command("sleep", "60")
	gw.Env = []string{"NODE_OPTIONS=--max-old-space-size=123"}
	if err := gw.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = gw.Process.Kill(); _ = gw.Wait() }()
	pid := gw.Process.Pid
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		t.Fatal(err)
	}
	p, _ := fs.Proc(pid)
	stat, err := p.Stat()
	if err != nil {
		t.Fatal(err)
	}
	writeProcessLock(t, lockDir, cfg, pid, stat.Starttime)
	col, err := newProcessCollector(Config{
		Gateways: []gateway.Target{{Name: "main", URL: "ws://127.0.0.1:1", ConfigPath: cfg, StateDir: filepath.Dir(cfg)}},
		LockDirs: []string{lockDir},
	}, promslog.NewNopLogger())
	if err != nil {
		t.Fatal(err)
	}
	c := col.(*processCollector)
	value := func(desc *prometheus.Desc, kind string) float64 {
		t.Helper()
		ch := make(chan prometheus.Metric, 100)
		if err := c.Update(t.Context(), ch); err != nil {
			t.Fatal(err)
		}
		close(ch)
		for m := range ch {
			var pb dto.Metric
			if m.Desc() != desc || m.Write(&pb) != nil {
				continue
			}
			if kind == "" || slices.ContainsFunc(pb.GetLabel(), func(l *dto.LabelPair) bool { return l.GetValue() == kind }) {
				return pb.GetGauge().GetValue()
			}
		}
		t.Fatalf("no %s %s", desc, kind)
		return 0
	}
	if v := value(procLimitDesc, "v8_heap"); v != 123<<20 {
		t.Fatalf("v8_heap limit %v, want %v", v, 123<<20)
	}
	before := value(procMaxFDsDesc, "")
	lower := unix.Rlimit{Cur: uint64(before) - 1, Max: uint64(before) - 1}
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, &lower, nil); err != nil {
		t.Fatal(err)
	}
	if v := value(procMaxFDsDesc, ""); v != before {
		t.Errorf("max_fds %v right after prlimit, want the kept %v", v, before)
	}
	c.kept["main"].limitsAt = time.Now().Add(-keepLimitsFor)
	if v := value(procMaxFDsDesc, ""); v != before-1 {
		t.Errorf("max_fds %v once the kept limit expired, want %v", v, before-1)
	}
	if v := value(procLimitDesc, "v8_heap"); v != 123<<20 {
		t.Errorf("v8_heap limit %v after the refresh, want %v", v, 123<<20)
	}
	// Its start time matches procfs's own computation.
	want, err := stat.StartTime()
	if err != nil {
		t.Fatal(err)
	}
	if v := value(procStartDesc, ""); v != want {
		t.Errorf("start time %v, want %v", v, want)
	}
}

// processGatewayHome writes an empty gateway config at
// <a temp home>/.<product>/<product>.json and makes a lock dir named as the
// gateway's (clawdbot-<uid>).
func processGatewayHome(t *testing.T, product string) (cfg, lockDir string) {
	t.Helper()
	cfg = filepath.Join(t.TempDir(), "."+product, product+".json")
	if err := os.MkdirAll(filepath.Dir(cfg), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, []byte(`{}`), 0o600); err != nil {
		t.Fatal(err)
	}
	lockDir = filepath.Join(t.TempDir(), fmt.Sprintf("clawdbot-%d", os.Getuid()))
	if err := os.MkdirAll(lockDir, 0o755); err != nil {
		t.Fatal(err)
	}
	return cfg, lockDir
}

// writeProcessLock writes the gateway's lock for cfg into lockDir, held by
// pid with its start time (clock ticks since boot, as in /proc/pid/stat).
func writeProcessLock(t *testing.T, lockDir, cfg string, pid int, start uint64) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(lockDir, lockfile.Name("clawdbot", cfg)), fmt.Appendf(nil,
		`{"pid":%d,"createdAt":"2026-12-01T00:00:00Z","configPath":%q,"startTime":%d}`, pid, cfg, start), 0o644); err != nil {
		t.Fatal(err)
	}
}
