package remediate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	sd "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
)

func init() { registerAction("systemd", newSystemdAction) }

type systemdAction struct {
	unit string
	bus  string // user or system
	mode string
}

func newSystemdAction(t Target, _ World) (Action, error) {
	s := t.Action.Systemd
	if s == nil {
		return nil, errors.New("action systemd: unit is required")
	}
	return &systemdAction{unit: s.Unit, bus: s.Bus, mode: s.Mode}, nil
}

// Run asks the user's or the system's systemd over D-Bus to restart the
// configured unit (never one named by the alert) and waits, within ctx, for
// the restart job to finish: its result "done" is success, any other
// (failed, timeout, canceled, dependency, skipped) an error. A connection is
// made per call, so a restarted systemd or bus is never a stale connection.
//
// A unit that hit its start limit (Result start-limit-hit: Restart= gave
// up) refuses every start until reset-failed, which is what a person would
// run first: Run does it, at most once per action, before the restart when
// the unit shows it already, or after a failed restart job when the unit
// shows it then, and retries that restart once.
//
// The user bus is DBUS_SESSION_BUS_ADDRESS or /run/user/<uid>/bus; the
// system bus is DBUS_SYSTEM_BUS_ADDRESS or /var/run/dbus/system_bus_socket.
func (s *systemdAction) Run(ctx context.Context, _ Alert) error {
	conn, err := s.connect(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("systemd %s bus: connect timed out: %w (%w)", s.bus, ctx.Err(), err)
		}
		return fmt.Errorf("systemd %s bus: connect: %w", s.bus, err)
	}
	defer conn.Close()

	reset := false
	// A unit whose Result cannot be read (not a service, an old systemd)
	// is restarted as it is: the restart's own error says what is wrong.
	if s.startLimitHit(ctx, conn) {
		if err := s.resetFailed(ctx, conn, "before the restart"); err != nil {
			return err
		}
		reset = true
	}
	result, err := s.restart(ctx, conn)
	if err == nil && result != "done" && !reset && s.startLimitHit(ctx, conn) {
		if err := s.resetFailed(ctx, conn, fmt.Sprintf("after a restart job that finished with result %q", result)); err != nil {
			return err
		}
		reset = true
		result, err = s.restart(ctx, conn)
	}
	how := ""
	if reset {
		how = " (after reset-failed: the unit had hit its start limit)"
	}
	if err != nil {
		return fmt.Errorf("%w%s", err, how)
	}
	if result != "done" {
		return fmt.Errorf("systemd %s bus: restart job of %s finished with result %q%s", s.bus, s.unit, result, how)
	}
	return nil
}

// restart runs one restart job and returns its result.
func (s *systemdAction) restart(ctx context.Context, conn *sd.Conn) (string, error) {
	// Buffered: go-systemd holds its job lock while it delivers the result.
	done := make(chan string, 1)
	if _, err := conn.RestartUnitContext(ctx, s.unit, s.mode, done); err != nil {
		return "", s.callError(ctx, err)
	}
	select {
	case result := <-done:
		return result, nil
	case <-ctx.Done():
		return "", fmt.Errorf("systemd %s bus: restart job of %s still running: %w", s.bus, s.unit, ctx.Err())
	}
}

// startLimitHit reports whether the service's Result says its start
// limit was hit; false when it cannot be read.
func (s *systemdAction) startLimitHit(ctx context.Context, conn *sd.Conn) bool {
	p, err := conn.GetServicePropertyContext(ctx, s.unit, "Result")
	if err != nil {
		return false
	}
	r, _ := p.Value.Value().(string)
	return r == resultStartLimitHit
}

func (s *systemdAction) resetFailed(ctx context.Context, conn *sd.Conn, when string) error {
	if err := conn.ResetFailedUnitContext(ctx, s.unit); err != nil {
		return fmt.Errorf("systemd %s bus: %s hit its start limit; reset-failed %s failed: %w", s.bus, s.unit, when, err)
	}
	return nil
}

const resultStartLimitHit = "start-limit-hit"

// unitState is what systemd says of a service unit, over the bus.
type unitState struct {
	ActiveState, SubState string // Unit: active/running, failed/failed, activating/auto-restart, ...
	JobID                 uint32 // Unit.Job: a queued or running job, 0 for none
	Result                string // Service: success, exit-code, signal, start-limit-hit, ...
	// ExecMainCode is the main process' si_code: 0 none yet (or running),
	// 1 CLD_EXITED (ExecMainStatus is its exit status), 2 CLD_KILLED and
	// 3 CLD_DUMPED (ExecMainStatus is the signal).
	ExecMainCode, ExecMainStatus int32
	NRestarts                    uint32 // automatic restarts since the last start by hand or reset-failed
	HasNRestarts                 bool   // systemd 235 and later
	Restart                      string // the Restart= setting
}

