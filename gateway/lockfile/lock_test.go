package lockfile

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/procfs"

	"github.com/clawdbot-exporter/clawdbot_exporter/gateway"
	"github.com/clawdbot-exporter/clawdbot_exporter/internal/testutil"
)

func TestInspectLock(t *testing.T) {
	fs := testutil.ProcTree(t, map[int]testutil.FakeProc{
		4242: {Starttime: 266628, Comm: "clawdbot-gatewa"},
		4243: {Starttime: 999, Comm: "evil) (name) S 1"},
		4244: {Starttime: 1, Comm: "bash"},
		4245: {Starttime: 5, Comm: "clawdbot-gatewa", State: "Z"},
		1:    {Starttime: 1, Comm: "init"},
	})
	valid := `{"pid":4242,"createdAt":"2026-11-25T03:13:05.023Z","configPath":"/h/.clawdbot/clawdbot.json","startTime":266628}`
	tests := []struct {
		name    string
		content string
		setup   func(t *testing.T, path string) // instead of content
		state   OwnerState
		pid     int
		why     string
	}{
		{name: "alive", content: valid, state: OwnerAlive, pid: 4242},
		{name: "openclaw format with padding", content: "{\n  \"pid\": 4242,\n  \"ownerId\": \"x\",\n  \"createdAt\": \"2026-11-25T03:13:05.023Z\",\n  \"startTime\": 266628,\n  \"port\": 18789\n}\n\t\t   \n", state: OwnerAlive, pid: 4242},
		{name: "dead", content: `{"pid":31337,"startTime":5}`, state: OwnerDead, pid: 31337},
		{name: "reused: same pid, other start", content: `{"pid":4242,"startTime":266627}`, state: OwnerReused, pid: 4242, why: "started at tick 266628"},
		{name: "parentheses in comm", content: `{"pid":4243,"startTime":999}`, state: OwnerAlive, pid: 4243},
		{name: "no startTime, looks like a gateway", content: `{"pid":4242}`, state: OwnerAlive, pid: 4242},
		{name: "no startTime, some other program", content: `{"pid":4244}`, state: OwnerReused, pid: 4244},
		{name: "zombie owner", content: `{"pid":4245,"startTime":5}`, state: OwnerDead, pid: 4245},
		{name: "pid 1 with another start time", content: `{"pid":1,"startTime":777}`, state: OwnerReused, pid: 1},
		{name: "pid 1 matching", content: `{"pid":1,"startTime":1}`, state: OwnerAlive, pid: 1},
		{name: "garbage", content: "\x00\x01garbage{", state: OwnerUnknown, why: "not a lock"},
		{name: "empty", content: "", state: OwnerUnknown, why: "not a lock"},
		{name: "half written", content: `{"pid":42`, state: OwnerUnknown, why: "not a lock"},
		{name: "zero pid", content: `{"pid":0,"startTime":1}`, state: OwnerUnknown, why: "invalid pid"},
		{name: "negative pid", content: `{"pid":-5}`, state: OwnerUnknown, why: "invalid pid"},
		{name: "huge pid", content: `{"pid":99999999999999999999}`, state: OwnerUnknown, why: "invalid pid"},
		{name: "quoted pid, parsed leniently", content: `{"pid":"4242","startTime":266628}`, state: OwnerAlive, pid: 4242},
		{name: "pid not a number", content: `{"pid":"abc"}`, state: OwnerUnknown, why: "not a lock"},
		{name: "float pid", content: `{"pid":42.5}`, state: OwnerUnknown, why: "invalid pid"},
		{name: "bad startTime", content: `{"pid":4242,"startTime":-3}`, state: OwnerUnknown, pid: 4242, why: "invalid startTime"},
		{name: "huge file", setup: func(t *testing.T, p string) {
			testutil.MustWrite(t, p, `{"pid":4242,"pad":"`+strings.Repeat("x", 1<<20)+`"}`)
		}, state: OwnerUnknown, why: "larger than"},
		{name: "symlink out of the directory", setup: func(t *testing.T, p string) {
			target := filepath.Join(t.TempDir(), "elsewhere.lock")
			testutil.MustWrite(t, target, valid)
			if err := os.Symlink(target, p); err != nil {
				t.Fatal(err)
			}
		}, state: OwnerUnknown, why: "symlink"},
		{name: "FIFO", setup: func(t *testing.T, p string) {
			if err := syscall.Mkfifo(p, 0o644); err != nil {
				t.Fatal(err)
			}
		}, state: OwnerUnknown, why: "not a regular file"},
		{name: "directory", setup: func(t *testing.T, p string) {
			if err := os.Mkdir(p, 0o755); err != nil {
				t.Fatal(err)
			}
		}, state: OwnerUnknown, why: "not a regular file"},
		{name: "device", setup: func(t *testing.T, p string) {
			if err := os.Symlink("/dev/zero", p); err != nil { // a device reached by link: not followed
				t.Fatal(err)
			}
		}, state: OwnerUnknown, why: "symlink"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "gateway.12345678.lock")
			if tc.setup != nil {
				tc.setup(t, path)
			} else {
				testutil.MustWrite(t, path, tc.content)
			}
			done := make(chan Lock, 1)
			go func() { done <- Inspect(fs, path) }()
			var l Lock
			select {
			case l = <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("Inspect hangs")
			}
			if l.State != tc.state || l.PID != tc.pid || !strings.Contains(l.Why, tc.why) || !l.Present {
				t.Errorf("got state=%s pid=%d why=%q present=%v; want state=%s pid=%d why~%q", l.State, l.PID, l.Why, l.Present, tc.state, tc.pid, tc.why)
			}
			if l.State.Stale() != (tc.state == OwnerDead || tc.state == OwnerReused) {
				t.Errorf("Stale() = %v for %s", l.State.Stale(), l.State)
			}
		})
	}
}

