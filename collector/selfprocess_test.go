package collector

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"

	"github.com/clawdbot-exporter/clawdbot_exporter/internal/testutil"
)

func gatherFamilies(t *testing.T, c prometheus.Collector) map[string]*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

func familyValue(mf *dto.MetricFamily) float64 {
	m := mf.GetMetric()[0]
	if m.GetCounter() != nil {
		return m.GetCounter().GetValue()
	}
	return m.GetGauge().GetValue()
}

// TestSelfProcessCollectorMatchesClientGolang: the same families, help
// and types as client_golang's process collector, and the same values
// up to what changes between two reads.
func TestSelfProcessCollectorMatchesClientGolang(t *testing.T) {
	theirs := gatherFamilies(t, collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	ours := gatherFamilies(t, NewSelfProcessCollector())
	names := func(m map[string]*dto.MetricFamily) string {
		var out []string
		for n := range m {
			out = append(out, n)
		}
		sort.Strings(out)
		return strings.Join(out, " ")
	}
	if names(ours) != names(theirs) {
		t.Fatalf("families\n ours   %s\n theirs %s", names(ours), names(theirs))
	}
	for name, want := range theirs {
		got := ours[name]
		if got.GetHelp() != want.GetHelp() || got.GetType() != want.GetType() || len(got.GetMetric()) != 1 || len(got.GetMetric()[0].GetLabel()) != 0 {
			t.Errorf("%s: help %q type %v, want %q %v", name, got.GetHelp(), got.GetType(), want.GetHelp(), want.GetType())
			continue
		}
		g, w := familyValue(got), familyValue(want)
		ok := g == w
		switch name {
		case "process_cpu_seconds_total":
			ok = g >= w && g-w < 1
		case "process_network_receive_bytes_total", "process_network_transmit_bytes_total":
			ok = g >= w && g-w < 1<<30 // the host's traffic meanwhile
		case "process_open_fds":
			ok = math.Abs(g-w) <= 8
		case "process_resident_memory_bytes", "process_virtual_memory_bytes":
			ok = g > 0 && math.Abs(g-w) <= w/2
		case "process_start_time_seconds":
			ok = math.Abs(g-w) < 1 // /proc/stat's btime moves with the clock
		}
		if !ok {
			t.Errorf("%s = %v, client_golang says %v", name, g, w)
		}
	}
}

// TestSelfProcessCollectorMissingFiles: a metric whose file cannot be
// read is left out, and nothing else.
func TestSelfProcessCollectorMissingFiles(t *testing.T) {
	const pid = 77
	stat := "77 (a (weird) name) S 1 77 77 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 11 0 4200 123456789 300"
	for i := 0; i < 20; i++ {
		stat += " 0"
	}
	files := map[string]string{
		"stat":           "cpu  1 2 3\nbtime 1700000000\nprocesses 5\n",
		"77/stat":        stat + "\n",
		"77/limits":      "Limit                     Soft Limit           Hard Limit           Units     \nMax open files            1024                 4096                 files     \nMax address space         unlimited            unlimited            bytes     \n",
		"77/net/netstat": "TcpExt: SyncookiesSent X\nTcpExt: 0 1\nIpExt: InNoRoutes InOctets OutOctets\nIpExt: 0 1000 2000\n",
	}
	want := map[string]float64{
		"process_cpu_seconds_total":            3,
		"process_virtual_memory_bytes":         123456789,
		"process_resident_memory_bytes":        float64(300 * os.Getpagesize()),
		"process_start_time_seconds":           1700000042,
		"process_max_fds":                      1024,
		"process_virtual_memory_max_bytes":     math.MaxUint64,
		"process_network_receive_bytes_total":  1000,
		"process_network_transmit_bytes_total": 2000,
		"process_open_fds":                     2,
	}
	tests := []struct {
		name    string
		missing string // file left out
		gone    []string
	}{
		{name: "all there"},
		{name: "no stat", missing: "77/stat", gone: []string{"process_cpu_seconds_total", "process_virtual_memory_bytes", "process_resident_memory_bytes", "process_start_time_seconds"}},
		{name: "no boot time", missing: "stat", gone: []string{"process_start_time_seconds"}},
		{name: "no limits", missing: "77/limits", gone: []string{"process_max_fds", "process_virtual_memory_max_bytes"}},
		{name: "no netstat", missing: "77/net/netstat", gone: []string{"process_network_receive_bytes_total", "process_network_transmit_bytes_total"}},
		{name: "no fd dir", missing: "77/fd", gone: []string{"process_open_fds"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			for name, content := range files {
				if name == tc.missing {
					continue
				}
				if err := os.MkdirAll(filepath.Dir(filepath.Join(root, name)), 0o755); err != nil {
					t.Fatal(err)
				}
				testutil.MustWrite(t, filepath.Join(root, name), content)
			}
			if tc.missing != "77/fd" {
				for i := range 2 {
					if err := os.MkdirAll(filepath.Join(root, "77/fd", fmt.Sprint(i)), 0o755); err != nil {
						t.Fatal(err)
					}
				}
			}
			got := gatherFamilies(t, newSelfProcessCollector(root, pid))
			for name, v := range want {
				mf, ok := got[name]
				gone := false
				for _, g := range tc.gone {
					gone = gone || g == name
				}
				switch {
				case gone && ok:
					t.Errorf("%s reported without its file", name)
				case !gone && !ok:
					t.Errorf("%s missing", name)
				case !gone && familyValue(mf) != v:
					t.Errorf("%s = %v, want %v", name, familyValue(mf), v)
				}
			}
		})
	}
}

func TestSelfProcessParsers(t *testing.T) {
	if _, ok := parseSelfStat([]byte("1 (x) S 1 2 3")); ok {
		t.Error("short stat parsed")
	}
	if _, ok := parseSelfStat([]byte("no parenthesis")); ok {
		t.Error("stat without comm parsed")
	}
	if _, ok := parseSelfLimits([]byte("Max open files            1024  4096  files\n")); ok {
		t.Error("limits without the address space parsed")
	}
	if _, ok := parseSelfLimits([]byte("Max open files            lots  4096  files\nMax address space  1 1 bytes\n")); ok {
		t.Error("unparseable limit parsed")
	}
	if v, ok := parseIPExtOctets([]byte("TcpExt: A\nTcpExt: 1\n")); !ok || v.in != 0 || v.out != 0 {
		t.Errorf("netstat without IpExt: %+v %v, want zeros", v, ok)
	}
	if _, ok := parseIPExtOctets([]byte("IpExt: InOctets OutOctets\nIpExt: 1\n")); ok {
		t.Error("mismatched IpExt parsed")
	}
	if _, ok := parseBootTime([]byte("cpu 1 2\n")); ok {
		t.Error("stat without btime parsed")
	}
}

// BenchmarkSelfProcessCollector: one Collect of client_golang's process
// collector against NewSelfProcessCollector's.
func BenchmarkSelfProcessCollector(b *testing.B) {
	for _, bc := range []struct {
		name string
		c    prometheus.Collector
	}{
		{"client_golang", collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})},
		{"self", NewSelfProcessCollector()},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			ch := make(chan prometheus.Metric, 16)
			for b.Loop() {
				bc.c.Collect(ch)
				for len(ch) > 0 {
					<-ch
				}
			}
		})
	}
}
