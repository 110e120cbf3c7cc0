package remediate

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"strconv"
	"sync"
	"time"
)

// Clock is the engine's time; tests use a fake one.
type Clock interface{ Now() time.Time }

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

// World is what the engine needs to know of, and do to, gateways.
type World interface {
	// ProcessAge is how long the gateway's process has run; ok is false
	// when no process is found.
	ProcessAge(gateway string) (age time.Duration, ok bool)
	// RemoveStaleLocks removes the gateway's locks whose owner is dead or
	// reused, and returns their paths.
	RemoveStaleLocks(gateway string) ([]string, error)
	// Probe reports whether the gateway is up, within ctx.
	Probe(ctx context.Context, gateway string) error
}

// Action restarts a gateway. Run returns once the restart was requested
// (or failed); verification is the engine's job.
type Action interface {
	Run(ctx context.Context, a Alert) error
}

// ActionFactory builds a target's action.
type ActionFactory func(t Target, w World) (Action, error)

var actionFactories = map[string]ActionFactory{}

func registerAction(kind string, f ActionFactory) { actionFactories[kind] = f }

// Options tune an engine.
type Options struct {
	DryRun bool
	Clock  Clock
	// VerifyInterval is the pause between verification probes (default 1 s).
	VerifyInterval time.Duration
	// ProbeTimeout bounds each verification probe (default 5 s).
	ProbeTimeout time.Duration
}

// Engine decides, per alert and target, whether to act, and acts.
type Engine struct {
	world   World
	metrics *Metrics
	logger  *slog.Logger
	opts    Options

	mu      sync.Mutex
	targets map[string]*targetState
	order   []string
	// seen holds (target, fingerprint, startsAt) keys that led to an
	// action, so retries and the other Alertmanager of an HA pair do not.
	seen     map[string]time.Time
	inFlight sync.WaitGroup
	// recent is the audit trail for the status page, newest last.
	recent []Decision
}

// Decision is one line of the audit trail.
type Decision struct {
	Time        time.Time
	AlertName   string
	Fingerprint string
	Status      string
	Target      string
	Action      string
	Decision    string // act, skip, done
	Reason      string // why skipped
	Result      string // for done: recovered, not_recovered, error
	Detail      string
}

const recentMax = 100

func (e *Engine) remember(d Decision) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.recent = append(e.recent, d)
	if len(e.recent) > recentMax {
		e.recent = e.recent[len(e.recent)-recentMax:]
	}
}

// Recent returns the audit trail, newest first.
func (e *Engine) Recent() []Decision {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]Decision, len(e.recent))
	for i, d := range e.recent {
		out[len(e.recent)-1-i] = d
	}
	return out
}

type targetState struct {
	cfg     Target
	action  Action
	busy    bool
	history []time.Time // starts of recent actions, for the breaker
	last    time.Time
	breaker bool
}

// seenTTL bounds how long a delivered alert is remembered: far longer than
// Alertmanager retries or repeats an alert with the same startsAt.
const (
	seenTTL = 7 * 24 * time.Hour
	seenMax = 100000
)

// NewEngine builds an engine for targets.
func NewEngine(targets []Target, w World, m *Metrics, logger *slog.Logger, opts Options) (*Engine, error) {
	if opts.Clock == nil {
		opts.Clock = realClock{}
	}
	if opts.VerifyInterval == 0 {
		opts.VerifyInterval = time.Second
	}
	if opts.ProbeTimeout == 0 {
		opts.ProbeTimeout = 5 * time.Second
	}
	e := &Engine{world: w, metrics: m, logger: logger, opts: opts, targets: map[string]*targetState{}, seen: map[string]time.Time{}}
	if err := e.Reload(targets); err != nil {
		return nil, err
	}
	return e, nil
}

