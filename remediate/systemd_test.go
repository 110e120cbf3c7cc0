// systemd is not available on the build machines (it is not PID 1 there and
// systemctl cannot reach a bus), so these tests do NOT talk to systemd. They
// test the D-Bus conversation the systemd action has with systemd's manager
// object: a real dbus-daemon (Debian package "dbus") runs a throwaway bus on
// which a stand-in, written here with godbus, owns org.freedesktop.systemd1,
// answers Manager.RestartUnit and emits Manager.JobRemoved the way systemd
// documents it. Whether a real systemd then restarts a real unit is not
// tested here.
package remediate

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	sd "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
	"github.com/prometheus/client_golang/prometheus"
	promtestutil "github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/promslog"

	"github.com/clawdbot-exporter/clawdbot_exporter/config"
	"github.com/clawdbot-exporter/clawdbot_exporter/internal/testutil"
)

const (
	systemdPath  = dbus.ObjectPath("/org/freedesktop/systemd1")
	systemdIface = "org.freedesktop.systemd1.Manager"
)

// startBus runs a private dbus-daemon and returns its address.
func startBus(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("dbus-daemon")
	if err != nil {
		testutil.Missing(t, "dbus-daemon (apt-get install -y dbus): %v", err)
	}
	conf, err := filepath.Abs("testdata/systemd/session.conf")
	if err != nil {
		t.Fatal(err)
	}
	// A short socket path: unix socket paths are limited to 108 bytes.
	dir, err := os.MkdirTemp("", "dbus")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	cmd := exec.Command(bin, "--config-file="+conf, "--nofork", "--print-address",
		"--address=unix:path="+filepath.Join(dir, "bus"))
	// Its stderr (e.g. "Failed to set fd limit" as root) only when it matters.
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("dbus-daemon stderr:\n%s", stderr.String())
		}
	})
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(out).ReadString('\n')
		line <- strings.TrimSpace(s)
	}()
	select {
	case addr := <-line:
		if addr == "" {
			t.Fatal("dbus-daemon printed no address")
		}
		return addr
	case <-time.After(10 * time.Second):
		t.Fatal("dbus-daemon did not start within 10s")
	}
	return ""
}

type lockedBuffer = testutil.SyncBuffer

type restartCall struct{ Unit, Mode string }

// fakeSystemd stands in for systemd's org.freedesktop.systemd1: the
// manager's RestartUnit, ResetFailedUnit and ListJobs methods and its
// JobRemoved signal, and each unit's object with the Unit and Service
// properties (org.freedesktop.DBus.Properties Get and GetAll), at the
// path go-systemd computes from the unit's name, as systemd serves it.
type fakeSystemd struct {
	conn *dbus.Conn

	mu     sync.Mutex
	calls  []restartCall
	order  []string // the manager's method calls, in order: "RestartUnit u", "ResetFailedUnit u"
	jobs   uint32
	result string // JobRemoved result: done, failed, ...; "" = never finish
	// results, when set, are the results of the next restart jobs, one
	// each, before result applies again.
	results []string
	// limitOnFail: a restart job that does not end "done" leaves the unit
	// with Result start-limit-hit, as systemd's start limit does.
	limitOnFail bool
	resetErr    *dbus.Error // ResetFailedUnit's answer
	units       map[string]*fakeUnit
	queued      []fakeJob         // ListJobs' answer
	pids        map[uint32]string // GetUnitByPID's answers
}

// fakeUnit is a unit's properties, by interface; err, when set, is the
// answer to every property read.
type fakeUnit struct {
	unit, service map[string]any
	err           *dbus.Error
	reads         int
}

// fakeJob is one entry of ListJobs: a(usssoo).
type fakeJob struct {
	ID                uint32
	Unit, Type, State string
	JobPath, UnitPath dbus.ObjectPath
}

// jobRef is the Unit.Job property: (uo).
type jobRef struct {
	ID   uint32
	Path dbus.ObjectPath
}

func (f *fakeSystemd) seen() []restartCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]restartCall(nil), f.calls...)
}

func (f *fakeSystemd) seenOrder() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.order...)
}

