package collector

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/clawdbot-exporter/clawdbot_exporter/gateway"
	gt "github.com/clawdbot-exporter/clawdbot_exporter/gateway/gatewaytest"
	"github.com/clawdbot-exporter/clawdbot_exporter/internal/metrictest"
	"github.com/clawdbot-exporter/clawdbot_exporter/internal/secret"
)

// cidrModule allows the addresses in prefixes (loopback when none), the
// rule config.Allowlist applies to CIDR entries.
func cidrModule(name string, token string, prefixes ...string) ProbeModule {
	var ps []netip.Prefix
	for _, p := range prefixes {
		ps = append(ps, netip.MustParsePrefix(p))
	}
	if len(ps) == 0 {
		ps = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	}
	in := func(ip netip.Addr) error {
		for _, p := range ps {
			if p.Contains(ip) {
				return nil
			}
		}
		return fmt.Errorf("address %s not allowed", ip)
	}
	return ProbeModule{
		Name:   name,
		Target: gateway.Target{Token: secret.Secret(token), Source: "module " + name},
		CheckHost: func(host string) error {
			if ip, err := netip.ParseAddr(host); err == nil {
				return in(ip)
			}
			return nil
		},
		Check: func(host string, addrs []netip.Addr) error {
			for _, ip := range addrs {
				if err := in(ip); err != nil {
					return err
				}
			}
			return nil
		},
		Describe: "allowed_targets: " + strings.Join(prefixes, ", "),
	}
}

// fakeResolver answers from a map and counts lookups.
type fakeResolver struct {
	hosts   map[string][]netip.Addr
	lookups atomic.Int32
}

func (f *fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	f.lookups.Add(1)
	if a, ok := f.hosts[host]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

type probeFixture struct {
	h        *probeHandler
	reg      *prometheus.Registry
	resolver *fakeResolver
}

func newProbeFixture(t *testing.T, opts ProbeHandlerOpts, modules ...ProbeModule) *probeFixture {
	t.Helper()
	byName := map[string]ProbeModule{}
	for _, m := range modules {
		byName[m.Name] = m
	}
	f := &probeFixture{reg: prometheus.NewRegistry(), resolver: &fakeResolver{hosts: map[string][]netip.Addr{}}}
	opts.Modules = func(n string) (ProbeModule, bool) { m, ok := byName[n]; return m, ok }
	opts.Registerer = f.reg
	opts.Resolver = f.resolver
	if opts.MaxTimeout == 0 {
		opts.MaxTimeout = 5 * time.Second
	}
	f.h = NewProbeHandler(opts).(*probeHandler)
	return f
}

func (f *probeFixture) get(t *testing.T, query url.Values, header http.Header) (int, string) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/probe?"+query.Encode(), nil)
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	body, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(body)
}

func (f *probeFixture) requests(module, result string) float64 {
	return testutil.ToFloat64(f.h.requests.WithLabelValues(module, result))
}

func parse(t *testing.T, body string) metrictest.Families {
	t.Helper()
	fams, err := metrictest.Parse(body)
	if err != nil {
		t.Fatalf("unparseable /probe answer: %v\n%s", err, body)
	}
	return fams
}

// countingListener is a port that counts the connections it accepts (and
// closes them): the proof that a refused target was never connected to.
func countingListener(t *testing.T, addr string) (string, *atomic.Int32) {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s: %v", addr, err)
	}
	var n atomic.Int32
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			c.Close()
		}
	}()
	t.Cleanup(func() { l.Close() })
	return l.Addr().String(), &n
}

