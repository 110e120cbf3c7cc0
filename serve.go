package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"
	"github.com/prometheus/procfs"

	"github.com/clawdbot-exporter/clawdbot_exporter/collector"
	"github.com/clawdbot-exporter/clawdbot_exporter/config"
	"github.com/clawdbot-exporter/clawdbot_exporter/gateway"
	"github.com/clawdbot-exporter/clawdbot_exporter/gateway/lockfile"
	"github.com/clawdbot-exporter/clawdbot_exporter/gateway/prober"
	"github.com/clawdbot-exporter/clawdbot_exporter/internal/logrepeat"
	"github.com/clawdbot-exporter/clawdbot_exporter/remediate"
	"github.com/clawdbot-exporter/clawdbot_exporter/status"
)

// defaultGOGC is the exporter's GOGC unless the environment sets one.
const defaultGOGC = 50

func serve(f *flags, src config.Sources, logger *slog.Logger) error {
	logger.Info("starting "+exporterName, "version", version.Info(), "build_context", version.BuildContext())
	if *f.maxProcs > 0 {
		runtime.GOMAXPROCS(*f.maxProcs)
	}
	if os.Getenv("GOGC") == "" {
		// The live heap (about 1.3 MiB beside one gateway) is under the
		// runtime's 4 MiB floor, so Go's default of 100 lets 4 MiB of
		// garbage pile up between collections; 50 halves the floor: 2 MiB
		// less RSS for 10-15 % more CPU per scrape (README, Memory).
		debug.SetGCPercent(defaultGOGC)
	}
	logger.Debug("go runtime", "GOMAXPROCS", runtime.GOMAXPROCS(0))
	static := prometheus.NewRegistry()
	static.MustRegister(
		versioncollector.NewCollector(exporterName),
		collectors.NewGoCollector(),
		collector.NewSelfProcessCollector(),
	)
	holder, err := config.NewHolder(src, static, logger)
	if err != nil {
		return err
	}
	snap := holder.Current()
	for _, t := range snap.Targets {
		logger.Info("probing gateway", "gateway", t.Name, "url", t.URL, "credentials", t.Source, "config", t.ConfigPath, "state_dir", t.StateDir)
	}
	targets := func() []gateway.Target { return holder.Targets().Targets }
	names := func() []string {
		ts := targets()
		out := make([]string, len(ts))
		for i, t := range ts {
			out[i] = t.Name
		}
		return out
	}
	probeLog := prober.NewHistory(20)
	// One prober for scrapes and remediation: its auth backoff is per
	// gateway, whoever probes.
	probe := &prober.Prober{ClientVersion: version.Version}
	exp, err := collector.New(collector.Config{
		Targets:       targets,
		Prober:        probe,
		ClientVersion: version.Version,
		ProcfsPath:    *f.procfs,
		SysfsPath:     *f.sysfs,
		LockDirs:      *f.lockDirs,
		ProbeLog:      probeLog,
		ProbeMaxItems: *f.probeMaxItems,
	}, f.collectors.Enabled(), logger)
	if err != nil {
		return err
	}
	logger.Info("enabled collectors", "collectors", exp.Collectors())

	mux := http.NewServeMux()
	mux.Handle(*f.metricsPath, collector.NewHandler(exp, static, collector.HandlerOpts{
		TimeoutOffset: *f.timeoutOffset,
		MaxTimeout:    *f.probeTimeout,
		MaxRequests:   *f.maxRequests,
		Logger:        logger,
	}))
	engine, world, err := setupRemediation(mux, f, holder, targets, probe, probeLog, static, logger)
	if err != nil {
		return err
	}
	setupControl(mux, holder, engine, logger)
	setupProbe(mux, f, holder, static, logger)
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
		src := status.Sources{
			Gateways: names,
			Probes:   probeLog,
			Problems: func() []status.Problem {
				var out []status.Problem
				for _, p := range holder.Current().Problems {
					if p.Err != nil {
						out = append(out, status.Problem{Gateway: p.Gateway, Err: p.Err.Error()})
					}
				}
				return out
			},
			Remediation: func() []remediate.Decision {
				if len(holder.Current().Remediation.Targets) == 0 {
					return nil
				}
				return engine.Recent()
			},
			Targets: engine.Status,
			Probe: func(ctx context.Context, gw string) prober.Record {
				return world.ProbeRecord(ctx, gw, prober.SourceView)
			},
		}
		if fs, err := procfs.NewFS(*f.procfs); err == nil {
			src.Locks = func(ctx context.Context) lockfile.Result {
				ts := targets()
				return lockfile.ScanContext(ctx, fs, lockfile.AllDirs(ts, *f.lockDirs), ts, lockfile.Options{ProcRoot: *f.procfs})
			}
		}
		// Bounded like /metrics: the page needs no authentication.
		page, err := status.NewPage(landing, src, status.Limits{Timeout: *f.probeTimeout, MaxRequests: *f.maxRequests})
		if err != nil {
			return err
		}
		mux.Handle("/", page)
	}
	return web.ListenAndServe(newServer(mux, *f.probeTimeout, logger), f.web, logger)
}

