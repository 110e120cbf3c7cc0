package remediate

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/clawdbot-exporter/clawdbot_exporter/gateway/lockfile"
)

// Clock is the engine's time; tests use a fake one.
type Clock interface{ Now() time.Time }

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

// World is what the engine needs to know of, and do to, gateways.
type World interface {
	// ProcessAge is how long the gateway has run since its last restart of
	// any kind (a new process, or openclaw's in-process restart); ok is
	// false when neither is known.
	ProcessAge(gateway string) (age time.Duration, ok bool)
	// RemoveStaleLocks removes the gateway's locks whose owner is dead or
	// reused, and returns their paths.
	RemoveStaleLocks(gateway string) ([]string, error)
	// StartBlockers lists what would make the gateway's next start fail.
	StartBlockers(gateway string) []lockfile.Blocker
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
	// Notifier, when set, is told of actions, outcomes, holds and open
	// breakers of targets with a notify section.
	Notifier Notifier
}

// Engine decides, per alert and target, whether to act, and acts.
type Engine struct {
	world   World
	metrics *Metrics
	logger  *slog.Logger
	opts    Options

	mu sync.Mutex
	// targets is what the configuration says, swapped whole by Reload;
	// states is what happened, by target name: it outlives reloads, so an
	// action in flight during one clears the busy flag the next decisions
	// see.
	targets map[string]*targetConf
	order   []string
	states  map[string]*targetState
	// seen holds (target, fingerprint, startsAt) keys that led to an
	// action, so retries and the other Alertmanager of an HA pair do not.
	seen     map[string]time.Time
	inFlight sync.WaitGroup
	// recent is the audit trail for the status page, newest last.
	recent []Decision
	// The watch loops, by target name, once StartWatching ran.
	watchCtx context.Context
	probes   WatchProbes
	watchers map[string]*watcher
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

type targetConf struct {
	cfg    Target
	action Action
}

type targetState struct {
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
	e := &Engine{world: w, metrics: m, logger: logger, opts: opts, targets: map[string]*targetConf{},
		states: map[string]*targetState{}, seen: map[string]time.Time{}}
	if err := e.Reload(targets); err != nil {
		return nil, err
	}
	return e, nil
}

// Reload replaces the targets. Actions in flight finish with the
// configuration they started with. What happened to a target that stays
// (history, cooldown, dedupe, an open breaker) is kept: only Reset closes a
// breaker.
func (e *Engine) Reload(targets []Target) error {
	confs := map[string]*targetConf{}
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
		confs[t.Name] = &targetConf{cfg: t, action: a}
		order = append(order, t.Name)
	}
	e.mu.Lock()
	for name, c := range confs {
		st := e.states[name]
		if st == nil {
			st = &targetState{}
			e.states[name] = st
		}
		e.metrics.initTarget(c.cfg)
		e.metrics.breakerOpen.WithLabelValues(name).Set(boolGauge(st.breaker))
	}
	for name, st := range e.states {
		if confs[name] == nil && !st.busy {
			delete(e.states, name)
		}
	}
	e.targets, e.order = confs, order
	e.mu.Unlock()
	e.syncWatchers()
	return nil
}

