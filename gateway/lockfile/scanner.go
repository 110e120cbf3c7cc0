package lockfile

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"

	"github.com/clawdbot-exporter/clawdbot_exporter/gateway"
)

// DefaultFullScanEvery is how long a Scanner reuses what it read of the
// lock files at most.
const DefaultFullScanEvery = time.Minute

// racyMargin: a directory or file changed this recently is never trusted
// to be unchanged because its timestamps are: a change in the same clock
// tick as the read leaves them as they were (file timestamps come from
// the kernel's coarse clock).
const racyMargin = 2 * time.Second

// Scanner scans the lock directories of the targets as ScanContext over
// AllDirs does, for one scrape after another. It reads the directories and
// lock files again only when one of them changed (inode, mode, size, mtime
// or ctime), or a directory where they are looked for (/tmp, TMPDIR,
// <stateDir>/tmp) gained or lost a clawdbot-* or openclaw-* entry, and at
// least every FullScanEvery: what no stat shows (a config path's symlink
// pointed elsewhere) waits for that. A scan where nothing changed costs a
// stat of each. Whether each owner lives, who holds the coordinators and
// whether a guard is stuck is judged on every scan: a dead owner shows on
// the next one. Nothing is reused from a network or unknown filesystem,
// whose timestamps need not follow this machine's clock. Safe for
// concurrent use.
type Scanner struct {
	// FS is where the owners are judged. Options.ProcRoot, when set, must
	// be its mount point: the owners' stat files are read there directly.
	FS procfs.FS
	// Extra are the --lock.dir directories.
	Extra   []string
	Options Options
	// FullScanEvery: 0 is DefaultFullScanEvery.
	FullScanEvery time.Duration

	// tmps, margin: tests' own temp dirs (nil: tempDirs()) and racy
	// margin (0: racyMargin).
	tmps   []string
	margin time.Duration

	mu   sync.Mutex
	last *snapshot
	// reads counts the scans that read the files, for tests.
	reads int
}

// snapshot is what a full scan read, and the stats that say it still
// holds. It is never changed once kept.
type snapshot struct {
	key string
	at  time.Time
	// parents are the directories searched for lock directories, and
	// their entries that may be ones: a parent that changed is listed
	// again, and different entries mean reading everything again.
	parents     []fileStat
	listings    [][]dirent
	dirs, cdirs []string
	// content are the lock directories and the files read: one that
	// changed means reading everything again.
	content []fileStat
	res     Result // read, not judged
}

// fileStat is what tells that a file did not change.
type fileStat struct {
	path   string
	follow bool
	// racy: changed too recently to tell a later change by its stat.
	racy         bool
	err          syscall.Errno
	dev, ino     uint64
	mode         uint32
	size         int64
	mtime, ctime unix.Timespec
}

func statFile(path string, follow bool, since time.Time) fileStat {
	f := fileStat{path: path, follow: follow}
	var st unix.Stat_t
	var err error
	if follow {
		err = unix.Stat(path, &st)
	} else {
		err = unix.Lstat(path, &st)
	}
	if err != nil {
		if !errors.As(err, &f.err) {
			f.racy = true
		}
		return f
	}
	f.dev, f.ino, f.mode, f.size = uint64(st.Dev), st.Ino, st.Mode, st.Size //nolint:unconvert // Dev's width differs by architecture
	f.mtime, f.ctime = st.Mtim, st.Ctim
	f.racy = !time.Unix(st.Mtim.Unix()).Before(since) || !time.Unix(st.Ctim.Unix()).Before(since)
	return f
}

// same is true when b, a fresh stat of the same path, shows no change
// since a.
func (a fileStat) same(b fileStat) bool {
	return !a.racy && a.err == b.err && a.dev == b.dev && a.ino == b.ino && a.mode == b.mode &&
		a.size == b.size && a.mtime == b.mtime && a.ctime == b.ctime
}

// recorder collects the stats of a full scan's content.
type recorder struct {
	since time.Time
	stats []fileStat
	seen  map[string]bool
	// trusted is false once anything read lies on a filesystem whose
	// timestamps cannot be trusted.
	trusted bool
}

