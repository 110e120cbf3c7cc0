package collector

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"

	"github.com/clawdbot-exporter/clawdbot_exporter/gateway"
	"github.com/clawdbot-exporter/clawdbot_exporter/gateway/prober"
	"github.com/clawdbot-exporter/clawdbot_exporter/internal/lru"
	"github.com/clawdbot-exporter/clawdbot_exporter/internal/text"
)

// The /probe endpoint is the multi-target exporter pattern of
// blackbox_exporter: Prometheus discovers the gateways and scrapes
// /probe?target=<ws(s) URL or host:port>&module=<name>, and each scrape is
// one probe of that gateway, answered with the probe collector's metrics
// for it alone. Local-state collectors (lock, process, sessions, config)
// read this host's files and processes, which are not the remote
// gateway's: they do not run here.
//
// Series carry gateway="" (that is, no gateway label): the scrape's
// relabelling sets instance and gateway from the target, as the mixin
// expects, without an exported_gateway clash.

// ProbeModule is one module of the configuration, as the handler needs it
// (the collectors do not import config).
type ProbeModule struct {
	Name string
	// Target holds the credentials and TLS settings; the handler sets the
	// URL from the request.
	Target gateway.Target
	// Timeout caps the probe below the scrape deadline; 0: none.
	Timeout time.Duration
	// CheckHost refuses, before any lookup, a host the module cannot allow
	// whatever its addresses; Check is the whole rule, on the host and
	// every address it resolved to.
	CheckHost func(host string) error
	Check     func(host string, addrs []netip.Addr) error
	// Describe is the module's configuration for ?debug=true (no secret).
	Describe string
}

// Resolver looks a host's addresses up (net.DefaultResolver; tests fake
// it).
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// ProbeHandlerOpts configure the /probe handler.
type ProbeHandlerOpts struct {
	// Modules looks a module up by name, in the running configuration.
	Modules func(name string) (ProbeModule, bool)
	// Prober probes; nil means a new one that keeps MaxTargets targets'
	// state and fetches no config schema. Not the /metrics prober: the
	// fleet's churn must not evict the configured gateways' state.
	Prober *prober.Prober
	// TimeoutOffset and MaxTimeout: as for /metrics (ScrapeTimeout).
	TimeoutOffset time.Duration
	MaxTimeout    time.Duration
	// MaxInFlight bounds the probes running at once; beyond it a request
	// is answered 503 at once (DefaultMaxProbesInFlight when 0).
	MaxInFlight int
	// MaxTargets bounds the per-target state (failure counters, auth
	// backoff, restart counter, caches): prober.DefaultMaxTargets when 0.
	MaxTargets int
	// MaxItems caps channels, accounts and agents per payload, as for
	// /metrics (DefaultMaxItemsPerKind when 0).
	MaxItems int
	// Registerer takes the endpoint's own metrics (the exporter's
	// /metrics registry); nil: none.
	Registerer prometheus.Registerer
	Resolver   Resolver
	Logger     *slog.Logger
}

// DefaultMaxProbesInFlight: a probe holds a goroutine, one or two sockets
// and a few hundred kB at most; 1,000 gateways at a 15 s interval keep a
// handful in flight while they answer, and at most some 700 while all of
// them time out.
const DefaultMaxProbesInFlight = 1000

const (
	// maxTargetLen bounds the target parameter.
	maxTargetLen = 2048
	// maxAddrs bounds the addresses a target may resolve to; all are
	// checked, the probe tries them in order.
	maxAddrs = 16
)

// Results of clawdbot_exporter_probe_requests_total.
const (
	probeResultProbed        = "probed"
	probeResultBadRequest    = "bad_request"
	probeResultUnknownModule = "unknown_module"
	probeResultForbidden     = "forbidden"
	probeResultOverloaded    = "overloaded"
)

type probeHandler struct {
	opts     ProbeHandlerOpts
	prober   *prober.Prober
	inFlight chan struct{}
	dropped  *dropCounter
	requests *prometheus.CounterVec

	mu    sync.Mutex
	fleet lru.Map[*fleetEntry]
}

