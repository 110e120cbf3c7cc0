package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/prometheus/common/version"

	"github.com/clawdbot-exporter/clawdbot_exporter/gateway"
	"github.com/clawdbot-exporter/clawdbot_exporter/gateway/prober"
)

// probeResult is the --json output of the probe subcommand.
type probeResult struct {
	Gateway   string             `json:"gateway"`
	URL       string             `json:"url"`
	Up        bool               `json:"up"`
	Reason    string             `json:"reason,omitempty"`
	Phase     string             `json:"phase,omitempty"`
	Error     string             `json:"error,omitempty"`
	Product   string             `json:"product,omitempty"`
	Protocol  int                `json:"protocol,omitempty"`
	Version   string             `json:"version,omitempty"`
	Uptime    float64            `json:"uptime_seconds,omitempty"`
	Ready     *bool              `json:"http_ready,omitempty"`
	Duration  float64            `json:"duration_seconds"`
	PhaseTime map[string]float64 `json:"phase_seconds"`
}

func probeOnce(targets []gateway.Target, timeout time.Duration, asJSON bool, out io.Writer) int {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	prober := &prober.Prober{ClientVersion: version.Version, OneShot: true}
	results := make([]probeResult, len(targets))
	done := make(chan int, len(targets))
	for i, t := range targets {
		go func() {
			begin := time.Now()
			res, err := prober.Probe(ctx, t)
			results[i] = summarize(t, res, err, time.Since(begin))
			done <- i
		}()
	}
	for range targets {
		<-done
	}
	code := 0
	for _, r := range results {
		if !r.Up {
			code = 1
		}
		if asJSON {
			b, _ := json.Marshal(r)
			fmt.Fprintln(out, string(b))
			continue
		}
		fmt.Fprintln(out, r.line())
	}
	return code
}

func summarize(t gateway.Target, res *prober.Result, err error, d time.Duration) probeResult {
	r := probeResult{Gateway: t.Name, URL: t.URL, Up: err == nil, Duration: d.Seconds(), PhaseTime: map[string]float64{}}
	for _, p := range prober.Phases() {
		r.PhaseTime[p.String()] = res.Duration(p).Seconds()
	}
	var pe *prober.ProbeError
	if errors.As(err, &pe) {
		r.Reason, r.Phase, r.Error = string(pe.Reason), pe.Phase.String(), pe.Err.Error()
	} else if err != nil {
		r.Error = err.Error()
	}
	if res.Hello != nil {
		r.Product, r.Protocol, r.Version = res.Product(), res.Hello.Protocol, res.Version()
		if u := res.Hello.Snapshot.UptimeMs; u != nil {
			r.Uptime = *u / 1000
		}
	}
	if res.Ready != nil && res.Ready.Answered {
		r.Ready = &res.Ready.Ready
	}
	return r
}

func (r probeResult) line() string {
	if !r.Up {
		return fmt.Sprintf("DOWN %s %s: %s in phase %s after %.3fs: %s", r.Gateway, r.URL, r.Reason, r.Phase, r.Duration, r.Error)
	}
	v := r.Version
	if v == "" {
		v = "unknown"
	}
	return fmt.Sprintf("UP %s %s: %s protocol %d version %s, uptime %s, health ok, %.3fs",
		r.Gateway, r.URL, r.Product, r.Protocol, v, time.Duration(r.Uptime*float64(time.Second)).Round(time.Second), r.Duration)
}