func (f *fakeSystemd) set(result string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.result = result
}

// unitProps are a unit's usual properties: a running gateway.
func unitProps() (unit, service map[string]any) {
	return map[string]any{"ActiveState": "active", "SubState": "running", "LoadState": "loaded", "Job": jobRef{0, "/"}},
		map[string]any{"Result": "success", "ExecMainCode": int32(0), "ExecMainStatus": int32(0), "NRestarts": uint32(0),
			"Restart": "always", "MainPID": uint32(4242)}
}

// setUnit changes some of unit's properties, by name, in either interface.
func (f *fakeSystemd) setUnit(unit string, props map[string]any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	u := f.units[unit]
	for k, v := range props {
		if _, ok := u.unit[k]; ok || k == "ActiveState" || k == "SubState" || k == "Job" {
			u.unit[k] = v
		} else {
			u.service[k] = v
		}
	}
}

// resetUnit makes unit a running gateway again, with no job and no error.
func (f *fakeSystemd) resetUnit(unit string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	u := f.units[unit]
	u.unit, u.service = unitProps()
	u.err, u.reads = nil, 0
	f.queued, f.results, f.limitOnFail, f.resetErr, f.order = nil, nil, false, nil, nil
	f.result = "done"
}

// manager is the exported object; its only exported methods are the D-Bus ones.
type manager struct{ f *fakeSystemd }

// RestartUnit is org.freedesktop.systemd1.Manager.RestartUnit(s name, s mode) -> o job.
// Like systemd, it replies with the job's path, then announces the job's
// end with JobRemoved(u id, o job, s unit, s result).
func (m manager) RestartUnit(name, mode string) (dbus.ObjectPath, *dbus.Error) {
	f := m.f
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, restartCall{name, mode})
	f.order = append(f.order, "RestartUnit "+name)
	u := f.units[name]
	if u == nil {
		return "", &dbus.Error{Name: "org.freedesktop.systemd1.NoSuchUnit", Body: []any{fmt.Sprintf("Unit %s not found.", name)}}
	}
	f.jobs++
	id := f.jobs
	job := dbus.ObjectPath(fmt.Sprintf("/org/freedesktop/systemd1/job/%d", id))
	result := f.result
	if len(f.results) > 0 {
		result, f.results = f.results[0], f.results[1:]
	}
	switch {
	case result == "done":
		u.unit["ActiveState"], u.unit["SubState"] = "active", "running"
	case result != "" && f.limitOnFail:
		u.unit["ActiveState"], u.unit["SubState"] = "failed", "failed"
		u.service["Result"] = "start-limit-hit"
	}
	if result != "" {
		go func() {
			time.Sleep(20 * time.Millisecond) // after the reply, as systemd does
			_ = f.conn.Emit(systemdPath, systemdIface+".JobRemoved", id, job, name, result)
		}()
	}
	return job, nil
}

// ResetFailedUnit is Manager.ResetFailedUnit(s name): the unit leaves the
// failed state, its Result and restart counter start again.
func (m manager) ResetFailedUnit(name string) *dbus.Error {
	f := m.f
	f.mu.Lock()
	defer f.mu.Unlock()
	f.order = append(f.order, "ResetFailedUnit "+name)
	if f.resetErr != nil {
		return f.resetErr
	}
	u := f.units[name]
	if u == nil {
		return &dbus.Error{Name: "org.freedesktop.systemd1.NoSuchUnit", Body: []any{fmt.Sprintf("Unit %s not loaded.", name)}}
	}
	if u.unit["ActiveState"] == "failed" {
		u.unit["ActiveState"], u.unit["SubState"] = "inactive", "dead"
	}
	u.service["Result"], u.service["NRestarts"] = "success", uint32(0)
	return nil
}

// GetUnitByPID is Manager.GetUnitByPID(u pid) -> o unit.
func (m manager) GetUnitByPID(pid uint32) (dbus.ObjectPath, *dbus.Error) {
	m.f.mu.Lock()
	defer m.f.mu.Unlock()
	u, ok := m.f.pids[pid]
	if !ok {
		return "", &dbus.Error{Name: "org.freedesktop.systemd1.NoUnitForPID", Body: []any{fmt.Sprintf("PID %d does not belong to any loaded unit.", pid)}}
	}
	return dbus.ObjectPath("/org/freedesktop/systemd1/unit/" + sd.PathBusEscape(u)), nil
}

