package prober

import (
	"sync"
	"testing"
	"time"

	"github.com/clawdbot-exporter/clawdbot_exporter/gateway"
	gt "github.com/clawdbot-exporter/clawdbot_exporter/gateway/gatewaytest"
)

type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *testClock) add(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

// While the health RPC answers ok, it is called at most once a minute per
// gateway; the hello-ok's snapshot stands for it in between. A failure
// or an ok:false anywhere brings the RPC back at every probe.
func TestHealthRPCOncePerMinute(t *testing.T) {
	for _, protocol := range []int{3, 4} {
		t.Run(ProductForProtocol(protocol), func(t *testing.T) {
			srv := gt.New(gt.Options{Protocol: protocol, SnapshotHealth: true})
			defer srv.Close()
			clock := &testClock{now: time.Date(2026, 12, 2, 1, 0, 0, 0, time.UTC)}
			p := &Prober{now: clock.Now}
			target := gateway.Target{Name: "gw", URL: srv.URL(), Token: gt.DefaultToken}

			first := probeOK(t, p, target)
			if first.HealthFromSnapshot || countMethod(srv, "health") != 1 {
				t.Fatalf("first probe: from snapshot %v, health calls %d", first.HealthFromSnapshot, countMethod(srv, "health"))
			}
			for range 3 {
				clock.add(15 * time.Second)
				r := probeOK(t, p, target)
				if !r.HealthFromSnapshot || r.Health == nil || r.Health.OK == nil || !*r.Health.OK {
					t.Fatalf("within the minute: from snapshot %v, health %+v", r.HealthFromSnapshot, r.Health)
				}
				if protocol == 4 && r.Health.ModelRuntime == nil {
					t.Error("openclaw's modelRuntime (only in the RPC) is not carried over")
				}
				if len(r.Health.Channels) != len(first.Health.Channels) {
					t.Errorf("channels %d, want %d", len(r.Health.Channels), len(first.Health.Channels))
				}
			}
			if n := countMethod(srv, "health"); n != 1 {
				t.Fatalf("health RPC called %d times within the minute, want 1", n)
			}
			clock.add(20 * time.Second) // 65 s after the RPC
			if r := probeOK(t, p, target); r.HealthFromSnapshot || countMethod(srv, "health") != 2 {
				t.Fatalf("after a minute: from snapshot %v, health calls %d", r.HealthFromSnapshot, countMethod(srv, "health"))
			}

			// The gateway turns unhealthy: its snapshot says so, the
			// probe asks the RPC and reports it, at every probe.
			srv.SetFault(gt.FaultHealthNotOK)
			for i := range 2 {
				clock.add(time.Second)
				if r := probeReason(t, p, target, 5*time.Second); r != ReasonUnhealthy {
					t.Fatalf("unhealthy probe %d: reason %q", i, r)
				}
			}
			// A failing RPC with a healthy snapshot: the RPC is asked
			// every time, so an rpc failure is never hidden.
			srv.SetFault(gt.FaultHealthError)
			calls := countMethod(srv, "health")
			for i := range 3 {
				clock.add(time.Second)
				if r := probeReason(t, p, target, 5*time.Second); r != ReasonRPC {
					t.Fatalf("failing RPC probe %d: reason %q", i, r)
				}
			}
			if n := countMethod(srv, "health"); n != calls+3 {
				t.Errorf("health RPC called %d times in 3 probes after a failure, want 3", n-calls)
			}
		})
	}
}

// A snapshot without health (the default fake, an older gateway) never
// stands for the RPC.
func TestHealthRPCWithoutSnapshot(t *testing.T) {
	srv := gt.New(gt.Options{Protocol: 4})
	defer srv.Close()
	p := &Prober{}
	target := gateway.Target{Name: "gw", URL: srv.URL(), Token: gt.DefaultToken}
	for range 3 {
		if r := probeOK(t, p, target); r.HealthFromSnapshot {
			t.Fatal("an empty snapshot.health stood for the RPC")
		}
	}
	if n := countMethod(srv, "health"); n != 3 {
		t.Errorf("health RPC called %d times, want 3", n)
	}
}
