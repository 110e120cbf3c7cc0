package collector

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/procfs"

	"github.com/clawdbot-exporter/clawdbot_exporter/gateway"
	gt "github.com/clawdbot-exporter/clawdbot_exporter/gateway/gatewaytest"
	"github.com/clawdbot-exporter/clawdbot_exporter/gateway/lockfile"
	"github.com/clawdbot-exporter/clawdbot_exporter/internal/metrictest"
)

var update = flag.Bool("update", false, "rewrite testdata/metrics.golden and testdata/exposition.golden")

const goldenPath = "testdata/metrics.golden"

// TestMetricNamesGolden scrapes the exporter with every collector against a
// fake clawdbot (protocol 3) and a fake openclaw (protocol 4), a state dir
// with session stores, a config file, a lock owned by a live child process
// and a sysfs fixture with a cgroup memory limit, and compares the metric
// names with testdata/metrics.golden: the list the mixin's tests check every
// alert, rule and dashboard query against. -update rewrites it.
func TestMetricNamesGolden(t *testing.T) {
	res, _ := fixtureScrape(t)
	var got []string
	sc := bufio.NewScanner(strings.NewReader(res.Body))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) >= 3 && f[0] == "#" && f[1] == "TYPE" {
			got = append(got, f[2])
		}
	}
	metrictest.Golden(t, goldenPath, got, *update, "go test ./collector/ -run TestMetricNamesGolden -update")
}

// fixtureScrape is one scrape of the fixture TestMetricNamesGolden
// describes, and the paths and addresses in it that change from run to
// run, for masking.
func fixtureScrape(t *testing.T) (scrapeResult, map[string]string) {
	t.Helper()
	// clawdbot reports whether a channel account runs (README), which the
	// fake's default payload leaves out.
	var health map[string]any
	if err := json.Unmarshal(gt.DefaultHealth(3, time.Now()), &health); err != nil {
		t.Fatal(err)
	}
	account := health["channels"].(map[string]any)["telegram"].(map[string]any)["accounts"].(map[string]any)["default"].(map[string]any)
	account["running"] = true
	payload, _ := json.Marshal(health)
	p3 := gt.New(gt.Options{Protocol: 3, Health: payload})
	t.Cleanup(p3.Close)
	p4 := gt.New(gt.Options{Protocol: 4})
	t.Cleanup(p4.Close)

	home := t.TempDir()
	cfg := filepath.Join(home, ".clawdbot", "clawdbot.json")
	_ = os.MkdirAll(filepath.Dir(cfg), 0o700)
	// reply is a key the gateway refuses (config_unknown_key 1).
	if err := os.WriteFile(cfg, []byte(`{gateway: {port: 18789, bind: "loopback", auth: {mode: "token", token: "t"}}, reply: {}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	lockRoot := t.TempDir()
	lockDir := filepath.Join(lockRoot, fmt.Sprintf("clawdbot-%d", os.Getuid()))
	_ = os.MkdirAll(lockDir, 0o755)

	// The lock's owner: a live child with a V8 heap cap, so the process
	// collector finds it by its lock and reports both memory limits.
	child := exec.Command("sleep", "60")
	child.Env = append(os.Environ(), "NODE_OPTIONS=--max-old-space-size=1536")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = child.Process.Kill(); _ = child.Wait() })
	fs, _ := procfs.NewDefaultFS()
	p, _ := fs.Proc(child.Process.Pid)
	stat, err := p.Stat()
	if err != nil {
		t.Fatal(err)
	}
	lock := fmt.Sprintf(`{"pid":%d,"createdAt":%q,"configPath":%q,"startTime":%d}`,
		child.Process.Pid, time.Now().UTC().Format(time.RFC3339Nano), cfg, stat.Starttime)
	if err := os.WriteFile(filepath.Join(lockDir, lockfile.Name("clawdbot", cfg)), []byte(lock), 0o644); err != nil {
		t.Fatal(err)
	}

	// A cgroup limit at the root of both hierarchies: found whatever cgroup
	// the child is in.
	sysfs := t.TempDir()
	for path, v := range map[string]string{"fs/cgroup/memory.max": "2147483648\n", "fs/cgroup/memory/memory.limit_in_bytes": "2147483648\n"} {
		_ = os.MkdirAll(filepath.Join(sysfs, filepath.Dir(path)), 0o755)
		if err := os.WriteFile(filepath.Join(sysfs, path), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// openclaw's lock set with a stuck reclaim guard and a held
	// coordinator: the lock_* series of the openclaw column.
	ocState := t.TempDir()
	ocLocks, _ := openclawLockSet(t, ocState, filepath.Join(ocState, "openclaw.json"))

	targets := []gateway.Target{
		{Name: "clawdbot", URL: p3.URL(), Token: gt.DefaultToken, ConfigPath: cfg, StateDir: sessionsFixture},
		{Name: "openclaw", URL: p4.URL(), Token: gt.DefaultToken, StateDir: ocState},
	}
	exp, err := New(Config{Gateways: targets, ClientVersion: "test", SysfsPath: sysfs, LockDirs: []string{lockDir, ocLocks}}, names(), promslog.NewNopLogger())
	if err != nil {
		t.Fatal(err)
	}
	// serve.go's static registry also holds the Go and process collectors;
	// their go_*/process_* names depend on the Go version and are left out.
	static := prometheus.NewRegistry()
	static.MustRegister(versioncollector.NewCollector("clawdbot_exporter"))
	h := NewHandler(exp, static, HandlerOpts{MaxTimeout: 5 * time.Second, Logger: promslog.NewNopLogger()})
	res := doScrape(t, h, "")
	for _, c := range names() {
		if v, _ := res.Value("clawdbot_exporter_collector_success", map[string]string{"collector": c}); v != 1 {
			t.Fatalf("collector %s failed:\n%s", c, res.Body)
		}
	}
	for _, gw := range []string{"clawdbot", "openclaw"} {
		if v, _ := res.Value("clawdbot_up", map[string]string{"gateway": gw}); v != 1 {
			t.Fatalf("%s not up: %v", gw, res.Failing(gw))
		}
	}
	return res, map[string]string{
		home: "$HOME", lockRoot: "$LOCKS", ocState: "$OPENCLAW_STATE", sysfs: "$SYSFS",
		p3.URL(): "$CLAWDBOT_URL", p4.URL(): "$OPENCLAW_URL",
	}
}