// Reset closes the breaker of the named target (all targets for ""), with
// a fresh budget: how a person says "go on" after looking. It returns the
// targets whose breaker was open.
func (e *Engine) Reset(target string) ([]string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if target != "" && e.targets[target] == nil {
		return nil, fmt.Errorf("no remediation target %q", target)
	}
	var reset []string
	for _, name := range e.order {
		if target != "" && name != target {
			continue
		}
		st := e.states[name]
		if st.breaker {
			reset = append(reset, name)
		}
		st.breaker, st.history = false, nil
		e.metrics.breakerOpen.WithLabelValues(name).Set(0)
	}
	for _, name := range reset {
		e.metrics.resets.WithLabelValues(name).Inc()
	}
	return reset, nil
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Wait blocks until every action in flight has finished and been verified.
func (e *Engine) Wait() { e.inFlight.Wait() }

// Handle decides on every alert of a message at once and starts the actions
// it decides on in the background. It returns how many actions it started.
// Every decision to act is audited on its own; skips are audited once per
// target and reason, with their count, so that one payload of thousands of
// alerts writes a handful of lines.
func (e *Engine) Handle(m *Message) int {
	started := 0
	sk := &skips{m: map[skipKey]*skipAgg{}}
	for _, a := range m.Alerts {
		matched := false
		for _, name := range e.targetNames() {
			c := e.state(name)
			if c == nil || !matches(c.cfg, a) {
				continue
			}
			matched = true
			if ok, _ := e.decide(c, a, sk); ok {
				started++
			}
		}
		if !matched {
			e.metrics.skipped.WithLabelValues("", SkipUnmatched).Inc()
			sk.add(a, nil, SkipUnmatched)
		}
	}
	for _, k := range sk.order {
		g := sk.m[k]
		e.audit(g.first, g.target, "skip", k.reason, g.n)
	}
	return started
}

// skips gathers one message's skip decisions by target and reason.
type skips struct {
	order []skipKey
	m     map[skipKey]*skipAgg
}

type skipKey struct{ target, reason string }

type skipAgg struct {
	first  Alert
	target *Target
	n      int
}

func (s *skips) add(a Alert, t *Target, reason string) {
	k := skipKey{reason: reason}
	if t != nil {
		k.target = t.Name
	}
	if g := s.m[k]; g != nil {
		g.n++
		return
	}
	s.m[k] = &skipAgg{first: a, target: t, n: 1}
	s.order = append(s.order, k)
}

func (e *Engine) targetNames() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.order...)
}

func (e *Engine) state(name string) *targetConf {
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
func (e *Engine) decide(c *targetConf, a Alert, sk *skips) (bool, string) {
	t := c.cfg
	if a.Status == "resolved" {
		return e.skip(c, a, sk, SkipResolved)
	}
	now := e.opts.Clock.Now()
	key := t.Name + "|" + a.Fingerprint + "|" + strconv.FormatInt(a.StartsAt.UnixNano(), 10)

	e.mu.Lock()
	st := e.states[t.Name]
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
			e.logger.Warn("remediation breaker open: too many actions, leaving it to a person (POST /-/remediation/reset to go on)",
				"target", t.Name, "actions", len(st.history), "window", t.Breaker.Window.D())
			reason = SkipBreaker
			defer e.notify(t, Event{Kind: EventBreakerOpen, Result: SkipBreaker, Text: fmt.Sprintf(
				"%d restarts of gateway %s within %v: no more until a person looks (POST /-/remediation/reset to go on)",
				len(st.history), t.Gateway, t.Breaker.Window.D())})
		} else if !st.last.IsZero() && now.Sub(st.last) < t.Cooldown.D() {
			reason = SkipCooldown
		}
	}
	e.mu.Unlock()
	if reason != "" {
		return e.skip(c, a, sk, reason)
	}
	// The process age needs /proc: outside the lock.
	if age, ok := e.world.ProcessAge(t.Gateway); ok && age < t.Warmup.D() {
		return e.skip(c, a, sk, SkipGrace)
	}

	e.mu.Lock()
	if st.busy || !e.seen[key].IsZero() { // raced with another delivery
		e.mu.Unlock()
		return e.skip(c, a, sk, SkipDuplicate)
	}
	prevLast := st.last
	e.seen[key] = now
	st.history = append(st.history, now)
	st.last = now
	if e.opts.DryRun {
		e.mu.Unlock()
		e.metrics.lastAction.WithLabelValues(t.Name).Set(float64(now.UnixNano()) / 1e9)
		return e.skip(c, a, sk, SkipDryRun)
	}
	st.busy = true
	e.inFlight.Add(1)
	e.mu.Unlock()

	go e.run(c, a, now, prevLast)
	return true, ""
}

func (e *Engine) skip(c *targetConf, a Alert, sk *skips, reason string) (bool, string) {
	e.metrics.skipped.WithLabelValues(c.cfg.Name, reason).Inc()
	sk.add(a, &c.cfg, reason)
	return false, reason
}

// Trigger submits a failure the exporter saw itself (the watch loop) for
// the named target, as if an alert matched it: the same policy, state and
// dedupe as Alertmanager's alerts, so both together never double an
// action. It returns whether an action started, else the skip reason.
func (e *Engine) Trigger(target string, a Alert) (bool, string) {
	c := e.state(target)
	if c == nil {
		return false, SkipUnmatched
	}
	sk := &skips{m: map[skipKey]*skipAgg{}}
	ok, reason := e.decide(c, a, sk)
	for _, k := range sk.order {
		g := sk.m[k]
		e.audit(g.first, g.target, "skip", k.reason, g.n)
	}
	return ok, reason
}

