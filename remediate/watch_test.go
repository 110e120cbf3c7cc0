package remediate

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/procfs"

	"github.com/clawdbot-exporter/clawdbot_exporter/config"
	"github.com/clawdbot-exporter/clawdbot_exporter/gateway"
	"github.com/clawdbot-exporter/clawdbot_exporter/gateway/gatewaytest"
	"github.com/clawdbot-exporter/clawdbot_exporter/gateway/lockfile"
	"github.com/clawdbot-exporter/clawdbot_exporter/gateway/prober"
)

// scriptProbes answers the watch loop's probes from a script: each probe
// takes the next reason ("" is up), the last one repeating.
type scriptProbes struct {
	mu     sync.Mutex
	script []prober.Reason
	calls  int
	last   prober.Record
	// fresh, when set, is what LastProbe returns, with the time of the
	// call: a scrape that always just happened.
	fresh *prober.Record
	// firstAt backdates the first probe (a gateway "starting" for long).
	firstAt time.Time
}

func (p *scriptProbes) LastProbe(string) (prober.Record, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fresh != nil {
		r := *p.fresh
		r.Time = time.Now()
		return r, true
	}
	return p.last, p.calls > 0
}

func (p *scriptProbes) ProbeRecord(_ context.Context, gw, source string) prober.Record {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.script[min(p.calls, len(p.script)-1)]
	rec := prober.Record{Time: time.Now(), Gateway: gw, Source: source, Up: r == "", Reason: string(r)}
	if p.calls == 0 && !p.firstAt.IsZero() {
		rec.Time = p.firstAt
	}
	p.calls++
	p.last = rec
	return rec
}

func (p *scriptProbes) n() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls
}

// watchHarness is the engine harness with a watch section and the loop
// running on a fast interval.
func watchHarness(t *testing.T, probes WatchProbes, mod func(*Target)) *harness {
	t.Helper()
	h := newHarness(t, false, func(tg *Target) {
		zero := Duration(0)
		tg.Warmup = &zero
		tg.Watch = &Watch{After: 3}
	})
	fastWatch(t, h.e, 5*time.Millisecond, mod)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); h.e.Wait() })
	h.e.StartWatching(ctx, probes)
	return h
}

