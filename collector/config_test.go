package collector

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/clawdbot-exporter/clawdbot_exporter/gateway"
	"github.com/clawdbot-exporter/clawdbot_exporter/internal/testutil"
)

// syncBuffer is a log sink safe for the collectors' goroutines.
type syncBuffer = testutil.SyncBuffer

func configFixture(name string) string {
	return filepath.Join("..", "gateway", "configfile", "testdata", name)
}

func TestConfigCollector(t *testing.T) {
	dir := t.TempDir()
	deleted := filepath.Join(dir, "clawdbot.json")
	copyFile(t, configFixture("lan-token.json5"), deleted)
	changing := filepath.Join(dir, "openclaw.json")
	copyFile(t, configFixture("loopback-noauth.json5"), changing)

	targets := []gateway.Target{
		{Name: "guide", URL: "ws://127.0.0.1:1", ConfigPath: configFixture("guide-summary.json")},
		{Name: "stability", URL: "ws://127.0.0.1:1", ConfigPath: configFixture("guide-stability.json")},
		{Name: "noauth", URL: "ws://127.0.0.1:1", ConfigPath: configFixture("lan-noauth.json5")},
		{Name: "none", URL: "ws://127.0.0.1:1", ConfigPath: configFixture("openclaw-none-lan.json5")},
		{Name: "proxy", URL: "ws://127.0.0.1:1", ConfigPath: configFixture("openclaw-trusted-proxy.json5")},
		{Name: "garbage", URL: "ws://127.0.0.1:1", ConfigPath: configFixture("garbage.json5")},
		{Name: "empty", URL: "ws://127.0.0.1:1", ConfigPath: configFixture("empty.json5")},
		{Name: "noconfig", URL: "ws://127.0.0.1:1"},
		{Name: "deleted", URL: "ws://127.0.0.1:1", ConfigPath: deleted},
		{Name: "changing", URL: "ws://127.0.0.1:1", ConfigPath: changing},
	}
	logs := &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	exp, err := New(Config{Gateways: targets}, []string{"config"}, logger)
	if err != nil {
		t.Fatal(err)
	}
	h := NewHandler(exp, prometheus.NewRegistry(), HandlerOpts{MaxTimeout: 5 * time.Second, Logger: logger})

	res := doScrape(t, h, "")
	if v, _ := res.Value("clawdbot_exporter_collector_success", map[string]string{"collector": "config"}); v != 1 {
		t.Errorf("collector_success = %v, want 1 (an unparseable config is a finding, not a failure)", v)
	}
	type sample struct {
		name   string
		labels map[string]string
		want   float64 // -1: absent
	}
	gw := func(name string, extra ...string) map[string]string {
		l := map[string]string{"gateway": name}
		for i := 0; i+1 < len(extra); i += 2 {
			l[extra[i]] = extra[i+1]
		}
		return l
	}
	checks := []sample{
		{"clawdbot_config_parse_ok", gw("guide"), 1},
		{"clawdbot_config_info", gw("guide", "bind", "lan", "auth_mode", "password"), 1},
		{"clawdbot_config_exposed_without_auth", gw("guide"), 0},
		{"clawdbot_config_auth_secret_missing", gw("guide"), 1},
		{"clawdbot_config_unknown_key", gw("guide", "key", "session.historyLimit"), 1},
		{"clawdbot_config_unknown_key", gw("guide", "key", "reply"), 0},

		{"clawdbot_config_info", gw("stability", "bind", "loopback", "auth_mode", "none"), 1},
		{"clawdbot_config_exposed_without_auth", gw("stability"), 0},
		{"clawdbot_config_unknown_key", gw("stability", "key", "session.historyLimit"), 1},
		{"clawdbot_config_unknown_key", gw("stability", "key", "reply"), 1},

		{"clawdbot_config_info", gw("noauth", "bind", "lan", "auth_mode", "none"), 1},
		{"clawdbot_config_exposed_without_auth", gw("noauth"), 1},
		{"clawdbot_config_auth_secret_missing", gw("noauth"), 0},
		{"clawdbot_config_exposed_without_auth", gw("none"), 1},
		{"clawdbot_config_info", gw("proxy", "bind", "lan", "auth_mode", "trusted-proxy"), 1},
		{"clawdbot_config_exposed_without_auth", gw("proxy"), 0},

		{"clawdbot_config_parse_ok", gw("garbage"), 0},
		{"clawdbot_config_info", gw("garbage"), -1},
		{"clawdbot_config_unknown_key", gw("garbage"), -1},
		{"clawdbot_config_parse_ok", gw("empty"), 0},

		{"clawdbot_config_parse_ok", gw("noconfig"), -1},
		{"clawdbot_config_last_modified_timestamp_seconds", gw("noconfig"), -1},

		{"clawdbot_config_parse_ok", gw("deleted"), 1},
		{"clawdbot_config_info", gw("deleted", "bind", "lan", "auth_mode", "token"), 1},
		{"clawdbot_config_parse_ok", gw("changing"), 1},
		{"clawdbot_config_exposed_without_auth", gw("changing"), 0},
		// openclaw without gateway.auth: token mode with a made-up token.
		{"clawdbot_config_info", gw("changing", "auth_mode", "token", "tls", "disabled"), 1},
		{"clawdbot_config_auth_secret_missing", gw("changing"), 1},
		{"clawdbot_config_present", gw("changing"), 1},
		{"clawdbot_config_schema_info", gw("changing", "source", "builtin"), 1},
	}
	check := func(res scrapeResult, checks []sample) {
		t.Helper()
		for _, c := range checks {
			v, ok := res.Value(c.name, c.labels)
			switch {
			case c.want < 0 && ok:
				t.Errorf("%s%v = %v, want absent", c.name, c.labels, v)
			case c.want >= 0 && (!ok || v != c.want):
				t.Errorf("%s%v = %v (present %t), want %v", c.name, c.labels, v, ok, c.want)
			}
		}
	}
	check(res, checks)
	for _, name := range []string{"guide", "garbage"} {
		st, err := os.Stat(targets[map[string]int{"guide": 0, "garbage": 5}[name]].ConfigPath)
		if err != nil {
			t.Fatal(err)
		}
		v, _ := res.Value("clawdbot_config_last_modified_timestamp_seconds", gw(name))
		if want := float64(st.ModTime().UnixNano()) / 1e9; v != want {
			t.Errorf("%s mtime = %v, want %v", name, v, want)
		}
	}
	if problems, err := promlint.New(strings.NewReader(res.Body)).Lint(); err != nil || len(problems) > 0 {
		t.Errorf("promlint: %v %v", err, problems)
	}

	// The gateway's config is deleted; another is edited to bind lan.
	if err := os.Remove(deleted); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(changing, []byte(`{gateway: {bind: "lan"}, session: {historyLimit: 1}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	res = doScrape(t, h, "")
	check(res, []sample{
		{"clawdbot_config_present", gw("deleted"), 0},
		{"clawdbot_config_parse_ok", gw("deleted"), -1},
		{"clawdbot_config_last_modified_timestamp_seconds", gw("deleted"), -1},
		{"clawdbot_config_info", gw("deleted"), -1},
		{"clawdbot_config_exposed_without_auth", gw("changing"), 1},
		{"clawdbot_config_unknown_key", gw("changing", "key", "session.historyLimit"), 1},
		{"clawdbot_config_parse_ok", gw("guide"), 1},
	})
	if v, _ := res.Value("clawdbot_exporter_collector_success", map[string]string{"collector": "config"}); v != 1 {
		t.Errorf("collector_success = %v after a deletion", v)
	}

	// Findings are logged once, not on every scrape.
	before := strings.Count(logs.String(), "gateway config unreadable")
	doScrape(t, h, "")
	if after := strings.Count(logs.String(), "gateway config unreadable"); after != before || before != 3 {
		t.Errorf("unreadable logged %d then %d times, want 3 (garbage, empty, deleted) once", before, after)
	}
	if !strings.Contains(logs.String(), `key=session.historyLimit`) {
		t.Errorf("the refused key was not logged:\n%s", logs)
	}
}

// TestConfigCollectorNoSecrets: every fixture through the collector; no
// secret reaches /metrics or the logs, whatever the file holds.
func TestConfigCollectorNoSecrets(t *testing.T) {
	files, err := filepath.Glob(configFixture("*"))
	if err != nil || len(files) == 0 {
		t.Fatal(err, files)
	}
	var targets []gateway.Target
	var secrets []string
	for _, f := range files {
		targets = append(targets, gateway.Target{Name: filepath.Base(f), URL: "ws://127.0.0.1:1", ConfigPath: f})
	}
	// The values themselves, not only the marker, in case a label is cut.
	for _, s := range []string{"s3cr3t-lan-token", "YOUR_TOKEN", "s3cr3t-included-token", "s3cr3t-both-password",
		"S3CR3T_TOKEN_VAR", "s3cr3t-pasted", "s3cr3t-garbage-token", "s3cr3t-odd", "s3cr3t-bom"} {
		secrets = append(secrets, s, s[:len(s)-2])
	}
	secrets = append(secrets, "s3cr3t", "S3CR3T")
	logs := &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	exp, err := New(Config{Gateways: targets}, []string{"config"}, logger)
	if err != nil {
		t.Fatal(err)
	}
	h := NewHandler(exp, prometheus.NewRegistry(), HandlerOpts{MaxTimeout: 5 * time.Second, Logger: logger})
	res := doScrape(t, h, "")
	if v, _ := res.Value("clawdbot_config_info", map[string]string{"gateway": "secret-in-bind.json5", "bind": "<secret>"}); v != 1 {
		t.Errorf("a secret pasted as bind should show as <secret>")
	}
	for _, s := range secrets {
		if strings.Contains(res.Body, s) {
			t.Errorf("/metrics holds secret %q", s)
		}
		if strings.Contains(logs.String(), s) {
			t.Errorf("the logs hold secret %q", s)
		}
	}
	if !strings.Contains(logs.String(), "invalid JSON5") {
		t.Errorf("nothing logged about the garbage fixture:\n%s", logs)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
