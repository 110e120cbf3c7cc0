package lockfile

import (
	"bytes"
	"crypto/sha1" //nolint:gosec // the gateway names its lock with sha1; not a security use
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"

	"github.com/clawdbot-exporter/clawdbot_exporter/gateway"
	"github.com/clawdbot-exporter/clawdbot_exporter/internal/fileio"
	"github.com/clawdbot-exporter/clawdbot_exporter/internal/procstat"
)

// OwnerState says whether the process a lock names still holds it.
type OwnerState string

const (
	OwnerAlive   OwnerState = "alive"   // pid runs and its start time is the lock's
	OwnerDead    OwnerState = "dead"    // no such process
	OwnerReused  OwnerState = "reused"  // pid runs but started at another time: a recycled pid
	OwnerUnknown OwnerState = "unknown" // the lock cannot be read, parsed or judged
)

// OwnerStates lists every state, for metrics that carry all of them.
func OwnerStates() []OwnerState {
	return []OwnerState{OwnerAlive, OwnerDead, OwnerReused, OwnerUnknown}
}

// Stale is true for a lock whose owner is gone: the gateway reclaims it
// itself, and the "remove stale locks" advice (docs/verified-versions.md#lock-advice)
// means exactly these (docs/local-state.md#owner-rule).
func (s OwnerState) Stale() bool { return s == OwnerDead || s == OwnerReused }

// maxLockSize bounds a lock read: real locks are ~130 bytes (clawdbot) and
// ~500 bytes (openclaw, padded).
const maxLockSize = 64 << 10

// maxPID is the kernel's PID_MAX_LIMIT (4M); larger values are garbage.
const maxPID = 1 << 22

// Lock is one gateway.*.lock file and what is known of its owner.
type Lock struct {
	Path string
	// Gateway is the name of the configured gateway this lock belongs to,
	// "" for a lock of some other config (or one that cannot be told).
	Gateway    string
	Present    bool
	PID        int
	StartTime  *uint64 // clock ticks since boot, from the lock
	CreatedAt  time.Time
	ConfigPath string
	State      OwnerState
	// Why explains an unknown state, for logs and the locks command.
	Why string
	FS  Filesystem
	// Kind is KindConfig (gateway.<h>.lock) or KindState (openclaw's
	// gateway.state.lock).
	Kind string
	// Product is clawdbot or openclaw when the lock's location, name or
	// content tells, else "".
	Product string
	// Role is who holds the lock: "gateway", or what openclaw writes for a
	// holder that is not the gateway (agent-embedded, skill-workshop-apply,
	// sqlite-maintenance; "other" for a value it does not know). "" when
	// the content could not be read.
	Role string
	// HasOwnerID is true when the lock carries openclaw's ownerId (a new
	// UUID per acquire: never a label).
	HasOwnerID bool
	// Port is the port the holder listens on, 0 when not written.
	Port int
	// inode identifies the file read, so removal can tell it was not
	// replaced in between.
	inode uint64
	// parsed is true when the content names an owner to judge.
	parsed bool
}

// Age is the lock's age from createdAt, else from its mtime.
func (l *Lock) Age(now time.Time) time.Duration {
	if l.CreatedAt.IsZero() {
		return 0
	}
	return now.Sub(l.CreatedAt)
}

// lockContent is both products' lock format; unknown fields are ignored.
type lockContent struct {
	PID        json.Number `json:"pid"`
	CreatedAt  string      `json:"createdAt"`
	ConfigPath string      `json:"configPath"`
	StartTime  json.Number `json:"startTime"`
	OwnerID    string      `json:"ownerId"`
	Port       json.Number `json:"port"`
	Role       *string     `json:"role"`
	StateDir   string      `json:"stateDir"`
}

// Lock kinds.
const (
	KindConfig = "config" // gateway.<h>.lock: one per config file
	KindState  = "state"  // openclaw's gateway.state.lock: one per state directory
)

// StateLockName is openclaw's per-state-directory lock.
const StateLockName = "gateway.state.lock"

// Roles openclaw writes for a holder that is not the gateway
// (gateway-lock-*.mjs, LockPayloadSchema).
var knownRoles = map[string]bool{"gateway": true, "agent-embedded": true, "skill-workshop-apply": true, "sqlite-maintenance": true}

// HeldByGateway is true when a live gateway holds the lock; a live holder
// with another role (openclaw doctor, an embedded agent) is legitimate but
// is not the gateway process.
func (l *Lock) HeldByGateway() bool {
	return l.State == OwnerAlive && (l.Role == "" || l.Role == "gateway")
}

