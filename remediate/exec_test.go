package remediate

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/clawdbot-exporter/clawdbot_exporter/internal/testutil"
)

// gone reports whether pid has exited (a zombie counts: PID 1 of a
// container may never reap it).
func gone(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || len(s) < i+3 || s[i+2] == 'Z'
}

func readPID(t *testing.T, path string) int {
	t.Helper()
	var b []byte
	testutil.WaitFor(t, "the pid file", 10*time.Second, func() bool {
		b, _ = os.ReadFile(path)
		return strings.HasSuffix(string(b), "\n")
	})
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

func TestExecAction(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	a := alert("firing", "f1", time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC), nil)
	for _, tc := range []struct {
		name    string
		script  string
		timeout time.Duration
		err     string // "" for success
		// leftover: the script writes the pid of a process it leaves
		// behind to pidFile; it must be dead when Run returns.
		leftover bool
	}{
		{name: "exit 0", script: `test "$ALERT_NAME $ALERT_LABEL_GATEWAY $REMEDIATION_TARGET" = "ClawdbotGatewayDown main restart-main"`},
		{name: "exit 3 with output", script: "echo restart refused >&2; exit 3", err: "exit status 3 (output: restart refused)"},
		// The main process exits 0 at once: success, and what it left in
		// the background (holding its stdout) is killed, not waited for.
		{name: "background child", script: `sleep 300 & echo $! > ` + pidFile, leftover: true},
		{name: "background child of a failure", script: `sleep 300 & echo $! > ` + pidFile + `; exit 1`, err: "exit status 1", leftover: true},
		{name: "timeout kills the group", script: `sleep 300 & echo $! > ` + pidFile + `; wait`, timeout: 300 * time.Millisecond, err: "timed out", leftover: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_ = os.Remove(pidFile)
			x := &execAction{argv: []string{"/bin/sh", "-c", tc.script}, target: "restart-main"}
			ctx, cancel := context.WithTimeout(context.Background(), orDefault(tc.timeout, time.Minute))
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- x.Run(ctx, a) }()
			var err error
			select {
			case err = <-done:
			case <-time.After(30 * time.Second): // only a hang gets here
				t.Fatal("Run did not return")
			}
			if tc.err == "" && err != nil {
				t.Fatalf("want success, got %v", err)
			}
			if tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("want an error with %q, got %v", tc.err, err)
			}
			if tc.leftover {
				pid := readPID(t, pidFile)
				t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
				testutil.WaitFor(t, "the leftover child's end", 10*time.Second, func() bool { return gone(pid) })
			}
		})
	}
}

// TestExecActionEscapedChild: a process that left the action's group (its
// own session) and still holds the output pipe does not hold up the
// result.
func TestExecActionEscapedChild(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	x := &execAction{argv: []string{"/bin/sh", "-c", "setsid sleep 300 & echo $! > " + pidFile}, target: "t"}
	done := make(chan error, 1)
	go func() { done <- x.Run(context.Background(), Alert{}) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return")
	}
	pid := readPID(t, pidFile)
	_ = syscall.Kill(pid, syscall.SIGKILL)
}

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}
