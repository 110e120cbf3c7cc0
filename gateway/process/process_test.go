package process

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/clawdbot-exporter/clawdbot_exporter/gateway"
	"github.com/clawdbot-exporter/clawdbot_exporter/gateway/lockfile"
	"github.com/clawdbot-exporter/clawdbot_exporter/internal/testutil"
)

// withFiles adds files to a fake /proc (or /sys) tree.
func withFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for rel, content := range files {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		testutil.MustWrite(t, p, content)
	}
}

func TestFindProcessByTitleAndPort(t *testing.T) {
	root, fs := testutil.ProcTreeAt(t, map[int]testutil.FakeProc{
		100: {Starttime: 1, Comm: "clawdbot-gatewa"}, // another profile's gateway, on 18790
		200: {Starttime: 2, Comm: "clawdbot-gatewa"}, // ours, on 18789
		300: {Starttime: 3, Comm: "node"},
	})
	// 18789 = 0x4965, 18790 = 0x4966; state 0A = LISTEN.
	table := "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n" +
		"   0: 0100007F:4965 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 5555 1 0000000000000000 100 0 0 10 0\n" +
		"   1: 0100007F:4966 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 6666 1 0000000000000000 100 0 0 10 0\n"
	// Each process sees the socket table of its own network namespace.
	withFiles(t, root, map[string]string{"100/net/tcp": table, "200/net/tcp": table, "300/net/tcp": table})
	for pid, inode := range map[int]int{100: 6666, 200: 5555} {
		fd := filepath.Join(root, fmt.Sprint(pid), "fd")
		_ = os.MkdirAll(fd, 0o755)
		if err := os.Symlink(fmt.Sprintf("socket:[%d]", inode), filepath.Join(fd, "3")); err != nil {
			t.Fatal(err)
		}
	}
	p, err := Find(fs, root, gateway.Target{Name: "gw", URL: "ws://127.0.0.1:18789"}, nil)
	if err != nil || p == nil || p.PID != 200 || p.Method != "title" {
		t.Fatalf("got %+v, %v; want pid 200 by title", p, err)
	}
	// The live owner of the gateway's lock wins over titles.
	p, _ = Find(fs, root, gateway.Target{Name: "gw", URL: "ws://127.0.0.1:18789"}, []lockfile.Lock{{Gateway: "gw", PID: 300, State: lockfile.OwnerAlive}})
	if p == nil || p.PID != 300 || p.Method != "lock" {
		t.Fatalf("got %+v, want pid 300 by lock", p)
	}
	// A dead owner does not count; nothing listens on 18000: none.
	p, _ = Find(fs, root, gateway.Target{Name: "gw", URL: "ws://127.0.0.1:18000"}, []lockfile.Lock{{Gateway: "gw", PID: 300, State: lockfile.OwnerDead}})
	if p != nil {
		t.Fatalf("got %+v, want none", p)
	}
}

func TestFindProcessIgnoresOtherGateways(t *testing.T) {
	// One gateway runs on this host, on 18790: it is not the target's
	// (18789), although it is the only candidate.
	root, fs := testutil.ProcTreeAt(t, map[int]testutil.FakeProc{100: {Starttime: 1, Comm: "clawdbot-gatewa"}})
	withFiles(t, root, map[string]string{
		"100/net/tcp": "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n" +
			"   0: 0100007F:4966 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 6666 1 0000000000000000 100 0 0 10 0\n",
	})
	_ = os.MkdirAll(filepath.Join(root, "100", "fd"), 0o755)
	if err := os.Symlink("socket:[6666]", filepath.Join(root, "100", "fd", "3")); err != nil {
		t.Fatal(err)
	}
	if p, _ := Find(fs, root, gateway.Target{Name: "gw", URL: "ws://127.0.0.1:18789"}, nil); p != nil {
		t.Fatalf("took pid %d, which listens on another port", p.PID)
	}
	if p, _ := Find(fs, root, gateway.Target{Name: "gw", URL: "ws://127.0.0.1:18790"}, nil); p == nil || p.PID != 100 {
		t.Fatalf("on its own port: %+v", p)
	}
}

