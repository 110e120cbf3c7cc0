package collector

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs"

	"github.com/clawdbot-exporter/clawdbot_exporter/gateway"
	"github.com/clawdbot-exporter/clawdbot_exporter/gateway/lockfile"
)

func init() {
	registerCollector("lock", true, newLockCollector)
}

var (
	lockLabels      = []string{"gateway", "path"}
	lockPresentDesc = newDesc("lock_present",
		"1 when the lock file exists; 0 for a configured gateway's expected lock that does not.", lockLabels...)
	lockAgeDesc = newDesc("lock_age_seconds",
		"Age of the lock, from its createdAt, else its mtime.", lockLabels...)
	lockPIDDesc = newDesc("lock_owner_pid",
		"The pid the lock names, in the gateway's PID namespace.", lockLabels...)
	lockStateDesc = newDesc("lock_owner_state",
		"1 for the lock owner's state: alive, dead, reused (pid alive, start time differs) or unknown (unreadable, unparseable).",
		"gateway", "path", "state")
	lockStaleDesc = newDesc("lock_stale",
		"1 when the lock's owner is dead or its pid was reused.", lockLabels...)
	lockVolatileDesc = newDesc("lock_volatile",
		"1 when the lock is on tmpfs or ramfs, cleared by a reboot or container restart.", lockLabels...)
	lockNetworkDesc = newDesc("lock_network_filesystem",
		"1 when the lock is on a network filesystem (NFS, SMB, Ceph, …).", lockLabels...)
	lockFSDesc = newDesc("lock_filesystem_info",
		"The type of the filesystem holding the lock.", "gateway", "path", "fstype")
	lockInfoDesc = newDesc("lock_info",
		"The lock's kind (config: gateway.<h>.lock; state: openclaw's gateway.state.lock), product (clawdbot, openclaw, unknown) and holder role (gateway; agent-embedded, skill-workshop-apply, sqlite-maintenance: a live openclaw process that is not the gateway; other; unknown when unreadable).",
		"gateway", "path", "kind", "product", "role")
	lockOwnerIDDesc = newDesc("lock_owner_id_present",
		"1 when the lock carries an ownerId (openclaw writes a new one per acquire; the id itself is never exported).", lockLabels...)
	lockPortDesc = newDesc("lock_port",
		"The port the lock's holder wrote (openclaw), when present.", lockLabels...)
	lockGuardAgeDesc = newDesc("lock_reclaim_guard_age_seconds",
		"Age of a *.lock.reclaim guard (openclaw creates one only while it reclaims a stale lock).", lockLabels...)
	lockGuardReclaimingDesc = newDesc("lock_reclaim_guard_reclaiming",
		"1 when a live process is reclaiming behind the guard (its pid runs, or a process holds the lock's .sqlite coordinator); 0 for a guard nobody uses.", lockLabels...)
	lockCoordHeldDesc = newDesc("lock_coordinator_held",
		"1 when a process holds openclaw's gateway-lifecycle coordinator (a POSIX lock seen in /proc/locks).", lockLabels...)
	lockCoordPIDDesc = newDesc("lock_coordinator_holder_pid",
		"The pid holding openclaw's gateway-lifecycle coordinator, in the PID namespace of --path.procfs.", lockLabels...)
	lockCoordWaitersDesc = newDesc("lock_coordinator_waiters",
		"Processes blocked waiting for openclaw's gateway-lifecycle coordinator (a second gateway waits up to 300 s).", lockLabels...)
	lockBlockingDesc = newDesc("lock_blocking_start",
		"1 for each state that blocks the gateway's next start, by why: reclaim_guard_stuck (a *.lock.reclaim left behind), held_by_non_gateway (a live holder with another role), coordinator_held_by_non_gateway. Absent when nothing blocks.",
		"gateway", "path", "why")
)

// lockCollectorName is this collector's name in
// clawdbot_exporter_items_dropped_total.
const lockCollectorName = "lock"

type lockCollector struct {
	scanner *lockfile.Scanner
	targets func() []gateway.Target
	logger  *slog.Logger
	// dropped counts what the scan's per-directory caps cut.
	dropped *dropCounter
}

func newLockCollector(cfg Config, logger *slog.Logger) (Collector, error) {
	fs, err := newProcFS(cfg.ProcfsPath)
	if err != nil {
		return nil, err
	}
	return &lockCollector{scanner: cfg.lockScanner(fs), targets: cfg.targets(), logger: logger,
		dropped: newDropCounter(lockCollectorName, lockfile.DroppedLockFiles, lockfile.DroppedDirEntries)}, nil
}

func newProcFS(path string) (procfs.FS, error) {
	if path == "" {
		path = procfs.DefaultMountPoint
	}
	fs, err := procfs.NewFS(path)
	if err != nil {
		return fs, fmt.Errorf("procfs at %s: %w", path, err)
	}
	procRoots.Store(fs, path)
	return fs, nil
}

