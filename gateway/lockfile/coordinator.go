package lockfile

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"
)

// Coordinator is openclaw's gateway-lifecycle coordinator, the first of
// its three locks: an empty file under <runtime dir>/openclaw-state-locks-<uid>/
// held with SQLite BEGIN EXCLUSIVE, a POSIX record lock. Its holder is read
// from /proc/locks; the SQLite file itself is never opened.
type Coordinator struct {
	Path    string
	Gateway string
	// HolderPID holds the lock (in the PID namespace of --path.procfs), 0
	// when nobody does.
	HolderPID int
	// Waiters counts the processes blocked waiting for it (a second gateway
	// waits up to 300 s).
	Waiters int
	// HolderIsGateway is true when the holder is the target's gateway: it
	// holds the gateway's live lock, or is titled like a gateway (one that
	// is starting).
	HolderIsGateway bool
	Why             string
	FS              Filesystem
}

// CoordinatorName is the coordinator file a state directory's gateway
// uses: gateway-lifecycle.<sha256(<stateDir>/state/openclaw.sqlite)[:8]>.lock.sqlite.
func CoordinatorName(stateDir string) string {
	h := sha256.Sum256([]byte(filepath.Join(stateDir, "state", "openclaw.sqlite")))
	return "gateway-lifecycle." + hex.EncodeToString(h[:])[:8] + ".lock.sqlite"
}

// CoordinatorDirs are the openclaw-state-locks-* directories under the
// exporter's TMPDIR and /tmp (openclaw's default runtime directory is
// /tmp). Symlinks are skipped: /tmp is world-writable.
func CoordinatorDirs() []string { return coordinatorDirsIn(tempDirs()) }

func coordinatorDirsIn(tmps []string) []string {
	var dirs []string
	seen := map[string]bool{}
	for _, tmp := range tmps {
		matches, _ := filepath.Glob(filepath.Join(tmp, "openclaw-state-locks*"))
		sort.Strings(matches)
		for _, m := range matches {
			m = filepath.Clean(m)
			if st, err := os.Lstat(m); err == nil && st.IsDir() && !seen[m] {
				seen[m] = true
				dirs = append(dirs, m)
			}
		}
	}
	return dirs
}

// coordinators reports the targets' coordinators found in dirs (a
// coordinator of no configured state directory tells nothing).
func (s *scan) coordinators(dirs []string) {
	for _, dir := range dirs {
		for _, id := range s.ids {
			for name := range id.coordinator {
				if s.done() {
					return
				}
				path := filepath.Join(dir, name)
				st, err := os.Lstat(path)
				if err != nil || !st.Mode().IsRegular() {
					continue
				}
				c := Coordinator{Path: path, Gateway: id.name, FS: StatFilesystem(dir)}
				s.rec.filesystem(c.FS)
				s.res.Coordinators = append(s.res.Coordinators, c)
			}
		}
	}
}

// judgeCoordinator finds who holds and who waits for the coordinator.
func (s *scan) judgeCoordinator(c *Coordinator) {
	if pids := s.kernelHolders(c.Path); len(pids) > 0 {
		c.HolderPID = pids[0]
		c.judgeHolder(s.fs, s.res.Locks)
	}
	c.Waiters = len(s.kernelWaiters(c.Path))
}

// judgeHolder decides whether the coordinator's holder is the gateway.
func (c *Coordinator) judgeHolder(fs procfs.FS, locks []Lock) {
	for _, l := range locks {
		if l.Gateway != c.Gateway || l.PID != c.HolderPID || l.State != OwnerAlive {
			continue
		}
		if l.HeldByGateway() {
			c.HolderIsGateway = true
			c.Why = "held by the gateway, pid " + itoa(c.HolderPID)
			return
		}
		c.Why = "held by " + l.Role + " pid " + itoa(c.HolderPID) + ", not a gateway"
		return
	}
	p, err := fs.Proc(c.HolderPID)
	if err != nil {
		c.Why = "holder pid " + itoa(c.HolderPID) + " not visible"
		c.HolderIsGateway = true // cannot tell: never call it a blocker
		return
	}
	comm, _ := p.Comm()
	if isGatewayComm(comm) {
		c.HolderIsGateway = true
		c.Why = "held by a gateway process, pid " + itoa(c.HolderPID)
		return
	}
	c.Why = "held by pid " + itoa(c.HolderPID) + " (" + comm + "), not a gateway"
}

