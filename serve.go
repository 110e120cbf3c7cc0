package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"
	"github.com/prometheus/procfs"
	"gopkg.in/yaml.v3"

	"github.com/clawdbot-exporter/clawdbot_exporter/collector"
	"github.com/clawdbot-exporter/clawdbot_exporter/config"
	"github.com/clawdbot-exporter/clawdbot_exporter/gateway"
	"github.com/clawdbot-exporter/clawdbot_exporter/remediate"
	"github.com/clawdbot-exporter/clawdbot_exporter/status"
)

// loadRemediation reads and validates the remediation section of the
// config file; an absent section or file means remediation is off.
func loadRemediation(path string, targets []gateway.Target) (*remediate.Config, error) {
	off := &remediate.Config{}
	if path == "" {
		return off, nil
	}
	cfg, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	if cfg.Remediation == nil {
		return off, nil
	}
	names := make([]string, len(targets))
	for i, t := range targets {
		names[i] = t.Name
	}
	if err := cfg.Remediation.Validate(names); err != nil {
		return nil, err
	}
	return cfg.Remediation, nil
}

func serve(f *flags, targets []gateway.Target, rem *remediate.Config, logger *slog.Logger) error {
	logger.Info("starting "+exporterName, "version", version.Info(), "build_context", version.BuildContext())
	for _, t := range targets {
		logger.Info("probing gateway", "gateway", t.Name, "url", t.URL, "credentials", t.Source, "config", t.ConfigPath, "state_dir", t.StateDir)
	}
	probeLog := status.NewProbeLog(20)
	exp, err := collector.New(collector.Config{
		Gateways:      targets,
		ClientVersion: version.Version,
		ProcfsPath:    *f.procfs,
		SysfsPath:     *f.sysfs,
		LockDirs:      *f.lockDirs,
		ProbeLog:      probeLog,
	}, f.collectors.Enabled(), logger)
	if err != nil {
		return err
	}
	logger.Info("enabled collectors", "collectors", exp.Collectors())

	static := prometheus.NewRegistry()
	static.MustRegister(
		versioncollector.NewCollector(exporterName),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	mux := http.NewServeMux()
	mux.Handle(*f.metricsPath, collector.NewHandler(exp, static, collector.HandlerOpts{
		TimeoutOffset: *f.timeoutOffset,
		MaxTimeout:    *f.probeTimeout,
		MaxRequests:   *f.maxRequests,
		Logger:        logger,
	}))
	var audit func() []remediate.Decision
	if len(rem.Targets) > 0 {
		engine, err := setupRemediation(mux, f, targets, rem, static, logger)
		if err != nil {
			return err
		}
		audit = engine.Recent
	}
	mux.HandleFunc("/-/healthy", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "Healthy\n") })
	mux.HandleFunc("/-/ready", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "Ready\n") })
	if *f.metricsPath != "/" {
		landing, err := web.NewLandingPage(web.LandingConfig{
			Name:        "Clawdbot Exporter",
			Description: "Prometheus exporter for Clawdbot/OpenClaw gateways",
			Version:     version.Info(),
			Profiling:   "false", // no /debug/pprof here: no links to it
			Links: []web.LandingLinks{
				{Address: *f.metricsPath, Text: "Metrics"},
				{Address: "/-/healthy", Text: "Health"},
			},
		})
		if err != nil {
			return err
		}
		names := make([]string, len(targets))
		for i, t := range targets {
			names[i] = t.Name
		}
		var locks func() []gateway.Lock
		if fs, err := procfs.NewFS(*f.procfs); err == nil {
			locks = func() []gateway.Lock {
				return gateway.ScanLocks(fs, gateway.AllLockDirs(targets, *f.lockDirs), targets)
			}
		}
		page, err := status.NewPage(landing, names, probeLog, locks, audit)
		if err != nil {
			return err
		}
		mux.Handle("/", page)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	return web.ListenAndServe(srv, f.web, logger)
}

