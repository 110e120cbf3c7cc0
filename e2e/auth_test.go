//go:build e2e

package e2e

import (
	"os"
	"strings"
	"testing"
	"time"
)

// restartReasons are the reasons the mixin restarts a gateway for.
var restartReasons = map[string]bool{"dial": true, "timeout": true, "closed": true, "rpc": true, "bad_frame": true, "unhealthy": true}

// TestOpenclawWrongToken: openclaw throttles refused logins (up to 5 s each,
// past a probe's deadline). A wrong token must never read as a restart
// reason, however many probes; the exporter backs off its logins, and a
// token file rewritten with the right token works without a restart.
func TestOpenclawWrongToken(t *testing.T) {
	t.Parallel()
	g := startGateway(t, "openclaw", gatewayOpts{})
	tokenFile := secretFile(t, "not-the-token")
	e := startExporter(t, nil, "--gateway.url", g.URL(), "--gateway.token-file", tokenFile)

	reasons := map[string]int{}
	var backoff float64
	for i := range 12 {
		r := e.scrape(t, "5") // deadline 4.5 s, as a 5 s scrape timeout gives
		got := r.Failing("")
		if len(got) != 1 || restartReasons[got[0]] || got[0] != "auth" && got[0] != "hello_timeout" {
			t.Fatalf("probe %d with a wrong token: failing %v", i, got)
		}
		reasons[got[0]]++
		backoff, _ = r.Value("clawdbot_probe_auth_backoff_seconds", nil)
		time.Sleep(time.Second)
	}
	t.Logf("12 probes with a wrong token: reasons %v, auth backoff %v s", reasons, backoff)
	if backoff <= 0 {
		t.Error("clawdbot_probe_auth_backoff_seconds is 0 after refusals")
	}

	// Rotate: the file now holds the gateway's token.
	if err := os.WriteFile(tokenFile, []byte(g.Token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := e.scrape(t, "5")
	expectUp(t, r)
	if v, _ := r.Value("clawdbot_probe_auth_backoff_seconds", nil); v != 0 {
		t.Errorf("auth backoff %v after the token was fixed", v)
	}

	// Without the exporter's gate (each probe subcommand is a new process
	// that logs in), the gateway's penalty grows past a 2 s deadline: the
	// challenge came and pings are answered, so it is hello_timeout, never
	// timeout.
	seen := map[string]int{}
	for range 7 {
		p := probeWith(t, "--probe.timeout=2s", "--gateway.url", g.URL(), "--gateway.token-file", secretFile(t, "not-the-token"))
		if p.Up || restartReasons[p.Reason] {
			t.Fatalf("probe subcommand with a wrong token: %+v", p)
		}
		seen[p.Reason]++
		if p.Reason == "auth" && !strings.Contains(p.Error, "--gateway.token-file") {
			t.Errorf("auth error does not say how to fix it: %s", p.Error)
		}
	}
	t.Logf("7 logins in a row with a wrong token, no gate: %v", seen)
	if seen["hello_timeout"] == 0 {
		t.Error("7 refused logins in a row, and the gateway's throttling never held one past the 2 s deadline")
	}
}

// TestOpenclawWithoutAuthBlock: no gateway.auth means token mode with a
// token made up at start; the probe says auth, never a restart reason.
func TestOpenclawWithoutAuthBlock(t *testing.T) {
	t.Parallel()
	g := startGateway(t, "openclaw", gatewayOpts{noAuthBlock: true})
	e := startExporter(t, []string{"HOME=" + g.Home})
	for range 3 {
		expectDown(t, e.scrape(t, ""), "auth")
	}
}
