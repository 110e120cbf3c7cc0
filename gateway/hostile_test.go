package gateway_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/procfs"

	"github.com/clawdbot-exporter/clawdbot_exporter/gateway"
	"github.com/clawdbot-exporter/clawdbot_exporter/gateway/configfile"
	gt "github.com/clawdbot-exporter/clawdbot_exporter/gateway/gatewaytest"
	"github.com/clawdbot-exporter/clawdbot_exporter/gateway/lockfile"
	"github.com/clawdbot-exporter/clawdbot_exporter/gateway/prober"
	"github.com/clawdbot-exporter/clawdbot_exporter/internal/fileio"
)

// Every JSON or JSON5 document read from disk or the network is bounded in
// depth (fileio.CheckDepth) before a decoder sees it.

func nested(prefix string, n int, suffix string) []byte {
	var b bytes.Buffer
	b.WriteString(prefix)
	b.WriteString(strings.Repeat("[", n))
	b.WriteString(strings.Repeat("]", n))
	b.WriteString(suffix)
	return b.Bytes()
}

// largestDeepConfig is the deepest config under the 4 MiB read limit:
// `{a:` + n × `[` + n × `]` + `}`.
const largestDeepConfig = (4<<20 - 4) / 2

// emptyProc is a proc tree with no process.
func emptyProc(t *testing.T) procfs.FS {
	fs, err := procfs.NewFS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

// TestDeepDocuments: every JSON or JSON5 document read from disk is refused
// when it nests deeper than fileio.MaxDepth, as a parse error, before a decoder
// recurses into it. Before, the largest config below the read limit killed
// the process with a stack overflow.
func TestDeepDocuments(t *testing.T) {
	depths := []int{fileio.MaxDepth + 1, 10_001, 500_000, largestDeepConfig}
	type tcase struct {
		name string
		// run reads a document nested n deep from dir and returns the
		// error the reader reports (nil: accepted).
		run func(t *testing.T, dir string, n int) error
	}
	write := func(t *testing.T, path string, b []byte) string {
		t.Helper()
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	// The wrappers add one level ({a: ... }): n-1 brackets make a document
	// n deep.
	tests := []tcase{
		{"config", func(t *testing.T, dir string, n int) error {
			p := write(t, filepath.Join(dir, "clawdbot.json"), nested("{a:", n-1, "}"))
			rep, err := configfile.Inspect(p)
			if err != nil && (rep == nil || rep.ModTime.IsZero()) {
				t.Errorf("no report with the modification time beside %v", err)
			}
			return err
		}},
		{"config $include", func(t *testing.T, dir string, n int) error {
			write(t, filepath.Join(dir, "deep.json5"), nested("{a:", n-1, "}"))
			p := write(t, filepath.Join(dir, "clawdbot.json"), []byte(`{gateway: {$include: "./deep.json5"}}`))
			_, err := configfile.Inspect(p)
			if err != nil && !strings.Contains(err.Error(), "deep.json5") {
				t.Errorf("the error does not name the included file: %v", err)
			}
			return err
		}},
		{"gateway config for credentials", func(t *testing.T, dir string, n int) error {
			_, err := configfile.Load(write(t, filepath.Join(dir, "clawdbot.json"), nested("{a:", n-1, "}")))
			return err
		}},
		{"lock file", func(t *testing.T, dir string, n int) error {
			n = min(n, (64<<10)/2-20) // the deepest lock that is read
			l := lockfile.Inspect(emptyProc(t), write(t, filepath.Join(dir, "gateway.12345678.lock"), nested(`{"pid":31337,"x":`, n-1, "}")))
			if l.State == lockfile.OwnerUnknown {
				return errors.New(l.Why)
			}
			return nil
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, n := range []int{3, 20, fileio.MaxDepth} {
				if err := tc.run(t, t.TempDir(), n); err != nil {
					t.Errorf("%d deep: %v", n, err)
				}
			}
			for _, n := range depths {
				err := tc.run(t, t.TempDir(), n)
				if err == nil || !strings.Contains(err.Error(), "nested deeper than") {
					t.Errorf("%d deep: %v, want nested deeper than %d", n, err, fileio.MaxDepth)
				}
			}
		})
	}
}

func TestDeepConfigParseError(t *testing.T) {
	p := filepath.Join(t.TempDir(), "clawdbot.json")
	if err := os.WriteFile(p, nested("{\n  a: ", largestDeepConfig-10, "}"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := configfile.Inspect(p)
	want := "config " + p + ": invalid JSON5 (nested deeper than 128 levels at line 2, column 133)"
	if err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
}

// TestProbeDeepPayload: gateway frames are decoded by encoding/json, which
// refuses more than 10000 levels by itself and decodes into fixed types, so
// that nesting costs a pass of its scanner, not recursion. The fake gateway
// cannot send more than 10000 levels (its encoder refuses them too): a bare
// WebSocket server sends those as the challenge.
func TestProbeDeepPayload(t *testing.T) {
	tests := []struct {
		depth int
		want  prober.Reason // "" = up
	}{
		{depth: 100},
		{depth: 9_000},
		{depth: 10_001, want: prober.ReasonBadFrame},
		{depth: 1_000_000, want: prober.ReasonBadFrame},
	}
	for _, tc := range tests {
		url := ""
		if tc.depth < 10_000 {
			srv := gt.New(gt.Options{Health: nested(`{"ok":true,"x":`, tc.depth, "}")})
			defer srv.Close()
			url = srv.URL()
		} else {
			frame := nested(`{"type":"event","event":"connect.challenge","payload":{"x":`, tc.depth, "}}")
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				c, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
				if err != nil {
					return
				}
				defer c.Close()
				_ = c.WriteMessage(websocket.TextMessage, frame)
				_, _, _ = c.ReadMessage()
			}))
			defer srv.Close()
			url = "ws" + strings.TrimPrefix(srv.URL, "http")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := (&prober.Prober{}).Probe(ctx, gateway.Target{Name: "gw", URL: url, Token: gt.DefaultToken})
		cancel()
		var pe *prober.ProbeError
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%d deep: %v, want up", tc.depth, err)
		case tc.want != "" && (!errors.As(err, &pe) || pe.Reason != tc.want || !strings.Contains(err.Error(), "max depth")):
			t.Errorf("%d deep: %v, want %s for its depth", tc.depth, err, tc.want)
		}
	}
}
