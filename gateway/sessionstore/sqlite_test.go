package sessionstore

import (
	"bytes"
	"context"
	"database/sql"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/clawdbot-exporter/clawdbot_exporter/internal/testutil"
)

var updateSQLite = flag.Bool("update-sqlite", false, "rewrite testdata/state/agents/oc/agent/openclaw-agent.sqlite")

// ocStore is a writable openclaw agent database with the real schema of
// openclaw 2026.9.6 (testdata/openclaw-agent-schema-23.sql, taken from the
// npm package's OPENCLAW_AGENT_SCHEMA_SQL), written as the gateway writes it:
// WAL mode, one connection.
type ocStore struct {
	path string
	db   *sql.DB
	seq  map[string]int64
}

func newOCStore(t testing.TB, state, agent string, schema int64) *ocStore {
	dir := filepath.Join(state, "agents", agent, "agent")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, SQLiteName)
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(wal)&_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	schemaFile := "testdata/openclaw-agent-schema-23.sql"
	if p := os.Getenv("OC_SCHEMA_SQL"); p != "" {
		schemaFile = p // RunAsNobody runs elsewhere
	}
	ddl, err := os.ReadFile(schemaFile)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(string(ddl)); err != nil {
		t.Fatalf("schema: %v", err)
	}
	if _, err := db.Exec(`INSERT INTO schema_meta (meta_key, role, schema_version, agent_id, app_version, created_at, updated_at)
		VALUES ('primary', 'agent', ?, ?, '2026.9.6', 1, 1)`, schema, agent); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	s := &ocStore{path: path, db: db, seq: map[string]int64{}}
	t.Cleanup(func() { _ = db.Close() })
	return s
}

func (s *ocStore) exec(q string, args ...any) {
	if _, err := s.db.Exec(q, args...); err != nil {
		panic(fmt.Sprintf("%s: %v", q, err))
	}
}

// session adds a session node and its current window.
func (s *ocStore) session(key, id string, updatedAt int64) {
	s.exec(`INSERT INTO session_nodes (session_key, current_session_id, entry_json, updated_at) VALUES (?, ?, '{}', ?)`, key, id, updatedAt)
	s.window(key, id, "initial")
}

func (s *ocStore) window(key, id, reason string) {
	s.exec(`INSERT INTO session_windows (session_id, session_key, reason, created_at, updated_at) VALUES (?, ?, ?, 1, 1)`, id, key, reason)
}

// navigation is the smallest navigation_json the CHECK on compressed rows
// accepts.
const navigation = `{"version":1,"report":{"kind":"canonical"},"navigation":{},"reset":{},"model":{},"modelBytes":0,"modelWithoutCheckpointBytes":0,"withoutCustomDataBytes":0}`

// event appends one event of size bytes to window id: plain JSON, or (zstd)
// a stand-in compressed blob with its uncompressed size in event_utf8_bytes.
func (s *ocStore) event(id string, size int, zstd bool) {
	s.seq[id]++
	if zstd {
		s.exec(`INSERT INTO transcript_events (session_id, seq, event_zstd, event_utf8_bytes, navigation_json, created_at) VALUES (?, ?, ?, ?, ?, 1)`,
			id, s.seq[id], bytes.Repeat([]byte{0x28}, 16), size, navigation)
		return
	}
	body := strings.Repeat("x", size)
	if size >= 30 {
		body = `{"type":"message","text":"` + strings.Repeat("é", (size-30)/2) + `"}`
		body += strings.Repeat(" ", size-len(body))
	}
	s.exec(`INSERT INTO transcript_events (session_id, seq, event_json, created_at) VALUES (?, ?, ?, 1)`, id, s.seq[id], body)
}

