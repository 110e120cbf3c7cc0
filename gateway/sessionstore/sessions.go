package sessionstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/clawdbot-exporter/clawdbot_exporter/internal/fileio"
)

// Session stores on disk (docs/local-state.md#sessions): clawdbot keeps, per agent,
// <stateDir>/agents/<agentId>/sessions/sessions.json and one JSONL
// transcript per session beside it. openclaw keeps sessions in SQLite
// (<agentId>/agent/openclaw-agent.sqlite, read by sqlite.go); an agent with
// that database is reported from it, even when a sessions.json migrated from
// clawdbot is still there. An agent with neither is not reported.

const (
	// StoreLimit caps how much of a sessions.json is read.
	StoreLimit = 64 << 20

	sessionStoreName = "sessions.json"
	transcriptSuffix = ".jsonl"
	// tailLen bytes before the counted end of a transcript are kept and
	// compared when it grows: a file rewritten in place (same inode, more
	// bytes) is recounted instead of being taken for an append.
	tailLen   = 64
	readChunk = 256 << 10
	// maxWorkers bounds how many transcripts are read at once.
	maxWorkers = 8
)

// AgentSessions sums up one agent's session store.
type AgentSessions struct {
	Agent           string
	Sessions        int       // entries in sessions.json
	TranscriptBytes int64     // sum of all transcript sizes
	LargestBytes    int64     // largest transcript
	LargestLines    int64     // newline count of the largest transcript (the "history" length)
	LastUpdate      time.Time // newest updatedAt in sessions.json (zero if none)
	Errors          int       // files that could not be read/parsed

	// Format is "" for clawdbot's sessions.json, "sqlite" for openclaw.
	Format string
	// NoCounts: the session numbers above are unknown (an openclaw store
	// whose first scan still runs, or that could not be read): export none.
	NoCounts bool
	// PermissionDenied: the store's files are not readable by the exporter.
	PermissionDenied bool
	// SchemaVersion is an openclaw database's schema_meta.schema_version.
	SchemaVersion int64
	// Progress is the share of a running openclaw read that is done; 1 when
	// none runs.
	Progress float64
	// Files are an openclaw store's file sizes.
	Files *StoreFiles
}

// ScanStats are a scanner's cumulative I/O counters.
type ScanStats struct {
	BytesRead   int64 // transcript and sessions.json bytes read
	FilesOpened int64
	// FilesChecked counts transcripts looked at (an lstat each): all of
	// them in a full scan, only the changed ones between full scans.
	FilesChecked int64
}

// Scanner walks a state directory's session stores. It remembers
// what it counted, per file, so that a scan reads only what changed since
// the last one: an unchanged transcript costs one lstat, a grown one the
// appended bytes. It is safe for concurrent use; scans run one at a time.
type Scanner struct {
	sem        chan struct{} // held by the running Scan; guards the fields below
	dirs       map[string]map[string]*agentCache
	bufs       [][]byte
	gen        uint64
	storeLimit int64

	bytesRead    atomic.Int64
	filesOpened  atomic.Int64
	filesChecked atomic.Int64

	// sqlite are the openclaw databases, by path.
	sqlite map[string]*sqliteStore
	logger *slog.Logger

	// watch tells what changed between scans; nil until the first scan,
	// and for good when noWatch is set (no inotify, Close, tests).
	watch   *watcher
	noWatch bool
}

type agentCache struct {
	store *storeState
	files map[string]*fileState // by name relative to the sessions dir
	// names are the transcripts the last scan looked at, sorted; recheck
	// those of them a scan between full ones looks at even without an
	// event: files that failed, symlinks and hard links (a change through
	// another name makes no event here), files in subdirectories (not
	// watched).
	names, recheck []string
	// last is the agent's last result, ok when that scan read all of it.
	last AgentSessions
	ok   bool
}

// fileID is what tells whether a file changed.
type fileID struct {
	dev, ino uint64
	size     int64
	mtime    int64
}

type storeState struct {
	id         fileID
	bad        bool // unparseable: counted as an error until it changes
	sessions   int
	lastUpdate time.Time
	// extra are transcripts named by sessionFile that a listing of the
	// sessions dir for *.jsonl does not find (in a subdirectory, or named
	// otherwise).
	extra []string
}

