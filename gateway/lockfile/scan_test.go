package lockfile

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"

	"github.com/clawdbot-exporter/clawdbot_exporter/gateway"
	"github.com/clawdbot-exporter/clawdbot_exporter/internal/testutil"
)

// openclawPayload is a lock as openclaw 2026.9.6 writes it: pretty JSON
// with padding after it (docs/local-state.md#lock-content).
func openclawPayload(pid int, start uint64, role string) string {
	r := ""
	if role != "" {
		r = fmt.Sprintf(",\n  \"role\": %q", role)
	}
	return fmt.Sprintf("{\n  \"pid\": %d,\n  \"ownerId\": \"6f1c7d2e-0000-4000-8000-000000000000\",\n  \"cronOwnerProjection\": \"dynamic-default-v1\",\n  \"createdAt\": \"2026-12-01T10:00:00.000Z\",\n  \"configPath\": \"/h/.openclaw/openclaw.json\",\n  \"stateDir\": \"/h/.openclaw\",\n  \"port\": 18789%s,\n  \"startTime\": %d\n}\n\t \t  \n", pid, r, start)
}

// kernelLine is a /proc/locks line for the file at path.
func kernelLine(t *testing.T, n, pid int, path string, waiter bool) string {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Lstat(path, &st); err != nil {
		t.Fatal(err)
	}
	arrow := ""
	if waiter {
		arrow = "-> "
	}
	dev := uint64(st.Dev) //nolint:unconvert // width differs by architecture
	return fmt.Sprintf("%d: %sPOSIX  ADVISORY  WRITE %d %02x:%02x:%d 1073741824 1073741824\n", n, arrow, pid, unix.Major(dev), unix.Minor(dev), st.Ino)
}

