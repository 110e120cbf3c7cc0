package collector

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"github.com/prometheus/common/promslog"

	"github.com/clawdbot-exporter/clawdbot_exporter/gateway"
	"github.com/clawdbot-exporter/clawdbot_exporter/internal/testutil"
)

const sessionsFixture = "../gateway/sessionstore/testdata/state"

func newCollectorsHandler(t *testing.T, targets []gateway.Target, collectors ...string) http.Handler {
	t.Helper()
	exp, err := New(Config{Gateways: targets, ClientVersion: "test"}, collectors, promslog.NewNopLogger())
	if err != nil {
		t.Fatal(err)
	}
	return NewHandler(exp, prometheus.NewRegistry(), HandlerOpts{
		TimeoutOffset: 500 * time.Millisecond, MaxTimeout: 5 * time.Second, Logger: promslog.NewNopLogger(),
	})
}

func TestSessionsCollector(t *testing.T) {
	loop := t.TempDir()
	if err := os.Symlink("agents", filepath.Join(loop, "agents")); err != nil {
		t.Fatal(err)
	}
	type sample struct {
		name   string
		labels map[string]string
		value  float64 // < 0: absent
	}
	agent := func(gw, a string) map[string]string { return map[string]string{"gateway": gw, "agent": a} }
	for _, tc := range []struct {
		name    string
		targets []gateway.Target
		success float64
		samples []sample
		series  int // clawdbot_session_store_* series in all
	}{
		{
			name:    "fixture",
			targets: []gateway.Target{{Name: "gw", URL: gateway.DefaultURL, StateDir: sessionsFixture}},
			success: 1,
			series:  7 + 6 + 11, // main, ops (no updatedAt), oc (openclaw)
			samples: []sample{
				{"clawdbot_session_store_sessions", agent("gw", "main"), 4},
				{"clawdbot_session_store_transcript_bytes", agent("gw", "main"), 1030},
				{"clawdbot_session_store_largest_transcript_bytes", agent("gw", "main"), 704},
				{"clawdbot_session_store_largest_transcript_lines", agent("gw", "main"), 4},
				{"clawdbot_session_store_last_update_timestamp_seconds", agent("gw", "main"), 1795578289.438},
				{"clawdbot_session_store_read_errors", agent("gw", "main"), 0},
				{"clawdbot_session_store_sessions", agent("gw", "ops"), 0},
				{"clawdbot_session_store_transcript_bytes", agent("gw", "ops"), 323},
				{"clawdbot_session_store_largest_transcript_lines", agent("gw", "ops"), 2},
				{"clawdbot_session_store_last_update_timestamp_seconds", agent("gw", "ops"), -1},
				{"clawdbot_session_store_read_errors", agent("gw", "ops"), 1},
				{"clawdbot_session_store_info", map[string]string{"gateway": "gw", "agent": "main", "format": "json"}, 1},
				// openclaw's SQLite store (gateway/sessionstore TestSQLiteFixture).
				{"clawdbot_session_store_sessions", agent("gw", "oc"), 2},
				{"clawdbot_session_store_transcript_bytes", agent("gw", "oc"), 5600},
				{"clawdbot_session_store_largest_transcript_bytes", agent("gw", "oc"), 5500},
				{"clawdbot_session_store_largest_transcript_lines", agent("gw", "oc"), 3},
				{"clawdbot_session_store_last_update_timestamp_seconds", agent("gw", "oc"), 1795578289.438},
				{"clawdbot_session_store_read_errors", agent("gw", "oc"), 0},
				{"clawdbot_session_store_info", map[string]string{"gateway": "gw", "agent": "oc", "format": "sqlite"}, 1},
				{"clawdbot_session_store_schema_version", agent("gw", "oc"), 23},
				{"clawdbot_session_store_permission_denied", agent("gw", "oc"), 0},
				{"clawdbot_session_store_scan_progress_ratio", agent("gw", "oc"), 1},
				{"clawdbot_session_store_file_bytes", map[string]string{"gateway": "gw", "agent": "oc", "file": "database"}, 655360},
				{"clawdbot_session_store_file_bytes", map[string]string{"gateway": "gw", "agent": "oc", "file": "wal"}, -1},
				{"clawdbot_session_store_permission_denied", agent("gw", "main"), -1},
				{"clawdbot_session_store_sessions", agent("gw", "nostore"), -1},
			},
		},
		{
			name: "several gateways, some without sessions",
			targets: []gateway.Target{
				{Name: "a", URL: gateway.DefaultURL, StateDir: sessionsFixture},
				{Name: "missing", URL: gateway.DefaultURL, StateDir: filepath.Join(t.TempDir(), "nope")},
				{Name: "empty", URL: gateway.DefaultURL, StateDir: t.TempDir()},
				{Name: "nostate", URL: gateway.DefaultURL},
			},
			success: 1,
			series:  24,
			samples: []sample{
				{"clawdbot_session_store_sessions", agent("a", "main"), 4},
				{"clawdbot_session_store_sessions", map[string]string{"gateway": "missing"}, -1},
				{"clawdbot_session_store_sessions", map[string]string{"gateway": "empty"}, -1},
			},
		},
		{
			name:    "no gateway with a state dir",
			targets: []gateway.Target{{Name: "gw", URL: gateway.DefaultURL}},
			success: 1,
		},
		{
			name: "unreadable agents dir",
			targets: []gateway.Target{
				{Name: "loop", URL: gateway.DefaultURL, StateDir: loop},
				{Name: "ok", URL: gateway.DefaultURL, StateDir: sessionsFixture},
			},
			success: 0,
			series:  24, // the other gateway's are kept
			samples: []sample{
				{"clawdbot_session_store_sessions", agent("ok", "main"), 4},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newCollectorsHandler(t, tc.targets, "sessions")
			for i := range 2 { // the second from the scanner's cache
				res := doScrape(t, h, "")
				if v, ok := res.Value("clawdbot_exporter_collector_success", map[string]string{"collector": "sessions"}); !ok || v != tc.success {
					t.Fatalf("scrape %d: collector_success = %v (%v), want %v\n%s", i, v, ok, tc.success, res.Body)
				}
				series := 0
				for name, f := range res.Families {
					if strings.HasPrefix(name, "clawdbot_session_store_") {
						series += len(f.GetMetric())
					}
				}
				if series != tc.series {
					t.Errorf("scrape %d: %d session store series, want %d\n%s", i, series, tc.series, res.Body)
				}
				for _, s := range tc.samples {
					v, ok := res.Value(s.name, s.labels)
					switch {
					case s.value < 0 && ok:
						t.Errorf("%s%v = %v, want absent", s.name, s.labels, v)
					case s.value >= 0 && (!ok || v != s.value):
						t.Errorf("%s%v = %v (%v), want %v", s.name, s.labels, v, ok, s.value)
					}
				}
				problems, err := promlint.New(strings.NewReader(res.Body)).Lint()
				if err != nil || len(problems) > 0 {
					t.Errorf("promlint: %v %v", err, problems)
				}
			}
		})
	}
}

