// Package status keeps what the landing page shows: each gateway's recent
// probes, and renders the page.
package status

import (
	"sort"
	"sync"
	"time"
)

// Probe is one probe's outcome.
type Probe struct {
	Time     time.Time
	Gateway  string
	Up       bool
	Reason   string
	Phase    string
	Error    string
	Product  string
	Version  string
	Duration time.Duration
	Phases   []PhaseTime
}

// PhaseTime is the time one phase took.
type PhaseTime struct {
	Name     string
	Duration time.Duration
}

// ProbeLog keeps the last N probes of each gateway; safe for concurrent use.
type ProbeLog struct {
	mu   sync.Mutex
	n    int
	byGW map[string][]Probe
}

// NewProbeLog keeps n probes per gateway.
func NewProbeLog(n int) *ProbeLog { return &ProbeLog{n: n, byGW: map[string][]Probe{}} }

// Add records a probe. A nil log records nothing.
func (l *ProbeLog) Add(p Probe) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	ps := append(l.byGW[p.Gateway], p)
	if len(ps) > l.n {
		ps = ps[len(ps)-l.n:]
	}
	l.byGW[p.Gateway] = ps
}

// Recent returns a gateway's probes, newest first.
func (l *ProbeLog) Recent(gateway string) []Probe {
	l.mu.Lock()
	defer l.mu.Unlock()
	ps := l.byGW[gateway]
	out := make([]Probe, len(ps))
	for i, p := range ps {
		out[len(ps)-1-i] = p
	}
	return out
}

// Gateways lists the gateways with probes, sorted.
func (l *ProbeLog) Gateways() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]string, 0, len(l.byGW))
	for g := range l.byGW {
		out = append(out, g)
	}
	sort.Strings(out)
	return out
}
