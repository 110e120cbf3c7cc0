package remediate

import "github.com/prometheus/client_golang/prometheus"

// Metrics of remediation; every decision shows in one of them.
type Metrics struct {
	actions     *prometheus.CounterVec
	skipped     *prometheus.CounterVec
	lastAction  *prometheus.GaugeVec
	duration    *prometheus.HistogramVec
	recovery    *prometheus.HistogramVec
	breakerOpen *prometheus.GaugeVec
	inProgress  *prometheus.GaugeVec
	requests    *prometheus.CounterVec
	resets      *prometheus.CounterVec
	// The watch loop's.
	watchFailures *prometheus.GaugeVec
	watchChecks   *prometheus.CounterVec
}

// Skip reasons, a fixed set.
const (
	SkipDuplicate = "duplicate"
	SkipCooldown  = "cooldown"
	SkipBreaker   = "breaker"
	SkipGrace     = "grace"
	SkipResolved  = "resolved"
	SkipUnmatched = "unmatched"
	SkipDryRun    = "dry_run"
	SkipBusy      = "busy"
	// SkipNeedsPerson: the gateway's last exit was 78, "do not restart".
	SkipNeedsPerson = "needs_person"
	// SkipSupervisor: its supervisor (Docker's restart policy, systemd's
	// auto-restart) is restarting it already.
	SkipSupervisor = "supervisor_restarting"
	// SkipLockHeld: a live process that is not the gateway (a hung
	// openclaw doctor) holds what a start needs: a restart would fail.
	SkipLockHeld = "lock_held"
)

// Action results.
const (
	ResultRecovered    = "recovered"     // acted, and the probe saw the gateway up
	ResultNotRecovered = "not_recovered" // acted, but the gateway was not up by the verify deadline
	ResultError        = "error"         // the action itself failed
)

// NewMetrics registers remediation's metrics.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "clawdbot_remediation_actions_total",
			Help: "Remediation actions taken, by result: recovered, not_recovered, error.",
		}, []string{"target", "action", "result"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "clawdbot_remediation_skipped_total",
			Help: "Alerts and watch-loop failures that did not lead to an action, by reason: duplicate, cooldown, breaker, grace, resolved, unmatched, dry_run, busy, needs_person, supervisor_restarting, lock_held.",
		}, []string{"target", "reason"}),
		lastAction: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "clawdbot_remediation_last_action_timestamp_seconds",
			Help: "When the target's last action started.",
		}, []string{"target"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "clawdbot_remediation_action_duration_seconds",
			Help:    "How long actions took, lock removal included, verification not.",
			Buckets: []float64{0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120},
		}, []string{"target", "action"}),
		recovery: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "clawdbot_remediation_recovery_seconds",
			Help:    "Time from the start of an action to the probe seeing the gateway up.",
			Buckets: []float64{1, 2.5, 5, 10, 20, 30, 60, 120, 300},
		}, []string{"target"}),
		breakerOpen: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "clawdbot_remediation_breaker_open",
			Help: "1 when the target's circuit breaker holds actions back until a person resets it (POST /-/remediation/reset).",
		}, []string{"target"}),
		inProgress: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "clawdbot_remediation_in_progress",
			Help: "1 while an action for the target runs or is being verified.",
		}, []string{"target"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "clawdbot_remediation_webhook_requests_total",
			Help: "Webhook requests, by HTTP status code answered.",
		}, []string{"code"}),
		resets: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "clawdbot_remediation_breaker_resets_total",
			Help: "Open breakers closed by a person (POST /-/remediation/reset).",
		}, []string{"target"}),
		watchFailures: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "clawdbot_remediation_watch_consecutive_failures",
			Help: "Consecutive watch-loop probes of the target's gateway that failed with a restart reason; at the target's watch.after the loop asks for an action.",
		}, []string{"target"}),
		watchChecks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "clawdbot_remediation_watch_checks_total",
			Help: "Watch-loop checks, by how the result was had: probed (its own probe) or reused (another probe younger than half the interval).",
		}, []string{"target", "how"}),
	}
	reg.MustRegister(m.watchFailures, m.watchChecks)
	reg.MustRegister(m.actions, m.skipped, m.lastAction, m.duration, m.recovery, m.breakerOpen, m.inProgress, m.requests, m.resets)
	return m
}

// initTarget makes a target's series exist at zero.
func (m *Metrics) initTarget(t Target) {
	for _, r := range []string{ResultRecovered, ResultNotRecovered, ResultError} {
		m.actions.WithLabelValues(t.Name, t.Action.Type, r)
	}
	for _, r := range []string{SkipDuplicate, SkipCooldown, SkipBreaker, SkipGrace, SkipResolved, SkipDryRun, SkipBusy, SkipNeedsPerson, SkipSupervisor, SkipLockHeld} {
		m.skipped.WithLabelValues(t.Name, r)
	}
	m.breakerOpen.WithLabelValues(t.Name)
	m.inProgress.WithLabelValues(t.Name)
	m.resets.WithLabelValues(t.Name)
}
