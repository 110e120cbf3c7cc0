package collector

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/clawdbot-exporter/clawdbot_exporter/gateway"
	"github.com/clawdbot-exporter/clawdbot_exporter/gateway/prober"
)

func init() {
	registerCollector("probe", true, newProbeCollector)
}

var (
	upDesc = newDesc("up",
		"1 when the gateway completed the WebSocket handshake and answered the health RPC with ok:true.", "gateway")
	phaseDesc = newDesc("probe_duration_seconds",
		"Time spent in each phase of the last probe; for a failed probe, the failing phase shows the time until the failure and later phases 0.",
		"gateway", "phase")
	failuresDesc = newDesc("probe_failures_total",
		"Probes that failed, by reason.", "gateway", "reason")
	failingDesc = newDesc("probe_failing",
		"1 for the reason the last probe failed with, 0 for the other reasons; all 0 when it succeeded.", "gateway", "reason")
	infoDesc = newDesc("gateway_info",
		"The gateway's product (clawdbot for protocol 3, openclaw for protocol 4), protocol, version and build id (empty when the gateway reports none).",
		"gateway", "product", "protocol", "version", "build_id")
	restartsDesc = newDesc("gateway_restarts_total",
		"Restarts of the gateway this exporter has observed: a new hello-ok bootId (openclaw restarts inside its process), a new process start time, or an uptime that went down; several signs of one restart count once.",
		"gateway")
	uptimeDesc = newDesc("gateway_uptime_seconds",
		"How long the gateway process has been running, as it reports.", "gateway")
	healthOKDesc = newDesc("health_ok",
		"1 when the health payload says ok:true.", "gateway")
	channelConfiguredDesc = newDesc("channel_configured",
		"1 when the channel account is configured.", "gateway", "channel", "account")
	channelEnabledDesc = newDesc("channel_enabled",
		"1 when the channel account is enabled.", "gateway", "channel", "account")
	channelRunningDesc = newDesc("channel_running",
		"1 when the gateway reports the channel account running.", "gateway", "channel", "account")
	channelProbeDesc = newDesc("channel_probe_ok",
		"1 when the gateway's last probe of the channel account succeeded; absent when it has not probed it.", "gateway", "channel", "account")
	agentSessionsDesc = newDesc("agent_sessions",
		"Sessions in the agent's session store.", "gateway", "agent")
	agentActivityDesc = newDesc("agent_last_activity_age_seconds",
		"Time since the agent's most recently updated session was updated.", "gateway", "agent")
	agentHeartbeatDesc = newDesc("agent_heartbeat_interval_seconds",
		"The agent's heartbeat interval; 0 when its heartbeat is disabled.", "gateway", "agent")
	heartbeatDesc = newDesc("heartbeat_interval_seconds",
		"The gateway's default heartbeat interval.", "gateway")
	loopP99Desc = newDesc("event_loop_delay_p99_seconds",
		"99th percentile of the gateway's event-loop delay (openclaw).", "gateway")
	loopMaxDesc = newDesc("event_loop_delay_max_seconds",
		"Maximum event-loop delay (openclaw).", "gateway")
	loopUtilDesc = newDesc("event_loop_utilization_ratio",
		"Share of time the event loop was busy, 0 to 1 (openclaw).", "gateway")
	loopDegradedDesc = newDesc("event_loop_degraded",
		"1 when the gateway reports its event loop degraded (openclaw).", "gateway")
	pluginsLoadedDesc = newDesc("plugins_loaded",
		"Plugins loaded (openclaw).", "gateway")
	pluginErrorsDesc = newDesc("plugins_load_errors",
		"Plugins that failed to load (openclaw).", "gateway")
	pluginsUnavailableDesc = newDesc("plugins_unavailable",
		"Plugins unavailable (openclaw).", "gateway")
	modelDegradedDesc = newDesc("model_runtime_degraded",
		"1 when the gateway reports its model runtime degraded (openclaw).", "gateway")
	authBackoffDesc = newDesc("probe_auth_backoff_seconds",
		"Time between two logins while the gateway refuses the credentials (doubling up to 5 minutes); probes in between only check that it answers. 0 when it accepts them.",
		"gateway")
	httpReadyDesc = newDesc("http_ready",
		"1 when GET /readyz answered 200 with ready:true; 0 when it answered otherwise or not at all (also while a gateway that once answered it is down); absent for gateways without /readyz (clawdbot).",
		"gateway")
	readyCheckDesc = newDesc("http_ready_check_failing",
		"1 for each check GET /readyz lists in failing[], 0 for the known checks it does not list (openclaw: startup-sidecars, state-database, gateway-draining, plugin-reload, internal; a failing channel by its id).",
		"gateway", "check")
	loopDegradedForDesc = newDesc("event_loop_degraded_duration_seconds",
		"How long the gateway's event loop has been degraded (openclaw's degradedSinceMs, a duration); 0 when it is not.", "gateway")
	loopReasonDesc = newDesc("event_loop_degraded_reason",
		"1 for each reason the gateway gives for a degraded event loop (event_loop_delay, event_loop_utilization, cpu, other), 0 for the others (openclaw).",
		"gateway", "reason")
	loopCPUDesc = newDesc("event_loop_cpu_core_ratio",
		"CPU the gateway process uses, in cores (can exceed 1; openclaw's eventLoop.cpuCoreRatio).", "gateway")
	modelPendingDesc = newDesc("model_runtime_pending_agents",
		"Agents waiting for the model runtime (openclaw).", "gateway")
	hotReloadDesc = newDesc("hot_reload_status",
		"1 for the gateway's config hot-reload status (active, disabled, other), 0 for the others (openclaw).", "gateway", "status")
	heapUsedDesc = newDesc("gateway_heap_used_bytes",
		"V8 heap in use, as the gateway reports it (openclaw status RPC, fetched at most once a minute).", "gateway")
	heapTotalDesc = newDesc("gateway_heap_total_bytes",
		"V8 heap allocated, as the gateway reports it (openclaw status RPC).", "gateway")
	externalMemDesc = newDesc("gateway_external_memory_bytes",
		"Memory of C++ objects bound to JavaScript objects, as the gateway reports it (openclaw status RPC).", "gateway")
	tasksTrackedDesc = newDesc("tasks_tracked",
		"Tasks in the gateway's task registry, any status (openclaw status RPC).", "gateway")
	tasksActiveDesc = newDesc("tasks_active",
		"Tasks queued or running (openclaw status RPC).", "gateway")
	tasksFailuresDesc = newDesc("tasks_failures",
		"Tasks in the registry that failed (openclaw status RPC).", "gateway")
	tasksLostDesc = newDesc("tasks_lost",
		"Tasks in the registry whose runner was lost (openclaw status RPC).", "gateway")
	tasksTimedOutDesc = newDesc("tasks_timed_out",
		"Tasks in the registry that timed out (openclaw status RPC).", "gateway")
	taskAuditWarningsDesc = newDesc("task_audit_warnings",
		"Warnings of the gateway's task audit (stale, inconsistent tasks; openclaw status RPC).", "gateway")
	taskAuditErrorsDesc = newDesc("task_audit_errors",
		"Errors of the gateway's task audit (openclaw status RPC).", "gateway")
	statusAgeDesc = newDesc("status_age_seconds",
		"Age of the status RPC payload the status metrics come from (fetched at most once a minute per gateway; openclaw).", "gateway")
)

