package sessionstore

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	_ "modernc.org/sqlite" // the pure-Go SQLite driver ("sqlite"): the binary is built with CGO_ENABLED=0
)

// openclaw keeps an agent's sessions in SQLite (docs/local-state.md,
// "openclaw session store"): <stateDir>/agents/<agentId>/agent/openclaw-agent.sqlite
// with -wal and -shm beside it, owned and written by the running gateway.
// The reader below never writes to it: the database is opened read-only
// (mode=ro) with query_only, so no statement can change it, nor the schema,
// and a read-only connection cannot checkpoint. It honours the WAL (the
// connection maps the -shm the gateway maintains), so it sees every committed
// write; only when neither -wal nor -shm exists (the gateway closed the
// database cleanly: everything is in the main file) is it opened
// immutable, because a read-only open would otherwise create them.

const (
	// SQLiteName is openclaw's per-agent database, under <agent>/agent/.
	SQLiteName = "openclaw-agent.sqlite"

	// busyTimeout bounds how long a query waits for a lock the gateway
	// holds; WAL readers rarely wait at all.
	busyTimeout = 100 * time.Millisecond
	// chunkRows is how many transcript rows (by rowid) one read transaction
	// sums up: a first scan of a large store is many short transactions,
	// never one long one that would hold back the gateway's checkpoints.
	chunkRows = 50000
	// recheckEvery is how long a result stands while no file changed.
	recheckEvery = time.Minute
	// fullRescanEvery bounds how long rows deleted below the watermark
	// (a rewind, a purge) can stay counted: a full recount runs then, in the
	// background, while the last result is still served.
	fullRescanEvery = 15 * time.Minute
	// jobTimeout bounds one background read.
	jobTimeout = 5 * time.Minute
	// windowBatch is how many windows one read transaction of a full
	// scan sums up.
	windowBatch = 500
	// maxScanConns bounds the connections of a first scan.
	maxScanConns = 4
	// maxArchiveFiles bounds the listing of an agent's sessions dir.
	maxArchiveFiles = 10000
)

// scanHook, when set (by tests), runs at the start of each background read.
var scanHook func()

// SupportedSchemas are the schema_meta.schema_version values this reader
// knows the tables of; any other is a read error, not a guess.
var SupportedSchemas = map[int64]bool{23: true}

// StoreFiles are an openclaw store's files on disk: what fills the volume.
type StoreFiles struct {
	Database, WAL, SHM, Archive             int64
	HaveDatabase, HaveWAL, HaveSHM, HaveArc bool
}

// sqliteStore is one openclaw database and what the reader remembers of it.
type sqliteStore struct {
	path       string // the database
	archiveDir string // <agent>/sessions: published transcript archives
	logger     *slog.Logger

	mu       sync.Mutex
	job      *sqliteJob    // the running read, nil when none
	last     *sqliteResult // the last finished read
	denied   bool          // permission denied was logged
	archive  archiveCache  // used by read, which one Scan at a time calls
	progress atomic.Int64  // running job's progress, in 1/1e6
	jobs     atomic.Int64  // reads started, for tests

	// state is the incremental state; only the running job uses it.
	state sqliteState
}

type sqliteJob struct {
	done chan struct{}
}

// fileKey tells whether the database changed: every commit appends to the
// WAL, a checkpoint rewrites the main file.
type fileKey struct {
	db, wal fileID
}

type sqliteResult struct {
	key     fileKey
	at      time.Time
	err     error
	denied  bool
	schema  int64
	summary storeSummary
}

type storeSummary struct {
	sessions        int
	lastUpdateMs    int64
	transcriptBytes int64
	largestBytes    int64
	largestLines    int64
}

// sqliteState is what a read keeps so that the next one reads only the
// rows added since: every current session window's sums, up to watermark
// (the largest rowid of transcript_events counted).
type sqliteState struct {
	dev, ino  uint64
	watermark int64
	windows   map[string]windowAgg // by session_id: the current windows only
	idsJSON   string               // session_nodes.current_session_id, as read
	lastFull  time.Time
}

type windowAgg struct {
	events, bytes, maxSeq int64
}

func newSQLiteStore(path, archiveDir string, logger *slog.Logger) *sqliteStore {
	return &sqliteStore{path: path, archiveDir: archiveDir, logger: logger}
}

