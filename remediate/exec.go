package remediate

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"time"
)

func init() { registerAction("exec", newExecAction) }

type execAction struct {
	argv   []string
	target string
}

func newExecAction(t Target, _ World) (Action, error) {
	return &execAction{argv: t.Action.Exec.Command, target: t.Name}, nil
}

// Run runs the argv without a shell, in its own process group (killed as a
// whole at the timeout). Alert data reaches it only as environment
// variables, never as arguments.
func (x *execAction) Run(ctx context.Context, a Alert) error {
	cmd := exec.CommandContext(ctx, x.argv[0], x.argv[1:]...)
	cmd.Env = append(os.Environ(), alertEnv(x.target, a)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var out limitedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
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
		if envLabel.MatchString(k) {
			env = append(env, "ALERT_LABEL_"+strings.ToUpper(k)+"="+a.Labels[k])
		}
	}
	return env
}

// envLabel: label names that make valid environment variable names.
var envLabel = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// limitedBuffer keeps the first 4 KiB of a command's output for the log.
type limitedBuffer struct{ b bytes.Buffer }

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := 4096 - l.b.Len(); room > 0 {
		l.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (l *limitedBuffer) String() string { return strings.TrimSpace(l.b.String()) }
