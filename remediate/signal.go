package remediate

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/clawdbot-exporter/clawdbot_exporter/config"

	"golang.org/x/sys/unix"
)

func init() { registerAction("signal", newSignalAction) }

// Processes is what the signal action needs of the World: the gateway's
// live process as its lock names it, and a pid's start tick now, to tell a
// recycled pid from the gateway. LocalWorld has them.
type Processes interface {
	// LockOwner is the live owner of the gateway's lock: its pid and the
	// start tick (field 22 of /proc/<pid>/stat) the lock was checked with.
	LockOwner(gateway string) (pid int, start uint64, err error)
	// StartTick reads the pid's start tick now.
	StartTick(pid int) (uint64, error)
}

type signalAction struct {
	procs     Processes
	gateway   string
	sig       unix.Signal
	killAfter time.Duration
}

func newSignalAction(t Target, w World) (Action, error) {
	procs, ok := w.(Processes)
	if !ok {
		return nil, errors.New("action signal needs the local process table")
	}
	return &signalAction{procs: procs, gateway: t.Gateway, sig: config.Signals[t.Action.Signal.Signal], killAfter: t.Action.Signal.KillAfter.D()}, nil
}

// Run signals the live owner of the gateway's lock, for a supervisor
// (systemd Restart=always, Docker restart policy) to start it again. The
// process is held by a pidfd and its start tick checked again through it,
// so a pid recycled since the lock was read is never signalled. A frozen
// (SIGSTOPped) process gets SIGCONT so that it can act on the signal; one
// still alive after kill_after gets SIGKILL.
func (s *signalAction) Run(ctx context.Context, _ Alert) error {
	pid, start, err := s.procs.LockOwner(s.gateway)
	if err != nil {
		return err
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	defer func() { _ = unix.Close(fd) }()
	// Checked after the pidfd is open: the pidfd holds this process, so a
	// match means the pidfd is the gateway.
	now, err := s.procs.StartTick(pid)
	if err != nil {
		return fmt.Errorf("gateway process %d vanished: %w", pid, err)
	}
	if now != start {
		return fmt.Errorf("pid %d is no longer the gateway (start tick changed)", pid)
	}
	if err := unix.PidfdSendSignal(fd, s.sig, nil, 0); err != nil {
		return fmt.Errorf("signal %v to %d: %w", s.sig, pid, err)
	}
	if s.sig != unix.SIGKILL {
		_ = unix.PidfdSendSignal(fd, unix.SIGCONT, nil, 0)
	}
	if s.sig != unix.SIGTERM && s.sig != unix.SIGINT && s.sig != unix.SIGQUIT && s.sig != unix.SIGKILL {
		return nil // a reload-style signal: the process is meant to live on
	}
	if exited(ctx, fd, s.killAfter) {
		return nil
	}
	if err := unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("SIGKILL to %d after %v: %w", pid, s.killAfter, err)
	}
	if !exited(ctx, fd, 10*time.Second) {
		return fmt.Errorf("gateway process %d did not exit after SIGKILL", pid)
	}
	return nil
}

// LockOwner implements Processes.
func (w *LocalWorld) LockOwner(gateway string) (int, uint64, error) { return w.owner(gateway) }

// StartTick implements Processes, through procfs.
func (w *LocalWorld) StartTick(pid int) (uint64, error) {
	p, err := w.FS.Proc(pid)
	if err != nil {
		return 0, err
	}
	st, err := p.Stat()
	if err != nil {
		return 0, err
	}
	return st.Starttime, nil
}

// exited waits until the pidfd's process has exited (the pidfd turns
// readable), up to d.
func exited(ctx context.Context, fd int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	for {
		wait := time.Until(deadline)
		if wait <= 0 {
			return false
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, int(min(wait, 100*time.Millisecond).Milliseconds())+1)
		if err == nil && n > 0 {
			return true
		}
		if err != nil && !errors.Is(err, unix.EINTR) {
			return false
		}
	}
}
