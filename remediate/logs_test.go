package remediate

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/clawdbot-exporter/clawdbot_exporter/internal/testutil"
)

// TestLogsAreNotAmplified: what an unauthenticated client or one flood of
// alerts can make the exporter write is a few lines, not one per request or
// per alert; every decision that acts is still audited on its own.
func TestLogsAreNotAmplified(t *testing.T) {
	h := newHarness(t, false, nil)
	var logs testutil.SyncBuffer
	h.e.logger = slog.New(slog.NewTextHandler(&logs, nil))
	handler := &Handler{Engine: h.e, Token: func() []byte { return []byte("s3cret-token") }, Metrics: h.m, Logger: h.e.logger}
	serve := func(auth, body string) int {
		req := httptest.NewRequest(http.MethodPost, DefaultWebhookPath, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		return rec.Code
	}

	for range 12000 {
		if code := serve("", validBody); code != http.StatusUnauthorized {
			t.Fatalf("unauthenticated: %d", code)
		}
	}
	if n := strings.Count(logs.String(), "remediation webhook refused"); n != 1 {
		t.Errorf("12000 refusals logged %d lines, want 1 (the rest counted)", n)
	}
	handler.refused.Flush()
	if !strings.Contains(logs.String(), "repeated=11999") {
		t.Errorf("the count of refusals is not logged:\n%s", logs.String())
	}

	// Just under 1 MiB: 10,000 alerts for no target, one resolved alert of
	// ours and one that acts.
	var b strings.Builder
	b.WriteString(`{"version":"4","alerts":[`)
	for i := range 10000 {
		fmt.Fprintf(&b, `{"status":"firing","labels":{"alertname":"X"},"fingerprint":"u%d","startsAt":"2026-11-25T03:00:00Z"},`, i)
	}
	b.WriteString(`{"status":"resolved","labels":{"alertname":"ClawdbotGatewayDown","gateway":"main","remediation":"restart"},"fingerprint":"r1","startsAt":"2026-11-25T03:00:00Z"},`)
	b.WriteString(`{"status":"firing","labels":{"alertname":"ClawdbotGatewayDown","gateway":"main","remediation":"restart"},"fingerprint":"a1","startsAt":"2026-11-25T03:00:00Z"}]}`)
	if b.Len() > maxBody {
		t.Fatalf("payload of %d bytes is over the limit", b.Len())
	}
	logs.Reset()
	if code := serve("Bearer s3cret-token", b.String()); code != http.StatusOK {
		t.Fatalf("payload: %d", code)
	}
	h.e.Wait()
	out := logs.String()
	if n := strings.Count(out, "\n"); n > 4 {
		t.Errorf("one payload of 10,002 alerts wrote %d lines, want at most 4:\n%s", n, out)
	}
	for _, want := range []string{
		`decision=skip alertname=X fingerprint=u0`, "reason=unmatched alerts=10000",
		"decision=skip alertname=ClawdbotGatewayDown fingerprint=r1",
		"decision=act alertname=ClawdbotGatewayDown fingerprint=a1",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if got := h.skipped("", SkipUnmatched); got != 10000 {
		t.Errorf("unmatched counted %v, want 10000", got)
	}
	var acts, skipLines int
	for _, d := range h.e.Recent() {
		switch d.Decision {
		case "act":
			acts++
		case "skip":
			skipLines++
		}
	}
	if acts != 1 || skipLines != 2 {
		t.Errorf("audit trail: %d acts and %d skip entries, want 1 and 2", acts, skipLines)
	}
}

func TestOneLine(t *testing.T) {
	err := errors.Join(errors.New("/tmp/a.lock: permission denied"), errors.New("/tmp/b.lock still blocks the start"))
	if got := oneLine(err); got != "/tmp/a.lock: permission denied; /tmp/b.lock still blocks the start" {
		t.Errorf("%q", got)
	}
}