// fastWatch reloads the engine's only target with a watch interval below
// what the configuration allows, for tests.
func fastWatch(t *testing.T, e *Engine, interval time.Duration, mod func(*Target)) {
	t.Helper()
	tg := e.state(e.targetNames()[0]).cfg
	w := *tg.Watch
	w.Interval = Duration(interval)
	tg.Watch = &w
	if mod != nil {
		mod(&tg)
	}
	if err := e.Reload([]Target{tg}); err != nil {
		t.Fatal(err)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestWatchActsOnRestartReasons(t *testing.T) {
	for _, r := range []prober.Reason{prober.ReasonDial, prober.ReasonTimeout, prober.ReasonClosed, prober.ReasonRPC, prober.ReasonBadFrame, prober.ReasonUnhealthy} {
		t.Run(string(r), func(t *testing.T) {
			p := &scriptProbes{script: []prober.Reason{r, r, r, ""}}
			h := watchHarness(t, p, nil)
			waitUntil(t, "an action", func() bool {
				return testutil.ToFloat64(h.m.actions.WithLabelValues("restart-main", "fake", ResultRecovered)) == 1
			})
			// The gateway is up again: however long the loop runs, no
			// second action.
			n := p.n()
			waitUntil(t, "more checks", func() bool { return p.n() > n+20 })
			if got := h.action.runs.Load(); got != 1 {
				t.Errorf("actions = %d, want 1", got)
			}
			d := h.e.Recent()
			found := false
			for _, x := range d {
				if x.Decision == "act" && x.AlertName == "watch" && x.Fingerprint == WatchFingerprint {
					found = true
				}
			}
			if !found {
				t.Errorf("no audited watch action in %+v", d)
			}
		})
	}
}

func TestWatchNeverActsOnNonRestartReasons(t *testing.T) {
	cases := map[string][]prober.Reason{
		"auth":           {prober.ReasonAuth},
		"hello_timeout":  {prober.ReasonHelloTimeout},
		"tls":            {prober.ReasonTLS},
		"upgrade":        {prober.ReasonUpgrade},
		"protocol":       {prober.ReasonProtocol},
		"starting":       {prober.ReasonStarting},
		"broken streaks": {prober.ReasonTimeout, prober.ReasonTimeout, "", prober.ReasonDial, prober.ReasonDial, prober.ReasonAuth, prober.ReasonTimeout, prober.ReasonTimeout, prober.ReasonHelloTimeout, prober.ReasonTimeout, prober.ReasonTimeout, ""},
	}
	for name, script := range cases {
		t.Run(name, func(t *testing.T) {
			p := &scriptProbes{script: script}
			h := watchHarness(t, p, nil)
			waitUntil(t, "checks", func() bool { return p.n() > len(script)+30 })
			if got := h.action.runs.Load(); got != 0 {
				t.Errorf("actions = %d, want none", got)
			}
		})
	}
}

func TestWatchStartingTooLong(t *testing.T) {
	p := &scriptProbes{script: []prober.Reason{prober.ReasonStarting}, firstAt: time.Now().Add(-config.WatchStartingFor - time.Minute)}
	h := watchHarness(t, p, nil)
	waitUntil(t, "an action", func() bool { return h.action.runs.Load() == 1 })
}

func TestRestartReason(t *testing.T) {
	for _, r := range prober.Reasons() {
		want := map[prober.Reason]bool{"dial": true, "timeout": true, "closed": true, "rpc": true, "bad_frame": true, "unhealthy": true}[r]
		if got := RestartReason(r, 0); got != want {
			t.Errorf("RestartReason(%s) = %v, want %v", r, got, want)
		}
	}
	if RestartReason(prober.ReasonStarting, config.WatchStartingFor) || !RestartReason(prober.ReasonStarting, config.WatchStartingFor+time.Second) {
		t.Error("starting counts only after WatchStartingFor")
	}
}

func TestWatchReusesFreshResults(t *testing.T) {
	p := &scriptProbes{script: []prober.Reason{""}, fresh: &prober.Record{Gateway: "main", Source: prober.SourceScrape, Up: true}}
	h := watchHarness(t, p, func(t *Target) { t.Watch.Interval = Duration(20 * time.Millisecond) })
	waitUntil(t, "reused checks", func() bool {
		return testutil.ToFloat64(h.m.watchChecks.WithLabelValues("restart-main", "reused")) >= 5
	})
	if p.n() != 0 {
		t.Errorf("probed %d times although a fresh result was there", p.n())
	}
}

// Alertmanager and the watch loop on one target: one action, not two.
func TestWatchAndAlertsShareOneEngine(t *testing.T) {
	p := &scriptProbes{script: []prober.Reason{prober.ReasonTimeout}}
	release := make(chan struct{})
	h := watchHarness(t, p, nil)
	h.action.release = release
	// The alert arrives first; the loop's failures then find the target
	// busy, then in its cooldown.
	if n := h.e.Handle(&Message{Version: "4", Alerts: []Alert{alert("firing", "fp", time.Now(), nil)}}); n != 1 {
		t.Fatalf("alert started %d actions", n)
	}
	// While the action runs, the loop leaves the gateway to its
	// verification: no probes of its own (one under way may finish).
	waitUntil(t, "the action to start", func() bool { return h.action.runs.Load() == 1 })
	n := p.n()
	time.Sleep(50 * time.Millisecond)
	if got := p.n(); got > n+1 {
		t.Errorf("the loop probed %d times while the action ran", got-n)
	}
	close(release)
	h.e.Wait()
	waitUntil(t, "a watch trigger held back by the cooldown", func() bool { return h.skipped("restart-main", SkipCooldown) >= 1 })
	if got := h.action.runs.Load(); got != 1 {
		t.Errorf("actions = %d, want 1", got)
	}
}

// recordingNotifier keeps events.
type recordingNotifier struct {
	mu     sync.Mutex
	events []Event
}

func (n *recordingNotifier) Notify(_ Target, ev Event) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.events = append(n.events, ev)
}

func (n *recordingNotifier) kinds() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	for _, e := range n.events {
		out = append(out, e.Kind+":"+e.Result)
	}
	return out
}

// A live foreign holder of what a start needs: no restart, a report.
func TestWatchHeldByLiveLockHolder(t *testing.T) {
	p := &scriptProbes{script: []prober.Reason{prober.ReasonTimeout}}
	notes := &recordingNotifier{}
	h := newHarness(t, false, func(tg *Target) {
		zero := Duration(0)
		tg.Warmup = &zero
		tg.Watch = &Watch{After: 3}
		tg.Notify = &Notify{URLFile: "/dev/null"}
	})
	fastWatch(t, h.e, 5*time.Millisecond, nil)
	h.e.opts.Notifier = notes
	h.world.blockers = []lockfile.Blocker{{Gateway: "main", Path: "/home/u/.openclaw/gateway.state.lock", Why: lockfile.WhyHeldByNonGateway, Detail: "held by doctor, pid 42"}}
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); h.e.Wait() }()
	h.e.StartWatching(ctx, p)
	waitUntil(t, "the hold", func() bool { return h.skipped("restart-main", SkipLockHeld) == 1 })
	waitUntil(t, "the next trigger, in the cooldown", func() bool { return h.skipped("restart-main", SkipCooldown) >= 1 })
	if got := h.action.runs.Load(); got != 0 {
		t.Errorf("acted %d times past a live lock holder", got)
	}
	if k := notes.kinds(); len(k) != 1 || k[0] != EventHeld+":"+SkipLockHeld {
		t.Errorf("notifications %v, want one held:lock_held", k)
	}
	if st := h.e.Status(); len(st) != 1 || st[0].NextAllowed.IsZero() || st[0].Watch == nil {
		t.Errorf("status %+v: want a next allowed time", st)
	}
}

