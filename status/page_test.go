package status

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/exporter-toolkit/web"

	"github.com/clawdbot-exporter/clawdbot_exporter/gateway/lockfile"
	"github.com/clawdbot-exporter/clawdbot_exporter/gateway/prober"
	"github.com/clawdbot-exporter/clawdbot_exporter/internal/testutil"
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
	locks := func(context.Context) lockfile.Result {
		return lockfile.Result{Locks: []lockfile.Lock{{Path: "/tmp/clawdbot-0/<b>gateway.x.lock", Gateway: "main", PID: 42, State: lockfile.OwnerDead, CreatedAt: now.Add(-time.Minute), FS: lockfile.Filesystem{Type: "tmpfs", Volatile: true}}}}
	}
	rem := func() []remediate.Decision {
		return []remediate.Decision{{Time: now, AlertName: `<img src=x onerror=alert(1)>`, Fingerprint: "f1", Status: "firing", Target: "restart-main", Action: "signal", Decision: "done", Result: "recovered", Detail: "up 4.1 s after the action began"}}
	}
	problems := func() []Problem {
		return []Problem{{Gateway: "other", Err: "config file /home/x/.openclaw/openclaw.json: not found"}}
	}
	p, err := NewPage(landing, Sources{Gateways: func() []string { return []string{"main", "other"} }, Probes: log, Locks: locks, Remediation: rem, Problems: problems}, Limits{})
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
		"(volatile)", "restart-main", "openclaw.json: not found", "recovered", "&lt;img src=x onerror=alert(1)&gt;",
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

func newTestPage(t *testing.T, src Sources, lim Limits) *Page {
	t.Helper()
	landing, err := web.NewLandingPage(web.LandingConfig{Name: "Clawdbot Exporter"})
	if err != nil {
		t.Fatal(err)
	}
	if src.Gateways == nil {
		src.Gateways = func() []string { return nil }
	}
	if src.Probes == nil {
		src.Probes = prober.NewHistory(20)
	}
	p, err := NewPage(landing, src, lim)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func load(p *Page) (int, string) {
	rec := httptest.NewRecorder()
	p.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	return rec.Code, rec.Body.String()
}

// TestPageRowCap: 100,000 lock files make a table of MaxRows rows and a
// count of the rest, not 19 MB of HTML.
func TestPageRowCap(t *testing.T) {
	many := make([]lockfile.Lock, 100000)
	for i := range many {
		many[i] = lockfile.Lock{Path: "/tmp/clawdbot-0/gateway." + strings.Repeat("x", 40) + ".lock", State: lockfile.OwnerDead}
	}
	names := make([]string, 300)
	for i := range names {
		names[i] = "gw" + strings.Repeat("n", i%7)
	}
	p := newTestPage(t, Sources{
		Gateways: func() []string { return names },
		Locks: func(context.Context) lockfile.Result {
			return lockfile.Result{Locks: many, Dropped: map[string]int{lockfile.DroppedLockFiles: 7}}
		},
	}, Limits{MaxRows: 50})
	code, body := load(p)
	if code != http.StatusOK {
		t.Fatalf("%d", code)
	}
	if n := strings.Count(body, "gateway."+strings.Repeat("x", 40)); n != 50 {
		t.Errorf("%d lock rows, want 50", n)
	}
	for _, want := range []string{"… and 99950 more", "… and 250 more gateways", "7 lock files not read"} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if len(body) > 200<<10 {
		t.Errorf("page of %d bytes", len(body))
	}
}

// TestPageDeadlineAndConcurrency: a scan that outlives the deadline does
// not hold the page, and keeps its load's slot until it ends, so abandoned
// scans cannot pile up beyond MaxRequests.
func TestPageDeadlineAndConcurrency(t *testing.T) {
	release := make(chan struct{})
	scans := make(chan struct{}, 10)
	p := newTestPage(t, Sources{
		Locks: func(context.Context) lockfile.Result {
			scans <- struct{}{}
			<-release // a scan that ignores its context
			return lockfile.Result{}
		},
	}, Limits{Timeout: 100 * time.Millisecond, MaxRequests: 1})
	done := make(chan string, 1)
	go func() { _, body := load(p); done <- body }()
	select {
	case body := <-done:
		if !strings.Contains(body, "Incomplete: the scan did not finish within 100ms") {
			t.Errorf("page does not say the scan was cut:\n%s", body)
		}
	case <-time.After(30 * time.Second): // only a hang gets here
		t.Fatal("the page waited for the scan")
	}
	if code, _ := load(p); code != http.StatusServiceUnavailable {
		t.Errorf("second load while the first scan runs: %d, want 503", code)
	}
	if len(scans) != 1 {
		t.Errorf("%d scans started, want 1", len(scans))
	}
	close(release)
	testutil.WaitFor(t, "the slot's release", 10*time.Second, func() bool {
		code, _ := load(p)
		return code == http.StatusOK
	})
}

func TestClipKeepsUTF8(t *testing.T) {
	s := clip(strings.Repeat("a", 159) + "é" + strings.Repeat("b", 10))
	if !utf8.ValidString(s) || !strings.HasSuffix(s, "a…") {
		t.Errorf("clip: %q", s)
	}
}

func get(p *Page) string {
	rec := httptest.NewRecorder()
	p.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	return rec.Body.String()
}

// The page is live: it shows the newest result of any source, probes a
// gateway nothing probes lately, and marks what it cannot refresh stale.
func TestPageLive(t *testing.T) {
	now := time.Now()
	watch := &remediate.Watch{Interval: remediate.Duration(30 * time.Second), After: 3}
	targets := func() []remediate.TargetStatus {
		return []remediate.TargetStatus{{Name: "heal-main", Gateway: "main", Action: "docker", Watch: watch, WatchFailures: 2,
			LastAction: now.Add(-time.Minute), NextAllowed: now.Add(9 * time.Minute)},
			{Name: "heal-other", Gateway: "other", Action: "systemd", Breaker: true}}
	}
	cases := []struct {
		name    string
		records []prober.Record
		probe   bool // a Probe source
		want    []string
		reject  []string
		probes  int
	}{{
		name: "a watch result newer than the scrape's wins",
		records: []prober.Record{
			{Time: now.Add(-20 * time.Second), Gateway: "main", Source: prober.SourceScrape, Up: true},
			{Time: now.Add(-5 * time.Second), Gateway: "main", Source: prober.SourceWatch, Reason: "timeout", Phase: "challenge"},
		},
		probe: true,
		want:  []string{`<span class="down">DOWN</span> (timeout in challenge)`, "(watch)"},
	}, {
		name:    "an old result with nothing probing: probed on view",
		records: []prober.Record{{Time: now.Add(-3*time.Minute - 42*time.Second), Gateway: "main", Source: prober.SourceScrape, Up: true}},
		probe:   true,
		want:    []string{`<span class="down">DOWN</span> (dial in connect)`, "(view)", "probed for this page: nothing had for 3m42s"},
		reject:  []string{">UP<", "STALE"},
		probes:  1,
	}, {
		name:    "an old result that cannot be refreshed: stale with its age",
		records: []prober.Record{{Time: now.Add(-3*time.Minute - 42*time.Second), Gateway: "main", Source: prober.SourceScrape, Up: true}},
		want:    []string{"STALE", "last result 3m42s ago, expected every 30s: up"},
		reject:  []string{">UP<"},
	}, {
		name:    "a fresh result is not probed again",
		records: []prober.Record{{Time: now.Add(-10 * time.Second), Gateway: "main", Source: prober.SourceWatch, Up: true}},
		probe:   true,
		want:    []string{`<span class="up">UP</span>`},
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			log := prober.NewHistory(10)
			for _, r := range c.records {
				log.Add(r)
			}
			probes := 0
			src := Sources{Gateways: func() []string { return []string{"main"} }, Probes: log, Targets: targets,
				Remediation: func() []remediate.Decision { return nil }}
			if c.probe {
				src.Probe = func(_ context.Context, g string) prober.Record {
					probes++
					r := prober.Record{Time: time.Now(), Gateway: g, Source: prober.SourceView, Reason: "dial", Phase: "connect"}
					log.Add(r)
					return r
				}
			}
			body := get(newTestPage(t, src, Limits{Timeout: 2 * time.Second}))
			for _, w := range c.want {
				if !strings.Contains(body, w) {
					t.Errorf("page lacks %q", w)
				}
			}
			for _, r := range c.reject {
				if strings.Contains(body, r) {
					t.Errorf("page has %q", r)
				}
			}
			if probes != c.probes {
				t.Errorf("probed %d times on view, want %d", probes, c.probes)
			}
			// The targets' state: breaker, next allowed time, the watch streak.
			for _, w := range []string{"heal-main", "every 30s, 2 of 3 failures", "in 9m0s", "OPEN", "after a reset", "alerts only"} {
				if !strings.Contains(body, w) {
					t.Errorf("page lacks %q", w)
				}
			}
		})
	}
}

