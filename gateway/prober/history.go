package prober

// The probe history lives with the prober that makes it (blackbox_exporter
// keeps its ResultHistory the same way); the status page reads it.

import (
	"errors"
	"sort"
	"sync"
	"time"
)

// Sources of probes: who asked for one.
const (
	SourceScrape = "scrape" // a /metrics scrape
	SourceWatch  = "watch"  // the watch loop
	SourceVerify = "verify" // remediation verifying an action
	SourceView   = "view"   // the status page, when nothing else probed
)

// Record is one probe's outcome, for the status page and the watch loop.
type Record struct {
	Time     time.Time
	Gateway  string
	Source   string
	Up       bool
	Reason   string
	Phase    string
	Error    string
	Product  string
	Version  string
	Duration time.Duration
	Phases   []PhaseTime
	// Err is the probe's error for the caller that made it; History does
	// not keep it.
	Err error `json:"-"`
}

// PhaseTime is the time one phase took.
type PhaseTime struct {
	Name     string
	Duration time.Duration
}

// End is when the probe's result was known.
func (r Record) End() time.Time { return r.Time.Add(r.Duration) }

// Summarize turns a probe into its record.
func Summarize(name, source string, begin time.Time, res *Result, err error) Record {
	if res == nil {
		res = &Result{}
	}
	p := Record{Time: begin, Gateway: name, Source: source, Up: err == nil, Duration: time.Since(begin), Product: res.Product(), Version: res.Version()}
	var pe *ProbeError
	if errors.As(err, &pe) {
		p.Reason, p.Phase, p.Error = string(pe.Reason), pe.Phase.String(), pe.Err.Error()
	} else if err != nil {
		p.Error = err.Error()
	}
	for _, ph := range Phases() {
		p.Phases = append(p.Phases, PhaseTime{Name: ph.String(), Duration: res.Duration(ph)})
	}
	return p
}

// History keeps the last N probes of each gateway, and how often each
// source probes it; safe for concurrent use.
type History struct {
	mu   sync.Mutex
	n    int
	byGW map[string][]Record
	// pace is, per gateway and source, the last probe's time and the gap
	// before it: the interval a source probes at, as seen.
	pace map[string]map[string]pace
}

type pace struct {
	last time.Time
	gap  time.Duration
}

// NewHistory keeps n probes per gateway.
func NewHistory(n int) *History {
	return &History{n: n, byGW: map[string][]Record{}, pace: map[string]map[string]pace{}}
}

// Add records a probe. A nil log records nothing.
func (l *History) Add(p Record) {
	if l == nil {
		return
	}
	p.Err = nil
	l.mu.Lock()
	defer l.mu.Unlock()
	ps := append(l.byGW[p.Gateway], p)
	if len(ps) > l.n {
		ps = ps[len(ps)-l.n:]
	}
	l.byGW[p.Gateway] = ps
	bySrc := l.pace[p.Gateway]
	if bySrc == nil {
		bySrc = map[string]pace{}
		l.pace[p.Gateway] = bySrc
	}
	pc := bySrc[p.Source]
	if !pc.last.IsZero() && p.Time.After(pc.last) {
		pc.gap = p.Time.Sub(pc.last)
	}
	if p.Time.After(pc.last) {
		pc.last = p.Time
	}
	bySrc[p.Source] = pc
}

// Last is the gateway's newest probe, from any source.
func (l *History) Last(gateway string) (Record, bool) {
	if l == nil {
		return Record{}, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	ps := l.byGW[gateway]
	if len(ps) == 0 {
		return Record{}, false
	}
	best := ps[len(ps)-1]
	for _, p := range ps {
		if p.Time.After(best.Time) {
			best = p
		}
	}
	return best, true
}

// Pace is the gap between a source's last two probes of the gateway, and
// when it last probed; zero values when it has not probed twice.
func (l *History) Pace(gateway, source string) (gap time.Duration, last time.Time) {
	if l == nil {
		return 0, time.Time{}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	pc := l.pace[gateway][source]
	return pc.gap, pc.last
}

// Recent returns a gateway's probes, newest first.
func (l *History) Recent(gateway string) []Record {
	if l == nil {
		return nil
	}
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