// ListJobs is Manager.ListJobs() -> a(usssoo).
func (m manager) ListJobs() ([]fakeJob, *dbus.Error) {
	m.f.mu.Lock()
	defer m.f.mu.Unlock()
	return append([]fakeJob{}, m.f.queued...), nil
}

// unitObject serves org.freedesktop.DBus.Properties on a unit's path.
type unitObject struct {
	f    *fakeSystemd
	unit string
}

func (o unitObject) props(iface string) (map[string]any, *dbus.Error) {
	u := o.f.units[o.unit]
	u.reads++
	if u.err != nil {
		return nil, u.err
	}
	switch iface {
	case "org.freedesktop.systemd1.Unit":
		return u.unit, nil
	case "org.freedesktop.systemd1.Service":
		return u.service, nil
	}
	return nil, &dbus.Error{Name: "org.freedesktop.DBus.Error.UnknownInterface", Body: []any{"Unknown interface " + iface}}
}

// GetAll is org.freedesktop.DBus.Properties.GetAll(s interface) -> a{sv}.
func (o unitObject) GetAll(iface string) (map[string]dbus.Variant, *dbus.Error) {
	o.f.mu.Lock()
	defer o.f.mu.Unlock()
	p, err := o.props(iface)
	if err != nil {
		return nil, err
	}
	out := make(map[string]dbus.Variant, len(p))
	for k, v := range p {
		out[k] = dbus.MakeVariant(v)
	}
	return out, nil
}

// Get is org.freedesktop.DBus.Properties.Get(s interface, s name) -> v.
func (o unitObject) Get(iface, name string) (dbus.Variant, *dbus.Error) {
	o.f.mu.Lock()
	defer o.f.mu.Unlock()
	p, err := o.props(iface)
	if err != nil {
		return dbus.Variant{}, err
	}
	v, ok := p[name]
	if !ok {
		return dbus.Variant{}, &dbus.Error{Name: "org.freedesktop.DBus.Error.UnknownProperty", Body: []any{"Unknown property " + name}}
	}
	return dbus.MakeVariant(v), nil
}

func startFakeSystemd(t *testing.T, addr string, units ...string) *fakeSystemd {
	t.Helper()
	conn, err := dbus.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	if err := conn.Auth(nil); err != nil {
		t.Fatal(err)
	}
	if err := conn.Hello(); err != nil {
		t.Fatal(err)
	}
	f := &fakeSystemd{conn: conn, result: "done", units: map[string]*fakeUnit{}, pids: map[uint32]string{}}
	for _, u := range units {
		fu := &fakeUnit{}
		fu.unit, fu.service = unitProps()
		f.units[u] = fu
		path := dbus.ObjectPath("/org/freedesktop/systemd1/unit/" + sd.PathBusEscape(u))
		if err := conn.Export(unitObject{f, u}, path, "org.freedesktop.DBus.Properties"); err != nil {
			t.Fatal(err)
		}
	}
	if err := conn.Export(manager{f}, systemdPath, systemdIface); err != nil {
		t.Fatal(err)
	}
	reply, err := conn.RequestName("org.freedesktop.systemd1", dbus.NameFlagDoNotQueue)
	if err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("own org.freedesktop.systemd1: %v (reply %d)", err, reply)
	}
	return f
}