// TestScanOpenclawLockSet builds openclaw's lock directory in the states
// that matter and checks what the scan says of each: the role, the owner
// id, the port, the reclaim guard and whether it blocks the next start.
func TestScanOpenclawLockSet(t *testing.T) {
	const (
		gw       = 4242 // the gateway, alive
		doctor   = 4300 // openclaw doctor, alive
		deadPID  = 31337
		gwStart  = 266628
		docStart = 5000
	)
	old := time.Now().Add(-2 * time.Minute)
	tests := []struct {
		name        string
		config      string // config lock content, "" for none
		state       string // state lock content, "" for none
		guard       string // "dir", "file:<pid>", "" for none
		guardMTime  time.Time
		sqliteHeld  bool // someone holds gateway.<h>.lock.sqlite
		wantRole    string
		wantBlocks  []string // whys
		wantStuck   bool
		wantReclaim bool
	}{
		{name: "running gateway", config: openclawPayload(gw, gwStart, ""), state: openclawPayload(gw, gwStart, ""), wantRole: "gateway"},
		{name: "killed gateway: dead locks block nothing", config: openclawPayload(deadPID, 1, ""), state: openclawPayload(deadPID, 1, ""), wantRole: "gateway"},
		{name: "hung doctor holds the locks", config: openclawPayload(doctor, docStart, "sqlite-maintenance"), state: openclawPayload(doctor, docStart, "sqlite-maintenance"),
			wantRole: "sqlite-maintenance", wantBlocks: []string{WhyHeldByNonGateway, WhyHeldByNonGateway}},
		{name: "unknown role", config: openclawPayload(doctor, docStart, "wizard"), wantRole: "other", wantBlocks: []string{WhyHeldByNonGateway}},
		{name: "guard left behind by a crash during a reclaim", config: openclawPayload(deadPID, 1, ""), guard: "dir", guardMTime: old,
			wantRole: "gateway", wantStuck: true, wantBlocks: []string{WhyReclaimGuardStuck}},
		{name: "guard left behind, lock already gone", guard: "dir", guardMTime: old, wantStuck: true, wantBlocks: []string{WhyReclaimGuardStuck}},
		{name: "young guard: a reclaim under way", config: openclawPayload(deadPID, 1, ""), guard: "dir", guardMTime: time.Now(), wantRole: "gateway"},
		{name: "old guard, a start holds the .sqlite: reclaiming", config: openclawPayload(deadPID, 1, ""), guard: "dir", guardMTime: old, sqliteHeld: true,
			wantRole: "gateway", wantReclaim: true},
		{name: "old guard beside a live gateway's lock", config: openclawPayload(gw, gwStart, ""), guard: "dir", guardMTime: old, wantRole: "gateway"},
		{name: "file guard of a live reclaimer", config: openclawPayload(deadPID, 1, ""), guard: fmt.Sprintf("file:%d", gw), guardMTime: old, wantRole: "gateway", wantReclaim: true},
		{name: "file guard of a dead reclaimer", config: openclawPayload(deadPID, 1, ""), guard: fmt.Sprintf("file:%d", deadPID), guardMTime: old,
			wantRole: "gateway", wantStuck: true, wantBlocks: []string{WhyReclaimGuardStuck}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root, fs := testutil.ProcTreeAt(t, map[int]testutil.FakeProc{
				gw:     {Starttime: gwStart, Comm: "openclaw-gatewa"},
				doctor: {Starttime: docStart, Comm: "openclaw"},
			})
			stateDir := t.TempDir()
			cfg := filepath.Join(stateDir, "openclaw.json")
			dir := filepath.Join(stateDir, "tmp", fmt.Sprintf("openclaw-%d", os.Getuid()))
			if err := os.MkdirAll(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			lockPath := filepath.Join(dir, Name("openclaw", cfg))
			if tc.config != "" {
				testutil.MustWrite(t, lockPath, tc.config)
			}
			if tc.state != "" {
				testutil.MustWrite(t, filepath.Join(dir, StateLockName), tc.state)
			}
			testutil.MustWrite(t, lockPath+".sqlite", "")
			kernel := ""
			if tc.sqliteHeld {
				kernel = kernelLine(t, 1, 5555, lockPath+".sqlite", false)
			}
			testutil.MustWrite(t, filepath.Join(root, "locks"), kernel)
			guard := lockPath + ".reclaim"
			switch {
			case tc.guard == "dir":
				if err := os.Mkdir(guard, 0o700); err != nil {
					t.Fatal(err)
				}
			case strings.HasPrefix(tc.guard, "file:"):
				testutil.MustWrite(t, guard, fmt.Sprintf(`{"pid":%s,"createdAt":%q}`, tc.guard[5:], tc.guardMTime.UTC().Format(time.RFC3339Nano)))
			}
			if tc.guard != "" {
				if err := os.Chtimes(guard, tc.guardMTime, tc.guardMTime); err != nil {
					t.Fatal(err)
				}
			}
			targets := []gateway.Target{{Name: "oc", ConfigPath: cfg, StateDir: stateDir}}
			res := ScanContext(context.Background(), fs, []string{dir}, targets, Options{ProcRoot: root, CoordinatorDirs: []string{}})
			if res.Err != nil {
				t.Fatal(res.Err)
			}
			for _, l := range res.Locks {
				if l.Gateway != "oc" || l.Product != "openclaw" {
					t.Errorf("%s: gateway %q product %q, want oc, openclaw", l.Path, l.Gateway, l.Product)
				}
				if l.Role != tc.wantRole || !l.HasOwnerID || l.Port != 18789 {
					t.Errorf("%s: role %q ownerId %v port %d, want role %q, an owner id, port 18789", l.Path, l.Role, l.HasOwnerID, l.Port, tc.wantRole)
				}
				wantKind := KindConfig
				if filepath.Base(l.Path) == StateLockName {
					wantKind = KindState
				}
				if l.Kind != wantKind {
					t.Errorf("%s: kind %s", l.Path, l.Kind)
				}
				if l.HeldByGateway() && l.HeldByOther() {
					t.Errorf("%s: held by the gateway and by another", l.Path)
				}
			}
			if tc.guard != "" {
				if len(res.Guards) != 1 {
					t.Fatalf("guards: %+v", res.Guards)
				}
				g := res.Guards[0]
				if g.Gateway != "oc" || g.Stuck != tc.wantStuck || g.Reclaiming != tc.wantReclaim || g.LockPath != lockPath {
					t.Errorf("guard: %+v; want stuck %v reclaiming %v", g, tc.wantStuck, tc.wantReclaim)
				}
				if age := g.Age(time.Now()); age < time.Until(tc.guardMTime)*-1-time.Second {
					t.Errorf("guard age %v", age)
				}
			}
			var whys []string
			for _, b := range res.Blocking() {
				if b.Gateway != "oc" {
					t.Errorf("blocker of gateway %q", b.Gateway)
				}
				whys = append(whys, b.Why)
			}
			if fmt.Sprint(whys) != fmt.Sprint(tc.wantBlocks) {
				t.Errorf("blocking %v, want %v", whys, tc.wantBlocks)
			}
		})
	}
}

