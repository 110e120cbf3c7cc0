package lockfile

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/procfs"

	"github.com/clawdbot-exporter/clawdbot_exporter/gateway"
)

// Limits of one scan. A real lock directory holds a handful of files; a
// directory with thousands is hostile or broken, and reading all of it
// would make every scrape miss its deadline (issue 10 item 4: 100,000 locks
// took 5.1 s and 370 MB).
const (
	// DefaultMaxFilesPerDir bounds the lock files and reclaim guards
	// inspected per directory, on top of the configured gateways' own
	// names, which are always looked at.
	DefaultMaxFilesPerDir = 256
	// DefaultMaxEntriesPerDir bounds the directory entries listed per
	// directory.
	DefaultMaxEntriesPerDir = 65536
)

// Dropped kinds, for clawdbot_exporter_items_dropped_total{kind}.
const (
	DroppedLockFiles  = "lock_files"  // lock files and guards not inspected
	DroppedDirEntries = "dir_entries" // directory entries not even listed
)

// Options tunes ScanContext; the zero value scans with the defaults.
type Options struct {
	// ProcRoot is where /proc/locks is read (--path.procfs); "" is /proc.
	ProcRoot         string
	MaxFilesPerDir   int
	MaxEntriesPerDir int
	// CoordinatorDirs are the directories holding openclaw's lifecycle
	// coordinators; nil means CoordinatorDirs().
	CoordinatorDirs []string
}

// Result is everything one scan found.
type Result struct {
	Locks        []Lock
	Guards       []Guard
	Coordinators []Coordinator
	// Dropped counts what the limits cut, by kind (DroppedLockFiles, …).
	Dropped map[string]int
	// Err is the context's error when the scan was cut short.
	Err error
}

// Scan inspects every gateway lock in dirs with the default limits and
// no deadline; see ScanContext.
func Scan(fs procfs.FS, dirs []string, targets []gateway.Target) []Lock {
	return ScanContext(context.Background(), fs, dirs, targets, Options{}).Locks
}

// ScanContext inspects the lock files (gateway.<h>.lock, gateway.state.lock),
// the reclaim guards (*.lock.reclaim) in dirs and the lifecycle coordinators
// of the targets' state directories, and tells which target each belongs
// to. It stops when ctx ends and returns what it found so far, with Err set.
func ScanContext(ctx context.Context, fs procfs.FS, dirs []string, targets []gateway.Target, o Options) Result {
	s := newScan(ctx, fs, targets, o)
	cdirs := o.CoordinatorDirs
	if cdirs == nil {
		cdirs = CoordinatorDirs()
	}
	s.read(dirs, cdirs)
	s.judge()
	return s.res
}

func newScan(ctx context.Context, fs procfs.FS, targets []gateway.Target, o Options) *scan {
	return &scan{ctx: ctx, fs: fs, o: o.withDefaults(), ids: identify(targets), res: Result{Dropped: map[string]int{}}}
}

func (o Options) withDefaults() Options {
	if o.MaxFilesPerDir <= 0 {
		o.MaxFilesPerDir = DefaultMaxFilesPerDir
	}
	if o.MaxEntriesPerDir <= 0 {
		o.MaxEntriesPerDir = DefaultMaxEntriesPerDir
	}
	return o
}

// read is the first half of a scan: what the directories and files say,
// which stays true while they do not change (Scanner keeps it).
func (s *scan) read(dirs, cdirs []string) {
	for _, dir := range dirs {
		if s.done() {
			break
		}
		s.dir(dir)
	}
	if !s.done() {
		s.coordinators(cdirs)
	}
}

// judge is the second half: whether the owners live, who holds the
// coordinators, whether the guards are stuck. It runs on every scan.
func (s *scan) judge() {
	for i := range s.res.Locks {
		if s.done() {
			break
		}
		if l := &s.res.Locks[i]; l.parsed {
			l.State, l.Why = judgeOwnerAt(s.fs, s.statRoot, l.PID, l.StartTime)
		}
	}
	for i := range s.res.Guards {
		if s.done() {
			break
		}
		s.judgeReclaimer(&s.res.Guards[i])
	}
	for i := range s.res.Coordinators {
		if s.done() {
			break
		}
		s.judgeCoordinator(&s.res.Coordinators[i])
	}
	s.judgeGuards()
	s.res.Err = s.ctx.Err()
}

