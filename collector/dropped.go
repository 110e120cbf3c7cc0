package collector

import (
	"sort"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// itemsDroppedDesc is the one family every collector reports its cuts
// under, so that a cut (lock files past the per-directory cap, payload items
// past the per-gateway cap, …) is never silent.
var itemsDroppedDesc = prometheus.NewDesc(
	prometheus.BuildFQName(namespace, "exporter", "items_dropped_total"),
	"Items a collector did not look at or report because a limit cut them, by collector and kind.",
	[]string{"collector", "kind"}, nil)

// dropCounter is one collector's share of
// clawdbot_exporter_items_dropped_total{collector,kind}: the collector
// keeps one (made in its factory), adds what it cut, and sends it with its
// metrics at the end of each Update (collect). Safe for concurrent use.
type dropCounter struct {
	collector string
	mu        sync.Mutex
	n         map[string]float64
}

// newDropCounter makes collector's counter; the kinds given are sent at 0
// from the first scrape, so that rate() and alerts see them before any cut.
func newDropCounter(collector string, kinds ...string) *dropCounter {
	d := &dropCounter{collector: collector, n: map[string]float64{}}
	for _, k := range kinds {
		d.n[k] = 0
	}
	return d
}

// add counts n more dropped items of kind; n <= 0 is ignored.
func (d *dropCounter) add(kind string, n int) {
	if n <= 0 {
		return
	}
	d.mu.Lock()
	d.n[kind] += float64(n)
	d.mu.Unlock()
}

// collect sends one counter per kind, in a stable order.
func (d *dropCounter) collect(ch chan<- prometheus.Metric) {
	d.mu.Lock()
	kinds := make([]string, 0, len(d.n))
	for k := range d.n {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	values := make([]float64, len(kinds))
	for i, k := range kinds {
		values[i] = d.n[k]
	}
	d.mu.Unlock()
	for i, k := range kinds {
		ch <- newMetric(itemsDroppedDesc, prometheus.CounterValue, values[i], d.collector, k)
	}
}
