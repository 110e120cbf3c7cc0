package collector

import (
	"context"
	"sync"

	"github.com/prometheus/procfs"

	"github.com/clawdbot-exporter/clawdbot_exporter/gateway"
	"github.com/clawdbot-exporter/clawdbot_exporter/gateway/lockfile"
)

// scrapeState is what the collectors of one scrape share: the same
// targets (a reload between two collectors must not split a scrape), and
// local state read once (the lock scan serves the lock and the process
// collectors alike).
type scrapeState struct {
	targets []gateway.Target

	locksOnce sync.Once
	locks     lockfile.Result
}

type scrapeKey struct{}

func withScrape(ctx context.Context, targets []gateway.Target) context.Context {
	return context.WithValue(ctx, scrapeKey{}, &scrapeState{targets: targets})
}

// scrapeTargets are the scrape's targets; a collector called outside a
// scrape (a test) uses its own.
func scrapeTargets(ctx context.Context, own func() []gateway.Target) []gateway.Target {
	if st, ok := ctx.Value(scrapeKey{}).(*scrapeState); ok {
		return st.targets
	}
	return own()
}

// scrapeLocks are the locks of scrapeLockScan.
func scrapeLocks(ctx context.Context, fs procfs.FS, targets []gateway.Target, extra []string) []lockfile.Lock {
	return scrapeLockScan(ctx, fs, targets, extra).Locks
}

// scrapeLockScan scans the lock directories of the scrape's targets once
// per scrape, bounded by the scrape's context: a scan cut by the deadline
// stops there (Err set) instead of running on after the scrape returned.
func scrapeLockScan(ctx context.Context, fs procfs.FS, targets []gateway.Target, extra []string) lockfile.Result {
	scan := func() lockfile.Result {
		return lockfile.ScanContext(ctx, fs, lockfile.AllDirs(targets, extra), targets, lockfile.Options{ProcRoot: procRootOf(fs)})
	}
	st, ok := ctx.Value(scrapeKey{}).(*scrapeState)
	if !ok {
		return scan()
	}
	st.locksOnce.Do(func() { st.locks = scan() })
	return st.locks
}

// procRoots maps each procfs.FS made by newProcFS to its mount point,
// which procfs.FS does not expose and the lock scan needs for /proc/locks.
var procRoots sync.Map

func procRootOf(fs procfs.FS) string {
	if p, ok := procRoots.Load(fs); ok {
		return p.(string)
	}
	return procfs.DefaultMountPoint
}
