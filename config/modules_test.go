package config

import (
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestModulesLoad(t *testing.T) {
	home := t.TempDir()
	dir := t.TempDir()
	token := write(t, dir, "token", "fleet-token\n")
	tests := []struct {
		name    string
		doc     string
		loadErr string
		check   func(t *testing.T, s *Snapshot)
	}{
		{name: "modules alone are a configuration", doc: "modules:\n  default: {}\n", check: func(t *testing.T, s *Snapshot) {
			m := s.Modules["default"]
			if m == nil || !m.Allowed.Empty() || m.Timeout != 0 || m.Target.Creds != nil {
				t.Errorf("default module: %+v", m)
			}
			// A central prober probes no local gateway of its own.
			if len(s.Targets) != 0 {
				t.Errorf("modules-only config has local targets %v", s.Targets)
			}
		}},
		{name: "full module", doc: "modules:\n  fleet:\n    token_file: " + token + "\n    timeout: 3s\n    tls_fingerprint: " + strings.Repeat("ab", 32) +
			"\n    allowed_targets: [10.42.0.0/16, 192.0.2.7, '*.gw.svc.cluster.local']\n", check: func(t *testing.T, s *Snapshot) {
			m := s.Modules["fleet"]
			if m.Timeout != 3*time.Second {
				t.Errorf("timeout %v", m.Timeout)
			}
			tok, _, err := m.Target.Secrets()
			if err != nil || tok.Reveal() != "fleet-token" {
				t.Errorf("token %q, %v", tok.Reveal(), err)
			}
			if got := m.Allowed.String(); got != "10.42.0.0/16, 192.0.2.7/32, *.gw.svc.cluster.local" {
				t.Errorf("allowed %s", got)
			}
			if strings.Contains(m.Target.Source, "fleet-token") {
				t.Error("the source names the secret")
			}
		}},
		{name: "missing token file", doc: "modules:\n  m:\n    token_file: " + filepath.Join(dir, "nope") + "\n", loadErr: `modules: "m": token file`},
		{name: "unknown key", doc: "modules:\n  m:\n    token: abc\n", loadErr: "field token not found"},
		{name: "bad CIDR", doc: "modules:\n  m:\n    allowed_targets: [10.0.0.0/33]\n", loadErr: "not a CIDR"},
		{name: "glob that allows everything", doc: "modules:\n  m:\n    allowed_targets: ['*']\n", loadErr: "allows every host"},
		{name: "glob with a port", doc: "modules:\n  m:\n    allowed_targets: ['gw:18789']\n", loadErr: "neither a CIDR nor a host glob"},
		{name: "bad fingerprint", doc: "modules:\n  m:\n    tls_fingerprint: zz\n", loadErr: "64 hex digits"},
		{name: "negative timeout", doc: "modules:\n  m:\n    timeout: -1s\n", loadErr: "must not be negative"},
		{name: "bad name", doc: "modules:\n  'a b': {}\n", loadErr: "module name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := write(t, dir, "config.yaml", tc.doc)
			s, err := Load(sources(home, path))
			if tc.loadErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.loadErr) {
					t.Fatalf("load: %v, want %q", err, tc.loadErr)
				}
				if strings.Contains(err.Error(), "fleet-token") {
					t.Errorf("error carries the token: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, s)
		})
	}
}

func TestAllowlist(t *testing.T) {
	addrs := func(ss ...string) []netip.Addr {
		var out []netip.Addr
		for _, s := range ss {
			out = append(out, netip.MustParseAddr(s))
		}
		return out
	}
	tests := []struct {
		name    string
		entries []string
		host    string
		addrs   []netip.Addr
		hostErr bool // refused before any lookup
		err     bool
	}{
		{name: "empty: loopback", host: "127.0.0.1", addrs: addrs("127.0.0.1")},
		{name: "empty: localhost", host: "localhost", addrs: addrs("127.0.0.1", "::1")},
		{name: "empty: a LAN address", host: "10.0.0.5", addrs: addrs("10.0.0.5"), hostErr: true, err: true},
		{name: "empty: a name resolving beyond loopback", host: "gw.example", addrs: addrs("10.0.0.5"), err: true},
		{name: "empty: one of two addresses beyond loopback", host: "gw.example", addrs: addrs("127.0.0.1", "10.0.0.5"), err: true},
		{name: "cidr: inside", entries: []string{"10.42.0.0/16"}, host: "10.42.3.4", addrs: addrs("10.42.3.4")},
		{name: "cidr: a name inside", entries: []string{"10.42.0.0/16"}, host: "gw.ns.svc", addrs: addrs("10.42.3.4")},
		{name: "cidr: outside", entries: []string{"10.42.0.0/16"}, host: "10.43.0.1", addrs: addrs("10.43.0.1"), hostErr: true, err: true},
		{name: "cidr: loopback not implied", entries: []string{"10.42.0.0/16"}, host: "127.0.0.1", addrs: addrs("127.0.0.1"), hostErr: true, err: true},
		{name: "cidr: IPv4-mapped IPv6", entries: []string{"10.42.0.0/16"}, host: "::ffff:10.42.0.1", addrs: addrs("::ffff:10.42.0.1")},
		{name: "cidr: IPv6", entries: []string{"fd00::/8"}, host: "[fd00::1]", addrs: addrs("fd00::1")},
		{name: "glob: match", entries: []string{"*.gw.svc.cluster.local"}, host: "team-a.gw.svc.cluster.local", addrs: addrs("10.1.2.3")},
		{name: "glob: case and trailing dot", entries: []string{"*.gw.svc.cluster.local"}, host: "Team-A.GW.svc.cluster.local.", addrs: addrs("10.1.2.3")},
		{name: "glob: * within one label", entries: []string{"*.gw.svc.cluster.local"}, host: "evil.example.gw.svc.cluster.local", hostErr: true, err: true},
		{name: "glob: no match", entries: []string{"*.gw.svc.cluster.local"}, host: "metadata.google.internal", hostErr: true, err: true},
		{name: "glob: metadata address", entries: []string{"*.gw.example"}, host: "a.gw.example", addrs: addrs("169.254.169.254"), err: true},
		{name: "glob: unspecified address", entries: []string{"*.gw.example"}, host: "a.gw.example", addrs: addrs("0.0.0.0"), err: true},
		{name: "glob: address literal", entries: []string{"*.gw.example"}, host: "10.1.2.3", addrs: addrs("10.1.2.3"), hostErr: true, err: true},
		{name: "both: name and address", entries: []string{"*.gw.example", "10.0.0.0/8"}, host: "a.gw.example", addrs: addrs("10.1.2.3")},
		{name: "both: name outside the CIDRs", entries: []string{"*.gw.example", "10.0.0.0/8"}, host: "a.gw.example", addrs: addrs("192.168.1.1"), err: true},
		{name: "both: unmatched name", entries: []string{"*.gw.example", "10.0.0.0/8"}, host: "other.example", hostErr: true, err: true},
		{name: "both: address literal in a CIDR", entries: []string{"*.gw.example", "10.0.0.0/8"}, host: "10.9.9.9", addrs: addrs("10.9.9.9")},
		{name: "no address", entries: []string{"10.0.0.0/8"}, host: "gw", err: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, err := ParseAllowlist(tc.entries)
			if err != nil {
				t.Fatal(err)
			}
			if err := a.CheckHost(tc.host); (err != nil) != tc.hostErr {
				t.Errorf("CheckHost(%q) = %v, want error %v", tc.host, err, tc.hostErr)
			}
			if err := a.Check(tc.host, tc.addrs); (err != nil) != tc.err {
				t.Errorf("Check(%q, %v) = %v, want error %v", tc.host, tc.addrs, err, tc.err)
			}
		})
	}
}
