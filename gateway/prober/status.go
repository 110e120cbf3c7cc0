package prober

import (
	"context"
	"encoding/json"
	"time"

	"github.com/gorilla/websocket"

	"github.com/clawdbot-exporter/clawdbot_exporter/gateway"
	"github.com/clawdbot-exporter/clawdbot_exporter/internal/lru"
)

const (
	// statusEvery: openclaw's status RPC gathers a lot (sessions, tasks,
	// heartbeats); asked at most this often per gateway, so the gateway's
	// cost per scrape does not grow with the scrape rate.
	statusEvery = time.Minute
	// statusStale: a cached payload older than this (the fetches since
	// failed) is no longer exported.
	statusStale = 3 * statusEvery
	// statusWait bounds the status call; it never takes more than half of
	// the time the probe has left.
	statusWait = 2 * time.Second
)

type statusEntry struct {
	tried  time.Time
	at     time.Time
	status *Status
}

// fetchStatus returns the target's status payload, asking the gateway when
// the cached one is older than statusEvery. Its failure is not the probe's:
// the probe already has its answer.
func (p *Prober) fetchStatus(ctx context.Context, conn *websocket.Conn, t gateway.Target, h *Hello) (*Status, time.Time) {
	if ProductForProtocol(h.Protocol) != "openclaw" || !h.HasMethod("status") {
		return nil, time.Time{}
	}
	key, now := gateKey(t), p.clock()
	p.mu.Lock()
	e := p.statuses.GetOrPut(key, func() *statusEntry { return &statusEntry{} })
	if !e.tried.IsZero() && now.Sub(e.tried) < statusEvery {
		p.mu.Unlock()
		return p.cachedStatus(key, now)
	}
	e.tried = now
	p.mu.Unlock()

	deadline := time.Now().Add(statusWait)
	if d, ok := ctx.Deadline(); ok {
		half := time.Until(d) / 2
		if half < 50*time.Millisecond {
			return p.cachedStatus(key, now)
		}
		if half < statusWait {
			deadline = time.Now().Add(half)
		}
	}
	if ctx.Err() != nil {
		return p.cachedStatus(key, now)
	}
	_ = conn.SetReadDeadline(deadline)
	payload, err := call(conn, "st1", "status", struct{}{}, nil)
	if err != nil {
		return p.cachedStatus(key, now)
	}
	var st Status
	if err := json.Unmarshal(payload, &st); err != nil {
		return p.cachedStatus(key, now)
	}
	p.mu.Lock()
	e.status, e.at = &st, now
	p.mu.Unlock()
	return &st, now
}

func (p *Prober) cachedStatus(key string, now time.Time) (*Status, time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	e, _ := p.statuses.Peek(key)
	if e == nil || e.status == nil || now.Sub(e.at) > statusStale {
		return nil, time.Time{}
	}
	return e.status, e.at
}

// rememberReady keeps, per gateway, whether it has a /readyz endpoint: a
// gateway that answered it once reports not ready (not nothing) while it is
// down. A gateway whose /readyz is no readiness answer (clawdbot's HTML
// page) has none.
func (p *Prober) rememberReady(key string, ready *Readiness, res *Result) *Readiness {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case ready == nil:
		p.readyz.Delete(key)
		return nil
	case ready.Answered:
		p.readyz.Put(key, true)
		return ready
	case has(&p.readyz, key) || res.Product() == "openclaw":
		return ready
	}
	return nil
}

// learnReadyz remembers a clawdbot, known by its hello-ok (protocol 3),
// whose /readyz was no readiness answer: later probes skip the request.
// Any other product on that address (an upgrade to openclaw on the same
// port) makes the next probe ask again.
func (p *Prober) learnReadyz(key string, skipped bool, ready *Readiness, res *Result) {
	if res.Hello == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case res.Hello.Protocol != 3:
		p.noReadyz.Delete(key)
	case !skipped && ready == nil:
		p.noReadyz.Put(key, true)
	}
}

// has says whether a bounded set holds key, marking it used.
func has(c *lru.Map[bool], key string) bool {
	v, _ := c.Get(key)
	return v
}