// preflightAction is a fakeAction whose supervisor holds it.
type preflightAction struct {
	fakeAction
	hold string
}

func (p *preflightAction) Preflight(context.Context) (string, string, error) {
	return p.hold, "ExecMainStatus=78", nil
}

func TestPreflightHolds(t *testing.T) {
	for _, hold := range []string{SkipNeedsPerson, SkipSupervisor} {
		t.Run(hold, func(t *testing.T) {
			act := &preflightAction{hold: hold}
			registerAction("preflight-"+hold, func(Target, World) (Action, error) { return act, nil })
			notes := &recordingNotifier{}
			tg := Target{Name: "t", Gateway: "main", Action: ActionSpec{Type: "exec", Exec: &ExecSpec{Command: []string{"/bin/true"}}}, Notify: &Notify{URLFile: "/dev/null"}}
			cfg := config.Remediation{Targets: []Target{tg}}
			if err := cfg.Validate([]string{"main"}); err != nil {
				t.Fatal(err)
			}
			cfg.Targets[0].Action.Type = "preflight-" + hold
			zero := Duration(0)
			cfg.Targets[0].Warmup = &zero
			m := NewMetrics(prometheus.NewRegistry())
			e, err := NewEngine(cfg.Targets, &fakeWorld{up: true}, m, promslog.NewNopLogger(), Options{Notifier: notes})
			if err != nil {
				t.Fatal(err)
			}
			e.Trigger("t", Alert{Status: "firing", Fingerprint: WatchFingerprint, StartsAt: time.Now(), Labels: map[string]string{"alertname": "watch", "gateway": "main"}})
			e.Wait()
			if act.runs.Load() != 0 || testutil.ToFloat64(m.skipped.WithLabelValues("t", hold)) != 1 {
				t.Errorf("runs %d, skipped{%s} %v", act.runs.Load(), hold, testutil.ToFloat64(m.skipped.WithLabelValues("t", hold)))
			}
			// Not an action for the breaker.
			if st := e.Status(); st[0].Breaker {
				t.Error("breaker opened on a hold")
			}
			wantNotes := 1
			if hold == SkipSupervisor {
				wantNotes = 0 // the supervisor handles it: nothing for a person
			}
			if k := notes.kinds(); len(k) != wantNotes {
				t.Errorf("notifications %v", k)
			}
		})
	}
}

func TestWatchStopsOnReload(t *testing.T) {
	p := &scriptProbes{script: []prober.Reason{""}}
	h := watchHarness(t, p, nil)
	waitUntil(t, "checks", func() bool { return p.n() > 3 })
	tg := h.e.state("restart-main").cfg
	tg.Watch = nil
	if err := h.e.Reload([]Target{tg}); err != nil {
		t.Fatal(err)
	}
	h.e.mu.Lock()
	n := len(h.e.watchers)
	h.e.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d watchers after a reload without watch", n)
	}
	before := p.n()
	time.Sleep(50 * time.Millisecond)
	// At most one check that was under way.
	if after := p.n(); after > before+1 {
		t.Errorf("the loop went on after the reload: %d -> %d probes", before, after)
	}
}

