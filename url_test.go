package main

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/clawdbot-exporter/clawdbot_exporter/internal/testutil"
)

// TestGatewayURLValidated: --gateway.url and a config file's url: take the
// gateway's WebSocket URL; an http:// one or a bare host:port stops the
// start and --config.check with the form to use.
func TestGatewayURLValidated(t *testing.T) {
	isolate(t)
	for _, tc := range []struct{ url, want string }{
		{"http://127.0.0.1:18789", "try ws://127.0.0.1:18789"},
		{"https://gw.example:443", "try wss://gw.example:443"},
		{"127.0.0.1:18789", "use ws://127.0.0.1:18789"},
	} {
		code, _, errOut := runCLI("--gateway.url", tc.url, "--config.check")
		if code != 1 || !strings.Contains(errOut, tc.want) {
			t.Errorf("--gateway.url %s --config.check: exit %d %s", tc.url, code, errOut)
		}
		cfg := write(t, "c.yml", "gateways:\n  - name: main\n    url: "+tc.url+"\n")
		code, _, errOut = runCLI("--config.file", cfg, "--config.check")
		if code != 1 || !strings.Contains(errOut, tc.want) {
			t.Errorf("url: %s --config.check: exit %d %s", tc.url, code, errOut)
		}
		code, _, errOut = runCLI("--gateway.url", tc.url, "--web.listen-address", freeAddr(t))
		if code != 1 || !strings.Contains(errOut, tc.want) {
			t.Errorf("--gateway.url %s: exit %d %s", tc.url, code, errOut)
		}
	}
	if code, out, errOut := runCLI("--gateway.url", "wss://gw.example:443", "--config.check"); code != 0 {
		t.Errorf("wss://: exit %d %s %s", code, out, errOut)
	}
}

// TestBrokenGatewayConfigOnStatusPage: a gateway config the exporter
// cannot use does not stop it; the status page says which and why.
func TestBrokenGatewayConfigOnStatusPage(t *testing.T) {
	isolate(t)
	bad := write(t, "openclaw.json", `{gateway: {auth: {token: `)
	addr := freeAddr(t)
	go runCLI("--gateway.url", "ws://127.0.0.1:1", "--gateway.config-path", bad, "--web.listen-address", addr)
	var body string
	testutil.WaitFor(t, "the status page", 10*time.Second, func() bool {
		resp, err := http.Get("http://" + addr + "/")
		if err != nil {
			return false
		}
		body = readAll(resp)
		return resp.StatusCode == 200
	})
	for _, want := range []string{"Gateway files not usable", "<td>default</td>", "openclaw.json"} {
		if !strings.Contains(body, want) {
			t.Errorf("status page lacks %q", want)
		}
	}
}
