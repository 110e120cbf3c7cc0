package gatewaytest

import (
	"encoding/json"
	"time"
)

// methods and events advertised in hello-ok.features.
var (
	methods = []string{
		"health", "status", "system-presence", "channels.status", "sessions.list",
		"cron.status", "usage.status", "node.list", "agents.list", "last-heartbeat",
		"config.get",
	}
	events = []string{"connect.challenge", "tick", "health", "presence", "shutdown"}
)

// Values of the default health payload, exported so tests can compare what
// a client extracted with what the fake sent.
const (
	HealthSessionsCount  = 2
	HealthRecentAgeMs    = 5000
	HealthHeartbeatSecs  = 1800
	HealthDefaultAgentID = "main"
	HealthSessionsPath   = "/fake/.clawdbot/agents/main/sessions/sessions.json"
	// StatusTasksTotal is tasks.total of the default status payload.
	StatusTasksTotal = 5
)

func (ss *session) hello() map[string]any {
	o := ss.opts
	server := map[string]any{"host": "fake", "connId": ss.connID}
	snapshot := map[string]any{
		"presence":     []any{},
		"health":       map[string]any{},
		"stateVersion": map[string]any{"presence": 0, "health": 0},
		"uptimeMs":     ss.s.uptimeMs(),
	}
	if o.SnapshotHealth {
		h := healthPayload(o.Protocol, time.Now())
		if o.Fault == FaultHealthNotOK {
			h["ok"] = false
		}
		delete(h, "modelRuntime")
		snapshot["health"] = h
	}
	maxPayload := readLimitP3
	if o.Protocol >= 4 {
		server["version"] = VersionProtocol4
		server["buildId"] = "gatewaytest"
		server["bootId"] = ss.s.BootID()
		maxPayload = readLimitP4
	} else {
		server["version"] = VersionProtocol3
		snapshot["configPath"] = "/fake/.clawdbot/clawdbot.json"
		snapshot["stateDir"] = "/fake/.clawdbot"
	}
	if o.ServerVersion != "" {
		server["version"] = o.ServerVersion
	}
	return map[string]any{
		"type":     "hello-ok",
		"protocol": o.Protocol,
		"server":   server,
		"features": map[string]any{"methods": ss.methods(), "events": events},
		"snapshot": snapshot,
		"policy":   map[string]any{"maxPayload": maxPayload, "tickIntervalMs": 30000},
	}
}

// DefaultHealth returns the health payload the fake sends by default for
// protocol 3 or 4 at time now (JSON).
func DefaultHealth(protocol int, now time.Time) json.RawMessage {
	b, _ := json.Marshal(healthPayload(protocol, now))
	return b
}

// healthPayload follows docs/protocol.md#health-payload.
func healthPayload(protocol int, now time.Time) map[string]any {
	ms := now.UnixMilli()
	recent := []any{map[string]any{
		"key":       "agent:main:main",
		"updatedAt": ms - HealthRecentAgeMs,
		"age":       HealthRecentAgeMs,
	}}
	sessions := func() map[string]any {
		return map[string]any{"path": HealthSessionsPath, "count": HealthSessionsCount, "recent": recent}
	}
	h := map[string]any{
		"ok":         true,
		"ts":         ms,
		"durationMs": 3,
		"channels": map[string]any{
			"telegram": map[string]any{
				"accountId":   "default",
				"configured":  true,
				"enabled":     true,
				"probe":       map[string]any{"ok": true},
				"lastProbeAt": ms - 60000,
				"accounts": map[string]any{
					"default": map[string]any{
						"accountId":   "default",
						"configured":  true,
						"enabled":     true,
						"probe":       map[string]any{"ok": true},
						"lastProbeAt": ms - 60000,
					},
				},
			},
			"whatsapp": map[string]any{
				"accountId":  "default",
				"configured": false,
				"enabled":    false,
				"accounts": map[string]any{
					"default": map[string]any{"accountId": "default", "configured": false, "enabled": false},
				},
			},
		},
		"channelOrder":     []string{"telegram", "whatsapp"},
		"channelLabels":    map[string]string{"telegram": "Telegram", "whatsapp": "WhatsApp"},
		"heartbeatSeconds": HealthHeartbeatSecs,
		"defaultAgentId":   HealthDefaultAgentID,
		"agents": []any{map[string]any{
			"agentId":   HealthDefaultAgentID,
			"isDefault": true,
			"heartbeat": map[string]any{"enabled": true, "every": "30m", "everyMs": HealthHeartbeatSecs * 1000},
			"sessions":  sessions(),
		}},
		"sessions": sessions(),
	}
	if protocol >= 4 {
		// NOTE: the exact shapes of plugins/modelRuntime/eventLoop in openclaw
		// 2026.9.6 are being verified separately; numbers are used here.
		h["plugins"] = map[string]any{"loaded": 3, "errors": 0, "unavailable": 0}
		h["modelRuntime"] = map[string]any{"degraded": false, "pendingAgents": []string{}}
		h["configReload"] = map[string]any{"hotReloadStatus": "active"}
		// The shape of openclaw 2026.9.6 (testdata/real/openclaw-health.json).
		h["eventLoop"] = map[string]any{
			"degraded":        false,
			"degradedSinceMs": nil,
			"reasons":         []string{},
			"intervalMs":      1008.5,
			"delayP99Ms":      12.5,
			"delayMaxMs":      40.1,
			"utilization":     0.12,
			"cpuCoreRatio":    0.04,
		}
	}
	return h
}

// statusPayload is a small stand-in for the status method (not verified
// against a real gateway beyond the fields listed in docs/protocol.md#status-payload).
func statusPayload(protocol int, uptimeMs int64) map[string]any {
	st := map[string]any{"ok": true, "uptimeMs": uptimeMs}
	if protocol >= 4 {
		st["runtimeVersion"] = VersionProtocol4
		st["processMemory"] = map[string]any{
			"rssBytes": 300 << 20, "heapUsedBytes": 120 << 20, "heapTotalBytes": 160 << 20, "externalBytes": 10 << 20,
		}
		// The shape of openclaw 2026.9.6 (testdata/real/openclaw-status.json).
		st["tasks"] = map[string]any{
			"total": StatusTasksTotal, "active": 1, "terminal": 4, "failures": 2,
			"byStatus": map[string]any{"queued": 0, "running": 1, "succeeded": 2, "failed": 1, "timed_out": 1, "cancelled": 0, "lost": 0},
		}
		st["taskAudit"] = map[string]any{"total": 1, "warnings": 1, "errors": 0}
	}
	return st
}

// methods are the advertised methods: config.schema only when the fake has
// a schema to serve (Options.ConfigSchema).
func (ss *session) methods() []string {
	if len(ss.opts.ConfigSchema) == 0 {
		return methods
	}
	return append(append([]string(nil), methods...), "config.schema")
}