// Reload replaces the targets. Actions in flight finish. State of targets
// that stay (history, cooldown, dedupe) is kept, except that an open
// breaker closes with a fresh budget: a reload is how a person says "go on".
func (e *Engine) Reload(targets []Target) error {
	states := map[string]*targetState{}
	var order []string
	for _, t := range targets {
		f, ok := actionFactories[t.Action.Type]
		if !ok {
			return fmt.Errorf("remediation target %q: action type %q is not available", t.Name, t.Action.Type)
		}
		a, err := f(t, e.world)
		if err != nil {
			return fmt.Errorf("remediation target %q: %w", t.Name, err)
		}
		states[t.Name] = &targetState{cfg: t, action: a}
		order = append(order, t.Name)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for name, st := range states {
		if old, ok := e.targets[name]; ok {
			st.history, st.last, st.busy = old.history, old.last, old.busy
			if old.breaker {
				st.history = nil
				e.logger.Info("remediation breaker reset by reload", "target", name)
			}
		}
		e.metrics.initTarget(st.cfg)
		e.metrics.breakerOpen.WithLabelValues(name).Set(0)
	}
	e.targets, e.order = states, order
	return nil
}

// Wait blocks until every action in flight has finished and been verified.
func (e *Engine) Wait() { e.inFlight.Wait() }

// Handle decides on every alert of a message at once and starts the actions
// it decides on in the background. It returns how many actions it started.
func (e *Engine) Handle(m *Message) int {
	started := 0
	for _, a := range m.Alerts {
		matched := false
		for _, name := range e.targetNames() {
			st := e.state(name)
			if st == nil || !matches(st.cfg, a) {
				continue
			}
			matched = true
			if e.decide(st, a) {
				started++
			}
		}
		if !matched {
			e.metrics.skipped.WithLabelValues("", SkipUnmatched).Inc()
			e.audit(a, nil, "skip", SkipUnmatched)
		}
	}
	return started
}

func (e *Engine) targetNames() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.order...)
}

func (e *Engine) state(name string) *targetState {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.targets[name]
}

// matches: the alert carries the target's gateway label and every matcher.
func matches(t Target, a Alert) bool {
	if a.Labels["gateway"] != t.Gateway {
		return false
	}
	for k, v := range t.Matchers {
		if a.Labels[k] != v {
			return false
		}
	}
	return true
}

// decide applies the safety policy, in order, and starts the action when
// every rule lets it through.
func (e *Engine) decide(st *targetState, a Alert) bool {
	t := st.cfg
	if a.Status == "resolved" {
		return e.skip(st, a, SkipResolved)
	}
	now := e.opts.Clock.Now()
	key := t.Name + "|" + a.Fingerprint + "|" + strconv.FormatInt(a.StartsAt.UnixNano(), 10)

	e.mu.Lock()
	e.pruneSeen(now)
	reason := ""
	switch {
	case !e.seen[key].IsZero():
		reason = SkipDuplicate
	case st.busy:
		reason = SkipBusy
	case st.breaker:
		reason = SkipBreaker
	default:
		st.history = recent(st.history, now.Add(-t.Breaker.Window.D()))
		if len(st.history) >= t.Breaker.MaxActions {
			st.breaker = true
			e.metrics.breakerOpen.WithLabelValues(t.Name).Set(1)
			e.logger.Warn("remediation breaker open: too many actions, leaving it to a person (reload to reset)",
				"target", t.Name, "actions", len(st.history), "window", t.Breaker.Window.D())
			reason = SkipBreaker
		} else if !st.last.IsZero() && now.Sub(st.last) < t.Cooldown.D() {
			reason = SkipCooldown
		}
	}
	e.mu.Unlock()
	if reason != "" {
		return e.skip(st, a, reason)
	}
	// The process age needs /proc: outside the lock.
	if age, ok := e.world.ProcessAge(t.Gateway); ok && age < t.Warmup.D() {
		return e.skip(st, a, SkipGrace)
	}

	e.mu.Lock()
	if st.busy || !e.seen[key].IsZero() { // raced with another delivery
		e.mu.Unlock()
		return e.skip(st, a, SkipDuplicate)
	}
	e.seen[key] = now
	st.history = append(st.history, now)
	st.last = now
	if e.opts.DryRun {
		e.mu.Unlock()
		e.metrics.lastAction.WithLabelValues(t.Name).Set(float64(now.UnixNano()) / 1e9)
		return e.skip(st, a, SkipDryRun)
	}
	st.busy = true
	e.inFlight.Add(1)
	e.mu.Unlock()

	e.audit(a, &t, "act", "")
	go e.run(st, a, now)
	return true
}

func (e *Engine) skip(st *targetState, a Alert, reason string) bool {
	e.metrics.skipped.WithLabelValues(st.cfg.Name, reason).Inc()
	e.audit(a, &st.cfg, "skip", reason)
	return false
}