// CLD_* codes of ExecMainCode (waitid(2)).
const (
	cldExited = 1
	cldKilled = 2
	cldDumped = 3
)

// readUnit reads the unit's and the service's properties: two GetAll
// calls on the unit's object, which systemd loads on demand.
func readUnit(ctx context.Context, conn *sd.Conn, unit string) (unitState, error) {
	var st unitState
	u, err := conn.GetUnitPropertiesContext(ctx, unit)
	if err != nil {
		return st, fmt.Errorf("read the properties of %s: %w", unit, err)
	}
	svc, err := conn.GetUnitTypePropertiesContext(ctx, unit, "Service")
	if err != nil {
		return st, fmt.Errorf("read the service properties of %s: %w", unit, err)
	}
	st.ActiveState, _ = u["ActiveState"].(string)
	st.SubState, _ = u["SubState"].(string)
	if st.ActiveState == "" {
		return st, fmt.Errorf("read the properties of %s: no ActiveState", unit)
	}
	if job, ok := u["Job"].([]any); ok && len(job) == 2 {
		st.JobID, _ = job[0].(uint32)
	}
	st.Result, _ = svc["Result"].(string)
	st.ExecMainCode, _ = svc["ExecMainCode"].(int32)
	st.ExecMainStatus, _ = svc["ExecMainStatus"].(int32)
	st.NRestarts, st.HasNRestarts = svc["NRestarts"].(uint32)
	st.Restart, _ = svc["Restart"].(string)
	return st, nil
}

// autoRestartStates are the service substates in which systemd's Restart=
// logic is restarting the unit: auto-restart (waiting RestartSec=), and
// since systemd 254 the transitory dead/failed-before-auto-restart and
// auto-restart-queued.
var autoRestartStates = map[string]bool{
	"auto-restart": true, "auto-restart-queued": true,
	"dead-before-auto-restart": true, "failed-before-auto-restart": true,
}

// startJobs are the job types that end with the unit started.
var startJobs = map[string]bool{
	"start": true, "restart": true, "try-restart": true, "reload-or-start": true, "verify-active": true,
}

// Preflight implements Preflighter. It holds the restart when systemd is
// restarting the unit already (a Restart= back-off, or a start job
// queued), and when the unit is down because its main process exited
// with 78, openclaw's "configuration or lock problem": its unit's
// RestartPreventExitStatus=78 keeps systemd from restarting it, and so
// must we. An active unit is never held, however frozen: that is the case
// the restart is for.
func (s *systemdAction) Preflight(ctx context.Context) (string, string, error) {
	conn, err := s.connect(ctx)
	if err != nil {
		return "", "", fmt.Errorf("systemd %s bus: connect: %w", s.bus, err)
	}
	defer conn.Close()
	st, err := readUnit(ctx, conn, s.unit)
	if err != nil {
		return "", "", fmt.Errorf("systemd %s bus: %w", s.bus, err)
	}
	return s.decide(ctx, conn, st)
}

func (s *systemdAction) decide(ctx context.Context, conn *sd.Conn, st unitState) (string, string, error) {
	state := st.ActiveState + "/" + st.SubState
	switch st.ActiveState {
	case "active", "reloading":
		return "", "", nil
	}
	if autoRestartStates[st.SubState] {
		return SkipSupervisor, fmt.Sprintf("systemd is restarting %s already (%s, Restart=%s, %d automatic restarts; last exit: %s)",
			s.unit, state, st.Restart, st.NRestarts, exitWords(st.ExecMainCode, st.ExecMainStatus)), nil
	}
	if st.JobID != 0 {
		jobType, err := jobType(ctx, conn, st.JobID)
		if err != nil {
			return "", "", fmt.Errorf("systemd %s bus: %s has job %d: %w", s.bus, s.unit, st.JobID, err)
		}
		if startJobs[jobType] {
			return SkipSupervisor, fmt.Sprintf("systemd has a %s job (%d) for %s queued already (%s)", jobType, st.JobID, s.unit, state), nil
		}
	}
	if (st.ActiveState == "failed" || st.ActiveState == "inactive") && st.ExecMainCode == cldExited && st.ExecMainStatus == exitNeedsPerson {
		return SkipNeedsPerson, fmt.Sprintf("%s is %s: the gateway exited with status 78 (configuration or lock problem: "+
			"its unit's RestartPreventExitStatus=78 says do not restart); fix what its log says, then systemctl%s reset-failed %s and start it",
			s.unit, state, busFlag(s.bus), s.unit), nil
	}
	return "", "", nil
}