// Limits on what one client may hold: every path answers anyone who
// reaches the port, authenticated or not (issue 10: 200 stalled webhook
// connections were all open after 60 s). A stalled client is dropped within
// 20 s, or --probe.timeout + 10 s while it does not read its answer.
const (
	readHeaderTimeout = 10 * time.Second
	// readTimeout covers the whole request, body included; a webhook body
	// is at most 1 MiB, seconds on any link Alertmanager is on.
	readTimeout = 20 * time.Second
	// idleTimeout is how long a keep-alive connection waits for its next
	// request; Prometheus reconnects when it has gone.
	idleTimeout    = 20 * time.Second
	maxHeaderBytes = 64 << 10
	// writeSlack is the time beyond the longest scrape deadline
	// (--probe.timeout) that an answer may take to be written.
	writeSlack = 10 * time.Second
)

// newServer serves h with those limits; the write timeout follows the
// longest scrape deadline so that no scrape is cut.
func newServer(h http.Handler, probeTimeout time.Duration, logger *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      probeTimeout + writeSlack,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		// net/http's own complaints (a TLS handshake from a port scanner)
		// come from clients: counted, not one line each.
		ErrorLog: log.New(serverErrors{logrepeat.New(logger, remediate.RefusalLogWindow)}, "", 0),
	}
}

// serverErrors passes net/http's log lines to a logrepeat.Logger, keyed by
// their text up to the client's address.
type serverErrors struct{ l *logrepeat.Logger }

func (s serverErrors) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	key, _, _ := strings.Cut(msg, " from ")
	if len(key) > 60 {
		key = key[:60]
	}
	s.l.Warn(key, "http server", "err", msg)
	return len(p), nil
}

// setupRemediation builds the engine (with no targets when remediation is
// off: a reload may add them) and serves its webhook at the path the start
// configured.
func setupRemediation(mux *http.ServeMux, f *flags, holder *config.Holder, targets func() []gateway.Target, probe *prober.Prober, probeLog *prober.History, reg prometheus.Registerer, logger *slog.Logger) (*remediate.Engine, *remediate.LocalWorld, error) {
	fs, err := procfs.NewFS(*f.procfs)
	if err != nil {
		return nil, nil, err
	}
	world := &remediate.LocalWorld{Gateways: targets, FS: fs, ProcRoot: *f.procfs, LockDirs: *f.lockDirs, Prober: probe, History: probeLog}
	metrics := remediate.NewMetrics(reg)
	snap := holder.Current()
	// Notifications live as long as the exporter; on SIGTERM what is
	// queued is lost (a restart of the exporter is no action).
	notifier := remediate.NewNotifiers(reg, logger)
	engine, err := remediate.NewEngine(snap.Remediation.Targets, world, metrics, logger,
		remediate.Options{DryRun: *f.remDryRun, ProbeTimeout: *f.probeTimeout, Notifier: notifier})
	if err != nil {
		return nil, nil, err
	}
	reg.MustRegister(remediate.NewSupervisorCollector(func() []remediate.Target { return holder.Current().Remediation.Targets }, logger))
	// A signal action whose supervisor would leave the gateway down is
	// only known from the live system: warn in the background.
	warn := func(ts []remediate.Target) {
		go func() {
			defer func() { _ = recover() }()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			remediate.WarnSignalSupervisors(ctx, ts, world, logger)
		}()
	}
	warn(snap.Remediation.Targets)
	path := snap.Remediation.WebhookPath
	holder.OnReload(func(next *config.Snapshot) error {
		if next.Remediation.WebhookPath != path {
			logger.Warn("remediation webhook_path changes need a restart", "kept", path)
		}
		if err := engine.Reload(next.Remediation.Targets); err != nil {
			return err
		}
		warn(next.Remediation.Targets)
		return nil
	})
	mux.Handle(path, &remediate.Handler{
		Engine:  engine,
		Token:   func() []byte { return webhookToken(holder.Current(), logger) },
		Enabled: func() bool { return len(holder.Current().Remediation.Targets) > 0 },
		Metrics: metrics,
		Logger:  logger,
	})
	if n := len(snap.Remediation.Targets); n > 0 {
		logger.Info("remediation enabled", "webhook", path, "targets", n, "dry_run", *f.remDryRun, "token", snap.WebhookToken != nil)
	}
	for _, t := range snap.Remediation.Targets {
		if t.Watch != nil {
			logger.Info("watching gateway", "target", t.Name, "gateway", t.Gateway, "interval", t.Watch.Interval.D(), "after", t.Watch.After)
		}
	}
	// The loops live as long as the exporter.
	engine.StartWatching(context.Background(), world)
	return engine, world, nil
}