// HeldByOther is true when a live process that is not a gateway holds
// the lock: the next gateway start waits for it and fails.
func (l *Lock) HeldByOther() bool {
	return l.State == OwnerAlive && l.Role != "" && l.Role != "gateway"
}

// Name is the file name a gateway gives the lock of configPath:
// clawdbot hashes with sha1, openclaw with sha256 (docs/local-state.md#lock-paths-and-names).
func Name(product, configPath string) string {
	var sum []byte
	if product == "openclaw" {
		h := sha256.Sum256([]byte(configPath))
		sum = h[:]
	} else {
		h := sha1.Sum([]byte(configPath)) //nolint:gosec // see import
		sum = h[:]
	}
	return "gateway." + hex.EncodeToString(sum)[:8] + ".lock"
}

// Dirs lists the directories where a target's gateway may have left
// locks: clawdbot's $TMPDIR/clawdbot-<uid>/ (under the exporter's TMPDIR and
// /tmp), openclaw's <stateDir>/tmp/openclaw-<uid>/, the state directory
// itself (where clawdbot kept locks before 2026.1.24), and extra directories.
// Symlinked directories found by pattern are skipped: /tmp is world-writable.
func Dirs(t gateway.Target, extra []string) []string {
	return dirsIn(t, extra, tempDirs())
}

// tempDirs are where clawdbot's and openclaw's runtime directories are
// looked for: the exporter's TMPDIR and /tmp.
func tempDirs() []string { return uniq(filepath.Clean(os.TempDir()), "/tmp") }

func dirsIn(t gateway.Target, extra, tmps []string) []string {
	var dirs []string
	seen := map[string]bool{}
	add := func(d string, followLinks bool) {
		d = filepath.Clean(d)
		if seen[d] {
			return
		}
		st, err := os.Lstat(d)
		if err != nil {
			return
		}
		if st.Mode()&os.ModeSymlink != 0 {
			if !followLinks {
				return
			}
			if st, err = os.Stat(d); err != nil {
				return
			}
		}
		if st.IsDir() {
			seen[d] = true
			dirs = append(dirs, d)
		}
	}
	glob := func(pattern string) {
		matches, _ := filepath.Glob(pattern)
		sort.Strings(matches)
		for _, m := range matches {
			add(m, false)
		}
	}
	for _, tmp := range tmps {
		glob(filepath.Join(tmp, "clawdbot-*"))
	}
	if t.StateDir != "" {
		glob(filepath.Join(t.StateDir, "tmp", "openclaw-*"))
		add(t.StateDir, true)
	}
	for _, d := range extra {
		add(d, true)
	}
	return dirs
}

// AllDirs is the union of Dirs over several targets, in order.
func AllDirs(targets []gateway.Target, extra []string) []string {
	return allDirsIn(targets, extra, tempDirs())
}

func allDirsIn(targets []gateway.Target, extra, tmps []string) []string {
	var dirs []string
	seen := map[string]bool{}
	for _, t := range targets {
		for _, d := range dirsIn(t, extra, tmps) {
			if !seen[d] {
				seen[d] = true
				dirs = append(dirs, d)
			}
		}
	}
	return dirs
}

func realPath(p string) string {
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	return p
}

// Inspect reads one lock file and judges its owner. It never follows a
// symlink, never blocks on a FIFO or device, reads at most maxLockSize bytes,
// and never fails: what it cannot judge is OwnerUnknown with a reason.
func Inspect(fs procfs.FS, path string) Lock {
	return inspect(fs, path, StatFilesystem(filepath.Dir(path)))
}

func inspect(fs procfs.FS, path string, where Filesystem) Lock {
	l := readLock(path, where)
	if l.parsed {
		l.State, l.Why = judgeOwner(fs, l.PID, l.StartTime)
	}
	return l
}

// notJudged is the Why of a lock whose owner a scan cut short did not judge.
const notJudged = "the scan ended before the owner was judged"