// notify hands an event to the notifier when the target has a notify
// section; the notifier never blocks.
func (e *Engine) notify(t Target, ev Event) {
	if e.opts.Notifier == nil || t.Notify == nil {
		return
	}
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	ev.Target, ev.Gateway = t.Name, t.Gateway
	func() {
		defer func() {
			if p := recover(); p != nil {
				e.logger.Error("notifier panicked", "target", t.Name, "panic", p)
			}
		}()
		e.opts.Notifier.Notify(t, ev)
	}()
}

// precheck runs, just before an action, what decides that there must be
// none: the local-state lock logic (what blocks a start is cleared when
// the target allows it; a live foreign holder stops the action) and the
// supervisor's own view (Preflighter). It returns a skip reason and a
// detail, or "" to act.
func (e *Engine) precheck(c *targetConf) (string, string) {
	t := c.cfg
	if t.RemoveStaleLock {
		removed, err := e.world.RemoveStaleLocks(t.Gateway)
		for _, p := range removed {
			e.logger.Info("remediation removed stale lock", "target", t.Name, "path", p)
		}
		if err != nil {
			e.logger.Warn("remediation could not remove a lock", "target", t.Name, "err", oneLine(err))
		}
	}
	var held []string
	for _, b := range e.world.StartBlockers(t.Gateway) {
		if b.Why == lockfile.WhyHeldByNonGateway || b.Why == lockfile.WhyCoordinatorHeld {
			held = append(held, fmt.Sprintf("%s (%s: %s)", b.Path, b.Why, b.Detail))
		}
	}
	if len(held) > 0 {
		return SkipLockHeld, "a restart would fail: " + strings.Join(held, "; ") + "; stop that process first"
	}
	if p, ok := c.action.(Preflighter); ok {
		ctx, cancel := context.WithTimeout(context.Background(), preflightTimeout)
		hold, detail, err := p.Preflight(ctx)
		cancel()
		if err != nil {
			e.logger.Warn("remediation could not ask the supervisor; acting", "target", t.Name, "err", oneLine(err))
		}
		if hold != "" {
			return hold, detail
		}
	}
	return "", ""
}

// run performs one action, with the configuration it was decided under,
// and verifies it. prevLast is the target's last action before this one,
// restored when the pre-checks hold the action back.
func (e *Engine) run(c *targetConf, a Alert, started, prevLast time.Time) {
	t := c.cfg
	defer e.inFlight.Done()
	defer func() {
		if p := recover(); p != nil {
			e.logger.Error("remediation panicked", "target", t.Name, "panic", p)
		}
	}()
	defer func() {
		e.mu.Lock()
		if st := e.states[t.Name]; st != nil {
			st.busy = false
		}
		e.mu.Unlock()
		e.metrics.inProgress.WithLabelValues(t.Name).Set(0)
	}()
	e.metrics.inProgress.WithLabelValues(t.Name).Set(1)
	begin := time.Now()
	if hold, detail := e.precheck(c); hold != "" {
		e.hold(t, a, started, prevLast, hold, detail)
		return
	}
	e.metrics.lastAction.WithLabelValues(t.Name).Set(float64(started.UnixNano()) / 1e9)
	e.audit(a, &t, "act", "", 1)
	e.notify(t, Event{Kind: EventAction, Text: fmt.Sprintf("restarting gateway %s (%s) with %s", t.Gateway, trigger(a), describe(t.Action))})

	ctx, cancel := context.WithTimeout(context.Background(), actionTimeout(t))
	err := safeRun(ctx, c.action, a)
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
	ev := Event{Kind: EventOutcome, Result: result}
	switch result {
	case ResultRecovered:
		ev.Text = fmt.Sprintf("gateway %s recovered: up %.0f s after the restart began", t.Gateway, recovery.Seconds())
	case ResultNotRecovered:
		ev.Text = fmt.Sprintf("gateway %s NOT recovered: not up %v after the restart (%s)", t.Gateway, t.VerifyTimeout.D(), oneLine(err))
	default:
		ev.Text = fmt.Sprintf("restart of gateway %s failed: %s", t.Gateway, oneLine(err))
	}
	defer e.notify(t, ev)
	if err != nil {
		d.Detail = oneLine(err)
		e.remember(d)
		args = append(args, "err", d.Detail)
		e.logger.Warn("remediation", args...)
		return
	}
	e.remember(d)
	e.logger.Info("remediation", args...)
}

