package prober

import (
	"encoding/json"
)

// frame is any message on the gateway WebSocket (docs/protocol.md#frames).
type frame struct {
	Type    string          `json:"type"`
	ID      string          `json:"id,omitempty"`
	Event   string          `json:"event,omitempty"`
	OK      *bool           `json:"ok,omitempty"`
	Payload json.RawMessage `json:"payload,omitempty"`
	Error   *RPCError       `json:"error,omitempty"`
}

// RPCError is the error object of a failed response.
type RPCError struct {
	Code         string  `json:"code"`
	Message      string  `json:"message"`
	Retryable    bool    `json:"retryable,omitempty"`
	RetryAfterMs float64 `json:"retryAfterMs,omitempty"`
	// Details.Code is openclaw's precise cause (AUTH_TOKEN_MISMATCH,
	// DEVICE_IDENTITY_REQUIRED, …); messages differ between products.
	Details struct {
		Code string `json:"code"`
	} `json:"details"`
}

type request struct {
	Type   string `json:"type"`
	ID     string `json:"id"`
	Method string `json:"method"`
	Params any    `json:"params"`
}

// connectParams must carry exactly these keys: the gateway's schema sets
// additionalProperties:false and closes with 1008 on anything else.
type connectParams struct {
	MinProtocol int         `json:"minProtocol"`
	MaxProtocol int         `json:"maxProtocol"`
	Client      clientInfo  `json:"client"`
	Role        string      `json:"role"`
	Scopes      []string    `json:"scopes"`
	Auth        connectAuth `json:"auth"`
}

type clientInfo struct {
	ID       string `json:"id"`
	Version  string `json:"version"`
	Platform string `json:"platform"`
	Mode     string `json:"mode"`
}

type connectAuth struct {
	Token    string `json:"token"`
	Password string `json:"password,omitempty"`
}

// Hello is the part of hello-ok the exporter uses.
type Hello struct {
	Type     string `json:"type"`
	Protocol int    `json:"protocol"`
	Server   struct {
		Version string `json:"version"`
		BuildID string `json:"buildId"`
		BootID  string `json:"bootId"`
	} `json:"server"`
	Snapshot struct {
		UptimeMs *float64 `json:"uptimeMs"`
		// Health is the gateway's cached health payload, decoded only
		// when it stands for the health RPC (healthcache.go).
		Health json.RawMessage `json:"health"`
	} `json:"snapshot"`
	// Features.Methods lists the RPC methods the gateway serves (openclaw:
	// about 460), to ask only for what exists.
	Features struct {
		Methods []string `json:"methods"`
	} `json:"features"`
}

// HasMethod tells whether the gateway lists method among its features.
func (h *Hello) HasMethod(method string) bool {
	for _, m := range h.Features.Methods {
		if m == method {
			return true
		}
	}
	return false
}

// Health is the health RPC payload (docs/protocol.md#health-payload). Every field is optional:
// the two products and their versions differ, and a missing field must mean
// "no metric", never a decoding failure.
type Health struct {
	OK               *bool              `json:"ok"`
	Channels         map[string]Channel `json:"channels"`
	HeartbeatSeconds *float64           `json:"heartbeatSeconds"`
	DefaultAgentID   string             `json:"defaultAgentId"`
	Agents           []Agent            `json:"agents"`
	Sessions         *Sessions          `json:"sessions"`
	// openclaw only.
	Plugins      *Plugins      `json:"plugins"`
	ModelRuntime *ModelRuntime `json:"modelRuntime"`
	EventLoop    *EventLoop    `json:"eventLoop"`
	ConfigReload *struct {
		// HotReloadStatus is "active" or "disabled" (openclaw 2026.9.6).
		HotReloadStatus string `json:"hotReloadStatus"`
	} `json:"configReload"`
}

// Channel is one messaging channel (telegram, whatsapp, …).
type Channel struct {
	Account
	Accounts map[string]Account `json:"accounts"`
}

// Account is one account of a channel; a channel's top level describes its
// default account.
type Account struct {
	AccountID  string          `json:"accountId"`
	Configured *bool           `json:"configured"`
	Enabled    *bool           `json:"enabled"`
	Running    *bool           `json:"running"`
	Probe      json.RawMessage `json:"probe"`
}