// readLock reads a lock file as inspect does, without judging its owner:
// a lock whose content names one is parsed, OwnerUnknown until judged.
func readLock(path string, where Filesystem) Lock {
	l := Lock{Path: path, State: OwnerUnknown, FS: where, Kind: KindConfig}
	if filepath.Base(path) == StateLockName {
		l.Kind = KindState
	}
	unknown := func(why string) Lock { l.Why = why; return l }

	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			l.Present = true
			return unknown("symlink: not followed")
		}
		if errors.Is(err, os.ErrNotExist) {
			return unknown("not present")
		}
		l.Present = true
		return unknown(err.Error())
	}
	defer f.Close()
	l.Present = true
	st, err := f.Stat()
	if err != nil {
		return unknown(err.Error())
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		l.inode = sys.Ino
	}
	l.CreatedAt = st.ModTime()
	if !st.Mode().IsRegular() {
		return unknown("not a regular file (" + st.Mode().Type().String() + ")")
	}
	b, err := io.ReadAll(io.LimitReader(f, maxLockSize+1))
	if err != nil {
		return unknown(err.Error())
	}
	if len(b) > maxLockSize {
		return unknown(fmt.Sprintf("larger than %d bytes", maxLockSize))
	}
	if why := parseLock(&l, b); why != "" {
		return unknown(why)
	}
	l.parsed, l.Why = true, notJudged
	return l
}

// parseLock fills l's CreatedAt, ConfigPath, PID and StartTime from a lock
// file's content, as far as it can; it returns why the content is no usable
// lock, "" when it is one.
func parseLock(l *Lock, b []byte) (why string) {
	if err := fileio.CheckDepth(b, fileio.MaxDepth); err != nil {
		return "not a lock: " + err.Error()
	}
	var c lockContent
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&c); err != nil {
		return "not a lock: " + err.Error()
	}
	if t, err := time.Parse(time.RFC3339Nano, c.CreatedAt); err == nil {
		l.CreatedAt = t
	}
	l.ConfigPath = c.ConfigPath
	l.HasOwnerID = c.OwnerID != ""
	if port, err := strconv.Atoi(c.Port.String()); err == nil && port > 0 && port <= 65535 {
		l.Port = port
	}
	l.Role = "gateway"
	if c.Role != nil {
		l.Role = "other"
		if knownRoles[*c.Role] {
			l.Role = *c.Role
		}
	}
	if c.OwnerID != "" || c.StateDir != "" || c.Role != nil {
		l.Product = "openclaw" // clawdbot writes none of these
	}
	pid, err := strconv.ParseInt(c.PID.String(), 10, 64)
	if err != nil || pid <= 0 || pid >= maxPID {
		return fmt.Sprintf("invalid pid %q", c.PID.String())
	}
	l.PID = int(pid)
	if c.StartTime != "" {
		st, err := strconv.ParseUint(c.StartTime.String(), 10, 64)
		if err != nil {
			return fmt.Sprintf("invalid startTime %q", c.StartTime.String())
		}
		l.StartTime = &st
	}
	return ""
}

// judgeOwner applies the gateway's own rule (docs/local-state.md#owner-rule): the owner is
// alive only when the pid runs AND, if the lock has a start time, the
// process started at exactly that tick. Ticks are compared raw, never
// converted to seconds.
func judgeOwner(fs procfs.FS, pid int, startTime *uint64) (OwnerState, string) {
	proc, err := fs.Proc(pid)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return OwnerDead, "no process " + strconv.Itoa(pid)
		}
		return OwnerUnknown, err.Error()
	}
	stat, err := proc.Stat()
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
			return OwnerDead, "process exited while being read"
		}
		return OwnerUnknown, "reading process: " + err.Error()
	}
	if startTime != nil {
		return ownerOf(pid, stat, *startTime)
	}
	if stat.State == "Z" || stat.State == "X" {
		return OwnerDead, "process is a zombie"
	}
	// No start time (older gateways): the gateway falls back to a command
	// line heuristic; so do we.
	if looksLikeGateway(proc) {
		return OwnerAlive, "no startTime in lock; process looks like a gateway"
	}
	return OwnerReused, "no startTime in lock; process does not look like a gateway"
}

// judgeOwnerAt is judgeOwner reading <procRoot>/<pid>/stat itself
// (procstat.Read), when procRoot is fs's mount point; "" is judgeOwner.
// A lock without a start time still goes through procfs (its command line
// is read).
func judgeOwnerAt(fs procfs.FS, procRoot string, pid int, startTime *uint64) (OwnerState, string) {
	if procRoot == "" || startTime == nil {
		return judgeOwner(fs, pid, startTime)
	}
	stat, err := procstat.Read(procRoot, pid)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return OwnerDead, "no process " + strconv.Itoa(pid)
	case errors.Is(err, syscall.ESRCH):
		return OwnerDead, "process exited while being read"
	case err != nil:
		return OwnerUnknown, "reading process: " + err.Error()
	}
	return ownerOf(pid, stat, *startTime)
}

