package prober

import "github.com/clawdbot-exporter/clawdbot_exporter/internal/lru"

// DefaultMaxTargets bounds the per-target state a Prober keeps (auth
// backoff, restart evidence, status and schema caches, client kind): far
// above a config file's gateways, and enough for a fleet of 1,000 probed
// through /probe with room for churn. Beyond it the least recently probed
// target's state is forgotten: its restart counter starts again at 0 (a
// counter reset to Prometheus) and its auth backoff is cleared, so the
// next probe of a refused target logs in once more.
const DefaultMaxTargets = lru.Default

// SetMaxTargets bounds the per-target state (DefaultMaxTargets when n <=
// 0): the prober behind /probe sees whatever targets service discovery
// sends, so its memory must not grow with them.
func (p *Prober) SetMaxTargets(n int) {
	p.gate.mu.Lock()
	p.gate.state.SetMax(n)
	p.gate.mu.Unlock()
	p.runs.mu.Lock()
	p.runs.state.SetMax(n)
	p.runs.mu.Unlock()
	p.schemas.mu.Lock()
	p.schemas.m.SetMax(n)
	p.schemas.mu.Unlock()
	p.mu.Lock()
	p.statuses.SetMax(n)
	p.readyz.SetMax(n)
	p.noReadyz.SetMax(n)
	p.healths.SetMax(n)
	p.backend.SetMax(n)
	p.mu.Unlock()
}

// TargetsKept is how many targets' state the prober holds (the largest of
// its stores): for the exporter's own metrics.
func (p *Prober) TargetsKept() int {
	n := 0
	p.gate.mu.Lock()
	n = max(n, p.gate.state.Len())
	p.gate.mu.Unlock()
	p.runs.mu.Lock()
	n = max(n, p.runs.state.Len())
	p.runs.mu.Unlock()
	return n
}