func TestProbeHandlerRequests(t *testing.T) {
	f := newProbeFixture(t, ProbeHandlerOpts{}, cidrModule("default", ""), cidrModule("lan", "", "10.0.0.0/8"))
	tests := []struct {
		name          string
		query         url.Values
		code          int
		module, count string
		body          string
	}{
		{name: "missing target", query: url.Values{}, code: 400, module: "default", count: probeResultBadRequest, body: "target parameter is missing"},
		{name: "unknown module", query: url.Values{"target": {"127.0.0.1:1"}, "module": {"nope"}}, code: 400, module: "", count: probeResultUnknownModule, body: `unknown module "nope"`},
		{name: "http URL", query: url.Values{"target": {"http://127.0.0.1:1"}}, code: 400, module: "default", count: probeResultBadRequest, body: "not http://"},
		{name: "credentials in the URL", query: url.Values{"target": {"ws://user:hunter2@127.0.0.1:1"}}, code: 400, module: "default", count: probeResultBadRequest, body: "credentials belong"},
		{name: "too long", query: url.Values{"target": {"127.0.0.1:1/" + strings.Repeat("a", maxTargetLen)}}, code: 400, module: "default", count: probeResultBadRequest},
		{name: "outside loopback", query: url.Values{"target": {"10.1.2.3:18789"}}, code: 403, module: "default", count: probeResultForbidden, body: "not allowed"},
		{name: "loopback outside the module's CIDRs", query: url.Values{"target": {"127.0.0.1:1"}, "module": {"lan"}}, code: 403, module: "lan", count: probeResultForbidden},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := f.requests(tc.module, tc.count)
			code, body := f.get(t, tc.query, nil)
			if code != tc.code || !strings.Contains(body, tc.body) {
				t.Errorf("answered %d %q, want %d with %q", code, body, tc.code, tc.body)
			}
			if strings.Contains(body, "hunter2") {
				t.Errorf("the answer carries the URL's password: %s", body)
			}
			if got := f.requests(tc.module, tc.count); got != before+1 {
				t.Errorf("probe_requests_total{module=%q,result=%q} = %v, want %v", tc.module, tc.count, got, before+1)
			}
		})
	}
	req := httptest.NewRequest(http.MethodPost, "/probe?target=127.0.0.1:1", nil)
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d, want 405", rec.Code)
	}
}

// The SSRF guard: a target outside the module's allowed set is refused
// without a connection being made, whether given as an address or as a
// name that resolves (now) outside; the probe connects to the address it
// vetted, not to what a second lookup would say.
func TestProbeHandlerSSRFGuard(t *testing.T) {
	// The listener stands for a host the module must not reach: loopback,
	// refused by a module that allows only 10.0.0.0/8.
	addr, accepts := countingListener(t, "127.0.0.1:0")
	_, port, _ := net.SplitHostPort(addr)
	f := newProbeFixture(t, ProbeHandlerOpts{}, cidrModule("lan", "", "10.0.0.0/8"), cidrModule("default", ""))
	f.resolver.hosts["inside.test"] = []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	f.resolver.hosts["mixed.test"] = []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("127.0.0.1")}
	refused := []url.Values{
		{"target": {addr}, "module": {"lan"}},
		{"target": {"ws://127.0.0.1:" + port + "/"}, "module": {"lan"}},
		{"target": {"wss://[::ffff:127.0.0.1]:" + port}, "module": {"lan"}},
		{"target": {"inside.test:" + port}, "module": {"lan"}},
		{"target": {"mixed.test:" + port}, "module": {"lan"}},
		{"target": {"mixed.test:" + port}, "module": {"default"}},
	}
	for _, q := range refused {
		code, body := f.get(t, q, nil)
		if code != http.StatusForbidden {
			t.Errorf("%v: answered %d %q, want 403", q, code, body)
		}
	}
	if n := accepts.Load(); n != 0 {
		t.Fatalf("the guard let %d connections through to a refused target", n)
	}
	// The same port through a module that allows it: connected to.
	if code, _ := f.get(t, url.Values{"target": {"inside.test:" + port}}, nil); code != http.StatusOK {
		t.Fatalf("allowed target answered %d", code)
	}
	if accepts.Load() == 0 {
		t.Error("an allowed target was not connected to: the test proves nothing")
	}
}

// A probe connects to the vetted address: the host name's second lookup
// never happens (one lookup per probe), so a DNS answer that changes after
// the check cannot send it elsewhere.
func TestProbeHandlerResolvesOnce(t *testing.T) {
	srv := gt.New(gt.Options{Protocol: 4})
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Addr())
	f := newProbeFixture(t, ProbeHandlerOpts{}, cidrModule("default", gt.DefaultToken))
	f.resolver.hosts["gw.test"] = []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	code, body := f.get(t, url.Values{"target": {"gw.test:" + port}}, nil)
	if code != http.StatusOK {
		t.Fatalf("answered %d: %s", code, body)
	}
	if up, _ := parse(t, body).Value("clawdbot_up", nil); up != 1 {
		t.Errorf("clawdbot_up %v, want 1\n%s", up, body)
	}
	if n := f.resolver.lookups.Load(); n != 1 {
		t.Errorf("%d lookups for one probe, want 1", n)
	}
	// A name that does not resolve is a gateway down (dial), not a refusal.
	code, body = f.get(t, url.Values{"target": {"gone.test:" + port}}, nil)
	if code != http.StatusOK {
		t.Fatalf("unresolvable target answered %d: %s", code, body)
	}
	fams := parse(t, body)
	if up, ok := fams.Value("clawdbot_up", nil); !ok || up != 0 {
		t.Errorf("unresolvable: clawdbot_up %v (%v), want 0", up, ok)
	}
	if got := fams.Failing(""); len(got) != 1 || got[0] != "dial" {
		t.Errorf("unresolvable: failing %v, want [dial]", got)
	}
}