// exitNeedsPerson is openclaw's exit status for a configuration or lock
// problem that a restart cannot fix (EX_CONFIG); its systemd unit has
// RestartPreventExitStatus=78.
const exitNeedsPerson = 78

// jobType is the type of the job with id, from the manager's job list.
func jobType(ctx context.Context, conn *sd.Conn, id uint32) (string, error) {
	jobs, err := conn.ListJobsContext(ctx)
	if err != nil {
		return "", fmt.Errorf("list jobs: %w", err)
	}
	for _, j := range jobs {
		if j.Id == id {
			return j.JobType, nil
		}
	}
	return "", nil // finished in between
}

func busFlag(bus string) string {
	if bus == "system" {
		return ""
	}
	return " --user"
}

// exitWords says how a main process ended, from ExecMainCode/Status.
func exitWords(code, status int32) string {
	switch code {
	case cldExited:
		return fmt.Sprintf("exited with status %d", status)
	case cldKilled:
		return fmt.Sprintf("killed by signal %d", status)
	case cldDumped:
		return fmt.Sprintf("dumped core on signal %d", status)
	}
	return "none recorded"
}

// connect opens a private connection bounded by ctx: go-systemd hands ctx
// to godbus, which closes the connection when ctx ends, so neither the
// authentication nor a call can outlive it.
func (s *systemdAction) connect(ctx context.Context) (*sd.Conn, error) {
	if s.bus == "system" {
		return sd.NewSystemConnectionContext(ctx)
	}
	// godbus looks for the session bus in DBUS_SESSION_BUS_ADDRESS, then
	// /run/user/<uid>/bus, and failing both runs dbus-launch, which would
	// start a new, empty bus without systemd on it. Never let it.
	if addr := os.Getenv("DBUS_SESSION_BUS_ADDRESS"); addr == "" || addr == "autolaunch:" {
		sock := "/run/user/" + strconv.Itoa(os.Getuid()) + "/bus"
		if _, err := os.Stat(sock); err != nil {
			return nil, fmt.Errorf("no user bus: DBUS_SESSION_BUS_ADDRESS is not set and %s is missing (is the user's systemd running, e.g. with loginctl enable-linger?): %w", sock, err)
		}
	}
	return sd.NewUserConnectionContext(ctx)
}

func (s *systemdAction) callError(ctx context.Context, err error) error {
	switch dbusErrorName(err) {
	case "org.freedesktop.systemd1.NoSuchUnit":
		return fmt.Errorf("systemd %s bus: no unit %s: %w", s.bus, s.unit, err)
	case "org.freedesktop.DBus.Error.ServiceUnknown", "org.freedesktop.DBus.Error.NameHasNoOwner":
		return fmt.Errorf("systemd %s bus: systemd is not on this bus: %w", s.bus, err)
	case "org.freedesktop.DBus.Error.AccessDenied", "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired":
		return fmt.Errorf("systemd %s bus: not allowed to restart %s (a system unit needs root or a polkit rule): %w", s.bus, s.unit, err)
	}
	if ctx.Err() != nil {
		return fmt.Errorf("systemd %s bus: restart %s timed out: %w (%w)", s.bus, s.unit, ctx.Err(), err)
	}
	return fmt.Errorf("systemd %s bus: restart %s: %w", s.bus, s.unit, err)
}

// dbusErrorName is the D-Bus error name in err, if any: godbus returns
// error replies as dbus.Error values, some of its own errors as pointers.
func dbusErrorName(err error) string {
	var v dbus.Error
	if errors.As(err, &v) {
		return v.Name
	}
	var p *dbus.Error
	if errors.As(err, &p) {
		return p.Name
	}
	return ""
}