// fleetEntry is what the probe collector keeps per target between scrapes:
// its failure counters and last reason (for logging changes). Bounded like
// the prober's state: an evicted target's counters start again at 0.
type fleetEntry struct {
	mu       sync.Mutex
	failures map[prober.Reason]float64
	last     prober.Reason
	seen     bool
}

// NewProbeHandler serves /probe.
func NewProbeHandler(opts ProbeHandlerOpts) http.Handler {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Resolver == nil {
		opts.Resolver = net.DefaultResolver
	}
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = DefaultMaxProbesInFlight
	}
	if opts.MaxItems <= 0 {
		opts.MaxItems = DefaultMaxItemsPerKind
	}
	h := &probeHandler{
		opts:     opts,
		prober:   opts.Prober,
		inFlight: make(chan struct{}, opts.MaxInFlight),
		dropped:  newDropCounter("probe_endpoint", "channel", "account", "agent", "duplicate_agent", "ready_check"),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "exporter", Name: "probe_requests_total",
			Help: "Requests to /probe by module and result: probed (whatever the gateway answered), bad_request (no or invalid target), unknown_module, forbidden (not in the module's allowed_targets), overloaded (too many probes in flight: 503). Unknown modules count under module=\"\".",
		}, []string{"module", "result"}),
	}
	if h.prober == nil {
		h.prober = &prober.Prober{}
		h.prober.SkipSchema()
	}
	h.prober.SetMaxTargets(opts.MaxTargets)
	h.fleet.SetMax(opts.MaxTargets)
	if r := opts.Registerer; r != nil {
		r.MustRegister(h.requests, dropCollector{h.dropped},
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Namespace: namespace, Subsystem: "exporter", Name: "probe_in_flight",
				Help: "Probes of /probe running now.",
			}, func() float64 { return float64(len(h.inFlight)) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Namespace: namespace, Subsystem: "exporter", Name: "probe_targets_kept",
				Help: "Targets of /probe whose state (failure and restart counters, auth backoff) the exporter keeps; the least recently probed is forgotten beyond the bound, its counters starting again at 0.",
			}, func() float64 { h.mu.Lock(); defer h.mu.Unlock(); return float64(h.fleet.Len()) }),
		)
	}
	return h
}

func (h *probeHandler) fail(w http.ResponseWriter, module, result string, code int, msg string) {
	h.requests.WithLabelValues(module, result).Inc()
	http.Error(w, msg, code)
}

