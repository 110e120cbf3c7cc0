package collector

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs"

	"github.com/clawdbot-exporter/clawdbot_exporter/gateway"
	"github.com/clawdbot-exporter/clawdbot_exporter/gateway/lockfile"
	"github.com/clawdbot-exporter/clawdbot_exporter/gateway/prober"
	"github.com/clawdbot-exporter/clawdbot_exporter/gateway/process"
)

func init() {
	registerCollector("process", true, newProcessCollector)
}

var (
	procUpDesc = newDesc("process_up",
		"1 when the gateway's process was found (the live owner of its lock, or a process titled like a gateway on its port).", "gateway")
	procInfoDesc = newDesc("process_info",
		"How the gateway's process was found: lock or title.", "gateway", "method")
	procRSSDesc = newDesc("process_resident_memory_bytes",
		"Resident memory of the gateway process.", "gateway")
	procRSSAnonDesc = newDesc("process_resident_memory_anon_bytes",
		"Anonymous resident memory (heap and other allocations) of the gateway process.", "gateway")
	procRSSFileDesc = newDesc("process_resident_memory_file_bytes",
		"File-backed resident memory of the gateway process.", "gateway")
	procVirtDesc = newDesc("process_virtual_memory_bytes",
		"Virtual memory of the gateway process.", "gateway")
	procCPUDesc = newDesc("process_cpu_seconds_total",
		"User and system CPU time of the gateway process.", "gateway")
	procStartDesc = newDesc("process_start_time_seconds",
		"Start time of the gateway process since the epoch; it changes when the gateway restarts.", "gateway")
	procFDsDesc = newDesc("process_open_fds",
		"Open file descriptors of the gateway process.", "gateway")
	procMaxFDsDesc = newDesc("process_max_fds",
		"File descriptor limit of the gateway process.", "gateway")
	procThreadsDesc = newDesc("process_threads",
		"Threads of the gateway process.", "gateway")
	procTreeRSSDesc = newDesc("process_tree_resident_memory_bytes",
		"Resident memory of the gateway process and its descendants (openclaw's spawn broker and SQLite worker); the memory alerts use it.", "gateway")
	procTreeAnonDesc = newDesc("process_tree_resident_memory_anon_bytes",
		"Anonymous resident memory of the gateway process and its descendants.", "gateway")
	procTreeCountDesc = newDesc("process_tree_processes",
		"Processes in the gateway's process tree, itself included (at most 256 are walked).", "gateway")
	procLimitDesc = newDesc("process_memory_limit_bytes",
		"Memory ceilings of the gateway process: kind cgroup (the lowest memory limit on its cgroups) or v8_heap (--max-old-space-size).",
		"gateway", "kind")
)

type processCollector struct {
	fs      procfs.FS
	procfs  string
	sysfs   string
	targets func() []gateway.Target
	locks   *lockfile.Scanner
	logger  *slog.Logger
	prober  *prober.Prober

	finder process.Finder

	mu sync.Mutex
	// kept is what the collector keeps of each gateway's process, by
	// gateway name.
	kept map[string]*keptProcess
	// bootTime is the system's boot time, kept once read (0 until then):
	// procfs's StartTime reads and parses all of /proc/stat on every call.
	bootTime float64
}

// keepLimitsFor is how long the open-files limit and the cgroup memory
// limit of a process are kept: both change rarely (prlimit, docker update),
// and reading them costs a scrape a dozen files. The V8 heap limit is fixed
// at start (command line, NODE_OPTIONS) and kept for the process' life.
const keepLimitsFor = time.Minute

// keptProcess is what stays true of one process (pid and start ticks)
// across scrapes.
type keptProcess struct {
	pid   int
	start uint64

	heap       uint64
	haveHeap   bool
	limitsAt   time.Time
	maxFDs     uint64
	cgroup     uint64
	haveCgroup bool
}

func newProcessCollector(cfg Config, logger *slog.Logger) (Collector, error) {
	fs, err := newProcFS(cfg.ProcfsPath)
	if err != nil {
		return nil, err
	}
	sysfs := cfg.SysfsPath
	if sysfs == "" {
		sysfs = "/sys"
	}
	procPath := cfg.ProcfsPath
	if procPath == "" {
		procPath = procfs.DefaultMountPoint
	}
	return &processCollector{fs: fs, procfs: procPath, sysfs: sysfs, targets: cfg.targets(), locks: cfg.lockScanner(fs), logger: logger, prober: cfg.prober(),
		kept: map[string]*keptProcess{}}, nil
}

