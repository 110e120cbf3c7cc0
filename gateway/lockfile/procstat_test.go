package lockfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/prometheus/procfs"

	"github.com/clawdbot-exporter/clawdbot_exporter/internal/testutil"
)

// exported is a ProcStat's exported fields, for comparing ours with
// procfs' (whose unexported FS differs).
func exported(s procfs.ProcStat) string {
	v, ty := reflect.ValueOf(s), reflect.TypeOf(s)
	var b strings.Builder
	for i := range ty.NumField() {
		if ty.Field(i).IsExported() {
			fmt.Fprintf(&b, "%s=%v ", ty.Field(i).Name, v.Field(i).Interface())
		}
	}
	return b.String()
}

// TestReadProcStatMatchesProcfs: the same ProcStat as procfs for real
// processes and for odd ones, and an error where procfs fails.
func TestReadProcStatMatchesProcfs(t *testing.T) {
	sys := realFS(t)
	for _, pid := range []int{os.Getpid(), 1} {
		p, err := sys.Proc(pid)
		if err != nil {
			t.Fatal(err)
		}
		want, err := p.Stat()
		if err != nil {
			t.Fatal(err)
		}
		got, err := ReadProcStat("/proc", pid)
		if err != nil {
			t.Fatal(err)
		}
		// CPU time and memory move between the two reads; compare the rest.
		got.UTime, got.STime, got.MinFlt, got.VSize, got.RSS = want.UTime, want.STime, want.MinFlt, want.VSize, want.RSS
		got.Processor, got.NumThreads, got.DelayAcctBlkIOTicks = want.Processor, want.NumThreads, want.DelayAcctBlkIOTicks
		if exported(got) != exported(want) {
			t.Errorf("pid %d:\n ours   %s\n procfs %s", pid, exported(got), exported(want))
		}
	}
	fields := "S 1 2 3 4 -1 4194560 10 11 12 13 50 20 -3 -4 20 -2 11 0 266628 1000000 2000 18446744073709551615 1 2 3 4 5 6 7 8 9 10 11 12 -5 1 2 3 4 5 6"
	for _, tc := range []struct {
		name, content string
	}{
		{"plain", "4242 (node) " + fields + "\n"},
		{"comm with spaces and parentheses", "4242 (a) (b c) " + fields + "\n"},
		{"more fields than procfs reads", "4242 (node) " + fields + " 7 8 9 10\n"},
		{"zombie", "4242 (node) Z" + fields[1:] + "\n"},
		{"too few fields", "4242 (node) S 1 2 3\n"},
		{"no comm", "4242 node S 1 2 3\n"},
		{"not a number", "4242 (node) S 1 x" + fields[5:] + "\n"},
		{"negative for an unsigned field", "4242 (node) S 1 2 3 4 -1 -7" + fields[19:] + "\n"},
		{"empty", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			if err := os.Mkdir(filepath.Join(root, "4242"), 0o755); err != nil {
				t.Fatal(err)
			}
			testutil.MustWrite(t, filepath.Join(root, "4242", "stat"), tc.content)
			fs, err := procfs.NewFS(root)
			if err != nil {
				t.Fatal(err)
			}
			p, _ := fs.Proc(4242)
			want, wantErr := p.Stat()
			got, err := ReadProcStat(root, 4242)
			if (err != nil) != (wantErr != nil) {
				t.Fatalf("err %v, procfs says %v", err, wantErr)
			}
			if err == nil && exported(got) != exported(want) {
				t.Errorf("\n ours   %s\n procfs %s", exported(got), exported(want))
			}
		})
	}
	if _, err := ReadProcStat(t.TempDir(), 4242); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing process: %v", err)
	}
}

// TestJudgeOwnerAtMatchesJudgeOwner: reading the stat file directly
// judges every owner as procfs does.
func TestJudgeOwnerAtMatchesJudgeOwner(t *testing.T) {
	root, fs := testutil.ProcTreeAt(t, map[int]testutil.FakeProc{
		100: {Starttime: 5, Comm: "clawdbot-gatewa"},
		101: {Starttime: 6, Comm: "clawdbot-gatewa", State: "Z"},
		102: {Starttime: 7, Comm: "bash"},
	})
	if err := os.Mkdir(filepath.Join(root, "103"), 0o755); err != nil { // stat unparseable
		t.Fatal(err)
	}
	testutil.MustWrite(t, filepath.Join(root, "103", "stat"), "103 (x) S 1\n")
	ticks := func(n uint64) *uint64 { return &n }
	for _, tc := range []struct {
		pid   int
		start *uint64
		want  OwnerState
	}{
		{100, ticks(5), OwnerAlive},
		{100, ticks(9), OwnerReused},
		{101, ticks(6), OwnerDead},
		{102, ticks(7), OwnerAlive},
		{102, nil, OwnerReused}, // no start time: by title, through procfs
		{100, nil, OwnerAlive},
		{103, ticks(1), OwnerUnknown},
		{31337, ticks(1), OwnerDead},
	} {
		wantState, wantWhy := judgeOwner(fs, tc.pid, tc.start)
		gotState, gotWhy := judgeOwnerAt(fs, root, tc.pid, tc.start)
		if gotState != tc.want || wantState != tc.want {
			t.Errorf("pid %d: %s (%s), procfs %s (%s), want %s", tc.pid, gotState, gotWhy, wantState, wantWhy, tc.want)
		}
		if gotState != OwnerUnknown && gotWhy != wantWhy {
			t.Errorf("pid %d: why %q, procfs %q", tc.pid, gotWhy, wantWhy)
		}
	}
}

func BenchmarkReadProcStat(b *testing.B) {
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		b.Fatal(err)
	}
	p, err := fs.Proc(os.Getpid())
	if err != nil {
		b.Fatal(err)
	}
	b.Run("procfs", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := fs.Proc(os.Getpid()); err != nil {
				b.Fatal(err)
			}
			if _, err := p.Stat(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("direct", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := ReadProcStat("/proc", os.Getpid()); err != nil {
				b.Fatal(err)
			}
		}
	})
}
