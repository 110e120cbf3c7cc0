package prober

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/clawdbot-exporter/clawdbot_exporter/gateway"
	gt "github.com/clawdbot-exporter/clawdbot_exporter/gateway/gatewaytest"
)

// fakeClock is the gate's clock in tests: the backoff counts in scrape
// intervals, which a test cannot wait for.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func probeReason(t *testing.T, p *Prober, target gateway.Target, deadline time.Duration) Reason {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	_, err := p.Probe(ctx, target)
	if err == nil {
		return ""
	}
	var pe *ProbeError
	if !errors.As(err, &pe) {
		t.Fatalf("probe error %v is not a ProbeError", err)
	}
	return pe.Reason
}

func countConnects(s *gt.Server) int {
	n := 0
	for _, m := range s.Methods() {
		if m == "connect" {
			n++
		}
	}
	return n
}

// A throttling gateway and a wrong token: never a restart reason, however
// many probes, and logins back off so the gateway's penalty decays.
func TestAuthGateWrongTokenThrottled(t *testing.T) {
	// The fake's penalty reaches the probe's 300 ms deadline at the third
	// refusal, as openclaw's 5 s reaches a 4.5 s deadline at the fifth.
	srv := gt.New(gt.Options{Protocol: 4, AuthThrottle: 100 * time.Millisecond, AuthThrottleMax: 2 * time.Second})
	defer srv.Close()
	clock := &fakeClock{now: time.Unix(1e9, 0)}
	p := &Prober{now: clock.Now}
	target := gateway.Target{Name: "gw", URL: srv.URL(), Token: "wrong", Source: "test"}

	seen := map[Reason]int{}
	var backoffs []time.Duration
	for i := range 20 {
		r := probeReason(t, p, target, 300*time.Millisecond)
		seen[r]++
		switch r {
		case ReasonAuth, ReasonHelloTimeout:
		default:
			t.Fatalf("probe %d: reason %q for a live gateway refusing the token", i, r)
		}
		backoffs = append(backoffs, p.AuthBackoff(target))
		clock.Add(15 * time.Second)
	}
	t.Logf("reasons %v, backoffs %v, connects %d", seen, backoffs, countConnects(srv))
	if seen[ReasonAuth] == 0 {
		t.Errorf("no probe said auth: %v", seen)
	}
	// 20 probes 15 s apart: logins at most at 0, 15, 45, 105, 225 s (the
	// backoff doubles from the 15 s interval, then 5 min).
	if n := countConnects(srv); n > 6 {
		t.Errorf("%d logins in 20 probes: the gate does not back off", n)
	}
	if got := backoffs[0]; got != minAuthBackoff {
		t.Errorf("first backoff %v, want %v (no interval known yet)", got, minAuthBackoff)
	}
	last := backoffs[len(backoffs)-1]
	if last <= 15*time.Second || last > MaxAuthBackoff {
		t.Errorf("backoff after 20 refusals %v: not doubled, or above the cap", last)
	}
}