func TestParseKernelLocks(t *testing.T) {
	in := `1: POSIX  ADVISORY  WRITE 4242 00:2d:56789 1073741824 1073741824
1: -> POSIX  ADVISORY  WRITE 4243 00:2d:56789 1073741824 1073741824
2: POSIX  ADVISORY  READ 4242 00:2d:56789 1073741826 1073742335
3: FLOCK  ADVISORY  WRITE 900 fd:01:3333 0 EOF
4: OFDLCK ADVISORY  READ  -1 08:01:77 0 EOF
5: garbage
6: POSIX ADVISORY WRITE x 00:2d:1 0 EOF
7: POSIX ADVISORY WRITE 5 zz:2d:1 0 EOF
`
	k := parseKernelLocks(context.Background(), strings.NewReader(in))
	key := fileKey{major: 0, minor: 0x2d, ino: 56789}
	if fmt.Sprint(k.holders[key]) != "[4242]" || fmt.Sprint(k.waiters[key]) != "[4243]" {
		t.Errorf("holders %v waiters %v", k.holders[key], k.waiters[key])
	}
	if fmt.Sprint(k.holders[fileKey{major: 0xfd, minor: 1, ino: 3333}]) != "[900]" {
		t.Errorf("flock: %v", k.holders)
	}
	if len(k.holders) != 2 {
		t.Errorf("OFD or garbage lines counted: %v", k.holders)
	}
}

// TestKernelHoldersRealLock takes a real POSIX lock, as SQLite's BEGIN
// EXCLUSIVE does, and finds this process as its holder in /proc/locks,
// without opening the file.
func TestKernelHoldersRealLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), CoordinatorName("/h/.openclaw"))
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: 1 << 30, Len: 1}
	if err := unix.FcntlFlock(f.Fd(), unix.F_SETLK, &lk); err != nil {
		t.Fatal(err)
	}
	s := &scan{ctx: context.Background()}
	if got := s.kernelHolders(path); fmt.Sprint(got) != fmt.Sprint([]int{os.Getpid()}) {
		t.Errorf("holders %v, want [%d]", got, os.Getpid())
	}
	if got := s.kernelHolders(path + ".other"); got != nil {
		t.Errorf("holders of a missing file: %v", got)
	}
}