// TestInspectLockPermissionDenied reads a lock the exporter may not read
// (openclaw's is 0600 in a 0700 directory). Root reads anything, so as root
// the read runs as nobody, as the exporter runs in production.
func TestInspectLockPermissionDenied(t *testing.T) {
	if os.Geteuid() != 0 {
		path := filepath.Join(t.TempDir(), "gateway.x.lock")
		testutil.MustWrite(t, path, `{"pid":1}`)
		_ = os.Chmod(path, 0)
		if l := Inspect(testutil.ProcTree(t, nil), path); l.State != OwnerUnknown || !strings.Contains(l.Why, "permission denied") {
			t.Errorf("got %s %q", l.State, l.Why)
		}
		return
	}
	dir := t.TempDir()
	_ = os.Chmod(dir, 0o755)
	_ = os.Chmod(filepath.Dir(dir), 0o755)
	path := filepath.Join(dir, "gateway.x.lock")
	testutil.MustWrite(t, path, `{"pid":1}`)
	_ = os.Chmod(path, 0o600)
	out, err := testutil.RunAsNobody(t, "TestHelperInspect", "LOCK_HELPER_PATH="+path)
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	if !strings.Contains(out, "state=unknown why=open") || !strings.Contains(out, "permission denied") {
		t.Errorf("as nobody: %s", out)
	}
}

// TestHelperInspect is the child of TestInspectLockPermissionDenied; run
// alone it does nothing.
func TestHelperInspect(t *testing.T) {
	path := os.Getenv("LOCK_HELPER_PATH")
	if path == "" {
		return
	}
	fs, _ := procfs.NewDefaultFS()
	l := Inspect(fs, path)
	fmt.Printf("state=%s why=%s\n", l.State, l.Why)
}

// TestOwnerStateRealProcesses judges locks against real processes: a live
// child with its real start time, the same pid with another start time, and
// a child that has exited.
func TestOwnerStateRealProcesses(t *testing.T) {
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		t.Fatal(err)
	}
	child := exec.Command("sleep", "60")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = child.Process.Kill(); _ = child.Wait() }()
	p, err := fs.Proc(child.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	stat, err := p.Stat()
	if err != nil {
		t.Fatal(err)
	}
	exited := exec.Command("true")
	if err := exited.Run(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, tc := range []struct {
		name    string
		content string
		want    OwnerState
	}{
		{"alive", fmt.Sprintf(`{"pid":%d,"startTime":%d}`, child.Process.Pid, stat.Starttime), OwnerAlive},
		{"reused", fmt.Sprintf(`{"pid":%d,"startTime":%d}`, child.Process.Pid, stat.Starttime-1), OwnerReused},
		{"dead", fmt.Sprintf(`{"pid":%d,"startTime":1}`, exited.Process.Pid), OwnerDead},
	} {
		path := filepath.Join(dir, "gateway."+tc.name+".lock")
		testutil.MustWrite(t, path, tc.content)
		if got := Inspect(fs, path); got.State != tc.want {
			t.Errorf("%s: %s (%s), want %s", tc.name, got.State, got.Why, tc.want)
		}
	}
}

func TestRemoveStale(t *testing.T) {
	fs := testutil.ProcTree(t, map[int]testutil.FakeProc{4242: {Starttime: 100, Comm: "clawdbot-gatewa"}})
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		testutil.MustWrite(t, p, content)
		return p
	}
	dead := write("gateway.dead.lock", `{"pid":31337,"startTime":1}`)
	reused := write("gateway.reused.lock", `{"pid":4242,"startTime":99}`)
	alive := write("gateway.alive.lock", `{"pid":4242,"startTime":100}`)
	garbage := write("gateway.garbage.lock", `nope`)

	for _, p := range []string{dead, reused} {
		if _, err := RemoveStale(fs, p); err != nil {
			t.Errorf("%s: %v", p, err)
		}
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still there", p)
		}
	}
	for _, p := range []string{alive, garbage} {
		if _, err := RemoveStale(fs, p); !errors.Is(err, ErrNotStale) {
			t.Errorf("%s: err = %v, want ErrNotStale", p, err)
		}
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s was touched: %v", p, err)
		}
	}
	// Nothing left behind under a temporary name.
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".removing-") {
			t.Errorf("left behind: %s", e.Name())
		}
	}
}

