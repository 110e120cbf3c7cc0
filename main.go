// Command clawdbot_exporter exports the health of Clawdbot/OpenClaw gateways
// to Prometheus, probing them over their own WebSocket protocol.
package main

import (
	"fmt"
	"io"
	"os"
	"os/user"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/common/promslog/flag"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"
	"github.com/prometheus/exporter-toolkit/web/kingpinflag"

	"github.com/clawdbot-exporter/clawdbot_exporter/collector"
	"github.com/clawdbot-exporter/clawdbot_exporter/config"
	"github.com/clawdbot-exporter/clawdbot_exporter/gateway"
)

const exporterName = "clawdbot_exporter"

type flags struct {
	metricsPath   *string
	maxRequests   *int
	timeoutOffset *time.Duration
	probeTimeout  *time.Duration
	configFile    *string
	configCheck   *bool
	remToken      *string
	remDryRun     *bool
	procfs        *string
	maxProcs      *int
	sysfs         *string
	lockDirs      *[]string
	probeMaxItems *int
	gateway       gateway.Settings
	gatewaySet    bool
	probeJSON     *bool
	locksJSON     *bool
	removeStale   *bool
	web           *web.FlagConfig
	collectors    *collector.Flags
	log           *promslog.Config
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	app := kingpin.New(exporterName, "Prometheus exporter for Clawdbot/OpenClaw gateways: probes them over their WebSocket protocol.")
	app.UsageWriter(stdout)
	app.ErrorWriter(stderr)
	// kingpin exits the process after --help/--version; record the code
	// instead so run stays testable.
	exit := -1
	app.Terminate(func(code int) {
		if exit < 0 {
			exit = code
		}
	})
	f := &flags{log: &promslog.Config{}}
	serveCmd := app.Command("serve", "Serve metrics (the default).").Default()
	probeCmd := app.Command("probe", "Probe the gateway once, print the result, exit 0 when it is up and 1 when not: a Docker/Kubernetes health check.")
	f.probeJSON = probeCmd.Flag("json", "Print the result as JSON.").Bool()
	healthCmd := app.Command("healthcheck", "Check that the exporter answers GET /-/healthy on the address the serving exporter listens on (its --web.listen-address, read from /proc; an explicit --web.listen-address wins): the HEALTHCHECK of its container image, which has no curl.")
	pauseCmd := app.Command("pause", "Hold a PID namespace that a gateway container and the exporter join (Docker pid: \"service:…\"), so a gateway restart does not take the exporter with it; reaps orphans, exits on SIGTERM.")
	locksCmd := app.Command("locks", "List every gateway lock file with its owner's state, age and filesystem: the manual stale-lock check of docs/verified-versions.md#lock-advice in one command.")
	f.locksJSON = locksCmd.Flag("json", "Print the locks as JSON.").Bool()
	f.removeStale = locksCmd.Flag("remove-stale", "Remove locks whose owner is dead or whose pid was reused, re-checking each just before; never one whose owner lives.").Bool()

	f.metricsPath = app.Flag("web.telemetry-path", "Path under which to expose metrics.").Default("/metrics").String()
	f.maxRequests = app.Flag("web.max-requests", "Maximum number of concurrent scrapes; 0 disables the limit.").Default("40").Int()
	f.timeoutOffset = app.Flag("scrape.timeout-offset", "Subtracted from Prometheus' scrape timeout to leave time to answer.").Default("0.5s").Duration()
	f.probeTimeout = app.Flag("probe.timeout", "Upper bound of a scrape's deadline, and the deadline of the probe subcommand.").Default("5s").Duration()
	f.configFile = app.Flag("config.file", "YAML file listing several gateways (gateways: [{name, url, token_file, password_file, config_path, state_dir, profile, tls_fingerprint, tls_ca_file}]).").String()
	f.configCheck = app.Flag("config.check", "Validate --config.file (gateways and remediation), print the result and exit.").Bool()
	f.remToken = app.Flag("remediation.token-file", "File holding the bearer token Alertmanager must send to the remediation webhook.").String()
	f.remDryRun = app.Flag("remediation.dry-run", "Decide on alerts as usual but never act.").Bool()
	mark := func(*kingpin.ParseContext) error { f.gatewaySet = true; return nil }
	app.Flag("gateway.url", "Gateway WebSocket URL, ws:// or wss:// (http:// and a bare host:port are refused) (default: ws://127.0.0.1:<port from the environment or the gateway's config, else 18789>).").Action(mark).StringVar(&f.gateway.URL)
	app.Flag("gateway.name", "Value of the gateway label.").Default(gateway.DefaultName).StringVar(&f.gateway.Name)
	app.Flag("gateway.token-file", "File holding the gateway token (default: $OPENCLAW_GATEWAY_TOKEN/$CLAWDBOT_GATEWAY_TOKEN, else the gateway's config).").Action(mark).StringVar(&f.gateway.TokenFile)
	app.Flag("gateway.password-file", "File holding the gateway password (default: $*_GATEWAY_PASSWORD, else the gateway's config).").Action(mark).StringVar(&f.gateway.PasswordFile)
	app.Flag("gateway.config-path", "The gateway's own config file (clawdbot.json/openclaw.json), read for its port and credentials (default: where the gateway looks).").Action(mark).StringVar(&f.gateway.ConfigPath)
	app.Flag("gateway.state-dir", "The gateway's state directory, for its sessions and lock (default: $OPENCLAW_STATE_DIR/$CLAWDBOT_STATE_DIR, else the config file's directory).").Action(mark).StringVar(&f.gateway.StateDir)
	app.Flag("gateway.tls-fingerprint", "Pin the gateway's TLS certificate: the SHA-256 of its DER form, hex, colons optional (as openclaw's gateway.remote.tlsFingerprint). Default: with gateway.tls enabled in the gateway's config, the certificate file in its state directory is pinned.").Action(mark).StringVar(&f.gateway.TLSFingerprint)
	app.Flag("gateway.tls-ca-file", "PEM file of the CA that signed the gateway's certificate; the certificate must then name the gateway's address.").Action(mark).StringVar(&f.gateway.TLSCAFile)
	app.Flag("gateway.profile", "The gateway's profile, as given to its --profile flag: its state lives in ~/.openclaw-<profile> or ~/.clawdbot-<profile>.").Action(mark).StringVar(&f.gateway.Profile)
	f.procfs = app.Flag("path.procfs", "procfs mountpoint.").Default("/proc").String()
	// As node_exporter: a scrape is mostly waiting, and one CPU saves the
	// hand-offs between threads (13 % of a scrape's CPU, measured).
	f.maxProcs = app.Flag("runtime.gomaxprocs", "The target number of CPUs Go will run on (GOMAXPROCS); 0 keeps Go's default (all).").Envar("GOMAXPROCS").Default("1").Int()
	f.sysfs = app.Flag("path.sysfs", "sysfs mountpoint.").Default("/sys").String()
	f.lockDirs = app.Flag("lock.dir", "Extra directory to search for gateway.*.lock files, e.g. a gateway container's /tmp/clawdbot-1000 mounted into the exporter's (repeatable).").Strings()
	f.web = kingpinflag.AddFlags(app, ":9789")
	listenSet := false
	app.GetFlag("web.listen-address").Action(func(*kingpin.ParseContext) error { listenSet = true; return nil })
	f.collectors = collector.AddFlags(app)
	f.probeMaxItems = app.Flag("collector.probe.max-items-per-kind", "Most channels, accounts and agents of one gateway's payload the probe collector exports, each; the rest is counted in clawdbot_exporter_items_dropped_total.").Default(fmt.Sprint(collector.DefaultMaxItemsPerKind)).Int()
	flag.AddFlags(app, f.log)
	app.Version(version.Print(exporterName))
	app.HelpFlag.Short('h')

	cmd, err := app.Parse(args)
	if exit >= 0 {
		return exit
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", exporterName, err)
		return 2
	}
	f.log.Writer = stderr
	logger := promslog.New(f.log)

	// These two need no configuration: a health check must not fail on a
	// gateway's files.
	switch cmd {
	case pauseCmd.FullCommand():
		return pause(stdout)
	case healthCmd.FullCommand():
		return healthcheckWith(healthOptions{Addr: (*f.web.WebListenAddresses)[0], Explicit: listenSet}, stdout)
	}
	src := sources(f)
	if *f.configCheck {
		snap, err := config.Check(src)
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", configName(*f.configFile), err)
			return 1
		}
		fmt.Fprintf(stdout, "%s: OK: %d gateway(s), %d remediation target(s)\n", configName(*f.configFile), len(snap.Targets), len(snap.Remediation.Targets))
		return 0
	}
	if cmd == serveCmd.FullCommand() {
		if err := serve(f, src, logger); err != nil {
			logger.Error("exporter stopped", "err", err)
			return 1
		}
		return 0
	}
	snap, err := config.Load(src)
	if err != nil {
		logger.Error("invalid configuration", "err", err)
		return 1
	}
	targets := snap.Targets
	for _, p := range snap.Problems {
		logger.Warn("gateway files not usable", "gateway", p.Gateway, "err", p.Err)
	}
	switch cmd {
	case probeCmd.FullCommand():
		return probeOnce(targets, *f.probeTimeout, *f.probeJSON, stdout)
	case locksCmd.FullCommand():
		return listLocks(targets, *f.procfs, *f.lockDirs, *f.locksJSON, *f.removeStale, stdout, stderr)
	}
	return 0
}

// sources are the flags and the environment the configuration is loaded
// from.
func sources(f *flags) config.Sources {
	home := os.Getenv("HOME")
	if home == "" {
		if u, err := user.Current(); err == nil {
			home = u.HomeDir
		}
	}
	return config.Sources{
		Path:             *f.configFile,
		Gateway:          f.gateway,
		GatewaySet:       f.gatewaySet,
		WebhookTokenFile: *f.remToken,
		Web: config.Web{
			ListenAddresses: *f.web.WebListenAddresses,
			SystemdSocket:   *f.web.WebSystemdSocket,
			ConfigFile:      *f.web.WebConfigFile,
		},
		Env:  os.Getenv,
		Home: home,
	}
}

func configName(path string) string {
	if path == "" {
		return "flags"
	}
	return path
}
