// Command fleetmeasure is the full measure of the /probe endpoint
// (scripts/fleet-measure.sh): it starts N fake gateways on loopback ports,
// some with faults, starts the exporter with a module for them, scrapes
// /probe for every target each interval the way Prometheus does (spread
// over the interval, with the scrape-timeout header), checks every answer's
// clawdbot_up against the fault the fake was given, and reports the
// exporter's CPU and RSS.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	gt "github.com/clawdbot-exporter/clawdbot_exporter/gateway/gatewaytest"
	"github.com/clawdbot-exporter/clawdbot_exporter/internal/metrictest"
)

type fake struct {
	target string
	kind   string
	wantUp bool
	srv    *gt.Server
}

// kinds, by share of the fleet: most healthy, the rest one fault each.
var kinds = []struct {
	name  string
	every int // one in every
	up    bool
	opts  gt.Options
}{
	{"wrong_token", 20, false, gt.Options{Protocol: 4, Token: "someone-else"}},
	{"down", 20, false, gt.Options{}},
	{"stall_health", 20, false, gt.Options{Protocol: 4, Fault: gt.FaultStallHealth}},
	{"unhealthy", 20, false, gt.Options{Protocol: 3, Fault: gt.FaultHealthNotOK}},
	{"starting", 20, false, gt.Options{Protocol: 4, Fault: gt.FaultStarting}},
	{"garbage", 20, false, gt.Options{Protocol: 3, Fault: gt.FaultGarbage}},
}

func main() {
	n := flag.Int("targets", 200, "fake gateways")
	interval := flag.Duration("interval", 5*time.Second, "scrape interval of every target")
	scrapeTimeout := flag.Duration("scrape-timeout", 4*time.Second, "scrape timeout (sent as X-Prometheus-Scrape-Timeout-Seconds)")
	duration := flag.Duration("duration", 5*time.Minute, "how long to scrape")
	bin := flag.String("exporter", "./clawdbot_exporter", "exporter binary")
	flag.Parse()
	if err := run(*n, *interval, *scrapeTimeout, *duration, *bin); err != nil {
		fmt.Fprintln(os.Stderr, "fleetmeasure:", err)
		os.Exit(1)
	}
}