func newTestSystemdAction(t *testing.T, spec SystemdSpec) Action {
	t.Helper()
	as := ActionSpec{Type: "systemd", Systemd: &spec}
	if err := as.Validate(); err != nil {
		t.Fatal(err)
	}
	a, err := actionFactories["systemd"](Target{Name: "gw", Gateway: "gw", Action: as}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func runAction(a Action, d time.Duration) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	start := time.Now()
	err := a.Run(ctx, Alert{Labels: map[string]string{"unit": "evil.service"}})
	return time.Since(start), err
}

func TestSystemdAction(t *testing.T) {
	const unit = "clawdbot-gateway.service"
	addr := startBus(t)
	fake := startFakeSystemd(t, addr, unit)
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", addr)
	t.Setenv("DBUS_SYSTEM_BUS_ADDRESS", addr)

	t.Run("restarts the configured unit on the user bus", func(t *testing.T) {
		fake.set("done")
		before := len(fake.seen())
		// Bus and mode left empty: the defaults are user and replace.
		a := newTestSystemdAction(t, SystemdSpec{Unit: unit})
		if _, err := runAction(a, 10*time.Second); err != nil {
			t.Fatalf("Run: %v", err)
		}
		got := fake.seen()[before:]
		want := []restartCall{{unit, "replace"}}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("stand-in saw %v, want %v (the unit never comes from the alert)", got, want)
		}
	})

	t.Run("system bus and another mode", func(t *testing.T) {
		fake.set("done")
		before := len(fake.seen())
		a := newTestSystemdAction(t, SystemdSpec{Unit: unit, Bus: "system", Mode: "fail"})
		if _, err := runAction(a, 10*time.Second); err != nil {
			t.Fatalf("Run: %v", err)
		}
		if got := fake.seen()[before:]; len(got) != 1 || got[0] != (restartCall{unit, "fail"}) {
			t.Fatalf("stand-in saw %v", got)
		}
	})

	for _, result := range []string{"failed", "timeout", "canceled", "dependency", "skipped"} {
		t.Run("job result "+result+" is an error", func(t *testing.T) {
			fake.set(result)
			a := newTestSystemdAction(t, SystemdSpec{Unit: unit})
			_, err := runAction(a, 10*time.Second)
			if err == nil || !strings.Contains(err.Error(), `result "`+result+`"`) {
				t.Fatalf("Run: %v, want an error naming result %q", err, result)
			}
		})
	}

	t.Run("unknown unit", func(t *testing.T) {
		fake.set("done")
		a := newTestSystemdAction(t, SystemdSpec{Unit: "nope.service"})
		_, err := runAction(a, 10*time.Second)
		if err == nil || !strings.Contains(err.Error(), "no unit nope.service") ||
			dbusErrorName(err) != "org.freedesktop.systemd1.NoSuchUnit" {
			t.Fatalf("Run: %v, want a NoSuchUnit error", err)
		}
	})

	t.Run("a job that never finishes ends at the deadline", func(t *testing.T) {
		fake.set("")
		a := newTestSystemdAction(t, SystemdSpec{Unit: unit})
		took, err := runAction(a, 500*time.Millisecond)
		if err == nil || !strings.Contains(err.Error(), "still running") || took > 3*time.Second {
			t.Fatalf("Run: %v after %v, want a deadline error", err, took)
		}
	})
}

func TestSystemdActionNoSystemdOnBus(t *testing.T) {
	addr := startBus(t)
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", addr)
	a := newTestSystemdAction(t, SystemdSpec{Unit: "clawdbot-gateway.service"})
	took, err := runAction(a, 5*time.Second)
	if err == nil || !strings.Contains(err.Error(), "systemd is not on this bus") || took > 4*time.Second {
		t.Fatalf("Run: %v after %v, want a 'not on this bus' error", err, took)
	}
}

