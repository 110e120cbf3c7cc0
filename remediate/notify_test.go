package remediate

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/clawdbot-exporter/clawdbot_exporter/config"
	itestutil "github.com/clawdbot-exporter/clawdbot_exporter/internal/testutil"
)

// webhookToken is the secret part of the test webhook URLs, as in
// Slack's /services/T…/B…/<token> and Discord's /api/webhooks/<id>/<token>.
const webhookToken = "XyZsecretWebhookToken0123456789"

const hookPath = "/services/T000/B000/" + webhookToken

// hook is a webhook endpoint: it records what it got and answers with the
// statuses given in turn (the last one repeats), echoing the request's URL
// in its body as a careless server might.
type hook struct {
	srv      *httptest.Server
	mu       sync.Mutex
	bodies   [][]byte
	ctypes   []string
	statuses []int
	header   http.Header // sent with every answer
	entered  chan struct{}
	hang     bool // wait for the client to give up
	calls    atomic.Int64
}

func newHook(t *testing.T, statuses ...int) *hook {
	h := &hook{statuses: statuses, entered: make(chan struct{}, 1000)}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		h.mu.Lock()
		i := len(h.bodies)
		h.bodies = append(h.bodies, b)
		h.ctypes = append(h.ctypes, r.Header.Get("Content-Type"))
		status := http.StatusOK
		if len(h.statuses) > 0 {
			status = h.statuses[min(i, len(h.statuses)-1)]
		}
		hang := h.hang
		h.mu.Unlock()
		h.calls.Add(1)
		h.entered <- struct{}{}
		if hang {
			<-r.Context().Done()
			return
		}
		for k, v := range h.header {
			w.Header()[k] = v
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, "no such webhook: "+r.URL.String())
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hook) url() string { return h.srv.URL + hookPath }

func (h *hook) body(i int) []byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.bodies[i]
}

// writeURLFile writes the URL file as a rotation does: a new file renamed
// over the old.
func writeURLFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

type notifyFixture struct {
	n    *Notifiers
	logs *itestutil.SyncBuffer
	reg  *prometheus.Registry
}

func newNotifyFixture(t *testing.T, opts ...NotifyOption) *notifyFixture {
	f := &notifyFixture{logs: &itestutil.SyncBuffer{}, reg: prometheus.NewRegistry()}
	logger := slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	opts = append([]NotifyOption{WithHostname("testhost"), WithRetryWait(time.Millisecond)}, opts...)
	f.n = NewNotifiers(f.reg, logger, opts...)
	t.Cleanup(func() { _ = f.n.Close(context.Background()) })
	return f
}

func (f *notifyFixture) count(target, result string) float64 {
	return testutil.ToFloat64(f.n.counter.WithLabelValues(target, result))
}

// close flushes the queues: every event is counted once it returns.
func (f *notifyFixture) close(t *testing.T) {
	t.Helper()
	if err := f.n.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if r := f.n.running.Load(); r != 0 {
		t.Fatalf("%d senders still running after Close", r)
	}
}

func notifyTarget(t *testing.T, name, url, format string) Target {
	t.Helper()
	path := filepath.Join(t.TempDir(), "webhook-url")
	writeURLFile(t, path, url)
	return Target{Name: name, Gateway: "main", Notify: &config.Notify{URLFile: path, Format: format}}
}

func event(text string) Event {
	return Event{Kind: EventOutcome, Result: ResultRecovered, Target: "t", Gateway: "main", Text: text}
}