// probeCollectorName is this collector's name in
// clawdbot_exporter_items_dropped_total.
const probeCollectorName = "probe"

// DefaultMaxItemsPerKind caps the channels, the accounts and the agents of
// one gateway's payload that get series: far above a real gateway, far
// below what would bloat /metrics (100k channels gave 9.6 MB).
const DefaultMaxItemsPerKind = 500

// Checks openclaw 2026.9.6's /readyz can list (a failing channel is listed
// by its id, capped like channels).
var knownReadyChecks = []string{"startup-sidecars", "state-database", "gateway-draining", "plugin-reload", "internal"}

var (
	loopReasons     = []string{"event_loop_delay", "event_loop_utilization", "cpu"}
	hotReloadStates = []string{"active", "disabled"}
)

func newDesc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(namespace, "", name), help, labels, nil)
}

type probeCollector struct {
	targets func() []gateway.Target
	prober  *prober.Prober
	logger  *slog.Logger
	log     *prober.History

	mu       sync.Mutex
	failures map[string]map[prober.Reason]float64
	last     map[string]prober.Reason // "" = up; for logging state changes
	// maxItems caps the channels, accounts and agents exported per
	// gateway; dropped counts what the cap cut.
	maxItems int
	dropped  *dropCounter
}

func newProbeCollector(cfg Config, logger *slog.Logger) (Collector, error) {
	// No gateways is a central prober's configuration (its gateways come
	// to /probe), or one a reload fills.
	targets := cfg.targets()
	c := &probeCollector{
		targets:  targets,
		prober:   cfg.prober(),
		logger:   logger,
		log:      cfg.ProbeLog,
		failures: map[string]map[prober.Reason]float64{},
		last:     map[string]prober.Reason{},
		maxItems: cfg.ProbeMaxItems,
		dropped:  newDropCounter(probeCollectorName, "channel", "account", "agent", "duplicate_agent", "ready_check"),
	}
	if c.maxItems <= 0 {
		c.maxItems = DefaultMaxItemsPerKind
	}
	return c, nil
}