// truth is what a direct query of the database says.
func (s *ocStore) truth() AgentSessions {
	var a AgentSessions
	var last int64
	if err := s.db.QueryRow(`SELECT count(*), coalesce(max(updated_at), 0) FROM session_nodes`).Scan(&a.Sessions, &last); err != nil {
		panic(err)
	}
	if last > 0 {
		a.LastUpdate = time.UnixMilli(last)
	}
	rows, err := s.db.Query(`SELECT n.current_session_id, count(e.seq),
		coalesce(sum(coalesce(e.event_utf8_bytes, length(cast(e.event_json AS blob)))), 0)
		FROM (SELECT DISTINCT current_session_id FROM session_nodes) n
		LEFT JOIN transcript_events e ON e.session_id = n.current_session_id
		GROUP BY n.current_session_id ORDER BY n.current_session_id`)
	if err != nil {
		panic(err)
	}
	defer func() { _ = rows.Close() }()
	first := true
	for rows.Next() {
		var id string
		var n, b int64
		if err := rows.Scan(&id, &n, &b); err != nil {
			panic(err)
		}
		a.TranscriptBytes += b
		if first || b > a.LargestBytes {
			a.LargestBytes, a.LargestLines, first = b, n, false
		}
	}
	return a
}

func sameCounts(got, want AgentSessions) bool {
	return !got.NoCounts && got.Sessions == want.Sessions && got.TranscriptBytes == want.TranscriptBytes &&
		got.LargestBytes == want.LargestBytes && got.LargestLines == want.LargestLines && got.LastUpdate.Equal(want.LastUpdate)
}

