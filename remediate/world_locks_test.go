package remediate

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/clawdbot-exporter/clawdbot_exporter/gateway"
	"github.com/clawdbot-exporter/clawdbot_exporter/gateway/lockfile"
	"github.com/clawdbot-exporter/clawdbot_exporter/internal/testutil"
)

// TestRemoveStaleLocksClearsWhatBlocks: remove_stale_lock does what
// `locks --remove-stale` does for its one gateway: the dead-owner lock and
// the stuck reclaim guard go; another gateway's stale lock stays; a live
// non-gateway holder stays and is reported as still blocking.
func TestRemoveStaleLocksClearsWhatBlocks(t *testing.T) {
	root, fs := testutil.ProcTreeAt(t, map[int]testutil.FakeProc{4300: {Starttime: 7, Comm: "openclaw"}})
	testutil.MustWrite(t, filepath.Join(root, "locks"), "")
	stateDir := t.TempDir()
	cfg := filepath.Join(stateDir, "openclaw.json")
	dir := filepath.Join(stateDir, "tmp", fmt.Sprintf("openclaw-%d", os.Getuid()))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	lock := filepath.Join(dir, lockfile.Name("openclaw", cfg))
	testutil.MustWrite(t, lock, fmt.Sprintf(`{"pid":4194000,"configPath":%q,"startTime":1}`, cfg))
	guard := lock + ".reclaim"
	if err := os.Mkdir(guard, 0o700); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-3 * time.Minute)
	_ = os.Chtimes(guard, old, old)
	other := filepath.Join(dir, "gateway.00000000.lock")
	testutil.MustWrite(t, other, `{"pid":4194001,"configPath":"/elsewhere/openclaw.json","startTime":1}`)
	w := &LocalWorld{Gateways: func() []gateway.Target {
		return []gateway.Target{{Name: "oc", ConfigPath: cfg, StateDir: stateDir}}
	}, FS: fs, ProcRoot: root}

	removed, err := w.RemoveStaleLocks("oc")
	if err != nil || fmt.Sprint(removed) != fmt.Sprint([]string{lock, guard}) {
		t.Errorf("removed %v, err %v; want the lock and the guard", removed, err)
	}
	if _, err := os.Lstat(other); err != nil {
		t.Errorf("another gateway's lock was touched: %v", err)
	}

	// openclaw doctor holds the state lock: kept, and an error says so.
	state := filepath.Join(dir, lockfile.StateLockName)
	testutil.MustWrite(t, state, fmt.Sprintf(`{"pid":4300,"configPath":%q,"role":"sqlite-maintenance","startTime":7}`, cfg))
	removed, err = w.RemoveStaleLocks("oc")
	if len(removed) != 0 || err == nil || !strings.Contains(err.Error(), lockfile.WhyHeldByNonGateway) {
		t.Errorf("with a doctor holding the state lock: removed %v, err %v", removed, err)
	}
	if _, err := os.Lstat(state); err != nil {
		t.Errorf("a live holder's lock was removed: %v", err)
	}
}