// setupRemediation serves the webhook and wires reloads (SIGHUP, POST
// /-/reload) of the remediation targets; actions in flight finish.
func setupRemediation(mux *http.ServeMux, f *flags, targets []gateway.Target, rem *remediate.Config, reg prometheus.Registerer, logger *slog.Logger) (*remediate.Engine, error) {
	var token []byte
	if *f.remToken != "" {
		b, err := gateway.ReadFileBounded(*f.remToken, 4096)
		if err != nil {
			return nil, fmt.Errorf("remediation token file: %w", err)
		}
		if token = []byte(strings.TrimSpace(string(b))); len(token) == 0 {
			return nil, fmt.Errorf("remediation token file %s is empty", *f.remToken)
		}
	}
	if err := checkExposure(*f.web.WebListenAddresses, *f.web.WebSystemdSocket, *f.web.WebConfigFile, len(token) > 0); err != nil {
		return nil, err
	}
	fs, err := procfs.NewFS(*f.procfs)
	if err != nil {
		return nil, err
	}
	byName := map[string]gateway.Target{}
	for _, t := range targets {
		byName[t.Name] = t
	}
	world := &remediate.LocalWorld{Gateways: byName, FS: fs, ProcRoot: *f.procfs, LockDirs: *f.lockDirs,
		Prober: &gateway.Prober{ClientVersion: version.Version}}
	metrics := remediate.NewMetrics(reg)
	engine, err := remediate.NewEngine(rem.Targets, world, metrics, logger, remediate.Options{DryRun: *f.remDryRun})
	if err != nil {
		return nil, err
	}
	handler := &remediate.Handler{Engine: func() *remediate.Engine { return engine }, Token: token, Metrics: metrics, Logger: logger}
	mux.Handle(rem.WebhookPath, handler)
	logger.Info("remediation enabled", "webhook", rem.WebhookPath, "targets", len(rem.Targets), "dry_run", *f.remDryRun, "token", len(token) > 0)

	var mu sync.Mutex
	reload := func() error {
		mu.Lock()
		defer mu.Unlock()
		next, err := loadRemediation(*f.configFile, targets)
		if err != nil {
			return err
		}
		if next.WebhookPath != rem.WebhookPath {
			logger.Warn("remediation webhook_path changes need a restart", "kept", rem.WebhookPath)
		}
		if err := engine.Reload(next.Targets); err != nil {
			return err
		}
		logger.Info("remediation reloaded", "targets", len(next.Targets))
		return nil
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		for range hup {
			if err := reload(); err != nil {
				logger.Error("reload failed; keeping the running configuration", "err", err)
			}
		}
	}()
	mux.HandleFunc("/-/reload", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "POST only", http.StatusMethodNotAllowed)
			return
		}
		if err := reload(); err != nil {
			http.Error(w, "reload failed: "+err.Error(), http.StatusInternalServerError)
			return
		}
		_, _ = io.WriteString(w, "reloaded\n")
	})
	return engine, nil
}

// checkExposure applies the gateway's own rule to the webhook: beyond
// loopback, remediation needs a bearer token, or a web config with basic
// auth or TLS client certificates.
func checkExposure(addrs []string, systemdSocket bool, webConfig string, haveToken bool) error {
	if haveToken {
		return nil
	}
	exposed := systemdSocket
	for _, a := range addrs {
		if !loopback(a) {
			exposed = true
		}
	}
	if !exposed {
		return nil
	}
	if webConfig != "" {
		b, err := gateway.ReadFileBounded(webConfig, 1<<20)
		if err != nil {
			return fmt.Errorf("web config: %w", err)
		}
		var wc struct {
			TLS *struct {
				ClientAuth string `yaml:"client_auth_type"`
			} `yaml:"tls_server_config"`
			Users map[string]string `yaml:"basic_auth_users"`
		}
		if err := yaml.Unmarshal(b, &wc); err != nil {
			return fmt.Errorf("web config: %w", err)
		}
		if len(wc.Users) > 0 || (wc.TLS != nil && wc.TLS.ClientAuth == "RequireAndVerifyClientCert") {
			return nil
		}
	}
	return errors.New("refusing to serve remediation beyond loopback without authentication: set --remediation.token-file, " +
		"or basic_auth_users / TLS client certificates in --web.config.file, or listen on 127.0.0.1")
}

func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