// hold ends an action the pre-checks stopped: it is no action for the
// breaker. When a person is needed (exit 78, a live lock holder) the
// cooldown starts now, so the next failure is looked at (and reported)
// again at the target's usual pace, not at every probe; when the
// supervisor is restarting the gateway itself, the cooldown stays as it
// was, and a gateway still down after that restart can be acted on.
func (e *Engine) hold(t Target, a Alert, started, prevLast time.Time, reason, detail string) {
	e.mu.Lock()
	if st := e.states[t.Name]; st != nil {
		st.history = slicesDelete(st.history, started)
		if reason == SkipLockHeld || reason == SkipNeedsPerson {
			st.last = started // a person is needed: do not ask again at every probe
		} else {
			st.last = prevLast
		}
	}
	e.mu.Unlock()
	e.metrics.skipped.WithLabelValues(t.Name, reason).Inc()
	d := Decision{Time: time.Now(), AlertName: a.Labels["alertname"], Fingerprint: a.Fingerprint, Status: a.Status,
		Target: t.Name, Action: t.Action.Type, Decision: "skip", Reason: reason, Detail: clipDetail(detail)}
	e.remember(d)
	e.logger.Warn("remediation held back", "target", t.Name, "alertname", a.Labels["alertname"], "reason", reason, "detail", d.Detail)
	if reason != SkipSupervisor {
		e.notify(t, Event{Kind: EventHeld, Result: reason, Text: fmt.Sprintf("gateway %s needs a person: no restart (%s): %s", t.Gateway, reason, d.Detail)})
	}
}

func slicesDelete(ts []time.Time, v time.Time) []time.Time {
	for i := len(ts) - 1; i >= 0; i-- {
		if ts[i].Equal(v) {
			return append(ts[:i], ts[i+1:]...)
		}
	}
	return ts
}

// clipDetail bounds a detail from a supervisor or a lock scan.
func clipDetail(s string) string {
	if len(s) > 400 {
		i := 400
		for i > 0 && s[i]&0xC0 == 0x80 {
			i--
		}
		return s[:i] + "…"
	}
	return s
}

// trigger says in words what asked for an action.
func trigger(a Alert) string {
	if a.Fingerprint == WatchFingerprint {
		if r := a.Labels["reason"]; r != "" {
			return "watch: " + r
		}
		return "watch"
	}
	if n := a.Labels["alertname"]; n != "" {
		return "alert " + n
	}
	return "an alert"
}

// describe names an action for people.
func describe(s ActionSpec) string {
	switch {
	case s.Docker != nil:
		return "docker restart " + s.Docker.Container
	case s.Systemd != nil:
		return "systemd restart " + s.Systemd.Unit
	case s.Signal != nil:
		return "signal " + s.Signal.Signal
	case s.Exec != nil && len(s.Exec.Command) > 0:
		return "exec " + s.Exec.Command[0]
	}
	return s.Type
}

// oneLine is an error's text on one line: errors.Join puts each error on
// a line of its own, which a logfmt line shows as \n escapes.
func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", "; ") }

// safeRun runs an action; a panic in it is its error, not the exporter's
// end.
func safeRun(ctx context.Context, act Action, a Alert) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("action panicked: %v", p)
		}
	}()
	return act.Run(ctx, a)
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

// audit records a decision on n alerts like a (n > 1 only for skips) in the
// trail and the log.
func (e *Engine) audit(a Alert, t *Target, decision, reason string, n int) {
	d := Decision{Time: time.Now(), AlertName: a.Labels["alertname"], Fingerprint: a.Fingerprint, Status: a.Status, Decision: decision, Reason: reason}
	if t != nil {
		d.Target, d.Action = t.Name, t.Action.Type
	}
	if n > 1 {
		d.Detail = fmt.Sprintf("and %d more alerts of the same message with the same decision", n-1)
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
	if n > 1 {
		args = append(args, "alerts", n, "details_of", "the first")
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
	st := e.states[target]
	return st != nil && st.breaker
}
