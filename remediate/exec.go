package remediate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

func init() { registerAction("exec", newExecAction) }

type execAction struct {
	argv   []string
	target string
}

func newExecAction(t Target, _ World) (Action, error) {
	return &execAction{argv: t.Action.Exec.Command, target: t.Name}, nil
}

// Run runs the argv without a shell, in its own process group. Alert data
// reaches it only as environment variables, never as arguments. The action
// is the main process: when it exits, whatever it left in its group (a
// `sleep 300 &`) is killed, and its exit status alone is the result; at the
// timeout the whole group is killed. A command that means to leave a
// process running must hand it to a supervisor or a session of its own
// (setsid).
func (x *execAction) Run(ctx context.Context, a Alert) error {
	cmd := exec.CommandContext(ctx, x.argv[0], x.argv[1:]...)
	cmd.Env = append(os.Environ(), alertEnv(x.target, a)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	// Our own pipe, not exec's copying goroutines: Wait then returns when
	// the main process exits, not when the last holder of its stdout does.
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("%s: %w", x.argv[0], err)
	}
	defer func() { _ = r.Close() }()
	cmd.Stdout, cmd.Stderr = w, w
	err = cmd.Start()
	_ = w.Close()
	if err != nil {
		return fmt.Errorf("%s: %w", x.argv[0], err)
	}
	var out limitedBuffer
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		_, _ = io.Copy(&out, r)
	}()
	pid := cmd.Process.Pid
	// Wait for the exit without reaping, so that the pid (the group's id)
	// cannot be reused before the group is killed.
	for {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	err = cmd.Wait()
	select {
	case <-copied:
	case <-time.After(time.Second):
		// A process that left the group still holds the pipe: the output
		// so far is enough.
		_ = r.Close()
		<-copied
	}
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%s: timed out: %w (output: %s)", x.argv[0], ctx.Err(), out.String())
		}
		return fmt.Errorf("%s: %w (output: %s)", x.argv[0], err, out.String())
	}
	return nil
}

// alertEnv describes the alert to a command: ALERT_STATUS, ALERT_NAME,
// ALERT_FINGERPRINT, ALERT_STARTS_AT, REMEDIATION_TARGET and ALERT_LABEL_<name>
// for each label.
func alertEnv(target string, a Alert) []string {
	env := []string{
		"REMEDIATION_TARGET=" + target,
		"ALERT_STATUS=" + a.Status,
		"ALERT_NAME=" + a.Labels["alertname"],
		"ALERT_FINGERPRINT=" + a.Fingerprint,
		"ALERT_STARTS_AT=" + a.StartsAt.Format(time.RFC3339Nano),
	}
	keys := make([]string, 0, len(a.Labels))
	for k := range a.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if envLabel().MatchString(k) {
			env = append(env, "ALERT_LABEL_"+strings.ToUpper(k)+"="+a.Labels[k])
		}
	}
	return env
}

// envLabel: label names that make valid environment variable names.
var envLabel = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`) })

// limitedBuffer keeps the first 4 KiB of a command's output for the log.
type limitedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if room := 4096 - l.b.Len(); room > 0 {
		l.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (l *limitedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.TrimSpace(l.b.String())
}
