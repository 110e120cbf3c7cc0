package collector

import (
	"bytes"
	"math"
	"os"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/clawdbot-exporter/clawdbot_exporter/internal/fileio"
	"github.com/clawdbot-exporter/clawdbot_exporter/internal/procstat"
)

// The exporter's own process_* metrics, named and explained as
// client_golang's process collector (v1.25) names and explains them.
var (
	selfCPUDesc      = prometheus.NewDesc("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", nil, nil)
	selfOpenFDsDesc  = prometheus.NewDesc("process_open_fds", "Number of open file descriptors.", nil, nil)
	selfMaxFDsDesc   = prometheus.NewDesc("process_max_fds", "Maximum number of open file descriptors.", nil, nil)
	selfVSizeDesc    = prometheus.NewDesc("process_virtual_memory_bytes", "Virtual memory size in bytes.", nil, nil)
	selfMaxVSizeDesc = prometheus.NewDesc("process_virtual_memory_max_bytes", "Maximum amount of virtual memory available in bytes.", nil, nil)
	selfRSSDesc      = prometheus.NewDesc("process_resident_memory_bytes", "Resident memory size in bytes.", nil, nil)
	selfStartDesc    = prometheus.NewDesc("process_start_time_seconds", "Start time of the process since unix epoch in seconds.", nil, nil)
	selfInDesc       = prometheus.NewDesc("process_network_receive_bytes_total", "Number of bytes received by the process over the network.", nil, nil)
	selfOutDesc      = prometheus.NewDesc("process_network_transmit_bytes_total", "Number of bytes sent by the process over the network.", nil, nil)
)

// NewSelfProcessCollector exports the exporter's own process_* metrics as
// collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}) does on
// Linux: the same names, help, types and values from the same /proc files,
// and a metric left out when its file cannot be read. It costs a scrape
// less: the start time is computed once (client_golang parses all of
// /proc/stat on every scrape for the boot time), and the files are read
// into a reused buffer and parsed for the few fields used (procfs
// parses every field of /proc/self/net/netstat).
func NewSelfProcessCollector() prometheus.Collector {
	return newSelfProcessCollector("/proc", os.Getpid())
}

func newSelfProcessCollector(procRoot string, pid int) *selfProcessCollector {
	dir := procRoot + "/" + strconv.Itoa(pid) + "/"
	var st unix.Statfs_t
	isProc := unix.Statfs(procRoot, &st) == nil && st.Type == unix.PROC_SUPER_MAGIC
	return &selfProcessCollector{procRoot: procRoot, dir: dir, pageSize: os.Getpagesize(), realProc: isProc,
		bufs: sync.Pool{New: func() any { b := make([]byte, 0, 8<<10); return &b }}}
}

type selfProcessCollector struct {
	procRoot, dir string
	pageSize      int
	// realProc: procRoot is a proc filesystem, whose fd directories tell
	// their size.
	realProc bool
	bufs     sync.Pool

	// start is the start time, kept once known (0 until then).
	mu    sync.Mutex
	start float64
}

func (c *selfProcessCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{selfCPUDesc, selfOpenFDsDesc, selfMaxFDsDesc, selfVSizeDesc, selfMaxVSizeDesc, selfRSSDesc, selfStartDesc, selfInDesc, selfOutDesc} {
		ch <- d
	}
}

func (c *selfProcessCollector) Collect(ch chan<- prometheus.Metric) {
	bp := c.bufs.Get().(*[]byte)
	defer c.bufs.Put(bp)
	send := func(d *prometheus.Desc, t prometheus.ValueType, v float64) {
		ch <- prometheus.MustNewConstMetric(d, t, v)
	}
	if st, ok := c.read(bp, "stat", parseSelfStat); ok {
		send(selfCPUDesc, prometheus.CounterValue, float64(st.utime+st.stime)/userHZ)
		send(selfVSizeDesc, prometheus.GaugeValue, float64(st.vsize))
		send(selfRSSDesc, prometheus.GaugeValue, float64(st.rss*c.pageSize))
		if start, ok := c.startTime(bp, st.starttime); ok {
			send(selfStartDesc, prometheus.GaugeValue, start)
		}
	}
	if n, ok := c.openFDs(); ok {
		send(selfOpenFDsDesc, prometheus.GaugeValue, float64(n))
	}
	if l, ok := c.read(bp, "limits", parseSelfLimits); ok {
		send(selfMaxFDsDesc, prometheus.GaugeValue, float64(l.openFiles))
		send(selfMaxVSizeDesc, prometheus.GaugeValue, float64(l.addressSpace))
	}
	if n, ok := c.read(bp, "net/netstat", parseIPExtOctets); ok {
		send(selfInDesc, prometheus.CounterValue, n.in)
		send(selfOutDesc, prometheus.CounterValue, n.out)
	}
}

