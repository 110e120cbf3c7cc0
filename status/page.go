package status

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/clawdbot-exporter/clawdbot_exporter/gateway/lockfile"
	"github.com/clawdbot-exporter/clawdbot_exporter/gateway/prober"
	"github.com/clawdbot-exporter/clawdbot_exporter/remediate"
)

// Page is the exporter's landing page: exporter-toolkit's page with, below
// it, what a person looks at when Grafana is not at hand. Every value from a
// gateway, a lock file or an alert goes through html/template's escaping.
// It is served without authentication when the exporter has none, so it is
// bounded like /metrics: a deadline on what it gathers, a cap on the rows
// of each table (with how many more there were) and on concurrent loads.
type Page struct {
	head, tail []byte
	src        Sources
	lim        Limits
	inFlight   chan struct{}
	// viewing holds the view probes under way, by gateway: concurrent
	// loads wait for the one probe instead of each making their own.
	mu      sync.Mutex
	viewing map[string]chan struct{}
}

// Sources are where the page's data comes from. Locks, Remediation and
// Problems may be nil.
type Sources struct {
	Gateways func() []string
	Probes   *prober.History
	// Locks scans the lock files; it must stop when ctx ends. Its result
	// is waited for until the page's deadline, and the scan keeps the
	// load's concurrency slot until it returns.
	Locks       func(ctx context.Context) lockfile.Result
	Remediation func() []remediate.Decision
	// Problems are the gateways whose own files are not usable now.
	Problems func() []Problem
	// Targets are the remediation targets' states (breaker, next allowed
	// action, watch loop); nil without remediation.
	Targets func() []remediate.TargetStatus
	// Probe, when set, probes a gateway for the page when nothing else has
	// lately (no scrape, no watch loop): the page is never staler than
	// twice the interval the gateway is expected to be probed at. It must
	// record the probe in Probes and stop when ctx ends.
	Probe func(ctx context.Context, gateway string) prober.Record
}

// ViewFresh is how old a probe may be, for a gateway nothing probes at a
// known pace, before a page view probes it again.
const ViewFresh = 5 * time.Second

// Problem is one gateway whose files are not usable, and why.
type Problem struct{ Gateway, Err string }

// Limits bound one page load.
type Limits struct {
	// Timeout bounds the gathering; what is not there by then is reported
	// as missing. 0 means DefaultTimeout.
	Timeout time.Duration
	// MaxRows per table; 0 means DefaultMaxRows.
	MaxRows int
	// MaxRequests in flight; 0 means no limit.
	MaxRequests int
}

// Defaults of Limits.
const (
	DefaultTimeout = 5 * time.Second
	DefaultMaxRows = 100
)

// NewPage wraps the toolkit's landing page.
func NewPage(landing http.Handler, src Sources, lim Limits) (*Page, error) {
	rec := &recorder{header: http.Header{}, code: http.StatusOK}
	req, err := http.NewRequest(http.MethodGet, "/", nil)
	if err != nil {
		return nil, err
	}
	landing.ServeHTTP(rec, req)
	html := rec.body.Bytes()
	i := bytes.LastIndex(html, []byte("</body>"))
	if rec.code != http.StatusOK || i < 0 {
		return nil, fmt.Errorf("landing page: unexpected answer %d", rec.code)
	}
	if lim.Timeout <= 0 {
		lim.Timeout = DefaultTimeout
	}
	if lim.MaxRows <= 0 {
		lim.MaxRows = DefaultMaxRows
	}
	p := &Page{head: html[:i], tail: html[i:], src: src, lim: lim}
	if lim.MaxRequests > 0 {
		p.inFlight = make(chan struct{}, lim.MaxRequests)
	}
	return p, nil
}

