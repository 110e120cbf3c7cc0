package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clawdbot-exporter/clawdbot_exporter/internal/logrepeat"
	"github.com/clawdbot-exporter/clawdbot_exporter/internal/testutil"
)

// maxHold is issue 10's bound: a stalled client is dropped within 30 s.
const maxHold = 30 * time.Second

func TestServerLimits(t *testing.T) {
	srv := newServer(http.NotFoundHandler(), 5*time.Second, nil)
	if srv.WriteTimeout <= 5*time.Second {
		t.Errorf("WriteTimeout %v does not exceed the longest scrape deadline", srv.WriteTimeout)
	}
	for name, d := range map[string]time.Duration{"ReadHeaderTimeout": srv.ReadHeaderTimeout, "ReadTimeout": srv.ReadTimeout, "IdleTimeout": srv.IdleTimeout, "WriteTimeout": srv.WriteTimeout} {
		if d <= 0 || d > maxHold {
			t.Errorf("%s = %v, want in (0, %v]", name, d, maxHold)
		}
	}
	if srv.MaxHeaderBytes <= 0 || srv.MaxHeaderBytes > 1<<20 {
		t.Errorf("MaxHeaderBytes %d", srv.MaxHeaderBytes)
	}
}

// TestSlowClientsAreDropped runs real slow clients against the served
// exporter (with remediation, so that the webhook reads bodies): stalled
// headers, a body trickled a byte a second, an idle keep-alive connection.
// Each is closed by the exporter within maxHold, and it serves meanwhile.
func TestSlowClientsAreDropped(t *testing.T) {
	if testing.Short() {
		t.Skip("takes the server's timeouts (about 20 s)")
	}
	isolate(t)
	cfg := remediationConfig(t, "ws://127.0.0.1:1", "        type: exec\n        exec:\n          command: [/bin/true]")
	addr := freeAddr(t)
	var logs testutil.SyncBuffer
	go func() { run([]string{"--config.file", cfg, "--web.listen-address", addr}, io.Discard, &logs) }()
	testutil.WaitFor(t, "the exporter to serve", 10*time.Second, func() bool {
		resp, err := http.Get("http://" + addr + "/-/healthy")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})
	http.DefaultClient.CloseIdleConnections()
	baseline := runtime.NumGoroutine()

	dial := func(t *testing.T) net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	const stalled = 100
	var wg sync.WaitGroup
	var mu sync.Mutex
	var fails []string
	fail := func(format string) {
		mu.Lock()
		fails = append(fails, format)
		mu.Unlock()
	}
	check := func(c net.Conn, what string) {
		defer wg.Done()
		_ = c.SetReadDeadline(time.Now().Add(maxHold + 5*time.Second))
		if _, err := io.Copy(io.Discard, c); errors.Is(err, os.ErrDeadlineExceeded) {
			fail(what + ": still open after " + maxHold.String())
		}
	}
	// Half send the webhook's headers and stall before the body (the
	// handler is reading it), half stall within the headers.
	for i := range stalled {
		c := dial(t)
		req, what := "POST /alertmanager/webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n", "stalled body"
		if i%2 == 1 {
			req, what = "POST /alertmanager/webhook HTTP/1.1\r\nHost: x\r\n", "stalled headers"
		}
		if _, err := io.WriteString(c, req); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go check(c, what)
	}
	trickle := dial(t)
	if _, err := io.WriteString(trickle, "POST /alertmanager/webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	go func() {
		for range 100 {
			if _, err := trickle.Write([]byte(" ")); err != nil {
				return
			}
			time.Sleep(time.Second)
		}
	}()
	wg.Add(1)
	go check(trickle, "body at a byte a second")

	idle := dial(t)
	if _, err := io.WriteString(idle, "GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(idle)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Close {
		t.Fatalf("keep-alive request: %d close=%v", resp.StatusCode, resp.Close)
	}
	wg.Add(1)
	go check(idle, "idle keep-alive")

	// Oversized headers are refused at once.
	big := dial(t)
	if _, err := io.WriteString(big, "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Pad: "+strings.Repeat("a", 200<<10)+"\r\n\r\n"); err != nil && !errors.Is(err, net.ErrClosed) {
		t.Logf("writing oversized headers: %v", err) // the server may close first
	}
	_ = big.SetReadDeadline(time.Now().Add(maxHold))
	if resp, err := http.ReadResponse(bufio.NewReader(big), nil); err == nil && resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("200 KiB of headers: %d, want 431", resp.StatusCode)
	}

	// While they stall, the exporter holds them all and answers others.
	if n := runtime.NumGoroutine(); n < baseline+stalled {
		t.Errorf("goroutines %d with %d stalled clients (baseline %d): the server is not holding them", n, stalled, baseline)
	}
	resp, err = http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("/metrics while clients stall: %d", resp.StatusCode)
	}
	http.DefaultClient.CloseIdleConnections()
	wg.Wait()
	for _, f := range fails {
		t.Error(f)
	}
	// Their goroutines are gone with them.
	testutil.WaitFor(t, "the stalled clients' goroutines to end", 10*time.Second, func() bool {
		return runtime.NumGoroutine() <= baseline+5
	})
}

// TestServerErrorsAggregated: net/http's own lines (a port scanner's TLS
// handshakes) are counted per kind, not written once per client.
func TestServerErrorsAggregated(t *testing.T) {
	var logs testutil.SyncBuffer
	l := logrepeat.New(slog.New(slog.NewTextHandler(&logs, nil)), time.Hour)
	w := serverErrors{l}
	for i := range 1000 {
		fmt.Fprintf(w, "http: TLS handshake error from 10.0.0.%d:%d: EOF\n", i%250, 40000+i)
	}
	if n := strings.Count(logs.String(), "\n"); n != 1 {
		t.Errorf("1000 handshake errors wrote %d lines, want 1", n)
	}
	l.Flush()
	if !strings.Contains(logs.String(), "repeated=999") {
		t.Errorf("no count:\n%s", logs.String())
	}
}
