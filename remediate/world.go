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
	// History, when set, records every probe the remediation makes, so
	// the status page and the watch loop see the newest.
	History *prober.History
	finder  process.Finder
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
	return w.scan(context.Background(), t).Locks
}

// lockScanTimeout bounds one lock scan of the remediation: a flooded lock
// directory must not hold an action.
const lockScanTimeout = 10 * time.Second

func (w *LocalWorld) scan(ctx context.Context, t gateway.Target) lockfile.Result {
	ctx, cancel := context.WithTimeout(ctx, lockScanTimeout)
	defer cancel()
	ts := []gateway.Target{t}
	return lockfile.ScanContext(ctx, w.FS, lockfile.AllDirs(ts, w.LockDirs), ts, lockfile.Options{ProcRoot: w.ProcRoot})
}

// ProcessAge implements World: the time since the gateway's last restart
// of any kind, the younger of its process' age and the time since the
// prober last saw it restart (openclaw restarts inside its process: same
// pid and start time, a new bootId), so that the warm-up grace follows an
// in-process restart too.
func (w *LocalWorld) ProcessAge(name string) (time.Duration, bool) {
	t, err := w.target(name)
	if err != nil {
		return 0, false
	}
	age, ok := w.processAge(t)
	if w.Prober != nil {
		if _, last := w.Prober.Restarts(t); !last.IsZero() {
			if since := time.Since(last); !ok || since < age {
				age, ok = max(since, 0), true
			}
		}
	}
	return age, ok
}

func (w *LocalWorld) processAge(t gateway.Target) (time.Duration, bool) {
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

// RemoveStaleLocks implements World with the logic of `locks
// --remove-stale`: the gateway's dead-owner locks and stuck reclaim guards
// go, each judged again just before; what a live process holds stays. What
// still blocks the start afterwards is an error.
func (w *LocalWorld) RemoveStaleLocks(name string) ([]string, error) {
	t, err := w.target(name)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), lockScanTimeout)
	defer cancel()
	opts := lockfile.Options{ProcRoot: w.ProcRoot}
	var removed []string
	var errs []error
	for _, a := range lockfile.Clear(ctx, w.FS, w.scan(ctx, t), name, opts) {
		if a.Err != nil {
			errs = append(errs, a.Err)
			continue
		}
		removed = append(removed, a.Path)
	}
	for _, b := range w.scan(ctx, t).Blocking() {
		if b.Gateway == name {
			errs = append(errs, fmt.Errorf("%s still blocks the start (%s): %s", b.Path, b.Why, b.Detail))
		}
	}
	return removed, errors.Join(errs...)
}

// StartBlockers implements World: what the lock scan says blocks the
// gateway's next start.
func (w *LocalWorld) StartBlockers(name string) []lockfile.Blocker {
	t, err := w.target(name)
	if err != nil {
		return nil
	}
	var out []lockfile.Blocker
	for _, b := range w.scan(context.Background(), t).Blocking() {
		if b.Gateway == name {
			out = append(out, b)
		}
	}
	return out
}

// Probe implements World: a verification probe.
func (w *LocalWorld) Probe(ctx context.Context, name string) error {
	rec := w.ProbeRecord(ctx, name, prober.SourceVerify)
	if rec.Up {
		return nil
	}
	return rec.Err
}

// LastProbe implements WatchProbes.
func (w *LocalWorld) LastProbe(name string) (prober.Record, bool) { return w.History.Last(name) }

// ProbeRecord implements WatchProbes: one probe through the shared prober
// (and so its per-gateway auth gate), recorded in the history.
func (w *LocalWorld) ProbeRecord(ctx context.Context, name, source string) prober.Record {
	begin := time.Now()
	t, err := w.target(name)
	if err != nil {
		return prober.Record{Time: begin, Gateway: name, Source: source, Error: err.Error(), Err: err}
	}
	res, err := w.Prober.Probe(ctx, t)
	rec := prober.Summarize(name, source, begin, res, err)
	w.History.Add(rec)
	rec.Err = err
	return rec
}

// owner is the live owner of the gateway's lock: its pid and start tick.
func (w *LocalWorld) owner(name string) (pid int, start uint64, err error) {
	t, err := w.target(name)
	if err != nil {
		return 0, 0, err
	}
	for _, l := range w.locks(t) {
		if l.Gateway == name && l.HeldByGateway() && l.StartTime != nil {
			return l.PID, *l.StartTime, nil
		}
	}
	return 0, 0, fmt.Errorf("gateway %q has no lock with a live owner and a start time", name)
}
