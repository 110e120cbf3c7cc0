package config

import (
	"strings"
	"testing"
)

func TestCheckOverlaps(t *testing.T) {
	signal := ActionSpec{Type: "signal"}
	systemd := ActionSpec{Type: "systemd", Systemd: &SystemdSpec{Unit: "clawdbot-gateway.service"}}
	target := func(name, gw string, m map[string]string, watch bool) RemediationTarget {
		t := RemediationTarget{Name: name, Gateway: gw, Matchers: m, Action: signal}
		if name == "b" {
			t.Action = systemd
		}
		if watch {
			t.Watch = &Watch{}
		}
		return t
	}
	restart := map[string]string{"remediation": "restart"}
	for _, c := range []struct {
		name    string
		targets []RemediationTarget
		err     string // "" = accepted
	}{
		{name: "one target", targets: []RemediationTarget{target("a", "main", nil, true)}},
		{name: "two gateways, same matchers", targets: []RemediationTarget{target("a", "main", nil, true), target("b", "other", nil, true)}},
		{name: "same gateway, default matchers both", targets: []RemediationTarget{target("a", "main", nil, false), target("b", "main", nil, false)},
			err: `remediation targets "a" and "b" can both act on one alert for gateway "main": their matchers {remediation="restart"} and {remediation="restart"}`},
		{name: "same gateway, one matcher a subset of the other",
			targets: []RemediationTarget{target("a", "main", restart, false), target("b", "main", map[string]string{"remediation": "restart", "severity": "critical"}, false)},
			err:     "would restart the gateway twice"},
		{name: "same gateway, disjoint keys are no help",
			targets: []RemediationTarget{target("a", "main", map[string]string{"team": "x"}, false), target("b", "main", map[string]string{"severity": "critical"}, false)},
			err:     "no label with different required values"},
		{name: "same gateway, a label with different values",
			targets: []RemediationTarget{target("a", "main", restart, false), target("b", "main", map[string]string{"remediation": "restart-hard"}, false)}},
		{name: "same gateway, disjoint matchers, but both watch",
			targets: []RemediationTarget{target("a", "main", restart, true), target("b", "main", map[string]string{"remediation": "restart-hard"}, true)},
			err:     `remediation targets "a" and "b" both watch gateway "main"`},
		{name: "same gateway, disjoint matchers, one watches",
			targets: []RemediationTarget{target("a", "main", restart, true), target("b", "main", map[string]string{"remediation": "restart-hard"}, false)}},
		{name: "a gateway matcher that is not its gateway matches nothing",
			targets: []RemediationTarget{target("a", "main", map[string]string{"gateway": "other"}, false), target("b", "main", nil, false)}},
		{name: "a gateway matcher that is its gateway",
			targets: []RemediationTarget{target("a", "main", map[string]string{"gateway": "main", "remediation": "restart"}, false), target("b", "main", nil, false)},
			err:     "can both act on one alert"},
		{name: "the third target overlaps the first",
			targets: []RemediationTarget{target("a", "main", restart, false), target("b", "main", map[string]string{"remediation": "x"}, false), target("c", "main", nil, false)},
			err:     `"a" and "c"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := Remediation{Targets: c.targets}
			err := r.Validate([]string{"main", "other"})
			switch {
			case c.err == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
				t.Fatalf("Validate: %v, want an error with %q", err, c.err)
			}
		})
	}
}