// TestSessionsWithProbe runs the collector beside the probe collector: the
// names must not clash in one exposition.
func TestSessionsWithProbe(t *testing.T) {
	targets := []gateway.Target{{Name: "gw", URL: "ws://" + testutil.RefusedAddr(t), StateDir: sessionsFixture}}
	res := doScrape(t, newCollectorsHandler(t, targets, "probe", "sessions"), "")
	for _, c := range []string{"probe", "sessions"} {
		if v, ok := res.Value("clawdbot_exporter_collector_success", map[string]string{"collector": c}); !ok || v != 1 {
			t.Errorf("collector_success{collector=%q} = %v (%v), want 1", c, v, ok)
		}
	}
	if v, ok := res.Value("clawdbot_session_store_sessions", map[string]string{"gateway": "gw", "agent": "main"}); !ok || v != 4 {
		t.Errorf("clawdbot_session_store_sessions = %v (%v), want 4", v, ok)
	}
	for _, d := range []*prometheus.Desc{sessionStoreDesc, sessionBytesDesc, sessionLargestDesc, sessionLinesDesc, sessionUpdateDesc, sessionErrorsDesc,
		sessionInfoDesc, sessionFileDesc, sessionSchemaDesc, sessionDeniedDesc, sessionProgressDesc} {
		for _, probe := range []*prometheus.Desc{agentSessionsDesc, agentActivityDesc, agentHeartbeatDesc} {
			if fqName(d) == fqName(probe) {
				t.Errorf("%s clashes with the probe collector", fqName(d))
			}
		}
	}
	problems, err := promlint.New(strings.NewReader(res.Body)).Lint()
	if err != nil || len(problems) > 0 {
		t.Errorf("promlint: %v %v", err, problems)
	}
}