func (r *recorder) add(path string, follow bool) {
	if r == nil || r.seen[path] {
		return
	}
	r.seen[path] = true
	r.stats = append(r.stats, statFile(path, follow, r.since))
}

// filesystem notes where something read lies.
func (r *recorder) filesystem(f Filesystem) {
	if r != nil && !trustedFS[f.Type] {
		r.trusted = false
	}
}

// trustedFS are the local filesystems whose timestamps tell every change
// of a directory's entries and of a file's content.
var trustedFS = map[string]bool{"tmpfs": true, "ramfs": true, "ext4": true, "xfs": true, "btrfs": true, "zfs": true, "overlay": true, "f2fs": true, "squashfs": true}

func (r *recorder) keepable() bool {
	if !r.trusted {
		return false
	}
	for _, f := range r.stats {
		if f.racy {
			return false
		}
	}
	return true
}

// Scan scans the targets' lock directories; see Scanner.
func (s *Scanner) Scan(ctx context.Context, targets []gateway.Target) Result {
	key := scanKey(targets, s.Extra)
	s.mu.Lock()
	last := s.last
	s.mu.Unlock()
	every := s.FullScanEvery
	if every <= 0 {
		every = DefaultFullScanEvery
	}
	if last != nil && last.key == key && time.Since(last.at) < every {
		if snap, ok := s.unchanged(last, targets); ok {
			if snap != last {
				s.mu.Lock()
				if s.last == last {
					s.last = snap
				}
				s.mu.Unlock()
			}
			sc := &scan{ctx: ctx, fs: s.FS, o: s.Options.withDefaults(), res: last.res.clone(), statRoot: s.Options.ProcRoot}
			sc.judge()
			return sc.res
		}
	}
	return s.full(ctx, targets, key)
}

// full reads everything, keeps what it read when it can be trusted, and
// judges it.
func (s *Scanner) full(ctx context.Context, targets []gateway.Target, key string) Result {
	begin := time.Now()
	since := begin.Add(-s.racyMargin())
	// Stat before reading: a change after the stat shows at the next one.
	parents := s.parents(targets)
	pstats := make([]fileStat, len(parents))
	listings := make([][]dirent, len(parents))
	for i, p := range parents {
		pstats[i] = statFile(p, true, since)
		var ok bool
		if listings[i], ok = listCandidates(p); !ok {
			pstats[i].racy = true // too many entries to keep: list it every time
		}
	}
	dirs, cdirs := allDirsIn(targets, s.Extra, s.tempDirs()), s.coordinatorDirs()
	rec := &recorder{since: since, seen: map[string]bool{}, trusted: true}
	for _, d := range plainDirs(targets, s.Extra) {
		rec.add(d, true)
	}
	for _, d := range slices.Concat(dirs, cdirs) {
		rec.add(d, true)
	}
	sc := newScan(ctx, s.FS, targets, s.Options)
	sc.rec = rec
	sc.read(dirs, cdirs)
	var snap *snapshot
	if ctx.Err() == nil && rec.keepable() {
		snap = &snapshot{key: key, at: begin, parents: pstats, listings: listings, dirs: dirs, cdirs: cdirs, content: rec.stats, res: sc.res.clone()}
	}
	s.mu.Lock()
	s.last = snap
	s.reads++
	s.mu.Unlock()
	sc.rec, sc.statRoot = nil, s.Options.ProcRoot
	sc.judge()
	return sc.res
}

// unchanged checks last against fresh stats. When only parent
// directories changed and listing them again finds the same candidate
// entries, it returns last with the parents' fresh stats.
func (s *Scanner) unchanged(last *snapshot, targets []gateway.Target) (*snapshot, bool) {
	since := time.Now().Add(-s.racyMargin())
	parents := s.parents(targets)
	if len(parents) != len(last.parents) {
		return nil, false
	}
	var fresh []fileStat
	for i, p := range parents {
		f := statFile(p, true, since)
		if p == last.parents[i].path && last.parents[i].same(f) {
			continue
		}
		entries, ok := listCandidates(p)
		if p != last.parents[i].path || !ok || !slices.Equal(entries, last.listings[i]) {
			return nil, false
		}
		if fresh == nil {
			fresh = slices.Clone(last.parents)
		}
		fresh[i] = f
	}
	for _, f := range last.content {
		if !f.same(statFile(f.path, f.follow, since)) {
			return nil, false
		}
	}
	if fresh == nil {
		return last, true
	}
	cp := *last
	cp.parents = fresh
	return &cp, true
}

