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
)

type lockCollector struct {
	fs      procfs.FS
	targets func() []gateway.Target
	extra   []string
	logger  *slog.Logger
}

func newLockCollector(cfg Config, logger *slog.Logger) (Collector, error) {
	fs, err := newProcFS(cfg.ProcfsPath)
	if err != nil {
		return nil, err
	}
	return &lockCollector{fs: fs, targets: cfg.targets(), extra: cfg.LockDirs, logger: logger}, nil
}

func newProcFS(path string) (procfs.FS, error) {
	if path == "" {
		path = procfs.DefaultMountPoint
	}
	fs, err := procfs.NewFS(path)
	if err != nil {
		return fs, fmt.Errorf("procfs at %s: %w", path, err)
	}
	return fs, nil
}

func (c *lockCollector) Update(ctx context.Context, ch chan<- prometheus.Metric) error {
	targets := scrapeTargets(ctx, c.targets)
	locks := scrapeLocks(ctx, c.fs, targets, c.extra)
	now := time.Now()
	found := map[string]bool{}
	labels := map[string]bool{} // path labels sent: distinct paths can sanitise alike
	for _, l := range locks {
		path := labelValue(l.Path)
		if labels[path] {
			c.logger.Debug("lock path reported already under the same label", "path", l.Path, "label", path)
			continue
		}
		labels[path] = true
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
		if l.State == lockfile.OwnerUnknown {
			c.logger.Debug("lock owner unknown", "path", l.Path, "why", l.Why)
		}
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
