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
