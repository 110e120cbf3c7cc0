package lockfile

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/clawdbot-exporter/clawdbot_exporter/internal/testutil"
)

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
