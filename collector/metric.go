package collector

import (
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/clawdbot-exporter/clawdbot_exporter/internal/text"
)

// maxLabelValueLen bounds a label value, in bytes. Label values come from
// outside the exporter (gateway payloads, file and directory names, config
// files); none of the real ones comes near it.
const maxLabelValueLen = 256

// labelValue makes s fit for a label: valid UTF-8 (every run of invalid
// bytes becomes U+FFFD) and at most maxLabelValueLen bytes, cut between
// characters.
func labelValue(s string) string {
	if len(s) <= maxLabelValueLen && utf8.ValidString(s) {
		return s
	}
	return text.TruncateUTF8(strings.ToValidUTF8(s, "\uFFFD"), maxLabelValueLen)
}

// newMetric is prometheus.MustNewConstMetric that never panics, the only way
// collectors build metrics: it makes every label value fit (labelValue), and
// turns what is left to fail (a label count that does not match desc, a bug)
// into an invalid metric, which fails the gathering of that metric only.
//
// NewConstMetric checks that every value is valid UTF-8 itself: the values
// are made fit only when it finds one that is not, not checked twice.
func newMetric(desc *prometheus.Desc, typ prometheus.ValueType, v float64, labels ...string) prometheus.Metric {
	clean := labels
	for _, l := range labels {
		if len(l) > maxLabelValueLen {
			clean = fitLabels(labels)
			break
		}
	}
	m, err := prometheus.NewConstMetric(desc, typ, v, clean...)
	if err != nil {
		if m, err = prometheus.NewConstMetric(desc, typ, v, fitLabels(labels)...); err != nil {
			return prometheus.NewInvalidMetric(desc, err)
		}
	}
	return m
}

// fitLabels is labels through labelValue, in a copy: the caller's slice
// stays as it was.
func fitLabels(labels []string) []string {
	out := make([]string, len(labels))
	for i, l := range labels {
		out[i] = labelValue(l)
	}
	return out
}

// safeGroup runs a collector's goroutines. A panic in one is recovered and
// becomes an error of Wait, with the goroutine's stack: the collector fails
// (collector_success 0, the reason logged) and the exporter lives on. Every
// goroutine a collector starts must run in one; run recovers a panic of
// Update's own goroutine only.
type safeGroup struct {
	wg     sync.WaitGroup
	mu     sync.Mutex
	panics []error
}

// Go runs f in a new goroutine.
func (g *safeGroup) Go(f func()) {
	g.wg.Go(func() {
		defer func() {
			if p := recover(); p != nil {
				err := fmt.Errorf("panic in a collector goroutine: %v\n%s", p, debug.Stack())
				g.mu.Lock()
				g.panics = append(g.panics, err)
				g.mu.Unlock()
			}
		}()
		f()
	})
}

// Wait waits for every goroutine; it returns their panics, nil when none
// panicked.
func (g *safeGroup) Wait() error {
	g.wg.Wait()
	g.mu.Lock()
	defer g.mu.Unlock()
	return errors.Join(g.panics...)
}
