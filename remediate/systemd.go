package remediate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"

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

	// Buffered: go-systemd holds its job lock while it delivers the result.
	done := make(chan string, 1)
	if _, err := conn.RestartUnitContext(ctx, s.unit, s.mode, done); err != nil {
		return s.callError(ctx, err)
	}
	select {
	case result := <-done:
		if result != "done" {
			return fmt.Errorf("systemd %s bus: restart job of %s finished with result %q", s.bus, s.unit, result)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("systemd %s bus: restart job of %s still running: %w", s.bus, s.unit, ctx.Err())
	}
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