// isGatewayComm recognises the gateway's process title, cut to 15
// characters in comm (docs/local-state.md#process-titles).
func isGatewayComm(comm string) bool {
	for _, t := range []string{"clawdbot-gateway", "openclaw-gateway", "moltbot-gateway"} {
		if comm == t[:min(len(t), 15)] {
			return true
		}
	}
	return false
}

// Blocks is true when a live process that is not the gateway holds the
// coordinator: the next gateway start waits for it (up to 300 s).
func (c *Coordinator) Blocks() bool { return c.HolderPID > 0 && !c.HolderIsGateway }

// fileKey identifies a file as /proc/locks prints it.
type fileKey struct {
	major, minor uint32
	ino          uint64
}

// kernelLocks is /proc/locks by file: who holds, who waits.
type kernelLocks struct {
	holders map[fileKey][]int
	waiters map[fileKey][]int
}

// maxKernelLocksBytes bounds the read of /proc/locks (about 60 bytes a
// line: some 140,000 locks).
const maxKernelLocksBytes = 8 << 20

// readKernelLocks parses /proc/locks:
//
//	1: POSIX  ADVISORY  WRITE 4242 00:2d:56789 1073741824 1073741824
//	1: -> POSIX  ADVISORY  WRITE 4243 00:2d:56789 1073741824 1073741824
//
// "->" marks a waiter; OFD locks have pid -1 and are skipped. nil when the
// file cannot be read.
func readKernelLocks(ctx context.Context, procRoot string) *kernelLocks {
	if procRoot == "" {
		procRoot = procfs.DefaultMountPoint
	}
	f, err := os.Open(filepath.Join(procRoot, "locks"))
	if err != nil {
		return nil
	}
	defer f.Close()
	return parseKernelLocks(ctx, io.LimitReader(f, maxKernelLocksBytes))
}

func parseKernelLocks(ctx context.Context, r io.Reader) *kernelLocks {
	k := &kernelLocks{holders: map[fileKey][]int{}, waiters: map[fileKey][]int{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 512), 4096)
	for n := 0; sc.Scan(); n++ {
		if n%4096 == 0 && ctx.Err() != nil {
			break
		}
		fields := strings.Fields(sc.Text())
		waiter := len(fields) > 1 && fields[1] == "->"
		if waiter {
			fields = append(fields[:1], fields[2:]...)
		}
		if len(fields) < 6 {
			continue
		}
		pid, err := strconv.Atoi(fields[4])
		if err != nil || pid <= 0 {
			continue
		}
		parts := strings.Split(fields[5], ":")
		if len(parts) != 3 {
			continue
		}
		maj, err1 := strconv.ParseUint(parts[0], 16, 32)
		minr, err2 := strconv.ParseUint(parts[1], 16, 32)
		ino, err3 := strconv.ParseUint(parts[2], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil {
			continue
		}
		key := fileKey{major: uint32(maj), minor: uint32(minr), ino: ino}
		m := k.holders
		if waiter {
			m = k.waiters
		}
		if !containsInt(m[key], pid) && len(m[key]) < 64 {
			m[key] = append(m[key], pid)
		}
	}
	return k
}

func keyOf(st *syscall.Stat_t) fileKey {
	dev := uint64(st.Dev) //nolint:unconvert // Dev's width differs by architecture
	return fileKey{major: unix.Major(dev), minor: unix.Minor(dev), ino: st.Ino}
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func itoa(n int) string { return strconv.Itoa(n) }
