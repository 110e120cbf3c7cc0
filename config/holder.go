package config

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/clawdbot-exporter/clawdbot_exporter/internal/fileio"
)

// Holder keeps the running snapshot and swaps it whole on reload, as
// blackbox_exporter's SafeConfig does: a failed reload keeps the old one.
type Holder struct {
	logger *slog.Logger
	cur    atomic.Pointer[Snapshot]

	mu        sync.Mutex // one reload at a time
	apply     []func(*Snapshot) error
	lastCheck time.Time

	lastOK   prometheus.Gauge
	lastOKAt prometheus.Gauge
}

// NewHolder loads the first snapshot; its error stops the exporter.
func NewHolder(src Sources, reg prometheus.Registerer, logger *slog.Logger) (*Holder, error) {
	s, err := Load(src)
	if err != nil {
		return nil, err
	}
	h := &Holder{
		logger: logger,
		lastOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "clawdbot_exporter_config_last_reload_successful",
			Help: "1 when the last load of the configuration (start, SIGHUP, POST /-/reload) succeeded.",
		}),
		lastOKAt: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "clawdbot_exporter_config_last_reload_success_timestamp_seconds",
			Help: "When the configuration was last loaded successfully.",
		}),
	}
	if reg != nil {
		reg.MustRegister(h.lastOK, h.lastOKAt)
	}
	h.cur.Store(s)
	h.lastOK.Set(1)
	h.lastOKAt.SetToCurrentTime()
	for _, p := range s.Problems {
		logger.Warn("gateway not usable yet; probing it anyway and picking its files up when they appear", "gateway", p.Gateway, "err", p.Err)
	}
	return h, nil
}

// OnReload registers what a new snapshot must be applied to (the
// remediation engine). A failure fails the reload before the swap.
func (h *Holder) OnReload(f func(*Snapshot) error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.apply = append(h.apply, f)
}

// Current is the running snapshot.
func (h *Holder) Current() *Snapshot { return h.cur.Load() }

// Reload loads the configuration again and swaps it in; on failure the
// running snapshot stays and the error says why.
func (h *Holder) Reload() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	old := h.cur.Load()
	s, err := Load(old.sources)
	if err == nil {
		for _, f := range h.apply {
			if err = f(s); err != nil {
				break
			}
		}
	}
	if err != nil {
		h.lastOK.Set(0)
		h.logger.Error("reload failed; keeping the running configuration", "err", err)
		return err
	}
	h.cur.Store(s)
	h.lastOK.Set(1)
	h.lastOKAt.SetToCurrentTime()
	h.logger.Info("configuration reloaded", "gateways", len(s.Targets), "remediation_targets", len(s.Remediation.Targets))
	for _, p := range s.Problems {
		h.logger.Warn("gateway not usable yet", "gateway", p.Gateway, "err", p.Err)
	}
	return nil
}

// Targets are the current gateways. When one of their own files (the
// gateway's config, the profile's directory) appeared, changed or went
// away, they are resolved again, without re-reading the exporter's file:
// a sidecar that starts before its gateway picks the gateway up.
func (h *Holder) Targets() *Snapshot {
	h.mu.Lock()
	defer h.mu.Unlock()
	if time.Since(h.lastCheck) < time.Second {
		return h.cur.Load()
	}
	h.lastCheck = time.Now()
	s := h.cur.Load()
	changed := false
	for _, w := range s.watched {
		if !w.Same(fileio.StampOf(w.Path)) {
			changed = true
			break
		}
	}
	if !changed {
		return s
	}
	next := *s
	if err := next.resolve(); err != nil {
		h.logger.Warn("gateway files changed but do not resolve; keeping the targets", "err", err)
		return s
	}
	before := map[string]bool{}
	for _, p := range s.Problems {
		before[p.Gateway] = true
	}
	for _, t := range next.Targets {
		if before[t.Name] && t.ConfigErr == nil {
			h.logger.Info("gateway files found", "gateway", t.Name, "url", t.URL, "config", t.ConfigPath)
		}
	}
	h.cur.Store(&next)
	return &next
}
