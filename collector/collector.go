// Package collector holds the exporter's collectors and the framework that
// runs them, one file per collector, in the style of node_exporter, with one
// addition: every collector gets the scrape's deadline as a context.
package collector

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sort"
	"sync"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/clawdbot-exporter/clawdbot_exporter/gateway"
	"github.com/clawdbot-exporter/clawdbot_exporter/gateway/prober"
)

const namespace = "clawdbot"

// Collector is one source of metrics. Update must return by the context's
// deadline; metrics it sends are kept only when it does.
type Collector interface {
	Update(ctx context.Context, ch chan<- prometheus.Metric) error
}

// Config is what collectors need to know, resolved by main from flags and
// the config file.
type Config struct {
	// Targets are the gateways as of now (a reload changes them); when
	// nil, Gateways is the fixed list.
	Targets       func() []gateway.Target
	Gateways      []gateway.Target
	ClientVersion string
	// ProcfsPath is the proc filesystem's mount point (--path.procfs);
	// tests point it at fixture trees.
	ProcfsPath string
	// SysfsPath is the sysfs mount point (--path.sysfs), for cgroup limits.
	SysfsPath string
	// LockDirs are extra directories to search for gateway lock files
	// (--lock.dir), for a gateway whose TMPDIR the exporter cannot guess.
	LockDirs []string
	// ProbeLog, when set, keeps each probe for the status page.
	ProbeLog *prober.History
	// Prober probes the gateways. Share it with everything else that probes
	// them (remediation's verification): its auth backoff is per target.
	Prober *prober.Prober
	// ProbeMaxItems caps the channels, accounts and agents of one
	// gateway's payload that get series (--collector.probe.max-items-per-kind);
	// 0 is DefaultMaxItemsPerKind.
	ProbeMaxItems int

	// locks is the lock scanner the lock and process collectors share.
	locks *sharedScanner
}

func (cfg *Config) targets() func() []gateway.Target {
	if cfg.Targets == nil {
		fixed := cfg.Gateways
		cfg.Targets = func() []gateway.Target { return fixed }
	}
	return cfg.Targets
}

func (cfg *Config) prober() *prober.Prober {
	if cfg.Prober == nil {
		cfg.Prober = &prober.Prober{ClientVersion: cfg.ClientVersion}
	}
	return cfg.Prober
}

type factory func(cfg Config, logger *slog.Logger) (Collector, error)

var (
	factories      = map[string]factory{}
	defaultEnabled = map[string]bool{}
)

func registerCollector(name string, enabled bool, f factory) {
	factories[name] = f
	defaultEnabled[name] = enabled
}

// Flags are the --collector.<name> switches.
type Flags struct {
	state           map[string]*bool
	disableDefaults *bool
	explicit        map[string]bool
}

// AddFlags adds --collector.<name> / --no-collector.<name> for every
// collector, and --collector.disable-defaults.
func AddFlags(app *kingpin.Application) *Flags {
	f := &Flags{state: map[string]*bool{}, explicit: map[string]bool{}}
	for _, name := range names() {
		help := fmt.Sprintf("Enable the %s collector (default: %s).", name, onOff(defaultEnabled[name]))
		n := name
		f.state[name] = app.Flag("collector."+name, help).
			Default(fmt.Sprint(defaultEnabled[name])).
			Action(func(*kingpin.ParseContext) error { f.explicit[n] = true; return nil }).Bool()
	}
	f.disableDefaults = app.Flag("collector.disable-defaults", "Disable every collector not explicitly enabled.").Default("false").Bool()
	return f
}

// Enabled lists the collectors to run.
func (f *Flags) Enabled() []string {
	var out []string
	for _, name := range names() {
		on := *f.state[name]
		if *f.disableDefaults && !f.explicit[name] {
			on = false
		}
		if on {
			out = append(out, name)
		}
	}
	return out
}

