package remediate

import (
	"context"
	"time"
)

// Event kinds: what a person is told of.
const (
	EventAction      = "action"       // an action starts
	EventOutcome     = "outcome"      // an action's result: recovered, not_recovered, error
	EventBreakerOpen = "breaker_open" // too many actions: held until a person resets it
	EventHeld        = "held"         // no action, and a person is needed (exit 78, a live lock holder)
)

// Event is one thing worth telling a person, in words.
type Event struct {
	Time    time.Time
	Target  string
	Gateway string
	Kind    string
	// Result is the outcome's result, or the hold's skip reason.
	Result string
	Text   string
}

// Notifier tells people of events. Notify must not block the engine: a
// notifier queues, sends in the background and counts what it could not.
type Notifier interface {
	Notify(t Target, ev Event)
}

// Preflighter is an action whose supervisor can say, just before a
// restart, that there must be none: the gateway's last exit was 78
// (configuration or lock problem: openclaw's RestartPreventExitStatus), or
// the supervisor is restarting it already. Preflight returns "" to go on,
// or a skip reason (SkipNeedsPerson, SkipSupervisor) and a detail for
// people; an error means it could not tell, and the action goes on.
type Preflighter interface {
	Preflight(ctx context.Context) (hold, detail string, err error)
}

// preflightTimeout bounds one Preflight: a bus or daemon that does not
// answer must not hold the action for long.
const preflightTimeout = 10 * time.Second

// WatchFingerprint marks the alerts the watch loop makes of its own
// failures.
const WatchFingerprint = "watch"
