package collector

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/promslog"

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
				if v, ok := res.value("clawdbot_exporter_collector_success", map[string]string{"collector": c}); !ok || v != 1 {
					t.Errorf("collector_success{%s} = %v (present %v), want 1", c, v, ok)
				}
			}
			want := map[string]string{good: "dead"}
			for name, state := range tc.want {
				want[labelValue(filepath.Join(dir, name))] = state
			}
			for path, state := range want {
				for _, s := range lockfile.OwnerStates() {
					v, ok := res.value("clawdbot_lock_owner_state", map[string]string{"path": path, "state": string(s)})
					if !ok || v != boolValue(string(s) == state) {
						t.Errorf("lock_owner_state{path=%q,state=%s} = %v (present %v), want the state %s\n%s", path, s, v, ok, state, res.body)
					}
				}
			}
			if n := strings.Count(res.body, "clawdbot_lock_present{"); n != len(want) {
				t.Errorf("%d locks reported, want %d\n%s", n, len(want), res.body)
			}
		})
	}
}