func scanAgent(t *testing.T, s *Scanner, state, agent string) AgentSessions {
	t.Helper()
	got, err := scanWithin(t, s, state, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range got {
		if a.Agent == agent {
			return a
		}
	}
	t.Fatalf("agent %s not reported: %+v", agent, got)
	return AgentSessions{}
}

func TestSQLiteStore(t *testing.T) {
	state := t.TempDir()
	oc := newOCStore(t, state, "main", 23)
	oc.session("agent:main:main", "w1", 1795578289438)
	oc.session("agent:main:x", "w2", 1795578200000)
	oc.session("agent:main:empty", "w3", 1795578100000)
	for i := range 5 {
		oc.event("w1", 100+i, false)
	}
	oc.event("w2", 3000, true)
	oc.event("w2", 40, false)
	// An old window of w2's session: not its history any more.
	oc.window("agent:main:x", "w0", "reset")
	oc.event("w0", 99999, false)

	s := NewScanner()
	got := scanAgent(t, s, state, "main")
	want := oc.truth()
	if !sameCounts(got, want) || got.Errors != 0 || got.Format != "sqlite" || got.SchemaVersion != 23 {
		t.Fatalf("first scan:\n got %+v\nwant %+v", got, want)
	}
	if want.Sessions != 3 || want.TranscriptBytes != 510+3040 || want.LargestBytes != 3040 || want.LargestLines != 2 {
		t.Fatalf("the fixture is not what the test means: %+v", want)
	}
	if f := got.Files; f == nil || !f.HaveDatabase || !f.HaveWAL || !f.HaveSHM || f.Database <= 0 || f.WAL <= 0 {
		t.Errorf("files = %+v, want the database, its WAL and -shm", got.Files)
	}

	// Incremental: new events, a new session, a reset to a window that
	// already has rows, all while the writer's connection stays open.
	oc.event("w1", 2000, false)
	oc.session("agent:main:new", "w4", 1795578300000)
	oc.event("w4", 10, false)
	oc.exec(`UPDATE session_nodes SET current_session_id = 'w0', updated_at = 1795578400000 WHERE session_key = 'agent:main:x'`)
	got = scanAgent(t, s, state, "main")
	if want := oc.truth(); !sameCounts(got, want) {
		t.Fatalf("after writes:\n got %+v\nwant %+v", got, want)
	}
	if got.LargestLines != 1 || got.LargestBytes != 99999 {
		t.Errorf("largest = %d bytes, %d lines; want the reset window w0 (99999, 1)", got.LargestBytes, got.LargestLines)
	}

	// A session deleted; its window's rows too (cascade by hand: the
	// writer has foreign keys off).
	oc.exec(`DELETE FROM transcript_events WHERE session_id = 'w4'`)
	oc.exec(`DELETE FROM session_nodes WHERE session_key = 'agent:main:new'`)
	got = scanAgent(t, s, state, "main")
	if want := oc.truth(); !sameCounts(got, want) {
		t.Fatalf("after a delete:\n got %+v\nwant %+v", got, want)
	}
}

// TestSQLiteStoreWarm: while no file changes, a scan does not open the
// database again.
func TestSQLiteStoreWarm(t *testing.T) {
	state := t.TempDir()
	oc := newOCStore(t, state, "main", 23)
	oc.session("k", "w", 1)
	oc.event("w", 10, false)
	s := NewScanner()
	first := scanAgent(t, s, state, "main")
	st := s.sqlite[oc.path]
	jobs := st.jobs.Load()
	for range 3 {
		if got := scanAgent(t, s, state, "main"); !sameCounts(got, first) {
			t.Fatalf("warm scan: %+v, want %+v", got, first)
		}
	}
	if n := st.jobs.Load() - jobs; n != 0 {
		t.Errorf("%d reads of an unchanged database, want none", n)
	}
	oc.event("w", 10, false)
	if got := scanAgent(t, s, state, "main"); got.TranscriptBytes != 20 {
		t.Errorf("after a write: %d bytes, want 20", got.TranscriptBytes)
	}
	if n := st.jobs.Load() - jobs; n != 1 {
		t.Errorf("%d reads after one write, want 1", n)
	}
}

func TestSQLiteStoreErrors(t *testing.T) {
	t.Run("unknown schema", func(t *testing.T) {
		state := t.TempDir()
		oc := newOCStore(t, state, "main", 24)
		oc.session("k", "w", 1)
		got := scanAgent(t, NewScanner(), state, "main")
		if got.Errors != 1 || !got.NoCounts || got.SchemaVersion != 24 || got.Files == nil || !got.Files.HaveDatabase {
			t.Errorf("got %+v; want a read error, no counts, schema 24 and the file sizes", got)
		}
	})
	t.Run("not a database", func(t *testing.T) {
		state := t.TempDir()
		dir := filepath.Join(state, "agents", "main", "agent")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		testutil.MustWrite(t, filepath.Join(dir, SQLiteName), "not SQLite at all, but long enough to look at it")
		got := scanAgent(t, NewScanner(), state, "main")
		if got.Errors != 1 || !got.NoCounts {
			t.Errorf("got %+v; want a read error and no counts", got)
		}
	})
	t.Run("WAL without shm", func(t *testing.T) {
		state := t.TempDir()
		dir := filepath.Join(state, "agents", "main", "agent")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile("testdata/state/agents/oc/agent/" + SQLiteName)
		if err != nil {
			t.Fatal(err)
		}
		testutil.MustWrite(t, filepath.Join(dir, SQLiteName), string(b))
		testutil.MustWrite(t, filepath.Join(dir, SQLiteName+"-wal"), "")
		got := scanAgent(t, NewScanner(), state, "main")
		if got.Errors != 1 || !got.NoCounts {
			t.Errorf("got %+v; want a read error", got)
		}
		if _, err := os.Stat(filepath.Join(dir, SQLiteName+"-shm")); err == nil {
			t.Errorf("the reader created a -shm")
		}
	})
}

// TestSQLiteStoreReadOnly: reading a closed database (no -wal, no -shm)
// changes nothing in its directory: no file is created, none is written.
func TestSQLiteStoreReadOnly(t *testing.T) {
	state := t.TempDir()
	src, err := os.ReadFile("testdata/state/agents/oc/agent/" + SQLiteName)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(state, "agents", "oc", "agent")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, SQLiteName)
	if err := os.WriteFile(path, src, 0o600); err != nil {
		t.Fatal(err)
	}
	before := listing(t, dir)
	s := NewScanner()
	for range 2 {
		got := scanAgent(t, s, state, "oc")
		if got.NoCounts || got.Sessions != 2 {
			t.Fatalf("got %+v, want the fixture's 2 sessions", got)
		}
		s.sqlite[path].mu.Lock()
		s.sqlite[path].last = nil // force a read
		s.sqlite[path].mu.Unlock()
	}
	if after := listing(t, dir); after != before {
		t.Errorf("the directory changed:\nbefore %s\nafter  %s", before, after)
	}
	b, _ := os.ReadFile(path)
	if !bytes.Equal(b, src) {
		t.Errorf("the database changed")
	}
}

