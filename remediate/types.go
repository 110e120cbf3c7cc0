// Package remediate turns Alertmanager webhooks into safe gateway restarts:
// authenticated, deduplicated, rate-limited, verified.
package remediate

import "github.com/clawdbot-exporter/clawdbot_exporter/config"

// The configuration types are config's, which validates them; remediate
// only acts on them.
type (
	Target      = config.RemediationTarget
	ActionSpec  = config.ActionSpec
	ExecSpec    = config.ExecSpec
	SignalSpec  = config.SignalSpec
	DockerSpec  = config.DockerSpec
	SystemdSpec = config.SystemdSpec
	Breaker     = config.Breaker
	Duration    = config.Duration
	Watch       = config.Watch
	Notify      = config.Notify
)

// Defaults, for tests and the README.
const (
	DefaultWarmup      = config.DefaultWarmup
	DefaultCooldown    = config.DefaultCooldown
	DefaultWebhookPath = config.DefaultWebhookPath
)