// readInto reads the file at path into *bp, reused across scrapes, and
// parses it.
func readInto[T any](bp *[]byte, path string, parse func([]byte) (T, bool)) (T, bool) {
	b, err := fileio.ReadInto(path, bp, 1<<20) // /proc files this collector reads are a few KiB
	if err != nil {
		var zero T
		return zero, false
	}
	return parse(b)
}

// read reads and parses the process's file name.
func (c *selfProcessCollector) read(bp *[]byte, name string, parse func([]byte) (selfValues, bool)) (selfValues, bool) {
	return readInto(bp, c.dir+name, parse)
}

// selfValues holds what one file told.
type selfValues struct {
	utime, stime, starttime, vsize uint64
	rss                            int
	openFiles, addressSpace        uint64
	in, out                        float64
}

// startTime is procfs' ProcStat.StartTime: the boot time from /proc/stat
// plus the start ticks at USER_HZ, computed until it could be once.
func (c *selfProcessCollector) startTime(bp *[]byte, ticks uint64) (float64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.start == 0 {
		btime, ok := readInto(bp, c.procRoot+"/stat", parseBootTime)
		if !ok {
			return 0, false
		}
		c.start = float64(btime) + float64(ticks)/userHZ
	}
	return c.start, true
}

// openFDs is procfs' FileDescriptorsLen: the size of the fd directory
// where the kernel tells it (Linux 6.2), else its entries counted.
func (c *selfProcessCollector) openFDs() (int, bool) {
	if c.realProc {
		var st unix.Stat_t
		if err := unix.Stat(c.dir+"fd", &st); err != nil {
			return 0, false
		}
		if st.Size > 0 {
			return int(st.Size), true
		}
	}
	d, err := os.Open(c.dir + "fd")
	if err != nil {
		return 0, false
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return 0, false
	}
	return len(names), true
}

// parseSelfStat parses /proc/<pid>/stat as procfs does.
func parseSelfStat(b []byte) (selfValues, bool) {
	st, err := procstat.Parse(0, b)
	if err != nil {
		return selfValues{}, false
	}
	return selfValues{utime: uint64(st.UTime), stime: uint64(st.STime), starttime: st.Starttime, vsize: uint64(st.VSize), rss: st.RSS}, true
}

// parseSelfLimits reads the soft limits of open files and address space
// from /proc/<pid>/limits; "unlimited" is the largest uint64, as procfs
// has it.
func parseSelfLimits(b []byte) (selfValues, bool) {
	var v selfValues
	found := 0
	for line := range bytes.Lines(b) {
		var dst *uint64
		var rest []byte
		switch {
		case bytes.HasPrefix(line, []byte("Max open files ")):
			dst, rest = &v.openFiles, line[len("Max open files "):]
		case bytes.HasPrefix(line, []byte("Max address space ")):
			dst, rest = &v.addressSpace, line[len("Max address space "):]
		default:
			continue
		}
		f := bytes.Fields(rest)
		if len(f) == 0 {
			return v, false
		}
		if string(f[0]) == "unlimited" {
			*dst = math.MaxUint64
		} else {
			n, err := strconv.ParseUint(string(f[0]), 10, 64)
			if err != nil {
				return v, false
			}
			*dst = n
		}
		found++
	}
	return v, found == 2
}

// parseIPExtOctets reads IpExt's InOctets and OutOctets from
// /proc/<pid>/net/netstat (pairs of a header line and a value line); both
// are 0 when the kernel has no IpExt, as procfs reports them.
func parseIPExtOctets(b []byte) (selfValues, bool) {
	var v selfValues
	var header []byte
	for line := range bytes.Lines(b) {
		if !bytes.HasPrefix(line, []byte("IpExt: ")) {
			continue
		}
		if header == nil {
			header = line
			continue
		}
		names, values := bytes.Fields(header), bytes.Fields(line)
		if len(names) != len(values) {
			return v, false
		}
		for i, n := range names {
			var dst *float64
			switch string(n) {
			case "InOctets":
				dst = &v.in
			case "OutOctets":
				dst = &v.out
			default:
				continue
			}
			f, err := strconv.ParseFloat(string(values[i]), 64)
			if err != nil {
				return v, false
			}
			*dst = f
		}
		break
	}
	return v, true
}

// parseBootTime reads btime from /proc/stat.
func parseBootTime(b []byte) (uint64, bool) {
	for line := range bytes.Lines(b) {
		if rest, ok := bytes.CutPrefix(line, []byte("btime ")); ok {
			n, err := strconv.ParseUint(string(bytes.TrimSpace(rest)), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}
