package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestPackageGraph keeps the data flowing one way: config -> gateway access
// (gateway/...) -> collectors and remediation -> HTTP. The collectors link
// no remediation (Docker, D-Bus), and no gateway package reaches up. The
// binary links nothing a test helper or the official Docker client would
// bring: they cost every start (the probe subcommand is a container health
// check, run every 30 s) page faults and init time for nothing.
func TestPackageGraph(t *testing.T) {
	const mod = "github.com/clawdbot-exporter/clawdbot_exporter/"
	deps := func(pkg string) []string {
		out, err := exec.Command("go", "list", "-deps", "./"+pkg).Output()
		if err != nil {
			t.Fatalf("go list -deps ./%s: %v", pkg, err)
		}
		return strings.Fields(string(out))
	}
	forbidden := map[string][]string{
		"collector":        {mod + "remediate", mod + "status", mod + "config", "github.com/moby/", "github.com/godbus/", "github.com/coreos/go-systemd"},
		"gateway/...":      {mod + "collector", mod + "remediate", mod + "status", mod + "config"},
		"gateway/prober":   {mod + "gateway/lockfile", mod + "gateway/sessionstore", mod + "gateway/process"},
		"gateway/lockfile": {"github.com/gorilla/websocket"},
		"config":           {mod + "collector", mod + "remediate", mod + "status"},
		"remediate":        {mod + "collector", mod + "status"},
		".":                {"github.com/moby/", "github.com/distribution/", "go.opentelemetry.io/", "net/http/httptest", mod + "gateway/gatewaytest", mod + "internal/testutil"},
	}
	for pkg, bad := range forbidden {
		for _, d := range deps(pkg) {
			for _, b := range bad {
				if strings.HasPrefix(d, b) {
					t.Errorf("%s depends on %s", pkg, d)
				}
			}
		}
	}
}