func TestSystemdActionUnreachableBus(t *testing.T) {
	dir, err := os.MkdirTemp("", "dbus")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	a := newTestSystemdAction(t, SystemdSpec{Unit: "clawdbot-gateway.service"})

	t.Run("no socket", func(t *testing.T) {
		t.Setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path="+filepath.Join(dir, "missing"))
		took, err := runAction(a, 2*time.Second)
		if err == nil || took > 2*time.Second {
			t.Fatalf("Run: %v after %v, want an error", err, took)
		}
	})

	t.Run("a socket that never answers", func(t *testing.T) {
		sock := filepath.Join(dir, "silent")
		l, err := net.Listen("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		var held []net.Conn
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				mu.Lock()
				held = append(held, c)
				mu.Unlock()
			}
		}()
		t.Cleanup(func() {
			l.Close()
			mu.Lock()
			defer mu.Unlock()
			for _, c := range held {
				c.Close()
			}
		})
		t.Setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path="+sock)
		took, err := runAction(a, 500*time.Millisecond)
		if err == nil || took > 3*time.Second {
			t.Fatalf("Run: %v after %v, want a deadline error", err, took)
		}
		t.Logf("%v after %v", err, took)
	})

	t.Run("no user bus at all never autolaunches one", func(t *testing.T) {
		t.Setenv("DBUS_SESSION_BUS_ADDRESS", "")
		if _, err := os.Stat(fmt.Sprintf("/run/user/%d/bus", os.Getuid())); err == nil {
			t.Skip("this machine has a user bus")
		}
		_, err := runAction(a, 2*time.Second)
		if err == nil || !strings.Contains(err.Error(), "no user bus") {
			t.Fatalf("Run: %v, want a 'no user bus' error", err)
		}
	})
}