func TestLockName(t *testing.T) {
	// printf %s /home/node/.clawdbot/clawdbot.json | sha1sum / sha256sum
	if got := Name("clawdbot", "/tmp/tmp.5rXaJbzTeh/.clawdbot/clawdbot.json"); got != "gateway.736d5d67.lock" {
		t.Errorf("clawdbot: %s (seen on a real gateway: gateway.736d5d67.lock)", got)
	}
	if got := Name("openclaw", "/h/.openclaw/openclaw.json"); !strings.HasPrefix(got, "gateway.") || got == Name("clawdbot", "/h/.openclaw/openclaw.json") {
		t.Errorf("openclaw: %s", got)
	}
}

func TestScanLocksAttributesToTargets(t *testing.T) {
	fs := testutil.ProcTree(t, nil)
	dir := t.TempDir()
	cfg := "/home/node/.clawdbot/clawdbot.json"
	mine := filepath.Join(dir, Name("clawdbot", cfg))
	testutil.MustWrite(t, mine, `{"pid":31337}`)
	byContent := filepath.Join(dir, "gateway.00000000.lock")
	testutil.MustWrite(t, byContent, `{"pid":31338,"configPath":"/srv/other/openclaw.json"}`)
	other := filepath.Join(dir, "gateway.ffffffff.lock")
	testutil.MustWrite(t, other, `{"pid":31339}`)
	testutil.MustWrite(t, filepath.Join(dir, "gateway.state.lock"), `{}`)
	testutil.MustWrite(t, filepath.Join(dir, "gateway.x.lock.sqlite"), ``)
	targets := []gateway.Target{{Name: "main", ConfigPath: cfg}, {Name: "srv", ConfigPath: "/srv/other/openclaw.json"}}
	got := map[string]string{}
	for _, l := range Scan(fs, []string{dir}, targets) {
		got[filepath.Base(l.Path)] = l.Gateway
	}
	// openclaw's gateway.state.lock is reported too; outside a target's
	// <stateDir>/tmp/openclaw-<uid>/ and without a configPath it belongs
	// to no target.
	want := map[string]string{filepath.Base(mine): "main", "gateway.00000000.lock": "srv", "gateway.ffffffff.lock": "", "gateway.state.lock": ""}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestStatFilesystem(t *testing.T) {
	if fs := StatFilesystem("/dev/shm"); fs.Type != "tmpfs" || !fs.Volatile || fs.Network {
		t.Errorf("/dev/shm: %+v", fs)
	}
	if fs := StatFilesystem("/nonexistent"); fs.Type != "unknown" {
		t.Errorf("missing dir: %+v", fs)
	}
}

// TestInspectLockReplacedWhileRead: a gateway replaces its lock (write to a
// temporary name, rename over) while the exporter reads it. Each read must
// see one whole version, never a mix, and never fail.
func TestInspectLockReplacedWhileRead(t *testing.T) {
	fs := testutil.ProcTree(t, map[int]testutil.FakeProc{4242: {Starttime: 100, Comm: "clawdbot-gatewa"}})
	dir := t.TempDir()
	path := filepath.Join(dir, "gateway.race.lock")
	versions := []string{`{"pid":4242,"startTime":100}`, `{"pid":31337,"startTime":7}`}
	testutil.MustWrite(t, path, versions[0])
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			tmp := filepath.Join(dir, "tmp")
			_ = os.WriteFile(tmp, []byte(versions[i%2]), 0o644)
			_ = os.Rename(tmp, path)
		}
	}()
	seen := map[OwnerState]int{}
	for end := time.Now().Add(300 * time.Millisecond); time.Now().Before(end); {
		l := Inspect(fs, path)
		seen[l.State]++
		if (l.State == OwnerAlive && l.PID != 4242) || (l.State == OwnerDead && l.PID != 31337) {
			t.Fatalf("mixed versions: %+v", l)
		}
	}
	close(stop)
	<-done
	if seen[OwnerUnknown] > 0 || seen[OwnerAlive] == 0 || seen[OwnerDead] == 0 {
		t.Errorf("states seen: %v", seen)
	}
}
