package remediate

import (
	"context"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	ctr "github.com/moby/moby/api/types/container"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/promslog"
)

func systemdTarget(name, unit string) Target {
	return Target{Name: name, Gateway: name, Action: ActionSpec{Type: "systemd", Systemd: &SystemdSpec{Unit: unit, Bus: "user", Mode: "replace"}}}
}

// expire makes the collector's cache stale, as 15 s would.
func (c *supervisorCollector) expire() {
	c.mu.Lock()
	c.at = time.Time{}
	c.mu.Unlock()
}

func TestSupervisorCollector(t *testing.T) {
	const unit = "clawdbot-gateway.service"
	addr := startBus(t)
	fake := startFakeSystemd(t, addr, unit, "other.service")
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", addr)
	clearDockerEnv(t)
	daemon := &fakeDaemon{state: map[string]ctr.State{
		"looping": {Status: ctr.StateRestarting, Restarting: true, Running: true, ExitCode: 78},
		"gw":      {Status: ctr.StateRunning, Running: true},
	}}
	srv := httptest.NewServer(daemon)
	defer srv.Close()
	host := "tcp://" + srv.Listener.Addr().String()
	docker := func(name, container string) Target {
		tg := dockerTarget(container, host, time.Second)
		tg.Name = name
		return tg
	}

	fake.setUnit(unit, map[string]any{"ActiveState": "failed", "SubState": "failed", "Result": "exit-code",
		"ExecMainCode": int32(1), "ExecMainStatus": int32(78), "NRestarts": uint32(3)})
	fake.setUnit("other.service", map[string]any{"Result": "brand-new-result"})
	targets := []Target{
		systemdTarget("gw-systemd", unit),
		systemdTarget("gw-running", "other.service"),
		systemdTarget("gw-missing", "missing.service"),
		docker("gw-docker", "looping"),
		docker("gw-docker-up", "gw"),
		{Name: "gw-signal", Gateway: "x", Action: ActionSpec{Type: "signal", Signal: &SignalSpec{Signal: "SIGTERM"}}},
	}
	var mu sync.Mutex
	current := func() []Target {
		mu.Lock()
		defer mu.Unlock()
		return append([]Target(nil), targets...)
	}
	c := NewSupervisorCollector(current, promslog.NewNopLogger()).(*supervisorCollector)

	want := `
# HELP clawdbot_remediation_docker_container_restarting 1 while the target's container's restart policy is restarting it.
# TYPE clawdbot_remediation_docker_container_restarting gauge
clawdbot_remediation_docker_container_restarting{container="gw",target="gw-docker-up"} 0
clawdbot_remediation_docker_container_restarting{container="looping",target="gw-docker"} 1
# HELP clawdbot_remediation_docker_container_restarts Restarts of the target's container by its restart policy (RestartCount) since it was last started by hand.
# TYPE clawdbot_remediation_docker_container_restarts gauge
clawdbot_remediation_docker_container_restarts{container="gw",target="gw-docker-up"} 0
clawdbot_remediation_docker_container_restarts{container="looping",target="gw-docker"} 0
# HELP clawdbot_remediation_supervisor_up 1 when the last read of the target's supervisor (systemd over D-Bus, the Docker daemon) succeeded.
# TYPE clawdbot_remediation_supervisor_up gauge
clawdbot_remediation_supervisor_up{target="gw-docker"} 1
clawdbot_remediation_supervisor_up{target="gw-docker-up"} 1
clawdbot_remediation_supervisor_up{target="gw-missing"} 0
clawdbot_remediation_supervisor_up{target="gw-running"} 1
clawdbot_remediation_supervisor_up{target="gw-systemd"} 1
# HELP clawdbot_remediation_systemd_unit_restarts Automatic restarts of the target's systemd unit (NRestarts) since it was last started by hand or reset-failed.
# TYPE clawdbot_remediation_systemd_unit_restarts gauge
clawdbot_remediation_systemd_unit_restarts{target="gw-running",unit="other.service"} 0
clawdbot_remediation_systemd_unit_restarts{target="gw-systemd",unit="clawdbot-gateway.service"} 3
# HELP clawdbot_remediation_systemd_unit_result 1 for the target's systemd unit's current Result: success, exit-code, signal, core-dump, timeout, watchdog, start-limit-hit, oom-kill, resources, protocol, exec-condition, other.
# TYPE clawdbot_remediation_systemd_unit_result gauge
clawdbot_remediation_systemd_unit_result{result="exit-code",target="gw-systemd",unit="clawdbot-gateway.service"} 1
clawdbot_remediation_systemd_unit_result{result="other",target="gw-running",unit="other.service"} 1
# HELP clawdbot_remediation_unit_exit_status How the target's gateway last ended, while it is not running (systemd ExecMainStatus, Docker State.ExitCode): its exit status, 128+N when killed by signal N. 78: a configuration or lock problem no restart fixes.
# TYPE clawdbot_remediation_unit_exit_status gauge
clawdbot_remediation_unit_exit_status{target="gw-docker"} 78
clawdbot_remediation_unit_exit_status{target="gw-systemd"} 78
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
	if problems, err := testutil.CollectAndLint(c); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}

	t.Run("cached between scrapes", func(t *testing.T) {
		fake.mu.Lock()
		reads := fake.units[unit].reads
		fake.mu.Unlock()
		fake.setUnit(unit, map[string]any{"NRestarts": uint32(9)})
		for range 3 {
			if err := testutil.CollectAndCompare(c, strings.NewReader(want), "clawdbot_remediation_systemd_unit_restarts"); err != nil {
				t.Fatal(err)
			}
		}
		fake.mu.Lock()
		defer fake.mu.Unlock()
		if got := fake.units[unit].reads; got != reads {
			t.Errorf("the bus was read %d times in the cache's lifetime", got-reads)
		}
	})

	t.Run("a stale cache is read again, and a reset-failed shows", func(t *testing.T) {
		fake.setUnit(unit, map[string]any{"NRestarts": uint32(0), "Result": "success", "ActiveState": "active", "SubState": "running",
			"ExecMainCode": int32(0), "ExecMainStatus": int32(0)})
		c.expire()
		n, err := testutil.GatherAndCount(registry(t, c), "clawdbot_remediation_unit_exit_status")
		if err != nil || n != 1 {
			t.Errorf("exit status series: %d (%v), want only the docker one while the unit runs", n, err)
		}
		if v := gaugeValue(t, c, `clawdbot_remediation_systemd_unit_restarts{target="gw-systemd",unit="clawdbot-gateway.service"}`); v != 0 {
			t.Errorf("restarts %v after reset-failed, want 0", v)
		}
	})

	t.Run("a removed target goes", func(t *testing.T) {
		mu.Lock()
		targets = targets[:1]
		mu.Unlock()
		c.expire()
		if n := testutil.CollectAndCount(c, "clawdbot_remediation_supervisor_up"); n != 1 {
			t.Errorf("%d supervisor_up series, want 1", n)
		}
	})
}

func registry(t *testing.T, c prometheus.Collector) *prometheus.Registry {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	return reg
}

// gaugeValue is the value of one series, by its text form.
func gaugeValue(t *testing.T, c prometheus.Collector, series string) float64 {
	t.Helper()
	mfs, err := registry(t, c).Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+`="`+l.GetValue()+`"`)
			}
			if mf.GetName()+"{"+strings.Join(labels, ",")+"}" == series {
				return m.GetGauge().GetValue()
			}
		}
	}
	t.Fatalf("no series %s", series)
	return 0
}

func TestSupervisorCollectorHostile(t *testing.T) {
	targets := func() []Target {
		return []Target{systemdTarget("hangs", "a.service"), systemdTarget("panics", "b.service"), systemdTarget("fine", "c.service")}
	}
	release := make(chan struct{})
	defer close(release)
	var mu sync.Mutex
	hung := 0
	c := NewSupervisorCollector(targets, promslog.NewNopLogger()).(*supervisorCollector)
	c.refreshTime = 300 * time.Millisecond
	c.read = func(ctx context.Context, tg Target) (supervised, error) {
		switch tg.Name {
		case "hangs":
			mu.Lock()
			hung++
			mu.Unlock()
			<-release // ignores its deadline, as a wedged library might
		case "panics":
			panic("boom")
		}
		return supervised{kind: "systemd", name: tg.Action.Systemd.Unit, ok: true, unit: unitState{ActiveState: "active", Result: "success"}}, nil
	}
	scrape := func() {
		t.Helper()
		done := make(chan struct{})
		go func() { testutil.CollectAndCount(c); close(done) }()
		select {
		case <-done:
		case <-time.After(time.Minute):
			t.Fatal("a scrape blocked on a hung supervisor read")
		}
	}
	// The refresh ends at its deadline, the hung target failed, the
	// panicking one failed, the others read.
	scrape()
	waitFor(t, "the refresh to end", 10*time.Second, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.refreshing == nil && c.cache != nil
	})
	for target, want := range map[string]float64{"hangs": 0, "panics": 0, "fine": 1} {
		if v := gaugeValue(t, c, `clawdbot_remediation_supervisor_up{target="`+target+`"}`); v != want {
			t.Errorf("%s: supervisor_up %v, want %v", target, v, want)
		}
	}
	// Refreshes go on, and never start a second read of the hung target.
	for range 3 {
		c.expire()
		scrape()
		waitFor(t, "the refresh to end", 10*time.Second, func() bool {
			c.mu.Lock()
			defer c.mu.Unlock()
			return c.refreshing == nil
		})
	}
	mu.Lock()
	defer mu.Unlock()
	if hung != 1 {
		t.Errorf("the hung target was read %d times at once, want 1", hung)
	}
}

func TestUnitResultLabel(t *testing.T) {
	for in, want := range map[string]string{"success": "success", "start-limit-hit": "start-limit-hit", "exit-code": "exit-code",
		"": "other", "x\"y": "other", strings.Repeat("a", 1000): "other"} {
		if got := unitResultLabel(in); got != want {
			t.Errorf("unitResultLabel(%.20q) = %q, want %q", in, got, want)
		}
	}
}
