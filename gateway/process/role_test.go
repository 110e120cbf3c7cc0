package process

import (
	"testing"

	"github.com/clawdbot-exporter/clawdbot_exporter/gateway"
	"github.com/clawdbot-exporter/clawdbot_exporter/gateway/lockfile"
	"github.com/clawdbot-exporter/clawdbot_exporter/internal/testutil"
)

// TestFindSkipsRoleHolders: a live openclaw doctor (role
// sqlite-maintenance) holding the gateway's lock is not the gateway
// process; the gateway's own live lock is.
func TestFindSkipsRoleHolders(t *testing.T) {
	root, fs := testutil.ProcTreeAt(t, map[int]testutil.FakeProc{
		300: {Starttime: 1, Comm: "openclaw"},
		400: {Starttime: 2, Comm: "openclaw-gatewa"},
	})
	target := gateway.Target{Name: "gw", URL: "ws://127.0.0.1:18789"}
	doctor := lockfile.Lock{Gateway: "gw", PID: 300, State: lockfile.OwnerAlive, Role: "sqlite-maintenance"}
	gw := lockfile.Lock{Gateway: "gw", PID: 400, State: lockfile.OwnerAlive, Role: "gateway"}
	if p, _ := Find(fs, root, target, []lockfile.Lock{doctor, gw}); p == nil || p.PID != 400 || p.Method != "lock" {
		t.Errorf("with the doctor's and the gateway's locks: %+v, want pid 400 by lock", p)
	}
	if p, _ := Find(fs, root, target, []lockfile.Lock{doctor}); p != nil && p.PID == 300 {
		t.Errorf("the doctor was taken for the gateway: %+v", p)
	}
	var f Finder
	if p, _ := f.Find(fs, root, target, []lockfile.Lock{gw}); p == nil || p.PID != 400 {
		t.Fatalf("finder: %+v", p)
	}
	if lockNamesOther(target, []lockfile.Lock{doctor}, 400) {
		t.Error("a role holder's lock displaced the gateway found before")
	}
}