// Update probes every gateway concurrently within the one deadline.
func (c *probeCollector) Update(ctx context.Context, ch chan<- prometheus.Metric) error {
	var g safeGroup // a panic fails the collector, not the exporter
	for _, t := range scrapeTargets(ctx, c.targets) {
		g.Go(func() {
			begin := time.Now()
			res, err := c.prober.Probe(ctx, t)
			c.export(ch, t, res, err)
			c.log.Add(prober.Summarize(t.Name, prober.SourceScrape, begin, res, err))
		})
	}
	err := g.Wait()
	c.dropped.collect(ch)
	return err
}

func (c *probeCollector) export(ch chan<- prometheus.Metric, t gateway.Target, res *prober.Result, err error) {
	name := t.Name
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- newMetric(d, prometheus.GaugeValue, v, append([]string{name}, labels...)...)
	}
	var reason prober.Reason
	var pe *prober.ProbeError
	if errors.As(err, &pe) {
		reason = pe.Reason
	} else if err != nil {
		reason = prober.ReasonRPC
	}
	c.record(name, reason, err)

	gauge(upDesc, boolValue(err == nil))
	gauge(authBackoffDesc, c.prober.AuthBackoff(t).Seconds())
	for _, p := range prober.Phases() {
		gauge(phaseDesc, res.Duration(p).Seconds(), p.String())
	}
	c.mu.Lock()
	for _, r := range prober.Reasons() {
		ch <- newMetric(failuresDesc, prometheus.CounterValue, c.failures[name][r], name, string(r))
	}
	c.mu.Unlock()
	for _, r := range prober.Reasons() {
		gauge(failingDesc, boolValue(r == reason), string(r))
	}

	restarts, _ := c.prober.Restarts(t)
	ch <- newMetric(restartsDesc, prometheus.CounterValue, float64(restarts), name)

	if h := res.Hello; h != nil {
		gauge(infoDesc, 1, res.Product(), strconv.Itoa(h.Protocol), res.Version(), res.BuildID())
		if h.Snapshot.UptimeMs != nil {
			gauge(uptimeDesc, *h.Snapshot.UptimeMs/1000)
		}
	}
	if r := res.Ready; r != nil {
		gauge(httpReadyDesc, boolValue(r.Ready))
		if r.Answered {
			c.exportReadyChecks(gauge, r.Failing)
		}
	}
	now := time.Now()
	if res.Health != nil {
		c.exportHealth(gauge, res.Health, now)
	}
	if st := res.Status; st != nil {
		exportStatus(gauge, st)
		gauge(statusAgeDesc, max(now.Sub(res.StatusAt).Seconds(), 0))
	}
}

// exportReadyChecks: every known check 0 or 1, and the others /readyz
// lists (channel ids) as 1, capped.
func (c *probeCollector) exportReadyChecks(gauge gaugeFunc, failing []string) {
	seen := map[string]bool{}
	for _, k := range knownReadyChecks {
		seen[k] = true
	}
	var extra []string
	for _, f := range failing {
		if v := labelValue(f); !seen[v] {
			seen[v] = true
			extra = append(extra, v)
		}
	}
	sort.Strings(extra)
	if len(extra) > c.maxItems {
		c.dropped.add("ready_check", len(extra)-c.maxItems)
		extra = extra[:c.maxItems]
	}
	for _, k := range knownReadyChecks {
		gauge(readyCheckDesc, boolValue(slices.Contains(failing, k)), k)
	}
	for _, k := range extra {
		gauge(readyCheckDesc, 1, k)
	}
}

