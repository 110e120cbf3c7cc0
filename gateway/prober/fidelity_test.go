package prober

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/clawdbot-exporter/clawdbot_exporter/gateway"
	gt "github.com/clawdbot-exporter/clawdbot_exporter/gateway/gatewaytest"
	"github.com/clawdbot-exporter/clawdbot_exporter/internal/testutil"
)

func countMethod(s *gt.Server, method string) int {
	n := 0
	for _, m := range s.Methods() {
		if m == method {
			n++
		}
	}
	return n
}

func probeOK(t *testing.T, p *Prober, target gateway.Target) *Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := p.Probe(ctx, target)
	if err != nil {
		t.Fatalf("probe: %v", err)
	}
	return res
}

// openclaw restarts inside its process: only the bootId changes. Each
// restart counts once, however many probes see it and whatever else (the
// process collector's start time) reports it.
func TestRestartsInProcess(t *testing.T) {
	srv := gt.New(gt.Options{Protocol: 4})
	defer srv.Close()
	p := &Prober{}
	target := gateway.Target{Name: "gw", URL: srv.URL(), Token: gt.DefaultToken}
	for range 3 {
		probeOK(t, p, target)
	}
	if n, last := p.Restarts(target); n != 0 || !last.IsZero() {
		t.Fatalf("restarts before any restart = %d (last %v), want 0", n, last)
	}
	srv.RestartInProcess()
	res := probeOK(t, p, target)
	probeOK(t, p, target)
	p.ObserveRestart(target, "", 1234) // the process collector: first start time seen
	n, last := p.Restarts(target)
	if n != 1 || last.IsZero() {
		t.Fatalf("restarts after one in-process restart = %d (last %v), want 1", n, last)
	}
	if res.BuildID() != "gatewaytest" {
		t.Errorf("build id = %q, want gatewaytest", res.BuildID())
	}
	// A new process: new start time, and then a new bootId: one restart.
	p.ObserveRestart(target, "", 5678)
	srv.RestartInProcess()
	probeOK(t, p, target)
	if n, _ := p.Restarts(target); n != 2 {
		t.Fatalf("restarts after a process restart seen twice = %d, want 2", n)
	}
}

func TestRestartEvidence(t *testing.T) {
	ms := func(v float64) *float64 { return &v }
	t0 := time.Unix(1_000_000, 0)
	type obs struct {
		at time.Duration
		ev evidence
	}
	tests := []struct {
		name string
		obs  []obs
		want uint64
	}{
		{"first sight is a baseline", []obs{{0, evidence{bootID: "a", startTicks: 5, uptimeMs: ms(1e6)}}}, 0},
		{"bootId changes", []obs{{0, evidence{bootID: "a"}}, {time.Minute, evidence{bootID: "b"}}, {2 * time.Minute, evidence{bootID: "b"}}}, 1},
		{"openclaw's uptime runs on across its restart", []obs{
			{0, evidence{bootID: "a", uptimeMs: ms(5e6)}}, {time.Minute, evidence{bootID: "a", uptimeMs: ms(5.06e6)}},
		}, 0},
		{"clawdbot: uptime went down", []obs{
			{0, evidence{uptimeMs: ms(5e6)}}, {time.Minute, evidence{uptimeMs: ms(3e4)}}, {2 * time.Minute, evidence{uptimeMs: ms(9e4)}},
		}, 1},
		{"wall clock stepped back: an old gateway is not young", []obs{
			{0, evidence{uptimeMs: ms(5e6)}}, {time.Minute, evidence{uptimeMs: ms(4.9e6)}},
		}, 0},
		{"start time and uptime of one restart count once", []obs{
			{0, evidence{startTicks: 100}}, {0, evidence{uptimeMs: ms(5e6)}},
			{time.Minute, evidence{startTicks: 200}}, {time.Minute, evidence{uptimeMs: ms(2e4)}},
		}, 1},
		{"start time and bootId of one restart count once, either order", []obs{
			{0, evidence{startTicks: 100}}, {0, evidence{bootID: "a"}},
			{time.Minute, evidence{bootID: "b"}}, {time.Minute, evidence{startTicks: 200}},
			{2 * time.Minute, evidence{startTicks: 300}}, {2 * time.Minute, evidence{bootID: "c"}},
		}, 2},
		{"in-process restart, then a process restart", []obs{
			{0, evidence{startTicks: 100}}, {0, evidence{bootID: "a"}},
			{time.Minute, evidence{bootID: "b"}}, {time.Minute, evidence{startTicks: 100}},
			{2 * time.Minute, evidence{startTicks: 200}}, {2 * time.Minute, evidence{bootID: "c"}},
		}, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var r restarts
			for _, o := range tc.obs {
				r.observe("k", o.ev, t0.Add(o.at))
			}
			if got, _ := r.get("k"); got != tc.want {
				t.Errorf("restarts = %d, want %d", got, tc.want)
			}
		})
	}
}

