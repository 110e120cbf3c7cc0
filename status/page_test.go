package status

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/exporter-toolkit/web"

	"github.com/clawdbot-exporter/clawdbot_exporter/gateway/lockfile"
	"github.com/clawdbot-exporter/clawdbot_exporter/gateway/prober"
	"github.com/clawdbot-exporter/clawdbot_exporter/remediate"
)

func TestPageEscapesAndShowsState(t *testing.T) {
	landing, err := web.NewLandingPage(web.LandingConfig{Name: "Clawdbot Exporter", Links: []web.LandingLinks{{Address: "/metrics", Text: "Metrics"}}})
	if err != nil {
		t.Fatal(err)
	}
	log := prober.NewHistory(3)
	now := time.Now()
	for i := range 5 {
		log.Add(prober.Record{Time: now.Add(time.Duration(i) * time.Second), Gateway: "main", Up: i < 4, Product: "clawdbot",
			Phases: []prober.PhaseTime{{Name: "connect", Duration: time.Millisecond}, {Name: "upgrade", Duration: 2 * time.Millisecond}, {Name: "challenge", Duration: 0}, {Name: "hello", Duration: 0}, {Name: "health", Duration: 0}}})
	}
	log.Add(prober.Record{Time: now.Add(10 * time.Second), Gateway: "main", Reason: "timeout", Phase: "challenge",
		Error: `<script>alert("gateway")</script>`})
	locks := func() []lockfile.Lock {
		return []lockfile.Lock{{Path: "/tmp/clawdbot-0/<b>gateway.x.lock", Gateway: "main", PID: 42, State: lockfile.OwnerDead, CreatedAt: now.Add(-time.Minute), FS: lockfile.Filesystem{Type: "tmpfs", Volatile: true}}}
	}
	rem := func() []remediate.Decision {
		return []remediate.Decision{{Time: now, AlertName: `<img src=x onerror=alert(1)>`, Fingerprint: "f1", Status: "firing", Target: "restart-main", Action: "signal", Decision: "done", Result: "recovered", Detail: "up 4.1 s after the action began"}}
	}
	p, err := NewPage(landing, func() []string { return []string{"main", "other"} }, log, locks, rem)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	p.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	b, _ := io.ReadAll(rec.Body)
	body := string(b)
	for _, bad := range []string{"<script>alert", "<img src=x", "<b>gateway"} {
		if strings.Contains(body, bad) {
			t.Errorf("unescaped %q in the page", bad)
		}
	}
	for _, want := range []string{
		"Clawdbot Exporter", // the toolkit's page around it
		`<span class="down">DOWN</span> (timeout in challenge)`,
		"&lt;script&gt;alert(&#34;gateway&#34;)&lt;/script&gt;",
		"not probed yet", // the gateway without probes
		"(volatile)", "restart-main", "recovered", "&lt;img src=x onerror=alert(1)&gt;",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	// Only the last 3 probes are kept.
	if n := strings.Count(body, "<td>"+now.Add(10*time.Second).Format("15:04:05")+"</td>"); n != 1 {
		t.Errorf("newest probe shown %d times", n)
	}
	if got := len(log.Recent("main")); got != 3 {
		t.Errorf("kept %d probes, want 3", got)
	}
	rec = httptest.NewRecorder()
	p.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/nope", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("/nope: %d", rec.Code)
	}
}