func (h *probeHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "GET only", http.StatusMethodNotAllowed)
		return
	}
	q := r.URL.Query()
	name := q.Get("module")
	if name == "" {
		name = "default"
	}
	mod, ok := h.opts.Modules(name)
	if !ok {
		h.fail(w, "", probeResultUnknownModule, http.StatusBadRequest, fmt.Sprintf("unknown module %q", text.TruncateUTF8(name, 64)))
		return
	}
	raw := q.Get("target")
	if raw == "" {
		h.fail(w, name, probeResultBadRequest, http.StatusBadRequest, "target parameter is missing")
		return
	}
	if len(raw) > maxTargetLen {
		h.fail(w, name, probeResultBadRequest, http.StatusBadRequest, "target parameter is too long")
		return
	}
	u, err := gateway.ParseURLWith(raw, gateway.URLOptions{BareHostPort: true})
	if err != nil {
		h.fail(w, name, probeResultBadRequest, http.StatusBadRequest, err.Error())
		return
	}
	host := u.Hostname()
	if err := mod.CheckHost(host); err != nil {
		h.refuse(w, name, u, err)
		return
	}
	select {
	case h.inFlight <- struct{}{}:
		defer func() { <-h.inFlight }()
	default:
		h.fail(w, name, probeResultOverloaded, http.StatusServiceUnavailable, "too many probes in flight")
		return
	}

	timeout := ScrapeTimeout(r.Header, h.opts.TimeoutOffset, h.opts.MaxTimeout)
	if mod.Timeout > 0 {
		timeout = min(timeout, mod.Timeout)
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()

	debug := q.Get("debug") == "true"
	var logs bytes.Buffer
	logger := h.opts.Logger
	if debug {
		logger = slog.New(teeHandler{logger.Handler(), slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})})
	}
	logger = logger.With("module", name, "target", u.Redacted())
	dbg := func(msg string, args ...any) {
		if debug {
			logger.Debug(msg, args...)
		}
	}
	dbg("Beginning probe", "timeout_seconds", timeout.Seconds(), "allowed_targets", mod.Describe)

	t := mod.Target
	t.Name, t.URL = "", u.String()
	begin := time.Now()
	addrs, err := h.resolve(ctx, host)
	var res *prober.Result
	switch {
	case err != nil:
		// A name that does not resolve is a gateway that cannot be
		// reached: a probe result (up 0, reason dial), not a refusal.
		res = &prober.Result{}
		res.Durations[prober.PhaseConnect] = time.Since(begin)
		err = &prober.ProbeError{Phase: prober.PhaseConnect, Reason: prober.ReasonDial, Err: fmt.Errorf("resolving %s: %w", host, err)}
		dbg("Resolution failed", "err", err)
	default:
		if cerr := mod.Check(host, addrs); cerr != nil {
			h.refuse(w, name, u, cerr)
			return
		}
		dbg("Resolved target address", "addresses", fmt.Sprint(addrs))
		res, err = h.prober.Probe(prober.WithDial(ctx, vettedDial(host, addrs)), t)
	}
	h.requests.WithLabelValues(name, probeResultProbed).Inc()
	if err != nil {
		dbg("Probe failed", "duration_seconds", time.Since(begin).Seconds(), "err", err)
	} else {
		dbg("Probe succeeded", "duration_seconds", time.Since(begin).Seconds(), "product", res.Product(), "version", res.Version())
	}
	for _, p := range prober.Phases() {
		dbg("Phase", "phase", p.String(), "duration_seconds", res.Duration(p).Seconds())
	}

	metrics := h.export(logger, name, t, res, err)
	reg := prometheus.NewRegistry()
	reg.MustRegister(replay(metrics))
	if debug {
		h.debugOutput(w, reg, &logs, name, mod)
		return
	}
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(h.opts.Logger.Handler(), slog.LevelError),
		ErrorHandling: promhttp.ContinueOnError,
	}).ServeHTTP(w, r)
}

// refuse answers a target the module does not allow: 403 before any
// connection to it was made.
func (h *probeHandler) refuse(w http.ResponseWriter, module string, u interface{ Redacted() string }, err error) {
	h.opts.Logger.Debug("probe target refused", "module", module, "target", u.Redacted(), "err", err)
	h.fail(w, module, probeResultForbidden, http.StatusForbidden, "target not allowed by module "+module+": "+err.Error())
}

// resolve looks the host up once (an address literal needs no lookup).
func (h *probeHandler) resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	if ip, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{ip.Unmap()}, nil
	}
	addrs, err := h.opts.Resolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil, err
	}
	if len(addrs) == 0 {
		return nil, errors.New("no address")
	}
	if len(addrs) > maxAddrs {
		addrs = addrs[:maxAddrs]
	}
	for i := range addrs {
		addrs[i] = addrs[i].Unmap()
	}
	return addrs, nil
}

// vettedDial connects to the vetted addresses only, in order, whatever a
// new lookup would say: the check and the connection see the same address
// (no DNS rebinding). A connection to another host is refused.
func vettedDial(host string, addrs []netip.Addr) prober.DialFunc {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		h, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		if !strings.EqualFold(strings.Trim(h, "[]"), strings.Trim(host, "[]")) {
			return nil, fmt.Errorf("refusing to connect to %s: not the vetted target %s", addr, host)
		}
		switch network {
		case "tcp", "tcp4", "tcp6":
		default:
			return nil, fmt.Errorf("refusing network %s", network)
		}
		var errs []error
		for _, ip := range addrs {
			c, err := (&net.Dialer{}).DialContext(ctx, "tcp", net.JoinHostPort(ip.String(), port))
			if err == nil {
				return c, nil
			}
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
		}
		return nil, errors.Join(errs...)
	}
}

