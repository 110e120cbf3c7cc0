package remediate

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/promslog"

	"github.com/clawdbot-exporter/clawdbot_exporter/config"
	"github.com/clawdbot-exporter/clawdbot_exporter/gateway/lockfile"
)

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Add(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

type fakeWorld struct {
	mu       sync.Mutex
	age      time.Duration
	ageKnown bool
	up       bool
	removed  int
	blockers []lockfile.Blocker
}

func (w *fakeWorld) ProcessAge(string) (time.Duration, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.age, w.ageKnown
}

func (w *fakeWorld) RemoveStaleLocks(string) ([]string, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.removed++
	return []string{"/tmp/clawdbot-0/gateway.x.lock"}, nil
}

func (w *fakeWorld) StartBlockers(string) []lockfile.Blocker {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.blockers
}

func (w *fakeWorld) Probe(context.Context, string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.up {
		return nil
	}
	return errors.New("down")
}

// fakeAction counts runs; it can block until released, and fail.
type fakeAction struct {
	runs    atomic.Int64
	release chan struct{}
	fail    bool
}

func (f *fakeAction) Run(ctx context.Context, _ Alert) error {
	f.runs.Add(1)
	if f.release != nil {
		select {
		case <-f.release:
		case <-ctx.Done():
		}
	}
	if f.fail {
		return errors.New("boom")
	}
	return nil
}

var current *fakeAction

func init() {
	registerAction("fake", func(Target, World) (Action, error) { return current, nil })
}

type harness struct {
	e      *Engine
	clock  *fakeClock
	world  *fakeWorld
	action *fakeAction
	m      *Metrics
}

func newHarness(t *testing.T, dryRun bool, mod func(*Target)) *harness {
	t.Helper()
	return newHarnessOpts(t, mod, Options{DryRun: dryRun})
}

// newHarnessOpts is newHarness with more engine options; the clock and the
// verify interval are the harness's.
func newHarnessOpts(t *testing.T, mod func(*Target), opts Options) *harness {
	t.Helper()
	target := Target{Name: "restart-main", Gateway: "main", Action: ActionSpec{Type: "exec", Exec: &ExecSpec{Command: []string{"/bin/true"}}}}
	if mod != nil {
		mod(&target)
	}
	cfg := config.Remediation{Targets: []Target{target}}
	if err := cfg.Validate([]string{"main"}); err != nil {
		t.Fatal(err)
	}
	cfg.Targets[0].Action.Type = "fake"
	h := &harness{clock: &fakeClock{now: time.Date(2026, 11, 25, 4, 0, 0, 0, time.UTC)}, world: &fakeWorld{up: true}, action: &fakeAction{}}
	current = h.action
	h.m = NewMetrics(prometheus.NewRegistry())
	opts.Clock, opts.VerifyInterval = h.clock, time.Millisecond
	e, err := NewEngine(cfg.Targets, h.world, h.m, promslog.NewNopLogger(), opts)
	if err != nil {
		t.Fatal(err)
	}
	h.e = e
	return h
}

func alert(status, fingerprint string, startsAt time.Time, labels map[string]string) Alert {
	l := map[string]string{"alertname": "ClawdbotGatewayDown", "gateway": "main", "remediation": "restart"}
	for k, v := range labels {
		if v == "" {
			delete(l, k)
		} else {
			l[k] = v
		}
	}
	return Alert{Status: status, Labels: l, Fingerprint: fingerprint, StartsAt: startsAt}
}

func (h *harness) send(alerts ...Alert) int {
	n := h.e.Handle(&Message{Version: "4", Alerts: alerts})
	h.e.Wait()
	return n
}

func (h *harness) skipped(target, reason string) float64 {
	return testutil.ToFloat64(h.m.skipped.WithLabelValues(target, reason))
}

func TestPolicy(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)

	t.Run("a firing alert acts once and is verified", func(t *testing.T) {
		h := newHarness(t, false, nil)
		if n := h.send(alert("firing", "fp1", t0, nil)); n != 1 || h.action.runs.Load() != 1 {
			t.Fatalf("started %d, ran %d", n, h.action.runs.Load())
		}
		if v := testutil.ToFloat64(h.m.actions.WithLabelValues("restart-main", "fake", ResultRecovered)); v != 1 {
			t.Errorf("recovered = %v", v)
		}
	})
	t.Run("duplicates: retries and the HA peer", func(t *testing.T) {
		h := newHarness(t, false, nil)
		a := alert("firing", "fp1", t0, nil)
		h.send(a)
		h.clock.Add(time.Hour) // past any cooldown: still the same alert
		h.send(a, a)
		if h.action.runs.Load() != 1 || h.skipped("restart-main", SkipDuplicate) != 2 {
			t.Errorf("runs %d, duplicates %v", h.action.runs.Load(), h.skipped("restart-main", SkipDuplicate))
		}
		// The same alert firing again later (new startsAt) is new.
		h.send(alert("firing", "fp1", t0.Add(time.Hour), nil))
		if h.action.runs.Load() != 2 {
			t.Errorf("a new firing of the same alert did not act")
		}
	})
	t.Run("resolved never acts", func(t *testing.T) {
		h := newHarness(t, false, nil)
		h.send(alert("resolved", "fp1", t0, nil))
		if h.action.runs.Load() != 0 || h.skipped("restart-main", SkipResolved) != 1 {
			t.Error("resolved alert acted or was not counted")
		}
	})
	t.Run("unmatched: other gateway, missing label", func(t *testing.T) {
		h := newHarness(t, false, nil)
		h.send(alert("firing", "a", t0, map[string]string{"gateway": "other"}), alert("firing", "b", t0, map[string]string{"remediation": ""}))
		if h.action.runs.Load() != 0 || h.skipped("", SkipUnmatched) != 2 {
			t.Errorf("runs %d, unmatched %v", h.action.runs.Load(), h.skipped("", SkipUnmatched))
		}
	})
	t.Run("cooldown", func(t *testing.T) {
		h := newHarness(t, false, nil)
		h.send(alert("firing", "a", t0, nil))
		h.clock.Add(9 * time.Minute)
		h.send(alert("firing", "b", t0, nil))
		if h.action.runs.Load() != 1 || h.skipped("restart-main", SkipCooldown) != 1 {
			t.Fatalf("within cooldown: runs %d", h.action.runs.Load())
		}
		h.clock.Add(61 * time.Second)
		h.send(alert("firing", "b", t0, nil)) // Alertmanager repeats it: now it may act
		if h.action.runs.Load() != 2 {
			t.Errorf("after cooldown: runs %d", h.action.runs.Load())
		}
	})
	t.Run("breaker: 3 in an hour, then a person decides", func(t *testing.T) {
		h := newHarness(t, false, func(t *Target) { t.Cooldown = ptr(Duration(time.Minute)) })
		for i, fp := range []string{"a", "b", "c", "d", "e"} {
			h.send(alert("firing", fp, t0, nil))
			h.clock.Add(2 * time.Minute)
			_ = i
		}
		if h.action.runs.Load() != 3 || !h.e.BreakerOpen("restart-main") || h.skipped("restart-main", SkipBreaker) != 2 {
			t.Fatalf("runs %d, open %v, breaker skips %v", h.action.runs.Load(), h.e.BreakerOpen("restart-main"), h.skipped("restart-main", SkipBreaker))
		}
		if v := testutil.ToFloat64(h.m.breakerOpen.WithLabelValues("restart-main")); v != 1 {
			t.Errorf("breaker_open = %v", v)
		}
		// Time alone does not close it.
		h.clock.Add(3 * time.Hour)
		h.send(alert("firing", "f", t0, nil))
		if h.action.runs.Load() != 3 {
			t.Error("breaker closed by itself")
		}
		// Nor does a reload: anyone who can edit a file or send SIGHUP is
		// not the person who looked.
		h.clock.Add(-3 * time.Hour)
		if err := h.e.Reload([]Target{h.e.state("restart-main").cfg}); err != nil {
			t.Fatal(err)
		}
		h.send(alert("firing", "g", t0, nil))
		if h.action.runs.Load() != 3 || !h.e.BreakerOpen("restart-main") {
			t.Errorf("after reload: runs %d, open %v", h.action.runs.Load(), h.e.BreakerOpen("restart-main"))
		}
		// Reset (the person) does, with a fresh budget: even within the
		// window of the earlier actions.
		if _, err := h.e.Reset("nope"); err == nil {
			t.Error("reset of an unknown target succeeded")
		}
		if got, err := h.e.Reset("restart-main"); err != nil || len(got) != 1 {
			t.Fatalf("reset: %v, %v", got, err)
		}
		h.send(alert("firing", "h", t0, nil))
		if h.action.runs.Load() != 4 || h.e.BreakerOpen("restart-main") {
			t.Errorf("after reset: runs %d, open %v", h.action.runs.Load(), h.e.BreakerOpen("restart-main"))
		}
		if v := testutil.ToFloat64(h.m.breakerOpen.WithLabelValues("restart-main")); v != 0 {
			t.Errorf("breaker_open = %v after reset", v)
		}
	})
	t.Run("warm-up grace", func(t *testing.T) {
		h := newHarness(t, false, nil)
		h.world.age, h.world.ageKnown = 4*time.Minute, true
		h.send(alert("firing", "a", t0, nil))
		if h.action.runs.Load() != 0 || h.skipped("restart-main", SkipGrace) != 1 {
			t.Fatal("acted on a gateway still warming up")
		}
		h.world.age = 6 * time.Minute
		h.send(alert("firing", "a", t0, nil)) // the repeat of the same alert acts now
		if h.action.runs.Load() != 1 {
			t.Error("no action after the warm-up")
		}
	})
	t.Run("one action per target at a time", func(t *testing.T) {
		h := newHarness(t, false, nil)
		h.action.release = make(chan struct{})
		if n := h.e.Handle(&Message{Version: "4", Alerts: []Alert{alert("firing", "a", t0, nil)}}); n != 1 {
			t.Fatal("first did not start")
		}
		h.clock.Add(time.Hour)
		h.e.Handle(&Message{Version: "4", Alerts: []Alert{alert("firing", "b", t0, nil)}})
		close(h.action.release)
		h.e.Wait()
		if h.action.runs.Load() != 1 || h.skipped("restart-main", SkipBusy) != 1 {
			t.Errorf("runs %d, busy %v", h.action.runs.Load(), h.skipped("restart-main", SkipBusy))
		}
	})
	t.Run("a reload during an action does not latch busy", func(t *testing.T) {
		h := newHarness(t, false, func(t *Target) { t.Cooldown = ptr(Duration(0)) })
		h.action.release = make(chan struct{})
		if n := h.e.Handle(&Message{Version: "4", Alerts: []Alert{alert("firing", "a", t0, nil)}}); n != 1 {
			t.Fatal("first did not start")
		}
		if err := h.e.Reload([]Target{h.e.state("restart-main").cfg}); err != nil {
			t.Fatal(err)
		}
		close(h.action.release)
		h.e.Wait()
		h.action.release = nil
		h.send(alert("firing", "b", t0, nil))
		if h.action.runs.Load() != 2 || h.skipped("restart-main", SkipBusy) != 0 {
			t.Errorf("after a reload mid-action: runs %d, busy skips %v", h.action.runs.Load(), h.skipped("restart-main", SkipBusy))
		}
	})
	t.Run("dry run decides but does not act", func(t *testing.T) {
		h := newHarness(t, true, nil)
		h.send(alert("firing", "a", t0, nil))
		h.send(alert("firing", "a", t0, nil))
		if h.action.runs.Load() != 0 || h.skipped("restart-main", SkipDryRun) != 1 || h.skipped("restart-main", SkipDuplicate) != 1 {
			t.Errorf("runs %d, dry_run %v, duplicate %v", h.action.runs.Load(), h.skipped("restart-main", SkipDryRun), h.skipped("restart-main", SkipDuplicate))
		}
	})
	t.Run("failed action and failed verification", func(t *testing.T) {
		h := newHarness(t, false, func(t *Target) { t.VerifyTimeout = Duration(20 * time.Millisecond) })
		h.action.fail = true
		h.send(alert("firing", "a", t0, nil))
		if v := testutil.ToFloat64(h.m.actions.WithLabelValues("restart-main", "fake", ResultError)); v != 1 {
			t.Errorf("error results = %v", v)
		}
		h.action.fail = false
		h.world.up = false
		h.clock.Add(time.Hour)
		h.send(alert("firing", "b", t0, nil))
		if v := testutil.ToFloat64(h.m.actions.WithLabelValues("restart-main", "fake", ResultNotRecovered)); v != 1 {
			t.Errorf("not_recovered results = %v", v)
		}
	})
	t.Run("explicit zero warm-up and cooldown", func(t *testing.T) {
		zero := Duration(0)
		h := newHarness(t, false, func(t *Target) { t.Warmup, t.Cooldown = &zero, &zero })
		h.world.age, h.world.ageKnown = time.Second, true
		h.send(alert("firing", "a", t0, nil))
		h.send(alert("firing", "b", t0, nil))
		if h.action.runs.Load() != 2 {
			t.Errorf("runs %d: 0s must mean no warm-up and no cooldown, not the defaults", h.action.runs.Load())
		}
	})
	t.Run("defaults when absent", func(t *testing.T) {
		h := newHarness(t, false, nil)
		if st := h.e.state("restart-main"); st.cfg.Warmup.D() != DefaultWarmup || st.cfg.Cooldown.D() != DefaultCooldown {
			t.Errorf("defaults: warmup %v cooldown %v", st.cfg.Warmup.D(), st.cfg.Cooldown.D())
		}
	})
	t.Run("stale lock removed before acting", func(t *testing.T) {
		h := newHarness(t, false, func(t *Target) { t.RemoveStaleLock = true })
		h.send(alert("firing", "a", t0, nil))
		if h.world.removed != 1 {
			t.Errorf("lock removals %d", h.world.removed)
		}
	})
}

func ptr[T any](v T) *T { return &v }