// preflight runs a's Preflight (a must have one): the hold, its detail and
// the error.
func preflight(t *testing.T, a Action) (string, string, error) {
	t.Helper()
	p, ok := a.(Preflighter)
	if !ok {
		t.Fatalf("%T is not a Preflighter", a)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	return p.Preflight(ctx)
}

// wantPreflight fails the test unless a's Preflight answers, without an
// error, hold ("": go on) with a detail that contains detail.
func wantPreflight(t *testing.T, a Action, hold, detail string) {
	t.Helper()
	gotHold, gotDetail, err := preflight(t, a)
	if err != nil {
		t.Fatalf("Preflight: %v", err)
	}
	if gotHold != hold || !strings.Contains(gotDetail, detail) {
		t.Fatalf("Preflight = %q, %q; want %q with %q", gotHold, gotDetail, hold, detail)
	}
}

func TestSystemdPreflight(t *testing.T) {
	const unit = "clawdbot-gateway.service"
	addr := startBus(t)
	fake := startFakeSystemd(t, addr, unit)
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", addr)
	exited := func(status int32) map[string]any {
		return map[string]any{"ExecMainCode": int32(1), "ExecMainStatus": status}
	}
	merge := func(ms ...map[string]any) map[string]any {
		out := map[string]any{}
		for _, m := range ms {
			maps.Copy(out, m)
		}
		return out
	}
	state := func(active, sub string) map[string]any { return map[string]any{"ActiveState": active, "SubState": sub} }
	job := func(id uint32, typ string) ([]fakeJob, map[string]any) {
		p := dbus.ObjectPath(fmt.Sprintf("/org/freedesktop/systemd1/job/%d", id))
		return []fakeJob{{ID: id, Unit: unit, Type: typ, State: "waiting", JobPath: p, UnitPath: "/org/freedesktop/systemd1/unit/x"}},
			map[string]any{"Job": jobRef{id, p}}
	}
	for _, c := range []struct {
		name    string
		props   map[string]any
		jobType string // a job of this type is queued on the unit
		hold    string
		detail  string // in the detail
	}{
		{name: "active and running goes on", props: state("active", "running")},
		{name: "active and running goes on even with a job and an old 78", props: merge(state("active", "running"), exited(78)), jobType: "start"},
		{name: "reloading goes on", props: state("reloading", "reload")},
		{name: "failed with exit 78 needs a person", props: merge(state("failed", "failed"), exited(78), map[string]any{"Result": "exit-code"}),
			hold: SkipNeedsPerson, detail: "exited with status 78"},
		{name: "inactive with exit 78 needs a person", props: merge(state("inactive", "dead"), exited(78)),
			hold: SkipNeedsPerson, detail: "systemctl --user reset-failed " + unit},
		{name: "failed with exit 1 goes on", props: merge(state("failed", "failed"), exited(1))},
		{name: "killed by signal 78 is no exit 78", props: merge(state("failed", "failed"), map[string]any{"ExecMainCode": int32(2), "ExecMainStatus": int32(78)})},
		{name: "auto-restart is systemd restarting", props: merge(state("activating", "auto-restart"), exited(1), map[string]any{"NRestarts": uint32(4)}),
			hold: SkipSupervisor, detail: "4 automatic restarts"},
		{name: "auto-restart-queued (systemd 254)", props: state("activating", "auto-restart-queued"), hold: SkipSupervisor},
		{name: "failed-before-auto-restart with 78 is systemd restarting", props: merge(state("failed", "failed-before-auto-restart"), exited(78)),
			hold: SkipSupervisor, detail: "exited with status 78"},
		{name: "a queued start job is systemd starting", props: state("inactive", "dead"), jobType: "start", hold: SkipSupervisor, detail: "start job"},
		{name: "a start job running", props: state("activating", "start-pre"), jobType: "restart", hold: SkipSupervisor},
		{name: "a stop job is no restart", props: state("deactivating", "stop-sigterm"), jobType: "stop"},
		{name: "failed, no exit recorded, goes on", props: state("failed", "failed")},
	} {
		t.Run(c.name, func(t *testing.T) {
			fake.resetUnit(unit)
			fake.setUnit(unit, c.props)
			if c.jobType != "" {
				jobs, prop := job(7, c.jobType)
				fake.mu.Lock()
				fake.queued = jobs
				fake.mu.Unlock()
				fake.setUnit(unit, prop)
			}
			wantPreflight(t, newTestSystemdAction(t, SystemdSpec{Unit: unit}), c.hold, c.detail)
			if got := fake.seen(); len(got) != 0 {
				t.Errorf("Preflight restarted: %v", got)
			}
		})
	}

	t.Run("a property read error is an error, and no hold", func(t *testing.T) {
		fake.resetUnit(unit)
		fake.setUnit(unit, merge(state("failed", "failed"), exited(78)))
		fake.mu.Lock()
		fake.units[unit].err = &dbus.Error{Name: "org.freedesktop.DBus.Error.AccessDenied", Body: []any{"denied"}}
		fake.mu.Unlock()
		hold, _, err := preflight(t, newTestSystemdAction(t, SystemdSpec{Unit: unit}))
		if err == nil || hold != "" || dbusErrorName(err) != "org.freedesktop.DBus.Error.AccessDenied" {
			t.Fatalf("Preflight = %q, %v; want no hold and the AccessDenied error", hold, err)
		}
	})

	t.Run("an unknown unit is an error", func(t *testing.T) {
		hold, _, err := preflight(t, newTestSystemdAction(t, SystemdSpec{Unit: "nope.service"}))
		if err == nil || hold != "" {
			t.Fatalf("Preflight = %q, %v; want an error", hold, err)
		}
	})

	t.Run("no systemd on the bus is an error", func(t *testing.T) {
		t.Setenv("DBUS_SESSION_BUS_ADDRESS", startBus(t))
		hold, _, err := preflight(t, newTestSystemdAction(t, SystemdSpec{Unit: unit}))
		if err == nil || hold != "" {
			t.Fatalf("Preflight = %q, %v; want an error", hold, err)
		}
	})
}

func TestSystemdStartLimit(t *testing.T) {
	const unit = "clawdbot-gateway.service"
	addr := startBus(t)
	fake := startFakeSystemd(t, addr, unit)
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", addr)
	limitHit := map[string]any{"ActiveState": "failed", "SubState": "failed", "Result": "start-limit-hit", "NRestarts": uint32(5)}
	reset, restart := "ResetFailedUnit "+unit, "RestartUnit "+unit

	for _, c := range []struct {
		name        string
		props       map[string]any
		results     []string // of the restart jobs, in order
		limitOnFail bool
		resetErr    *dbus.Error
		want        []string // the manager's calls
		err         string   // "" for success
	}{
		{name: "healthy unit: a restart, no reset", want: []string{restart}},
		{name: "start limit hit: reset once, then restart", props: limitHit, want: []string{reset, restart}},
		{name: "a restart that hits the limit: reset, retry once", results: []string{"failed", "done"}, limitOnFail: true,
			want: []string{restart, reset, restart}},
		{name: "hit before, and the restart fails again: one reset only", props: limitHit, results: []string{"failed", "failed"}, limitOnFail: true,
			want: []string{reset, restart}, err: `result "failed" (after reset-failed`},
		{name: "a retry that fails too: no second reset", results: []string{"failed", "failed", "failed"}, limitOnFail: true,
			want: []string{restart, reset, restart}, err: `result "failed" (after reset-failed`},
		{name: "a failed job without the limit: no reset", results: []string{"failed"},
			want: []string{restart}, err: `result "failed"`},
		{name: "reset-failed refused: no restart", props: limitHit,
			resetErr: &dbus.Error{Name: "org.freedesktop.DBus.Error.AccessDenied", Body: []any{"denied"}},
			want:     []string{reset}, err: "reset-failed before the restart failed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			fake.resetUnit(unit)
			fake.setUnit(unit, c.props)
			fake.mu.Lock()
			fake.results, fake.limitOnFail, fake.resetErr = c.results, c.limitOnFail, c.resetErr
			fake.mu.Unlock()
			_, err := runAction(newTestSystemdAction(t, SystemdSpec{Unit: unit}), 10*time.Second)
			if got := fake.seenOrder(); fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Errorf("manager calls %q, want %q", got, c.want)
			}
			switch {
			case c.err == "" && err != nil:
				t.Errorf("Run: %v", err)
			case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
				t.Errorf("Run: %v, want an error with %q", err, c.err)
			}
			if err != nil {
				t.Logf("Run: %v", err)
			}
		})
	}
}