// export runs the probe collector's export for this one target, with the
// target's failure counters from the bounded fleet state.
func (h *probeHandler) export(logger *slog.Logger, module string, t gateway.Target, res *prober.Result, err error) []prometheus.Metric {
	key := module + "\x00" + t.URL
	h.mu.Lock()
	e := h.fleet.GetOrPut(key, func() *fleetEntry { return &fleetEntry{} })
	h.mu.Unlock()

	e.mu.Lock()
	defer e.mu.Unlock()
	c := &probeCollector{
		prober:   h.prober,
		logger:   logger,
		failures: map[string]map[prober.Reason]float64{},
		last:     map[string]prober.Reason{},
		maxItems: h.opts.MaxItems,
		dropped:  h.dropped,
	}
	if e.seen {
		c.failures[t.Name], c.last[t.Name] = e.failures, e.last
	}
	ch := make(chan prometheus.Metric, 64)
	done := make(chan []prometheus.Metric)
	go func() {
		var out []prometheus.Metric
		for m := range ch {
			out = append(out, m)
		}
		done <- out
	}()
	func() {
		defer close(ch)
		c.export(ch, t, res, err)
	}()
	metrics := <-done
	e.failures, e.last, e.seen = c.failures[t.Name], c.last[t.Name], true
	return metrics
}

func (h *probeHandler) debugOutput(w http.ResponseWriter, reg *prometheus.Registry, logs *bytes.Buffer, name string, mod ProbeModule) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	var out bytes.Buffer
	out.WriteString("Logs for the probe:\n")
	out.Write(logs.Bytes())
	out.WriteString("\n\n\nMetrics that would have been returned:\n")
	mfs, err := reg.Gather()
	if err != nil {
		fmt.Fprintf(&out, "error gathering metrics: %v\n", err)
	}
	enc := expfmt.NewEncoder(&out, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			fmt.Fprintf(&out, "error encoding metrics: %v\n", err)
			break
		}
	}
	fmt.Fprintf(&out, "\n\n\nModule configuration:\nname: %s\n%s\n", name, mod.Describe)
	_, _ = io.Copy(w, &out)
}

// replay is a collector of metrics already made.
type replay []prometheus.Metric

func (replay) Describe(chan<- *prometheus.Desc) {} // unchecked: one target's series

func (r replay) Collect(ch chan<- prometheus.Metric) {
	for _, m := range r {
		ch <- m
	}
}

// dropCollector exposes a dropCounter on a registry.
type dropCollector struct{ d *dropCounter }

func (dropCollector) Describe(ch chan<- *prometheus.Desc)   { ch <- itemsDroppedDesc }
func (c dropCollector) Collect(ch chan<- prometheus.Metric) { c.d.collect(ch) }

// teeHandler sends each record to every handler that wants it.
type teeHandler []slog.Handler

func (t teeHandler) Enabled(ctx context.Context, l slog.Level) bool {
	for _, h := range t {
		if h.Enabled(ctx, l) {
			return true
		}
	}
	return false
}

func (t teeHandler) Handle(ctx context.Context, r slog.Record) error {
	var errs []error
	for _, h := range t {
		if h.Enabled(ctx, r.Level) {
			errs = append(errs, h.Handle(ctx, r.Clone()))
		}
	}
	return errors.Join(errs...)
}

func (t teeHandler) WithAttrs(as []slog.Attr) slog.Handler {
	out := make(teeHandler, len(t))
	for i, h := range t {
		out[i] = h.WithAttrs(as)
	}
	return out
}

func (t teeHandler) WithGroup(name string) slog.Handler {
	out := make(teeHandler, len(t))
	for i, h := range t {
		out[i] = h.WithGroup(name)
	}
	return out
}