// startTime is the process's start in seconds since the epoch, as
// procfs.ProcStat.StartTime computes it, from the boot time read once.
func (c *processCollector) startTime(stat procfs.ProcStat) (float64, error) {
	c.mu.Lock()
	boot := c.bootTime
	c.mu.Unlock()
	if boot == 0 {
		st, err := c.fs.Stat()
		if err != nil {
			return 0, err
		}
		boot = float64(st.BootTime)
		c.mu.Lock()
		c.bootTime = boot
		c.mu.Unlock()
	}
	return boot + float64(stat.Starttime)/userHZ, nil
}

// userHZ is the kernel's USER_HZ, as procfs assumes it.
const userHZ = 100

// keep returns what is kept of the target's process, refreshed when the
// process is another one than last time or the limits are older than
// keepLimitsFor.
func (c *processCollector) keep(name string, p *process.Process, stat procfs.ProcStat) keptProcess {
	c.mu.Lock()
	k := c.kept[name]
	c.mu.Unlock()
	if k != nil && k.pid == p.PID && k.start == stat.Starttime && time.Since(k.limitsAt) < keepLimitsFor {
		return *k
	}
	next := &keptProcess{pid: p.PID, start: stat.Starttime, limitsAt: time.Now()}
	if k != nil && k.pid == p.PID && k.start == stat.Starttime {
		next.heap, next.haveHeap = k.heap, k.haveHeap
	} else {
		next.heap, next.haveHeap = process.HeapLimit(p.Proc)
	}
	if limits, err := p.Limits(); err == nil && limits.OpenFiles > 0 {
		next.maxFDs = limits.OpenFiles
	}
	next.cgroup, next.haveCgroup = process.CgroupMemoryLimit(p.Proc, c.sysfs)
	c.mu.Lock()
	c.kept[name] = next
	c.mu.Unlock()
	return *next
}

// forget drops what is kept of gateways not in targets.
func (c *processCollector) forget(targets []gateway.Target) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for name := range c.kept {
		if !slices.ContainsFunc(targets, func(t gateway.Target) bool { return t.Name == name }) {
			delete(c.kept, name)
		}
	}
}

func (c *processCollector) Update(ctx context.Context, ch chan<- prometheus.Metric) error {
	targets := scrapeTargets(ctx, c.targets)
	c.forget(targets)
	locks := scrapeLocks(ctx, c.locks, targets)
	var firstErr error
	for _, t := range targets {
		g := func(d *prometheus.Desc, v float64, labels ...string) {
			ch <- newMetric(d, prometheus.GaugeValue, v, append([]string{t.Name}, labels...)...)
		}
		p, err := c.finder.Find(c.fs, c.procfs, t, locks)
		if err != nil && firstErr == nil {
			firstErr = err
		}
		if p == nil {
			g(procUpDesc, 0)
			continue
		}
		stat, err := p.FoundStat()
		if err != nil {
			// It exited between finding and reading.
			c.logger.Debug("gateway process vanished", "gateway", t.Name, "pid", p.PID, "err", err)
			g(procUpDesc, 0)
			continue
		}
		g(procUpDesc, 1)
		g(procInfoDesc, 1, p.Method)
		g(procRSSDesc, float64(stat.ResidentMemory()))
		g(procVirtDesc, float64(stat.VirtualMemory()))
		ch <- newMetric(procCPUDesc, prometheus.CounterValue, stat.CPUTime(), t.Name)
		g(procThreadsDesc, float64(stat.NumThreads))
		// A new process has forgotten the logins it refused.
		c.prober.ObserveRestart(t, "", stat.Starttime)
		if start, err := c.startTime(stat); err == nil {
			g(procStartDesc, start)
		}
		if status, err := p.NewStatus(); err == nil {
			g(procRSSAnonDesc, float64(status.RssAnon))
			g(procRSSFileDesc, float64(status.RssFile))
			if tree, err := process.TreeOfStatus(c.fs, c.procfs, p.Proc, status); err == nil {
				g(procTreeRSSDesc, float64(tree.RSS))
				g(procTreeAnonDesc, float64(tree.RSSAnon))
				g(procTreeCountDesc, float64(tree.Processes))
				if tree.Truncated {
					c.logger.Debug("gateway process tree truncated", "gateway", t.Name, "pid", p.PID, "processes", tree.Processes)
				}
			}
		}
		if n, err := p.FileDescriptorsLen(); err == nil {
			g(procFDsDesc, float64(n))
		}
		k := c.keep(t.Name, p, stat)
		if k.maxFDs > 0 {
			g(procMaxFDsDesc, float64(k.maxFDs))
		}
		if k.haveCgroup {
			g(procLimitDesc, float64(k.cgroup), "cgroup")
		}
		if k.haveHeap {
			g(procLimitDesc, float64(k.heap), "v8_heap")
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return firstErr
}