// WarnSignalSupervisors logs, for each signal target whose gateway runs in
// a systemd service, when that service's Restart= would leave the gateway
// down after the target's signal: what --config.check cannot see. It
// needs the gateway's live process (w a LocalWorld); a gateway that is
// not running, or not a systemd service's, is passed over. Each target's
// check is bounded by a 2 s deadline under ctx; call it in the background
// at start and after a reload.
func WarnSignalSupervisors(ctx context.Context, targets []Target, w World, logger *slog.Logger) {
	procs, ok := w.(Processes)
	if !ok {
		return
	}
	for _, t := range targets {
		if t.Action.Signal == nil || ctx.Err() != nil {
			continue
		}
		func() {
			defer func() {
				if p := recover(); p != nil {
					logger.Error("supervisor check panicked", "target", t.Name, "panic", p)
				}
			}()
			pid, _, err := procs.LockOwner(t.Gateway)
			if err != nil {
				logger.Debug("supervisor check: no live gateway process", "target", t.Name, "err", oneLine(err))
				return
			}
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			warning, err := signalUnderSystemd(cctx, pid, t.Action.Signal.Signal)
			switch {
			case warning != "":
				logger.Warn("remediation signal action: the supervisor would not restart the gateway", "target", t.Name, "gateway", t.Gateway, "why", warning)
			case err != nil:
				logger.Debug("supervisor check: no systemd answer", "target", t.Name, "err", oneLine(err))
			}
		}()
	}
}

// signalUnderSystemd finds the systemd service the gateway's
// process pid runs in (the user bus first, then the system bus) and says
// whether that service's Restart= brings the gateway back after sig. It
// returns a warning for people, or "" when systemd restarts it or when the
// process is not a systemd service's (a container's, a terminal's), which
// --config.check cannot know either (docs/supervisors.md).
func signalUnderSystemd(ctx context.Context, pid int, sig string) (string, error) {
	var lastErr error
	for _, bus := range []string{"user", "system"} {
		a := &systemdAction{bus: bus}
		conn, err := a.connect(ctx)
		if err != nil {
			lastErr = err
			continue
		}
		unit, restart, err := serviceOfPID(ctx, conn, pid)
		conn.Close()
		if err != nil {
			lastErr = err
			continue
		}
		if unit == "" {
			continue
		}
		return restartWarning(bus, unit, restart, sig), nil
	}
	return "", lastErr
}

// serviceOfPID is the service unit pid runs in and its Restart=; "" when
// it is not a service's, or only the user manager's (user@UID.service, as
// the system manager sees a user unit's processes).
func serviceOfPID(ctx context.Context, conn *sd.Conn, pid int) (string, string, error) {
	if pid <= 0 || pid > math.MaxInt32 {
		return "", "", fmt.Errorf("pid %d", pid)
	}
	unit, err := conn.GetUnitNameByPID(ctx, uint32(pid))
	if err != nil {
		if dbusErrorName(err) == "org.freedesktop.systemd1.NoUnitForPID" {
			return "", "", nil
		}
		return "", "", err
	}
	if !strings.HasSuffix(unit, ".service") || strings.HasPrefix(unit, "user@") {
		return "", "", nil
	}
	p, err := conn.GetServicePropertyContext(ctx, unit, "Restart")
	if err != nil {
		return "", "", err
	}
	restart, _ := p.Value.Value().(string)
	return unit, restart, nil
}

// restartWarning says, for a gateway ended by sig in a unit with
// Restart=restart, whether systemd starts it again. SIGTERM and SIGINT are
// answered with exit 0, SIGHUP kills Node: all three are a clean end;
// SIGKILL and SIGQUIT are not. A wedged gateway never answers SIGTERM or
// SIGINT: the signal action SIGKILLs it after kill_after, an unclean end.
// SIGUSR1 and SIGUSR2 are in-process restarts, no exit.
func restartWarning(bus, unit, restart, sig string) string {
	var clean bool
	switch sig {
	case "SIGTERM", "SIGINT", "SIGHUP":
		clean = true
	case "SIGKILL", "SIGQUIT":
	default:
		return ""
	}
	restarts := func(clean bool) bool {
		switch restart {
		case "always":
			return true
		case "on-success":
			return clean
		case "on-failure", "on-abnormal", "on-abort":
			return !clean
		}
		return false // no, on-watchdog
	}
	where := fmt.Sprintf("systemd %s unit %s has Restart=%s", bus, unit, restart)
	switch {
	case restarts(clean):
		return ""
	case clean && sig != "SIGHUP" && restarts(false):
		return where + ": a gateway that answers " + sig + " exits cleanly and stays down; only a wedged one, SIGKILLed after kill_after, comes back. " +
			"Use the systemd action, or Restart=always"
	}
	return where + ": after " + sig + " the gateway stays down. Use the systemd action, or Restart=always"
}
