package remediate

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// What the supervisors say of the gateways they run: how often systemd or
// Docker restarted them on their own, and how they last ended. These are
// the restarts the exporter did not make, and an exit status of 78 is a
// gateway that no restart will fix.
var (
	unitRestartsDesc = prometheus.NewDesc("clawdbot_remediation_systemd_unit_restarts",
		"Automatic restarts of the target's systemd unit (NRestarts) since it was last started by hand or reset-failed.",
		[]string{"target", "unit"}, nil)
	unitResultDesc = prometheus.NewDesc("clawdbot_remediation_systemd_unit_result",
		"1 for the target's systemd unit's current Result: success, exit-code, signal, core-dump, timeout, watchdog, start-limit-hit, oom-kill, resources, protocol, exec-condition, other.",
		[]string{"target", "unit", "result"}, nil)
	containerRestartsDesc = prometheus.NewDesc("clawdbot_remediation_docker_container_restarts",
		"Restarts of the target's container by its restart policy (RestartCount) since it was last started by hand.",
		[]string{"target", "container"}, nil)
	containerRestartingDesc = prometheus.NewDesc("clawdbot_remediation_docker_container_restarting",
		"1 while the target's container's restart policy is restarting it.",
		[]string{"target", "container"}, nil)
	exitStatusDesc = prometheus.NewDesc("clawdbot_remediation_unit_exit_status",
		"How the target's gateway last ended, while it is not running (systemd ExecMainStatus, Docker State.ExitCode): its exit status, 128+N when killed by signal N. 78: a configuration or lock problem no restart fixes.",
		[]string{"target"}, nil)
	supervisorUpDesc = prometheus.NewDesc("clawdbot_remediation_supervisor_up",
		"1 when the last read of the target's supervisor (systemd over D-Bus, the Docker daemon) succeeded.",
		[]string{"target"}, nil)
)

// Bounds of the supervisor reads: scrapes must stay cheap whatever the bus
// or the daemon does.
const (
	supervisorCacheTTL   = 15 * time.Second
	supervisorReadTime   = 1500 * time.Millisecond // one target's read
	supervisorScrapeWait = 2 * time.Second         // the longest a scrape waits for a refresh
	supervisorMaxTargets = 64                      // read at most this many targets
	supervisorParallel   = 8
	// supervisorRefreshTime bounds a whole refresh: enough for
	// supervisorMaxTargets reads at supervisorParallel.
	supervisorRefreshTime = (supervisorMaxTargets/supervisorParallel + 1) * supervisorReadTime
)

// supervised is one target's supervisor as last read.
type supervised struct {
	target, kind, name string // kind: systemd or docker; name: the unit or container
	ok                 bool
	unit               unitState
	restarts           int
	restarting         bool
	running            bool
	exitCode           int
}

// supervisorCollector exports what systemd and Docker say of the targets'
// gateways. Reads are cached for supervisorCacheTTL and made in the
// background: a scrape waits for a stale cache's refresh at most
// supervisorScrapeWait, then serves what it has.
type supervisorCollector struct {
	targets func() []Target
	logger  *slog.Logger
	read    func(ctx context.Context, t Target) (supervised, error)
	// refreshTime bounds a refresh (supervisorRefreshTime; tests shorten it).
	refreshTime time.Duration

	mu         sync.Mutex
	cache      []supervised
	at         time.Time
	refreshing chan struct{}   // closed when the running refresh ends
	failing    map[string]bool // targets whose last read failed: logged once
	inFlight   map[string]bool // targets with a read running
}

// NewSupervisorCollector exports, for the systemd and docker targets of
// targets() (called at each refresh, so reloads show), the supervisor's
// restart count, result, restarting state and the gateway's last exit.
func NewSupervisorCollector(targets func() []Target, logger *slog.Logger) prometheus.Collector {
	return &supervisorCollector{targets: targets, logger: logger, read: readSupervisor, refreshTime: supervisorRefreshTime,
		failing: map[string]bool{}, inFlight: map[string]bool{}}
}