func writeFile(t *testing.T, name string, b []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// A TLS gateway with openclaw's autoGenerate certificate (no IP SANs):
// pinned from its file or by fingerprint it is up, /readyz over https
// included; any other certificate is reason tls.
func TestTLS(t *testing.T) {
	srv := gt.New(gt.Options{Protocol: 4, TLS: true})
	defer srv.Close()
	if !strings.HasPrefix(srv.URL(), "wss://") {
		t.Fatalf("URL %s", srv.URL())
	}
	blk, _ := pem.Decode(srv.CertPEM())
	sum := sha256.Sum256(blk.Bytes)
	fp := hex.EncodeToString(sum[:])
	var colons []string
	for i := 0; i < len(fp); i += 2 {
		colons = append(colons, strings.ToUpper(fp[i:i+2]))
	}
	_, otherPEM := gt.SelfSigned("openclaw-gateway")
	otherBlk, _ := pem.Decode(otherPEM)
	otherSum := sha256.Sum256(otherBlk.Bytes)

	good := writeFile(t, "gateway-cert.pem", srv.CertPEM())
	wrong := writeFile(t, "other.pem", otherPEM)
	base := gateway.Target{Name: "tls", URL: srv.URL(), Token: gt.DefaultToken}
	refused := testutil.RefusedAddr(t)
	tests := []struct {
		name   string
		mod    func(*gateway.Target)
		reason Reason
	}{
		{"the gateway's own certificate file", func(t *gateway.Target) { t.TLSCertFile = good }, ""},
		{"fingerprint, hex", func(t *gateway.Target) { t.TLSFingerprint = fp }, ""},
		{"fingerprint, colons, upper case", func(t *gateway.Target) { t.TLSFingerprint = strings.Join(colons, ":") }, ""},
		{"another certificate file", func(t *gateway.Target) { t.TLSCertFile = wrong }, ReasonTLS},
		{"another fingerprint", func(t *gateway.Target) { t.TLSFingerprint = hex.EncodeToString(otherSum[:]) }, ReasonTLS},
		{"fingerprint wins over a wrong file", func(t *gateway.Target) { t.TLSFingerprint, t.TLSCertFile = fp, wrong }, ""},
		// A CA file verifies the hostname too: a certificate without IP
		// SANs cannot pass for 127.0.0.1.
		{"CA file, certificate without the address", func(t *gateway.Target) { t.TLSCAFile = good }, ReasonTLS},
		{"system roots", func(*gateway.Target) {}, ReasonTLS},
		{"missing certificate file", func(t *gateway.Target) { t.TLSCertFile = filepath.Join(t.TLSCertFile, "nope") }, ReasonTLS},
		// Not listening yet, and no certificate file yet (autoGenerate
		// writes it at start): dial, not tls.
		{"nothing listens, no certificate file yet", func(t *gateway.Target) {
			t.URL, t.TLSCertFile = "wss://"+refused, filepath.Join(good, "nope")
		}, ReasonDial},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			target := base
			tc.mod(&target)
			p := &Prober{}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			res, err := p.Probe(ctx, target)
			var got Reason
			var pe *ProbeError
			if errors.As(err, &pe) {
				got = pe.Reason
			}
			if got != tc.reason {
				t.Fatalf("reason %q, want %q (err %v)", got, tc.reason, err)
			}
			if tc.reason == "" && (res.Ready == nil || !res.Ready.Ready) {
				t.Errorf("/readyz over https: %+v, want ready", res.Ready)
			}
		})
	}
}

