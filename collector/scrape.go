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
func scrapeLocks(ctx context.Context, sc *lockfile.Scanner, targets []gateway.Target) []lockfile.Lock {
	return scrapeLockScan(ctx, sc, targets).Locks
}

// scrapeLockScan scans the lock directories of the scrape's targets once
// per scrape, bounded by the scrape's context: a scan cut by the deadline
// stops there (Err set) instead of running on after the scrape returned.
// The scanner reads the lock files again only when something changed;
// it judges their owners on every scan.
func scrapeLockScan(ctx context.Context, sc *lockfile.Scanner, targets []gateway.Target) lockfile.Result {
	st, ok := ctx.Value(scrapeKey{}).(*scrapeState)
	if !ok {
		return sc.Scan(ctx, targets)
	}
	st.locksOnce.Do(func() { st.locks = sc.Scan(ctx, targets) })
	return st.locks
}

// sharedScanner makes the one lockfile.Scanner of the collectors built
// together (New), so that what it keeps serves them all.
type sharedScanner struct {
	once sync.Once
	sc   *lockfile.Scanner
}

// lockScanner returns the scanner the collectors of cfg share, made on
// first use with fs and cfg's lock dirs; one of its own for a collector
// built alone (tests).
func (cfg *Config) lockScanner(fs procfs.FS) *lockfile.Scanner {
	ls := cfg.locks
	if ls == nil {
		ls = &sharedScanner{}
	}
	ls.once.Do(func() {
		ls.sc = &lockfile.Scanner{FS: fs, Extra: cfg.LockDirs, Options: lockfile.Options{ProcRoot: procRootOf(fs)}}
	})
	return ls.sc
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
