//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// ocRPC is one operator.admin connection to a real gateway, kept open for
// many calls (the frames of gateway/prober/frames.go).
type ocRPC struct {
	t    *testing.T
	mu   sync.Mutex
	conn *websocket.Conn
	n    int
}

func dialOCRPC(t *testing.T, g *Gateway) *ocRPC {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	conn, _, err := d.Dial(g.URL(), nil)
	if err != nil {
		t.Fatalf("rpc dial: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	r := &ocRPC{t: t, conn: conn}
	if _, err := r.read(func(f map[string]json.RawMessage) bool { return str(f["event"]) == "connect.challenge" }); err != nil {
		t.Fatalf("no connect.challenge: %v", err)
	}
	// Exactly the keys the gateway's connect schema allows.
	if _, err := r.call("connect", map[string]any{
		"minProtocol": 3, "maxProtocol": 4,
		"client": map[string]string{"id": "cli", "version": "e2e", "platform": "linux", "mode": "cli"},
		"role":   "operator", "scopes": []string{"operator.admin"},
		"auth": map[string]string{"token": g.Token},
	}); err != nil {
		t.Fatalf("connect: %v", err)
	}
	return r
}

func str(raw json.RawMessage) string {
	var s string
	_ = json.Unmarshal(raw, &s)
	return s
}

func (r *ocRPC) read(match func(map[string]json.RawMessage) bool) (map[string]json.RawMessage, error) {
	_ = r.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	for {
		_, b, err := r.conn.ReadMessage()
		if err != nil {
			return nil, err
		}
		var f map[string]json.RawMessage
		if json.Unmarshal(b, &f) == nil && match(f) {
			return f, nil
		}
	}
}

// call sends one request and waits for its answer; events in between are
// skipped.
func (r *ocRPC) call(method string, params any) (json.RawMessage, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.n++
	id := fmt.Sprintf("r%d", r.n)
	if err := r.conn.WriteJSON(map[string]any{"type": "req", "id": id, "method": method, "params": params}); err != nil {
		return nil, err
	}
	f, err := r.read(func(f map[string]json.RawMessage) bool { return str(f["id"]) == id })
	if err != nil {
		return nil, err
	}
	if string(f["ok"]) != "true" {
		return nil, fmt.Errorf("%s answered %s", method, f["error"])
	}
	return f["payload"], nil
}

func (r *ocRPC) must(method string, params any) json.RawMessage {
	r.t.Helper()
	p, err := r.call(method, params)
	if err != nil {
		r.t.Fatal(err)
	}
	return p
}

// dbTruth is what a direct read-only query of openclaw's database says,
// by Python's sqlite3 module: another SQLite, another reader than the
// exporter's. The formulas are docs/local-state.md's.
type dbTruth struct {
	Sessions     int64 `json:"sessions"`
	Bytes        int64 `json:"bytes"`
	LargestBytes int64 `json:"largest_bytes"`
	LargestLines int64 `json:"largest_lines"`
	LastUpdateMs int64 `json:"last_update_ms"`
	Schema       int64 `json:"schema"`
	Compressed   int64 `json:"compressed"`
	Events       int64 `json:"events"`
}

const truthScript = `
import json, sqlite3, sys
db = sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True, timeout=5)
db.execute("PRAGMA query_only=1")
q = lambda s: db.execute(s).fetchall()
rows = q("""SELECT n.id, count(e.seq), coalesce(sum(coalesce(e.event_utf8_bytes, length(cast(e.event_json AS blob)))), 0)
  FROM (SELECT DISTINCT current_session_id AS id FROM session_nodes) n
  LEFT JOIN transcript_events e ON e.session_id = n.id GROUP BY n.id ORDER BY n.id""")
largest = max(rows, key=lambda r: (r[2], [-ord(c) for c in r[0]])) if rows else ("", 0, 0)
print(json.dumps({
  "sessions": q("SELECT count(*) FROM session_nodes")[0][0],
  "bytes": sum(r[2] for r in rows),
  "largest_bytes": largest[2], "largest_lines": largest[1],
  "last_update_ms": q("SELECT coalesce(max(updated_at), 0) FROM session_nodes")[0][0],
  "schema": q("SELECT schema_version FROM schema_meta WHERE meta_key = 'primary'")[0][0],
  "compressed": q("SELECT count(*) FROM transcript_events WHERE event_zstd IS NOT NULL")[0][0],
  "events": q("SELECT count(*) FROM transcript_events")[0][0],
}))
`

func queryTruth(t *testing.T, path string) dbTruth {
	t.Helper()
	out, err := exec.Command("python3", "-c", truthScript, path).Output()
	if err != nil {
		t.Fatalf("python3 sqlite3: %v", err)
	}
	var d dbTruth
	if err := json.Unmarshal(out, &d); err != nil {
		t.Fatalf("%s: %v", out, err)
	}
	return d
}

func within(got, want, frac float64) bool {
	if want == 0 {
		return got == 0
	}
	return math.Abs(got-want) <= frac*want
}

// TestOpenclawSessionStore, on a real openclaw 2026.9.6: sessions made over
// RPC (sessions.create, chat.inject; no model key), then the sessions
// collector's counts and bytes against a direct read-only query of the
// database, while the gateway writes (within 10%) and once it is quiet
// (equal); the database's files; nothing the reader leaves behind; the
// process tree.
func TestOpenclawSessionStore(t *testing.T) {
	_, err := exec.LookPath("python3")
	require(t, err == nil, "python3 (its sqlite3 module is the reference reader)")
	g := startGateway(t, "openclaw", gatewayOpts{})
	rpc := dialOCRPC(t, g)
	const sessions = 6
	for i := range sessions {
		key := fmt.Sprintf("agent:main:e2e-%d", i)
		rpc.must("sessions.create", map[string]any{"key": key})
		for j := range i + 1 {
			rpc.must("chat.inject", map[string]any{"sessionKey": key, "message": fmt.Sprintf("message %d of %s: %s", j, key, strings.Repeat("é", 50*(j+1)))})
		}
	}
	// One large message, which openclaw may store compressed: its size
	// must be the uncompressed one.
	rpc.must("chat.inject", map[string]any{"sessionKey": "agent:main:e2e-0", "message": strings.Repeat("large message, compressible. ", 8000)})

	matches, _ := filepath.Glob(filepath.Join(g.Home, ".openclaw", "agents", "*", "agent", "openclaw-agent.sqlite"))
	if len(matches) != 1 {
		t.Fatalf("openclaw's agent databases: %v", matches)
	}
	dbPath := matches[0]
	agent := filepath.Base(filepath.Dir(filepath.Dir(dbPath)))
	for _, suffix := range []string{"", "-wal", "-shm"} {
		fi, err := os.Stat(dbPath + suffix)
		if err != nil {
			t.Fatalf("%s%s: %v", dbPath, suffix, err)
		}
		t.Logf("%s%s: %d bytes, %v", filepath.Base(dbPath), suffix, fi.Size(), fi.Mode())
	}

	env := []string{"HOME=" + g.Home, "TMPDIR=" + filepath.Join(g.Home, "tmp")}
	e := startExporter(t, env)
	labels := map[string]string{"agent": agent}
	metric := func(r scrapeResult, name string) float64 {
		v, ok := r.Value(name, labels)
		if !ok {
			t.Fatalf("%s{agent=%q} missing:\n%s", name, agent, r.Samples())
		}
		return v
	}
	compare := func(r scrapeResult, d dbTruth, frac float64, when string) {
		t.Helper()
		for _, c := range []struct {
			name string
			want int64
		}{
			{"clawdbot_session_store_sessions", d.Sessions},
			{"clawdbot_session_store_transcript_bytes", d.Bytes},
			{"clawdbot_session_store_largest_transcript_bytes", d.LargestBytes},
			{"clawdbot_session_store_largest_transcript_lines", d.LargestLines},
		} {
			if frac > 0 && c.name == "clawdbot_session_store_largest_transcript_lines" {
				continue // a few lines: 10% is less than one; bracketed below
			}
			if got := metric(r, c.name); !within(got, float64(c.want), frac) {
				t.Errorf("%s: %s = %v, the database says %d", when, c.name, got, c.want)
			}
		}
	}

	// Quiet: equal.
	r := e.scrape(t, "")
	d := queryTruth(t, dbPath)
	t.Logf("database: %+v; sessions metrics:\n%s", d, grep(r.Samples(), "clawdbot_session_store_", "clawdbot_process_"))
	if d.Sessions < sessions || d.Bytes <= 240000 {
		t.Fatalf("the RPCs did not make the sessions: %+v", d)
	}
	if v, _ := r.Value("clawdbot_exporter_collector_success", map[string]string{"collector": "sessions"}); v != 1 {
		t.Errorf("sessions collector failed")
	}
	compare(r, d, 0, "quiet")
	if got := metric(r, "clawdbot_session_store_last_update_timestamp_seconds"); got != float64(d.LastUpdateMs)/1000 {
		t.Errorf("last update %v, the database says %d ms", got, d.LastUpdateMs)
	}
	for name, want := range map[string]float64{
		"clawdbot_session_store_read_errors":         0,
		"clawdbot_session_store_permission_denied":   0,
		"clawdbot_session_store_scan_progress_ratio": 1,
		"clawdbot_session_store_schema_version":      float64(d.Schema),
	} {
		if got := metric(r, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if v, ok := r.Value("clawdbot_session_store_info", map[string]string{"agent": agent, "format": "sqlite"}); !ok || v != 1 {
		t.Errorf("session_store_info{format=sqlite} = %v (%v)", v, ok)
	}
	for _, f := range []string{"database", "wal", "shm"} {
		v, ok := r.Value("clawdbot_session_store_file_bytes", map[string]string{"agent": agent, "file": f})
		fi, err := os.Stat(dbPath + map[string]string{"database": "", "wal": "-wal", "shm": "-shm"}[f])
		if !ok || err != nil || v <= 0 || !within(v, float64(fi.Size()), 0.5) {
			t.Errorf("file_bytes{file=%s} = %v (%v); on disk %v", f, v, ok, fi)
		}
	}

	// While the gateway writes: within 10%.
	var stop atomic.Bool
	var wg sync.WaitGroup
	var injected atomic.Int64
	wg.Go(func() {
		for i := 0; !stop.Load(); i++ {
			key := fmt.Sprintf("agent:main:e2e-%d", i%sessions)
			if _, err := rpc.call("chat.inject", map[string]any{"sessionKey": key, "message": fmt.Sprintf("while scraped %d: %s", i, strings.Repeat("x", 500))}); err != nil {
				t.Errorf("chat.inject while scraped: %v", err)
				return
			}
			injected.Add(1)
		}
	})
	// Each scrape lies between the database before and after it (the
	// history only grows here), and within 10% of it.
	for range 5 {
		time.Sleep(300 * time.Millisecond)
		before := queryTruth(t, dbPath)
		r := e.scrape(t, "")
		after := queryTruth(t, dbPath)
		compare(r, after, 0.10, "while writing")
		for _, c := range []struct {
			name      string
			low, high int64
		}{
			{"clawdbot_session_store_sessions", before.Sessions, after.Sessions},
			{"clawdbot_session_store_transcript_bytes", before.Bytes, after.Bytes},
			{"clawdbot_session_store_largest_transcript_lines", before.LargestLines, after.LargestLines},
		} {
			if got := metric(r, c.name); got < float64(c.low) || got > float64(c.high) {
				t.Errorf("while writing: %s = %v, the database said %d before the scrape, %d after", c.name, got, c.low, c.high)
			}
		}
	}
	stop.Store(true)
	wg.Wait()
	if injected.Load() == 0 {
		t.Fatal("nothing was written while scraping")
	}
	r = e.scrape(t, "")
	d2 := queryTruth(t, dbPath)
	compare(r, d2, 0, fmt.Sprintf("after %d more events", injected.Load()))
	if d2.Bytes <= d.Bytes {
		t.Errorf("the writes did not grow the history: %d -> %d bytes", d.Bytes, d2.Bytes)
	}
	t.Logf("after the writes: %+v (%d compressed events)", d2, d2.Compressed)

	// The SQLite reader's cost in memory (issue 15): this exporter's RSS
	// against one beside the same gateway without the sessions collector.
	bare := startExporter(t, env, "--no-collector.sessions")
	for range 3 {
		bare.scrape(t, "")
		e.scrape(t, "")
	}
	t.Logf("exporter RSS with the SQLite reader %d KiB, without the sessions collector %d KiB",
		vmRSSKiB(t, e.cmd.Process.Pid), vmRSSKiB(t, bare.cmd.Process.Pid))

	// The process tree: the gateway and its children.
	n, _ := r.Value("clawdbot_process_tree_processes", nil)
	main, _ := r.Value("clawdbot_process_resident_memory_bytes", nil)
	tree, _ := r.Value("clawdbot_process_tree_resident_memory_bytes", nil)
	anon, _ := r.Value("clawdbot_process_tree_resident_memory_anon_bytes", nil)
	t.Logf("process tree: %v processes, %.0f MiB (anon %.0f MiB); the main process %.0f MiB", n, tree/(1<<20), anon/(1<<20), main/(1<<20))
	kids, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", g.Pid(), g.Pid()))
	t.Logf("children of %d: %q", g.Pid(), kids)
	// openclaw's gateway runs a spawn broker and a SQLite worker.
	if n < 3 || tree <= main || anon <= 0 || anon > tree {
		t.Errorf("tree: %v processes, %v bytes (anon %v), main %v; want the gateway and its two children", n, tree, anon, main)
	}
	promtoolCheck(t, r.Body)

	// Stopped cleanly, the gateway leaves the database alone (no -wal, no
	// -shm); the exporter still reports it, and creates nothing beside it.
	g.Stop(t)
	for _, suffix := range []string{"-wal", "-shm"} {
		if _, err := os.Stat(dbPath + suffix); err == nil {
			t.Logf("%s%s left by the stopped gateway", filepath.Base(dbPath), suffix)
		}
	}
	before := dirListing(t, filepath.Dir(dbPath))
	r = e.scrape(t, "")
	if after := dirListing(t, filepath.Dir(dbPath)); after != before {
		t.Errorf("the exporter changed the database directory:\nbefore %s\nafter  %s", before, after)
	}
	// (Python's reader may create a -shm now: it runs after the check.)
	compare(r, queryTruth(t, dbPath), 0, "gateway stopped")
}

func dirListing(t *testing.T, dir string) string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil {
			continue
		}
		out = append(out, fmt.Sprintf("%s:%d:%d", e.Name(), fi.Size(), fi.ModTime().UnixNano()))
	}
	return strings.Join(out, " ")
}

func vmRSSKiB(t *testing.T, pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			var kib int
			_, _ = fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kib)
			return kib
		}
	}
	return 0
}