func listing(t *testing.T, dir string) string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		fi, _ := e.Info()
		out = append(out, fmt.Sprintf("%s:%d:%d", e.Name(), fi.Size(), fi.ModTime().UnixNano()))
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

// TestSQLiteStoreBackground: a read that outlasts the scrape's wait goes
// on in the background; the scrape reports its progress and no counts, and
// a later scrape gets the result.
func TestSQLiteStoreBackground(t *testing.T) {
	state := t.TempDir()
	oc := newOCStore(t, state, "main", 23)
	oc.session("k", "w", 1)
	oc.event("w", 10, false)
	s := NewScanner()
	release := make(chan struct{})
	scanHook = func() { <-release }
	t.Cleanup(func() { scanHook = nil })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	got, err := s.Scan(ctx, state)
	if err != nil || len(got) != 1 || !got[0].NoCounts || got[0].Progress >= 1 || got[0].Errors != 0 {
		t.Fatalf("while the first read runs: %+v, %v; want no counts, progress < 1, no error", got, err)
	}
	if ctx.Err() != nil {
		t.Errorf("the scan took the whole deadline")
	}
	close(release)
	scanHook = nil
	st := s.sqlite[oc.path]
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		st.mu.Lock()
		running := st.job != nil
		st.mu.Unlock()
		if !running {
			break
		}
		if time.Now().After(end) {
			t.Fatal("the background read does not end")
		}
	}
	if got := scanAgent(t, s, state, "main"); got.NoCounts || got.TranscriptBytes != 10 || got.Progress != 1 {
		t.Errorf("after the read: %+v", got)
	}
}

func TestSQLiteStoreUnreadable(t *testing.T) {
	if os.Geteuid() == 0 {
		// The checkout may sit where nobody cannot read (a 0700 temp
		// directory in CI): hand the fixture over in a directory of its own.
		ddl, err := os.ReadFile("testdata/openclaw-agent-schema-23.sql")
		if err != nil {
			t.Fatal(err)
		}
		dir, err := os.MkdirTemp("", "oc-schema")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.RemoveAll(dir) })
		schema := filepath.Join(dir, "schema.sql")
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(schema, ddl, 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := testutil.RunAsNobody(t, "TestSQLiteStoreUnreadable", "OC_SCHEMA_SQL="+schema)
		if err != nil || !strings.Contains(out, "--- PASS: TestSQLiteStoreUnreadable") {
			t.Fatalf("as nobody: %v\n%s", err, out)
		}
		return
	}
	state := t.TempDir()
	oc := newOCStore(t, state, "main", 23)
	oc.session("k", "w", 1)
	if err := os.Chmod(oc.path, 0o000); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	s := NewScanner()
	s.SetLogger(slog.New(slog.NewTextHandler(&logs, nil)))
	for i := range 3 {
		got := scanAgent(t, s, state, "main")
		if got.Errors != 1 || !got.NoCounts || !got.PermissionDenied {
			t.Errorf("unreadable database, scan %d: %+v; want permission denied", i, got)
		}
		st := s.sqlite[oc.path]
		st.mu.Lock()
		st.last = nil // read again, as a minute later
		st.mu.Unlock()
	}
	if n := strings.Count(logs.String(), "run the exporter as the gateway's user"); n != 1 {
		t.Errorf("%d log lines for permission denied in 3 scans, want 1:\n%s", n, logs.String())
	}
	// The gateway's 0700 agent dir: the database cannot even be seen.
	if err := os.Chmod(filepath.Dir(oc.path), 0o000); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chmod(filepath.Dir(oc.path), 0o700) })
	got := scanAgent(t, NewScanner(), state, "main")
	if got.Errors != 1 || !got.PermissionDenied {
		t.Errorf("unreadable agent dir: %+v; want permission denied", got)
	}
}