// TestScanCoordinator finds the lifecycle coordinator of a target's state
// directory and judges its holder: this test process holds it, and is not a
// gateway, so it blocks the next start.
func TestScanCoordinator(t *testing.T) {
	stateDir := t.TempDir()
	cdir := filepath.Join(t.TempDir(), fmt.Sprintf("openclaw-state-locks-%d", os.Getuid()))
	if err := os.MkdirAll(cdir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(cdir, CoordinatorName(stateDir))
	other := filepath.Join(cdir, CoordinatorName("/somebody/else"))
	testutil.MustWrite(t, other, "")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	targets := []gateway.Target{{Name: "oc", StateDir: stateDir}}
	fs := realFS(t)
	res := ScanContext(context.Background(), fs, nil, targets, Options{CoordinatorDirs: []string{cdir}})
	if len(res.Coordinators) != 1 || res.Coordinators[0].HolderPID != 0 || len(res.Blocking()) != 0 {
		t.Fatalf("free coordinator: %+v, blocking %v", res.Coordinators, res.Blocking())
	}
	lk := unix.Flock_t{Type: unix.F_WRLCK, Start: 1 << 30, Len: 1}
	if err := unix.FcntlFlock(f.Fd(), unix.F_SETLK, &lk); err != nil {
		t.Fatal(err)
	}
	res = ScanContext(context.Background(), fs, nil, targets, Options{CoordinatorDirs: []string{cdir}})
	if len(res.Coordinators) != 1 {
		t.Fatalf("coordinators: %+v", res.Coordinators)
	}
	c := res.Coordinators[0]
	if c.Path != path || c.Gateway != "oc" || c.HolderPID != os.Getpid() || c.HolderIsGateway {
		t.Errorf("coordinator %+v, want held by %d, not a gateway", c, os.Getpid())
	}
	if b := res.Blocking(); len(b) != 1 || b[0].Why != WhyCoordinatorHeld {
		t.Errorf("blocking %+v", b)
	}
	// The gateway itself holding it (its live lock names the holder) blocks nothing.
	c.judgeHolder(fs, []Lock{{Gateway: "oc", PID: os.Getpid(), State: OwnerAlive, Role: "gateway"}})
	if !c.HolderIsGateway || c.Blocks() {
		t.Errorf("held by the gateway: %+v", c)
	}
}

// TestScanBounded: a directory flooded with lock files costs at most the
// cap of inspections, the configured gateway's own lock is still seen, and
// what was cut is counted.
func TestScanBounded(t *testing.T) {
	fs := testutil.ProcTree(t, nil)
	dir := t.TempDir()
	cfg := "/h/.clawdbot/clawdbot.json"
	const n = 3000
	for i := range n {
		testutil.MustWrite(t, filepath.Join(dir, fmt.Sprintf("gateway.%08x.lock", i)), `{"pid":31337}`)
	}
	for i := range 50 {
		testutil.MustWrite(t, filepath.Join(dir, fmt.Sprintf("other-%d", i)), "")
	}
	mine := filepath.Join(dir, Name("clawdbot", cfg))
	testutil.MustWrite(t, mine, `{"pid":31338}`)
	targets := []gateway.Target{{Name: "main", ConfigPath: cfg}}
	res := ScanContext(context.Background(), fs, []string{dir}, targets, Options{MaxFilesPerDir: 100, MaxEntriesPerDir: 2000, CoordinatorDirs: []string{}})
	if len(res.Locks) != 101 {
		t.Errorf("%d locks inspected, want the cap (100) and the gateway's own", len(res.Locks))
	}
	found := false
	for _, l := range res.Locks {
		found = found || (l.Path == mine && l.Gateway == "main")
	}
	if !found {
		t.Error("the configured gateway's lock was cut")
	}
	listed := res.Dropped[DroppedLockFiles] + res.Dropped[DroppedDirEntries] + len(res.Locks)
	if res.Dropped[DroppedLockFiles] == 0 || res.Dropped[DroppedDirEntries] == 0 || listed < n+1 || listed > n+51 {
		t.Errorf("dropped %v with %d inspected: want every entry beyond the caps counted", res.Dropped, len(res.Locks))
	}
}

// TestScanHonoursContext: a scan whose context has ended stops and says so.
func TestScanHonoursContext(t *testing.T) {
	fs := testutil.ProcTree(t, nil)
	dir := t.TempDir()
	for i := range 100 {
		testutil.MustWrite(t, filepath.Join(dir, fmt.Sprintf("gateway.%08x.lock", i)), `{"pid":31337}`)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res := ScanContext(ctx, fs, []string{dir, dir}, nil, Options{CoordinatorDirs: []string{}})
	if !errors.Is(res.Err, context.Canceled) || len(res.Locks) != 0 {
		t.Errorf("cancelled scan: err %v, %d locks", res.Err, len(res.Locks))
	}
}

// TestClear removes what blocks or is stale and nothing a live process
// holds: the dead lock and the stuck guard go; a live gateway's lock, a
// doctor's lock and a guard whose .sqlite a start holds stay.
func TestClear(t *testing.T) {
	root, fs := testutil.ProcTreeAt(t, map[int]testutil.FakeProc{
		4242: {Starttime: 100, Comm: "openclaw-gatewa"},
		4300: {Starttime: 7, Comm: "openclaw"},
	})
	dir := t.TempDir()
	old := time.Now().Add(-5 * time.Minute)
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		testutil.MustWrite(t, p, content)
		return p
	}
	guard := func(lock string) string {
		g := lock + ".reclaim"
		if err := os.Mkdir(g, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(g, old, old); err != nil {
			t.Fatal(err)
		}
		return g
	}
	dead := write("gateway.dead.lock", openclawPayload(31337, 1, ""))
	deadGuard := guard(dead)
	busy := write("gateway.busy.lock", openclawPayload(31338, 1, ""))
	busyGuard := guard(busy)
	sqlite := write("gateway.busy.lock.sqlite", "")
	alive := write("gateway.alive.lock", openclawPayload(4242, 100, ""))
	doctor := write(StateLockName, openclawPayload(4300, 7, "sqlite-maintenance"))
	testutil.MustWrite(t, filepath.Join(root, "locks"), kernelLine(t, 1, 9999, sqlite, false))
	o := Options{ProcRoot: root, CoordinatorDirs: []string{}}
	res := ScanContext(context.Background(), fs, []string{dir}, nil, o)
	acts := Clear(context.Background(), fs, res, "", o)
	removed := map[string]bool{}
	for _, a := range acts {
		if a.Err != nil {
			t.Errorf("%s: %v", a.Path, a.Err)
		}
		removed[a.Path] = a.Removed
	}
	for _, p := range []string{dead, deadGuard, busy} {
		if !removed[p] {
			t.Errorf("%s not removed", p)
		}
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still there", p)
		}
	}
	for _, p := range []string{busyGuard, alive, doctor} {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("%s was touched: %v", p, err)
		}
	}
	after := ScanContext(context.Background(), fs, []string{dir}, nil, o)
	if b := after.Blocking(); len(b) != 1 || b[0].Path != doctor || b[0].Why != WhyHeldByNonGateway {
		t.Errorf("still blocking: %+v, want only the doctor's lock", b)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".removing-") {
			t.Errorf("left behind: %s", e.Name())
		}
	}
}