type fileState struct {
	id      fileID // fstat when last read
	counted int64  // bytes counted; < id.size when a read was cut short
	lines   int64
	tail    [tailLen]byte
	tailN   int
	gen     uint64 // the last scan that saw it
	alias   bool   // a symlink, or a file with more than one link
}

// watchByDefault: scanners use change notification; tests turn it off.
var watchByDefault = true

// NewScanner returns a scanner with an empty cache. Close it when done
// with it: it holds an inotify instance.
func NewScanner() *Scanner {
	return &Scanner{
		noWatch:    !watchByDefault,
		sem:        make(chan struct{}, 1),
		dirs:       map[string]map[string]*agentCache{},
		storeLimit: StoreLimit,
		sqlite:     map[string]*sqliteStore{},
	}
}

// SetLogger sets where the scanner logs what an operator must act on (a
// database the exporter may not read). Call it before the first Scan.
func (s *Scanner) SetLogger(l *slog.Logger) { s.logger = l }

// Stats returns the scanner's I/O counters since it was made.
func (s *Scanner) Stats() ScanStats {
	return ScanStats{BytesRead: s.bytesRead.Load(), FilesOpened: s.filesOpened.Load(), FilesChecked: s.filesChecked.Load()}
}

// Scan reports every agent under stateDir that has a sessions.json, sorted
// by agent. A missing state or agents directory yields nothing and no error;
// unreadable files are counted in Errors. When ctx ends first, Scan returns
// the agents it finished with ctx's error; what it read is kept, so the next
// scan goes on from there. Between full scans (at most fullCheckEvery apart)
// a scan looks only at what inotify said changed (watch.go).
func (s *Scanner) Scan(ctx context.Context, stateDir string) ([]AgentSessions, error) {
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-s.sem }()
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	agentsDir := filepath.Join(stateDir, "agents")
	w := s.watcher()
	var ws *dirtyState
	if w != nil {
		w.drain()
		ws = w.state(stateDir)
	}
	if ws.fresh(time.Now()) && s.dirs[stateDir] != nil {
		out, err := s.scanAgents(ctx, stateDir, agentsDir, ws.agentNames, ws.takeDirty())
		if err != nil {
			return out, err
		}
		return s.scanSQLite(ctx, agentsDir, ws.agentNames, out), nil
	}

	// A full scan. The watches go up before the dirs are read: a change
	// made while this scan reads is seen by the next one.
	if ws != nil {
		ws.beginFull()
		w.add(ws, watched{stateDir: stateDir, kind: watchAgents, path: agentsDir})
	}
	names, err := readDirNames(agentsDir)
	if ws != nil && err == nil {
		for _, name := range names {
			for _, wd := range agentWatches(stateDir, agentsDir, name) {
				w.add(ws, wd)
			}
		}
	}
	if ws != nil {
		defer func() { w.endFull(stateDir, ws, names, err == nil && ctx.Err() == nil) }()
	}
	if isMissing(err) {
		delete(s.dirs, stateDir)
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out, err := s.scanAgents(ctx, stateDir, agentsDir, names, nil)
	if err != nil {
		return out, err
	}
	return s.scanSQLite(ctx, agentsDir, names, out), nil
}

// watcher is the scanner's inotify watcher, made on first use; nil when
// there is none (disabled, or inotify could not be set up).
func (s *Scanner) watcher() *watcher {
	if s.watch == nil && !s.noWatch {
		w, err := newWatcher()
		if err != nil {
			s.noWatch = true
			if s.logger != nil {
				s.logger.Debug("no change notification for session stores: every scan is a full one", "err", err)
			}
			return nil
		}
		s.watch = w
	}
	return s.watch
}

// Close releases the scanner's watcher; a scan after Close is a full scan.
func (s *Scanner) Close() error {
	s.sem <- struct{}{}
	defer func() { <-s.sem }()
	s.watch.close()
	s.watch, s.noWatch = nil, true
	return nil
}

