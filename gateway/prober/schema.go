package prober

import (
	"context"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/clawdbot-exporter/clawdbot_exporter/gateway"
	"github.com/clawdbot-exporter/clawdbot_exporter/gateway/configfile"
	"github.com/clawdbot-exporter/clawdbot_exporter/internal/lru"
)

// schemaRetry is how long a failed config.schema fetch waits before the
// next try: the payload is 2 MB, not something to ask for on every scrape.
const schemaRetry = 10 * time.Minute

// schemaWait bounds one fetch.
const schemaWait = 2 * time.Second

// schemas keeps, per target, the gateway's own config schema, fetched once
// per gateway version (openclaw's config.schema, scope operator.read), so
// the config collector can tell which keys the running gateway would refuse
// at its next start.
//
// Bounded (lru.go): a compiled schema is large, and only the gateways the
// config collector reads (local ones) need it; Prober.SkipSchema turns the
// fetch off for a prober of remote targets.
type schemas struct {
	mu sync.Mutex
	m  lru.Map[*schemaEntry]
	// off: never fetch (SkipSchema).
	off bool
}

// SkipSchema stops the prober from fetching config schemas: they serve the
// config collector, which reads local gateways' files, not remote ones'.
func (p *Prober) SkipSchema() {
	p.schemas.mu.Lock()
	p.schemas.off = true
	p.schemas.mu.Unlock()
}

type schemaEntry struct {
	version string
	schema  *configfile.Schema
	tried   time.Time
}

// ConfigSchema is the target's gateway's config schema as last fetched;
// nil before the first fetch, or for gateways without one (clawdbot).
func (p *Prober) ConfigSchema(t gateway.Target) *configfile.Schema {
	p.schemas.mu.Lock()
	defer p.schemas.mu.Unlock()
	if e, _ := p.schemas.m.Get(gateKey(t)); e != nil {
		return e.schema
	}
	return nil
}

// fetchSchema asks a gateway that just answered health for its config
// schema when none is cached for its version. Its failure is not the
// probe's.
func (p *Prober) fetchSchema(ctx context.Context, conn *websocket.Conn, t gateway.Target, h *Hello) {
	if ProductForProtocol(h.Protocol) != "openclaw" || !h.HasMethod("config.schema") {
		return
	}
	key, version := gateKey(t), h.Server.Version
	p.schemas.mu.Lock()
	if p.schemas.off {
		p.schemas.mu.Unlock()
		return
	}
	e, _ := p.schemas.m.Get(key)
	if e != nil && (e.schema != nil && e.version == version || e.schema == nil && time.Since(e.tried) < schemaRetry) {
		p.schemas.mu.Unlock()
		return
	}
	if e == nil {
		e = &schemaEntry{}
		p.schemas.m.Put(key, e)
	}
	e.tried = time.Now()
	p.schemas.mu.Unlock()

	// At most half the time left, and 2 s: a gateway slow to send 2 MB
	// must not make the probe late (the next try is schemaRetry away).
	deadline := time.Now().Add(schemaWait)
	if d, ok := ctx.Deadline(); ok {
		half := time.Until(d) / 2
		if half < 50*time.Millisecond {
			return
		}
		deadline = time.Now().Add(min(half, schemaWait))
	}
	_ = conn.SetReadDeadline(deadline)
	defer func() {
		if d, ok := ctx.Deadline(); ok {
			_ = conn.SetReadDeadline(d)
		}
	}()
	payload, err := call(conn, "s1", "config.schema", struct{}{}, nil)
	if err != nil {
		return
	}
	s, err := configfile.CompileSchema(payload)
	if err != nil {
		return
	}
	p.schemas.mu.Lock()
	e.version, e.schema = version, s
	p.schemas.mu.Unlock()
}
