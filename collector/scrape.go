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
	locks     []lockfile.Lock
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

// scrapeLocks scans the lock directories of the scrape's targets once per
// scrape.
func scrapeLocks(ctx context.Context, fs procfs.FS, targets []gateway.Target, extra []string) []lockfile.Lock {
	scan := func() []lockfile.Lock { return lockfile.Scan(fs, lockfile.AllDirs(targets, extra), targets) }
	st, ok := ctx.Value(scrapeKey{}).(*scrapeState)
	if !ok {
		return scan()
	}
	st.locksOnce.Do(func() { st.locks = scan() })
	return st.locks
}
