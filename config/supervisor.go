package config

// What the configuration alone tells of restarting one gateway twice:
// two targets that act on the same trigger. Each target has its own state
// (cooldown, breaker, busy, dedupe), so the engine cannot see that both
// restart the same gateway. What the supervisor adds (systemd's Restart=,
// Docker's restart policy) is known only on the live system: see
// docs/supervisors.md.

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// checkOverlaps refuses two targets of one gateway that can act on the
// same trigger: both watch it, or one alert can match both. Matchers are
// exact label values, so two targets are disjoint only when a label both
// name must have different values. It runs after the defaults are filled.
func (c *Remediation) checkOverlaps() error {
	for i := range c.Targets {
		a := &c.Targets[i]
		for j := i + 1; j < len(c.Targets); j++ {
			b := &c.Targets[j]
			if a.Gateway != b.Gateway {
				continue
			}
			if a.Watch != nil && b.Watch != nil {
				return fmt.Errorf("remediation targets %q and %q both watch gateway %q: each watch loop would act on the same failure, "+
					"with two states (cooldown, breaker) and two restarts; keep watch on one of them", a.Name, b.Name, a.Gateway)
			}
			ma, oka := alertLabels(a)
			mb, okb := alertLabels(b)
			if !oka || !okb || disjoint(ma, mb) {
				continue
			}
			return fmt.Errorf("remediation targets %q and %q can both act on one alert for gateway %q: their matchers %s and %s "+
				"have no label with different required values, and each target keeps its own cooldown and breaker, so one alert "+
				"would restart the gateway twice; give them a label with different values (e.g. remediation: restart and remediation: restart-hard) or keep one",
				a.Name, b.Name, a.Gateway, formatMatchers(a.Matchers), formatMatchers(b.Matchers))
		}
	}
	return nil
}

// alertLabels is what an alert must carry to match t: its matchers and
// its gateway label. ok is false for a target no alert can match (a
// gateway matcher other than its gateway).
func alertLabels(t *RemediationTarget) (map[string]string, bool) {
	m := maps.Clone(t.Matchers)
	if m == nil {
		m = map[string]string{}
	}
	if g, ok := m["gateway"]; ok && g != t.Gateway {
		return nil, false
	}
	m["gateway"] = t.Gateway
	return m, true
}

// disjoint: no alert matches both, i.e. a label both require has
// different values.
func disjoint(a, b map[string]string) bool {
	for k, v := range a {
		if w, ok := b[k]; ok && w != v {
			return true
		}
	}
	return false
}

func formatMatchers(m map[string]string) string {
	keys := slices.Sorted(maps.Keys(m))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%q", k, m[k])
	}
	return "{" + strings.Join(parts, ", ") + "}"
}
