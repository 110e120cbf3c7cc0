package sessionstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/clawdbot-exporter/clawdbot_exporter/internal/testutil"
)

const fixtureState = "testdata/state"

func TestSessionScanFixture(t *testing.T) {
	want := []AgentSessions{
		{Agent: "main", Sessions: 4, TranscriptBytes: 704 + 326 + 0, LargestBytes: 704, LargestLines: 4,
			LastUpdate: time.UnixMilli(1795578289438)},
		// openclaw's database (TestSQLiteFixture checks its files).
		{Agent: "oc", Sessions: 2, TranscriptBytes: 5600, LargestBytes: 5500, LargestLines: 3,
			LastUpdate: time.UnixMilli(1795578289438), Format: "sqlite", SchemaVersion: 23, Progress: 1},
		{Agent: "ops", TranscriptBytes: 323, LargestBytes: 323, LargestLines: 2, Errors: 1},
	}
	s := NewScanner()
	for i := range 2 {
		got, err := s.Scan(context.Background(), fixtureState)
		if err != nil {
			t.Fatal(err)
		}
		for i := range got {
			got[i].Files = nil
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("scan %d:\n got %+v\nwant %+v", i, got, want)
		}
	}
	// The second scan read nothing: both stores (the unparseable one too)
	// and every transcript came from the cache.
	if st := s.Stats(); st.BytesRead != 837+90+704+326+323 || st.FilesOpened != 6 {
		t.Errorf("stats after two scans = %+v, want 2280 bytes read, 6 files opened", st)
	}
}

// sessionsDir makes <state>/agents/<agent>/sessions.
func sessionsDir(t testing.TB, state, agent string) string {
	t.Helper()
	d := filepath.Join(state, "agents", agent, "sessions")
	if err := os.MkdirAll(d, 0o700); err != nil {
		t.Fatal(err)
	}
	return d
}

// writeStore writes a sessions.json with one entry per session id, the
// way clawdbot does (tmp + rename).
func writeStore(t testing.TB, dir string, entries map[string]map[string]any) {
	t.Helper()
	b, err := json.Marshal(entries)
	if err != nil {
		t.Fatal(err)
	}
	writeAtomic(t, filepath.Join(dir, sessionStoreName), b)
}

func writeAtomic(t testing.TB, path string, b []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// transcript returns n JSONL lines of a transcript, a header first.
func transcript(id string, from, n int) []byte {
	var b bytes.Buffer
	for i := from; i < from+n; i++ {
		if i == 0 {
			fmt.Fprintf(&b, `{"type":"session","version":3,"id":%q,"timestamp":"2026-11-25T03:40:00.000Z","cwd":"/"}`+"\n", id)
			continue
		}
		fmt.Fprintf(&b, `{"type":"message","id":"%08x","message":{"role":"user","content":[{"type":"text","text":"message %d"}]}}`+"\n", i, i)
	}
	return b.Bytes()
}

func appendFile(t testing.TB, path string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
}

func scanOne(t testing.TB, s *Scanner, state string) AgentSessions {
	t.Helper()
	got, err := s.Scan(context.Background(), state)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("scan returned %d agents, want 1: %+v", len(got), got)
	}
	return got[0]
}

func TestSessionScanStore(t *testing.T) {
	for _, tc := range []struct {
		name     string
		content  string
		limit    int64
		sessions int
		lastMs   int64
		errors   int
	}{
		{name: "empty file", content: "", errors: 1},
		{name: "null", content: "null", errors: 1},
		{name: "array", content: "[]", errors: 1},
		{name: "truncated", content: `{"a":{"updatedAt":1`, errors: 1},
		{name: "binary", content: "\x00\xff\xfe", errors: 1},
		{name: "deep", content: strings.Repeat("[", 20000), errors: 1},
		{name: "empty object", content: "{}"},
		{name: "odd entries", content: `{"a":1,"b":{"updatedAt":"x"},"c":{"updatedAt":1e400},"d":null,"e":{"updatedAt":-5,"sessionFile":7}}`, sessions: 5},
		{name: "newest", content: `{"a":{"updatedAt":1000},"b":{"updatedAt":2000.5},"c":{}}`, sessions: 3, lastMs: 2000},
		{name: "too large", content: `{"a":{"updatedAt":1000}}`, limit: 10, errors: 1},
		{name: "at the limit", content: `{"a":{"updatedAt":1000}}`, limit: 24, sessions: 1, lastMs: 1000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			state := t.TempDir()
			dir := sessionsDir(t, state, "main")
			writeAtomic(t, filepath.Join(dir, sessionStoreName), []byte(tc.content))
			s := NewScanner()
			if tc.limit > 0 {
				s.storeLimit = tc.limit
			}
			for range 2 { // the second from the cache
				got := scanOne(t, s, state)
				want := AgentSessions{Agent: "main", Sessions: tc.sessions, Errors: tc.errors}
				if tc.lastMs != 0 {
					want.LastUpdate = time.UnixMilli(tc.lastMs)
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("got %+v, want %+v", got, want)
				}
			}
		})
	}
}