// ProbeOK tells whether the gateway's last probe of this account succeeded;
// ok is false when the gateway has not probed it.
func (a Account) ProbeOK() (result, ok bool) {
	if len(a.Probe) == 0 || string(a.Probe) == "null" {
		return false, false
	}
	var p struct {
		OK *bool `json:"ok"`
	}
	if err := json.Unmarshal(a.Probe, &p); err != nil || p.OK == nil {
		return false, false
	}
	return *p.OK, true
}

// Agent is one agent and its session store summary.
type Agent struct {
	AgentID   string `json:"agentId"`
	IsDefault bool   `json:"isDefault"`
	Heartbeat *struct {
		Enabled *bool    `json:"enabled"`
		EveryMs *float64 `json:"everyMs"`
	} `json:"heartbeat"`
	Sessions *Sessions `json:"sessions"`
}

// Sessions summarises a session store.
type Sessions struct {
	Path   string    `json:"path"`
	Count  *float64  `json:"count"`
	Recent []Session `json:"recent"`
}

// Session is one recently active session.
type Session struct {
	Key       string   `json:"key"`
	UpdatedAt *float64 `json:"updatedAt"` // unix ms
	Age       *float64 `json:"age"`       // ms, as of the payload's creation
}

// Plugins counts plugins. The fields are numbers or lists depending on the
// version; Count turns either into a number.
type Plugins struct {
	Loaded      json.RawMessage `json:"loaded"`
	Errors      json.RawMessage `json:"errors"`
	Unavailable json.RawMessage `json:"unavailable"`
}

// ModelRuntime reports whether model calls are degraded.
type ModelRuntime struct {
	Degraded *bool `json:"degraded"`
	// PendingAgents lists the agents waiting for a model (a list of ids;
	// Count reads it).
	PendingAgents json.RawMessage `json:"pendingAgents"`
}

// EventLoop is openclaw's event-loop health.
type EventLoop struct {
	Degraded    *bool    `json:"degraded"`
	DelayP99Ms  *float64 `json:"delayP99Ms"`
	DelayMaxMs  *float64 `json:"delayMaxMs"`
	Utilization *float64 `json:"utilization"`
	// DegradedSinceMs is a duration: how long the loop has been degraded;
	// null when it is not.
	DegradedSinceMs *float64 `json:"degradedSinceMs"`
	// Reasons: event_loop_delay, event_loop_utilization, cpu.
	Reasons []string `json:"reasons"`
	// CPUCoreRatio is the process' CPU use in cores (can exceed 1).
	CPUCoreRatio *float64 `json:"cpuCoreRatio"`
}

// Status is the part of openclaw's status RPC payload (operator.read) the
// exporter exports. Every field is optional.
type Status struct {
	ProcessMemory *struct {
		HeapUsedBytes  *float64 `json:"heapUsedBytes"`
		HeapTotalBytes *float64 `json:"heapTotalBytes"`
		ExternalBytes  *float64 `json:"externalBytes"`
	} `json:"processMemory"`
	Tasks *struct {
		Total    *float64 `json:"total"`
		Active   *float64 `json:"active"`
		Failures *float64 `json:"failures"`
		ByStatus *struct {
			Lost     *float64 `json:"lost"`
			TimedOut *float64 `json:"timed_out"`
		} `json:"byStatus"`
	} `json:"tasks"`
	TaskAudit *struct {
		Warnings *float64 `json:"warnings"`
		Errors   *float64 `json:"errors"`
	} `json:"taskAudit"`
}

// Count reads a JSON number, or the length of a list or object; ok is false
// for anything else.
func Count(raw json.RawMessage) (n float64, ok bool) {
	if len(raw) == 0 {
		return 0, false
	}
	if err := json.Unmarshal(raw, &n); err == nil {
		return n, true
	}
	var list []json.RawMessage
	if err := json.Unmarshal(raw, &list); err == nil {
		return float64(len(list)), true
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err == nil {
		return float64(len(obj)), true
	}
	return 0, false
}
