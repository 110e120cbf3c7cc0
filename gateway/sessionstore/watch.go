package sessionstore

import (
	"errors"
	"path/filepath"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A scan that lstats every transcript grows with the store (34 ms for
// 10,000 sessions). With change notification a scan where nothing changed
// costs a read of the inotify queue: the scanner watches the agents dir,
// each agent's dir and each sessions dir, and re-reads only what an event
// named. The queue is read without blocking at the start of each scan, by
// the scan itself, so a change finished before a scan began is always seen
// (no goroutine whose delivery a scan could outrun).
//
// What inotify cannot see is covered by a full scan every fullCheckEvery:
// writes through mmap, changes made on another machine (NFS), a transcript
// reached by a symlink or a second hard link (those are re-checked on every
// scan anyway, as are files that failed and transcripts in subdirectories).
// A watcher that cannot be set up (no inotify, EMFILE, too many watches), a
// lost watch or a queue overflow turn the scanner back to full scans, which
// is how it works without a watcher.

// fullCheckEvery is the safety net: the longest a scan trusts the watches.
const fullCheckEvery = time.Minute

// inotifyMask is every change that can alter what a scan reports. Renames
// and deletes of a watched dir itself come as IN_MOVE_SELF / IN_DELETE_SELF,
// and its watch then ends (IN_IGNORED).
const inotifyMask = unix.IN_CREATE | unix.IN_DELETE | unix.IN_MODIFY | unix.IN_ATTRIB |
	unix.IN_MOVED_FROM | unix.IN_MOVED_TO | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_ONLYDIR

// maxEventBytes bounds what one drain reads from the queue; the kernel's
// queue (max_queued_events, 16384 by default) overflows long before.
const maxEventBytes = 4 << 20

type watchKind int

const (
	watchAgents   watchKind = iota // <stateDir>/agents
	watchAgent                     // <stateDir>/agents/<agent>
	watchSessions                  // <stateDir>/agents/<agent>/sessions
)

type watched struct {
	stateDir, agent string
	kind            watchKind
	path            string
}

// watcher is one inotify instance per Scanner. Only the goroutine holding
// the scanner's sem uses it.
type watcher struct {
	fd     int
	byWD   map[int32]watched
	byPath map[string]int32
	states map[string]*dirtyState // by stateDir
	buf    []byte
}

// dirtyState is what changed under one state directory since its last full
// scan.
type dirtyState struct {
	// armed: every dir of the last full scan is watched; false makes the
	// next scan a full one.
	armed    bool
	lastFull time.Time
	// agents named in events: all set means the agent's dir (its store
	// listing) changed; files are names in its sessions dir.
	agents map[string]*agentDirty
	// agentNames are the agents dir's entries at the last full scan.
	agentNames []string
	// want are the dirs the running full scan watches; the rest are
	// removed when it ends.
	want map[string]bool
}

type agentDirty struct {
	all   bool
	files map[string]bool
}

func newWatcher() (*watcher, error) {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, err
	}
	return &watcher{fd: fd, byWD: map[int32]watched{}, byPath: map[string]int32{}, states: map[string]*dirtyState{}}, nil
}

func (w *watcher) close() {
	if w != nil && w.fd >= 0 {
		_ = unix.Close(w.fd)
		w.fd = -1
	}
}

func (w *watcher) state(stateDir string) *dirtyState {
	st := w.states[stateDir]
	if st == nil {
		st = &dirtyState{}
		w.states[stateDir] = st
	}
	return st
}

// beginFull forgets what changed (the full scan about to run reads it all)
// and starts collecting the dirs it watches.
func (st *dirtyState) beginFull() {
	st.armed, st.agents, st.want = true, nil, map[string]bool{}
}

// add watches dir for stateDir's full scan. A dir that does not exist is
// fine (its parent's watch sees it appear) except for the agents dir, which
// has no watched parent. Any other failure leaves the state unarmed, so
// scans stay full.
func (w *watcher) add(st *dirtyState, wd watched) {
	st.want[wd.path] = true
	n, err := unix.InotifyAddWatch(w.fd, wd.path, inotifyMask)
	if err != nil {
		if wd.kind == watchAgents || !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ENOTDIR) {
			st.armed = false
		}
		return
	}
	id := int32(n) //nolint:gosec // watch descriptors are small
	if prev, ok := w.byPath[wd.path]; ok && prev != id {
		// The path names another dir than when it was watched (a
		// symlink retargeted, a dir made again): the old watch goes.
		_, _ = unix.InotifyRmWatch(w.fd, uint32(prev)) //nolint:gosec // from InotifyAddWatch
		delete(w.byWD, prev)
	}
	if old, ok := w.byWD[id]; ok && old.path != wd.path {
		// The same directory under two names (a symlinked agent): events
		// would be told to one of them only.
		w.states[old.stateDir].armed = false
		st.armed = false
		delete(w.byPath, old.path)
	}
	w.byWD[id] = wd
	w.byPath[wd.path] = id
}