func TestNotifyBody(t *testing.T) {
	long := strings.Repeat("é", 5000) // two bytes each: a byte cut would break UTF-8
	for _, tc := range []struct {
		name, format, text string
		field              string
		want               string // the field, whole; or its length in runes when wantRunes > 0
		wantRunes          int
	}{
		{name: "slack", format: config.NotifySlack, field: "text", text: "gateway main recovered <!channel> & co",
			want: "[clawdbot_exporter] testhost: gateway main recovered &lt;!channel&gt; &amp; co"},
		{name: "default is slack", format: "", field: "text", text: "up",
			want: "[clawdbot_exporter] testhost: up"},
		{name: "discord", format: config.NotifyDiscord, field: "content", text: "gateway main recovered @everyone",
			want: "[clawdbot_exporter] testhost: gateway main recovered @everyone"},
		{name: "discord caps at 2000 characters", format: config.NotifyDiscord, field: "content", text: long, wantRunes: 2000},
		{name: "slack caps at 3000 characters", format: config.NotifySlack, field: "text", text: long, wantRunes: 3000},
		{name: "invalid UTF-8 is made valid", format: config.NotifySlack, field: "text", text: "bad \xff byte",
			want: "[clawdbot_exporter] testhost: bad ? byte"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHook(t)
			f := newNotifyFixture(t)
			f.n.Notify(notifyTarget(t, "t", h.url(), tc.format), event(tc.text))
			f.close(t)
			if f.count("t", NotifySent) != 1 || h.calls.Load() != 1 {
				t.Fatalf("sent %v, calls %d; logs: %s", f.count("t", NotifySent), h.calls.Load(), f.logs)
			}
			if h.ctypes[0] != "application/json" {
				t.Errorf("Content-Type %q", h.ctypes[0])
			}
			var got map[string]any
			if err := json.Unmarshal(h.body(0), &got); err != nil {
				t.Fatalf("%v: %s", err, h.body(0))
			}
			s, ok := got[tc.field].(string)
			if !ok {
				t.Fatalf("no string %q in %s", tc.field, h.body(0))
			}
			if !utf8.ValidString(s) {
				t.Errorf("not valid UTF-8: %q", s)
			}
			if tc.wantRunes > 0 {
				if n := utf8.RuneCountInString(s); n != tc.wantRunes || !strings.HasSuffix(s, "é…") {
					t.Errorf("%d characters, ends %q", n, s[len(s)-8:])
				}
			} else if s != tc.want {
				t.Errorf("%s = %q, want %q", tc.field, s, tc.want)
			}
			switch tc.field {
			case "text":
				if len(got) != 1 {
					t.Errorf("slack body has more than text: %s", h.body(0))
				}
			case "content":
				am, _ := got["allowed_mentions"].(map[string]any)
				if p, ok := am["parse"].([]any); !ok || len(p) != 0 || len(got) != 2 {
					t.Errorf("discord body should be content and allowed_mentions {parse: []}: %s", h.body(0))
				}
			}
		})
	}
}

func TestNotifyHTTPResults(t *testing.T) {
	for _, tc := range []struct {
		name     string
		statuses []int
		header   http.Header
		result   string
		calls    int64
	}{
		{"500 twice: failed after one retry", []int{500}, nil, NotifyFailed, 2},
		{"503 then 200: sent by the retry", []int{503, 200}, nil, NotifySent, 2},
		{"429 with Retry-After then 204", []int{429, 204}, http.Header{"Retry-After": {"0"}}, NotifySent, 2},
		{"404: failed, no retry", []int{404}, nil, NotifyFailed, 1},
		{"302: a webhook does not redirect", []int{302}, http.Header{"Location": {"http://127.0.0.1:1/elsewhere"}}, NotifyFailed, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHook(t, tc.statuses...)
			h.header = tc.header
			f := newNotifyFixture(t)
			f.n.Notify(notifyTarget(t, "t", h.url(), config.NotifySlack), event("x"))
			f.close(t)
			if f.count("t", tc.result) != 1 || h.calls.Load() != tc.calls {
				t.Errorf("%s = %v, calls %d (want 1, %d); logs: %s", tc.result, f.count("t", tc.result), h.calls.Load(), tc.calls, f.logs)
			}
			logs := f.logs.String()
			if tc.result == NotifyFailed && !strings.Contains(logs, "remediation notification failed") {
				t.Errorf("failure not logged: %s", logs)
			}
			// The server echoed the URL in its body: the log must not.
			if strings.Contains(logs, webhookToken) || strings.Contains(logs, "/services/T000") {
				t.Errorf("log holds the webhook URL: %s", logs)
			}
		})
	}
}

// TestNotifyNeverBlocks: with the endpoint hanging, Notify still returns
// at once, the queue's bound drops the excess, and every event is counted
// exactly once.
func TestNotifyNeverBlocks(t *testing.T) {
	h := newHook(t)
	h.hang = true
	const queue, extra = 8, 5
	f := newNotifyFixture(t, WithQueueSize(queue))
	target := notifyTarget(t, "t", h.url(), config.NotifyDiscord)

	f.n.Notify(target, event("first"))
	<-h.entered // the sender is stuck in the first POST; the queue is empty
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range queue + extra {
			f.n.Notify(target, event("more"))
		}
	}()
	select {
	case <-done:
	case <-time.After(time.Minute): // a hang detector, not a speed check
		t.Fatal("Notify blocked while the endpoint hangs")
	}
	if d := f.count("t", NotifyDropped); d != extra {
		t.Errorf("dropped %v, want %d", d, extra)
	}
	if !strings.Contains(f.logs.String(), "remediation notification dropped") {
		t.Errorf("drop not logged: %s", f.logs)
	}

	// Close with no time to flush: the hanging POST is cancelled (failed),
	// the queued ones are dropped, and Close waits for the sender.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := f.n.Close(ctx); err == nil {
		t.Error("Close of a hanging flush returned no error")
	}
	if r := f.n.running.Load(); r != 0 {
		t.Fatalf("%d senders running after Close", r)
	}
	sent, failed, dropped := f.count("t", NotifySent), f.count("t", NotifyFailed), f.count("t", NotifyDropped)
	if sent != 0 || failed != 1 || dropped != queue+extra {
		t.Errorf("sent %v failed %v dropped %v, want 0, 1, %d", sent, failed, dropped, queue+extra)
	}
	if h.calls.Load() != 1 {
		t.Errorf("%d POSTs, want 1", h.calls.Load())
	}
	if strings.Contains(f.logs.String(), webhookToken) {
		t.Errorf("log holds the token: %s", f.logs)
	}
}