type scan struct {
	ctx context.Context
	fs  procfs.FS
	o   Options
	ids []targetID
	res Result
	// kernel holds /proc/locks, read at most once per scan.
	kernel     *kernelLocks
	kernelRead bool
	// rec, when set, records the stat of every file read (Scanner).
	rec *recorder
	// statRoot, when set, is fs's mount point: owners are judged from
	// their stat files read directly (judgeOwnerAt).
	statRoot string
}

func (s *scan) done() bool { return s.ctx.Err() != nil }

func (s *scan) kernelLocks() *kernelLocks {
	if !s.kernelRead {
		s.kernelRead = true
		s.kernel = readKernelLocks(s.ctx, s.o.ProcRoot)
	}
	return s.kernel
}

// targetID is what tells a target's files apart, computed once per scan.
type targetID struct {
	name        string
	configPaths []string // as configured and symlink-resolved
	names       map[string]bool
	stateDirs   []string
	coordinator map[string]bool // gateway-lifecycle.<h>.lock.sqlite names
}

func identify(targets []gateway.Target) []targetID {
	ids := make([]targetID, 0, len(targets))
	for _, t := range targets {
		id := targetID{name: t.Name, names: map[string]bool{}, coordinator: map[string]bool{}}
		if t.ConfigPath != "" {
			id.configPaths = uniq(t.ConfigPath, realPath(t.ConfigPath))
			for _, p := range id.configPaths {
				id.names[Name("clawdbot", p)] = true
				id.names[Name("openclaw", p)] = true
			}
		}
		if t.StateDir != "" {
			id.stateDirs = uniq(filepath.Clean(t.StateDir), realPath(t.StateDir))
			for _, d := range id.stateDirs {
				id.coordinator[CoordinatorName(d)] = true
			}
		}
		ids = append(ids, id)
	}
	return ids
}

func uniq(a, b string) []string {
	if a == b {
		return []string{a}
	}
	return []string{a, b}
}

// owner finds the target a lock belongs to: by the config path written
// in it, by the name the gateway would give it, or (gateway.state.lock) by
// the state directory it lies in.
func (s *scan) owner(l Lock) string {
	name := filepath.Base(l.Path)
	for _, id := range s.ids {
		for _, p := range id.configPaths {
			if l.ConfigPath != "" && l.ConfigPath == p {
				return id.name
			}
		}
	}
	for _, id := range s.ids {
		if id.names[name] {
			return id.name
		}
	}
	if name == StateLockName {
		dir := filepath.Dir(filepath.Dir(filepath.Dir(l.Path))) // <stateDir>/tmp/openclaw-<uid>/
		for _, id := range s.ids {
			for _, d := range id.stateDirs {
				if d == dir {
					return id.name
				}
			}
		}
	}
	return ""
}

// product tells the product from where the lock lies, when its content
// did not.
func (s *scan) product(l *Lock) {
	if l.Product != "" {
		return
	}
	name, dir := filepath.Base(l.Path), filepath.Base(filepath.Dir(l.Path))
	switch {
	case name == StateLockName || strings.HasPrefix(dir, "openclaw-"):
		l.Product = "openclaw"
	case strings.HasPrefix(dir, "clawdbot-"):
		l.Product = "clawdbot"
	default:
		for _, id := range s.ids {
			for _, p := range id.configPaths {
				switch name {
				case Name("openclaw", p):
					l.Product = "openclaw"
				case Name("clawdbot", p):
					l.Product = "clawdbot"
				}
			}
			for _, d := range id.stateDirs {
				if filepath.Dir(l.Path) == d {
					l.Product = "clawdbot" // the pre-2026.1.24 location
				}
			}
		}
	}
}

