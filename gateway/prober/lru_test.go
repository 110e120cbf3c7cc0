package prober

import (
	"context"
	"errors"
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/clawdbot-exporter/clawdbot_exporter/gateway"
	gt "github.com/clawdbot-exporter/clawdbot_exporter/gateway/gatewaytest"
	"github.com/clawdbot-exporter/clawdbot_exporter/internal/secret"
)

// A target forgotten by the bound starts again: its restart counter at 0
// (documented as a counter reset), its auth backoff cleared.
func TestPerTargetStateBoundedAndResetOnEviction(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1e9, 0)}
	p := &Prober{now: clock.Now}
	p.SetMaxTargets(3)
	first := gateway.Target{Name: "", URL: "ws://10.0.0.1:18789/"}
	p.ObserveRestart(first, "boot-1", 0)
	p.ObserveRestart(first, "boot-2", 0)
	if n, _ := p.Restarts(first); n != 1 {
		t.Fatalf("restarts before eviction: %d, want 1", n)
	}
	key := gateKey(first)
	creds := fingerprint(secret.Secret("wrong"), "")
	p.gate.admit(key, creds, clock.Now())
	p.gate.done(key, creds, ReasonAuth, clock.Now())
	if p.AuthBackoff(first) == 0 {
		t.Fatal("no backoff after a refusal")
	}
	for i := range 10 {
		other := gateway.Target{URL: "ws://10.0.1." + strconv.Itoa(i) + ":18789/"}
		p.ObserveRestart(other, "b", 0)
		p.gate.admit(gateKey(other), creds, clock.Now())
	}
	if n := p.TargetsKept(); n != 3 {
		t.Errorf("targets kept: %d, want the bound 3", n)
	}
	if n, _ := p.Restarts(first); n != 0 {
		t.Errorf("restarts after eviction: %d, want 0 (reset)", n)
	}
	if b := p.AuthBackoff(first); b != 0 {
		t.Errorf("backoff after eviction: %v, want 0", b)
	}
}

// The dial hook carries every connection of a probe, the WebSocket and the
// /readyz request alike: the /probe guard relies on it to connect only to
// the addresses it vetted.
func TestDialHookCarriesEveryConnection(t *testing.T) {
	srv := gt.New(gt.Options{Protocol: 4})
	defer srv.Close()
	var dials atomic.Int32
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		return (&net.Dialer{}).DialContext(ctx, network, srv.Addr())
	}
	p := &Prober{}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// The URL names a host that does not exist: only the hook reaches the
	// gateway.
	_, port, _ := net.SplitHostPort(srv.Addr())
	target := gateway.Target{Name: "hook", URL: "ws://gateway.invalid:" + port, Token: gt.DefaultToken}
	if _, err := p.Probe(WithDial(ctx, dial), target); err != nil {
		t.Fatalf("probe through the hook: %v", err)
	}
	if n := dials.Load(); n < 2 {
		t.Errorf("hook dialled %d times, want the WebSocket and /readyz", n)
	}
	refuse := func(context.Context, string, string) (net.Conn, error) { return nil, errors.New("refused by the hook") }
	before := srv.Accepted()
	if _, err := p.Probe(WithDial(ctx, refuse), target); err == nil {
		t.Fatal("a probe whose hook refuses succeeded")
	}
	if srv.Accepted() != before {
		t.Errorf("the gateway accepted %d connections the hook refused", srv.Accepted()-before)
	}
}