// dirent is a directory entry as getdents(2) tells it: a different inode
// or type under the same name is another entry.
type dirent struct {
	name string
	ino  uint64
	typ  uint8
}

// listCandidates lists the entries of dir that Dirs and CoordinatorDirs
// may take (clawdbot-*, openclaw-*), sorted, with one getdents(2) loop
// and no stat. ok is false for a directory of more than
// DefaultMaxEntriesPerDir entries; a missing or unreadable one has none.
func listCandidates(dir string) (out []dirent, ok bool) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, true
	}
	defer func() { _ = unix.Close(fd) }()
	bp := direntBufs.Get().(*[8 << 10]byte)
	defer direntBufs.Put(bp)
	seen := 0
	for {
		n, err := unix.Getdents(fd, bp[:])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || n <= 0 {
			break
		}
		for b := bp[:n]; len(b) >= 19; {
			// struct linux_dirent64: ino u64, off s64, reclen u16, type u8, name.
			reclen := int(binary.NativeEndian.Uint16(b[16:18]))
			if reclen < 19 || reclen > len(b) {
				return nil, false
			}
			name := b[19:reclen]
			if i := bytes.IndexByte(name, 0); i >= 0 {
				name = name[:i]
			}
			if seen++; seen > DefaultMaxEntriesPerDir {
				return nil, false
			}
			if bytes.HasPrefix(name, []byte("clawdbot-")) || bytes.HasPrefix(name, []byte("openclaw-")) {
				out = append(out, dirent{name: string(name), ino: binary.NativeEndian.Uint64(b[:8]), typ: b[18]})
			}
			b = b[reclen:]
		}
	}
	slices.SortFunc(out, func(a, b dirent) int { return strings.Compare(a.name, b.name) })
	return out, true
}

var direntBufs = sync.Pool{New: func() any { return new([8 << 10]byte) }}

// parents are the directories Dirs and CoordinatorDirs search by pattern.
func (s *Scanner) parents(targets []gateway.Target) []string {
	out := slices.Clone(s.tempDirs())
	for _, t := range targets {
		if d := filepath.Join(t.StateDir, "tmp"); t.StateDir != "" && !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	return out
}

func (s *Scanner) tempDirs() []string {
	if s.tmps != nil {
		return s.tmps
	}
	return tempDirs()
}

func (s *Scanner) racyMargin() time.Duration {
	if s.margin != 0 {
		return s.margin
	}
	return racyMargin
}

// plainDirs are the directories Dirs takes as they are, whether or not
// they exist now.
func plainDirs(targets []gateway.Target, extra []string) []string {
	var out []string
	for _, t := range targets {
		if t.StateDir != "" {
			out = append(out, filepath.Clean(t.StateDir))
		}
	}
	for _, d := range extra {
		out = append(out, filepath.Clean(d))
	}
	return out
}

func (s *Scanner) coordinatorDirs() []string {
	if s.Options.CoordinatorDirs != nil {
		return s.Options.CoordinatorDirs
	}
	return coordinatorDirsIn(s.tempDirs())
}

// scanKey tells whether two scans look for the same locks.
func scanKey(targets []gateway.Target, extra []string) string {
	var b strings.Builder
	for _, t := range targets {
		b.WriteString(t.Name + "\x00" + t.ConfigPath + "\x00" + t.StateDir + "\x00")
	}
	b.WriteString("\x01" + strings.Join(extra, "\x00"))
	return b.String()
}

// clone copies what judge changes.
func (r Result) clone() Result {
	return Result{
		Locks:        slices.Clone(r.Locks),
		Guards:       slices.Clone(r.Guards),
		Coordinators: slices.Clone(r.Coordinators),
		Dropped:      maps.Clone(r.Dropped),
	}
}