func (c *lockCollector) Update(ctx context.Context, ch chan<- prometheus.Metric) error {
	targets := scrapeTargets(ctx, c.targets)
	res := scrapeLockScan(ctx, c.scanner, targets)
	for kind, n := range res.Dropped {
		c.dropped.add(kind, n)
		c.logger.Debug("lock scan cut", "kind", kind, "dropped", n)
	}
	defer c.dropped.collect(ch)
	now := time.Now()
	found := map[string]bool{}
	labels := map[string]bool{} // path labels sent: distinct paths can sanitise alike
	label := func(p string) (string, bool) {
		l := labelValue(p)
		if labels[l] {
			c.logger.Debug("lock path reported already under the same label", "path", p, "label", l)
			return "", false
		}
		labels[l] = true
		return l, true
	}
	for _, l := range res.Locks {
		path, ok := label(l.Path)
		if !ok {
			continue
		}
		found[l.Gateway] = true
		g := func(d *prometheus.Desc, v float64, extra ...string) {
			ch <- newMetric(d, prometheus.GaugeValue, v, append([]string{l.Gateway, path}, extra...)...)
		}
		g(lockPresentDesc, 1)
		if !l.CreatedAt.IsZero() {
			g(lockAgeDesc, l.Age(now).Seconds())
		}
		if l.PID > 0 {
			g(lockPIDDesc, float64(l.PID))
		}
		for _, s := range lockfile.OwnerStates() {
			g(lockStateDesc, boolValue(l.State == s), string(s))
		}
		g(lockStaleDesc, boolValue(l.State.Stale()))
		g(lockVolatileDesc, boolValue(l.FS.Volatile))
		g(lockNetworkDesc, boolValue(l.FS.Network))
		g(lockFSDesc, 1, l.FS.Type)
		g(lockInfoDesc, 1, l.Kind, orUnknown(l.Product), orUnknown(l.Role))
		g(lockOwnerIDDesc, boolValue(l.HasOwnerID))
		if l.Port > 0 {
			g(lockPortDesc, float64(l.Port))
		}
		if l.State == lockfile.OwnerUnknown {
			c.logger.Debug("lock owner unknown", "path", l.Path, "why", l.Why)
		}
	}
	for _, gd := range res.Guards {
		path, ok := label(gd.Path)
		if !ok {
			continue
		}
		ch <- newMetric(lockGuardAgeDesc, prometheus.GaugeValue, gd.Age(now).Seconds(), gd.Gateway, path)
		ch <- newMetric(lockGuardReclaimingDesc, prometheus.GaugeValue, boolValue(gd.Reclaiming), gd.Gateway, path)
	}
	for _, co := range res.Coordinators {
		path, ok := label(co.Path)
		if !ok {
			continue
		}
		ch <- newMetric(lockCoordHeldDesc, prometheus.GaugeValue, boolValue(co.HolderPID > 0), co.Gateway, path)
		if co.HolderPID > 0 {
			ch <- newMetric(lockCoordPIDDesc, prometheus.GaugeValue, float64(co.HolderPID), co.Gateway, path)
		}
		ch <- newMetric(lockCoordWaitersDesc, prometheus.GaugeValue, float64(co.Waiters), co.Gateway, path)
	}
	for _, b := range res.Blocking() {
		// Its path was reported above under the same label.
		ch <- newMetric(lockBlockingDesc, prometheus.GaugeValue, 1, b.Gateway, labelValue(b.Path), b.Why)
		c.logger.Debug("lock state blocks the next start", "gateway", b.Gateway, "path", b.Path, "why", b.Why, "detail", b.Detail)
	}
	if res.Err != nil {
		// A scan cut short proves no lock absent.
		return fmt.Errorf("lock scan cut short: %w", res.Err)
	}
	// A configured gateway without a lock is not running (or runs with
	// CLAWDBOT_ALLOW_MULTI_GATEWAY=1): say so at the path it would use.
	for _, t := range targets {
		if t.ConfigPath != "" && !found[t.Name] {
			ch <- newMetric(lockPresentDesc, prometheus.GaugeValue, 0, t.Name, expectedLockPath(t))
		}
	}
	return ctx.Err()
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// expectedLockPath is where the target's gateway would put its lock,
// guessing the product from the config file's name and state directory.
func expectedLockPath(t gateway.Target) string {
	uid := os.Getuid()
	if st, err := os.Stat(t.ConfigPath); err == nil {
		if sys, ok := st.Sys().(*syscall.Stat_t); ok {
			uid = int(sys.Uid)
		}
	}
	if filepath.Base(t.ConfigPath) == "openclaw.json" || strings.Contains(t.StateDir, "openclaw") {
		return filepath.Join(t.StateDir, "tmp", fmt.Sprintf("openclaw-%d", uid), lockfile.Name("openclaw", t.ConfigPath))
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("clawdbot-%d", uid), lockfile.Name("clawdbot", t.ConfigPath))
}