func run(n int, interval, scrapeTimeout, duration time.Duration, bin string) error {
	dir, err := os.MkdirTemp("", "fleetmeasure")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	fakes := make([]*fake, n)
	for i := range fakes {
		f := &fake{kind: "healthy", wantUp: true}
		opts := gt.Options{Protocol: 3 + i%2}
		for k, kd := range kinds {
			if i%kinds[0].every == k+1 {
				f.kind, f.wantUp, opts = kd.name, kd.up, kd.opts
			}
		}
		if f.kind == "down" {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return err
			}
			f.target = l.Addr().String()
			l.Close()
		} else {
			f.srv = gt.New(opts)
			defer f.srv.Close()
			f.target = f.srv.Addr()
		}
		fakes[i] = f
	}
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte(gt.DefaultToken+"\n"), 0o600); err != nil {
		return err
	}
	cfg := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfg, []byte("modules:\n  fleet:\n    token_file: "+token+"\n"), 0o600); err != nil {
		return err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(bin, "--config.file="+cfg, "--web.listen-address="+addr, "--log.level=warn",
		"--no-collector.lock", "--no-collector.process", "--no-collector.sessions", "--no-collector.config", "--no-collector.probe")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() }()
	pid := cmd.Process.Pid
	base := "http://" + addr
	if err := waitHealthy(base); err != nil {
		return err
	}
	time.Sleep(time.Second)
	rssIdle := rss(pid)

	ctx, cancel := context.WithTimeout(context.Background(), duration)
	defer cancel()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() { <-sig; cancel() }()

	var (
		probes, wrong, late, failed atomic.Int64
		mu                          sync.Mutex
		worst                       time.Duration
		wrongKinds                  = map[string]int{}
		lat                         []time.Duration
	)
	client := &http.Client{Timeout: scrapeTimeout}
	cpu0, t0 := cpuSeconds(pid), time.Now()
	var rssMax, rssSum, rssN int64
	go func() {
		tk := time.NewTicker(time.Second)
		defer tk.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tk.C:
				r := rss(pid)
				atomic.AddInt64(&rssSum, r)
				atomic.AddInt64(&rssN, 1)
				for {
					old := atomic.LoadInt64(&rssMax)
					if r <= old || atomic.CompareAndSwapInt64(&rssMax, old, r) {
						break
					}
				}
			}
		}
	}()
	var wg sync.WaitGroup
	for i, f := range fakes {
		wg.Go(func() {
			// Spread over the interval, as Prometheus spreads its targets.
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Duration(i) * interval / time.Duration(len(fakes))):
			}
			tk := time.NewTicker(interval)
			defer tk.Stop()
			for {
				q := url.Values{"target": {f.target}, "module": {"fleet"}}
				req, _ := http.NewRequest(http.MethodGet, base+"/probe?"+q.Encode(), nil)
				req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", strconv.FormatFloat(scrapeTimeout.Seconds(), 'f', -1, 64))
				begin := time.Now()
				resp, err := client.Do(req)
				took := time.Since(begin)
				probes.Add(1)
				mu.Lock()
				lat = append(lat, took)
				worst = max(worst, took)
				mu.Unlock()
				if took > scrapeTimeout {
					late.Add(1)
				}
				if err != nil {
					failed.Add(1)
				} else {
					body, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					fams, perr := metrictest.Parse(string(body))
					up, ok := fams.Value("clawdbot_up", nil)
					if resp.StatusCode != 200 || perr != nil || !ok {
						failed.Add(1)
					} else if (up == 1) != f.wantUp {
						wrong.Add(1)
						mu.Lock()
						wrongKinds[f.kind]++
						mu.Unlock()
					}
				}
				select {
				case <-ctx.Done():
					return
				case <-tk.C:
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(t0)
	cpu := cpuSeconds(pid) - cpu0
	cores := cpu / elapsed.Seconds()
	per100 := float64(len(fakes)) / 100
	np := probes.Load()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	p99 := time.Duration(0)
	if len(lat) > 0 {
		p99 = lat[len(lat)*99/100]
	}
	avgRSS := float64(0)
	if rssN > 0 {
		avgRSS = float64(rssSum) / float64(rssN)
	}
	cpuPerProbe := cpu / float64(max(np, 1))
	rssPerTarget := (float64(rssMax) - float64(rssIdle)) / float64(len(fakes))
	fmt.Printf("targets %d, interval %v, scrape timeout %v, measured %v\n", len(fakes), interval, scrapeTimeout, elapsed.Round(time.Second))
	counts := map[string]int{}
	for _, f := range fakes {
		counts[f.kind]++
	}
	fmt.Printf("fleet: %v\n", counts)
	fmt.Printf("probes %d: wrong clawdbot_up %d %v, failed scrapes %d, past the scrape timeout %d; latency p99 %v, max %v\n",
		np, wrong.Load(), wrongKinds, failed.Load(), late.Load(), p99.Round(time.Millisecond), worst.Round(time.Millisecond))
	fmt.Printf("exporter CPU: %.3f cores = %.3f cores per 100 targets; %.2f ms CPU per probe\n", cores, cores/per100, cpuPerProbe*1000)
	fmt.Printf("exporter RSS: idle %.1f MB, average %.1f MB, max %.1f MB = %.1f MB per 100 targets above idle\n",
		mb(rssIdle), avgRSS/1e6, mb(rssMax), rssPerTarget*100/1e6)
	const bigN, bigInterval = 1000, 15.0
	fmt.Printf("extrapolated, %d targets every %.0f s: %.2f cores, %.0f MB RSS\n",
		bigN, bigInterval, cpuPerProbe*bigN/bigInterval, (float64(rssIdle)+rssPerTarget*bigN)/1e6)
	if wrong.Load() > 0 || failed.Load() > 0 || late.Load() > 0 {
		return fmt.Errorf("%d wrong, %d failed, %d late scrapes", wrong.Load(), failed.Load(), late.Load())
	}
	return nil
}

func mb(b int64) float64 { return float64(b) / 1e6 }

func waitHealthy(base string) error {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(base + "/-/healthy"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("exporter at %s not healthy", base)
}

// cpuSeconds is the process's user+system CPU time.
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseFloat(fields[11], 64)
	st, _ := strconv.ParseFloat(fields[12], 64)
	return (ut + st) / 100 // USER_HZ
}

// rss is the process's resident set in bytes.
func rss(pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb * 1024
		}
	}
	return 0
}