// The fake gateway throttles refused logins the way openclaw 2026.9 does;
// the watch loop with a wrong token, through the real prober and its auth
// gate, never asks for an action, however many checks it makes.
func TestWatchWrongTokenWithThrottlingGateway(t *testing.T) {
	gw := gatewaytest.New(gatewaytest.Options{AuthThrottle: 20 * time.Millisecond, AuthThrottleMax: 400 * time.Millisecond})
	defer gw.Close()
	dir := t.TempDir()
	tok := filepath.Join(dir, "token")
	if err := os.WriteFile(tok, []byte("wrong-token"), 0o600); err != nil {
		t.Fatal(err)
	}
	target, err := gateway.Resolve(gateway.Settings{Name: "main", URL: gw.URL(), TokenFile: tok, StateDir: dir, ConfigPath: filepath.Join(dir, "none.json")}, func(string) string { return "" }, dir, false)
	if err != nil && target.URL == "" {
		t.Fatal(err)
	}
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		t.Fatal(err)
	}
	hist := prober.NewHistory(50)
	world := &LocalWorld{Gateways: func() []gateway.Target { return []gateway.Target{target} }, FS: fs, ProcRoot: "/proc", Prober: &prober.Prober{}, History: hist}
	zero := Duration(0)
	cfg := config.Remediation{Targets: []Target{{Name: "t", Gateway: "main", Warmup: &zero,
		Action: ActionSpec{Type: "exec", Exec: &ExecSpec{Command: []string{"/bin/true"}}},
		Watch:  &Watch{After: 2}}}}
	if err := cfg.Validate([]string{"main"}); err != nil {
		t.Fatal(err)
	}
	cfg.Targets[0].Watch.Interval = Duration(10 * time.Millisecond)
	act := &fakeAction{}
	registerAction("fake-throttle", func(Target, World) (Action, error) { return act, nil })
	cfg.Targets[0].Action.Type = "fake-throttle"
	m := NewMetrics(prometheus.NewRegistry())
	e, err := NewEngine(cfg.Targets, world, m, promslog.NewNopLogger(), Options{ProbeTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); e.Wait() }()
	e.StartWatching(ctx, world)
	reasons := map[string]int{}
	waitUntil(t, "40 watch probes", func() bool {
		return testutil.ToFloat64(m.watchChecks.WithLabelValues("t", "probed")) >= 40
	})
	for _, r := range hist.Recent("main") {
		reasons[r.Reason]++
	}
	if act.runs.Load() != 0 {
		t.Fatalf("acted %d times on a wrong token; reasons %v", act.runs.Load(), reasons)
	}
	// The refusal is what the probes see. A busy machine (-race) may
	// push one past its deadline as a timeout; never two in a row, or the
	// loop would have asked for an action above.
	refused := reasons[string(prober.ReasonAuth)] + reasons[string(prober.ReasonHelloTimeout)]
	if refused == 0 || refused < 9*len(hist.Recent("main"))/10 {
		t.Errorf("reasons %v: want (nearly) all auth or hello_timeout", reasons)
	}
	t.Logf("reasons of the last %d probes: %v", len(hist.Recent("main")), reasons)
	if gw.Accepted() == 0 {
		t.Error("the gateway saw no connection")
	}
}

// The watch loop's "starting too long" is the mixin's StartingTooLong.
func TestWatchStartingForMatchesMixin(t *testing.T) {
	b, err := os.ReadFile("../mixin/config.libsonnet")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`gatewayStartingFor:\s*'([0-9a-z]+)'`).FindSubmatch(b)
	if m == nil {
		t.Fatal("no gatewayStartingFor in mixin/config.libsonnet")
	}
	d, err := model.ParseDuration(string(m[1]))
	if err != nil {
		t.Fatal(err)
	}
	if time.Duration(d) != config.WatchStartingFor {
		t.Errorf("mixin gatewayStartingFor %v, config.WatchStartingFor %v", d, config.WatchStartingFor)
	}
}

// One probe's result counts once: a check that runs right after the one
// before (late ticks catch up) finds that check's result still fresh, and
// must not count the same failure again.
func TestWatchCountsEachProbeOnce(t *testing.T) {
	// A scrape's timeout, fresh for an hour (its end lies ahead), and the
	// loop's own probes all up.
	stuck := prober.Record{Time: time.Now(), Duration: time.Hour, Gateway: "main", Source: prober.SourceScrape, Reason: string(prober.ReasonTimeout)}
	p := &stuckProbes{scriptProbes: scriptProbes{script: []prober.Reason{""}}, stuck: stuck}
	h := watchHarness(t, p, nil)
	waitUntil(t, "checks", func() bool { return p.n() > 20 })
	if got := h.action.runs.Load(); got != 0 {
		t.Errorf("one failed probe counted %d actions", got)
	}
	if v := testutil.ToFloat64(h.m.watchChecks.WithLabelValues("restart-main", "reused")); v != 1 {
		t.Errorf("the stuck result was reused %v times, want once", v)
	}
}

// stuckProbes offers the same fresh result until the loop probes, then
// the loop's own.
type stuckProbes struct {
	scriptProbes
	stuck prober.Record
}

func (p *stuckProbes) LastProbe(gw string) (prober.Record, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.calls == 0 {
		return p.stuck, true
	}
	return p.last, true
}