func names() []string {
	out := make([]string, 0, len(factories))
	for n := range factories {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func onOff(b bool) string {
	if b {
		return "enabled"
	}
	return "disabled"
}

var (
	successDesc = prometheus.NewDesc(
		prometheus.BuildFQName(namespace, "exporter", "collector_success"),
		"Whether the collector finished without error within the scrape deadline.",
		[]string{"collector"}, nil)
	durationDesc = prometheus.NewDesc(
		prometheus.BuildFQName(namespace, "exporter", "collector_duration_seconds"),
		"How long the collector took.",
		[]string{"collector"}, nil)
)

// Exporter runs the enabled collectors.
type Exporter struct {
	targets    func() []gateway.Target
	collectors map[string]Collector
	logger     *slog.Logger
	// lateGrace is how long after the deadline a collector may still
	// deliver; past it the scrape returns without it. A probe that gives up
	// at the deadline still needs a few milliseconds to report, more on a
	// busy machine.
	lateGrace time.Duration
}

// New builds the named collectors.
func New(cfg Config, enabled []string, logger *slog.Logger) (*Exporter, error) {
	e := &Exporter{collectors: map[string]Collector{}, logger: logger, lateGrace: 50 * time.Millisecond}
	cfg.prober() // one for every collector
	cfg.locks = &sharedScanner{}
	e.targets = cfg.targets()
	for _, name := range enabled {
		f, ok := factories[name]
		if !ok {
			return nil, fmt.Errorf("unknown collector %q", name)
		}
		c, err := f(cfg, logger.With("collector", name))
		if err != nil {
			return nil, fmt.Errorf("collector %s: %w", name, err)
		}
		e.collectors[name] = c
	}
	return e, nil
}

// Collectors lists the names of the collectors that run.
func (e *Exporter) Collectors() []string {
	out := make([]string, 0, len(e.collectors))
	for n := range e.collectors {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Scrape returns a prometheus.Collector that runs every collector once,
// concurrently, bounded by ctx. Register it in a registry made for one
// request: the context belongs to that request.
func (e *Exporter) Scrape(ctx context.Context) prometheus.Collector {
	var targets []gateway.Target
	if e.targets != nil {
		targets = e.targets()
	}
	return scrape{e: e, ctx: withScrape(ctx, targets)}
}

type scrape struct {
	e   *Exporter
	ctx context.Context
}

// Describe sends nothing: the metrics depend on what the gateway reports,
// so the registry treats this as an unchecked collector.
func (scrape) Describe(chan<- *prometheus.Desc) {}

type outcome struct {
	name     string
	metrics  []prometheus.Metric
	err      error
	duration time.Duration
}

func (s scrape) Collect(ch chan<- prometheus.Metric) {
	results := make(chan outcome, len(s.e.collectors))
	for name, c := range s.e.collectors {
		go func() { results <- run(s.ctx, name, c) }()
	}
	// Wait for each collector, but never past the deadline: a collector that
	// ignores its context must not hold the scrape.
	wait := context.Background()
	if d, ok := s.ctx.Deadline(); ok {
		var cancel context.CancelFunc
		wait, cancel = context.WithDeadline(context.Background(), d.Add(s.e.lateGrace))
		defer cancel()
	}
	pending := map[string]bool{}
	for name := range s.e.collectors {
		pending[name] = true
	}
	for range s.e.collectors {
		select {
		case r := <-results:
			delete(pending, r.name)
			for _, m := range r.metrics {
				ch <- m
			}
			s.report(ch, r)
		case <-wait.Done():
			for name := range pending {
				s.report(ch, outcome{name: name, err: fmt.Errorf("did not finish by the scrape deadline")})
			}
			return
		}
	}
}

func (s scrape) report(ch chan<- prometheus.Metric, r outcome) {
	success := 1.0
	if r.err != nil {
		success = 0
		s.e.logger.Error("collector failed", "collector", r.name, "duration_seconds", r.duration.Seconds(), "err", r.err)
	} else {
		s.e.logger.Debug("collector succeeded", "collector", r.name, "duration_seconds", r.duration.Seconds())
	}
	ch <- newMetric(durationDesc, prometheus.GaugeValue, r.duration.Seconds(), r.name)
	ch <- newMetric(successDesc, prometheus.GaugeValue, success, r.name)
}

// metricsBuffer is the buffer of a collector's channel: the collector
// sends runs of metrics without waiting for each to be taken, a switch
// between two goroutines per metric otherwise.
const metricsBuffer = 128

// run calls one collector, buffering its metrics so that a late collector
// never writes into a scrape that has already returned.
func run(ctx context.Context, name string, c Collector) (o outcome) {
	o.name = name
	begin := time.Now()
	mch := make(chan prometheus.Metric, metricsBuffer)
	var wg sync.WaitGroup
	wg.Go(func() {
		for m := range mch {
			o.metrics = append(o.metrics, m)
		}
	})
	defer func() {
		if p := recover(); p != nil {
			o.err = fmt.Errorf("panic: %v\n%s", p, debug.Stack())
		}
		close(mch)
		wg.Wait()
		o.duration = time.Since(begin)
	}()
	o.err = c.Update(ctx, mch)
	return o
}