// A probe on view that hangs does not hold the page past its deadline.
func TestPageViewProbeBounded(t *testing.T) {
	log := prober.NewHistory(10)
	src := Sources{Gateways: func() []string { return []string{"a", "b"} }, Probes: log,
		Probe: func(ctx context.Context, g string) prober.Record { <-ctx.Done(); return prober.Record{} }}
	p := newTestPage(t, src, Limits{Timeout: 50 * time.Millisecond})
	done := make(chan string)
	go func() { done <- get(p) }()
	select {
	case body := <-done:
		if !strings.Contains(body, "not probed yet") {
			t.Error("no probe result, yet the page does not say so")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the page waited for a hung probe")
	}
}

// Concurrent loads of a page with a stale gateway make one probe.
func TestPageViewProbeShared(t *testing.T) {
	log := prober.NewHistory(10)
	var mu sync.Mutex
	probes := 0
	release := make(chan struct{})
	src := Sources{Gateways: func() []string { return []string{"main"} }, Probes: log,
		Probe: func(ctx context.Context, g string) prober.Record {
			mu.Lock()
			probes++
			mu.Unlock()
			select {
			case <-release:
			case <-ctx.Done():
			}
			r := prober.Record{Time: time.Now(), Gateway: g, Source: prober.SourceView, Up: true}
			log.Add(r)
			return r
		}}
	p := newTestPage(t, src, Limits{Timeout: 10 * time.Second})
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() { defer wg.Done(); get(p) }()
	}
	// Every load is waiting; only then does the probe end.
	testutil.WaitFor(t, "the first probe", 10*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return probes >= 1 })
	time.Sleep(50 * time.Millisecond)
	close(release)
	wg.Wait()
	if probes != 1 {
		t.Errorf("%d view probes for 10 concurrent loads, want 1", probes)
	}
}