// One target's metrics and nothing of the local host's: the probe
// collector's families for that target, its failure counters kept between
// scrapes.
func TestProbeHandlerMetrics(t *testing.T) {
	srv := gt.New(gt.Options{Protocol: 4})
	defer srv.Close()
	f := newProbeFixture(t, ProbeHandlerOpts{}, cidrModule("default", gt.DefaultToken), cidrModule("wrong", "not-the-token"))
	code, body := f.get(t, url.Values{"target": {srv.Addr()}}, nil)
	if code != http.StatusOK {
		t.Fatalf("answered %d: %s", code, body)
	}
	fams := parse(t, body)
	for _, name := range []string{"clawdbot_up", "clawdbot_probe_duration_seconds", "clawdbot_probe_failures_total", "clawdbot_probe_failing",
		"clawdbot_gateway_info", "clawdbot_health_ok", "clawdbot_http_ready", "clawdbot_gateway_restarts_total"} {
		if _, ok := fams[name]; !ok {
			t.Errorf("no %s in the answer", name)
		}
	}
	for name, mf := range fams {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "gateway" && l.GetValue() != "" {
					t.Errorf("%s has gateway=%q; relabelling sets it", name, l.GetValue())
				}
			}
		}
		for _, local := range []string{"clawdbot_lock", "clawdbot_process", "clawdbot_gateway_process", "clawdbot_agent_session_", "clawdbot_config_", "clawdbot_exporter_"} {
			if strings.HasPrefix(name, local) {
				t.Errorf("local-state or exporter family %s in a /probe answer", name)
			}
		}
	}
	if up, _ := fams.Value("clawdbot_up", nil); up != 1 {
		t.Errorf("clawdbot_up %v, want 1", up)
	}
	// Refused credentials, twice: the counter counts both.
	for range 2 {
		_, body = f.get(t, url.Values{"target": {srv.Addr()}, "module": {"wrong"}}, nil)
	}
	fams = parse(t, body)
	if n, _ := fams.Value("clawdbot_probe_failures_total", map[string]string{"reason": "auth"}); n != 2 {
		t.Errorf("auth failures %v, want 2\n%s", n, body)
	}
	// The modules keep apart: the good one's counter is untouched.
	_, body = f.get(t, url.Values{"target": {srv.Addr()}}, nil)
	if n, _ := parse(t, body).Value("clawdbot_probe_failures_total", map[string]string{"reason": "auth"}); n != 0 {
		t.Errorf("default module's auth failures %v, want 0", n)
	}
	if n := f.requests("default", probeResultProbed); n != 2 {
		t.Errorf("probed requests %v, want 2", n)
	}
}

