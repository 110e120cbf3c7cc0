package status

import (
	"bytes"
	"fmt"
	"html/template"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/clawdbot-exporter/clawdbot_exporter/gateway/lockfile"
	"github.com/clawdbot-exporter/clawdbot_exporter/gateway/prober"
	"github.com/clawdbot-exporter/clawdbot_exporter/remediate"
)

// Page is the exporter's landing page: exporter-toolkit's page with, below
// it, what a person looks at when Grafana is not at hand. Every value from a
// gateway, a lock file or an alert goes through html/template's escaping.
type Page struct {
	head, tail  []byte
	gateways    func() []string
	probes      *prober.History
	locks       func() []lockfile.Lock
	remediation func() []remediate.Decision
}

// NewPage wraps the toolkit's landing page. locks and remediation may be nil.
func NewPage(landing http.Handler, gateways func() []string, probes *prober.History, locks func() []lockfile.Lock, remediation func() []remediate.Decision) (*Page, error) {
	rec := httptest.NewRecorder()
	landing.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	html := rec.Body.Bytes()
	i := bytes.LastIndex(html, []byte("</body>"))
	if rec.Code != http.StatusOK || i < 0 {
		return nil, fmt.Errorf("landing page: unexpected answer %d", rec.Code)
	}
	return &Page{head: html[:i], tail: html[i:], gateways: gateways, probes: probes, locks: locks, remediation: remediation}, nil
}

type view struct {
	Now         time.Time
	Gateways    []gatewayView
	Locks       []lockfile.Lock
	LocksOn     bool
	Remediation []remediate.Decision
	RemOn       bool
}

type gatewayView struct {
	Name   string
	Last   *prober.Record
	Probes []prober.Record
}

func (p *Page) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		http.NotFound(w, r)
		return
	}
	v := view{Now: time.Now(), LocksOn: p.locks != nil, RemOn: p.remediation != nil}
	for _, g := range p.gateways() {
		gv := gatewayView{Name: g, Probes: p.probes.Recent(g)}
		if len(gv.Probes) > 0 {
			gv.Last = &gv.Probes[0]
		}
		v.Gateways = append(v.Gateways, gv)
	}
	if p.locks != nil {
		v.Locks = p.locks()
	}
	if p.remediation != nil {
		v.Remediation = p.remediation()
	}
	var body bytes.Buffer
	if err := page.Execute(&body, v); err != nil {
		http.Error(w, "status page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(p.head)
	_, _ = w.Write(body.Bytes())
	_, _ = w.Write(p.tail)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d)/float64(time.Millisecond)) }

func ago(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return now.Sub(t).Round(time.Second).String() + " ago"
}

func clip(s string) string {
	if len(s) > 160 {
		return s[:160] + "…"
	}
	return s
}

var page = template.Must(template.New("status").Funcs(template.FuncMap{"ms": ms, "ago": ago, "clip": clip}).Parse(`
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
{{range .Gateways}}
<h3>{{.Name}}:
{{with .Last}}{{if .Up}}<span class="up">UP</span>{{else}}<span class="down">DOWN</span> ({{.Reason}} in {{.Phase}}){{end}}
<span class="muted">{{.Product}} {{.Version}}, last probe {{ago $.Now .Time}}</span>{{else}}<span class="muted">not probed yet</span>{{end}}</h3>
{{if .Probes}}<table><tr><th>time</th><th>result</th><th>reason</th><th>phase</th><th>connect ms</th><th>upgrade ms</th><th>challenge ms</th><th>hello ms</th><th>health ms</th><th>total ms</th><th>error</th></tr>
{{range .Probes}}<tr><td>{{.Time.Format "15:04:05"}}</td><td>{{if .Up}}<span class="up">up</span>{{else}}<span class="down">down</span>{{end}}</td><td>{{.Reason}}</td><td>{{.Phase}}</td>
{{range .Phases}}<td>{{ms .Duration}}</td>{{end}}<td>{{ms .Duration}}</td><td>{{clip .Error}}</td></tr>
{{end}}</table>{{end}}
{{end}}
{{if .LocksOn}}<h2>Locks</h2>
{{if .Locks}}<table><tr><th>state</th><th>pid</th><th>age</th><th>filesystem</th><th>gateway</th><th>path</th><th>why</th></tr>
{{range .Locks}}<tr><td>{{if .State.Stale}}<span class="down">{{.State}}</span>{{else}}{{.State}}{{end}}</td><td>{{.PID}}</td><td>{{ago $.Now .CreatedAt}}</td>
<td>{{.FS.Type}}{{if .FS.Volatile}} (volatile){{end}}{{if .FS.Network}} (network){{end}}</td><td>{{.Gateway}}</td><td>{{.Path}}</td><td>{{clip .Why}}</td></tr>
{{end}}</table>{{else}}<p class="muted">No gateway lock files found.</p>{{end}}{{end}}
{{if .RemOn}}<h2>Remediation</h2>
{{if .Remediation}}<table><tr><th>time</th><th>alert</th><th>fingerprint</th><th>status</th><th>target</th><th>action</th><th>decision</th><th>reason / result</th><th>detail</th></tr>
{{range .Remediation}}<tr><td>{{.Time.Format "15:04:05"}}</td><td>{{.AlertName}}</td><td>{{.Fingerprint}}</td><td>{{.Status}}</td><td>{{.Target}}</td><td>{{.Action}}</td><td>{{.Decision}}</td>
<td>{{if .Reason}}{{.Reason}}{{else}}{{.Result}}{{end}}</td><td>{{clip .Detail}}</td></tr>
{{end}}</table>{{else}}<p class="muted">No webhook has arrived yet.</p>{{end}}{{end}}
</div>
`))
