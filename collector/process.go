package collector

import (
	"context"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs"

	"github.com/clawdbot-exporter/clawdbot_exporter/gateway"
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
	extra   []string
	logger  *slog.Logger
	prober  *prober.Prober

	finder process.Finder
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
	return &processCollector{fs: fs, procfs: procPath, sysfs: sysfs, targets: cfg.targets(), extra: cfg.LockDirs, logger: logger, prober: cfg.prober()}, nil
}

func (c *processCollector) Update(ctx context.Context, ch chan<- prometheus.Metric) error {
	targets := scrapeTargets(ctx, c.targets)
	locks := scrapeLocks(ctx, c.fs, targets, c.extra)
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
		stat, err := p.Stat()
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
		if start, err := stat.StartTime(); err == nil {
			g(procStartDesc, start)
		}
		if status, err := p.NewStatus(); err == nil {
			g(procRSSAnonDesc, float64(status.RssAnon))
			g(procRSSFileDesc, float64(status.RssFile))
		}
		if tree, err := process.TreeOf(c.fs, c.procfs, p.Proc); err == nil {
			g(procTreeRSSDesc, float64(tree.RSS))
			g(procTreeAnonDesc, float64(tree.RSSAnon))
			g(procTreeCountDesc, float64(tree.Processes))
			if tree.Truncated {
				c.logger.Debug("gateway process tree truncated", "gateway", t.Name, "pid", p.PID, "processes", tree.Processes)
			}
		}
		if n, err := p.FileDescriptorsLen(); err == nil {
			g(procFDsDesc, float64(n))
		}
		if limits, err := p.Limits(); err == nil && limits.OpenFiles > 0 {
			g(procMaxFDsDesc, float64(limits.OpenFiles))
		}
		if v, ok := process.CgroupMemoryLimit(p.Proc, c.sysfs); ok {
			g(procLimitDesc, float64(v), "cgroup")
		}
		if v, ok := process.HeapLimit(p.Proc); ok {
			g(procLimitDesc, float64(v), "v8_heap")
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return firstErr
}
