package testutil

import (
	"bytes"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"
)

// Missing skips the test for a missing prerequisite, and fails it in CI
// (CI=true), where every prerequisite is installed and a skip would hide a
// broken setup.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true and a prerequisite is missing: %s", msg)
	}
	t.Skip("prerequisite missing: " + msg)
}

// WaitFor polls cond until it holds, failing the test after timeout: a
// bound that catches a hang, never a speed requirement.
func WaitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// SyncBuffer is an io.Writer safe for concurrent writers (a logger shared
// by goroutines, a child's stdout and stderr). It keeps the first 4 MiB.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

const syncBufferMax = 4 << 20

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if room := syncBufferMax - s.b.Len(); room > 0 {
		s.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Reset empties the buffer.
func (s *SyncBuffer) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.Reset()
}
