package remediate

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/procfs"

	"github.com/clawdbot-exporter/clawdbot_exporter/gateway"
	gt "github.com/clawdbot-exporter/clawdbot_exporter/gateway/gatewaytest"
	"github.com/clawdbot-exporter/clawdbot_exporter/gateway/prober"
)

// The warm-up grace counts from the last restart of any kind: openclaw's
// in-process restart keeps the pid and start time, only its bootId tells.
func TestProcessAgeCountsInProcessRestarts(t *testing.T) {
	srv := gt.New(gt.Options{Protocol: 4})
	defer srv.Close()
	root := t.TempDir() // no process at all: a remote gateway
	fs, err := procfs.NewFS(root)
	if err != nil {
		t.Fatal(err)
	}
	target := gateway.Target{Name: "gw", URL: srv.URL(), Token: gt.DefaultToken}
	p := &prober.Prober{}
	w := &LocalWorld{Gateways: func() []gateway.Target { return []gateway.Target{target} }, FS: fs, ProcRoot: root, Prober: p}
	probe := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := p.Probe(ctx, target); err != nil {
			t.Fatal(err)
		}
	}
	probe()
	if age, ok := w.ProcessAge("gw"); ok {
		t.Fatalf("age %v known before any restart or process", age)
	}
	srv.RestartInProcess()
	probe()
	age, ok := w.ProcessAge("gw")
	if !ok || age < 0 || age > time.Minute {
		t.Fatalf("age after an in-process restart = %v (known %v), want just now", age, ok)
	}
}