// ?debug=true shows the probe's log lines, the metrics and the module, and
// no secret.
func TestProbeHandlerDebug(t *testing.T) {
	srv := gt.New(gt.Options{Protocol: 4})
	defer srv.Close()
	f := newProbeFixture(t, ProbeHandlerOpts{}, cidrModule("default", "not-the-token"))
	code, body := f.get(t, url.Values{"target": {srv.Addr()}, "debug": {"true"}}, nil)
	if code != http.StatusOK {
		t.Fatalf("answered %d: %s", code, body)
	}
	for _, want := range []string{"Logs for the probe:", "Beginning probe", "Probe failed", "reason", "Metrics that would have been returned:", "clawdbot_up", "Module configuration:"} {
		if !strings.Contains(body, want) {
			t.Errorf("debug output lacks %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, "not-the-token") {
		t.Errorf("debug output carries the token:\n%s", body)
	}
}

// The deadline: the scrape-timeout header minus the offset, capped by the
// module's timeout: a gateway slower than that is a timeout, not a late
// answer.
func TestProbeHandlerDeadline(t *testing.T) {
	srv := gt.New(gt.Options{Protocol: 4, Delay: 3 * time.Second})
	defer srv.Close()
	mod := cidrModule("default", gt.DefaultToken)
	short := mod
	short.Name, short.Timeout = "short", 300*time.Millisecond
	f := newProbeFixture(t, ProbeHandlerOpts{TimeoutOffset: 100 * time.Millisecond, MaxTimeout: 10 * time.Second}, mod, short)
	for _, tc := range []struct {
		module string
		header string
	}{{"short", ""}, {"default", "0.4"}} {
		h := http.Header{}
		if tc.header != "" {
			h.Set("X-Prometheus-Scrape-Timeout-Seconds", tc.header)
		}
		_, body := f.get(t, url.Values{"target": {srv.Addr()}, "module": {tc.module}}, h)
		if got := parse(t, body).Failing(""); len(got) != 1 || got[0] != "timeout" {
			t.Errorf("module %s, header %q: failing %v, want [timeout]", tc.module, tc.header, got)
		}
	}
}

// Beyond MaxInFlight a request is answered 503 at once, and counted.
func TestProbeHandlerInFlightBound(t *testing.T) {
	srv := gt.New(gt.Options{Protocol: 4, Delay: 2 * time.Second})
	defer srv.Close()
	f := newProbeFixture(t, ProbeHandlerOpts{MaxInFlight: 1, MaxTimeout: 3 * time.Second}, cidrModule("default", gt.DefaultToken))
	var wg sync.WaitGroup
	wg.Go(func() { f.get(t, url.Values{"target": {srv.Addr()}}, nil) })
	deadline := time.Now().Add(10 * time.Second)
	for len(f.h.inFlight) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if len(f.h.inFlight) == 0 {
		t.Fatal("the first probe never started")
	}
	code, _ := f.get(t, url.Values{"target": {srv.Addr()}}, nil)
	if code != http.StatusServiceUnavailable {
		t.Errorf("second probe answered %d, want 503", code)
	}
	if n := f.requests("default", probeResultOverloaded); n != 1 {
		t.Errorf("overloaded %v, want 1", n)
	}
	wg.Wait()
	if err := testutil.GatherAndCompare(f.reg, strings.NewReader(`
# HELP clawdbot_exporter_probe_in_flight Probes of /probe running now.
# TYPE clawdbot_exporter_probe_in_flight gauge
clawdbot_exporter_probe_in_flight 0
`), "clawdbot_exporter_probe_in_flight"); err != nil {
		t.Error(err)
	}
}

// The per-target state is bounded: beyond MaxTargets the least recently
// probed target is forgotten and its counters start again at 0.
func TestProbeHandlerStateBounded(t *testing.T) {
	f := newProbeFixture(t, ProbeHandlerOpts{MaxTargets: 2}, cidrModule("default", ""))
	down := func() string {
		addr, _ := countingListener(t, "127.0.0.1:0")
		return addr
	}
	first := down()
	failures := func(target string) float64 {
		_, body := f.get(t, url.Values{"target": {target}}, nil)
		fams := parse(t, body)
		var sum float64
		for _, m := range fams["clawdbot_probe_failures_total"].GetMetric() {
			sum += m.GetCounter().GetValue()
		}
		return sum
	}
	if n := failures(first); n != 1 {
		t.Fatalf("first probe: %v failures, want 1", n)
	}
	if n := failures(first); n != 2 {
		t.Fatalf("second probe: %v failures, want 2", n)
	}
	failures(down())
	failures(down())
	if err := testutil.GatherAndCompare(f.reg, strings.NewReader(`
# HELP clawdbot_exporter_probe_targets_kept Targets of /probe whose state (failure and restart counters, auth backoff) the exporter keeps; the least recently probed is forgotten beyond the bound, its counters starting again at 0.
# TYPE clawdbot_exporter_probe_targets_kept gauge
clawdbot_exporter_probe_targets_kept 2
`), "clawdbot_exporter_probe_targets_kept"); err != nil {
		t.Error(err)
	}
	if n := failures(first); n != 1 {
		t.Errorf("after eviction: %v failures, want 1 (counters reset)", n)
	}
}

// The exporter's own metrics of the endpoint are promtool-clean names.
func TestProbeHandlerOwnMetricsLint(t *testing.T) {
	f := newProbeFixture(t, ProbeHandlerOpts{}, cidrModule("default", ""))
	f.get(t, url.Values{}, nil)
	problems, err := testutil.GatherAndLint(f.reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}
