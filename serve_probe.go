package main

import (
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/version"

	"github.com/clawdbot-exporter/clawdbot_exporter/collector"
	"github.com/clawdbot-exporter/clawdbot_exporter/config"
	"github.com/clawdbot-exporter/clawdbot_exporter/gateway/prober"
)

// probePath is the multi-target endpoint (collector/probe_handler.go).
const probePath = "/probe"

// setupProbe serves /probe with the modules of the running configuration
// (a reload changes them; the per-target state stays). Without modules:
// every module is unknown, so the endpoint probes nothing: an exporter that
// connects wherever a query string says must be asked to.
func setupProbe(mux *http.ServeMux, f *flags, holder *config.Holder, reg prometheus.Registerer, logger *slog.Logger) {
	// Its own prober: the fleet's churn must not evict the configured
	// gateways' state, and remote gateways need no config schema.
	p := &prober.Prober{ClientVersion: version.Version}
	p.SkipSchema()
	mux.Handle(probePath, collector.NewProbeHandler(collector.ProbeHandlerOpts{
		Modules: func(name string) (collector.ProbeModule, bool) {
			m, ok := holder.Current().Modules[name]
			if !ok {
				return collector.ProbeModule{}, false
			}
			return probeModule(m), true
		},
		Prober:        p,
		TimeoutOffset: *f.timeoutOffset,
		MaxTimeout:    *f.probeTimeout,
		MaxItems:      *f.probeMaxItems,
		Registerer:    reg,
		Logger:        logger,
	}))
	if mods := holder.Current().Modules; len(mods) > 0 {
		names := make([]string, 0, len(mods))
		for n := range mods {
			names = append(names, n)
		}
		sort.Strings(names)
		logger.Info("serving /probe", "modules", strings.Join(names, ","))
	}
}

// probeModule is a config module as the handler takes it.
func probeModule(m *config.Module) collector.ProbeModule {
	s := m.Settings
	describe := fmt.Sprintf("token_file: %q\npassword_file: %q\ntls_fingerprint: %q\ntls_ca_file: %q\ntimeout: %v\nallowed_targets: %s",
		s.TokenFile, s.PasswordFile, s.TLSFingerprint, s.TLSCAFile, m.Timeout, m.Allowed)
	return collector.ProbeModule{
		Name:      m.Name,
		Target:    m.Target,
		Timeout:   m.Timeout,
		CheckHost: m.Allowed.CheckHost,
		Check:     m.Allowed.Check,
		Describe:  describe,
	}
}
