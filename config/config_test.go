package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/promslog"
)

func write(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func sources(home, path string) Sources {
	return Sources{Path: path, Env: func(string) string { return "" }, Home: home,
		Web: Web{ListenAddresses: []string{"127.0.0.1:9789"}}}
}

const execAction = "action: {type: exec, exec: {command: [/bin/true]}}"

// Start (Load) and --config.check (Check) run the same validation: every
// configuration that stops the start fails the check with the same message,
// and the check also fails on gateway files that do not exist, which the
// start only reports.
func TestLoadAndCheckAgree(t *testing.T) {
	home := t.TempDir()
	dir := t.TempDir()
	gwConfig := write(t, dir, "openclaw.json", `{gateway: {port: 18790, auth: {token: "T"}}}`)
	token := write(t, dir, "token", "webhook-token\n")
	tests := []struct {
		name    string
		doc     string
		web     []string // listen addresses; default loopback
		token   string
		loadErr string // the start fails with this
		problem string // the start runs, reports this; the check fails with it
		targets int
	}{
		{name: "one gateway", doc: "gateways:\n- name: a\n  url: ws://127.0.0.1:1\n", targets: 1},
		{name: "gateway from its config", doc: "gateways:\n- name: a\n  config_path: " + gwConfig + "\n", targets: 1},
		{name: "remediation only (gateway from flags)", doc: "remediation:\n  targets:\n  - name: r\n    gateway: default\n    " + execAction + "\n", targets: 1},
		{name: "empty file", doc: "", loadErr: "is empty"},
		{name: "comments only", doc: "# nothing\n", loadErr: "is empty"},
		{name: "nothing in it", doc: "gateways: []\n", loadErr: "neither gateways nor remediation"},
		{name: "missing name", doc: "gateways:\n- url: ws://x\n", loadErr: "gateways[0]: name is required"},
		{name: "duplicate", doc: "gateways:\n- name: a\n- name: a\n", loadErr: `duplicate name "a"`},
		{name: "typo", doc: "gateway:\n- name: a\n", loadErr: "field gateway not found"},
		{name: "not YAML", doc: "gateways: [", loadErr: "yaml"},
		{name: "wrong type, one line", doc: "gateways: 3\n", loadErr: "cannot unmarshal"},
		{name: "bad URL", doc: "gateways:\n- name: a\n  url: ftp://x\n", loadErr: "scheme must be ws or wss"},
		{name: "remediation for an unknown gateway", doc: "remediation:\n  targets:\n  - name: r\n    gateway: nope\n    " + execAction + "\n", loadErr: `gateway "nope" is not one the exporter probes`},
		{name: "relative exec command", doc: "remediation:\n  targets:\n  - name: r\n    gateway: default\n    action: {type: exec, exec: {command: [restart.sh]}}\n", loadErr: "absolute path"},
		{name: "remediation beyond loopback without auth", web: []string{":9789"}, doc: "remediation:\n  targets:\n  - name: r\n    gateway: default\n    " + execAction + "\n", loadErr: "refusing to serve remediation beyond loopback"},
		{name: "remediation beyond loopback with a token", web: []string{":9789"}, token: token, doc: "remediation:\n  targets:\n  - name: r\n    gateway: default\n    " + execAction + "\n", targets: 1},
		{name: "missing token file", token: "/nonexistent/token", doc: "gateways:\n- name: a\n", loadErr: "remediation token file"},
		{name: "profile without a directory", doc: "gateways:\n- name: work\n  profile: work\n", problem: `profile "work": no gateway config`, targets: 1},
		{name: "config_path that does not exist", doc: "gateways:\n- name: a\n  config_path: /nonexistent/openclaw.json\n", problem: "no such file", targets: 1},
		{name: "config_path that does not parse", doc: "gateways:\n- name: a\n  config_path: " + write(t, dir, "bad.json", "{gateway: {") + "\n", problem: "invalid JSON5", targets: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := sources(home, write(t, t.TempDir(), "config.yml", tc.doc))
			if tc.web != nil {
				src.Web.ListenAddresses = tc.web
			}
			src.WebhookTokenFile = tc.token
			snap, loadErr := Load(src)
			_, checkErr := Check(src)
			switch {
			case tc.loadErr != "":
				if loadErr == nil || !strings.Contains(loadErr.Error(), tc.loadErr) {
					t.Fatalf("start: %v, want %q", loadErr, tc.loadErr)
				}
				if checkErr == nil || checkErr.Error() != loadErr.Error() {
					t.Errorf("check says %v, start says %v", checkErr, loadErr)
				}
				if strings.Contains(loadErr.Error(), "\n") {
					t.Errorf("multi-line error: %q", loadErr)
				}
			case tc.problem != "":
				if loadErr != nil || len(snap.Problems) != 1 || !strings.Contains(snap.Problems[0].Err.Error(), tc.problem) {
					t.Fatalf("start: %v, problems %v; want it to run and report %q", loadErr, snap.Problems, tc.problem)
				}
				if checkErr == nil || !strings.Contains(checkErr.Error(), tc.problem) {
					t.Errorf("check: %v, want it to fail with %q", checkErr, tc.problem)
				}
			default:
				if loadErr != nil || checkErr != nil {
					t.Fatalf("start %v, check %v", loadErr, checkErr)
				}
			}
			if snap != nil && len(snap.Targets) != tc.targets {
				t.Errorf("%d targets, want %d", len(snap.Targets), tc.targets)
			}
		})
	}
}