// read reports the store. It starts a background read when the files
// changed (or recheckEvery passed) and waits for it until wait ends; a read
// that takes longer goes on, and this scrape reports the last finished
// result (none on the first scan) with the running read's progress.
func (st *sqliteStore) read(wait context.Context, agent string) AgentSessions {
	out := AgentSessions{Agent: agent, Format: "sqlite", Progress: 1}
	files, key, err := st.statFiles()
	out.Files = &files
	if err != nil {
		out.Errors++
		out.NoCounts = true
		out.PermissionDenied = errors.Is(err, fs.ErrPermission)
		st.noteDenied(out.PermissionDenied, err)
		return out
	}
	st.mu.Lock()
	if st.job == nil && (st.last == nil || st.last.key != key || time.Since(st.last.at) > recheckEvery) {
		st.startLocked(key)
	}
	job := st.job
	st.mu.Unlock()
	if job != nil {
		select {
		case <-job.done:
		case <-wait.Done():
		}
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.job != nil {
		out.Progress = float64(st.progress.Load()) / 1e6
	}
	res := st.last
	if res == nil {
		out.NoCounts = true // the first scan is still running
		return out
	}
	out.SchemaVersion = res.schema
	if res.err != nil {
		out.Errors++
		out.NoCounts = true
		out.PermissionDenied = res.denied
		st.noteDeniedLocked(res.denied, res.err)
		return out
	}
	st.denied = false
	s := res.summary
	out.Sessions = s.sessions
	out.TranscriptBytes = s.transcriptBytes
	out.LargestBytes = s.largestBytes
	out.LargestLines = s.largestLines
	if s.lastUpdateMs > 0 {
		out.LastUpdate = time.UnixMilli(s.lastUpdateMs)
	}
	return out
}

func (st *sqliteStore) noteDenied(denied bool, err error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.noteDeniedLocked(denied, err)
}

// noteDeniedLocked logs permission denied once until a read succeeds: the
// files are 0600, and the exporter must run as the gateway's user or root.
func (st *sqliteStore) noteDeniedLocked(denied bool, err error) {
	if !denied || st.denied {
		return
	}
	st.denied = true
	if st.logger != nil {
		st.logger.Warn("cannot read openclaw's session database: run the exporter as the gateway's user (or root)",
			"path", st.path, "err", err)
	}
}

// statFiles stats the database, its WAL and -shm, and the archives.
func (st *sqliteStore) statFiles() (StoreFiles, fileKey, error) {
	var files StoreFiles
	var key fileKey
	fi, err := os.Stat(st.path)
	if err != nil {
		return files, key, err
	}
	if !fi.Mode().IsRegular() {
		return files, key, fmt.Errorf("%s: not a regular file (%s)", st.path, fi.Mode().Type())
	}
	files.HaveDatabase, files.Database, key.db = true, fi.Size(), idOf(fi)
	if fi, err := os.Stat(st.path + "-wal"); err == nil {
		files.HaveWAL, files.WAL, key.wal = true, fi.Size(), idOf(fi)
	}
	if fi, err := os.Stat(st.path + "-shm"); err == nil {
		files.HaveSHM, files.SHM = true, fi.Size()
	}
	files.Archive, files.HaveArc = st.archive.size(st.archiveDir)
	return files, key, nil
}

// startLocked starts a background read; st.mu is held.
func (st *sqliteStore) startLocked(key fileKey) {
	job := &sqliteJob{done: make(chan struct{})}
	st.job = job
	st.progress.Store(0)
	st.jobs.Add(1)
	hook := scanHook
	go func() {
		res := &sqliteResult{key: key}
		defer func() {
			if p := recover(); p != nil {
				// A panic in the driver must not end the exporter; the
				// incremental state may be half-updated: start over.
				res.err = fmt.Errorf("panic reading %s: %v\n%s", st.path, p, debug.Stack())
				st.state = sqliteState{}
			}
			res.at = time.Now()
			st.mu.Lock()
			st.last, st.job = res, nil
			st.mu.Unlock()
			close(job.done)
		}()
		if hook != nil {
			hook()
		}
		ctx, cancel := context.WithTimeout(context.Background(), jobTimeout)
		defer cancel()
		res.schema, res.summary, res.err = st.scan(ctx, key)
		res.denied = errors.Is(res.err, fs.ErrPermission)
	}()
}

// dsn opens path read-only, honouring the WAL, with query_only and a busy
// timeout. immutable is only for a database without -wal and -shm (see
// above).
func dsn(path string, immutable bool) string {
	q := "mode=ro&_pragma=query_only(1)&_pragma=busy_timeout(" + fmt.Sprint(busyTimeout.Milliseconds()) + ")&_pragma=temp_store(memory)"
	if immutable {
		q += "&immutable=1"
	}
	if abs, err := filepath.Abs(path); err == nil {
		path = abs // a relative path would be read as the URI's authority
	}
	u := url.URL{Scheme: "file", Path: path, RawQuery: q}
	return u.String()
}

// scan reads the database once: sessions from session_nodes, transcript
// sums from the rows of transcript_events added since the last scan.
func (st *sqliteStore) scan(ctx context.Context, key fileKey) (int64, storeSummary, error) {
	var sum storeSummary
	// No -shm: a read-only open would create -wal and -shm (owned by the
	// exporter's user) in the gateway's directory. Without a WAL the main
	// file holds every commit, and immutable opens it without them.
	_, walErr := os.Lstat(st.path + "-wal")
	_, shmErr := os.Lstat(st.path + "-shm")
	immutable := isMissing(walErr) && isMissing(shmErr)
	if !immutable && isMissing(shmErr) {
		return 0, sum, fmt.Errorf("%s: a WAL without its -shm; not opened, as that would create it", st.path)
	}
	// The driver opens a URI with SQLITE_OPEN_URI; mode=ro overrides its
	// read-write flags. Check readability first: SQLite's "unable to open
	// database file" says nothing about permissions.
	check := []string{st.path}
	if !immutable {
		check = append(check, st.path+"-shm")
	}
	for _, p := range check {
		f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK, 0)
		if err != nil {
			return 0, sum, err
		}
		_ = f.Close()
	}
	db, err := sql.Open("sqlite", dsn(st.path, immutable))
	if err != nil {
		return 0, sum, err
	}
	defer func() { _ = db.Close() }()
	db.SetMaxOpenConns(1)
	conn, err := db.Conn(ctx)
	if err != nil {
		return 0, sum, err
	}
	defer func() { _ = conn.Close() }()

	// One short read transaction: the schema, the sessions, and how far
	// transcript_events goes.
	tx, err := conn.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return 0, sum, err
	}
	defer func() { _ = tx.Rollback() }()
	var schema int64
	if err := tx.QueryRowContext(ctx, `SELECT schema_version FROM schema_meta WHERE meta_key = 'primary'`).Scan(&schema); err != nil {
		return 0, sum, fmt.Errorf("reading schema_meta: %w", err)
	}
	if !SupportedSchemas[schema] {
		return schema, sum, fmt.Errorf("unknown openclaw agent schema version %d (known: %v)", schema, supportedList())
	}
	// One pass over the index on current_session_id; max(updated_at) from
	// its own index.
	var idsJSON string
	if err := tx.QueryRowContext(ctx, `SELECT count(*), coalesce(json_group_array(current_session_id), '[]'),
		(SELECT coalesce(max(updated_at), 0) FROM session_nodes) FROM session_nodes`).Scan(&sum.sessions, &idsJSON, &sum.lastUpdateMs); err != nil {
		return schema, sum, fmt.Errorf("reading session_nodes: %w", err)
	}
	var top int64
	if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(rowid), 0) FROM transcript_events`).Scan(&top); err != nil {
		return schema, sum, fmt.Errorf("reading transcript_events: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return schema, sum, err
	}

	s := &st.state
	full := s.windows == nil || s.dev != key.db.dev || s.ino != key.db.ino || top < s.watermark ||
		time.Since(s.lastFull) > fullRescanEvery
	// The same list of current windows as last time (the common case: a
	// session grew) needs no decoding.
	var current []string
	if full || idsJSON != s.idsJSON {
		if err := json.Unmarshal([]byte(idsJSON), &current); err != nil {
			return schema, sum, fmt.Errorf("reading session_nodes: %w", err)
		}
	}
	next := s.windows
	switch {
	case full:
		// Every current window through the (session_id, seq) primary key,
		// in batches of short transactions; the rows of windows that are no
		// longer current are never read.
		next = make(map[string]windowAgg, len(current))
		todo := make([]string, 0, len(current))
		for _, id := range current {
			if _, dup := next[id]; !dup {
				next[id] = windowAgg{}
				todo = append(todo, id)
			}
		}
		sort.Strings(todo) // index order
		if err := st.sumAll(ctx, db, conn, todo, top, next); err != nil {
			return schema, sum, err
		}
	default:
		// The rows added since the last read, of the current windows.
		delta := map[string]windowAgg{}
		members := s.windows
		if current != nil {
			members = make(map[string]windowAgg, len(current))
			for _, id := range current {
				members[id] = windowAgg{}
			}
		}
		for lo := s.watermark; lo < top; lo += chunkRows {
			hi := min(lo+chunkRows, top)
			if err := sumRows(ctx, conn, lo, hi, members, delta); err != nil {
				return schema, sum, err
			}
			st.progress.Store((hi - s.watermark) * 1e6 / max(top-s.watermark, 1))
		}
		if current != nil {
			// The list changed: drop windows that are no longer current,
			// and count the rows a newly current one already had.
			next = make(map[string]windowAgg, len(current))
			var missing []string
			for id := range members {
				if old, ok := s.windows[id]; ok {
					next[id] = old
				} else {
					next[id] = windowAgg{}
					missing = append(missing, id)
				}
			}
			sort.Strings(missing)
			for i := 0; i < len(missing); i += windowBatch {
				if err := sumWindows(ctx, conn, missing[i:min(i+windowBatch, len(missing))], s.watermark, next); err != nil {
					return schema, sum, err
				}
			}
		}
		// Nothing fails from here on: next may be the old map itself.
		for id, d := range delta {
			w := next[id]
			next[id] = windowAgg{events: w.events + d.events, bytes: w.bytes + d.bytes, maxSeq: max(w.maxSeq, d.maxSeq)}
		}
	}
	lastFull := s.lastFull
	if full {
		lastFull = time.Now()
	}
	*s = sqliteState{dev: key.db.dev, ino: key.db.ino, watermark: top, windows: next, idsJSON: idsJSON, lastFull: lastFull}
	// The largest window; ties go to the smallest id, so that the result
	// does not depend on map order.
	var largestID string
	first := true
	for id, w := range next {
		sum.transcriptBytes += w.bytes
		if first || w.bytes > sum.largestBytes || w.bytes == sum.largestBytes && id < largestID {
			sum.largestBytes, sum.largestLines, largestID, first = w.bytes, w.events, id, false
		}
	}
	st.progress.Store(1e6)
	return schema, sum, nil
}

func supportedList() []int64 {
	var out []int64
	for v := range SupportedSchemas {
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// sumAll sums the windows ids up to rowid upto into next, in batches,
// with one connection per CPU (up to maxScanConns): a first scan reads
// every row of every current window, and is bound by the page reads.
func (st *sqliteStore) sumAll(ctx context.Context, db *sql.DB, first *sql.Conn, ids []string, upto int64, next map[string]windowAgg) error {
	workers := max(min(runtime.GOMAXPROCS(0), maxScanConns, (len(ids)+windowBatch-1)/windowBatch), 1)
	db.SetMaxOpenConns(workers)
	var (
		nextBatch atomic.Int64
		done      atomic.Int64
		mu        sync.Mutex
		firstErr  error
		wg        sync.WaitGroup
		panicked  atomic.Pointer[string]
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for w := range workers {
		wg.Go(func() {
			defer func() {
				if p := recover(); p != nil {
					msg := fmt.Sprintf("%v\n%s", p, debug.Stack())
					panicked.CompareAndSwap(nil, &msg)
					cancel()
				}
			}()
			conn := first
			if w > 0 {
				c, err := db.Conn(ctx)
				if err != nil {
					mu.Lock()
					firstErr = cmp.Or(firstErr, err)
					mu.Unlock()
					cancel()
					return
				}
				defer func() { _ = c.Close() }()
				conn = c
			}
			local := map[string]windowAgg{}
			for {
				i := int(nextBatch.Add(1)-1) * windowBatch
				if i >= len(ids) || ctx.Err() != nil {
					break
				}
				batch := ids[i:min(i+windowBatch, len(ids))]
				if err := sumWindows(ctx, conn, batch, upto, local); err != nil {
					mu.Lock()
					firstErr = cmp.Or(firstErr, err)
					mu.Unlock()
					cancel()
					break
				}
				st.progress.Store(done.Add(int64(len(batch))) * 1e6 / int64(len(ids)))
			}
			mu.Lock()
			for id, w := range local {
				next[id] = w
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	if p := panicked.Load(); p != nil {
		panic("session database scan worker: " + *p)
	}
	return firstErr
}

// eventSize is an event's uncompressed size without reading it:
// event_utf8_bytes for a compressed event, else the byte length of its
// JSON (octet_length does not load overflow pages). Never decompressed.
const eventSize = `coalesce(event_utf8_bytes, octet_length(event_json), 0)`

// sumRows adds the transcript rows with rowid in (lo, hi] of the current
// windows to delta, in one read transaction.
func sumRows(ctx context.Context, conn *sql.Conn, lo, hi int64, current map[string]windowAgg, delta map[string]windowAgg) error {
	tx, err := conn.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	rows, err := tx.QueryContext(ctx, `SELECT session_id, count(*), sum(`+eventSize+`), max(seq)
		FROM transcript_events WHERE rowid > ? AND rowid <= ? GROUP BY session_id`, lo, hi)
	if err != nil {
		return fmt.Errorf("reading transcript_events: %w", err)
	}
	defer func() { _ = rows.Close() }()
	for rows.Next() {
		var id string
		var w windowAgg
		if err := rows.Scan(&id, &w.events, &w.bytes, &w.maxSeq); err != nil {
			return err
		}
		if _, ok := current[id]; !ok {
			continue
		}
		d := delta[id]
		delta[id] = windowAgg{events: d.events + w.events, bytes: d.bytes + w.bytes, maxSeq: max(d.maxSeq, w.maxSeq)}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	return tx.Commit()
}

// sumWindows adds the rows up to rowid upto of each window in ids to next,
// through the (session_id, seq) primary key.
func sumWindows(ctx context.Context, conn *sql.Conn, ids []string, upto int64, next map[string]windowAgg) error {
	tx, err := conn.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	stmt, err := tx.PrepareContext(ctx, `SELECT count(*), coalesce(sum(`+eventSize+`), 0), coalesce(max(seq), 0)
		FROM transcript_events WHERE session_id = ? AND rowid <= ?`)
	if err != nil {
		return fmt.Errorf("reading transcript_events: %w", err)
	}
	defer func() { _ = stmt.Close() }()
	for _, id := range ids {
		var w windowAgg
		if err := stmt.QueryRowContext(ctx, id, upto).Scan(&w.events, &w.bytes, &w.maxSeq); err != nil {
			return fmt.Errorf("reading transcript_events: %w", err)
		}
		d := next[id]
		next[id] = windowAgg{events: d.events + w.events, bytes: d.bytes + w.bytes, maxSeq: max(d.maxSeq, w.maxSeq)}
	}
	return tx.Commit()
}

// archiveCache sums the regular files of the agent's sessions dir, where
// openclaw publishes transcript archives (a migrated clawdbot store's
// sessions.json, *.jsonl and lock files there are not archives); it lists the directory again only
// when its mtime changes or recheckEvery passed.
type archiveCache struct {
	dirID fileID
	at    time.Time
	total int64
	ok    bool
}

func (a *archiveCache) size(dir string) (int64, bool) {
	fi, err := os.Stat(dir)
	if err != nil || !fi.IsDir() {
		*a = archiveCache{}
		return 0, false
	}
	id := idOf(fi)
	if a.ok && a.dirID == id && time.Since(a.at) < recheckEvery {
		return a.total, true
	}
	d, err := os.OpenFile(dir, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_DIRECTORY, 0)
	if err != nil {
		*a = archiveCache{}
		return 0, false
	}
	defer d.Close()
	names, _ := d.Readdirnames(maxArchiveFiles)
	var total int64
	for _, n := range names {
		if n == sessionStoreName || strings.HasSuffix(n, transcriptSuffix) || strings.HasSuffix(n, ".lock") {
			continue
		}
		if fi, err := os.Lstat(filepath.Join(dir, n)); err == nil && fi.Mode().IsRegular() {
			total += fi.Size()
		}
	}
	*a = archiveCache{dirID: id, at: time.Now(), total: total, ok: true}
	return total, true
}