// scanAgents scans the JSON stores of the agents in names. dirty nil means
// all of each; otherwise it is what changed since the last scan, and an
// agent nothing changed in keeps its last result.
func (s *Scanner) scanAgents(ctx context.Context, stateDir, agentsDir string, names []string, dirty map[string]*agentDirty) ([]AgentSessions, error) {
	cache := s.dirs[stateDir]
	if cache == nil {
		cache = map[string]*agentCache{}
		s.dirs[stateDir] = cache
	}
	workers := min(runtime.GOMAXPROCS(0), maxWorkers)
	for len(s.bufs) < workers {
		s.bufs = append(s.bufs, nil)
	}

	// Open each agent's sessions dir, read its store and list it; then look
	// at every transcript of every agent with one pool of workers. Only this
	// goroutine writes the cache, while no worker reads it.
	agents := make([]*agentScan, 0, len(names))
	var opening []*agentScan
	for _, name := range names {
		a := &agentScan{dir: filepath.Join(agentsDir, name, "sessions"), res: AgentSessions{Agent: name}}
		ac := cache[name]
		if ac != nil {
			a.old = ac.store
		}
		if dirty != nil {
			ad := dirty[name]
			switch {
			case ad == nil && ac == nil:
				continue // had no store, and nothing changed
			case ad != nil && ad.all, ac == nil, !ac.ok:
				// The agent's dir changed: all of it.
			case ad == nil && len(ac.recheck) == 0:
				a.done, a.export, a.reuse, a.res = true, true, true, ac.last
			default:
				a.partial = map[string]bool{}
				for _, n := range ac.recheck {
					a.partial[n] = true
				}
				if ad != nil {
					for n := range ad.files {
						a.partial[n] = true
					}
				}
				a.prev = ac.names
			}
		}
		agents = append(agents, a)
		if !a.reuse {
			opening = append(opening, a)
		}
	}
	parallel(ctx, workers, len(opening), func(_, i int) { opening[i].open(s) })
	var jobs []fileJob
	for _, a := range agents {
		defer a.close()
		if !a.done || a.reuse {
			continue // ctx ended, or nothing to read
		}
		if !a.export {
			delete(cache, a.res.Agent)
			continue
		}
		ac := cache[a.res.Agent]
		if ac == nil {
			ac = &agentCache{files: map[string]*fileState{}}
			cache[a.res.Agent] = ac
		}
		ac.store = a.store
		a.files = ac.files
		a.results = make([]fileResult, len(a.names))
		for i, name := range a.names {
			if old := a.files[name]; a.partial != nil && !a.partial[name] && old != nil {
				a.results[i] = fileResult{state: old, done: true, alias: old.alias}
				continue
			}
			jobs = append(jobs, fileJob{a, i})
		}
	}
	s.gen++
	parallel(ctx, workers, len(jobs), func(w, i int) {
		a, j := jobs[i].agent, jobs[i].index
		r := s.scanFile(ctx, a.root, a.names[j], a.files[a.names[j]], &s.bufs[w])
		r.done = true
		a.results[j] = r
	})

	var out []AgentSessions
	seen := map[string]bool{}
	for _, name := range names {
		seen[name] = true
	}
	for _, a := range agents {
		if !a.done {
			continue
		}
		if a.export && !a.reuse {
			s.collect(a)
			if ac := cache[a.res.Agent]; ac != nil {
				a.remember(ac)
			}
		}
		if a.export {
			out = append(out, a.res)
		}
	}
	if err := ctx.Err(); err != nil {
		for _, a := range agents {
			if ac := cache[a.res.Agent]; ac != nil && !a.reuse {
				ac.ok = false // cut short: read it all next time
			}
		}
		return out, err
	}
	for agent := range cache {
		if !seen[agent] {
			delete(cache, agent)
		}
	}
	return out, nil
}

