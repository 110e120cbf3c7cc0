package logrepeat

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/clawdbot-exporter/clawdbot_exporter/internal/testutil"
)

func TestRepeatsBecomeOneLine(t *testing.T) {
	var buf testutil.SyncBuffer
	l := New(slog.New(slog.NewTextHandler(&buf, nil)), time.Hour)
	for i := range 12000 {
		l.Warn("401", "refused", "code", 401, "n", i)
	}
	l.Info("other", "another kind")
	if got := strings.Count(buf.String(), "\n"); got != 2 {
		t.Fatalf("before the window ends: %d lines, want 2:\n%s", got, buf.String())
	}
	l.Flush()
	out := buf.String()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 {
		t.Fatalf("after flush: %d lines, want 3:\n%s", len(lines), out)
	}
	if !strings.Contains(lines[2], "repeated=11999") || !strings.Contains(lines[2], "n=11999") || !strings.Contains(lines[2], "level=WARN") {
		t.Errorf("aggregate line: %s", lines[2])
	}
	// A new window logs the first line again.
	l.Warn("401", "refused", "code", 401)
	if got := strings.Count(buf.String(), "\n"); got != 4 {
		t.Errorf("new window: %d lines, want 4", got)
	}
}

func TestWindowEndsByItself(t *testing.T) {
	var buf testutil.SyncBuffer
	l := New(slog.New(slog.NewTextHandler(&buf, nil)), 50*time.Millisecond)
	l.Warn("k", "refused")
	l.Warn("k", "refused")
	testutil.WaitFor(t, "the aggregate line", 10*time.Second, func() bool { return strings.Contains(buf.String(), "repeated=1") })
}

func TestKindsAreBounded(t *testing.T) {
	var buf testutil.SyncBuffer
	l := New(slog.New(slog.NewTextHandler(&buf, nil)), time.Hour)
	for i := range 10 * maxKinds {
		l.Warn(fmt.Sprint(i), "refused")
	}
	if got := strings.Count(buf.String(), "\n"); got != maxKinds+1 {
		t.Errorf("%d lines for %d kinds, want %d", got, 10*maxKinds, maxKinds+1)
	}
	l.Flush()
	if !strings.Contains(buf.String(), "repeated="+fmt.Sprint(10*maxKinds-maxKinds-1)) {
		t.Errorf("overflow not counted:\n%s", buf.String()[len(buf.String())-300:])
	}
}