func exportStatus(gauge gaugeFunc, st *prober.Status) {
	opt := func(d *prometheus.Desc, v *float64) {
		if v != nil {
			gauge(d, *v)
		}
	}
	if m := st.ProcessMemory; m != nil {
		opt(heapUsedDesc, m.HeapUsedBytes)
		opt(heapTotalDesc, m.HeapTotalBytes)
		opt(externalMemDesc, m.ExternalBytes)
	}
	if t := st.Tasks; t != nil {
		opt(tasksTrackedDesc, t.Total)
		opt(tasksActiveDesc, t.Active)
		opt(tasksFailuresDesc, t.Failures)
		if b := t.ByStatus; b != nil {
			opt(tasksLostDesc, b.Lost)
			opt(tasksTimedOutDesc, b.TimedOut)
		}
	}
	if a := st.TaskAudit; a != nil {
		opt(taskAuditWarningsDesc, a.Warnings)
		opt(taskAuditErrorsDesc, a.Errors)
	}
}

// record counts a failure and logs when the gateway's state changes, not on
// every scrape.
func (c *probeCollector) record(name string, reason prober.Reason, err error) {
	c.mu.Lock()
	prev, seen := c.last[name]
	if !seen {
		prev = "init"
		c.failures[name] = map[prober.Reason]float64{}
	}
	c.last[name] = reason
	if reason != "" {
		c.failures[name][reason]++
	}
	c.mu.Unlock()
	switch reason {
	case prev:
		if err != nil {
			c.logger.Debug("gateway probe failed", "gateway", name, "reason", reason, "err", err)
		}
	case "":
		c.logger.Info("gateway is up", "gateway", name)
	default:
		c.logger.Warn("gateway probe failed", "gateway", name, "reason", reason, "err", err)
	}
}

type gaugeFunc func(d *prometheus.Desc, v float64, labels ...string)

