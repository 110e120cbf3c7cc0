package collector

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/promslog"

	"github.com/clawdbot-exporter/clawdbot_exporter/gateway"
	gt "github.com/clawdbot-exporter/clawdbot_exporter/gateway/gatewaytest"
	"github.com/clawdbot-exporter/clawdbot_exporter/gateway/prober"
	"github.com/clawdbot-exporter/clawdbot_exporter/internal/secret"
)

// BenchmarkScrape measures one whole /metrics scrape: probe handshake,
// health RPC, metric encoding, against a healthy fake gateway on loopback.
func BenchmarkScrape(b *testing.B) {
	for _, bc := range []struct {
		name string
		opts gt.Options
	}{
		{"clawdbot", gt.Options{Protocol: 3}},
		{"openclaw", gt.Options{Protocol: 4}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			srv := gt.New(bc.opts)
			defer srv.Close()
			h := newTestHandler(b, []gateway.Target{{Name: "gw", URL: srv.URL(), Token: gt.DefaultToken}}, 5*time.Second)
			benchScrapes(b, h)
		})
	}
}

// benchScrapes GETs /metrics from h b.N times, accepting gzip as
// Prometheus does, and reports the CPU a scrape took (cpu-ms/op) beside
// the allocations.
func benchScrapes(b *testing.B, h http.Handler) {
	b.Helper()
	b.ReportAllocs()
	cpu0 := processCPU()
	for b.Loop() {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
		req.Header.Set("Accept-Encoding", "gzip") // as Prometheus asks
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatal(rec.Code)
		}
	}
	b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/1000/float64(b.N), "cpu-ms/op")
}

// processCPU is the user and system CPU time this process used so far: the
// cost of a scrape is CPU, which ns/op (wall time, mostly waiting for the
// gateway) does not show.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkScrapeFaults measures how long a scrape of a hung gateway takes
// for a 100 ms deadline, and reports how late past the deadline it answers
// (late-ms/op): the speed TestSoak does not assert.
func BenchmarkScrapeFaults(b *testing.B) {
	for _, f := range []gt.Fault{gt.FaultNoUpgrade, gt.FaultNoChallenge, gt.FaultStallAfterChallenge, gt.FaultStallHealth} {
		b.Run(string(f), func(b *testing.B) {
			srv := gt.New(gt.Options{Fault: f})
			defer srv.Close()
			h := newTestHandler(b, []gateway.Target{{Name: "gw", URL: srv.URL(), Token: gt.DefaultToken}}, 5*time.Second)
			var late time.Duration
			for b.Loop() {
				res := doScrape(b, h, "0.6") // 0.6 s minus the 0.5 s offset
				late += max(res.Elapsed-100*time.Millisecond, 0)
			}
			b.ReportMetric(float64(late.Milliseconds())/float64(b.N), "late-ms/op")
		})
	}
}

// BenchmarkScrapeReal scrapes a real gateway the caller started (as
// scripts/bench-compare.sh does), with every default collector, each
// collector alone, and none: where a scrape's CPU goes. It needs
// BENCH_GATEWAY_URL and BENCH_GATEWAY_TOKEN, and BENCH_GATEWAY_STATE_DIR and
// BENCH_GATEWAY_CONFIG for the local collectors; without the URL it skips.
// Run with -cpuprofile to break the time down.
func BenchmarkScrapeReal(b *testing.B) {
	url := os.Getenv("BENCH_GATEWAY_URL")
	if url == "" {
		b.Skip("BENCH_GATEWAY_URL not set: start a gateway (scripts/bench-compare.sh KEEP=1 shows how)")
	}
	t := gateway.Target{Name: "gw", URL: url, Token: secret.Secret(os.Getenv("BENCH_GATEWAY_TOKEN")),
		StateDir: os.Getenv("BENCH_GATEWAY_STATE_DIR"), ConfigPath: os.Getenv("BENCH_GATEWAY_CONFIG")}
	var defaults []string
	for _, n := range names() {
		if defaultEnabled[n] {
			defaults = append(defaults, n)
		}
	}
	cases := []struct {
		name       string
		collectors []string
	}{{"all", defaults}, {"none", nil}}
	for _, n := range defaults {
		cases = append(cases, struct {
			name       string
			collectors []string
		}{n, []string{n}})
	}
	for _, bc := range cases {
		b.Run(bc.name, func(b *testing.B) {
			exp, err := New(Config{Gateways: []gateway.Target{t}, ClientVersion: "bench"}, bc.collectors, promslog.NewNopLogger())
			if err != nil {
				b.Fatal(err)
			}
			h := NewHandler(exp, prometheus.NewRegistry(), HandlerOpts{TimeoutOffset: 500 * time.Millisecond, MaxTimeout: 5 * time.Second, Logger: promslog.NewNopLogger()})
			benchScrapes(b, h)
		})
	}
}

// BenchmarkGatewayCost reports what a probe costs the gateway
// (gateway-cpu-ms/op, from /proc/<BENCH_GATEWAY_PID>/stat): the whole probe
// (connect and health) against the WebSocket upgrade and challenge alone,
// the least any probe of the protocol can do. Skips like BenchmarkScrapeReal.
func BenchmarkGatewayCost(b *testing.B) {
	url := os.Getenv("BENCH_GATEWAY_URL")
	pid, err := strconv.Atoi(os.Getenv("BENCH_GATEWAY_PID"))
	if url == "" || err != nil {
		b.Skip("BENCH_GATEWAY_URL or BENCH_GATEWAY_PID not set")
	}
	t := gateway.Target{Name: "gw", URL: url, Token: secret.Secret(os.Getenv("BENCH_GATEWAY_TOKEN"))}
	gwCPU := func() time.Duration {
		b.Helper()
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			b.Fatal(err)
		}
		f := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+2:]))
		u, _ := strconv.ParseInt(f[11], 10, 64)
		s, _ := strconv.ParseInt(f[12], 10, 64)
		return time.Duration(u+s) * time.Second / 100 // USER_HZ
	}
	for _, bc := range []struct {
		name string
		run  func(ctx context.Context) error
	}{
		{"challenge", func(ctx context.Context) error {
			conn, _, err := websocket.DefaultDialer.DialContext(ctx, url, nil)
			if err != nil {
				return err
			}
			defer conn.Close()
			_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, _, err = conn.ReadMessage()
			return err
		}},
		{"probe", func(ctx context.Context) error {
			_, err := (&prober.Prober{ClientVersion: "bench"}).Probe(ctx, t)
			return err
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			c0 := gwCPU()
			for b.Loop() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				err := bc.run(ctx)
				cancel()
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64((gwCPU()-c0).Microseconds())/1000/float64(b.N), "gateway-cpu-ms/op")
		})
	}
}
