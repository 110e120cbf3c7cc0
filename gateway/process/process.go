package process

import (
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/procfs"

	"github.com/clawdbot-exporter/clawdbot_exporter/gateway"
	"github.com/clawdbot-exporter/clawdbot_exporter/gateway/lockfile"
	"github.com/clawdbot-exporter/clawdbot_exporter/internal/fileio"
	"github.com/clawdbot-exporter/clawdbot_exporter/internal/procstat"
)

// Process is a gateway's process, and how it was found.
type Process struct {
	procfs.Proc
	// Method is "lock" (the live owner of the gateway's lock) or "title"
	// (a process titled clawdbot-gateway/openclaw-gateway).
	Method string
	// stat is the stat Finder.Find read to check the process, when it did.
	stat *procfs.ProcStat
}

// FoundStat is the process's stat as Finder.Find read it while checking
// the process, else a fresh read: one read of /proc/<pid>/stat per scrape.
// Its StartTime method cannot be used (procstat.Read).
func (p *Process) FoundStat() (procfs.ProcStat, error) {
	if p.stat != nil {
		return *p.stat, nil
	}
	return p.Stat()
}

// gatewayTitles are the process titles gateways give themselves; comm is
// cut to 15 characters (docs/local-state.md#process-titles).
var gatewayTitles = []string{"clawdbot-gateway", "openclaw-gateway", "moltbot-gateway"}

// Find finds a target's gateway process: the owner of its lock when
// that owner is alive (pid and start time match), else the one process
// titled like a gateway that listens on the target's port, in its own network
// namespace (<procRoot>/<pid>/net/tcp), or, when no candidate's sockets can
// be read at all, the only candidate there is.
func Find(fs procfs.FS, procRoot string, t gateway.Target, locks []lockfile.Lock) (*Process, error) {
	for _, l := range locks {
		if l.Gateway == t.Name && l.HeldByGateway() { // a role holder (openclaw doctor) is not the gateway
			p, err := fs.Proc(l.PID)
			if err == nil {
				return &Process{Proc: p, Method: "lock"}, nil
			}
		}
	}
	procs, err := fs.AllProcs()
	if err != nil {
		return nil, fmt.Errorf("listing processes: %w", err)
	}
	var candidates []procfs.Proc
	for _, p := range procs {
		if isGatewayTitle(p) {
			candidates = append(candidates, p)
		}
	}
	port := targetPort(t)
	var onPort []procfs.Proc
	unreadable := 0
	for _, p := range candidates {
		fds, err := p.FileDescriptorTargets()
		if err != nil {
			unreadable++
			continue
		}
		listening := listeningInodes(filepath.Join(procRoot, strconv.Itoa(p.PID)), port)
		for _, fd := range fds {
			if listening[fd] {
				onPort = append(onPort, p)
				break
			}
		}
	}
	switch {
	case len(onPort) == 1:
		return &Process{Proc: onPort[0], Method: "title"}, nil
	case len(onPort) == 0 && len(candidates) == 1 && unreadable == 1:
		// Its sockets cannot be read (another user's process): the one
		// candidate is the best answer there is.
		return &Process{Proc: candidates[0], Method: "title"}, nil
	}
	return nil, nil
}

// Finder remembers each gateway's process by (pid, start ticks):
// while that process lives no scan of /proc is needed, whose net/tcp can
// list thousands of sockets. The zero value is ready to use.
type Finder struct {
	mu    sync.Mutex
	found map[string]foundProcess
}

type foundProcess struct {
	pid    int
	start  uint64
	method string
}

// Find is Find, answered from memory while the process found last
// time still runs (same pid, same start tick) and no live lock of the
// gateway names another process.
func (f *Finder) Find(fs procfs.FS, procRoot string, t gateway.Target, locks []lockfile.Lock) (*Process, error) {
	f.mu.Lock()
	prev, ok := f.found[t.Name]
	f.mu.Unlock()
	if ok && !lockNamesOther(t, locks, prev.pid) {
		// procRoot is fs's mount point: its stat is read directly, as
		// cheaply as it can be, on every scrape.
		if st, err := procstat.Read(procRoot, prev.pid); err == nil && st.Starttime == prev.start {
			if p, err := fs.Proc(prev.pid); err == nil {
				return &Process{Proc: p, Method: prev.method, stat: &st}, nil
			}
		}
	}
	p, err := Find(fs, procRoot, t, locks)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.found == nil {
		f.found = map[string]foundProcess{}
	}
	delete(f.found, t.Name)
	if p != nil {
		if st, err := procstat.Read(procRoot, p.PID); err == nil {
			f.found[t.Name] = foundProcess{pid: p.PID, start: st.Starttime, method: p.Method}
			p.stat = &st
		}
	}
	return p, err
}