// isLockName says whether a directory entry is a lock (or a reclaim
// guard) this scan looks at.
func isLockName(name string) (lock, guard bool) {
	if !strings.HasPrefix(name, "gateway.") {
		return false, false
	}
	if strings.HasSuffix(name, ".lock") {
		return true, false
	}
	if strings.HasSuffix(name, ".lock.reclaim") {
		return false, true
	}
	return false, false
}

// dir scans one directory: first the configured gateways' own names
// (looked up directly, so a flood of other files cannot hide them), then a
// bounded listing.
func (s *scan) dir(dir string) {
	where := StatFilesystem(dir)
	s.rec.filesystem(where)
	picked := map[string]bool{}
	var names []string
	for _, id := range s.ids {
		for n := range id.names {
			for _, c := range []string{n, n + ".reclaim"} {
				if !picked[c] {
					if _, err := os.Lstat(filepath.Join(dir, c)); err == nil {
						picked[c] = true
						names = append(names, c)
					}
				}
			}
		}
	}
	for _, c := range []string{StateLockName, StateLockName + ".reclaim"} {
		if _, err := os.Lstat(filepath.Join(dir, c)); err == nil && !picked[c] {
			picked[c] = true
			names = append(names, c)
		}
	}
	// The configured names are not counted against the cap.
	budget := s.o.MaxFilesPerDir
	f, err := os.Open(dir)
	if err == nil {
		listed := 0
		for !s.done() {
			entries, err := f.ReadDir(1024)
			for _, e := range entries {
				listed++
				if listed > s.o.MaxEntriesPerDir {
					s.res.Dropped[DroppedDirEntries]++
					continue
				}
				n := e.Name()
				lock, guard := isLockName(n)
				if (!lock && !guard) || picked[n] {
					continue
				}
				if budget <= 0 {
					s.res.Dropped[DroppedLockFiles]++
					continue
				}
				budget--
				picked[n] = true
				names = append(names, n)
			}
			if err != nil || len(entries) == 0 {
				break // io.EOF, or an error: keep what was listed
			}
			if listed > s.o.MaxEntriesPerDir {
				// Count the rest cheaply, without keeping it.
				s.countRest(f)
				break
			}
		}
		_ = f.Close()
	}
	sort.Strings(names)
	for _, n := range names {
		if s.done() {
			return
		}
		path := filepath.Join(dir, n)
		s.rec.add(path, false)
		if _, guard := isLockName(n); guard {
			s.guard(path, where)
			continue
		}
		l := readLock(path, where)
		l.Gateway = s.owner(l)
		s.product(&l)
		s.res.Locks = append(s.res.Locks, l)
	}
}

func (s *scan) countRest(f *os.File) {
	for !s.done() {
		names, err := f.Readdirnames(4096)
		s.res.Dropped[DroppedDirEntries] += len(names)
		if err != nil || len(names) == 0 {
			return // io.EOF or an error: counted what could be
		}
	}
}

// Guard is a *.lock.reclaim guard: openclaw creates it (a directory, or a
// file with {pid, createdAt}) only while it reclaims a stale lock. One left
// behind by a crash makes every later start wait and fail with "lock
// timeout" (docs/local-state.md#reclaim-guards).
type Guard struct {
	Path     string
	Gateway  string
	LockPath string // the lock it guards
	Dir      bool
	// PID is the reclaimer written in a file guard, 0 for a directory.
	PID       int
	CreatedAt time.Time // from the file's createdAt, else its mtime
	// Reclaiming is true when a live process is reclaiming: the guard's
	// pid runs, or a process holds the lock's <lock>.sqlite coordinator
	// while the lock has no live holder.
	Reclaiming bool
	// LockHeld is true when the guarded lock's owner is alive.
	LockHeld bool
	// Stuck: older than StuckAfter, no live lock holder, nobody reclaiming.
	Stuck bool
	Why   string
	FS    Filesystem
	inode uint64
	mtime time.Time
	// start and parsed are a file guard's startTime and whether its
	// content was read, for judgeReclaimer.
	start  *uint64
	parsed bool
}

