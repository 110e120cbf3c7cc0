package collector

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/clawdbot-exporter/clawdbot_exporter/gateway"
	gt "github.com/clawdbot-exporter/clawdbot_exporter/gateway/gatewaytest"
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
			b.ReportAllocs()
			for b.Loop() {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
				if rec.Code != http.StatusOK {
					b.Fatal(rec.Code)
				}
			}
		})
	}
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