// scanSQLite reads the agents' openclaw databases and puts their results in
// place of (or beside) the JSON stores' ones. Every read starts at once; the
// scan waits for them only until waitUntil, so a slow first scan never
// takes the scrape past its deadline.
func (s *Scanner) scanSQLite(ctx context.Context, agentsDir string, names []string, out []AgentSessions) []AgentSessions {
	type found struct {
		name  string
		store *sqliteStore
		res   AgentSessions
	}
	var dbs []*found
	keep := map[string]bool{}
	for _, name := range names {
		path := filepath.Join(agentsDir, name, "agent", SQLiteName)
		if _, err := os.Lstat(path); err != nil && !errors.Is(err, fs.ErrPermission) {
			continue
		}
		st := s.sqlite[path]
		if st == nil {
			st = newSQLiteStore(path, filepath.Join(agentsDir, name, "sessions"), s.logger)
			s.sqlite[path] = st
		}
		keep[path] = true
		dbs = append(dbs, &found{name: name, store: st})
	}
	for path := range s.sqlite {
		if !keep[path] && strings.HasPrefix(path, agentsDir+string(filepath.Separator)) {
			delete(s.sqlite, path)
		}
	}
	if len(dbs) == 0 {
		return out
	}
	wait, cancel := waitContext(ctx)
	defer cancel()
	parallel(context.Background(), len(dbs), len(dbs), func(_, i int) {
		dbs[i].res = dbs[i].store.read(wait, dbs[i].name)
	})
	byAgent := map[string]int{}
	for i, a := range out {
		byAgent[a.Agent] = i
	}
	for _, d := range dbs {
		if i, ok := byAgent[d.name]; ok {
			out[i] = d.res
			continue
		}
		out = append(out, d.res)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Agent < out[j].Agent })
	return out
}

// waitContext ends a quarter of ctx's remaining time before ctx does (at
// least 10 ms before), leaving the scrape time to export what it has.
func waitContext(ctx context.Context) (context.Context, context.CancelFunc) {
	deadline, ok := ctx.Deadline()
	if !ok {
		return context.WithCancel(ctx)
	}
	margin := max(time.Until(deadline)/4, 10*time.Millisecond)
	return context.WithDeadline(ctx, deadline.Add(-margin))
}

// agentScan is one agent's part of a scan.
type agentScan struct {
	dir    string
	old    *storeState
	done   bool // open ran
	export bool // has a sessions.json (read or not)
	// reuse: nothing changed, res is the last result. partial: only these
	// names changed; prev are the names of the last scan, listed in place
	// of the dir.
	reuse   bool
	partial map[string]bool
	prev    []string
	listErr bool
	root    *os.Root
	store   *storeState
	names   []string
	files   map[string]*fileState // the cache's
	// results are the workers', by index in names.
	results []fileResult
	res     AgentSessions
}

type fileJob struct {
	agent *agentScan
	index int
}

// open opens the agent's sessions dir, reads its store and lists it.
func (a *agentScan) open(s *Scanner) {
	a.done = true
	// os.OpenRoot opens without O_DIRECTORY, and would block on a FIFO;
	// "/." makes the kernel refuse anything but a directory first.
	root, err := os.OpenRoot(a.dir + string(filepath.Separator) + ".")
	if isMissing(err) {
		return
	}
	a.export = true
	if err != nil {
		a.res.Errors++
		return
	}
	a.root = root
	store, err := s.readStore(root, a.dir, a.old)
	if isMissing(err) {
		a.export = false
		return
	}
	a.store = store
	switch {
	case err != nil || store.bad:
		a.res.Errors++
	default:
		a.res.Sessions = store.sessions
		a.res.LastUpdate = store.lastUpdate
	}
	if a.partial != nil {
		a.names = a.prev
		added := false
		for n := range a.partial {
			if strings.HasSuffix(n, transcriptSuffix) && !strings.ContainsRune(n, filepath.Separator) && !known(a.prev, n) {
				if !added {
					a.names = slices.Clone(a.prev)
				}
				a.names, added = append(a.names, n), true
			}
		}
		if store != nil {
			for _, n := range store.extra {
				a.partial[n] = true
				if known(a.prev, n) {
					continue
				}
				if !added {
					a.names = slices.Clone(a.prev)
				}
				a.names, added = append(a.names, n), true
			}
		}
		if added {
			sort.Strings(a.names)
			a.names = compactStrings(a.names)
		}
		return
	}
	a.names, err = listTranscripts(root)
	if err != nil {
		a.res.Errors++
		a.listErr = true
	}
	if store != nil && len(store.extra) > 0 {
		a.names = append(a.names, store.extra...)
		sort.Strings(a.names)
		a.names = compactStrings(a.names)
	}
}

// known tells whether the sorted names hold n.
func known(names []string, n string) bool {
	_, ok := slices.BinarySearch(names, n)
	return ok
}