// StuckAfter is how old a reclaim guard must be, with nobody reclaiming and
// no live lock holder, to count as left behind: a real reclaim takes
// milliseconds.
const StuckAfter = time.Minute

// Age is the guard's age.
func (g *Guard) Age(now time.Time) time.Duration {
	if g.CreatedAt.IsZero() {
		return 0
	}
	return now.Sub(g.CreatedAt)
}

func (s *scan) guard(path string, where Filesystem) {
	g := Guard{Path: path, LockPath: strings.TrimSuffix(path, ".reclaim"), FS: where}
	st, err := os.Lstat(path)
	if err != nil {
		return // gone meanwhile: a reclaim that finished
	}
	g.mtime, g.CreatedAt = st.ModTime(), st.ModTime()
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		g.inode = sys.Ino
	}
	switch {
	case st.IsDir():
		g.Dir = true
	case st.Mode().IsRegular():
		// fs-safe's root-relative guard: a small JSON payload.
		l := readLock(path, where)
		g.PID, g.start, g.parsed = l.PID, l.StartTime, l.parsed
		if !l.CreatedAt.IsZero() {
			g.CreatedAt = l.CreatedAt
		}
	default:
		g.Why = "not a directory or regular file (" + st.Mode().Type().String() + ")"
	}
	g.Gateway = s.owner(Lock{Path: g.LockPath})
	s.res.Guards = append(s.res.Guards, g)
}

// judgeReclaimer tells whether the pid a file guard names runs.
func (s *scan) judgeReclaimer(g *Guard) {
	if !g.parsed {
		return
	}
	if state, _ := judgeOwnerAt(s.fs, s.statRoot, g.PID, g.start); state == OwnerAlive {
		g.Reclaiming = true
		g.Why = "reclaimer pid " + itoa(g.PID) + " runs"
	}
}

// judgeGuards decides, once every lock is known, whether each guard's lock
// is held and whether a reclaim is under way.
func (s *scan) judgeGuards() {
	now := time.Now()
	for i := range s.res.Guards {
		g := &s.res.Guards[i]
		if s.done() {
			return
		}
		var lock *Lock
		for j := range s.res.Locks {
			if s.res.Locks[j].Path == g.LockPath {
				lock = &s.res.Locks[j]
			}
		}
		if lock != nil && lock.Gateway != "" {
			g.Gateway = lock.Gateway
		}
		lockGone := lock == nil || !lock.Present || lock.State.Stale()
		g.LockHeld = lock != nil && lock.State == OwnerAlive
		if !g.Reclaiming && !g.LockHeld {
			if pids := s.kernelHolders(g.LockPath + ".sqlite"); len(pids) > 0 {
				g.Reclaiming = true
				g.Why = "pid " + itoa(pids[0]) + " holds " + filepath.Base(g.LockPath) + ".sqlite"
			}
		}
		switch {
		case g.Reclaiming:
		case g.LockHeld:
			g.Why = "the lock's owner is alive"
		case !lockGone:
			g.Why = "the lock's owner cannot be judged (" + string(lock.State) + ")"
		case g.Age(now) < StuckAfter:
			g.Why = "younger than " + StuckAfter.String()
		default:
			g.Stuck = true
			g.Why = "left behind: no live lock holder, nobody reclaiming, " + g.Age(now).Round(time.Second).String() + " old"
		}
	}
}

// kernelHolders are the pids holding a kernel (POSIX, flock) lock on
// path, found by device and inode in /proc/locks: the file is never opened.
func (s *scan) kernelHolders(path string) []int { return s.kernelPIDs(path, false) }

// kernelWaiters are the pids blocked waiting for a lock on path.
func (s *scan) kernelWaiters(path string) []int { return s.kernelPIDs(path, true) }

func (s *scan) kernelPIDs(path string, waiters bool) []int {
	st, err := os.Lstat(path)
	if err != nil || !st.Mode().IsRegular() {
		return nil
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	k := s.kernelLocks()
	if k == nil {
		return nil
	}
	if waiters {
		return k.waiters[keyOf(sys)]
	}
	return k.holders[keyOf(sys)]
}