func TestAuthGateClears(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("wrong\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		clear func(t *testing.T, srv *gt.Server, p *Prober, target gateway.Target)
	}{
		{"token file rewritten", func(t *testing.T, _ *gt.Server, _ *Prober, _ gateway.Target) {
			if err := os.WriteFile(tokenFile, []byte(gt.DefaultToken+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"new process start time", func(t *testing.T, srv *gt.Server, p *Prober, target gateway.Target) {
			srv.SetOptions(func(o *gt.Options) { o.Token = "wrong" })
			p.ObserveRestart(target, "", 1000)
			p.ObserveRestart(target, "", 2000)
		}},
		{"new bootId", func(t *testing.T, srv *gt.Server, p *Prober, target gateway.Target) {
			srv.SetOptions(func(o *gt.Options) { o.Token = "wrong" })
			p.ObserveRestart(target, "boot-1", 0)
			p.ObserveRestart(target, "boot-2", 0)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(tokenFile, []byte("wrong\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			srv := gt.New(gt.Options{Protocol: 4})
			defer srv.Close()
			clock := &fakeClock{now: time.Unix(1e9, 0)}
			p := &Prober{now: clock.Now}
			target := gateway.Target{Name: "gw", URL: srv.URL(), Creds: &gateway.Credentials{TokenFile: tokenFile}, Source: "token file"}
			if r := probeReason(t, p, target, 2*time.Second); r != ReasonAuth {
				t.Fatalf("wrong token: %q, want auth", r)
			}
			if p.AuthBackoff(target) == 0 {
				t.Fatal("no backoff after a refusal")
			}
			before := countConnects(srv)
			if r := probeReason(t, p, target, 2*time.Second); r != ReasonAuth || countConnects(srv) != before {
				t.Fatalf("in backoff: reason %q and %d new logins, want auth and none", r, countConnects(srv)-before)
			}
			tc.clear(t, srv, p, target)
			if tc.name != "token file rewritten" {
				// The gateway restarted with the token the file holds.
				srv.SetOptions(func(o *gt.Options) { o.Token = "wrong" })
			}
			if r := probeReason(t, p, target, 2*time.Second); r != "" {
				t.Fatalf("after %s: %q, want up", tc.name, r)
			}
			if p.AuthBackoff(target) != 0 {
				t.Error("backoff left after a success")
			}
		})
	}
}

// In backoff the gateway is still watched: one that freezes is a timeout,
// one that stops is dial, and dial ends the backoff.
func TestAuthGateLivenessDuringBackoff(t *testing.T) {
	srv := gt.New(gt.Options{Protocol: 4})
	clock := &fakeClock{now: time.Unix(1e9, 0)}
	p := &Prober{now: clock.Now}
	target := gateway.Target{Name: "gw", URL: srv.URL(), Token: "wrong"}
	if r := probeReason(t, p, target, time.Second); r != ReasonAuth {
		t.Fatalf("wrong token: %q", r)
	}
	srv.SetFault(gt.FaultNoChallenge)
	if r := probeReason(t, p, target, 300*time.Millisecond); r != ReasonTimeout {
		t.Errorf("frozen during backoff: %q, want timeout", r)
	}
	addr := srv.Addr()
	srv.Close()
	if r := probeReason(t, p, target, time.Second); r != ReasonDial {
		t.Errorf("stopped during backoff: %q, want dial", r)
	}
	if p.AuthBackoff(target) != 0 {
		t.Error("backoff kept after the gateway stopped")
	}
	_ = addr
}

// Classification from evidence: after the challenge, a gateway that answers
// pings but not connect is hello_timeout; one that answers nothing is a
// timeout.
func TestHelloTimeoutEvidence(t *testing.T) {
	for fault, want := range map[gt.Fault]Reason{
		gt.FaultStallAfterChallenge:  ReasonHelloTimeout,
		gt.FaultFreezeAfterChallenge: ReasonTimeout,
		gt.FaultNoChallenge:          ReasonTimeout,
	} {
		srv := gt.New(gt.Options{Fault: fault})
		p := &Prober{}
		if r := probeReason(t, p, gateway.Target{Name: "gw", URL: srv.URL(), Token: gt.DefaultToken}, 300*time.Millisecond); r != want {
			t.Errorf("%s: %q, want %q", fault, r, want)
		}
		srv.Close()
	}
}

// A slow login with credentials the gateway accepted before is a slow
// gateway, not a throttled refusal: no backoff, the next probe logs in.
func TestAuthGateSlowLoginWithGoodCredentials(t *testing.T) {
	srv := gt.New(gt.Options{})
	defer srv.Close()
	clock := &fakeClock{now: time.Unix(1e9, 0)}
	p := &Prober{now: clock.Now}
	target := gateway.Target{Name: "gw", URL: srv.URL(), Token: gt.DefaultToken}
	if r := probeReason(t, p, target, time.Second); r != "" {
		t.Fatalf("first probe: %q", r)
	}
	srv.SetFault(gt.FaultStallAfterChallenge)
	if r := probeReason(t, p, target, 300*time.Millisecond); r != ReasonHelloTimeout {
		t.Fatalf("stalled login: %q", r)
	}
	if b := p.AuthBackoff(target); b != 0 {
		t.Errorf("backoff %v after a slow login with accepted credentials", b)
	}
	srv.SetFault(gt.FaultNone)
	if r := probeReason(t, p, target, time.Second); r != "" {
		t.Errorf("after it recovered: %q, want up at once", r)
	}
}
