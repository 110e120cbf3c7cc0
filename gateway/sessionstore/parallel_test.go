package sessionstore

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
)

// TestParallelPanicReachesCaller: a panic in a worker must not end the
// process (nothing could recover it there); it is raised again in the
// caller, after every worker stopped, where the collector recovers it.
func TestParallelPanicReachesCaller(t *testing.T) {
	tests := []struct {
		name    string
		workers int
		panicAt func(i int) bool
	}{
		{"one worker", 1, func(i int) bool { return i == 3 }},
		{"one of many", 4, func(i int) bool { return i == 7 }},
		{"every item", 4, func(int) bool { return true }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var running atomic.Int64
			got := func() (p any) {
				defer func() { p = recover() }()
				parallel(context.Background(), tc.workers, 100, func(_, i int) {
					running.Add(1)
					defer running.Add(-1)
					if tc.panicAt(i) {
						panic(fmt.Sprintf("bug at item %d", i))
					}
				})
				return nil
			}()
			if s, _ := got.(string); !strings.Contains(s, "bug at item") || !strings.Contains(s, "parallel_test.go") {
				t.Errorf("recovered %v, want the worker's panic with its stack", got)
			}
			if n := running.Load(); n != 0 {
				t.Errorf("%d workers still running after parallel returned", n)
			}
		})
	}
}
