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
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/procfs"

	"github.com/clawdbot-exporter/clawdbot_exporter/gateway"
	"github.com/clawdbot-exporter/clawdbot_exporter/gateway/lockfile"
)

// TestProcessTree: a real process with two children owns the gateway's
// lock, as openclaw's gateway runs its spawn broker and SQLite worker; the
// tree metrics count all three, the main process's stay its own.
func TestProcessTree(t *testing.T) {
	home := t.TempDir()
	cfg := filepath.Join(home, ".openclaw", "openclaw.json")
	if err := os.MkdirAll(filepath.Dir(cfg), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, []byte(`{}`), 0o600); err != nil {
		t.Fatal(err)
	}
	lockDir := filepath.Join(t.TempDir(), fmt.Sprintf("clawdbot-%d", os.Getuid()))
	if err := os.MkdirAll(lockDir, 0o755); err != nil {
		t.Fatal(err)
	}
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
	lock := filepath.Join(lockDir, lockfile.Name("clawdbot", cfg))
	if err := os.WriteFile(lock, fmt.Appendf(nil, `{"pid":%d,"createdAt":"2026-12-01T00:00:00Z","configPath":%q,"startTime":%d}`,
		gw.Process.Pid, cfg, stat.Starttime), 0o644); err != nil {
		t.Fatal(err)
	}
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
