// Package metrictest reads /metrics output for tests: the unit tests and the
// end-to-end tests assert on samples the same way.
package metrictest

import (
	"sort"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Families is a parsed exposition, by metric name.
type Families map[string]*dto.MetricFamily

// Parse reads the Prometheus text format.
func Parse(body string) (Families, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(strings.NewReader(body))
}

// Value is the value of the first sample of name whose labels include all of
// labels; ok is false when there is none.
func (f Families) Value(name string, labels map[string]string) (v float64, ok bool) {
	for _, m := range f[name].GetMetric() {
		if !matches(m, labels) {
			continue
		}
		switch {
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Untyped != nil:
			return m.GetUntyped().GetValue(), true
		}
	}
	return 0, false
}

// Failing lists, sorted, the reasons whose clawdbot_probe_failing is 1 for
// gateway gw ("" for any).
func (f Families) Failing(gw string) []string {
	var out []string
	for _, m := range f["clawdbot_probe_failing"].GetMetric() {
		l := labelMap(m)
		if (gw == "" || l["gateway"] == gw) && m.GetGauge().GetValue() == 1 {
			out = append(out, l["reason"])
		}
	}
	sort.Strings(out)
	return out
}

func matches(m *dto.Metric, want map[string]string) bool {
	have := labelMap(m)
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

func labelMap(m *dto.Metric) map[string]string {
	out := make(map[string]string, len(m.GetLabel()))
	for _, lp := range m.GetLabel() {
		out[lp.GetName()] = lp.GetValue()
	}
	return out
}
