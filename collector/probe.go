package collector

import (
	"context"
	"errors"
	"log/slog"
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
		"The gateway's product (clawdbot for protocol 3, openclaw for protocol 4), protocol and version (empty when the gateway reports none).",
		"gateway", "product", "protocol", "version")
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
		"1 when GET /readyz answered 200 with ready:true; 0 when it answered otherwise or not at all; absent for gateways without /readyz (clawdbot).",
		"gateway")
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
}

func newProbeCollector(cfg Config, logger *slog.Logger) (Collector, error) {
	targets := cfg.targets()
	if len(targets()) == 0 {
		return nil, errors.New("no gateway to probe")
	}
	c := &probeCollector{
		targets:  targets,
		prober:   cfg.prober(),
		logger:   logger,
		log:      cfg.ProbeLog,
		failures: map[string]map[prober.Reason]float64{},
		last:     map[string]prober.Reason{},
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
			c.log.Add(summarize(t.Name, begin, res, err))
		})
	}
	return g.Wait()
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

	if h := res.Hello; h != nil {
		gauge(infoDesc, 1, res.Product(), strconv.Itoa(h.Protocol), res.Version())
		if h.Snapshot.UptimeMs != nil {
			gauge(uptimeDesc, *h.Snapshot.UptimeMs/1000)
		}
	}
	if r := res.Ready; r != nil && (r.Answered || res.Product() == "openclaw") {
		gauge(httpReadyDesc, boolValue(r.Ready))
	}
	if res.Health != nil {
		exportHealth(gauge, res.Health, time.Now())
	}
}

// summarize turns a probe into the status page's record.
func summarize(name string, begin time.Time, res *prober.Result, err error) prober.Record {
	p := prober.Record{Time: begin, Gateway: name, Up: err == nil, Duration: time.Since(begin), Product: res.Product(), Version: res.Version()}
	var pe *prober.ProbeError
	if errors.As(err, &pe) {
		p.Reason, p.Phase, p.Error = string(pe.Reason), pe.Phase.String(), pe.Err.Error()
	} else if err != nil {
		p.Error = err.Error()
	}
	for _, ph := range prober.Phases() {
		p.Phases = append(p.Phases, prober.PhaseTime{Name: ph.String(), Duration: res.Duration(ph)})
	}
	return p
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

func exportHealth(gauge gaugeFunc, h *prober.Health, now time.Time) {
	if h.OK != nil {
		gauge(healthOKDesc, boolValue(*h.OK))
	}
	if h.HeartbeatSeconds != nil {
		gauge(heartbeatDesc, *h.HeartbeatSeconds)
	}
	for id, ch := range h.Channels {
		accounts := ch.Accounts
		if len(accounts) == 0 {
			accounts = map[string]prober.Account{ch.AccountID: ch.Account}
		}
		for key, a := range accounts {
			account := a.AccountID
			if account == "" {
				account = key
			}
			if account == "" {
				account = "default"
			}
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
	for _, a := range h.Agents {
		if a.AgentID == "" {
			continue
		}
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
	if m := h.ModelRuntime; m != nil && m.Degraded != nil {
		gauge(modelDegradedDesc, boolValue(*m.Degraded))
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
