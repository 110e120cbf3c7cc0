package collector

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/promslog"

	"github.com/clawdbot-exporter/clawdbot_exporter/gateway"
	"github.com/clawdbot-exporter/clawdbot_exporter/gateway/prober"
)

// metricsOf collects fixed metrics as a collector for a registry.
type metricsOf []prometheus.Metric

func (metricsOf) Describe(chan<- *prometheus.Desc) {}
func (m metricsOf) Collect(ch chan<- prometheus.Metric) {
	for _, x := range m {
		ch <- x
	}
}

// FuzzHealthPayload: whatever a gateway sends as its health payload, what
// the exporter makes of it gathers cleanly: valid UTF-8 labels, no
// duplicate series, bounded, never a panic.
func FuzzHealthPayload(f *testing.F) {
	for _, seed := range []string{
		`{"ok":true,"channels":{"telegram":{"accountId":"a","configured":true,"accounts":{"a":{"running":false},"b":{"accountId":"a"}}}},"agents":[{"agentId":"main","sessions":{"count":2,"recent":[{"updatedAt":1}]}},{"agentId":"main"}]}`,
		`{"ok":false,"eventLoop":{"degraded":true,"reasons":["cpu","x\xff"],"delayP99Ms":1e308},"plugins":{"loaded":[1,2],"errors":3}}`,
		`{"channels":{"\u00e9\u00e9":{"accounts":{"":{}}}},"agents":[{"agentId":""}]}`,
		`{}`, `[]`, `null`,
	} {
		f.Add([]byte(seed))
	}
	c, err := newProbeCollector(Config{Gateways: []gateway.Target{{Name: "gw", URL: "ws://127.0.0.1:1"}}, ProbeMaxItems: 20}, promslog.NewNopLogger())
	if err != nil {
		f.Fatal(err)
	}
	pc := c.(*probeCollector)
	f.Fuzz(func(t *testing.T, b []byte) {
		var h prober.Health
		if json.Unmarshal(b, &h) != nil {
			return
		}
		var out metricsOf
		gauge := func(d *prometheus.Desc, v float64, labels ...string) {
			out = append(out, newMetric(d, prometheus.GaugeValue, v, append([]string{"gw"}, labels...)...))
		}
		pc.exportHealth(gauge, &h, time.Unix(1e9, 0))
		if len(out) > 20*20 {
			t.Fatalf("%d series from one payload: the caps do not hold", len(out))
		}
		reg := prometheus.NewRegistry()
		reg.MustRegister(out)
		if _, err := reg.Gather(); err != nil {
			t.Fatalf("the payload's metrics do not gather: %v", err)
		}
	})
}
