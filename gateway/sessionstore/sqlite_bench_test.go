package sessionstore

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkSQLiteScan reads an openclaw database of 10,000 sessions with
// 1 GiB of transcripts (SESSIONS_BENCH_BYTES overrides the size; -short
// makes it 64 MiB): 2 KiB events, plain JSON, as the real schema stores
// them. The database is generated once into the temporary directory and
// kept there across runs (it takes a while). Figures with a warm page cache.
func BenchmarkSQLiteScan(b *testing.B) {
	const sessions = 10000
	total := int64(1 << 30)
	if testing.Short() {
		total = 64 << 20
	}
	if v, err := strconv.ParseInt(os.Getenv("SESSIONS_BENCH_BYTES"), 10, 64); err == nil && v > 0 {
		total = v
	}
	const eventLen = 2048
	perSession := max(total/sessions/eventLen, 1)
	state := filepath.Join(os.TempDir(), "clawdbot_exporter-bench", fmt.Sprintf("oc-%d-%d", sessions, total))
	path := filepath.Join(state, "agents", "main", "agent", SQLiteName)
	if _, err := os.Stat(path); err != nil {
		begin := time.Now()
		buildBenchStore(b, state, sessions, int(perSession), eventLen)
		b.Logf("generated %d sessions x %d events of %d bytes in %v", sessions, perSession, eventLen, time.Since(begin).Round(time.Millisecond))
	}
	want := int64(sessions) * perSession * eventLen
	check := func(b *testing.B, got []AgentSessions, err error) {
		if err != nil {
			b.Fatal(err)
		}
		if len(got) != 1 || got[0].NoCounts || got[0].Sessions != sessions || got[0].TranscriptBytes != want {
			b.Fatalf("scan: %+v, want %d sessions and %d bytes", got, sessions, want)
		}
	}
	ctx := context.Background()
	fi, _ := os.Stat(path)
	b.Run("first", func(b *testing.B) {
		for b.Loop() {
			got, err := NewScanner().Scan(ctx, state)
			check(b, got, err)
		}
		b.ReportMetric(float64(fi.Size()), "db_bytes")
	})
	// One event appended per scan, by a writer that keeps the database
	// open in WAL mode, as the gateway does.
	w, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = w.Close() }()
	w.SetMaxOpenConns(1)
	var seq int64
	if err := w.QueryRow(`SELECT coalesce(max(seq), 0) FROM transcript_events WHERE session_id = 'w0'`).Scan(&seq); err != nil {
		b.Fatal(err)
	}
	if _, err := w.Exec(`PRAGMA journal_mode`); err != nil { // the WAL and -shm now exist
		b.Fatal(err)
	}
	s := NewScanner()
	got, err := s.Scan(ctx, state)
	check(b, got, err)
	// Nothing changed since the last scan; the writer's connection is
	// open (WAL and -shm exist), as while the gateway runs.
	b.Run("warm", func(b *testing.B) {
		for b.Loop() {
			got, err := s.Scan(ctx, state)
			check(b, got, err)
		}
	})
	b.Run("after-append", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			seq++
			if _, err := w.Exec(`INSERT INTO transcript_events (session_id, seq, event_json, created_at) VALUES ('w0', ?, 'x', 1)`, seq); err != nil {
				b.Fatal(err)
			}
			want++
			b.StartTimer()
			got, err := s.Scan(ctx, state)
			check(b, got, err)
		}
	})
	// Leave the store as generated, for the next run.
	if _, err := w.Exec(`DELETE FROM transcript_events WHERE session_id = 'w0' AND event_json = 'x'`); err != nil {
		b.Fatal(err)
	}
}

func buildBenchStore(b *testing.B, state string, sessions, perSession, eventLen int) {
	tmp := state + ".tmp"
	_ = os.RemoveAll(tmp)
	oc := newOCStore(b, tmp, "main", 23)
	tx, err := oc.db.Begin()
	if err != nil {
		b.Fatal(err)
	}
	node, err := tx.Prepare(`INSERT INTO session_nodes (session_key, current_session_id, entry_json, updated_at) VALUES (?, ?, '{}', ?)`)
	if err != nil {
		b.Fatal(err)
	}
	win, err := tx.Prepare(`INSERT INTO session_windows (session_id, session_key, reason, created_at, updated_at) VALUES (?, ?, 'initial', 1, 1)`)
	if err != nil {
		b.Fatal(err)
	}
	ev, err := tx.Prepare(`INSERT INTO transcript_events (session_id, seq, event_json, created_at) VALUES (?, ?, ?, 1)`)
	if err != nil {
		b.Fatal(err)
	}
	body := `{"type":"message","text":"` + strings.Repeat("x", eventLen-28) + `"}`
	for i := range sessions {
		id := fmt.Sprintf("w%d", i)
		key := fmt.Sprintf("agent:main:telegram:dm:%d", i)
		if _, err := node.Exec(key, id, 1795578289438-int64(i)); err != nil {
			b.Fatal(err)
		}
		if _, err := win.Exec(id, key); err != nil {
			b.Fatal(err)
		}
	}
	// Interleaved, as sessions are written over time.
	for seq := 1; seq <= perSession; seq++ {
		for i := range sessions {
			if _, err := ev.Exec(fmt.Sprintf("w%d", i), seq, body); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	if _, err := oc.db.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		b.Fatal(err)
	}
	if err := oc.db.Close(); err != nil {
		b.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(state), 0o700); err != nil {
		b.Fatal(err)
	}
	if err := os.Rename(tmp, state); err != nil {
		b.Fatal(err)
	}
}
