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
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

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

// fakeSystemd stands in for systemd's org.freedesktop.systemd1.Manager:
// only the RestartUnit method and the JobRemoved signal that go-systemd uses.
type fakeSystemd struct {
	conn *dbus.Conn

	mu     sync.Mutex
	calls  []restartCall
	jobs   uint32
	result string // JobRemoved result: done, failed, ...; "" = never finish
	units  map[string]bool
}

func (f *fakeSystemd) seen() []restartCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]restartCall(nil), f.calls...)
}

func (f *fakeSystemd) set(result string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.result = result
}

// manager is the exported object; its only exported method is the D-Bus one.
type manager struct{ f *fakeSystemd }

// RestartUnit is org.freedesktop.systemd1.Manager.RestartUnit(s name, s mode) -> o job.
// Like systemd, it replies with the job's path, then announces the job's
// end with JobRemoved(u id, o job, s unit, s result).
func (m manager) RestartUnit(name, mode string) (dbus.ObjectPath, *dbus.Error) {
	f := m.f
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, restartCall{name, mode})
	if !f.units[name] {
		return "", &dbus.Error{Name: "org.freedesktop.systemd1.NoSuchUnit", Body: []any{fmt.Sprintf("Unit %s not found.", name)}}
	}
	f.jobs++
	id := f.jobs
	job := dbus.ObjectPath(fmt.Sprintf("/org/freedesktop/systemd1/job/%d", id))
	if result := f.result; result != "" {
		go func() {
			time.Sleep(20 * time.Millisecond) // after the reply, as systemd does
			_ = f.conn.Emit(systemdPath, systemdIface+".JobRemoved", id, job, name, result)
		}()
	}
	return job, nil
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
	f := &fakeSystemd{conn: conn, result: "done", units: map[string]bool{}}
	for _, u := range units {
		f.units[u] = true
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