// recorder keeps the landing page's answer. It stands in for
// httptest.ResponseRecorder, whose package (and its test certificate) would
// otherwise be linked into the binary and initialised at every start.
type recorder struct {
	header http.Header
	body   bytes.Buffer
	code   int
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
func (r *recorder) WriteHeader(code int)        { r.code = code }

type view struct {
	Now          time.Time
	Gateways     []gatewayView
	MoreGateways int
	Problems     []Problem
	MoreProblems int
	Locks        []lockfile.Lock
	MoreLocks    int
	LocksOn      bool
	// LocksCut says why the lock table is incomplete (the deadline, a
	// directory too large), "" when it is not.
	LocksCut    string
	Remediation []remediate.Decision
	MoreRem     int
	RemOn       bool
	Targets     []remediate.TargetStatus
	MoreTargets int
}

type gatewayView struct {
	Name   string
	Last   *prober.Record
	Probes []prober.Record
	More   int
	// Expected is the interval the gateway is probed at (the watch loop's,
	// the scrapes'), 0 when unknown.
	Expected time.Duration
	// Stale: the newest result is older than twice Expected and no
	// fresher one could be had.
	Stale bool
	// OnView: the page probed it, as nothing else had lately; Before is
	// the age of the newest result it found (0: none).
	OnView bool
	Before time.Duration
}

// capRows keeps the first n rows and says how many more there were.
func capRows[T any](rows []T, n int) ([]T, int) {
	if len(rows) <= n {
		return rows, 0
	}
	return rows[:n], len(rows) - n
}

func (p *Page) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		http.NotFound(w, r)
		return
	}
	release := func() {}
	if p.inFlight != nil {
		select {
		case p.inFlight <- struct{}{}:
			var once sync.Once
			release = func() { once.Do(func() { <-p.inFlight }) }
		default:
			http.Error(w, "too many concurrent status page loads", http.StatusServiceUnavailable)
			return
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), p.lim.Timeout)
	defer cancel()
	v := view{Now: time.Now(), LocksOn: p.src.Locks != nil, RemOn: p.src.Remediation != nil}
	// The scan starts first and runs while the rest is gathered.
	var locks chan lockfile.Result
	if p.src.Locks != nil {
		locks = make(chan lockfile.Result, 1)
		go func() {
			defer release() // the slot is held until the scan really ends
			defer func() {
				if v := recover(); v != nil {
					locks <- lockfile.Result{Err: fmt.Errorf("lock scan panicked: %v", v)}
				}
			}()
			locks <- p.src.Locks(ctx)
		}()
	} else {
		defer release()
	}
	names, more := capRows(p.src.Gateways(), p.lim.MaxRows)
	v.MoreGateways = more
	var targets []remediate.TargetStatus
	if p.src.Targets != nil {
		targets = p.src.Targets()
		v.Targets, v.MoreTargets = capRows(targets, p.lim.MaxRows)
	}
	p.refresh(ctx, v.Now, names, targets)
	for _, g := range names {
		gv := gatewayView{Name: g, Expected: p.expected(g, targets)}
		gv.Probes, gv.More = capRows(p.src.Probes.Recent(g), p.lim.MaxRows)
		if last, ok := p.src.Probes.Last(g); ok {
			gv.Last = &last
			gv.Stale = stale(v.Now, last, gv.Expected)
			if last.Source == prober.SourceView && len(gv.Probes) > 1 {
				gv.OnView = v.Now.Sub(last.Time) < p.lim.Timeout+time.Second
				for _, r := range gv.Probes[1:] {
					if r.Source != prober.SourceView {
						gv.Before = v.Now.Sub(r.Time)
						break
					}
				}
			}
		}
		v.Gateways = append(v.Gateways, gv)
	}
	if p.src.Problems != nil {
		v.Problems, v.MoreProblems = capRows(p.src.Problems(), p.lim.MaxRows)
	}
	if p.src.Remediation != nil {
		v.Remediation, v.MoreRem = capRows(p.src.Remediation(), p.lim.MaxRows)
	}
	if locks != nil {
		select {
		case res := <-locks:
			v.Locks, v.MoreLocks = capRows(res.Locks, p.lim.MaxRows)
			switch {
			case errors.Is(res.Err, context.DeadlineExceeded):
				v.LocksCut = fmt.Sprintf("the scan did not finish within %v", p.lim.Timeout)
			case res.Err != nil:
				v.LocksCut = res.Err.Error()
			case len(res.Dropped) > 0:
				v.LocksCut = "some directories hold more files than one scan reads: " + dropped(res.Dropped)
			}
		case <-ctx.Done():
			v.LocksCut = fmt.Sprintf("the scan did not finish within %v", p.lim.Timeout)
		}
	}
	var body bytes.Buffer
	if err := page().Execute(&body, v); err != nil {
		http.Error(w, "status page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(p.head)
	_, _ = w.Write(body.Bytes())
	_, _ = w.Write(p.tail)
}

// expected is the interval a gateway is probed at: the shortest of its
// watch loops' and of the scrapes as seen; 0 when neither is known.
func (p *Page) expected(g string, targets []remediate.TargetStatus) time.Duration {
	var d time.Duration
	for _, t := range targets {
		if t.Gateway == g && t.Watch != nil && (d == 0 || t.Watch.Interval.D() < d) {
			d = t.Watch.Interval.D()
		}
	}
	if gap, _ := p.src.Probes.Pace(g, prober.SourceScrape); gap > 0 && (d == 0 || gap < d) {
		d = gap
	}
	return d
}

// stale: older than twice the expected interval, or than ViewFresh when
// no interval is known.
func stale(now time.Time, r prober.Record, expected time.Duration) bool {
	limit := 2 * expected
	if expected == 0 {
		limit = ViewFresh
	}
	return now.Sub(r.End()) > limit
}

// refresh probes, in parallel and within ctx, the gateways whose newest
// result is stale or missing.
func (p *Page) refresh(ctx context.Context, now time.Time, names []string, targets []remediate.TargetStatus) {
	if p.src.Probe == nil {
		return
	}
	var wg sync.WaitGroup
	for _, g := range names {
		if last, ok := p.src.Probes.Last(g); ok && !stale(now, last, p.expected(g, targets)) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.viewProbe(ctx, g)
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// viewProbe probes g for the page, or waits (within ctx) for the probe
// another load started.
func (p *Page) viewProbe(ctx context.Context, g string) {
	p.mu.Lock()
	if ch, ok := p.viewing[g]; ok {
		p.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
		}
		return
	}
	if p.viewing == nil {
		p.viewing = map[string]chan struct{}{}
	}
	ch := make(chan struct{})
	p.viewing[g] = ch
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.viewing, g)
		p.mu.Unlock()
		close(ch)
	}()
	defer func() { _ = recover() }() // a failed probe is a missing row, not a dead page
	p.src.Probe(ctx, g)
}

