package prober

// The probe history lives with the prober that makes it (blackbox_exporter
// keeps its ResultHistory the same way); the status page reads it.

import (
	"sort"
	"sync"
	"time"
)

// Record is one probe's outcome, for the status page.
type Record struct {
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

// History keeps the last N probes of each gateway; safe for concurrent use.
type History struct {
	mu   sync.Mutex
	n    int
	byGW map[string][]Record
}

// NewHistory keeps n probes per gateway.
func NewHistory(n int) *History { return &History{n: n, byGW: map[string][]Record{}} }

// Add records a probe. A nil log records nothing.
func (l *History) Add(p Record) {
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
func (l *History) Recent(gateway string) []Record {
	l.mu.Lock()
	defer l.mu.Unlock()
	ps := l.byGW[gateway]
	out := make([]Record, len(ps))
	for i, p := range ps {
		out[len(ps)-1-i] = p
	}
	return out
}

// Gateways lists the gateways with probes, sorted.
func (l *History) Gateways() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]string, 0, len(l.byGW))
	for g := range l.byGW {
		out = append(out, g)
	}
	sort.Strings(out)
	return out
}
