package process

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/procfs"

	"github.com/clawdbot-exporter/clawdbot_exporter/internal/testutil"
)

// status is a /proc/<pid>/status with the memory fields the tree reads.
func status(rssKiB, anonKiB int) string {
	return fmt.Sprintf("Name:\tx\nVmRSS:\t%d kB\nRssAnon:\t%d kB\nRssFile:\t%d kB\n", rssKiB, anonKiB, rssKiB-anonKiB)
}

// openclawTree is openclaw's gateway (pid 10, two threads) with its spawn
// broker and SQLite worker, a grandchild under the broker, and an unrelated
// process.
func openclawTree(t *testing.T, withChildren bool) (string, map[int]testutil.FakeProc) {
	procs := map[int]testutil.FakeProc{
		10: {Starttime: 1, Comm: "openclaw-gatewa"},
		11: {Starttime: 2, Comm: "node", PPID: 10},     // spawn broker
		12: {Starttime: 2, Comm: "node", PPID: 10},     // SQLite worker
		13: {Starttime: 3, Comm: "bash", PPID: 11},     // spawned by the broker
		20: {Starttime: 1, Comm: "unrelated", PPID: 1}, // not in the tree
	}
	root, _ := testutil.ProcTreeAt(t, procs)
	files := map[string]string{
		"10/status": status(300*1024, 250*1024),
		"11/status": status(66*1024, 60*1024),
		"12/status": status(105*1024, 100*1024),
		"13/status": status(4*1024, 1024),
		"20/status": status(999*1024, 999*1024),
	}
	if withChildren {
		// The children of a process are listed by the thread that made
		// them: pid 10's second thread spawned the SQLite worker.
		files["10/task/10/children"] = "11 "
		files["10/task/15/children"] = "12 "
		files["11/task/11/children"] = "13 "
		files["12/task/12/children"] = ""
		files["13/task/13/children"] = ""
		files["20/task/20/children"] = ""
	}
	withFiles(t, root, files)
	return root, procs
}

func TestTreeOf(t *testing.T) {
	const kib = 1024
	want := Tree{Processes: 4, RSS: (300 + 66 + 105 + 4) * 1024 * kib, RSSAnon: (250 + 60 + 100 + 1) * 1024 * kib}
	for _, tc := range []struct {
		name     string
		children bool
	}{
		{"children files", true},
		{"ppid fallback", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root, _ := openclawTree(t, tc.children)
			fs := procFS(t, root)
			p, err := fs.Proc(10)
			if err != nil {
				t.Fatal(err)
			}
			got, err := TreeOf(fs, root, p)
			if err != nil || got != want {
				t.Errorf("TreeOf = %+v, %v; want %+v", got, err, want)
			}
			// A leaf is a tree of one.
			leaf, _ := fs.Proc(13)
			if got, err := TreeOf(fs, root, leaf); err != nil || got != (Tree{Processes: 1, RSS: 4 * 1024 * kib, RSSAnon: 1024 * kib}) {
				t.Errorf("leaf: %+v, %v", got, err)
			}
		})
	}
}

// TestTreeOfExited: a child listed but gone by the time it is read is left
// out; a root that is gone is an error.
func TestTreeOfExited(t *testing.T) {
	root, _ := openclawTree(t, true)
	fs := procFS(t, root)
	p, _ := fs.Proc(10)
	if err := os.RemoveAll(filepath.Join(root, "12")); err != nil {
		t.Fatal(err)
	}
	got, err := TreeOf(fs, root, p)
	if err != nil || got.Processes != 3 || got.RSS != (300+66+4)*1024*1024 {
		t.Errorf("got %+v, %v; want 3 processes without the exited worker", got, err)
	}
	if err := os.RemoveAll(filepath.Join(root, "10")); err != nil {
		t.Fatal(err)
	}
	if _, err := TreeOf(fs, root, p); err == nil {
		t.Errorf("a gone root gave no error")
	}
}

// TestTreeOfBounded: a fork bomb under the gateway, or a children file that
// loops, costs at most MaxTreeProcesses reads.
func TestTreeOfBounded(t *testing.T) {
	procs := map[int]testutil.FakeProc{1000: {Starttime: 1, Comm: "openclaw-gatewa"}}
	var kids []string
	for i := range 2 * MaxTreeProcesses {
		pid := 2000 + i
		procs[pid] = testutil.FakeProc{Starttime: 2, Comm: "node", PPID: 1000}
		kids = append(kids, fmt.Sprint(pid))
	}
	root, _ := testutil.ProcTreeAt(t, procs)
	files := map[string]string{"1000/status": status(10, 5), "1000/task/1000/children": strings.Join(kids, " ")}
	for i := range 2 * MaxTreeProcesses {
		pid := 2000 + i
		files[fmt.Sprintf("%d/status", pid)] = status(1, 1)
		// Each child names the root and itself as its children: a loop.
		files[fmt.Sprintf("%d/task/%d/children", pid, pid)] = fmt.Sprintf("1000 %d", pid)
	}
	withFiles(t, root, files)
	fs := procFS(t, root)
	p, _ := fs.Proc(1000)
	got, err := TreeOf(fs, root, p)
	if err != nil || got.Processes != MaxTreeProcesses || !got.Truncated {
		t.Errorf("got %+v, %v; want %d processes, truncated", got, err, MaxTreeProcesses)
	}
}

func procFS(t *testing.T, root string) procfs.FS {
	t.Helper()
	fs, err := procfs.NewFS(root)
	if err != nil {
		t.Fatal(err)
	}
	return fs
}