// exportHealth exports the health payload with at most maxItems channels,
// accounts and agents (in sorted order, so the same ones every scrape), each
// label set once: a payload is hostile input.
func (c *probeCollector) exportHealth(gauge gaugeFunc, h *prober.Health, now time.Time) {
	if h.OK != nil {
		gauge(healthOKDesc, boolValue(*h.OK))
	}
	if h.HeartbeatSeconds != nil {
		gauge(heartbeatDesc, *h.HeartbeatSeconds)
	}
	channels := slices.Sorted(maps.Keys(h.Channels))
	if len(channels) > c.maxItems {
		c.dropped.add("channel", len(channels)-c.maxItems)
		channels = channels[:c.maxItems]
	}
	accountsLeft := c.maxItems
	seen := map[[2]string]bool{}
	for _, id := range channels {
		ch := h.Channels[id]
		accounts := ch.Accounts
		if len(accounts) == 0 {
			accounts = map[string]prober.Account{ch.AccountID: ch.Account}
		}
		if accountsLeft == 0 {
			c.dropped.add("account", len(accounts))
			continue
		}
		for _, key := range slices.Sorted(maps.Keys(accounts)) {
			a := accounts[key]
			account := a.AccountID
			if account == "" {
				account = key
			}
			if account == "" {
				account = "default"
			}
			labels := [2]string{labelValue(id), labelValue(account)}
			if seen[labels] {
				continue
			}
			if accountsLeft == 0 {
				c.dropped.add("account", 1)
				continue
			}
			seen[labels] = true
			accountsLeft--
			if a.Configured != nil {
				gauge(channelConfiguredDesc, boolValue(*a.Configured), id, account)
			}
			if a.Enabled != nil {
				gauge(channelEnabledDesc, boolValue(*a.Enabled), id, account)
			}
			if a.Running != nil {
				gauge(channelRunningDesc, boolValue(*a.Running), id, account)
			}
			if ok, known := a.ProbeOK(); known {
				gauge(channelProbeDesc, boolValue(ok), id, account)
			}
		}
	}
	c.exportAgents(gauge, h.Agents, now)
	if p := h.Plugins; p != nil {
		if n, ok := prober.Count(p.Loaded); ok {
			gauge(pluginsLoadedDesc, n)
		}
		if n, ok := prober.Count(p.Errors); ok {
			gauge(pluginErrorsDesc, n)
		}
		if n, ok := prober.Count(p.Unavailable); ok {
			gauge(pluginsUnavailableDesc, n)
		}
	}
	if m := h.ModelRuntime; m != nil {
		if m.Degraded != nil {
			gauge(modelDegradedDesc, boolValue(*m.Degraded))
		}
		if n, ok := prober.Count(m.PendingAgents); ok {
			gauge(modelPendingDesc, n)
		}
	}
	if r := h.ConfigReload; r != nil && r.HotReloadStatus != "" {
		other := !slices.Contains(hotReloadStates, r.HotReloadStatus)
		for _, s := range hotReloadStates {
			gauge(hotReloadDesc, boolValue(s == r.HotReloadStatus), s)
		}
		gauge(hotReloadDesc, boolValue(other), "other")
	}
	if l := h.EventLoop; l != nil {
		if l.DelayP99Ms != nil {
			gauge(loopP99Desc, *l.DelayP99Ms/1000)
		}
		if l.DelayMaxMs != nil {
			gauge(loopMaxDesc, *l.DelayMaxMs/1000)
		}
		if l.Utilization != nil {
			gauge(loopUtilDesc, *l.Utilization)
		}
		if l.Degraded != nil {
			gauge(loopDegradedDesc, boolValue(*l.Degraded))
			since := 0.0
			if *l.Degraded && l.DegradedSinceMs != nil && *l.DegradedSinceMs > 0 {
				since = *l.DegradedSinceMs / 1000
			}
			gauge(loopDegradedForDesc, since)
		}
		if l.CPUCoreRatio != nil {
			gauge(loopCPUDesc, *l.CPUCoreRatio)
		}
		if l.Reasons != nil || l.Degraded != nil {
			other := false
			for _, r := range l.Reasons {
				other = other || !slices.Contains(loopReasons, r)
			}
			for _, r := range loopReasons {
				gauge(loopReasonDesc, boolValue(slices.Contains(l.Reasons, r)), r)
			}
			gauge(loopReasonDesc, boolValue(other), "other")
		}
	}
}

// exportAgents exports each agent id once: a duplicate id (the first one
// in the payload's order wins, the others are counted as dropped) would
// otherwise fail the scrape with a duplicate series.
func (c *probeCollector) exportAgents(gauge gaugeFunc, agents []prober.Agent, now time.Time) {
	seen := map[string]bool{}
	kept := 0
	for _, a := range agents {
		if a.AgentID == "" {
			continue
		}
		id := labelValue(a.AgentID)
		if seen[id] {
			c.dropped.add("duplicate_agent", 1)
			continue
		}
		if kept == c.maxItems {
			c.dropped.add("agent", 1)
			continue
		}
		seen[id] = true
		kept++
		if hb := a.Heartbeat; hb != nil {
			switch {
			case hb.Enabled != nil && !*hb.Enabled:
				gauge(agentHeartbeatDesc, 0, a.AgentID)
			case hb.EveryMs != nil:
				gauge(agentHeartbeatDesc, *hb.EveryMs/1000, a.AgentID)
			}
		}
		s := a.Sessions
		if s == nil {
			continue
		}
		if s.Count != nil {
			gauge(agentSessionsDesc, *s.Count, a.AgentID)
		}
		if age, ok := lastActivityAge(s.Recent, now); ok {
			gauge(agentActivityDesc, age, a.AgentID)
		}
	}
}

// lastActivityAge is the age of the most recent session. updatedAt is
// absolute, so it stays right although the gateway caches health for 60 s;
// age is the fallback.
func lastActivityAge(recent []prober.Session, now time.Time) (float64, bool) {
	best, found := 0.0, false
	for _, s := range recent {
		var age float64
		switch {
		case s.UpdatedAt != nil:
			age = float64(now.UnixMilli())/1000 - *s.UpdatedAt/1000
		case s.Age != nil:
			age = *s.Age / 1000
		default:
			continue
		}
		if age < 0 {
			age = 0
		}
		if !found || age < best {
			best, found = age, true
		}
	}
	return best, found
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