func TestNotifyRotatedURLFile(t *testing.T) {
	a, b := newHook(t), newHook(t)
	f := newNotifyFixture(t)
	target := notifyTarget(t, "t", a.url(), config.NotifySlack)
	f.n.Notify(target, event("one"))
	<-a.entered // the URL was read for this POST: rotate now
	writeURLFile(t, target.Notify.URLFile, b.url())
	f.n.Notify(target, event("two"))
	f.close(t)
	if a.calls.Load() != 1 || b.calls.Load() != 1 || f.count("t", NotifySent) != 2 {
		t.Errorf("calls a=%d b=%d, sent %v", a.calls.Load(), b.calls.Load(), f.count("t", NotifySent))
	}
	if !strings.Contains(string(b.body(0)), "two") {
		t.Errorf("the rotated URL got %s", b.body(0))
	}
}

func TestNotifyBadURLFile(t *testing.T) {
	closed := httptest.NewServer(http.NotFoundHandler())
	refused := closed.URL + hookPath
	closed.Close() // nothing listens there now
	for _, tc := range []struct {
		name    string
		content string // "" : no file
		logs    string // in the failure's log line
	}{
		{"missing file", "", "url_file unreadable"},
		{"ftp URL", "ftp://files.example.com" + hookPath, "must be http:// or https://"},
		{"not a URL", "http://[::1" + hookPath, "does not hold a URL"},
		{"no host", "https://" + hookPath, "no host"},
		{"nothing listens", refused, "connect"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newNotifyFixture(t)
			path := filepath.Join(t.TempDir(), "webhook-url")
			if tc.content != "" {
				writeURLFile(t, path, tc.content)
			}
			f.n.Notify(Target{Name: "t", Notify: &config.Notify{URLFile: path, Format: config.NotifySlack}}, event("x"))
			f.close(t)
			if f.count("t", NotifyFailed) != 1 || f.count("t", NotifySent) != 0 {
				t.Errorf("failed %v, sent %v", f.count("t", NotifyFailed), f.count("t", NotifySent))
			}
			logs := f.logs.String()
			if !strings.Contains(logs, "remediation notification failed") || !strings.Contains(logs, tc.logs) || !strings.Contains(logs, path) {
				t.Errorf("log lacks the failure, %q or the file's path: %s", tc.logs, logs)
			}
			if strings.Contains(logs, webhookToken) || strings.Contains(logs, "/services/T000") {
				t.Errorf("log holds the webhook URL: %s", logs)
			}
		})
	}
}

func TestNotifyClose(t *testing.T) {
	h := newHook(t)
	f := newNotifyFixture(t)
	for _, name := range []string{"a", "b", "c"} {
		f.n.Notify(notifyTarget(t, name, h.url(), config.NotifySlack), event(name))
	}
	if r := f.n.running.Load(); r != 3 {
		t.Errorf("%d senders, want one per target", r)
	}
	f.close(t) // flushes: all three sent, no sender left
	for _, name := range []string{"a", "b", "c"} {
		if f.count(name, NotifySent) != 1 {
			t.Errorf("%s: sent %v", name, f.count(name, NotifySent))
		}
	}
	// After Close: counted as dropped, no goroutine started.
	f.n.Notify(notifyTarget(t, "d", h.url(), config.NotifySlack), event("late"))
	if f.count("d", NotifyDropped) != 1 || f.n.running.Load() != 0 {
		t.Errorf("late event: dropped %v, %d senders", f.count("d", NotifyDropped), f.n.running.Load())
	}
	if err := f.n.Close(context.Background()); err != nil { // twice is fine
		t.Error(err)
	}
	if h.calls.Load() != 3 {
		t.Errorf("%d POSTs, want 3", h.calls.Load())
	}
	// A target without a notify section is not counted at all.
	f.n.Notify(Target{Name: "quiet"}, event("x"))
	if n := testutil.CollectAndCount(f.n.counter); n != 4*3 {
		t.Errorf("%d series, want 12 (4 targets x 3 results)", n)
	}
}