// remember keeps what a scan between full ones needs: the names, which of
// them to re-check on every scan, the result.
func (a *agentScan) remember(ac *agentCache) {
	ac.last = a.res
	ac.ok = a.root != nil && !a.listErr
	names := a.names
	missing := 0
	for _, r := range a.results {
		if r.missing {
			missing++
		}
	}
	if missing > 0 {
		names = make([]string, 0, len(a.names)-missing)
	}
	var recheck []string
	for i, n := range a.names {
		r := a.results[i]
		if r.missing {
			continue
		}
		if missing > 0 {
			names = append(names, n)
		}
		if !r.done {
			ac.ok = false
			continue
		}
		if r.err != nil || r.state == nil || r.alias || strings.ContainsRune(n, filepath.Separator) {
			recheck = append(recheck, n)
		}
	}
	ac.names, ac.recheck = names, recheck
}

func (a *agentScan) close() {
	if a.root != nil {
		_ = a.root.Close()
	}
}

// collect sums up the workers' results and updates the agent's cache: files
// not seen in this scan are dropped (unless ctx ended before they were
// looked at).
func (s *Scanner) collect(a *agentScan) {
	type inode struct{ dev, ino uint64 }
	// Count a file reached by two names (a symlink to a sibling, a hard
	// link) once.
	var counted map[inode]bool
	for _, r := range a.results {
		if r.alias {
			counted = map[inode]bool{}
			break
		}
	}
	haveLargest := false
	for i, r := range a.results {
		name := a.names[i]
		switch {
		case !r.done:
			if old := a.files[name]; old != nil {
				old.gen = s.gen
			}
			continue
		case r.missing:
			continue
		case r.err != nil && !isCtxErr(r.err):
			a.res.Errors++
		}
		if r.state == nil {
			continue
		}
		r.state.gen = s.gen
		a.files[name] = r.state
		if r.err != nil {
			continue // partly counted
		}
		if counted != nil {
			key := inode{r.state.id.dev, r.state.id.ino}
			if counted[key] {
				continue
			}
			counted[key] = true
		}
		a.res.TranscriptBytes += r.state.id.size
		if !haveLargest || r.state.id.size > a.res.LargestBytes {
			haveLargest = true
			a.res.LargestBytes = r.state.id.size
			a.res.LargestLines = r.state.lines
		}
	}
	for name, st := range a.files {
		if st.gen != s.gen {
			delete(a.files, name)
		}
	}
}

// parallel calls f(worker, i) for i in [0, n) with up to workers
// goroutines, until ctx ends. A panic in f stops its worker and is raised
// again in the caller once every worker is done, where the caller's recover
// (the collector's) sees it: a worker's own panic would end the process.
func parallel(ctx context.Context, workers, n int, f func(worker, i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	var panicked atomic.Pointer[string]
	for w := range min(workers, n) {
		wg.Go(func() {
			defer func() {
				if p := recover(); p != nil {
					msg := fmt.Sprintf("%v\n%s", p, debug.Stack())
					panicked.CompareAndSwap(nil, &msg)
				}
			}()
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				f(w, i)
			}
		})
	}
	wg.Wait()
	if p := panicked.Load(); p != nil {
		panic("session scan worker: " + *p)
	}
}

// readStore returns the parsed sessions.json, from the cache when it did not
// change. A missing file is an fs.ErrNotExist error; an unparseable one a
// state with bad set, cached like any other.
func (s *Scanner) readStore(root *os.Root, dir string, old *storeState) (*storeState, error) {
	fi, err := statInRoot(root, sessionStoreName)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file (%s)", sessionStoreName, fi.Mode().Type())
	}
	if old != nil && old.id == idOf(fi) {
		return old, nil
	}
	if fi.Size() > s.storeLimit {
		return nil, fmt.Errorf("%s: larger than %d bytes", sessionStoreName, s.storeLimit)
	}
	f, err := s.open(root, sessionStoreName)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file (%s)", sessionStoreName, st.Mode().Type())
	}
	id := idOf(st)
	if old != nil && old.id == id {
		return old, nil
	}
	if id.size > s.storeLimit {
		return nil, fmt.Errorf("%s: larger than %d bytes", sessionStoreName, s.storeLimit)
	}
	var buf bytes.Buffer
	buf.Grow(int(id.size) + 1)
	n, err := buf.ReadFrom(io.LimitReader(f, s.storeLimit+1))
	s.bytesRead.Add(n)
	if err != nil {
		return nil, err
	}
	if n > s.storeLimit {
		return nil, fmt.Errorf("%s: larger than %d bytes", sessionStoreName, s.storeLimit)
	}
	absDir, err := filepath.Abs(dir)
	if err != nil {
		absDir = dir
	}
	state := parseStore(buf.Bytes(), absDir)
	state.id = id
	return state, nil
}

