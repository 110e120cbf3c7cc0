package prober

import (
	"encoding/json"
	"time"
)

// healthEvery: while a gateway answers ok, its health RPC is called at most
// this often; in between the probe reads the hello-ok's snapshot.health.
// Both come from the gateway's own health cache, which it refreshes every
// 60 s (docs/protocol.md#health-payload), so they hold the same payload
// (the snapshot without openclaw's modelRuntime, kept from the last RPC).
// The RPC costs openclaw 2026.9.6 about 3 ms of CPU, as much as the rest
// of the probe; clawdbot 0.1 ms.
const healthEvery = time.Minute

// healthEntry is a target's last successful health RPC.
type healthEntry struct {
	at           time.Time
	modelRuntime *ModelRuntime
}

// snapshotHealth is the hello-ok's health when it may stand for the RPC:
// the last RPC of this target succeeded with ok:true less than healthEvery
// ago, and the snapshot decodes and says ok:true. Anything else (a failed
// or unhealthy RPC, a snapshot that says ok:false or holds nothing, as a
// fake gateway's) asks the gateway again.
func (p *Prober) snapshotHealth(key string, h *Hello) *Health {
	if len(h.Snapshot.Health) == 0 {
		return nil
	}
	p.mu.Lock()
	e, _ := p.healths.Get(key)
	p.mu.Unlock()
	if e == nil || p.clock().Sub(e.at) >= healthEvery {
		return nil
	}
	var health Health
	if err := json.Unmarshal(h.Snapshot.Health, &health); err != nil || health.OK == nil || !*health.OK {
		return nil
	}
	if health.ModelRuntime == nil {
		health.ModelRuntime = e.modelRuntime
	}
	return &health
}

// healthDone records a health RPC's outcome: only an ok one lets the next
// probes read the snapshot instead.
func (p *Prober) healthDone(key string, health *Health) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if health == nil || health.OK == nil || !*health.OK {
		p.healths.Delete(key)
		return
	}
	p.healths.Put(key, &healthEntry{at: p.clock(), modelRuntime: health.ModelRuntime})
}
