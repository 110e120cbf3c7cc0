package collector

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
)

func TestCompressLarge(t *testing.T) {
	small := strings.Repeat("clawdbot_up 1\n", 100)
	large := strings.Repeat("clawdbot_up{gateway=\"g\"} 1\n", compressAbove/10)
	cases := []struct {
		name, accept, body string
		status             int
		gzipped            bool
	}{
		{"small stays plain", "gzip", small, 200, false},
		{"large is gzipped", "gzip", large, 200, true},
		{"large, gzip among others", "deflate, gzip;q=0.5", large, 200, true},
		{"large, no gzip asked", "", large, 200, false},
		{"large, gzip refused", "gzip;q=0", large, 200, false},
		{"large error page", "gzip", large, 500, false},
		{"small error page", "gzip", small, 503, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := compressLarge(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "text/plain")
				w.WriteHeader(c.status)
				// In pieces, as an encoder writes.
				for b := []byte(c.body); len(b) > 0; {
					n := min(len(b), 4096)
					_, _ = w.Write(b[:n])
					b = b[n:]
				}
			}))
			req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
			if c.accept != "" {
				req.Header.Set("Accept-Encoding", c.accept)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != c.status {
				t.Errorf("status %d, want %d", rec.Code, c.status)
			}
			body := rec.Body.Bytes()
			if got := rec.Header().Get("Content-Encoding") == "gzip"; got != c.gzipped {
				t.Fatalf("gzipped = %v, want %v", got, c.gzipped)
			}
			if c.gzipped {
				zr, err := gzip.NewReader(bytes.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				if body, err = io.ReadAll(zr); err != nil {
					t.Fatal(err)
				}
			}
			if string(body) != c.body {
				t.Errorf("body differs: %d bytes, want %d", len(body), len(c.body))
			}
			if rec.Header().Get("Content-Type") != "text/plain" {
				t.Errorf("content type lost: %q", rec.Header().Get("Content-Type"))
			}
		})
	}
}

// TestCompressLargeReusesBuffers: answers one after another and at once,
// through the pooled buffers, each come out whole and alone.
func TestCompressLargeReusesBuffers(t *testing.T) {
	h := compressLarge(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.URL.Query().Get("body"))
	}))
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			want := strings.Repeat(fmt.Sprintf("line %d\n", i), 1+(i%4)*1000)
			req := httptest.NewRequest(http.MethodGet, "/metrics?body="+url.QueryEscape(want), nil)
			req.Header.Set("Accept-Encoding", "gzip")
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if got := rec.Body.String(); got != want {
				t.Errorf("answer %d: %d bytes, want %d", i, len(got), len(want))
			}
		})
	}
	wg.Wait()
}
