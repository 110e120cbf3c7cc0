package remediate

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"

	"github.com/clawdbot-exporter/clawdbot_exporter/internal/testutil"
)

// childProcs is Processes for one real child: its lock "names" it, and
// its start tick comes from procfs through LocalWorld, as in production.
type childProcs struct {
	LocalWorld
	pid      int
	start    uint64
	ownerErr error
	recycled bool // the pid now belongs to another process
}

func (c *childProcs) LockOwner(string) (int, uint64, error) { return c.pid, c.start, c.ownerErr }

func (c *childProcs) StartTick(pid int) (uint64, error) {
	tick, err := c.LocalWorld.StartTick(pid)
	if c.recycled {
		tick++
	}
	return tick, err
}

// child starts sh -c script and returns it with its Processes; its exit is
// reported on the channel.
func child(t *testing.T, script string) (*exec.Cmd, *childProcs, <-chan error) {
	t.Helper()
	fs, err := procfs.NewFS("/proc")
	if err != nil {
		testutil.Missing(t, "procfs: %v", err)
	}
	cmd := exec.Command("/bin/sh", "-c", script)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exit, reaped := make(chan error, 1), make(chan struct{})
	go func() { exit <- cmd.Wait(); close(reaped) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-reaped })
	p := &childProcs{LocalWorld: LocalWorld{FS: fs}, pid: cmd.Process.Pid}
	// Every script ends in exec sleep: once sleep runs, its traps are set.
	testutil.WaitFor(t, "the child's exec of sleep", 10*time.Second, func() bool {
		proc, err := fs.Proc(p.pid)
		if err != nil {
			return false
		}
		comm, err := proc.Comm()
		return err == nil && comm == "sleep"
	})
	if p.start, err = p.LocalWorld.StartTick(p.pid); err != nil {
		t.Fatal(err)
	}
	return cmd, p, exit
}

func exitSignal(err error) syscall.Signal {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return ws.Signal()
		}
	}
	return 0
}

// waitExit returns the signal the child died of, failing on a hang.
func waitExit(t *testing.T, exit <-chan error) syscall.Signal {
	t.Helper()
	select {
	case err := <-exit:
		return exitSignal(err)
	case <-time.After(30 * time.Second):
		t.Fatal("the child did not exit")
		return 0
	}
}

func TestSignalAction(t *testing.T) {
	for _, tc := range []struct {
		name      string
		script    string
		sig       unix.Signal
		killAfter time.Duration
		prepare   func(t *testing.T, c *exec.Cmd, p *childProcs)
		err       string
		// died is the signal the child must die of; 0: it must live on.
		died syscall.Signal
	}{
		{name: "SIGTERM ends it", script: "exec sleep 300", sig: unix.SIGTERM, killAfter: time.Minute, died: syscall.SIGTERM},
		// A wedged event loop never acts on SIGTERM.
		{name: "SIGKILL after kill_after", script: `trap "" TERM; exec sleep 300`, sig: unix.SIGTERM, killAfter: 200 * time.Millisecond, died: syscall.SIGKILL},
		{name: "a frozen process gets SIGCONT", script: "exec sleep 300", sig: unix.SIGTERM, killAfter: time.Minute, died: syscall.SIGTERM,
			prepare: func(t *testing.T, c *exec.Cmd, p *childProcs) {
				if err := c.Process.Signal(syscall.SIGSTOP); err != nil {
					t.Fatal(err)
				}
				testutil.WaitFor(t, "the child stopped", 10*time.Second, func() bool {
					proc, err := p.FS.Proc(p.pid)
					if err != nil {
						return false
					}
					st, err := proc.Stat()
					return err == nil && st.State == "T"
				})
			}},
		{name: "SIGKILL", script: `trap "" TERM; exec sleep 300`, sig: unix.SIGKILL, killAfter: time.Minute, died: syscall.SIGKILL},
		// A reload-style signal is sent and the process left to live.
		{name: "SIGHUP leaves it running", script: `trap "" HUP; exec sleep 300`, sig: unix.SIGHUP, killAfter: 10 * time.Millisecond},
		{name: "a recycled pid is never signalled", script: "exec sleep 300", sig: unix.SIGTERM, killAfter: time.Minute, err: "no longer the gateway",
			prepare: func(_ *testing.T, _ *exec.Cmd, p *childProcs) { p.recycled = true }},
		{name: "no live owner", script: "exec sleep 300", sig: unix.SIGTERM, err: "no lock with a live owner",
			prepare: func(_ *testing.T, _ *exec.Cmd, p *childProcs) {
				p.ownerErr = errors.New(`gateway "main" has no lock with a live owner and a start time`)
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, p, exit := child(t, tc.script)
			if tc.prepare != nil {
				tc.prepare(t, c, p)
			}
			s := &signalAction{procs: p, gateway: "main", sig: tc.sig, killAfter: tc.killAfter}
			err := s.Run(context.Background(), Alert{})
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("want an error with %q, got %v", tc.err, err)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if tc.died == 0 {
				select {
				case err := <-exit:
					t.Fatalf("the child exited: %v", err)
				case <-time.After(200 * time.Millisecond):
				}
				if err := c.Process.Signal(syscall.Signal(0)); err != nil {
					t.Fatalf("the child is gone: %v", err)
				}
				return
			}
			if got := waitExit(t, exit); got != tc.died {
				t.Errorf("the child died of %v, want %v", got, tc.died)
			}
		})
	}
}

func TestSignalActionNeedsProcesses(t *testing.T) {
	if _, err := newSignalAction(Target{Name: "x", Gateway: "main", Action: ActionSpec{Type: "signal", Signal: &SignalSpec{Signal: "SIGTERM"}}}, &fakeWorld{}); err == nil {
		t.Error("a World without processes was accepted")
	}
	a, err := newSignalAction(Target{Name: "x", Gateway: "main", Action: ActionSpec{Type: "signal", Signal: &SignalSpec{Signal: "SIGUSR1"}}}, &LocalWorld{})
	if err != nil {
		t.Fatal(err)
	}
	if s := a.(*signalAction); s.sig != unix.SIGUSR1 {
		t.Errorf("signal %v", s.sig)
	}
}