// TestRemoveStuckGuardRechecks: a guard that a start took over after it
// was judged (its lock now has a live owner) is left in place, and so is a
// guard replaced by another one.
func TestRemoveStuckGuardRechecks(t *testing.T) {
	_, fs := testutil.ProcTreeAt(t, map[int]testutil.FakeProc{4242: {Starttime: 100, Comm: "openclaw-gatewa"}})
	dir := t.TempDir()
	lock := filepath.Join(dir, "gateway.x.lock")
	testutil.MustWrite(t, lock, openclawPayload(31337, 1, ""))
	g := lock + ".reclaim"
	old := time.Now().Add(-5 * time.Minute)
	if err := os.Mkdir(g, 0o700); err != nil {
		t.Fatal(err)
	}
	_ = os.Chtimes(g, old, old)
	o := Options{ProcRoot: t.TempDir(), CoordinatorDirs: []string{}}
	res := ScanContext(context.Background(), fs, []string{dir}, nil, o)
	if len(res.Guards) != 1 || !res.Guards[0].Stuck {
		t.Fatalf("guards %+v", res.Guards)
	}
	// A start reclaims and now holds the lock.
	testutil.MustWrite(t, lock, openclawPayload(4242, 100, ""))
	if err := RemoveStuckGuard(context.Background(), fs, res.Guards[0], o); !errors.Is(err, ErrNotStuck) {
		t.Errorf("err = %v, want ErrNotStuck", err)
	}
	// Replaced by a fresh guard of the same name.
	testutil.MustWrite(t, lock, openclawPayload(31337, 1, ""))
	if err := os.Remove(g); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(g, 0o700); err != nil {
		t.Fatal(err)
	}
	_ = os.Chtimes(g, old.Add(time.Second), old.Add(time.Second))
	if err := RemoveStuckGuard(context.Background(), fs, res.Guards[0], o); !errors.Is(err, ErrNotStuck) {
		t.Errorf("replaced guard: err = %v, want ErrNotStuck", err)
	}
	if _, err := os.Lstat(g); err != nil {
		t.Errorf("guard removed: %v", err)
	}
}

func realFS(t *testing.T) procfs.FS {
	t.Helper()
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		t.Fatal(err)
	}
	return fs
}