// webhookToken is the token as its file holds it now.
func webhookToken(s *config.Snapshot, logger *slog.Logger) []byte {
	if s.WebhookToken == nil {
		return nil
	}
	tok, err := s.WebhookToken.Get()
	if err != nil {
		logger.Warn("remediation token file unreadable; using its last value", "path", s.WebhookToken.Path(), "err", err)
	}
	return []byte(tok.Reveal())
}

// setupControl serves the endpoints that change the exporter's state:
// reload (also on SIGHUP) and the breaker's reset.
func setupControl(mux *http.ServeMux, holder *config.Holder, engine *remediate.Engine, logger *slog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		for range hup {
			func() {
				defer func() {
					if p := recover(); p != nil {
						logger.Error("reload panicked", "panic", p)
					}
				}()
				_ = holder.Reload() // logged by the holder
			}()
		}
	}()
	mux.Handle("/-/reload", control(holder, logger, func(w http.ResponseWriter, _ *http.Request) {
		if err := holder.Reload(); err != nil {
			// The reason (paths, YAML) is for the log, not the caller.
			http.Error(w, "reload failed; the exporter's log says why", http.StatusInternalServerError)
			return
		}
		_, _ = io.WriteString(w, "reloaded\n")
	}))
	mux.Handle("/-/remediation/reset", control(holder, logger, func(w http.ResponseWriter, r *http.Request) {
		target := r.URL.Query().Get("target")
		reset, err := engine.Reset(target)
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		logger.Warn("remediation breaker reset by request", "target", target, "was_open", reset, "remote", r.RemoteAddr)
		_, _ = fmt.Fprintf(w, "reset %d open breaker(s)\n", len(reset))
	}))
}

// control guards an endpoint that changes state: POST only, never from a
// browser page (an Origin header), and authenticated: the webhook token
// when one is configured, the web config's basic auth or client
// certificates when those are (they already cover every path), else only
// from loopback.
func control(holder *config.Holder, logger *slog.Logger, next http.HandlerFunc) http.Handler {
	refused := logrepeat.New(logger, remediate.RefusalLogWindow)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := holder.Current()
		code, why := 0, ""
		switch {
		case r.Method != http.MethodPost:
			code, why = http.StatusMethodNotAllowed, "POST only"
		case r.Header.Get("Origin") != "":
			code, why = http.StatusForbidden, "cross-origin requests are refused"
		case s.WebhookToken != nil:
			if !remediate.BearerOK(r, webhookToken(s, logger)) {
				code, why = http.StatusUnauthorized, "missing or wrong bearer token"
			}
		case s.WebAuthenticates():
		case !loopbackPeer(r.RemoteAddr):
			code, why = http.StatusForbidden, "only from loopback without --remediation.token-file or web config authentication"
		}
		if code != 0 {
			refused.Warn(strconv.Itoa(code), "control request refused", "path", r.URL.Path, "code", code, "reason", why, "remote", r.RemoteAddr)
			http.Error(w, why, code)
			return
		}
		next(w, r)
	})
}

func loopbackPeer(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
