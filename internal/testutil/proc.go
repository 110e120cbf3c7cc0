package testutil

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/procfs"
)

// FakeProc builds a /proc tree with one process per pid -> starttime (ticks)
// and comm.
type FakeProc struct {
	Starttime uint64
	Comm      string
	State     string
	PPID      int // 0: 1
}

func ProcTree(t *testing.T, procs map[int]FakeProc) procfs.FS {
	t.Helper()
	_, fs := ProcTreeAt(t, procs)
	return fs
}

// ProcTreeAt is ProcTree that also returns the tree's root, to add files.
func ProcTreeAt(t *testing.T, procs map[int]FakeProc) (string, procfs.FS) {
	t.Helper()
	root := t.TempDir()
	for pid, p := range procs {
		dir := filepath.Join(root, fmt.Sprint(pid))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		state := p.State
		if state == "" {
			state = "S"
		}
		// Field 22 is starttime; comm may hold spaces and parentheses,
		// which is why the fields are counted after the LAST ')'.
		ppid := p.PPID
		if ppid == 0 {
			ppid = 1
		}
		fields := []string{state, fmt.Sprint(ppid), fmt.Sprint(pid), fmt.Sprint(pid), "0", "-1", "4194560", "100", "0", "0", "0",
			"50", "20", "0", "0", "20", "0", "11", "0", fmt.Sprint(p.Starttime), "1000000", "2000"}
		for len(fields) < 50 {
			fields = append(fields, "0")
		}
		stat := fmt.Sprintf("%d (%s) %s\n", pid, p.Comm, strings.Join(fields, " "))
		MustWrite(t, filepath.Join(dir, "stat"), stat)
		MustWrite(t, filepath.Join(dir, "comm"), p.Comm+"\n")
		MustWrite(t, filepath.Join(dir, "cmdline"), p.Comm+"\x00")
	}
	MustWrite(t, filepath.Join(root, "stat"), "btime 1700000000\n")
	fs, err := procfs.NewFS(root)
	if err != nil {
		t.Fatal(err)
	}
	return root, fs
}

// ProcTreeOverwrite replaces one process of a tree made by ProcTreeAt.
func ProcTreeOverwrite(t *testing.T, root string, pid int, p FakeProc) {
	t.Helper()
	other, _ := ProcTreeAt(t, map[int]FakeProc{pid: p})
	for _, f := range []string{"stat", "comm", "cmdline"} {
		b, err := os.ReadFile(filepath.Join(other, fmt.Sprint(pid), f))
		if err != nil {
			t.Fatal(err)
		}
		MustWrite(t, filepath.Join(root, fmt.Sprint(pid), f), string(b))
	}
}

func MustWrite(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