func TestRestartWarning(t *testing.T) {
	for _, c := range []struct {
		restart, sig string
		want         string // in the warning; "" = none
	}{
		{"always", "SIGTERM", ""},
		{"always", "SIGHUP", ""},
		{"always", "SIGKILL", ""},
		{"on-failure", "SIGTERM", "exits cleanly and stays down; only a wedged one"},
		{"on-failure", "SIGINT", "exits cleanly and stays down"},
		{"on-failure", "SIGHUP", "after SIGHUP the gateway stays down"},
		{"on-failure", "SIGKILL", ""},
		{"on-failure", "SIGQUIT", ""},
		{"on-abnormal", "SIGTERM", "only a wedged one"},
		{"on-abnormal", "SIGKILL", ""},
		{"on-abort", "SIGKILL", ""},
		{"on-success", "SIGTERM", ""},
		{"on-success", "SIGKILL", "after SIGKILL the gateway stays down"},
		{"no", "SIGTERM", "Restart=no: after SIGTERM the gateway stays down"},
		{"no", "SIGKILL", "stays down"},
		{"on-watchdog", "SIGTERM", "stays down"},
		{"no", "SIGUSR1", ""}, // an in-process restart: no exit
		{"no", "SIGUSR2", ""},
	} {
		got := restartWarning("user", "gw.service", c.restart, c.sig)
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("Restart=%s, %s: %q, want %q", c.restart, c.sig, got, c.want)
		}
	}
}

// lockOwners is a World with live gateway processes, by gateway.
type lockOwners struct {
	World
	pids map[string]int
}

func (l lockOwners) LockOwner(gateway string) (int, uint64, error) {
	if pid, ok := l.pids[gateway]; ok {
		return pid, 1, nil
	}
	return 0, 0, fmt.Errorf("no lock for %s", gateway)
}

func (l lockOwners) StartTick(int) (uint64, error) { return 1, nil }