func TestSessionScanAppend(t *testing.T) {
	state := t.TempDir()
	dir := sessionsDir(t, state, "main")
	writeStore(t, dir, map[string]map[string]any{"agent:main:main": {"sessionId": "s1", "updatedAt": 1000}})
	path := filepath.Join(dir, "s1.jsonl")
	if err := os.WriteFile(path, transcript("s1", 0, 10), 0o600); err != nil {
		t.Fatal(err)
	}
	s := NewScanner()
	if got := scanOne(t, s, state); got.LargestLines != 10 {
		t.Fatalf("lines = %d, want 10", got.LargestLines)
	}
	lines := int64(10)
	for _, step := range []struct {
		name     string
		data     []byte
		addLines int64
	}{
		{"nothing", nil, 0},
		{"five lines", transcript("s1", 10, 5), 5},
		{"half a line", []byte(`{"type":"message","id":"x",`), 0},
		{"its end and one more", append([]byte("\"message\":{}}\n"), transcript("s1", 16, 1)...), 2},
		{"one byte", []byte("\n"), 1},
		{"nothing again", nil, 0},
	} {
		t.Run(step.name, func(t *testing.T) {
			before := s.Stats()
			if step.data != nil {
				appendFile(t, path, step.data)
			}
			got := scanOne(t, s, state)
			lines += step.addLines
			fi, _ := os.Stat(path)
			if got.LargestLines != lines || got.LargestBytes != fi.Size() || got.TranscriptBytes != fi.Size() {
				t.Errorf("got %+v, want %d lines, %d bytes", got, lines, fi.Size())
			}
			read := s.Stats().BytesRead - before.BytesRead
			opened := s.Stats().FilesOpened - before.FilesOpened
			wantRead, wantOpened := int64(0), int64(0)
			if len(step.data) > 0 {
				// The appended bytes, and the tailLen bytes before them to
				// tell an append from a rewrite.
				wantRead, wantOpened = int64(len(step.data))+tailLen, 1
			}
			if read != wantRead || opened != wantOpened {
				t.Errorf("read %d bytes from %d files, want %d bytes from %d", read, opened, wantRead, wantOpened)
			}
		})
	}
}