// run performs one action and verifies it.
func (e *Engine) run(st *targetState, a Alert, started time.Time) {
	t := st.cfg
	defer e.inFlight.Done()
	defer func() {
		e.mu.Lock()
		st.busy = false
		e.mu.Unlock()
		e.metrics.inProgress.WithLabelValues(t.Name).Set(0)
	}()
	e.metrics.inProgress.WithLabelValues(t.Name).Set(1)
	e.metrics.lastAction.WithLabelValues(t.Name).Set(float64(started.UnixNano()) / 1e9)
	begin := time.Now()

	if t.RemoveStaleLock {
		removed, err := e.world.RemoveStaleLocks(t.Gateway)
		for _, p := range removed {
			e.logger.Info("remediation removed stale lock", "target", t.Name, "path", p)
		}
		if err != nil {
			e.logger.Warn("remediation could not remove a lock", "target", t.Name, "err", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), actionTimeout(t))
	err := st.action.Run(ctx, a)
	cancel()
	e.metrics.duration.WithLabelValues(t.Name, t.Action.Type).Observe(time.Since(begin).Seconds())
	result := ResultError
	var recovery time.Duration
	if err == nil {
		result = ResultNotRecovered
		if recovery, err = e.verify(t, begin); err == nil {
			result = ResultRecovered
			e.metrics.recovery.WithLabelValues(t.Name).Observe(recovery.Seconds())
		}
	}
	e.metrics.actions.WithLabelValues(t.Name, t.Action.Type, result).Inc()
	args := []any{"alertname", a.Labels["alertname"], "fingerprint", a.Fingerprint, "target", t.Name,
		"action", t.Action.Type, "result", result, "duration_seconds", time.Since(begin).Seconds()}
	if result == ResultRecovered {
		args = append(args, "recovery_seconds", recovery.Seconds())
	}
	d := Decision{Time: time.Now(), AlertName: a.Labels["alertname"], Fingerprint: a.Fingerprint, Status: a.Status,
		Target: t.Name, Action: t.Action.Type, Decision: "done", Result: result}
	if result == ResultRecovered {
		d.Detail = fmt.Sprintf("up %.1f s after the action began", recovery.Seconds())
	}
	if err != nil {
		d.Detail = err.Error()
		e.remember(d)
		args = append(args, "err", err)
		e.logger.Warn("remediation", args...)
		return
	}
	e.remember(d)
	e.logger.Info("remediation", args...)
}

func actionTimeout(t Target) time.Duration {
	switch {
	case t.Action.Exec != nil:
		return t.Action.Exec.Timeout.D()
	case t.Action.Docker != nil:
		return t.Action.Docker.StopTimeout.D() + time.Minute
	}
	return 2 * time.Minute
}

// verify probes until the gateway is up or the target's verify timeout
// passes; it returns the time from begin to the first successful probe.
func (e *Engine) verify(t Target, begin time.Time) (time.Duration, error) {
	deadline := begin.Add(t.VerifyTimeout.D())
	var err error
	for {
		ctx, cancel := context.WithTimeout(context.Background(), min(e.opts.ProbeTimeout, max(time.Until(deadline), time.Millisecond)))
		err = e.world.Probe(ctx, t.Gateway)
		cancel()
		if err == nil {
			return time.Since(begin), nil
		}
		if time.Until(deadline) <= 0 {
			return 0, fmt.Errorf("gateway not up %v after the action: %w", t.VerifyTimeout.D(), err)
		}
		time.Sleep(min(e.opts.VerifyInterval, time.Until(deadline)))
	}
}

func (e *Engine) audit(a Alert, t *Target, decision, reason string) {
	d := Decision{Time: time.Now(), AlertName: a.Labels["alertname"], Fingerprint: a.Fingerprint, Status: a.Status, Decision: decision, Reason: reason}
	if t != nil {
		d.Target, d.Action = t.Name, t.Action.Type
	}
	e.remember(d)
	args := []any{"decision", decision, "alertname", a.Labels["alertname"], "fingerprint", a.Fingerprint,
		"status", a.Status, "starts_at", a.StartsAt}
	if t != nil {
		args = append(args, "target", t.Name, "action", t.Action.Type)
	}
	if reason != "" {
		args = append(args, "reason", reason)
	}
	e.logger.Info("remediation decision", args...)
}

// recent keeps the times after since.
func recent(ts []time.Time, since time.Time) []time.Time {
	out := ts[:0]
	for _, t := range ts {
		if t.After(since) {
			out = append(out, t)
		}
	}
	return out
}

func (e *Engine) pruneSeen(now time.Time) {
	if len(e.seen) < seenMax/2 {
		for k, at := range e.seen {
			if now.Sub(at) > seenTTL {
				delete(e.seen, k)
			}
		}
		return
	}
	// Under pressure keep the newest half.
	cut := now.Add(-seenTTL)
	for len(e.seen) >= seenMax/2 {
		for k, at := range e.seen {
			if at.Before(cut) {
				delete(e.seen, k)
			}
		}
		cut = cut.Add(seenTTL / 2)
		if cut.After(now) {
			maps.DeleteFunc(e.seen, func(string, time.Time) bool { return true })
		}
	}
}

// BreakerOpen reports a target's breaker, for tests and status.
func (e *Engine) BreakerOpen(target string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := e.targets[target]
	return st != nil && st.breaker
}
