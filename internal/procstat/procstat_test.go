package procstat

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

// TestReadMatchesProcfs: the same ProcStat as procfs for real
// processes and for odd ones, and an error where procfs fails.
func TestReadMatchesProcfs(t *testing.T) {
	sys, err := procfs.NewDefaultFS()
	if err != nil {
		t.Fatal(err)
	}
	for _, pid := range []int{os.Getpid(), 1} {
		p, err := sys.Proc(pid)
		if err != nil {
			t.Fatal(err)
		}
		want, err := p.Stat()
		if err != nil {
			t.Fatal(err)
		}
		got, err := Read("/proc", pid)
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
			got, err := Read(root, 4242)
			if (err != nil) != (wantErr != nil) {
				t.Fatalf("err %v, procfs says %v", err, wantErr)
			}
			if err == nil && exported(got) != exported(want) {
				t.Errorf("\n ours   %s\n procfs %s", exported(got), exported(want))
			}
		})
	}
	if _, err := Read(t.TempDir(), 4242); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing process: %v", err)
	}
}

func BenchmarkRead(b *testing.B) {
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
			if _, err := Read("/proc", os.Getpid()); err != nil {
				b.Fatal(err)
			}
		}
	})
}
