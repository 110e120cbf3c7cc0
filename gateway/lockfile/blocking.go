package lockfile

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"
)

// Reasons a state blocks the next start, the why label of
// clawdbot_lock_blocking_start. A dead owner's lock is not one: both
// products reclaim it at their next start (docs/local-state.md#locks-left-behind).
const (
	// WhyReclaimGuardStuck: a *.lock.reclaim guard left behind; every start
	// waits and fails with "lock timeout" (~24 s on openclaw 2026.9.6).
	WhyReclaimGuardStuck = "reclaim_guard_stuck"
	// WhyHeldByNonGateway: a live holder that is not the gateway (openclaw
	// doctor, an embedded agent) holds the lock: the start fails with
	// "state directory is locked by <role>".
	WhyHeldByNonGateway = "held_by_non_gateway"
	// WhyCoordinatorHeld: the lifecycle coordinator is held by a live
	// process that is not a gateway: the start waits up to 300 s.
	WhyCoordinatorHeld = "coordinator_held_by_non_gateway"
)

// Blocker is one state that blocks the next start of a gateway.
type Blocker struct {
	Gateway string
	Path    string
	Why     string // one of the Why* constants
	Detail  string // for people: pids, roles, ages
}

// Blocking lists what blocks the next start, in scan order.
func (r Result) Blocking() []Blocker {
	var out []Blocker
	for _, l := range r.Locks {
		if l.HeldByOther() {
			out = append(out, Blocker{Gateway: l.Gateway, Path: l.Path, Why: WhyHeldByNonGateway,
				Detail: fmt.Sprintf("held by %s, pid %d", l.Role, l.PID)})
		}
	}
	for _, g := range r.Guards {
		if g.Stuck {
			out = append(out, Blocker{Gateway: g.Gateway, Path: g.Path, Why: WhyReclaimGuardStuck, Detail: g.Why})
		}
	}
	for _, c := range r.Coordinators {
		if c.Blocks() {
			out = append(out, Blocker{Gateway: c.Gateway, Path: c.Path, Why: WhyCoordinatorHeld, Detail: c.Why})
		}
	}
	return out
}

// Action is what Clear did with one file.
type Action struct {
	Kind    string // "lock" or "reclaim_guard"
	Path    string
	Gateway string
	Removed bool
	Err     error
}

// Clear removes, for gateway (every gateway when ""), what can go without
// harm: locks whose owner is dead or reused (RemoveStale) and stuck reclaim
// guards whose lock has no live holder (RemoveStuckGuard). Each is judged
// again just before; nothing a live process holds is touched.
func Clear(ctx context.Context, fs procfs.FS, r Result, gateway string, o Options) []Action {
	var acts []Action
	for _, l := range r.Locks {
		if ctx.Err() != nil {
			break
		}
		if (gateway != "" && l.Gateway != gateway) || !l.State.Stale() {
			continue
		}
		_, err := RemoveStale(fs, l.Path)
		acts = append(acts, Action{Kind: "lock", Path: l.Path, Gateway: l.Gateway, Removed: err == nil, Err: err})
	}
	for _, g := range r.Guards {
		if ctx.Err() != nil {
			break
		}
		if (gateway != "" && g.Gateway != gateway) || !g.Stuck {
			continue
		}
		err := RemoveStuckGuard(ctx, fs, g, o)
		acts = append(acts, Action{Kind: "reclaim_guard", Path: g.Path, Gateway: g.Gateway, Removed: err == nil, Err: err})
	}
	return acts
}

// ErrNotStuck refuses to remove a reclaim guard that may be in use.
var ErrNotStuck = errors.New("reclaim guard is not stuck")

// RemoveStuckGuard removes a reclaim guard judged stuck. It checks again
// that the guard is the one judged (same inode and mtime), that its lock
// has no live holder and that nobody holds the lock's .sqlite coordinator;
// it then renames the guard aside (never replacing anything), checks once
// more, and deletes it; a guard that turned out in use is moved back.
// A directory guard is removed only when empty.
func RemoveStuckGuard(ctx context.Context, fs procfs.FS, g Guard, o Options) error {
	again, err := rejudgeGuard(ctx, fs, g.Path, o)
	if err != nil {
		return err
	}
	if !again.Stuck || again.inode != g.inode || !again.mtime.Equal(g.mtime) {
		return fmt.Errorf("%s: %w (%s)", g.Path, ErrNotStuck, again.Why)
	}
	aside := fmt.Sprintf("%s.removing-%d-%d", g.Path, os.Getpid(), time.Now().UnixNano())
	if err := renameNoReplace(g.Path, aside); err != nil {
		return fmt.Errorf("%s: moving aside: %w", g.Path, err)
	}
	// Judge the lock again now that no start can see the guard: a start
	// that began meanwhile holds the lock's .sqlite, or the lock itself.
	busy, why := lockBusy(ctx, fs, g.LockPath, o)
	st, statErr := os.Lstat(aside)
	sameFile := false
	if statErr == nil {
		if sys, ok := st.Sys().(*syscall.Stat_t); ok {
			sameFile = sys.Ino == g.inode
		}
	}
	if busy || !sameFile {
		if err := renameNoReplace(aside, g.Path); err != nil {
			return fmt.Errorf("%s changed while being removed (%s) and could not be put back: %w; it is at %s", g.Path, why, err, aside)
		}
		return fmt.Errorf("%s changed while being removed (%s): left in place", g.Path, why)
	}
	if err := os.Remove(aside); err != nil {
		_ = renameNoReplace(aside, g.Path)
		return fmt.Errorf("%s: removing: %w", g.Path, err)
	}
	return nil
}

// rejudgeGuard scans the guard's directory again, for this guard and its
// lock only. A missing guard is ErrNotStuck: the reclaim finished.
func rejudgeGuard(ctx context.Context, fs procfs.FS, path string, o Options) (Guard, error) {
	s := &scan{ctx: ctx, fs: fs, o: o, res: Result{Dropped: map[string]int{}}}
	where := StatFilesystem(filepath.Dir(path))
	lockPath := path[:len(path)-len(".reclaim")]
	if _, err := os.Lstat(lockPath); err == nil {
		s.res.Locks = append(s.res.Locks, inspect(fs, lockPath, where))
	}
	s.guard(path, where)
	if len(s.res.Guards) == 0 {
		return Guard{}, fmt.Errorf("%s: %w (gone)", path, ErrNotStuck)
	}
	s.judgeReclaimer(&s.res.Guards[0])
	s.judgeGuards()
	if ctx.Err() != nil {
		return Guard{}, ctx.Err()
	}
	return s.res.Guards[0], nil
}

// lockBusy is true when the lock has a live owner or someone holds its
// .sqlite coordinator (a start in progress).
func lockBusy(ctx context.Context, fs procfs.FS, lockPath string, o Options) (bool, string) {
	s := &scan{ctx: ctx, fs: fs, o: o}
	if _, err := os.Lstat(lockPath); err == nil {
		if l := inspect(fs, lockPath, Filesystem{}); l.State == OwnerAlive {
			return true, "the lock's owner is alive"
		}
	}
	if pids := s.kernelHolders(lockPath + ".sqlite"); len(pids) > 0 {
		return true, "pid " + itoa(pids[0]) + " holds the lock's .sqlite"
	}
	if ctx.Err() != nil {
		return true, ctx.Err().Error()
	}
	return false, "the guard was replaced"
}

func renameNoReplace(from, to string) error {
	return unix.Renameat2(unix.AT_FDCWD, from, unix.AT_FDCWD, to, unix.RENAME_NOREPLACE)
}
