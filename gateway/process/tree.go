package process

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/prometheus/procfs"

	"github.com/clawdbot-exporter/clawdbot_exporter/internal/fileio"
)

// openclaw's gateway runs children (a spawn broker of ~66 MB, a SQLite
// worker of ~105 MB; docs/local-state.md "Respawn and children") that the
// main pid's RSS misses. Tree sums up the gateway and its descendants.

const (
	// MaxTreeProcesses bounds a tree walk: a gateway that forks without
	// end must not make every scrape read thousands of /proc entries.
	MaxTreeProcesses = 256
	// maxTreeDepth bounds how deep the walk goes.
	maxTreeDepth = 16
	// maxTasks bounds how many threads' children lists one process gets.
	maxTasks = 1024
	// childrenLimit bounds one children file (pids separated by spaces).
	childrenLimit = 64 << 10
)

// Tree is a process and its descendants.
type Tree struct {
	Processes int
	// RSS and RSSAnon are VmRSS and RssAnon summed over the processes
	// whose status could be read.
	RSS, RSSAnon uint64
	// Truncated: the walk stopped at MaxTreeProcesses or maxTreeDepth.
	Truncated bool
}

// TreeOf walks root's descendants from the kernel's children lists
// (<procRoot>/<pid>/task/<tid>/children), or, where the kernel has none
// (no CONFIG_PROC_CHILDREN), from every process's parent pid. Processes
// that exit during the walk are left out.
func TreeOf(pfs procfs.FS, procRoot string, root procfs.Proc) (Tree, error) {
	st, err := root.NewStatus()
	if err != nil {
		return Tree{}, err
	}
	return TreeOfStatus(pfs, procRoot, root, st)
}

// TreeOfStatus is TreeOf for a root whose status the caller has just read.
func TreeOfStatus(pfs procfs.FS, procRoot string, root procfs.Proc, st procfs.ProcStatus) (Tree, error) {
	t := Tree{Processes: 1, RSS: st.VmRSS, RSSAnon: st.RssAnon}
	// The root's children, read once: they also tell whether the kernel
	// has children files at all.
	rootKids, err := kernelChildren(procRoot, root.PID)
	children := func(pid int) ([]int, error) {
		if pid == root.PID {
			return rootKids, nil
		}
		return kernelChildren(procRoot, pid)
	}
	if err != nil {
		byParent, err := parents(pfs)
		if err != nil {
			return t, err
		}
		children = func(pid int) ([]int, error) { return byParent[pid], nil }
	}
	seen := map[int]bool{root.PID: true}
	level := []int{root.PID}
	for depth := 0; len(level) > 0; depth++ {
		var next []int
		for _, pid := range level {
			kids, _ := children(pid) // gone since: no children
			for _, kid := range kids {
				if seen[kid] {
					continue
				}
				if t.Processes >= MaxTreeProcesses || depth >= maxTreeDepth {
					t.Truncated = true
					return t, nil
				}
				seen[kid] = true
				p, err := pfs.Proc(kid)
				if err != nil {
					continue
				}
				st, err := p.NewStatus()
				if err != nil {
					continue // exited
				}
				t.Processes++
				t.RSS += st.VmRSS
				t.RSSAnon += st.RssAnon
				next = append(next, kid)
			}
		}
		level = next
	}
	return t, nil
}

// kernelChildren lists pid's children from the children file of each of
// its threads. An error means the kernel has no such files (or pid is gone).
func kernelChildren(procRoot string, pid int) ([]int, error) {
	taskDir := filepath.Join(procRoot, strconv.Itoa(pid), "task")
	d, err := os.Open(taskDir)
	if err != nil {
		return nil, err
	}
	tids, err := d.Readdirnames(maxTasks)
	_ = d.Close()
	if err != nil && len(tids) == 0 {
		return nil, err
	}
	var out []int
	found := false
	bp := childrenBufs.Get().(*[]byte)
	defer childrenBufs.Put(bp)
	for _, tid := range tids {
		b, err := readChildren(taskDir+"/"+tid+"/children", bp)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue // the thread ended, or no children files at all
			}
			return nil, err
		}
		found = true
		for f := range bytes.FieldsSeq(b) {
			if kid, err := strconv.Atoi(string(f)); err == nil && kid > 0 {
				out = append(out, kid)
			}
		}
	}
	if !found {
		return nil, fs.ErrNotExist
	}
	return out, nil
}

// childrenBufs hold children files as they are read: a gateway's threads
// have one each, read on every scrape, nearly always empty.
var childrenBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

// readChildren reads a children file into *bp: the file is the kernel's,
// under procRoot, read for every gateway thread on every scrape.
func readChildren(path string, bp *[]byte) ([]byte, error) {
	return fileio.ReadInto(path, bp, childrenLimit)
}

// parents maps each process to its children from the ppid in its stat.
func parents(pfs procfs.FS) (map[int][]int, error) {
	procs, err := pfs.AllProcs()
	if err != nil {
		return nil, err
	}
	out := map[int][]int{}
	for _, p := range procs {
		st, err := p.Stat()
		if err != nil {
			continue
		}
		out[st.PPID] = append(out[st.PPID], p.PID)
	}
	return out, nil
}