// Describe implements prometheus.Collector.
func (c *supervisorCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{unitRestartsDesc, unitResultDesc, containerRestartsDesc, containerRestartingDesc, exitStatusDesc, supervisorUpDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *supervisorCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	var wait chan struct{}
	if time.Since(c.at) >= supervisorCacheTTL {
		if c.refreshing == nil {
			c.refreshing = make(chan struct{})
			go c.refresh(c.refreshing)
		}
		wait = c.refreshing
	}
	c.mu.Unlock()
	if wait != nil {
		t := time.NewTimer(supervisorScrapeWait)
		select {
		case <-wait:
		case <-t.C:
		}
		t.Stop()
	}
	c.mu.Lock()
	cache := c.cache
	c.mu.Unlock()
	for _, s := range cache {
		emitSupervised(ch, s)
	}
}

func emitSupervised(ch chan<- prometheus.Metric, s supervised) {
	ch <- prometheus.MustNewConstMetric(supervisorUpDesc, prometheus.GaugeValue, boolGauge(s.ok), s.target)
	if !s.ok {
		return
	}
	switch s.kind {
	case "systemd":
		u := s.unit
		if u.HasNRestarts {
			ch <- prometheus.MustNewConstMetric(unitRestartsDesc, prometheus.GaugeValue, float64(u.NRestarts), s.target, s.name)
		}
		if u.Result != "" {
			ch <- prometheus.MustNewConstMetric(unitResultDesc, prometheus.GaugeValue, 1, s.target, s.name, unitResultLabel(u.Result))
		}
		if u.ActiveState != "active" && u.ActiveState != "reloading" {
			switch u.ExecMainCode {
			case cldExited:
				ch <- prometheus.MustNewConstMetric(exitStatusDesc, prometheus.GaugeValue, float64(u.ExecMainStatus), s.target)
			case cldKilled, cldDumped:
				ch <- prometheus.MustNewConstMetric(exitStatusDesc, prometheus.GaugeValue, float64(128+u.ExecMainStatus), s.target)
			}
		}
	case "docker":
		ch <- prometheus.MustNewConstMetric(containerRestartsDesc, prometheus.GaugeValue, float64(s.restarts), s.target, s.name)
		ch <- prometheus.MustNewConstMetric(containerRestartingDesc, prometheus.GaugeValue, boolGauge(s.restarting), s.target, s.name)
		if !s.running || s.restarting {
			ch <- prometheus.MustNewConstMetric(exitStatusDesc, prometheus.GaugeValue, float64(s.exitCode), s.target)
		}
	}
}

// unitResults are the values of a service's Result (systemd's
// service_result_table); anything else, from a newer systemd or a unit of
// another type, is "other", so the label stays a small fixed set.
var unitResults = map[string]bool{
	"success": true, "resources": true, "protocol": true, "timeout": true, "exit-code": true, "signal": true,
	"core-dump": true, "watchdog": true, "start-limit-hit": true, "oom-kill": true, "exec-condition": true,
}

func unitResultLabel(r string) string {
	if unitResults[r] {
		return r
	}
	return "other"
}

// refresh reads every supervised target, in parallel and bounded, and
// replaces the cache whole: a removed target's series go with it.
func (c *supervisorCollector) refresh(done chan struct{}) {
	var out []supervised
	defer func() {
		if p := recover(); p != nil {
			c.logger.Error("supervisor metrics panicked", "panic", p)
		}
		c.mu.Lock()
		if out != nil || c.cache == nil {
			c.cache = out
		}
		c.at = time.Now()
		c.refreshing = nil
		c.mu.Unlock()
		close(done)
	}()
	var targets []Target
	for _, t := range c.targets() {
		if t.Action.Systemd != nil || t.Action.Docker != nil {
			targets = append(targets, t)
		}
	}
	if len(targets) > supervisorMaxTargets {
		c.logger.Warn("supervisor metrics: too many targets, reading the first ones", "targets", len(targets), "read", supervisorMaxTargets)
		targets = targets[:supervisorMaxTargets]
	}
	// A read that ignores its deadline must not hold the refresh, nor be
	// started again while it hangs: the refresh ends at its own deadline
	// with that target failed, and at most one read per target runs.
	ctx, cancel := context.WithTimeout(context.Background(), c.refreshTime)
	defer cancel()
	type result struct {
		i int
		s supervised
	}
	res := make([]supervised, len(targets))
	for i, t := range targets {
		res[i] = supervised{target: t.Name}
	}
	results := make(chan result, len(targets))
	sem := make(chan struct{}, supervisorParallel)
	started := 0
launch:
	for i, t := range targets {
		c.mu.Lock()
		busy := c.inFlight[t.Name]
		if !busy {
			c.inFlight[t.Name] = true
		}
		c.mu.Unlock()
		if busy {
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			c.mu.Lock()
			delete(c.inFlight, t.Name)
			c.mu.Unlock()
			break launch
		}
		started++
		go func() {
			defer func() {
				<-sem
				c.mu.Lock()
				delete(c.inFlight, t.Name)
				c.mu.Unlock()
			}()
			results <- result{i, c.safeRead(ctx, t)}
		}()
	}
collect:
	for range started {
		select {
		case r := <-results:
			res[r.i] = r.s
		case <-ctx.Done():
			break collect
		}
	}
	out = res
}

// safeRead reads one target within supervisorReadTime; a panic is a
// failed read. A failure is logged when the target's reads start failing,
// not at each refresh; the supervisor_up series shows it meanwhile.
func (c *supervisorCollector) safeRead(ctx context.Context, t Target) (s supervised) {
	var err error
	defer func() {
		if p := recover(); p != nil {
			s, err = supervised{}, fmt.Errorf("panic: %v", p)
		}
		s.target = t.Name
		if err != nil {
			s.ok = false
		}
		c.mu.Lock()
		was := c.failing[t.Name]
		if err != nil {
			c.failing[t.Name] = true
		} else {
			delete(c.failing, t.Name)
		}
		c.mu.Unlock()
		switch {
		case err != nil && !was:
			c.logger.Warn("supervisor metrics: cannot read the target's supervisor", "target", t.Name, "err", oneLine(err))
		case err == nil && was:
			c.logger.Info("supervisor metrics: the target's supervisor answers again", "target", t.Name)
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, supervisorReadTime)
	defer cancel()
	s, err = c.read(ctx, t)
	return s
}

// readSupervisor reads one target's supervisor, as Preflight does.
func readSupervisor(ctx context.Context, t Target) (supervised, error) {
	s := supervised{target: t.Name}
	switch {
	case t.Action.Systemd != nil:
		sp := t.Action.Systemd
		a := &systemdAction{unit: sp.Unit, bus: sp.Bus}
		if a.bus == "" {
			a.bus = "user"
		}
		s.kind, s.name = "systemd", sp.Unit
		conn, err := a.connect(ctx)
		if err != nil {
			return s, fmt.Errorf("systemd %s bus: connect: %w", a.bus, err)
		}
		defer conn.Close()
		u, err := readUnit(ctx, conn, sp.Unit)
		if err != nil {
			return s, fmt.Errorf("systemd %s bus: %w", a.bus, err)
		}
		s.unit, s.ok = u, true
	case t.Action.Docker != nil:
		sp := t.Action.Docker
		d := &dockerAction{container: sp.Container, host: sp.Host}
		s.kind, s.name = "docker", sp.Container
		cl, err := d.client()
		if err != nil {
			return s, err
		}
		defer cl.Close()
		res, err := d.inspect(ctx, cl)
		if err != nil {
			return s, err
		}
		if res.State == nil {
			return s, fmt.Errorf("docker inspect of container %q: no state", d.container)
		}
		s.ok = true
		s.restarts, s.restarting, s.running, s.exitCode = res.RestartCount, res.State.Restarting, res.State.Running, res.State.ExitCode
	}
	return s, nil
}
