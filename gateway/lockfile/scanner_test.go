package lockfile

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/procfs"

	"github.com/clawdbot-exporter/clawdbot_exporter/gateway"
	"github.com/clawdbot-exporter/clawdbot_exporter/internal/testutil"
)

// scannerFixture is a clawdbot gateway's lock in <tmp>/clawdbot-<uid>/,
// owned by a live fake process, every timestamp a minute old.
type scannerFixture struct {
	root, tmp, dir, lock string
	targets              []gateway.Target
	sc                   *Scanner
}

const fixturePID = 4242

func newScannerFixture(t testing.TB) *scannerFixture {
	t.Helper()
	// testutil.ProcTreeAt's layout, for benchmarks too.
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, fmt.Sprint(fixturePID)), 0o755); err != nil {
		t.Fatal(err)
	}
	stat := fmt.Sprintf("%d (clawdbot-gatewa) S 1 %d %d 0 -1 4194560 100 0 0 0 50 20 0 0 20 0 11 0 100 1000000 2000%s\n", fixturePID, fixturePID, fixturePID, strings.Repeat(" 0", 30))
	for name, content := range map[string]string{"stat": stat, "comm": "clawdbot-gatewa\n", "cmdline": "clawdbot-gatewa\x00"} {
		if err := os.WriteFile(filepath.Join(root, fmt.Sprint(fixturePID), name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	fs, err := procfs.NewFS(root)
	if err != nil {
		t.Fatal(err)
	}
	f := &scannerFixture{root: root, tmp: t.TempDir()}
	state := t.TempDir()
	cfg := filepath.Join(state, "clawdbot.json")
	f.dir = filepath.Join(f.tmp, fmt.Sprintf("clawdbot-%d", os.Getuid()))
	if err := os.Mkdir(f.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	f.lock = filepath.Join(f.dir, Name("clawdbot", cfg))
	if err := os.WriteFile(f.lock, fmt.Appendf(nil, `{"pid":%d,"startTime":100,"configPath":%q}`, fixturePID, cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	f.targets = []gateway.Target{{Name: "main", ConfigPath: cfg, StateDir: state}}
	// A nanosecond's margin: the changes below differ in mtime from the
	// minute-old files, so that none hides in a clock tick.
	f.sc = &Scanner{FS: fs, Options: Options{ProcRoot: root, CoordinatorDirs: []string{}}, tmps: []string{f.tmp}, margin: time.Nanosecond}
	f.age(t, f.tmp, state, f.dir, f.lock)
	return f
}

// age sets the paths' mtimes a minute back.
func (f *scannerFixture) age(t testing.TB, paths ...string) {
	t.Helper()
	old := time.Now().Add(-time.Minute)
	for _, p := range paths {
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
}

func (f *scannerFixture) scan(t *testing.T) Result {
	t.Helper()
	res := f.sc.Scan(context.Background(), f.targets)
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	return res
}

func (f *scannerFixture) reads() int {
	f.sc.mu.Lock()
	defer f.sc.mu.Unlock()
	return f.sc.reads
}

// TestScannerReadsOnlyWhatChanged: a scan after no change reads no file
// but still judges the owner; any change to the lock, its directory or
// the directory the lock directories are found in reads everything again.
func TestScannerReadsOnlyWhatChanged(t *testing.T) {
	tests := []struct {
		name      string
		change    func(t *testing.T, f *scannerFixture)
		wantReads int // scans that read the files, of the two
		wantLocks int
		wantState OwnerState
		wantPID   int
	}{
		{name: "nothing changed", change: func(*testing.T, *scannerFixture) {}, wantReads: 1, wantLocks: 1, wantState: OwnerAlive, wantPID: fixturePID},
		{name: "the owner died", change: func(t *testing.T, f *scannerFixture) {
			if err := os.RemoveAll(filepath.Join(f.root, fmt.Sprint(fixturePID))); err != nil {
				t.Fatal(err)
			}
		}, wantReads: 1, wantLocks: 1, wantState: OwnerDead, wantPID: fixturePID},
		{name: "the owner's pid was reused", change: func(t *testing.T, f *scannerFixture) {
			testutil.ProcTreeOverwrite(t, f.root, fixturePID, testutil.FakeProc{Starttime: 999, Comm: "bash"})
		}, wantReads: 1, wantLocks: 1, wantState: OwnerReused, wantPID: fixturePID},
		{name: "rewritten in place", change: func(t *testing.T, f *scannerFixture) {
			testutil.MustWrite(t, f.lock, `{"pid":31337,"startTime":100}`)
		}, wantReads: 2, wantLocks: 1, wantState: OwnerDead, wantPID: 31337},
		{name: "rewritten in place, same size", change: func(t *testing.T, f *scannerFixture) {
			b, err := os.ReadFile(f.lock)
			if err != nil {
				t.Fatal(err)
			}
			testutil.MustWrite(t, f.lock, string(b[:len(b)-1])+" ") // no longer JSON
		}, wantReads: 2, wantLocks: 1, wantState: OwnerUnknown},
		{name: "replaced by rename", change: func(t *testing.T, f *scannerFixture) {
			tmp := filepath.Join(f.dir, "new")
			testutil.MustWrite(t, tmp, `{"pid":31337,"startTime":100}`)
			if err := os.Rename(tmp, f.lock); err != nil {
				t.Fatal(err)
			}
		}, wantReads: 2, wantLocks: 1, wantState: OwnerDead, wantPID: 31337},
		{name: "removed", change: func(t *testing.T, f *scannerFixture) {
			if err := os.Remove(f.lock); err != nil {
				t.Fatal(err)
			}
		}, wantReads: 2, wantLocks: 0},
		{name: "another lock appeared", change: func(t *testing.T, f *scannerFixture) {
			testutil.MustWrite(t, filepath.Join(f.dir, "gateway.00000000.lock"), `{"pid":31337}`)
		}, wantReads: 2, wantLocks: 2, wantState: OwnerAlive, wantPID: fixturePID},
		{name: "a new lock directory appeared", change: func(t *testing.T, f *scannerFixture) {
			d := filepath.Join(f.tmp, "clawdbot-99999")
			if err := os.Mkdir(d, 0o700); err != nil {
				t.Fatal(err)
			}
			testutil.MustWrite(t, filepath.Join(d, "gateway.00000000.lock"), `{"pid":31337}`)
		}, wantReads: 2, wantLocks: 2, wantState: OwnerAlive, wantPID: fixturePID},
		{name: "an unrelated file in the temp dir", change: func(t *testing.T, f *scannerFixture) {
			testutil.MustWrite(t, filepath.Join(f.tmp, "unrelated"), "")
		}, wantReads: 1, wantLocks: 1, wantState: OwnerAlive, wantPID: fixturePID},
		{name: "an unrelated file, then a new lock directory", change: func(t *testing.T, f *scannerFixture) {
			testutil.MustWrite(t, filepath.Join(f.tmp, "unrelated"), "")
			f.scan(t)
			if err := os.Mkdir(filepath.Join(f.tmp, "clawdbot-99999"), 0o700); err != nil {
				t.Fatal(err)
			}
		}, wantReads: 2, wantLocks: 1, wantState: OwnerAlive, wantPID: fixturePID},
		{name: "the lock directory became a symlink", change: func(t *testing.T, f *scannerFixture) {
			elsewhere := filepath.Join(t.TempDir(), "moved")
			if err := os.Rename(f.dir, elsewhere); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(elsewhere, f.dir); err != nil {
				t.Fatal(err)
			}
		}, wantReads: 2, wantLocks: 0},
		{name: "the state dir's tmp appeared", change: func(t *testing.T, f *scannerFixture) {
			d := filepath.Join(f.targets[0].StateDir, "tmp", fmt.Sprintf("openclaw-%d", os.Getuid()))
			if err := os.MkdirAll(d, 0o700); err != nil {
				t.Fatal(err)
			}
			testutil.MustWrite(t, filepath.Join(d, StateLockName), `{"pid":31337}`)
		}, wantReads: 2, wantLocks: 2, wantState: OwnerAlive, wantPID: fixturePID},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newScannerFixture(t)
			if res := f.scan(t); len(res.Locks) != 1 || res.Locks[0].State != OwnerAlive || res.Locks[0].Gateway != "main" {
				t.Fatalf("first scan: %+v", res.Locks)
			}
			tc.change(t, f)
			res := f.scan(t)
			if got := f.reads(); got != tc.wantReads {
				t.Errorf("%d scans read the files, want %d", got, tc.wantReads)
			}
			if len(res.Locks) != tc.wantLocks {
				t.Fatalf("locks %+v, want %d", res.Locks, tc.wantLocks)
			}
			if tc.wantLocks == 0 {
				return
			}
			var l *Lock
			for i := range res.Locks {
				if res.Locks[i].Path == f.lock {
					l = &res.Locks[i]
				}
			}
			if l == nil || l.State != tc.wantState || l.PID != tc.wantPID {
				t.Errorf("lock %+v, want state %s pid %d", l, tc.wantState, tc.wantPID)
			}
		})
	}
}

// TestScannerRereads: what cannot be told unchanged by its stat is read
// again: files changed a moment ago, everything once FullScanEvery passed,
// everything for other targets.
func TestScannerRereads(t *testing.T) {
	tests := []struct {
		name      string
		setup     func(t *testing.T, f *scannerFixture)
		wantReads int // of three scans after setup
	}{
		{name: "files changed a moment ago", setup: func(t *testing.T, f *scannerFixture) {
			f.sc.margin = 0 // the real one
			testutil.MustWrite(t, f.lock, `{"pid":4242,"startTime":100}`)
		}, wantReads: 3},
		{name: "a full scan every time", setup: func(_ *testing.T, f *scannerFixture) { f.sc.FullScanEvery = time.Nanosecond }, wantReads: 3},
		{name: "other targets", setup: func(t *testing.T, f *scannerFixture) {
			f.scan(t)
			f.targets = append(f.targets, gateway.Target{Name: "other", ConfigPath: "/elsewhere/clawdbot.json"})
		}, wantReads: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newScannerFixture(t)
			tc.setup(t, f)
			before := f.reads()
			for range 3 {
				if res := f.scan(t); len(res.Locks) != 1 || res.Locks[0].State != OwnerAlive {
					t.Fatalf("locks %+v", res.Locks)
				}
			}
			if got := f.reads() - before; got != tc.wantReads {
				t.Errorf("%d of 3 scans read the files, want %d", got, tc.wantReads)
			}
		})
	}
}

// TestScannerCutShort: a scan its context ended is not kept.
func TestScannerCutShort(t *testing.T) {
	f := newScannerFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if res := f.sc.Scan(ctx, f.targets); res.Err == nil {
		t.Fatal("no error from a cancelled scan")
	}
	if res := f.scan(t); len(res.Locks) != 1 || res.Locks[0].State != OwnerAlive {
		t.Fatalf("locks after a cut scan: %+v", res.Locks)
	}
	if got := f.reads(); got != 2 {
		t.Errorf("%d scans read the files, want 2: the cut one was kept", got)
	}
}

func TestRecorderTrustsLocalFilesystemsOnly(t *testing.T) {
	for _, tc := range []struct {
		fs   Filesystem
		want bool
	}{
		{Filesystem{Type: "ext4"}, true},
		{Filesystem{Type: "tmpfs", Volatile: true}, true},
		{Filesystem{Type: "nfs", Network: true}, false},
		{Filesystem{Type: "fuse"}, false},
		{Filesystem{Type: "unknown"}, false},
		{Filesystem{Type: "0x1234"}, false},
	} {
		r := &recorder{trusted: true}
		r.filesystem(tc.fs)
		if r.keepable() != tc.want {
			t.Errorf("%s: keepable %v, want %v", tc.fs.Type, r.keepable(), tc.want)
		}
	}
}

// TestScannerJudgesGuardsAndCoordinatorsEachScan: with nothing read again,
// a reclaimer that died leaves its guard stuck at the next scan, and a
// coordinator taken by another process shows as held at the next scan.
func TestScannerJudgesGuardsAndCoordinatorsEachScan(t *testing.T) {
	const reclaimer, doctor = 4300, 4400
	root, fs := testutil.ProcTreeAt(t, map[int]testutil.FakeProc{
		reclaimer: {Starttime: 7, Comm: "openclaw"},
		doctor:    {Starttime: 8, Comm: "openclaw"},
	})
	state, cdir := t.TempDir(), t.TempDir()
	cfg := filepath.Join(state, "openclaw.json")
	dir := filepath.Join(state, "tmp", fmt.Sprintf("openclaw-%d", os.Getuid()))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	lock := filepath.Join(dir, Name("openclaw", cfg))
	testutil.MustWrite(t, lock, openclawPayload(31337, 1, ""))
	guard := lock + ".reclaim"
	testutil.MustWrite(t, guard, fmt.Sprintf(`{"pid":%d,"startTime":7}`, reclaimer))
	coord := filepath.Join(cdir, CoordinatorName(state))
	testutil.MustWrite(t, coord, "")
	testutil.MustWrite(t, filepath.Join(root, "locks"), "")
	old := time.Now().Add(-5 * time.Minute)
	for _, p := range []string{lock, guard, coord, dir, filepath.Dir(dir), state, cdir} {
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	sc := &Scanner{FS: fs, Options: Options{ProcRoot: root, CoordinatorDirs: []string{cdir}}, tmps: []string{t.TempDir()}, margin: time.Nanosecond}
	targets := []gateway.Target{{Name: "oc", ConfigPath: cfg, StateDir: state}}
	scan := func() Result {
		t.Helper()
		res := sc.Scan(context.Background(), targets)
		if len(res.Guards) != 1 || len(res.Coordinators) != 1 {
			t.Fatalf("guards %+v coordinators %+v", res.Guards, res.Coordinators)
		}
		return res
	}
	if res := scan(); !res.Guards[0].Reclaiming || res.Guards[0].Stuck || len(res.Blocking()) != 0 {
		t.Fatalf("live reclaimer: %+v, blocking %+v", res.Guards[0], res.Blocking())
	}
	if err := os.RemoveAll(filepath.Join(root, fmt.Sprint(reclaimer))); err != nil {
		t.Fatal(err)
	}
	res := scan()
	if g := res.Guards[0]; g.Reclaiming || !g.Stuck {
		t.Errorf("dead reclaimer: %+v, want stuck", g)
	}
	testutil.MustWrite(t, filepath.Join(root, "locks"), kernelLine(t, 1, doctor, coord, false))
	res = scan()
	if c := res.Coordinators[0]; c.HolderPID != doctor || !c.Blocks() {
		t.Errorf("coordinator %+v, want held by %d, blocking", c, doctor)
	}
	if len(res.Blocking()) != 2 {
		t.Errorf("blocking %+v, want the stuck guard and the coordinator", res.Blocking())
	}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.reads != 1 {
		t.Errorf("%d scans read the files, want 1", sc.reads)
	}
}

// BenchmarkScanner: one scan of a clawdbot gateway's lock, with a temp
// dir of 100 other entries: read in full, with nothing changed, and with
// the temp dir changed (its lock directories listed again).
func BenchmarkScanner(b *testing.B) {
	for _, bc := range []struct {
		name   string
		every  time.Duration
		change bool
	}{
		{"full", time.Nanosecond, false},
		{"unchanged", 0, false},
		{"tempdir_changed", 0, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			f := newScannerFixture(b)
			for i := range 100 {
				if err := os.WriteFile(filepath.Join(f.tmp, fmt.Sprintf("other-%d", i)), nil, 0o644); err != nil {
					b.Fatal(err)
				}
			}
			f.sc.FullScanEvery = bc.every
			f.sc.Scan(context.Background(), f.targets)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if bc.change {
					if err := os.Chtimes(f.tmp, time.Now(), time.Unix(int64(i), 0)); err != nil {
						b.Fatal(err)
					}
				}
				if res := f.sc.Scan(context.Background(), f.targets); len(res.Locks) != 1 || res.Locks[0].State != OwnerAlive {
					b.Fatalf("locks %+v", res.Locks)
				}
			}
		})
	}
}