func TestSessionScanRecount(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, path string)
		lines  int64
		// tail is true when the change looks like growth, so the tail is
		// read and compared before the recount.
		tail bool
	}{
		{name: "truncated in place", lines: 3, change: func(t *testing.T, path string) {
			if err := os.WriteFile(path, transcript("s1", 0, 3), 0o600); err != nil { // O_TRUNC: same inode
				t.Fatal(err)
			}
		}},
		{name: "truncated to nothing", lines: 0, change: func(t *testing.T, path string) {
			if err := os.Truncate(path, 0); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "replaced, larger", lines: 30, change: func(t *testing.T, path string) {
			writeAtomic(t, path, transcript("s2", 0, 30)) // new inode
		}},
		{name: "replaced, same size", lines: 10, change: func(t *testing.T, path string) {
			old, _ := os.ReadFile(path)
			b := transcript("s1", 0, 10)
			b[len(b)-2] = ' ' // same size and lines, other content
			if len(b) != len(old) {
				t.Fatal("size differs")
			}
			writeAtomic(t, path, b)
		}},
		{name: "rewritten in place, larger", lines: 12, tail: true, change: func(t *testing.T, path string) {
			// What pi-coding-agent's _rewriteFile does after a migration.
			b := bytes.ReplaceAll(transcript("s1", 0, 12), []byte(`"type":"message"`), []byte(`"type":"message","v":4`))
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "rewritten in place, same size", lines: 9, change: func(t *testing.T, path string) {
			b, _ := os.ReadFile(path)
			i := bytes.IndexByte(b, '\n')
			b[i] = ' ' // one line fewer
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			future := time.Now().Add(time.Hour)
			if err := os.Chtimes(path, future, future); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			state := t.TempDir()
			dir := sessionsDir(t, state, "main")
			writeStore(t, dir, map[string]map[string]any{"k": {"sessionId": "s1"}})
			path := filepath.Join(dir, "s1.jsonl")
			if err := os.WriteFile(path, transcript("s1", 0, 10), 0o600); err != nil {
				t.Fatal(err)
			}
			s := NewScanner()
			scanOne(t, s, state)
			tc.change(t, path)
			before := s.Stats()
			got := scanOne(t, s, state)
			fi, _ := os.Stat(path)
			if got.LargestLines != tc.lines || got.TranscriptBytes != fi.Size() {
				t.Errorf("got %+v, want %d lines, %d bytes", got, tc.lines, fi.Size())
			}
			want := fi.Size()
			if tc.tail {
				want += tailLen
			}
			if read := s.Stats().BytesRead - before.BytesRead; read != want {
				t.Errorf("read %d bytes, want %d (a full recount)", read, want)
			}
		})
	}
}

func TestSessionScanDropsDeleted(t *testing.T) {
	state := t.TempDir()
	main := sessionsDir(t, state, "main")
	ops := sessionsDir(t, state, "ops")
	for _, dir := range []string{main, ops} {
		writeStore(t, dir, map[string]map[string]any{"a": {"sessionId": "a"}, "b": {"sessionId": "b"}})
		for _, id := range []string{"a", "b"} {
			if err := os.WriteFile(filepath.Join(dir, id+".jsonl"), transcript(id, 0, 3), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	s := NewScanner()
	cached := func() map[string]int {
		out := map[string]int{}
		for agent, ac := range s.dirs[state] {
			out[agent] = len(ac.files)
		}
		return out
	}
	scan := func() []AgentSessions {
		got, err := s.Scan(context.Background(), state)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	size := int64(len(transcript("a", 0, 3)))

	if got := scan(); len(got) != 2 || got[0].TranscriptBytes != 2*size {
		t.Fatalf("got %+v", got)
	}
	if c := cached(); !reflect.DeepEqual(c, map[string]int{"main": 2, "ops": 2}) {
		t.Fatalf("cache = %v", c)
	}
	if err := os.Remove(filepath.Join(main, "a.jsonl")); err != nil {
		t.Fatal(err)
	}
	if got := scan(); len(got) != 2 || got[0].TranscriptBytes != size || got[0].Errors != 0 {
		t.Fatalf("after removing a transcript: %+v", got)
	}
	if c := cached(); !reflect.DeepEqual(c, map[string]int{"main": 1, "ops": 2}) {
		t.Fatalf("cache after removing a transcript = %v", c)
	}
	if err := os.Remove(filepath.Join(ops, sessionStoreName)); err != nil {
		t.Fatal(err)
	}
	if got := scan(); len(got) != 1 || got[0].Agent != "main" {
		t.Fatalf("after removing ops' store: %+v", got)
	}
	if c := cached(); !reflect.DeepEqual(c, map[string]int{"main": 1}) {
		t.Fatalf("cache after removing ops' store = %v", c)
	}
	if err := os.RemoveAll(filepath.Join(state, "agents")); err != nil {
		t.Fatal(err)
	}
	if got := scan(); len(got) != 0 {
		t.Fatalf("after removing agents/: %+v", got)
	}
	if _, ok := s.dirs[state]; ok {
		t.Fatal("cache kept a removed state dir")
	}
}

func TestSessionScanSymlinks(t *testing.T) {
	state := t.TempDir()
	outside := t.TempDir()
	secret := filepath.Join(outside, "secret.jsonl")
	if err := os.WriteFile(secret, bytes.Repeat([]byte("outside\n"), 1000), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := sessionsDir(t, state, "main")
	real := transcript("real", 0, 5)
	sub := transcript("sub", 0, 7)
	if err := os.WriteFile(filepath.Join(dir, "real.jsonl"), real, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "archive"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "archive", "sub.jsonl"), sub, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(dir, "real.jsonl"), filepath.Join(dir, "hard.jsonl")); err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(dir, secret)
	if err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{
		"abs.jsonl":      secret,                    // out, absolute
		"rel.jsonl":      rel,                       // out, relative
		"dangling.jsonl": "nothing.jsonl",           // nowhere
		"alias.jsonl":    "real.jsonl",              // inside: followed, counted once
		"outdir":         outside,                   // a directory out
		"loop.jsonl":     "loop.jsonl",              // itself
		"up.jsonl":       "archive/../../../secret", // out through a real directory
	} {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	writeStore(t, dir, map[string]map[string]any{
		"real":    {"sessionId": "real", "sessionFile": filepath.Join(dir, "real.jsonl")},
		"sub":     {"sessionId": "sub", "sessionFile": filepath.Join(dir, "archive", "sub.jsonl")},
		"secret":  {"sessionId": "secret", "sessionFile": secret},                                   // not followed
		"dotdot":  {"sessionId": "dd", "sessionFile": filepath.Join(dir, "..", "..", "x.jsonl")},    // not followed
		"viadir":  {"sessionId": "vd", "sessionFile": filepath.Join(dir, "outdir", "secret.jsonl")}, // error
		"relpath": {"sessionId": "rp", "sessionFile": "secret.jsonl"},                               // not followed
	})
	store, _ := os.Stat(filepath.Join(dir, sessionStoreName))

	s := NewScanner()
	got := scanOne(t, s, state)
	want := AgentSessions{Agent: "main", Sessions: 6, TranscriptBytes: int64(len(real) + len(sub)),
		LargestBytes: int64(len(sub)), LargestLines: 7,
		Errors: 6} // abs, rel, dangling, loop, up, outdir/secret.jsonl
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	// real.jsonl is read under its three names.
	if st, want := s.Stats(), store.Size()+int64(3*len(real)+len(sub)); st.BytesRead != want {
		t.Errorf("read %d bytes, want only the store's and the transcripts' %d", st.BytesRead, want)
	}

	// A store that is a symlink out of the sessions dir is not read either.
	dir2 := sessionsDir(t, state, "other")
	if err := os.Symlink(filepath.Join(dir, sessionStoreName), filepath.Join(dir2, sessionStoreName)); err != nil {
		t.Fatal(err)
	}
	all, err := s.Scan(context.Background(), state)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || !reflect.DeepEqual(all[1], AgentSessions{Agent: "other", Errors: 1}) {
		t.Errorf("store symlinked out: %+v", all)
	}
}

func TestSessionScanSpecialFiles(t *testing.T) {
	state := t.TempDir()
	dir := sessionsDir(t, state, "main")
	writeStore(t, dir, map[string]map[string]any{"a": {"sessionId": "a"}})
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo.jsonl"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "dir.jsonl"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("fifo.jsonl", filepath.Join(dir, "tofifo.jsonl")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/zero", filepath.Join(dir, "zero.jsonl")); err != nil {
		t.Fatal(err)
	}
	fifoStore := sessionsDir(t, state, "ops")
	if err := syscall.Mkfifo(filepath.Join(fifoStore, sessionStoreName), 0o600); err != nil {
		t.Fatal(err)
	}
	// The second store is a directory.
	if err := os.Mkdir(filepath.Join(sessionsDir(t, state, "dirstore"), sessionStoreName), 0o700); err != nil {
		t.Fatal(err)
	}

	got, err := scanWithin(t, NewScanner(), state, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	want := []AgentSessions{
		{Agent: "dirstore", Errors: 1},
		{Agent: "main", Sessions: 1, Errors: 4},
		{Agent: "ops", Errors: 1},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
}

func TestSessionScanUnreadable(t *testing.T) {
	if os.Geteuid() == 0 {
		out, err := testutil.RunAsNobody(t, "TestSessionScanUnreadable")
		if err != nil || !strings.Contains(out, "--- PASS: TestSessionScanUnreadable") {
			t.Fatalf("as nobody: %v\n%s", err, out)
		}
		return
	}
	state := t.TempDir()
	dir := sessionsDir(t, state, "main")
	writeStore(t, dir, map[string]map[string]any{"a": {"sessionId": "a"}})
	path := filepath.Join(dir, "a.jsonl")
	if err := os.WriteFile(path, transcript("a", 0, 2), 0o000); err != nil {
		t.Fatal(err)
	}
	if got := scanOne(t, NewScanner(), state); got.Errors != 1 || got.TranscriptBytes != 0 {
		t.Errorf("unreadable transcript: %+v", got)
	}
	if err := os.Chmod(filepath.Join(dir, sessionStoreName), 0o000); err != nil {
		t.Fatal(err)
	}
	if got := scanOne(t, NewScanner(), state); got.Errors != 2 {
		t.Errorf("unreadable store: %+v", got)
	}
	if err := os.Chmod(dir, 0o000); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chmod(dir, 0o700) })
	if got := scanOne(t, NewScanner(), state); !reflect.DeepEqual(got, AgentSessions{Agent: "main", Errors: 1}) {
		t.Errorf("unreadable sessions dir: %+v", got)
	}
}

func TestSessionScanNoStore(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	agentFile := t.TempDir()
	if err := os.MkdirAll(filepath.Join(agentFile, "agents"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(agentFile, "agents", "main"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	agentsFile := t.TempDir()
	if err := os.WriteFile(filepath.Join(agentsFile, "agents"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	agentsFIFO := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(agentsFIFO, "agents"), 0o600); err != nil {
		t.Fatal(err)
	}
	sessionsFIFO := t.TempDir()
	if err := os.MkdirAll(filepath.Join(sessionsFIFO, "agents", "main"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(sessionsFIFO, "agents", "main", "sessions"), 0o600); err != nil {
		t.Fatal(err)
	}
	sessionsFile := t.TempDir()
	if err := os.MkdirAll(filepath.Join(sessionsFile, "agents", "main"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sessionsFile, "agents", "main", "sessions"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	stateFIFO := filepath.Join(t.TempDir(), "state")
	if err := syscall.Mkfifo(stateFIFO, 0o600); err != nil {
		t.Fatal(err)
	}
	for name, state := range map[string]string{
		"state dir is a FIFO": stateFIFO,
		"sessions is a file":  sessionsFile,
		"agents is a FIFO":    agentsFIFO,
		"sessions is a FIFO":  sessionsFIFO,
		"missing":             filepath.Join(t.TempDir(), "nope"),
		"a file":              file,
		"no agents dir":       t.TempDir(),
		"agent is file":       agentFile,
		"agents is file":      agentsFile,
	} {
		t.Run(name, func(t *testing.T) {
			s := NewScanner()
			got, err := scanWithin(t, s, state, 5*time.Second)
			if err != nil || len(got) != 0 {
				t.Errorf("got %+v, %v; want nothing, no error", got, err)
			}
			if st := s.Stats(); st != (ScanStats{}) {
				t.Errorf("stats = %+v, want nothing read", st)
			}
		})
	}
}

// scanWithin fails the test when Scan hangs.
// TestSessionScanSQLiteFIFO: a FIFO in place of openclaw's database is a
// read error of that agent, not a hang.
func TestSessionScanSQLiteFIFO(t *testing.T) {
	state := t.TempDir()
	if err := os.MkdirAll(filepath.Join(state, "agents", "main", "agent"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(state, "agents", "main", "agent", SQLiteName), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := scanWithin(t, NewScanner(), state, 5*time.Second)
	if err != nil || len(got) != 1 || got[0].Errors != 1 || !got[0].NoCounts || got[0].Format != "sqlite" {
		t.Errorf("got %+v, %v; want one sqlite agent with a read error and no counts", got, err)
	}
}

func scanWithin(t *testing.T, s *Scanner, state string, d time.Duration) ([]AgentSessions, error) {
	t.Helper()
	type result struct {
		got []AgentSessions
		err error
	}
	done := make(chan result, 1)
	go func() {
		got, err := s.Scan(context.Background(), state)
		done <- result{got, err}
	}()
	select {
	case r := <-done:
		return r.got, r.err
	case <-time.After(d):
		t.Fatalf("scan of %s hangs", state)
		return nil, nil
	}
}

// budgetCtx ends once its scanner has read budget bytes.
type budgetCtx struct {
	context.Context
	s      *Scanner
	budget int64
}

func (c budgetCtx) Err() error {
	if c.s.Stats().BytesRead >= c.budget {
		return context.Canceled
	}
	return nil
}

func TestSessionScanContext(t *testing.T) {
	state := t.TempDir()
	dir := sessionsDir(t, state, "main")
	writeStore(t, dir, map[string]map[string]any{"a": {"sessionId": "a"}})
	big := bytes.Repeat([]byte(strings.Repeat("x", 1023)+"\n"), 1024) // 1 MiB, 4 chunks
	if err := os.WriteFile(filepath.Join(dir, "a.jsonl"), big, 0o600); err != nil {
		t.Fatal(err)
	}
	store, _ := os.Stat(filepath.Join(dir, sessionStoreName))

	t.Run("cancelled before", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		s := NewScanner()
		if _, err := s.Scan(ctx, state); !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
		if st := s.Stats(); st != (ScanStats{}) {
			t.Errorf("stats = %+v, want nothing read", st)
		}
	})
	t.Run("cancelled in the middle of a file", func(t *testing.T) {
		s := NewScanner()
		_, err := s.Scan(budgetCtx{context.Background(), s, store.Size() + readChunk + 1}, state)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		first := s.Stats().BytesRead
		if first != store.Size()+2*readChunk {
			t.Errorf("first scan read %d bytes, want %d", first, store.Size()+2*readChunk)
		}
		// The next scan goes on where the first stopped.
		got := scanOne(t, s, state)
		if got.LargestLines != 1024 || got.TranscriptBytes != int64(len(big)) {
			t.Errorf("got %+v", got)
		}
		if read := s.Stats().BytesRead - first; read != int64(len(big))-2*readChunk+tailLen {
			t.Errorf("second scan read %d bytes, want the rest, %d", read, int64(len(big))-2*readChunk+tailLen)
		}
	})
	t.Run("waits for a running scan only until its deadline", func(t *testing.T) {
		s := NewScanner()
		s.sem <- struct{}{} // a scan is running
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		if _, err := s.Scan(ctx, state); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err = %v, want context.DeadlineExceeded", err)
		}
		<-s.sem
	})
}

func TestSessionScanConcurrent(t *testing.T) {
	state := t.TempDir()
	dir := sessionsDir(t, state, "main")
	writeStore(t, dir, map[string]map[string]any{"a": {"sessionId": "a"}})
	path := filepath.Join(dir, "a.jsonl")
	if err := os.WriteFile(path, transcript("a", 0, 1), 0o600); err != nil {
		t.Fatal(err)
	}
	s := NewScanner()
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 20 {
				if _, err := s.Scan(context.Background(), state); err != nil {
					t.Error(err)
					return
				}
				_ = s.Stats()
			}
		})
	}
	wg.Go(func() {
		for i := 1; i <= 50; i++ {
			appendFile(t, path, transcript("a", i, 1))
		}
	})
	wg.Wait()
	if got := scanOne(t, s, state); got.LargestLines != 51 {
		t.Errorf("lines = %d, want 51", got.LargestLines)
	}
}

func TestKeepTail(t *testing.T) {
	data := make([]byte, 300)
	for i := range data {
		data[i] = byte(i)
	}
	for _, chunks := range [][]int{{300}, {1, 2, 3}, {63, 1}, {64}, {10, 100, 5}, {0, 7}, {65, 3, 60, 1}} {
		var st fileState
		off := 0
		for _, n := range chunks {
			st.keepTail(data[off : off+n])
			off += n
		}
		want := data[max(0, off-tailLen):off]
		if !bytes.Equal(st.tail[:st.tailN], want) {
			t.Errorf("chunks %v: tail %v, want %v", chunks, st.tail[:st.tailN], want)
		}
	}
}

func TestExtraTranscript(t *testing.T) {
	dir := "/state/agents/main/sessions"
	for file, want := range map[string]string{
		dir + "/a.jsonl":          "", // found by the listing
		dir + "/sub/a.jsonl":      "sub/a.jsonl",
		dir + "/a.log":            "a.log",
		dir + "/sessions.json":    "",
		dir + "/../a.jsonl":       "",
		dir + "/sub/../../a":      "",
		dir:                       "",
		"/elsewhere/a.jsonl":      "",
		"a.jsonl":                 "",
		"":                        "",
		"  " + dir + "/x/y.jsonl": "x/y.jsonl",
	} {
		got, ok := extraTranscript(dir, file)
		if got != want || ok != (want != "") {
			t.Errorf("extraTranscript(%q) = %q, %v; want %q", file, got, ok, want)
		}
	}
}

// BenchmarkSessionScan scans 10,000 sessions in 4 agents with 1 GiB of
// transcripts (10,000 files of 105 KiB, 1 KiB lines), generated once.
func BenchmarkSessionScan(b *testing.B) {
	const (
		agents   = 4
		sessions = 10000
		lineLen  = 1024
		lines    = 105
	)
	state := b.TempDir()
	begin := time.Now()
	line := append(bytes.Repeat([]byte("x"), lineLen-1), '\n')
	content := bytes.Repeat(line, lines)
	var wg sync.WaitGroup
	paths := make([][]string, agents)
	for a := range agents {
		wg.Go(func() {
			dir := sessionsDir(b, state, fmt.Sprintf("agent%d", a))
			entries := map[string]map[string]any{}
			for i := a; i < sessions; i += agents {
				id := fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i)
				path := filepath.Join(dir, id+".jsonl")
				entries["agent:main:telegram:dm:"+id] = map[string]any{
					"sessionId": id, "updatedAt": 1795578289438 - i, "chatType": "direct", "lastChannel": "telegram",
					"sessionFile": path, "compactionCount": 0, "inputTokens": 1200, "outputTokens": 340,
				}
				if err := os.WriteFile(path, content, 0o600); err != nil {
					b.Error(err)
					return
				}
				paths[a] = append(paths[a], path)
			}
			writeStore(b, dir, entries)
		})
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	b.Logf("generated %d transcripts, %d MiB, in %v", sessions, sessions*len(content)>>20, time.Since(begin).Round(time.Millisecond))

	check := func(b *testing.B, got []AgentSessions, err error) {
		if err != nil {
			b.Fatal(err)
		}
		total := 0
		for _, a := range got {
			total += a.Sessions
		}
		if len(got) != agents || total != sessions {
			b.Fatalf("scan found %d agents, %d sessions", len(got), total)
		}
	}
	ctx := context.Background()

	b.Run("cold", func(b *testing.B) {
		for b.Loop() {
			got, err := NewScanner().Scan(ctx, state)
			check(b, got, err)
		}
		b.ReportMetric(float64(int64(sessions*len(content))), "transcript_bytes")
	})
	s := NewScanner()
	got, err := s.Scan(ctx, state)
	check(b, got, err)
	b.Run("warm", func(b *testing.B) {
		before := s.Stats()
		n := 0
		for b.Loop() {
			got, err := s.Scan(ctx, state)
			check(b, got, err)
			n++
		}
		b.ReportMetric(float64(s.Stats().BytesRead-before.BytesRead)/float64(n), "read_B/op")
	})
	b.Run("warm-after-append", func(b *testing.B) {
		before := s.Stats()
		n := 0
		for b.Loop() {
			b.StopTimer()
			for i := range 100 {
				appendFile(b, paths[i%agents][i/agents], line)
			}
			b.StartTimer()
			got, err := s.Scan(ctx, state)
			check(b, got, err)
			n++
		}
		b.ReportMetric(float64(s.Stats().BytesRead-before.BytesRead)/float64(n), "read_B/op")
	})
}

// A sessions.json nested past the limit is a bad store, never a decoder's
// stack overflow.
func TestDeepStoreRefused(t *testing.T) {
	n := 500_000
	doc := `{"agent:main:main":{"updatedAt":1,"x":` + strings.Repeat("[", n) + strings.Repeat("]", n) + "}}"
	if st := parseStore([]byte(doc), t.TempDir()); !st.bad {
		t.Error("a store 500,000 deep was accepted")
	}
}
