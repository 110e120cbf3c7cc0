package sessionstore

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// noWatchEnv makes every scanner of the test binary scan in full, for
// TestSessionScanWithoutWatch.
const noWatchEnv = "SESSIONSTORE_TEST_NO_WATCH"

func init() {
	if os.Getenv(noWatchEnv) == "1" {
		watchByDefault = false
	}
}

// The scan tests run with change notification (the default); this runs them
// again with full scans only, as on a host without inotify.
func TestSessionScanWithoutWatch(t *testing.T) {
	if !watchByDefault {
		t.Skip("already without watch")
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^(TestSessionScan|TestSQLite|TestDeepStore)", "-test.count=1")
	cmd.Env = append(os.Environ(), noWatchEnv+"=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scan tests without watch: %v\n%s", err, out)
	}
}

// watchingScanner is a scanner with change notification, even under
// noWatchEnv.
func watchingScanner() *Scanner {
	s := NewScanner()
	s.noWatch = false
	return s
}

// Each change, made after a scan, must show in the next scan exactly as a
// full scan by a fresh scanner sees it; between changes, a scan where
// nothing changed must look at no transcript.
func TestSessionScanWatch(t *testing.T) {
	state := t.TempDir()
	main := sessionsDir(t, state, "main")
	ops := sessionsDir(t, state, "ops")
	for _, dir := range []string{main, ops} {
		writeStore(t, dir, map[string]map[string]any{"a": {"updatedAt": 1000}, "b": {"updatedAt": 2000}})
		for _, id := range []string{"a", "b"} {
			if err := os.WriteFile(filepath.Join(dir, id+".jsonl"), transcript(id, 0, 3), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	s := watchingScanner()
	defer func() { _ = s.Close() }()
	scan := func(s *Scanner) []AgentSessions {
		t.Helper()
		got, err := s.Scan(context.Background(), state)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	scan(s)
	if s.watch == nil || !s.watch.states[state].armed {
		t.Fatal("no watch after the first scan")
	}
	for _, step := range []struct {
		name   string
		change func(t *testing.T)
	}{
		{"append", func(t *testing.T) { appendFile(t, filepath.Join(main, "a.jsonl"), transcript("a", 3, 2)) }},
		{"new transcript", func(t *testing.T) {
			if err := os.WriteFile(filepath.Join(main, "c.jsonl"), transcript("c", 0, 9), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"rewritten in place", func(t *testing.T) {
			if err := os.WriteFile(filepath.Join(main, "c.jsonl"), transcript("c", 0, 2), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"deleted", func(t *testing.T) {
			if err := os.Remove(filepath.Join(ops, "b.jsonl")); err != nil {
				t.Fatal(err)
			}
		}},
		{"renamed in", func(t *testing.T) {
			tmp := filepath.Join(ops, "x.tmp")
			if err := os.WriteFile(tmp, transcript("d", 0, 4), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, filepath.Join(ops, "d.jsonl")); err != nil {
				t.Fatal(err)
			}
		}},
		{"store rewritten", func(t *testing.T) {
			writeStore(t, main, map[string]map[string]any{"a": {"updatedAt": 5000}, "b": {}, "c": {}})
		}},
		{"unreadable", func(t *testing.T) {
			if os.Geteuid() == 0 {
				// root reads anything: replace the file with a dir instead.
				if err := os.Remove(filepath.Join(main, "b.jsonl")); err != nil {
					t.Fatal(err)
				}
				if err := os.Mkdir(filepath.Join(main, "b.jsonl"), 0o700); err != nil {
					t.Fatal(err)
				}
				return
			}
			if err := os.Chmod(filepath.Join(main, "b.jsonl"), 0); err != nil {
				t.Fatal(err)
			}
		}},
		{"new agent", func(t *testing.T) {
			dir := sessionsDir(t, state, "zed")
			writeStore(t, dir, map[string]map[string]any{"z": {}})
		}},
		{"sessions dir of an agent removed", func(t *testing.T) {
			if err := os.RemoveAll(ops); err != nil {
				t.Fatal(err)
			}
		}},
		{"sessions dir made again", func(t *testing.T) {
			writeStore(t, sessionsDir(t, state, "ops"), map[string]map[string]any{"o": {}})
		}},
		{"agent removed", func(t *testing.T) {
			if err := os.RemoveAll(filepath.Join(state, "agents", "zed")); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(step.name, func(t *testing.T) {
			step.change(t)
			got := scan(s)
			full := NewScanner()
			full.noWatch = true
			if want := scan(full); !reflect.DeepEqual(got, want) {
				t.Fatalf("after the change:\n got %+v\nwant %+v", got, want)
			}
			// Nothing changed since: no transcript looked at, the same
			// result.
			before := s.Stats().FilesChecked
			again := scan(s)
			if n := s.Stats().FilesChecked - before; n != 0 && !s.watch.states[state].armed {
				t.Fatalf("the watch was lost")
			} else if n > 1 { // at most the unreadable one, checked every scan
				t.Errorf("a scan with nothing changed looked at %d transcripts", n)
			}
			if !reflect.DeepEqual(again, got) {
				t.Fatalf("unchanged scan:\n got %+v\nwant %+v", again, got)
			}
		})
	}
}

// A change the watch misses (an mmap write, NFS) shows after the full check
// at the latest; an overflow of the event queue makes the next scan full.
func TestSessionScanWatchSafetyNet(t *testing.T) {
	state := t.TempDir()
	dir := sessionsDir(t, state, "main")
	writeStore(t, dir, map[string]map[string]any{"a": {}})
	path := filepath.Join(dir, "a.jsonl")
	if err := os.WriteFile(path, transcript("a", 0, 3), 0o600); err != nil {
		t.Fatal(err)
	}
	s := watchingScanner()
	defer func() { _ = s.Close() }()
	first := scanOne(t, s, state)
	lost := func() {
		appendFile(t, path, transcript("a", int(first.LargestLines)+1, 1))
		s.watch.drain()
		s.watch.states[state].takeDirty() // as if no event had come
	}
	lost()
	if got := scanOne(t, s, state); got.LargestLines != first.LargestLines {
		t.Fatalf("the scan did not trust the watch: %+v", got) // else the next check proves nothing
	}
	s.watch.states[state].lastFull = time.Now().Add(-fullCheckEvery)
	if got := scanOne(t, s, state); got.LargestLines != first.LargestLines+1 {
		t.Fatalf("after the full check: %d lines, want %d", got.LargestLines, first.LargestLines+1)
	}

	first = scanOne(t, s, state)
	lost()
	s.watch.event(-1, unix.IN_Q_OVERFLOW, "")
	before := s.Stats().FilesChecked
	if got := scanOne(t, s, state); got.LargestLines != first.LargestLines+1 {
		t.Fatalf("after an overflow: %d lines, want %d", got.LargestLines, first.LargestLines+1)
	}
	if n := s.Stats().FilesChecked - before; n != 1 {
		t.Errorf("after an overflow the scan looked at %d transcripts, want all (1)", n)
	}
}

// Watches follow the agents: an agent removed leaves none behind, Close
// removes them all, and a scan after Close still works, in full.
func TestSessionScanWatchCleanup(t *testing.T) {
	state := t.TempDir()
	for _, a := range []string{"a", "b"} {
		writeStore(t, sessionsDir(t, state, a), map[string]map[string]any{"x": {}})
	}
	s := watchingScanner()
	if _, err := s.Scan(context.Background(), state); err != nil {
		t.Fatal(err)
	}
	if n := len(s.watch.byPath); n != 5 { // agents, 2 x (agent, sessions)
		t.Fatalf("%d watches, want 5: %v", n, s.watch.byPath)
	}
	if err := os.RemoveAll(filepath.Join(state, "agents", "b")); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := s.Scan(context.Background(), state); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(s.watch.byPath); n != 3 {
		t.Fatalf("%d watches after removing an agent, want 3: %v", n, s.watch.byPath)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got := scanOne(t, s, state); got.Agent != "a" || got.Sessions != 1 {
		t.Fatalf("scan after Close: %+v", got)
	}
}

// A sessions dir reached by a symlink that is pointed elsewhere: the scan
// after that reads the new target, and the watch follows it there.
func TestSessionScanWatchRetargetedSymlink(t *testing.T) {
	state := t.TempDir()
	agent := filepath.Join(state, "agents", "main")
	if err := os.MkdirAll(agent, 0o700); err != nil {
		t.Fatal(err)
	}
	targets := []string{filepath.Join(state, "one"), filepath.Join(state, "two")}
	for i, dir := range targets {
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		writeStore(t, dir, map[string]map[string]any{"a": {}})
		if err := os.WriteFile(filepath.Join(dir, "a.jsonl"), transcript("a", 0, 2+i), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	link := filepath.Join(agent, "sessions")
	if err := os.Symlink(targets[0], link); err != nil {
		t.Fatal(err)
	}
	s := watchingScanner()
	defer func() { _ = s.Close() }()
	if got := scanOne(t, s, state); got.LargestLines != 2 {
		t.Fatalf("first target: %+v", got)
	}
	tmp := filepath.Join(agent, "sessions.new")
	if err := os.Symlink(targets[1], tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, link); err != nil {
		t.Fatal(err)
	}
	if got := scanOne(t, s, state); got.LargestLines != 3 {
		t.Fatalf("after retargeting: %+v", got)
	}
	appendFile(t, filepath.Join(targets[1], "a.jsonl"), transcript("a", 3, 1))
	if got := scanOne(t, s, state); got.LargestLines != 4 {
		t.Fatalf("after appending in the new target: %+v", got)
	}
}