// ownerOf judges a running process against the lock's start ticks.
func ownerOf(pid int, stat procfs.ProcStat, startTime uint64) (OwnerState, string) {
	if stat.State == "Z" || stat.State == "X" {
		return OwnerDead, "process is a zombie"
	}
	if stat.Starttime != startTime {
		return OwnerReused, fmt.Sprintf("pid %d started at tick %d, the lock's owner at %d", pid, stat.Starttime, startTime)
	}
	return OwnerAlive, ""
}

// looksLikeGateway recognises a gateway by its process title or command.
func looksLikeGateway(p procfs.Proc) bool {
	var parts []string
	if comm, err := p.Comm(); err == nil {
		parts = append(parts, comm)
	}
	if cmd, err := p.CmdLine(); err == nil {
		parts = append(parts, cmd...)
	}
	s := strings.ToLower(strings.Join(parts, " "))
	for _, w := range []string{"clawdbot", "openclaw", "moltbot"} {
		if strings.Contains(s, w) {
			return true
		}
	}
	return false
}

// Filesystem describes where a lock lives.
type Filesystem struct {
	Type     string // tmpfs, ext4, nfs, overlay, …; "unknown" when statfs fails
	Volatile bool   // tmpfs or ramfs: gone at reboot or container restart
	Network  bool   // NFS, SMB, Ceph, …: a root cause of odd lock behaviour (docs/verified-versions.md#lock-advice)
}

// filesystem magic numbers (statfs(2), linux/magic.h).
var fsTypes = map[int64]Filesystem{
	0x01021994: {Type: "tmpfs", Volatile: true},
	0x858458f6: {Type: "ramfs", Volatile: true},
	0xef53:     {Type: "ext4"},
	0x58465342: {Type: "xfs"},
	0x9123683e: {Type: "btrfs"},
	0x2fc12fc1: {Type: "zfs"},
	0x794c7630: {Type: "overlay"},
	0x65735546: {Type: "fuse"},
	0x73717368: {Type: "squashfs"},
	0x4d44:     {Type: "vfat"},
	0x5346544e: {Type: "ntfs"},
	0xf2f52010: {Type: "f2fs"},
	0x6969:     {Type: "nfs", Network: true},
	0xff534d42: {Type: "cifs", Network: true},
	0xfe534d42: {Type: "smb2", Network: true},
	0x517b:     {Type: "smb", Network: true},
	0x00c36400: {Type: "ceph", Network: true},
	0x5346414f: {Type: "afs", Network: true},
	0x01161970: {Type: "gfs2", Network: true},
	0x0bd00bd0: {Type: "lustre", Network: true},
	0x01021997: {Type: "9p", Network: true},
}

// StatFilesystem identifies the filesystem holding dir.
func StatFilesystem(dir string) Filesystem {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return Filesystem{Type: "unknown"}
	}
	if fs, ok := fsTypes[int64(st.Type)]; ok { //nolint:unconvert // Type's width differs by architecture
		return fs
	}
	return Filesystem{Type: fmt.Sprintf("0x%x", uint64(st.Type))}
}

// ErrNotStale refuses to remove a lock whose owner may be alive.
var ErrNotStale = errors.New("owner is not dead or reused")

// RemoveStale removes the lock at path if, and only if, its owner is dead or
// reused. The lock is renamed aside in its directory, read and judged again
// there (so a gateway that took the lock in the meantime is seen), then
// deleted, or linked back under its name when the owner turned out alive.
func RemoveStale(fs procfs.FS, path string) (Lock, error) {
	l := Inspect(fs, path)
	if !l.State.Stale() {
		return l, fmt.Errorf("%s: %w (%s%s)", path, ErrNotStale, l.State, whySuffix(l.Why))
	}
	aside := fmt.Sprintf("%s.removing-%d-%d", path, os.Getpid(), time.Now().UnixNano())
	if err := os.Rename(path, aside); err != nil {
		return l, fmt.Errorf("%s: moving aside: %w", path, err)
	}
	again := Inspect(fs, aside)
	if again.State.Stale() && again.inode == l.inode && again.PID == l.PID {
		if err := os.Remove(aside); err != nil {
			return l, fmt.Errorf("%s: removing: %w", aside, err)
		}
		return l, nil
	}
	// Not the lock we judged, or its owner is back: restore it without
	// overwriting a lock a new gateway may have created meanwhile.
	if err := os.Link(aside, path); err != nil {
		return again, fmt.Errorf("%s changed while being removed (%s) and could not be put back: %w; it is at %s", path, again.State, err, aside)
	}
	_ = os.Remove(aside)
	return again, fmt.Errorf("%s changed while being removed (now %s): left in place", path, again.State)
}

func whySuffix(why string) string {
	if why == "" {
		return ""
	}
	return ": " + why
}