func fqName(d *prometheus.Desc) string {
	s := d.String()
	_, s, _ = strings.Cut(s, `fqName: "`)
	s, _, _ = strings.Cut(s, `"`)
	return s
}

func TestSessionsCollectorDeadline(t *testing.T) {
	c, err := newSessionsCollector(Config{Gateways: []gateway.Target{{Name: "gw", StateDir: sessionsFixture}}}, promslog.NewNopLogger())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ch := make(chan prometheus.Metric, 100)
	err = c.Update(ctx, ch)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Update with an ended context = %v, want context.Canceled", err)
	}
	if len(ch) != 0 {
		t.Errorf("Update with an ended context sent %d metrics, want none", len(ch))
	}
	if err := c.Update(context.Background(), ch); err != nil || len(ch) != 24 {
		t.Errorf("Update = %v with %d metrics, want 24", err, len(ch))
	}
}

func TestSessionsCollectorNonUTF8Agent(t *testing.T) {
	state := t.TempDir()
	dir := filepath.Join(state, "agents", "bad\xff", "sessions")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "sessions.json"), []byte(`{"a":{"updatedAt":1}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	res := doScrape(t, newCollectorsHandler(t, []gateway.Target{{Name: "gw", URL: gateway.DefaultURL, StateDir: state}}, "sessions"), "")
	if v, ok := res.Value("clawdbot_session_store_sessions", map[string]string{"agent": "bad\uFFFD"}); !ok || v != 1 {
		t.Errorf("sessions{agent=bad\\uFFFD} = %v (%v), want 1\n%s", v, ok, res.Body)
	}
}

// A gateway removed by a reload leaves no scanner (and no inotify
// instance) behind.
func TestSessionsCollectorDropsRemovedGateways(t *testing.T) {
	targets := []gateway.Target{
		{Name: "a", URL: gateway.DefaultURL, StateDir: sessionsFixture},
		{Name: "b", URL: gateway.DefaultURL, StateDir: t.TempDir()},
	}
	current := targets
	col, err := newSessionsCollector(Config{Targets: func() []gateway.Target { return current }}, promslog.NewNopLogger())
	if err != nil {
		t.Fatal(err)
	}
	c := col.(*sessionsCollector)
	scrape := func() {
		ch := make(chan prometheus.Metric, 1000)
		if err := c.Update(context.Background(), ch); err != nil {
			t.Fatal(err)
		}
	}
	scrape()
	if n := len(c.scanners); n != 2 {
		t.Fatalf("%d scanners for 2 gateways", n)
	}
	current = targets[:1]
	scrape()
	if n := len(c.scanners); n != 1 {
		t.Fatalf("%d scanners after removing a gateway, want 1", n)
	}
	if _, ok := c.scanners["a\x00"+sessionsFixture]; !ok {
		t.Fatalf("the remaining gateway's scanner went: %v", c.scanners)
	}
}