// TestSQLiteFixture checks (and with -update-sqlite writes) the openclaw
// database in the shared fixture state dir: closed cleanly, so without -wal
// and -shm, as a stopped gateway leaves it.
func TestSQLiteFixture(t *testing.T) {
	path := filepath.Join("testdata", "state", "agents", "oc", "agent", SQLiteName)
	if *updateSQLite {
		state := t.TempDir()
		oc := newOCStore(t, state, "oc", 23)
		oc.session("agent:oc:main", "11111111-1111-4111-8111-111111111111", 1795578289438)
		oc.session("agent:oc:x", "22222222-2222-4222-8222-222222222222", 1795578000000)
		oc.event("11111111-1111-4111-8111-111111111111", 200, false)
		oc.event("11111111-1111-4111-8111-111111111111", 300, false)
		oc.event("11111111-1111-4111-8111-111111111111", 5000, true)
		oc.event("22222222-2222-4222-8222-222222222222", 100, false)
		oc.exec(`PRAGMA wal_checkpoint(TRUNCATE)`)
		if err := oc.db.Close(); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(oc.path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got := scanAgent(t, NewScanner(), "testdata/state", "oc")
	want := AgentSessions{Agent: "oc", Sessions: 2, TranscriptBytes: 5600, LargestBytes: 5500, LargestLines: 3,
		LastUpdate: time.UnixMilli(1795578289438), Format: "sqlite", SchemaVersion: 23, Progress: 1}
	files := got.Files
	got.Files = nil
	if !sameCounts(got, want) || got.Errors != 0 || got.SchemaVersion != 23 {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	if files == nil || !files.HaveDatabase || files.HaveWAL || files.HaveSHM {
		t.Errorf("files = %+v, want the database alone", files)
	}
	for _, suffix := range []string{"-wal", "-shm"} {
		if _, err := os.Stat(path + suffix); err == nil {
			t.Errorf("reading the fixture left %s%s behind", path, suffix)
		}
	}
}

func TestDSN(t *testing.T) {
	for _, tc := range []struct {
		path      string
		immutable bool
		want      string
	}{
		{"/s/agents/main/agent/openclaw-agent.sqlite", false, "file:///s/agents/main/agent/openclaw-agent.sqlite?mode=ro&_pragma=query_only(1)&_pragma=busy_timeout(100)&_pragma=temp_store(memory)"},
		{"/s/a?b#c%d/x.sqlite", true, "file:///s/a%3Fb%23c%25d/x.sqlite?mode=ro&_pragma=query_only(1)&_pragma=busy_timeout(100)&_pragma=temp_store(memory)&immutable=1"},
	} {
		if got := dsn(tc.path, tc.immutable); got != tc.want {
			t.Errorf("dsn(%q) = %q, want %q", tc.path, got, tc.want)
		}
	}
}

// TestSQLiteStoreWinsOverJSON: an agent that openclaw migrated from
// clawdbot keeps its sessions.json; the database is the store then, and the
// agent is reported once.
func TestSQLiteStoreWinsOverJSON(t *testing.T) {
	state := t.TempDir()
	oc := newOCStore(t, state, "main", 23)
	oc.session("k", "w", 1795578289438)
	oc.event("w", 64, false)
	writeStore(t, sessionsDir(t, state, "main"), map[string]map[string]any{"a": {"sessionId": "a"}, "b": {"sessionId": "b"}})
	got, err := scanWithin(t, NewScanner(), state, 30*time.Second)
	if err != nil || len(got) != 1 || got[0].Format != "sqlite" || got[0].Sessions != 1 || got[0].TranscriptBytes != 64 {
		t.Errorf("got %+v, %v; want the database's one session", got, err)
	}
}
