package remediate

import "time"

// TargetStatus is one target's state, for the status page.
type TargetStatus struct {
	Name    string
	Gateway string
	Action  string
	// Watch is the target's watch section; nil when only alerts drive it.
	Watch *Watch
	// WatchFailures is the watch loop's current streak of failures.
	WatchFailures int
	Busy          bool
	Breaker       bool
	LastAction    time.Time
	// NextAllowed is the earliest time the policy lets the next action
	// start (cooldown, breaker budget); zero when it could start now. With
	// the breaker open only a reset lets one start.
	NextAllowed time.Time
}

// Status reports every target, in configuration order.
func (e *Engine) Status() []TargetStatus {
	now := e.opts.Clock.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]TargetStatus, 0, len(e.order))
	for _, name := range e.order {
		c, st := e.targets[name], e.states[name]
		t := c.cfg
		ts := TargetStatus{Name: name, Gateway: t.Gateway, Action: t.Action.Type, Watch: t.Watch,
			Busy: st.busy, Breaker: st.breaker, LastAction: st.last}
		if w := e.watchers[name]; w != nil {
			ts.WatchFailures = int(w.failures.Load())
		}
		var next time.Time
		if !st.last.IsZero() {
			next = st.last.Add(t.Cooldown.D())
		}
		// With the budget spent, the next action would open the breaker
		// until the oldest one leaves the window.
		if h := recent(append([]time.Time(nil), st.history...), now.Add(-t.Breaker.Window.D())); len(h) >= t.Breaker.MaxActions {
			if end := h[len(h)-t.Breaker.MaxActions].Add(t.Breaker.Window.D()); end.After(next) {
				next = end
			}
		}
		if next.After(now) {
			ts.NextAllowed = next
		}
		out = append(out, ts)
	}
	return out
}
