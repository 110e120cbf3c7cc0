package prober

import (
	"sync"
	"time"

	"github.com/clawdbot-exporter/clawdbot_exporter/internal/lru"
)

// Restarts: what the exporter has seen of a gateway's runs. openclaw
// restarts inside its process (same pid and start time, uptime counting
// on): only hello-ok.server.bootId tells. clawdbot has no bootId: a new
// process start time (from the process collector) or an uptime that went
// down tell. One restart often shows in several of these, seen at
// different scrapes (the process collector and the probe run apart), so a
// change is counted only when no other evidence has counted a restart since
// this evidence was last seen: two restarts between two scrapes count once,
// never one restart twice (a false restart is the worse error).

// Evidence is what one observation says about the gateway's current run;
// zero values are unknown.
type evidence struct {
	bootID     string
	startTicks uint64
	uptimeMs   *float64
}

type runState struct {
	// epoch counts the restarts counted; each kind of evidence remembers
	// the epoch it was last seen at.
	epoch uint64
	last  time.Time

	bootID    string
	bootEpoch uint64

	start      uint64
	startEpoch uint64

	uptimeMs    float64
	uptimeAt    time.Time
	uptimeEpoch uint64
	haveUptime  bool
}

// restarts keeps each target's runs in a bounded LRU (lru.go): a forgotten
// target's counter starts again at 0, which Prometheus reads as a counter
// reset (rate and increase stay right).
type restarts struct {
	mu    sync.Mutex
	state lru.Map[*runState]
}

// observe records evidence seen at now; true when it counted a restart.
func (r *restarts) observe(key string, ev evidence, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.state.GetOrPut(key, func() *runState { return &runState{} })
	// changed: evidence of a restart not yet counted.
	changed := ev.bootID != "" && st.bootID != "" && st.bootID != ev.bootID && st.bootEpoch == st.epoch
	if ev.startTicks != 0 && st.start != 0 && st.start != ev.startTicks && st.startEpoch == st.epoch {
		changed = true
	}
	// Uptime only for a gateway without a bootId (openclaw's uptime runs
	// on across its in-process restarts). It went down, and to no more than
	// the time since it was last seen: a wall clock stepped back does not
	// make an old gateway young.
	if ev.bootID == "" && ev.uptimeMs != nil && st.haveUptime && st.uptimeEpoch == st.epoch {
		elapsed := float64(now.Sub(st.uptimeAt).Milliseconds())
		if *ev.uptimeMs < st.uptimeMs && *ev.uptimeMs <= elapsed+2000 {
			changed = true
		}
	}
	if changed {
		st.epoch++
		st.last = now
	}
	if ev.bootID != "" {
		st.bootID, st.bootEpoch = ev.bootID, st.epoch
	}
	if ev.startTicks != 0 {
		st.start, st.startEpoch = ev.startTicks, st.epoch
	}
	if ev.uptimeMs != nil {
		st.uptimeMs, st.uptimeAt, st.uptimeEpoch, st.haveUptime = *ev.uptimeMs, now, st.epoch, true
	}
	return changed
}

func (r *restarts) get(key string) (count uint64, last time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if st, _ := r.state.Peek(key); st != nil {
		return st.epoch, st.last
	}
	return 0, time.Time{}
}