func TestFlagsAndFileGateways(t *testing.T) {
	src := sources(t.TempDir(), write(t, t.TempDir(), "c.yml", "gateways:\n- name: a\n"))
	src.GatewaySet = true
	if _, err := Load(src); err == nil || !strings.Contains(err.Error(), "not with --gateway.* flags") {
		t.Errorf("flags and file both: %v", err)
	}
}

// A profile never falls back to the default gateway's files.
func TestProfileNeverFallsBack(t *testing.T) {
	home := t.TempDir()
	if err := os.MkdirAll(filepath.Join(home, ".openclaw"), 0o700); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(home, ".openclaw"), "openclaw.json", `{gateway: {port: 18789}}`)
	snap, err := Load(sources(home, write(t, t.TempDir(), "c.yml", "gateways:\n- name: work\n  profile: work\n")))
	if err != nil {
		t.Fatal(err)
	}
	tg := snap.Targets[0]
	if strings.Contains(tg.StateDir, ".openclaw"+string(filepath.Separator)) || tg.StateDir == filepath.Join(home, ".openclaw") || tg.ConfigPath != "" {
		t.Errorf("profile work resolved to the default gateway: state %s config %s", tg.StateDir, tg.ConfigPath)
	}
}

// A reload swaps the whole snapshot; a failed one keeps it, and the
// metrics say which.
func TestHolderReload(t *testing.T) {
	home := t.TempDir()
	path := write(t, t.TempDir(), "c.yml", "gateways:\n- name: a\n  url: ws://127.0.0.1:1\n")
	reg := prometheus.NewRegistry()
	h, err := NewHolder(sources(home, path), reg, promslog.NewNopLogger())
	if err != nil {
		t.Fatal(err)
	}
	var applied []int
	h.OnReload(func(s *Snapshot) error { applied = append(applied, len(s.Targets)); return nil })
	if err := os.WriteFile(path, []byte("gateways:\n- name: a\n  url: ws://127.0.0.1:1\n- name: b\n  url: ws://127.0.0.1:2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := h.Reload(); err != nil || len(h.Current().Targets) != 2 || len(applied) != 1 {
		t.Fatalf("reload: %v, %d targets, applied %v", err, len(h.Current().Targets), applied)
	}
	if v := testutil.ToFloat64(h.lastOK); v != 1 {
		t.Errorf("last_reload_successful = %v", v)
	}
	if err := os.WriteFile(path, []byte("gateways: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := h.Reload(); err == nil || len(h.Current().Targets) != 2 {
		t.Fatalf("broken reload: %v, %d targets (the old snapshot must stay)", err, len(h.Current().Targets))
	}
	if v := testutil.ToFloat64(h.lastOK); v != 0 {
		t.Errorf("last_reload_successful = %v after a failure", v)
	}
	if n, err := testutil.GatherAndCount(reg); err != nil || n != 2 {
		t.Errorf("%d metrics registered (%v), want 2", n, err)
	}
}

// A gateway whose files appear after the start is picked up without a
// reload (a sidecar that starts before its gateway).
func TestHolderPicksUpGatewayFiles(t *testing.T) {
	home := t.TempDir()
	h, err := NewHolder(sources(home, write(t, t.TempDir(), "c.yml", "gateways:\n- name: work\n  profile: work\n")), nil, promslog.NewNopLogger())
	if err != nil {
		t.Fatal(err)
	}
	if s := h.Current(); len(s.Problems) != 1 || s.Targets[0].URL != "ws://127.0.0.1:18789" {
		t.Fatalf("before: problems %v, url %s", s.Problems, s.Targets[0].URL)
	}
	dir := filepath.Join(home, ".openclaw-work")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	write(t, dir, "openclaw.json", `{gateway: {port: 19001}}`)
	var s *Snapshot
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if s = h.Targets(); len(s.Problems) == 0 {
			break
		}
	}
	if len(s.Problems) != 0 || s.Targets[0].URL != "ws://127.0.0.1:19001" || s.Targets[0].StateDir != dir {
		t.Errorf("after the files appeared: problems %v, url %s, state %s", s.Problems, s.Targets[0].URL, s.Targets[0].StateDir)
	}
}
