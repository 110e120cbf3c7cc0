package remediate

// The watch loop: for the host without Prometheus and Alertmanager, the
// exporter probes a target's gateway on its own schedule and submits its
// failures to the same engine an alert goes to, under the same policy.

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/clawdbot-exporter/clawdbot_exporter/config"
	"github.com/clawdbot-exporter/clawdbot_exporter/gateway/prober"
)

// WatchProbes is what the watch loop needs: the newest probe of a gateway,
// whoever made it, and a probe of its own through the shared prober.
type WatchProbes interface {
	LastProbe(gateway string) (prober.Record, bool)
	ProbeRecord(ctx context.Context, gateway, source string) prober.Record
}

// restartReasons are the probe failures that say the gateway does not
// work and a restart may help. Never auth, hello_timeout (credentials or
// the gateway's login throttling), protocol, tls, upgrade (a configuration
// a restart does not change). starting counts once it lasts too long.
var restartReasons = map[prober.Reason]bool{
	prober.ReasonDial: true, prober.ReasonTimeout: true, prober.ReasonClosed: true,
	prober.ReasonRPC: true, prober.ReasonBadFrame: true, prober.ReasonUnhealthy: true,
}

// RestartReason says whether a failure with this reason, with the gateway
// answering "starting" for startingFor so far, counts towards a restart.
func RestartReason(r prober.Reason, startingFor time.Duration) bool {
	if r == prober.ReasonStarting {
		return startingFor > config.WatchStartingFor
	}
	return restartReasons[r]
}

type watcher struct {
	conf   Watch
	cancel context.CancelFunc
	done   chan struct{}
	// failures is the streak's length, for the status page.
	failures atomic.Int64
}

// StartWatching runs the watch loop of every target with a watch section,
// now and after each Reload, until ctx ends.
func (e *Engine) StartWatching(ctx context.Context, probes WatchProbes) {
	e.mu.Lock()
	e.watchCtx, e.probes = ctx, probes
	e.mu.Unlock()
	e.syncWatchers()
	go func() {
		<-ctx.Done()
		e.syncWatchers()
	}()
}

// syncWatchers starts the loops of new watch targets and stops those of
// targets gone or changed.
func (e *Engine) syncWatchers() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.watchCtx == nil {
		return
	}
	if e.watchers == nil {
		e.watchers = map[string]*watcher{}
	}
	live := e.watchCtx.Err() == nil
	for name, w := range e.watchers {
		c := e.targets[name]
		if !live || c == nil || c.cfg.Watch == nil || *c.cfg.Watch != w.conf {
			w.cancel()
			delete(e.watchers, name)
		}
	}
	if !live {
		return
	}
	for _, name := range e.order {
		c := e.targets[name]
		if c.cfg.Watch == nil || e.watchers[name] != nil {
			continue
		}
		ctx, cancel := context.WithCancel(e.watchCtx)
		w := &watcher{conf: *c.cfg.Watch, cancel: cancel, done: make(chan struct{})}
		e.watchers[name] = w
		w.setFailures(e.metrics, name, 0)
		go e.watch(ctx, name, w)
	}
}

// watch is one target's loop.
func (e *Engine) watch(ctx context.Context, name string, w *watcher) {
	defer close(w.done)
	interval := w.conf.Interval.D()
	s := &streak{}
	// A fixed pace, whatever a probe takes (a frozen gateway's last a
	// whole timeout): the newest result is never older than two intervals.
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		func() {
			defer func() {
				if p := recover(); p != nil {
					e.logger.Error("watch loop panicked; it goes on", "target", name, "panic", p)
				}
			}()
			e.check(ctx, name, w, s)
		}()
	}
}

// streak is what one loop remembers between checks.
type streak struct {
	// up and seen: the last state logged.
	up, seen bool
	// counted is the probe the last check counted.
	counted       prober.Record
	n             int
	reasons       []string
	startingSince time.Time
}

// check is one turn of the loop: get a result (a fresh enough one, or a
// probe), count it, and ask the engine for an action after conf.After
// failures in a row.
func (e *Engine) check(ctx context.Context, name string, w *watcher, s *streak) {
	conf := w.conf
	c := e.state(name)
	if c == nil {
		return
	}
	if e.busy(name) {
		// An action runs and verifies: its probes are its own business.
		s.reset()
		w.setFailures(e.metrics, name, 0)
		return
	}
	interval := conf.Interval.D()
	// Another probe's result serves when it is fresh, and not the one
	// the last check counted: one probe never counts twice (a check run
	// late, right after the one before, would see that one's result).
	rec, ok := e.probes.LastProbe(c.cfg.Gateway)
	counted := rec.Time.Equal(s.counted.Time) && rec.Source == s.counted.Source
	if ok && time.Since(rec.End()) < interval/2 && rec.Source != prober.SourceView && !counted {
		e.metrics.watchChecks.WithLabelValues(name, "reused").Inc()
	} else {
		pctx, cancel := context.WithTimeout(ctx, min(e.opts.ProbeTimeout, interval))
		rec = e.probes.ProbeRecord(pctx, c.cfg.Gateway, prober.SourceWatch)
		cancel()
		if ctx.Err() != nil {
			return
		}
		e.metrics.watchChecks.WithLabelValues(name, "probed").Inc()
	}
	s.counted = rec
	now := time.Now()
	reason := prober.Reason(rec.Reason)
	if rec.Up != s.up || !s.seen {
		if rec.Up {
			e.logger.Info("watch: gateway up", "target", name, "gateway", c.cfg.Gateway, "source", rec.Source)
		} else {
			e.logger.Warn("watch: gateway down", "target", name, "gateway", c.cfg.Gateway, "reason", rec.Reason,
				"phase", rec.Phase, "counts_for_restart", RestartReason(reason, 0), "source", rec.Source)
		}
		s.up, s.seen = rec.Up, true
	}
	switch {
	case rec.Up:
		s.reset()
	case reason == prober.ReasonStarting:
		if s.startingSince.IsZero() {
			s.startingSince = rec.Time
		}
		if RestartReason(reason, now.Sub(s.startingSince)) {
			s.add(string(reason))
		} else {
			s.n, s.reasons = 0, nil
		}
	case RestartReason(reason, 0):
		s.startingSince = time.Time{}
		s.add(string(reason))
	default:
		// A failure a restart would not mend (auth, hello_timeout, tls,
		// upgrade, protocol): it breaks the streak.
		s.reset()
	}
	w.setFailures(e.metrics, name, s.n)
	if s.n < conf.After {
		return
	}
	a := Alert{
		Status:      "firing",
		Fingerprint: WatchFingerprint,
		StartsAt:    now,
		Labels:      map[string]string{"alertname": "watch", "gateway": c.cfg.Gateway, "reason": string(reason)},
		Annotations: map[string]string{"summary": fmt.Sprintf("%d probes in a row failed: %v", s.n, s.reasons)},
	}
	s.reset()
	w.setFailures(e.metrics, name, 0)
	e.Trigger(name, a)
}

func (s *streak) add(reason string) {
	s.n++
	s.reasons = append(s.reasons, reason)
	if len(s.reasons) > 10 {
		s.reasons = s.reasons[len(s.reasons)-10:]
	}
}

func (s *streak) reset() { s.n, s.reasons, s.startingSince = 0, nil, time.Time{} }

func (e *Engine) busy(name string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := e.states[name]
	return st != nil && st.busy
}

func (w *watcher) setFailures(m *Metrics, name string, n int) {
	w.failures.Store(int64(n))
	m.watchFailures.WithLabelValues(name).Set(float64(n))
}