func TestWarnSignalSupervisors(t *testing.T) {
	addr := startBus(t)
	fake := startFakeSystemd(t, addr, "always.service", "onfailure.service", "user@1000.service")
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", addr)
	t.Setenv("DBUS_SYSTEM_BUS_ADDRESS", addr)
	fake.setUnit("onfailure.service", map[string]any{"Restart": "on-failure"})
	fake.setUnit("user@1000.service", map[string]any{"Restart": "no"})
	fake.mu.Lock()
	fake.pids[100], fake.pids[200], fake.pids[300] = "always.service", "onfailure.service", "user@1000.service"
	fake.mu.Unlock()
	sig := func(name, gw, s string) Target {
		return Target{Name: name, Gateway: gw, Action: ActionSpec{Type: "signal", Signal: &SignalSpec{Signal: s}}}
	}
	targets := []Target{
		sig("t-always", "a", "SIGTERM"), sig("t-onfailure", "b", "SIGTERM"), sig("t-onfailure-kill", "b", "SIGKILL"),
		sig("t-user-manager", "c", "SIGTERM"), sig("t-no-unit", "d", "SIGTERM"), sig("t-not-running", "e", "SIGTERM"),
		systemdTarget("t-systemd", "always.service"),
	}
	var logs lockedBuffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	WarnSignalSupervisors(t.Context(), targets, lockOwners{pids: map[string]int{"a": 100, "b": 200, "c": 300, "d": 400}}, logger)
	out := logs.String()
	t.Logf("%s", out)
	if n := strings.Count(out, "level=WARN"); n != 1 || !strings.Contains(out, "target=t-onfailure ") ||
		!strings.Contains(out, "systemd user unit onfailure.service has Restart=on-failure") {
		t.Errorf("want one warning, for t-onfailure; log:\n%s", out)
	}
	// Without the process table there is nothing to look up.
	logs.Reset()
	WarnSignalSupervisors(t.Context(), targets, nil, logger)
	if logs.String() != "" {
		t.Errorf("no World: logged %q", logs.String())
	}
}

// TestSystemdEngine runs the engine's pre-check against the stand-in: the
// holds are counted by reason and never restart; an active unit is
// restarted.
func TestSystemdEngine(t *testing.T) {
	const unit = "clawdbot-gateway.service"
	addr := startBus(t)
	fake := startFakeSystemd(t, addr, unit)
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", addr)
	cfg := config.Remediation{Targets: []Target{{Name: "restart-main", Gateway: "main", Warmup: ptrDuration(0), Cooldown: ptrDuration(0),
		Action: ActionSpec{Type: "systemd", Systemd: &SystemdSpec{Unit: unit}}}}}
	if err := cfg.Validate([]string{"main"}); err != nil {
		t.Fatal(err)
	}
	m := NewMetrics(prometheus.NewRegistry())
	e, err := NewEngine(cfg.Targets, &fakeWorld{up: true}, m, promslog.NewNopLogger(), Options{VerifyInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	fire := func() {
		n++
		e.Handle(&Message{Alerts: []Alert{alert("firing", fmt.Sprint("fp", n), time.Now(), nil)}})
		e.Wait()
	}
	skipped := func(reason string) float64 {
		return promtestutil.ToFloat64(m.skipped.WithLabelValues("restart-main", reason))
	}

	fake.setUnit(unit, map[string]any{"ActiveState": "failed", "SubState": "failed", "ExecMainCode": int32(1), "ExecMainStatus": int32(78)})
	fire()
	if got := skipped(SkipNeedsPerson); got != 1 || len(fake.seen()) != 0 {
		t.Fatalf("exit 78: needs_person %v, restarts %v; want 1 and none", got, fake.seen())
	}
	fake.setUnit(unit, map[string]any{"ActiveState": "activating", "SubState": "auto-restart"})
	fire()
	if got := skipped(SkipSupervisor); got != 1 || len(fake.seen()) != 0 {
		t.Fatalf("auto-restart: supervisor_restarting %v, restarts %v; want 1 and none", got, fake.seen())
	}
	fake.resetUnit(unit) // active/running, as a frozen gateway's unit is
	fire()
	if got := promtestutil.ToFloat64(m.actions.WithLabelValues("restart-main", "systemd", ResultRecovered)); got != 1 || len(fake.seen()) != 1 {
		t.Fatalf("active unit: recovered %v, restarts %v; want one restart", got, fake.seen())
	}
	if d := e.Recent(); len(d) == 0 || d[len(d)-1].Reason != SkipNeedsPerson || !strings.Contains(d[len(d)-1].Detail, "status 78") {
		t.Errorf("audit trail, oldest: %+v", d[len(d)-1])
	}
}

func ptrDuration(d time.Duration) *Duration { v := Duration(d); return &v }
