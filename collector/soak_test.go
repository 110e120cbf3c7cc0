package collector

import (
	"net/http"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/clawdbot-exporter/clawdbot_exporter/gateway"
	gt "github.com/clawdbot-exporter/clawdbot_exporter/gateway/gatewaytest"
)

// soakFaults is every way the fake gateway can fail, plus health.
var soakFaults = []gt.Options{
	{}, {Protocol: 4},
	{Fault: gt.FaultNoUpgrade}, {Fault: gt.FaultNoChallenge}, {Fault: gt.FaultStallAfterChallenge},
	{Fault: gt.FaultStallHealth}, {Fault: gt.FaultRestart}, {Fault: gt.FaultGarbage},
	{Fault: gt.FaultBinaryFrame}, {Fault: gt.FaultOversized}, {Fault: gt.FaultHealthNotOK},
	{Fault: gt.FaultHealthError}, {Protocol: 4, Fault: gt.FaultStarting}, {Fault: gt.FaultDropTCP},
	{Fault: gt.FaultHelloNotOK}, {Token: "other"}, {Protocol: 5}, {Delay: 200 * time.Millisecond},
}

type usage struct {
	goroutines, fds int
	heap            uint64
}

func measure(t *testing.T) usage {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return usage{goroutines: runtime.NumGoroutine(), fds: len(fds), heap: ms.HeapAlloc}
}

// TestSoak runs 10,000 scrapes cycling through every fault and asserts the
// exporter (and the fake gateways in the same process) end where they began:
// no goroutine, file descriptor or memory is left behind by any failure path.
//
// It asserts no speed: a scrape only fails it by hanging, seconds past its
// 100 ms deadline, which no loaded machine explains (16 scrapes in parallel
// on a busy 2-core machine queue for the CPU for tens of milliseconds).
// BenchmarkScrapeFaults measures how late they are. Under the race
// detector it runs 2,000 scrapes.
func TestSoak(t *testing.T) {
	const parallel = 16
	scrapes, late := 10000, 3*time.Second
	if raceEnabled {
		scrapes = 2000
	}
	servers := make([]*gt.Server, len(soakFaults))
	handlers := make([]http.Handler, len(soakFaults))
	for i, o := range soakFaults {
		servers[i] = gt.New(o)
		defer servers[i].Close()
		handlers[i] = newTestHandler(t, []gateway.Target{{Name: "gw", URL: servers[i].URL(), Token: gt.DefaultToken}}, 5*time.Second)
	}
	// Warm up every path once, so lazily created state (pools, timers)
	// is part of the baseline.
	for _, h := range handlers {
		doScrape(t, h, "0.6")
	}
	settle(t, servers)
	base := measure(t)

	var next, slow atomic.Int64
	slowBy := make([]atomic.Int64, len(handlers))
	var wg sync.WaitGroup
	begin := time.Now()
	for range parallel {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(scrapes) {
					return
				}
				// 0.6 s minus the 0.5 s offset: a 100 ms deadline.
				k := i % int64(len(handlers))
				res := doScrape(t, handlers[k], "0.6")
				if res.Elapsed > late {
					slow.Add(1)
					slowBy[k].Add(1)
				}
			}
		})
	}
	wg.Wait()
	t.Logf("%d scrapes in %v; %d took longer than %v", scrapes, time.Since(begin), slow.Load(), late)
	for k := range slowBy {
		if n := slowBy[k].Load(); n > 0 {
			t.Logf("fault %+v: %d slow", soakFaults[k], n)
		}
	}
	if slow.Load() > 0 {
		t.Errorf("%d scrapes hung: longer than %v for a 100 ms deadline", slow.Load(), late)
	}

	settle(t, servers)
	var after usage
	for end := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		after = measure(t)
		if after.goroutines <= base.goroutines && after.fds <= base.fds || time.Now().After(end) {
			break
		}
	}
	t.Logf("baseline %+v, after %+v", base, after)
	if after.goroutines > base.goroutines {
		t.Errorf("goroutines %d -> %d", base.goroutines, after.goroutines)
	}
	if after.fds > base.fds {
		t.Errorf("open fds %d -> %d", base.fds, after.fds)
	}
	if after.heap > base.heap+8<<20 {
		t.Errorf("heap %d -> %d bytes", base.heap, after.heap)
	}
}

// settle waits until the probes' connections are closed on the gateways.
func settle(t *testing.T, servers []*gt.Server) {
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		open := 0
		for _, s := range servers {
			open += s.OpenConns()
		}
		if open == 0 {
			return
		}
	}
	for i, s := range servers {
		if n := s.OpenConns(); n > 0 {
			t.Errorf("fault %+v: %d connections left open on the gateway", soakFaults[i], n)
		}
	}
}