func TestNotifyMetricsLint(t *testing.T) {
	f := newNotifyFixture(t)
	f.n.Notify(notifyTarget(t, "t", "http://127.0.0.1:1/x", config.NotifySlack), event("x"))
	f.close(t)
	problems, err := testutil.GatherAndLint(f.reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	def := 2 * time.Second
	for _, tc := range []struct {
		h    string
		want time.Duration
	}{
		{"", def},
		{"0", 0},
		{"7", 7 * time.Second},
		{"31", notifyMaxRetryAfter},
		{"99999999999999999", notifyMaxRetryAfter},
		{"-1", def},
		{"soon", def},
		{now.Add(10 * time.Second).Format(http.TimeFormat), 10 * time.Second},
		{now.Add(time.Hour).Format(http.TimeFormat), notifyMaxRetryAfter},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
	} {
		if got := retryAfter(tc.h, def, now); got != tc.want {
			t.Errorf("retryAfter(%q) = %v, want %v", tc.h, got, tc.want)
		}
	}
}

func TestTruncateRunes(t *testing.T) {
	for _, tc := range []struct {
		s    string
		n    int
		want string
	}{
		{"abc", 3, "abc"},
		{"abcd", 3, "ab…"},
		{"日本語テキスト", 4, "日本語…"},
		{"", 5, ""},
	} {
		if got := truncateRunes(tc.s, tc.n); got != tc.want {
			t.Errorf("truncateRunes(%q, %d) = %q, want %q", tc.s, tc.n, got, tc.want)
		}
	}
}

// newNotifyEngine is newHarness with a notifier and a notify section.
func newNotifyEngine(t *testing.T, n Notifier, url string) *harness {
	t.Helper()
	path := filepath.Join(t.TempDir(), "webhook-url")
	writeURLFile(t, path, url)
	return newHarnessOpts(t, func(tg *Target) { tg.Notify = &config.Notify{URLFile: path} }, Options{Notifier: n})
}

// TestNotifyEngine: a notification endpoint that hangs or fails never
// holds up or changes an action.
func TestNotifyEngine(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)
	trigger := func(t *testing.T, h *harness) {
		t.Helper()
		ok, reason := h.e.Trigger("restart-main", Alert{Status: "firing", Fingerprint: WatchFingerprint, StartsAt: t0,
			Labels: map[string]string{"gateway": "main", "reason": "timeout"}})
		if !ok {
			t.Fatalf("no action: %s", reason)
		}
		h.e.Wait()
		if v := testutil.ToFloat64(h.m.actions.WithLabelValues("restart-main", "fake", ResultRecovered)); v != 1 || h.action.runs.Load() != 1 {
			t.Errorf("recovered = %v, runs %d", v, h.action.runs.Load())
		}
	}

	t.Run("hanging endpoint", func(t *testing.T) {
		hk := newHook(t)
		hk.hang = true
		f := newNotifyFixture(t)
		h := newNotifyEngine(t, f.n, hk.url())
		trigger(t, h) // returned while the first notification hangs
		<-hk.entered  // the action's notification was attempted
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_ = f.n.Close(ctx)
		// action: in flight, cancelled (failed); outcome: queued, dropped.
		if f.count("restart-main", NotifyFailed) != 1 || f.count("restart-main", NotifyDropped) != 1 {
			t.Errorf("failed %v, dropped %v", f.count("restart-main", NotifyFailed), f.count("restart-main", NotifyDropped))
		}
		if !strings.Contains(string(hk.body(0)), "restarting gateway main (watch: timeout)") {
			t.Errorf("first notification: %s", hk.body(0))
		}
	})
	t.Run("endpoint answering 500", func(t *testing.T) {
		hk := newHook(t, 500)
		f := newNotifyFixture(t)
		h := newNotifyEngine(t, f.n, hk.url())
		trigger(t, h)
		f.close(t)
		// action and outcome, each tried twice.
		if f.count("restart-main", NotifyFailed) != 2 || hk.calls.Load() != 4 {
			t.Errorf("failed %v, calls %d", f.count("restart-main", NotifyFailed), hk.calls.Load())
		}
		if !strings.Contains(string(hk.body(2)), "recovered") {
			t.Errorf("outcome notification: %s", hk.body(2))
		}
		if strings.Contains(f.logs.String(), webhookToken) {
			t.Errorf("log holds the token: %s", f.logs)
		}
	})
}