// The status RPC is asked at most once a minute per gateway; in between
// the cached payload is reported.
func TestStatusCached(t *testing.T) {
	srv := gt.New(gt.Options{Protocol: 4})
	defer srv.Close()
	clock := &fakeClock{now: time.Unix(2_000_000, 0)}
	p := &Prober{now: clock.Now}
	target := gateway.Target{Name: "gw", URL: srv.URL(), Token: gt.DefaultToken}
	res := probeOK(t, p, target)
	if res.Status == nil || res.Status.Tasks == nil || res.Status.Tasks.Total == nil || *res.Status.Tasks.Total != gt.StatusTasksTotal {
		t.Fatalf("status = %+v, want tasks.total %d", res.Status, gt.StatusTasksTotal)
	}
	if res.Status.Tasks.ByStatus == nil || res.Status.Tasks.ByStatus.TimedOut == nil || *res.Status.Tasks.ByStatus.TimedOut != 1 {
		t.Errorf("tasks.byStatus.timed_out not decoded: %+v", res.Status.Tasks.ByStatus)
	}
	for range 5 {
		clock.Add(10 * time.Second)
		if r := probeOK(t, p, target); r.Status == nil || !r.StatusAt.Equal(res.StatusAt) {
			t.Fatalf("cached status = %v at %v, want the first one (at %v)", r.Status, r.StatusAt, res.StatusAt)
		}
	}
	if n := countMethod(srv, "status"); n != 1 {
		t.Fatalf("status calls within a minute = %d, want 1", n)
	}
	clock.Add(11 * time.Second)
	probeOK(t, p, target)
	if n := countMethod(srv, "status"); n != 2 {
		t.Fatalf("status calls after a minute = %d, want 2", n)
	}

	// clawdbot: never asked.
	cb := gt.New(gt.Options{Protocol: 3})
	defer cb.Close()
	if r := probeOK(t, p, gateway.Target{Name: "cb", URL: cb.URL(), Token: gt.DefaultToken}); r.Status != nil || countMethod(cb, "status") != 0 {
		t.Errorf("clawdbot was asked for status: %+v", r.Status)
	}
}

// A status RPC that never answers costs at most half the time left: the
// probe still reports the gateway up, without status figures.
func TestStatusStalled(t *testing.T) {
	srv := gt.New(gt.Options{Protocol: 4, Fault: gt.FaultStallStatus})
	defer srv.Close()
	p := &Prober{}
	target := gateway.Target{Name: "gw", URL: srv.URL(), Token: gt.DefaultToken}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	res, err := p.Probe(ctx, target)
	if err != nil || res.Status != nil {
		t.Fatalf("probe with a stalled status: err %v, status %+v; want up without status", err, res.Status)
	}
	if countMethod(srv, "status") != 1 {
		t.Fatalf("status not asked: %v", srv.Methods())
	}
}