func dropped(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%d %s not read", m[k], strings.ReplaceAll(k, "_", " "))
	}
	return strings.Join(parts, ", ")
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d)/float64(time.Millisecond)) }

func ago(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return now.Sub(t).Round(time.Second).String() + " ago"
}

// clip shortens s to at most 160 bytes, on a rune boundary.
func clip(s string) string {
	if len(s) <= 160 {
		return s
	}
	i := 160
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
}

func until(now, t time.Time) string {
	if t.IsZero() || !t.After(now) {
		return "now"
	}
	return "in " + t.Sub(now).Round(time.Second).String() + " (" + t.Format("15:04:05") + ")"
}

func dur(d time.Duration) string { return d.Round(time.Second).String() }

// page is parsed on first use: the probe subcommand, run every 30 s as a
// health check, links this package but never shows a page.
var page = sync.OnceValue(func() *template.Template {
	return template.Must(template.New("status").Funcs(template.FuncMap{"ms": ms, "ago": ago, "clip": clip, "until": until, "dur": dur}).Parse(pageText))
})

const pageText = `
<style>
.st { padding: 0 12px; }
.st table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
.st th, .st td { border: 1px solid #ccc; padding: 2px 8px; text-align: left; }
.st .up { color: #1a7f37; font-weight: bold; }
.st .down { color: #cf222e; font-weight: bold; }
.st .muted { color: #777; }
</style>
<div class="st">
<h2>Gateways</h2>
{{if .Problems}}<p>Gateway files not usable (probed all the same):</p><table><tr><th>gateway</th><th>problem</th></tr>
{{range .Problems}}<tr><td>{{.Gateway}}</td><td>{{clip .Err}}</td></tr>
{{end}}</table>{{if .MoreProblems}}<p class="muted">… and {{.MoreProblems}} more</p>{{end}}{{end}}
{{range .Gateways}}
<h3>{{.Name}}:
{{$gw := .}}{{with .Last}}{{if $gw.Stale}}<span class="down">STALE</span> <span class="muted">(last result {{ago $.Now .Time}}{{if $gw.Expected}}, expected every {{dur $gw.Expected}}{{end}}: {{if .Up}}up{{else}}down{{end}})</span>
{{else if .Up}}<span class="up">UP</span>{{else}}<span class="down">DOWN</span> ({{.Reason}} in {{.Phase}}){{end}}
<span class="muted">{{.Product}}{{with .Version}} {{.}}{{end}}, last probe {{ago $.Now .Time}} ({{.Source}}){{if $gw.OnView}}, probed for this page{{if $gw.Before}}: nothing had for {{dur $gw.Before}}{{end}}{{end}}</span>{{else}}<span class="muted">not probed yet</span>{{end}}</h3>
{{if .Probes}}<table><tr><th>time</th><th>by</th><th>result</th><th>reason</th><th>phase</th><th>connect ms</th><th>upgrade ms</th><th>challenge ms</th><th>hello ms</th><th>health ms</th><th>total ms</th><th>error</th></tr>
{{range .Probes}}<tr><td>{{.Time.Format "15:04:05"}}</td><td>{{.Source}}</td><td>{{if .Up}}<span class="up">up</span>{{else}}<span class="down">down</span>{{end}}</td><td>{{.Reason}}</td><td>{{.Phase}}</td>
{{range .Phases}}<td>{{ms .Duration}}</td>{{end}}<td>{{ms .Duration}}</td><td>{{clip .Error}}</td></tr>
{{end}}</table>{{if .More}}<p class="muted">… and {{.More}} more</p>{{end}}{{end}}
{{end}}
{{if .MoreGateways}}<p class="muted">… and {{.MoreGateways}} more gateways</p>{{end}}
{{if .LocksOn}}<h2>Locks</h2>
{{if .LocksCut}}<p class="down">Incomplete: {{.LocksCut}}.</p>{{end}}
{{if .Locks}}<table><tr><th>state</th><th>pid</th><th>age</th><th>filesystem</th><th>gateway</th><th>path</th><th>why</th></tr>
{{range .Locks}}<tr><td>{{if .State.Stale}}<span class="down">{{.State}}</span>{{else}}{{.State}}{{end}}</td><td>{{.PID}}</td><td>{{ago $.Now .CreatedAt}}</td>
<td>{{.FS.Type}}{{if .FS.Volatile}} (volatile){{end}}{{if .FS.Network}} (network){{end}}</td><td>{{.Gateway}}</td><td>{{.Path}}</td><td>{{clip .Why}}</td></tr>
{{end}}</table>{{if .MoreLocks}}<p class="muted">… and {{.MoreLocks}} more</p>{{end}}{{else}}<p class="muted">No gateway lock files found.</p>{{end}}{{end}}
{{if .RemOn}}<h2>Remediation</h2>
{{if .Targets}}<table><tr><th>target</th><th>gateway</th><th>action</th><th>watch</th><th>breaker</th><th>last action</th><th>next action allowed</th></tr>
{{range .Targets}}<tr><td>{{.Name}}</td><td>{{.Gateway}}</td><td>{{.Action}}{{if .Busy}} <b>(running)</b>{{end}}</td>
<td>{{$t := .}}{{with .Watch}}every {{dur .Interval.D}}, {{$t.WatchFailures}} of {{.After}} failures{{else}}alerts only{{end}}</td>
<td>{{if .Breaker}}<span class="down">OPEN</span>: POST /-/remediation/reset{{else}}closed{{end}}</td><td>{{ago $.Now .LastAction}}</td>
<td>{{if .Breaker}}after a reset{{else}}{{until $.Now .NextAllowed}}{{end}}</td></tr>
{{end}}</table>{{if .MoreTargets}}<p class="muted">… and {{.MoreTargets}} more</p>{{end}}{{end}}
{{if .Remediation}}<table><tr><th>time</th><th>alert</th><th>fingerprint</th><th>status</th><th>target</th><th>action</th><th>decision</th><th>reason / result</th><th>detail</th></tr>
{{range .Remediation}}<tr><td>{{.Time.Format "15:04:05"}}</td><td>{{.AlertName}}</td><td>{{.Fingerprint}}</td><td>{{.Status}}</td><td>{{.Target}}</td><td>{{.Action}}</td><td>{{.Decision}}</td>
<td>{{if .Reason}}{{.Reason}}{{else}}{{.Result}}{{end}}</td><td>{{clip .Detail}}</td></tr>
{{end}}</table>{{if .MoreRem}}<p class="muted">… and {{.MoreRem}} more</p>{{end}}{{else}}<p class="muted">No webhook has arrived yet.</p>{{end}}{{end}}
</div>
`
