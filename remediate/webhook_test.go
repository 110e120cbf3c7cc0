package remediate

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/promslog"
)

const validBody = `{"version":"4","status":"firing","receiver":"clawdbot","groupKey":"{}:{}","alerts":[
 {"status":"firing","labels":{"alertname":"ClawdbotGatewayDown","gateway":"main","remediation":"restart"},
  "annotations":{"summary":"x."},"startsAt":"2026-11-25T03:00:00Z","endsAt":"0001-01-01T00:00:00Z","fingerprint":"a1b2"}]}`

func TestWebhook(t *testing.T) {
	h := newHarness(t, false, nil)
	handler := &Handler{Engine: h.e, Token: func() []byte { return []byte("s3cret-token") }, Metrics: h.m, Logger: promslog.NewNopLogger()}
	for _, tc := range []struct {
		name, method, auth, body string
		code                     int
		inBody                   string
		header                   map[string]string // beside Content-Type: application/json
	}{
		{"valid", "POST", "Bearer s3cret-token", validBody, 200, `"actions":1`, nil},
		{"scheme is case-insensitive (a duplicate now)", "POST", "bearer s3cret-token", validBody, 200, `"actions":0`, nil},
		{"cross-site (Origin)", "POST", "Bearer s3cret-token", validBody, 403, "cross-origin", map[string]string{"Origin": "http://evil.example"}},
		{"text/plain (a browser's simple request)", "POST", "Bearer s3cret-token", validBody, 415, "application/json", map[string]string{"Content-Type": "text/plain"}},
		{"no content type", "POST", "Bearer s3cret-token", validBody, 415, "application/json", map[string]string{"Content-Type": ""}},
		{"no token", "POST", "", validBody, 401, "bearer token", nil},
		{"wrong token", "POST", "Bearer s3cret-tokeN", validBody, 401, "bearer token", nil},
		{"basic instead of bearer", "POST", "Basic czNjcmV0LXRva2Vu", validBody, 401, "bearer token", nil},
		{"GET", "GET", "Bearer s3cret-token", "", 405, "POST only", nil},
		{"malformed JSON", "POST", "Bearer s3cret-token", `{"version":"4",`, 400, "malformed JSON", nil},
		{"unknown version", "POST", "Bearer s3cret-token", `{"version":"3","alerts":[]}`, 400, `version "3"`, nil},
		{"no alerts", "POST", "Bearer s3cret-token", `{"version":"4"}`, 400, "no alerts field", nil},
		{"alert without fingerprint", "POST", "Bearer s3cret-token", strings.Replace(validBody, `"fingerprint":"a1b2"`, `"fingerprint":""`, 1), 400, "no fingerprint", nil},
		{"bad status", "POST", "Bearer s3cret-token", strings.Replace(validBody, `{"status":"firing","labels"`, `{"status":"maybe","labels"`, 1), 400, "status", nil},
		{"too big", "POST", "Bearer s3cret-token", `{"version":"4","alerts":[],"pad":"` + strings.Repeat("x", 2<<20) + `"}`, 413, "larger than", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, DefaultWebhookPath, strings.NewReader(tc.body))
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			req.Header.Set("Content-Type", "application/json")
			for k, v := range tc.header {
				if v == "" {
					req.Header.Del(k)
				} else {
					req.Header.Set(k, v)
				}
			}
			rec := httptest.NewRecorder()
			handler.ServeHTTP(rec, req)
			if rec.Code != tc.code || !strings.Contains(rec.Body.String(), tc.inBody) {
				t.Errorf("%d %q, want %d containing %q", rec.Code, rec.Body.String(), tc.code, tc.inBody)
			}
		})
	}
	h.e.Wait()
	// Only the one valid, authenticated request acted; refused ones never do.
	if h.action.runs.Load() != 1 {
		t.Errorf("actions run: %d, want 1", h.action.runs.Load())
	}
	if v := testutil.ToFloat64(h.m.requests.WithLabelValues("401")); v != 3 {
		t.Errorf("401 count %v", v)
	}
}

func TestWebhookAnswersBeforeActing(t *testing.T) {
	h := newHarness(t, false, nil)
	h.action.release = make(chan struct{})
	handler := &Handler{Engine: h.e, Metrics: h.m, Logger: promslog.NewNopLogger()}
	done := make(chan int)
	go func() {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(validBody))
		req.Header.Set("Content-Type", "application/json")
		handler.ServeHTTP(rec, req)
		done <- rec.Code
	}()
	select {
	case code := <-done:
		if code != 200 {
			t.Fatalf("code %d", code)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the webhook waited for the action: Alertmanager would retry")
	}
	close(h.action.release)
	h.e.Wait()
}

func FuzzParseMessage(f *testing.F) {
	f.Add([]byte(validBody))
	f.Add([]byte(`{"version":"4","alerts":[]}`))
	f.Add([]byte(`{"version":"4","alerts":[{"status":"resolved","labels":{"a":"b"},"fingerprint":"x","startsAt":"2026-01-01T00:00:00Z"}]}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"version":4}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseMessage(b)
		if err != nil {
			if m != nil {
				t.Fatal("message with an error")
			}
			return
		}
		// What is accepted is complete enough to decide on.
		if m.Version != "4" || m.Alerts == nil {
			t.Fatalf("accepted %+v", m)
		}
		for _, a := range m.Alerts {
			if a.Fingerprint == "" || len(a.Labels) == 0 || a.StartsAt.IsZero() || (a.Status != "firing" && a.Status != "resolved") {
				t.Fatalf("accepted incomplete alert %+v", a)
			}
		}
	})
}

func TestWebhookDisabled(t *testing.T) {
	h := newHarness(t, false, nil)
	handler := &Handler{Engine: h.e, Enabled: func() bool { return false }, Metrics: h.m, Logger: promslog.NewNopLogger()}
	req := httptest.NewRequest(http.MethodPost, DefaultWebhookPath, strings.NewReader(validBody))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, req)
	if rec.Code != http.StatusNotFound || h.action.runs.Load() != 0 {
		t.Errorf("without remediation: %d, %d actions", rec.Code, h.action.runs.Load())
	}
}