// endFull removes the watches of dirs stateDir's full scan no longer
// watches, and records when the scan was; ok is false when it did not
// finish (its context ended), which keeps the next scan full.
func (w *watcher) endFull(stateDir string, st *dirtyState, agentNames []string, ok bool) {
	for path, id := range w.byPath {
		if wd := w.byWD[id]; wd.stateDir == stateDir && !st.want[path] {
			_, _ = unix.InotifyRmWatch(w.fd, uint32(id)) //nolint:gosec // from InotifyAddWatch
			delete(w.byWD, id)
			delete(w.byPath, path)
		}
	}
	st.want = nil
	st.agentNames = agentNames
	st.lastFull = time.Now()
	if !ok {
		st.armed = false
	}
}

// drain reads every queued event and marks what it names. A read error or
// an overflow unarms every state directory.
func (w *watcher) drain() {
	if w.buf == nil {
		w.buf = make([]byte, 64<<10)
	}
	total := 0
	for total < maxEventBytes {
		n, err := unix.Read(w.fd, w.buf)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || n <= 0 {
			if err != nil && !errors.Is(err, unix.EAGAIN) {
				w.unarmAll()
			}
			return
		}
		total += n
		w.parse(w.buf[:n])
	}
	w.unarmAll() // more than a kernel queue holds: something is off
}

func (w *watcher) unarmAll() {
	for _, st := range w.states {
		st.armed = false
	}
}

func (w *watcher) parse(b []byte) {
	for len(b) >= unix.SizeofInotifyEvent {
		ev := (*unix.InotifyEvent)(unsafe.Pointer(&b[0]))
		size := unix.SizeofInotifyEvent + int(ev.Len)
		if size > len(b) {
			w.unarmAll()
			return
		}
		name := ""
		if ev.Len > 0 {
			raw := b[unix.SizeofInotifyEvent:size]
			for i, c := range raw {
				if c == 0 {
					raw = raw[:i]
					break
				}
			}
			name = string(raw)
		}
		w.event(ev.Wd, ev.Mask, name)
		b = b[size:]
	}
}

func (w *watcher) event(id int32, mask uint32, name string) {
	if mask&unix.IN_Q_OVERFLOW != 0 {
		w.unarmAll()
		return
	}
	wd, ok := w.byWD[id]
	if !ok {
		return // a watch removed since
	}
	st := w.states[wd.stateDir]
	if st == nil {
		return
	}
	if mask&(unix.IN_IGNORED|unix.IN_DELETE_SELF|unix.IN_MOVE_SELF|unix.IN_UNMOUNT) != 0 {
		if mask&unix.IN_IGNORED != 0 {
			delete(w.byWD, id)
			delete(w.byPath, wd.path)
		}
		st.armed = false
		return
	}
	if wd.kind != watchSessions {
		// An agent came or went, or an agent's sessions dir did (or a
		// symlink to it changed): the next scan is a full one, which
		// watches what the names lead to now. Rare: what the gateway
		// writes goes into the sessions dir and the agent dir's subdirs.
		st.armed = false
		return
	}
	if st.agents == nil {
		st.agents = map[string]*agentDirty{}
	}
	ad := st.agents[wd.agent]
	if ad == nil {
		ad = &agentDirty{}
		st.agents[wd.agent] = ad
	}
	if name == "" {
		ad.all = true
		return
	}
	if ad.files == nil {
		ad.files = map[string]bool{}
	}
	ad.files[name] = true
}

// takeDirty returns what changed per agent since the last scan (never nil:
// nil tells scanAgents to read everything) and starts afresh.
func (st *dirtyState) takeDirty() map[string]*agentDirty {
	d := st.agents
	st.agents = nil
	if d == nil {
		d = map[string]*agentDirty{}
	}
	return d
}

// fresh tells whether the next scan of st may trust the watches.
func (st *dirtyState) fresh(now time.Time) bool {
	return st != nil && st.armed && st.want == nil && now.Sub(st.lastFull) < fullCheckEvery
}

// watchPaths are the dirs a full scan watches for one agent.
func agentWatches(stateDir, agentsDir, agent string) []watched {
	dir := filepath.Join(agentsDir, agent)
	return []watched{
		{stateDir: stateDir, agent: agent, kind: watchAgent, path: dir},
		{stateDir: stateDir, agent: agent, kind: watchSessions, path: filepath.Join(dir, "sessions")},
	}
}