func TestProcessFinderRemembers(t *testing.T) {
	root, fs := testutil.ProcTreeAt(t, map[int]testutil.FakeProc{
		100: {Starttime: 1, Comm: "clawdbot-gatewa"},
		200: {Starttime: 2, Comm: "clawdbot-gatewa"},
	})
	withFiles(t, root, map[string]string{
		"200/net/tcp": "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n" +
			"   0: 0100007F:4965 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 5555 1 0000000000000000 100 0 0 10 0\n",
	})
	_ = os.MkdirAll(filepath.Join(root, "200", "fd"), 0o755)
	if err := os.Symlink("socket:[5555]", filepath.Join(root, "200", "fd", "3")); err != nil {
		t.Fatal(err)
	}
	target := gateway.Target{Name: "gw", URL: "ws://127.0.0.1:18789"}
	var f Finder
	if p, _ := f.Find(fs, root, target, nil); p == nil || p.PID != 200 {
		t.Fatalf("first find: %+v", p)
	}
	// Without the socket table a fresh lookup cannot tell the two apart;
	// the remembered process still answers.
	_ = os.Remove(filepath.Join(root, "200", "net", "tcp"))
	if p, _ := Find(fs, root, target, nil); p != nil {
		t.Fatalf("fresh lookup without sockets: %+v, want none", p)
	}
	if p, _ := f.Find(fs, root, target, nil); p == nil || p.PID != 200 || p.Method != "title" {
		t.Fatalf("remembered find: %+v", p)
	}
	// A live lock naming another process wins over memory.
	if p, _ := f.Find(fs, root, target, []lockfile.Lock{{Gateway: "gw", PID: 100, State: lockfile.OwnerAlive}}); p == nil || p.PID != 100 || p.Method != "lock" {
		t.Fatalf("with a lock: %+v", p)
	}
	// The remembered process restarts under the same pid: another start
	// tick, so it is looked up again.
	testutil.ProcTreeOverwrite(t, root, 100, testutil.FakeProc{Starttime: 9, Comm: "clawdbot-gatewa"})
	if p, _ := f.Find(fs, root, target, nil); p != nil {
		t.Fatalf("after the pid was reused: %+v, want a fresh (empty) lookup", p)
	}
}

func TestCgroupMemoryLimit(t *testing.T) {
	root, fs := testutil.ProcTreeAt(t, map[int]testutil.FakeProc{10: {Comm: "clawdbot-gatewa"}, 20: {Comm: "clawdbot-gatewa"}, 30: {Comm: "clawdbot-gatewa"}})
	withFiles(t, root, map[string]string{
		"10/cgroup": "0::/user.slice/user-1000.slice/user@1000.service/app.slice/clawdbot-gateway.service\n",
		"20/cgroup": "12:pids:/docker/abc\n5:memory:/docker/abc\n1:name=systemd:/docker/abc\n",
		"30/cgroup": "0::/\n",
	})
	sys := t.TempDir()
	withFiles(t, sys, map[string]string{
		// v2: the service says max, its slice caps at 2 GiB.
		"fs/cgroup/user.slice/user-1000.slice/user@1000.service/app.slice/clawdbot-gateway.service/memory.max": "max\n",
		"fs/cgroup/user.slice/user-1000.slice/memory.max":                                                      "2147483648\n",
		// v1: the container is unlimited (2^63 rounded), docker/ caps at 1 GiB.
		"fs/cgroup/memory/docker/abc/memory.limit_in_bytes": "9223372036854771712\n",
		"fs/cgroup/memory/docker/memory.limit_in_bytes":     "1073741824\n",
	})
	for pid, want := range map[int]uint64{10: 2 << 30, 20: 1 << 30, 30: 0} {
		p, _ := fs.Proc(pid)
		got, ok := CgroupMemoryLimit(p, sys)
		if got != want || ok != (want > 0) {
			t.Errorf("pid %d: %d %v, want %d", pid, got, ok, want)
		}
	}
}

func TestHeapLimit(t *testing.T) {
	root, fs := testutil.ProcTreeAt(t, map[int]testutil.FakeProc{10: {Comm: "node"}, 20: {Comm: "clawdbot-gatewa"}, 30: {Comm: "clawdbot-gatewa"}})
	withFiles(t, root, map[string]string{
		"10/cmdline": "node\x00--max-old-space-size=1536\x00dist/index.js\x00",
		"20/environ": "HOME=/home/node\x00NODE_OPTIONS=--enable-source-maps --max-old-space-size 2048\x00",
		"30/environ": "NODE_OPTIONS=--max-old-space-size=abc\x00",
	})
	for pid, want := range map[int]uint64{10: 1536 << 20, 20: 2048 << 20, 30: 0} {
		p, _ := fs.Proc(pid)
		if got, ok := HeapLimit(p); got != want || ok != (want > 0) {
			t.Errorf("pid %d: %d %v, want %d", pid, got, ok, want)
		}
	}
}