// A gateway that has /readyz reports it not ready, not absent, while it
// is down; clawdbot, whose /readyz is its HTML page, has none.
func TestReadyRemembered(t *testing.T) {
	srv := gt.New(gt.Options{Protocol: 4})
	target := gateway.Target{Name: "gw", URL: srv.URL(), Token: gt.DefaultToken}
	p := &Prober{}
	if r := probeOK(t, p, target); r.Ready == nil || !r.Ready.Ready {
		t.Fatalf("ready = %+v", r.Ready)
	}
	srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	res, err := p.Probe(ctx, target)
	if err == nil || res.Ready == nil || res.Ready.Ready || res.Ready.Answered {
		t.Fatalf("down gateway with /readyz: err %v, ready %+v; want not ready", err, res.Ready)
	}

	cb := gt.New(gt.Options{Protocol: 3})
	cbt := gateway.Target{Name: "cb", URL: cb.URL(), Token: gt.DefaultToken}
	if r := probeOK(t, p, cbt); r.Ready != nil {
		t.Fatalf("clawdbot ready = %+v, want none", r.Ready)
	}
	cb.Close()
	if res, _ := p.Probe(ctx, cbt); res.Ready != nil {
		t.Fatalf("down clawdbot ready = %+v, want none", res.Ready)
	}
}

// A trickled upgrade answer cut by the deadline is a timeout, never
// "upgrade" (malformed HTTP response), whatever byte the deadline hits.
func TestTrickledUpgradeIsTimeout(t *testing.T) {
	srv := gt.New(gt.Options{Protocol: 4, Fault: gt.FaultTrickleUpgrade})
	defer srv.Close()
	p := &Prober{}
	target := gateway.Target{Name: "gw", URL: srv.URL(), Token: gt.DefaultToken}
	for i := range 12 {
		// 30 ms steps land the deadline on every part of the status
		// line and the headers.
		d := 200*time.Millisecond + time.Duration(i)*230*time.Millisecond
		if r := probeReason(t, p, target, d); r != ReasonTimeout {
			t.Fatalf("deadline %v: reason %q, want timeout", d, r)
		}
	}
}

// A clawdbot has no /readyz (its Control UI page answers every path): once
// the hello-ok says so, probes stop asking, and ask again when an
// openclaw answers on that address.
func TestReadyzSkippedForClawdbot(t *testing.T) {
	srv := gt.New(gt.Options{Protocol: 3})
	defer srv.Close()
	target := gateway.Target{Name: "cb", URL: srv.URL(), Token: gt.DefaultToken}
	p := &Prober{}
	for range 5 {
		probeOK(t, p, target)
	}
	if n := srv.ReadyzGets(); n != 1 {
		t.Fatalf("%d GETs of /readyz in 5 probes of a clawdbot, want 1", n)
	}
	// The same address now answers as openclaw: one probe without the
	// request (it was remembered), then /readyz again on every probe.
	srv.SetOptions(func(o *gt.Options) { o.Protocol = 4 })
	probeOK(t, p, target)
	for range 3 {
		if r := probeOK(t, p, target); r.Ready == nil || !r.Ready.Ready {
			t.Fatalf("openclaw ready = %+v", r.Ready)
		}
	}
	if n := srv.ReadyzGets(); n != 4 {
		t.Errorf("%d GETs of /readyz, want 1 + 3 after the switch", n)
	}
}

// A one-shot prober (the probe subcommand) asks /readyz only once hello-ok
// named a gateway that may have it: never a clawdbot's Control UI page, and
// an openclaw's readiness still.
func TestOneShotReadyz(t *testing.T) {
	for _, c := range []struct {
		protocol  int
		wantGets  int64
		wantReady bool
	}{{3, 0, false}, {4, 1, true}} {
		srv := gt.New(gt.Options{Protocol: c.protocol})
		r := probeOK(t, &Prober{OneShot: true}, gateway.Target{Name: "gw", URL: srv.URL(), Token: gt.DefaultToken})
		if n := srv.ReadyzGets(); n != c.wantGets {
			t.Errorf("protocol %d: %d GETs of /readyz, want %d", c.protocol, n, c.wantGets)
		}
		if got := r.Ready != nil && r.Ready.Ready; got != c.wantReady {
			t.Errorf("protocol %d: ready = %+v, want ready=%v", c.protocol, r.Ready, c.wantReady)
		}
		srv.Close()
	}
}