// parseStore reads a sessions.json. Entries that are not objects, or whose
// fields have unexpected types, count as sessions without an updatedAt.
func parseStore(b []byte, dir string) *storeState {
	if fileio.CheckDepth(b, fileio.MaxDepth) != nil {
		return &storeState{bad: true}
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil || raw == nil {
		return &storeState{bad: true}
	}
	st := &storeState{sessions: len(raw)}
	var newest int64
	for _, v := range raw {
		var e struct {
			UpdatedAt   json.RawMessage `json:"updatedAt"`
			SessionFile json.RawMessage `json:"sessionFile"`
		}
		if json.Unmarshal(v, &e) != nil {
			continue
		}
		if ms, ok := parseMillis(e.UpdatedAt); ok && ms > newest {
			newest = ms
		}
		var file string
		if json.Unmarshal(e.SessionFile, &file) == nil {
			if name, ok := extraTranscript(dir, file); ok {
				st.extra = append(st.extra, name)
			}
		}
	}
	if newest > 0 {
		st.lastUpdate = time.UnixMilli(newest)
	}
	sort.Strings(st.extra)
	st.extra = compactStrings(st.extra)
	return st
}

func parseMillis(v json.RawMessage) (int64, bool) {
	if len(v) == 0 || (v[0] != '-' && (v[0] < '0' || v[0] > '9')) {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(v), 64)
	if err != nil || math.IsNaN(f) || f <= 0 || f > 1<<53 {
		return 0, false
	}
	return int64(f), true
}

// extraTranscript maps a sessionFile to a name relative to the sessions
// dir, when it lies inside it and a listing of *.jsonl would miss it. Paths
// outside the sessions dir are never followed.
func extraTranscript(dir, file string) (string, bool) {
	file = strings.TrimSpace(file)
	if file == "" || !filepath.IsAbs(file) {
		return "", false
	}
	rel, err := filepath.Rel(dir, filepath.Clean(file))
	if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || filepath.IsAbs(rel) {
		return "", false
	}
	if rel == sessionStoreName || (!strings.ContainsRune(rel, filepath.Separator) && strings.HasSuffix(rel, transcriptSuffix)) {
		return "", false
	}
	return rel, true
}

// listTranscripts lists the sessions dir's *.jsonl names, sorted.
func listTranscripts(root *os.Root) ([]string, error) {
	d, err := root.Open(".")
	if err != nil {
		return nil, err
	}
	defer d.Close()
	all, err := d.Readdirnames(-1)
	names := all[:0]
	for _, n := range all {
		if strings.HasSuffix(n, transcriptSuffix) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names, err
}

type fileResult struct {
	state   *fileState // nil: nothing to remember
	err     error
	missing bool // gone since the listing
	done    bool // false: not looked at, ctx ended
	alias   bool // a symlink or a file with more than one link
}

// scanFile counts one transcript's newlines, reading only what it has not
// counted yet when the file grew with the same inode.
func (s *Scanner) scanFile(ctx context.Context, root *os.Root, name string, old *fileState, buf *[]byte) fileResult {
	s.filesChecked.Add(1)
	fi, err := root.Lstat(name)
	if isMissing(err) {
		return fileResult{missing: true}
	}
	alias := false
	if err == nil && fi.Mode().Type() == fs.ModeSymlink {
		// Dangling, or pointing outside the sessions dir: an error.
		alias = true
		fi, err = root.Stat(name)
	}
	if err != nil {
		return fileResult{err: err}
	}
	if !fi.Mode().IsRegular() {
		return fileResult{err: fmt.Errorf("%s: not a regular file (%s)", name, fi.Mode().Type())}
	}
	alias = alias || links(fi) > 1
	if old.complete(idOf(fi)) {
		old.alias = alias
		return fileResult{state: old, alias: alias}
	}
	f, err := s.open(root, name)
	if err != nil {
		if isMissing(err) {
			return fileResult{missing: true}
		}
		return fileResult{err: err}
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fileResult{err: err}
	}
	if !st.Mode().IsRegular() {
		return fileResult{err: fmt.Errorf("%s: not a regular file (%s)", name, st.Mode().Type())}
	}
	alias = alias || links(st) > 1
	id := idOf(st)
	if old.complete(id) {
		old.alias = alias
		return fileResult{state: old, alias: alias}
	}
	if *buf == nil {
		*buf = make([]byte, readChunk)
	}
	next := &fileState{id: id}
	if old != nil && old.id.dev == id.dev && old.id.ino == id.ino && id.size > old.counted && s.sameTail(f, old, *buf) {
		*next = *old
		next.id = id
	}
	next.alias = alias
	err = s.count(ctx, f, next, *buf)
	return fileResult{state: next, err: err, alias: alias}
}

// sameTail tells whether the bytes before old.counted are still the ones
// counted.
func (s *Scanner) sameTail(f *os.File, old *fileState, buf []byte) bool {
	if old.tailN == 0 {
		return old.counted == 0
	}
	b := buf[:old.tailN]
	n, err := f.ReadAt(b, old.counted-int64(old.tailN))
	s.bytesRead.Add(int64(n))
	return err == nil && n == old.tailN && bytes.Equal(b, old.tail[:old.tailN])
}

// count counts newlines from st.counted up to st.id.size, checking ctx
// between chunks; st records how far it got.
func (s *Scanner) count(ctx context.Context, f *os.File, st *fileState, buf []byte) error {
	for st.counted < st.id.size {
		if err := ctx.Err(); err != nil {
			return err
		}
		want := min(int64(len(buf)), st.id.size-st.counted)
		n, err := f.ReadAt(buf[:want], st.counted)
		s.bytesRead.Add(int64(n))
		st.lines += int64(bytes.Count(buf[:n], []byte{'\n'}))
		st.counted += int64(n)
		st.keepTail(buf[:n])
		if errors.Is(err, io.EOF) {
			// Shrank while being read: the next scan sees the new size.
			st.id.size = st.counted
			return nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// keepTail appends b to the remembered tail, keeping the last tailLen bytes.
func (st *fileState) keepTail(b []byte) {
	if len(b) >= tailLen {
		st.tailN = copy(st.tail[:], b[len(b)-tailLen:])
		return
	}
	keep := min(st.tailN, tailLen-len(b))
	copy(st.tail[:], st.tail[st.tailN-keep:st.tailN])
	st.tailN = keep + copy(st.tail[keep:], b)
}

// complete tells whether st counted the whole of a file that is id.
func (st *fileState) complete(id fileID) bool {
	return st != nil && st.id == id && st.counted == id.size
}

// open opens a file inside root without blocking (a FIFO in place of a file
// must not hang the scan). Symlinks are followed only while they stay inside
// root.
func (s *Scanner) open(root *os.Root, name string) (*os.File, error) {
	f, err := root.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err == nil {
		s.filesOpened.Add(1)
	}
	return f, err
}

// statInRoot lstats name, and stats what a symlink points to when it stays
// inside root.
func statInRoot(root *os.Root, name string) (fs.FileInfo, error) {
	fi, err := root.Lstat(name)
	if err != nil || fi.Mode().Type() != fs.ModeSymlink {
		return fi, err
	}
	return root.Stat(name)
}

func idOf(fi fs.FileInfo) fileID {
	id := fileID{size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		id.dev = uint64(st.Dev) //nolint:unconvert // not uint64 on every platform
		id.ino = uint64(st.Ino) //nolint:unconvert // not uint64 on every platform
	}
	return id
}

// links is a file's hard link count.
func links(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Nlink) //nolint:unconvert // not uint64 on every platform
	}
	return 1
}

// readDirNames lists dir's subdirectories and symlinks, sorted. A FIFO in
// place of dir is an error, not a hang.
func readDirNames(dir string) ([]string, error) {
	d, err := os.OpenFile(dir, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_DIRECTORY, 0)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	ents, err := d.ReadDir(-1)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		if e.IsDir() || e.Type() == fs.ModeSymlink {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}

func isMissing(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

func isCtxErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

func compactStrings(s []string) []string {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}