// lockNamesOther is true when the gateway's live lock belongs to another
// process than pid: the lock is the better witness.
func lockNamesOther(t gateway.Target, locks []lockfile.Lock, pid int) bool {
	for _, l := range locks {
		if l.Gateway == t.Name && l.HeldByGateway() && l.PID != pid {
			return true
		}
	}
	return false
}

func isGatewayTitle(p procfs.Proc) bool {
	comm, err := p.Comm()
	if err != nil {
		return false
	}
	for _, t := range gatewayTitles {
		if comm == t || (len(comm) == 15 && strings.HasPrefix(t, comm)) {
			return true
		}
	}
	return false
}

// targetPort is the TCP port of the target's URL.
func targetPort(t gateway.Target) int {
	u, err := url.Parse(t.URL)
	if err != nil {
		return 0
	}
	if p, err := strconv.Atoi(u.Port()); err == nil {
		return p
	}
	if u.Scheme == "wss" {
		return 443
	}
	return 80
}

// listeningInodes are the "socket:[inode]" fd targets of sockets listening on
// port, IPv4 and IPv6, in the network namespace of the process whose /proc
// directory is procDir.
func listeningInodes(procDir string, port int) map[string]bool {
	out := map[string]bool{}
	fs, err := procfs.NewFS(procDir)
	if err != nil {
		return out
	}
	const listen = 0x0a
	// Deprecated in favour of netlink, but netlink cannot read a
	// --path.procfs tree: tests and containers need the files.
	for _, read := range []func() (procfs.NetTCP, error){fs.NetTCP, fs.NetTCP6} { //nolint:staticcheck // see above
		lines, err := read()
		if err != nil {
			continue
		}
		for _, l := range lines {
			if l.St == listen && int(l.LocalPort) == port {
				out["socket:["+strconv.FormatUint(l.Inode, 10)+"]"] = true
			}
		}
	}
	return out
}

// CgroupMemoryLimit is the lowest memory limit on the process's cgroup and
// its ancestors (cgroup v2 memory.max, v1 memory.limit_in_bytes); ok is false
// when there is none. sysfs is the sysfs mount point (/sys).
func CgroupMemoryLimit(p procfs.Proc, sysfs string) (limit uint64, ok bool) {
	cgs, err := p.Cgroups()
	if err != nil {
		return 0, false
	}
	root := filepath.Join(sysfs, "fs", "cgroup")
	for _, cg := range cgs {
		var base, file string
		switch {
		case cg.HierarchyID == 0 && len(cg.Controllers) == 0:
			base, file = root, "memory.max"
		case containsString(cg.Controllers, "memory"):
			base, file = filepath.Join(root, "memory"), "memory.limit_in_bytes"
		default:
			continue
		}
		for dir := filepath.Join(base, filepath.Clean("/"+cg.Path)); ; dir = filepath.Dir(dir) {
			if v, found := readCgroupLimit(filepath.Join(dir, file)); found && (!ok || v < limit) {
				limit, ok = v, true
			}
			if dir == base || len(dir) <= len(base) {
				break
			}
		}
	}
	return limit, ok
}

// readCgroupLimit reads a cgroup limit file; "max" and v1's "unlimited" (a value
// near 2^63) are no limit.
func readCgroupLimit(path string) (uint64, bool) {
	b, err := fileio.ReadFileBounded(path, 64)
	if err != nil {
		return 0, false
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || v >= 1<<62 {
		return 0, false
	}
	return v, true
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Compiled on first use, like every regexp the subcommands may not need.
var maxOldSpace = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`--max[-_]old[-_]space[-_]size[= ](\d+)`) })

// HeapLimit is the V8 heap cap from --max-old-space-size (MiB) on the
// command line or in NODE_OPTIONS, where the process lets us read them.
func HeapLimit(p procfs.Proc) (uint64, bool) {
	var sources []string
	if cmd, err := p.CmdLine(); err == nil {
		sources = append(sources, strings.Join(cmd, " "))
	}
	if env, err := p.Environ(); err == nil {
		for _, e := range env {
			if v, ok := strings.CutPrefix(e, "NODE_OPTIONS="); ok {
				sources = append(sources, v)
			}
		}
	}
	for _, s := range sources {
		if m := maxOldSpace().FindStringSubmatch(s); m != nil {
			if mib, err := strconv.ParseUint(m[1], 10, 64); err == nil && mib > 0 && mib < 1<<30 {
				return mib << 20, true
			}
		}
	}
	return 0, false
}
