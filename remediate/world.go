package remediate

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/procfs"

	"github.com/clawdbot-exporter/clawdbot_exporter/gateway"
	"github.com/clawdbot-exporter/clawdbot_exporter/gateway/lockfile"
	"github.com/clawdbot-exporter/clawdbot_exporter/gateway/prober"
	"github.com/clawdbot-exporter/clawdbot_exporter/gateway/process"
)

// LocalWorld is the World of gateways on this host (or in a shared PID
// namespace): their processes and locks through procfs, their health
// through the probe.
type LocalWorld struct {
	// Gateways are the current targets (a reload changes them).
	Gateways func() []gateway.Target
	FS       procfs.FS
	ProcRoot string
	LockDirs []string
	Prober   *prober.Prober
	finder   process.Finder
}

func (w *LocalWorld) target(name string) (gateway.Target, error) {
	for _, t := range w.Gateways() {
		if t.Name == name {
			return t, nil
		}
	}
	return gateway.Target{}, fmt.Errorf("unknown gateway %q", name)
}

func (w *LocalWorld) locks(t gateway.Target) []lockfile.Lock {
	return lockfile.Scan(w.FS, lockfile.AllDirs([]gateway.Target{t}, w.LockDirs), []gateway.Target{t})
}

// ProcessAge implements World.
func (w *LocalWorld) ProcessAge(name string) (time.Duration, bool) {
	t, err := w.target(name)
	if err != nil {
		return 0, false
	}
	p, err := w.finder.Find(w.FS, w.ProcRoot, t, w.locks(t))
	if err != nil || p == nil {
		return 0, false
	}
	st, err := p.Stat()
	if err != nil {
		return 0, false
	}
	start, err := st.StartTime()
	if err != nil {
		return 0, false
	}
	return time.Since(time.Unix(0, int64(start*1e9))), true
}

// RemoveStaleLocks implements World, with the locks command's safe removal.
func (w *LocalWorld) RemoveStaleLocks(name string) ([]string, error) {
	t, err := w.target(name)
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, l := range w.locks(t) {
		if l.Gateway != name || !l.State.Stale() {
			continue
		}
		if _, err := lockfile.RemoveStale(w.FS, l.Path); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, l.Path)
	}
	return removed, errors.Join(errs...)
}

// Probe implements World.
func (w *LocalWorld) Probe(ctx context.Context, name string) error {
	t, err := w.target(name)
	if err != nil {
		return err
	}
	_, err = w.Prober.Probe(ctx, t)
	return err
}

// owner is the live owner of the gateway's lock: its pid and start tick.
func (w *LocalWorld) owner(name string) (pid int, start uint64, err error) {
	t, err := w.target(name)
	if err != nil {
		return 0, 0, err
	}
	for _, l := range w.locks(t) {
		if l.Gateway == name && l.State == lockfile.OwnerAlive && l.StartTime != nil {
			return l.PID, *l.StartTime, nil
		}
	}
	return 0, 0, fmt.Errorf("gateway %q has no lock with a live owner and a start time", name)
}
