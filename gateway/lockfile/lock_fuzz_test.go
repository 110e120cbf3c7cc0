package lockfile

import (
	"bytes"
	"context"
	"testing"

	"github.com/clawdbot-exporter/clawdbot_exporter/internal/fileio"
)

// FuzzParseLock: whatever a lock file holds, parseLock neither panics nor
// accepts a pid outside (0, maxPID), and refuses what nests too deep before
// decoding it.
func FuzzParseLock(f *testing.F) {
	for _, s := range []string{
		`{"pid":4242,"createdAt":"2026-11-25T03:13:05.023Z","configPath":"/h/.clawdbot/clawdbot.json","startTime":266628}`,
		"{\n  \"pid\": 4242,\n  \"ownerId\": \"x\",\n  \"startTime\": 266628,\n  \"port\": 18789\n}\n\t\t   \n",
		`{"pid":"4242"}`, `{"pid":42.5}`, `{"pid":-5}`, `{"pid":99999999999999999999}`, `{"pid":1,"startTime":-3}`,
		`{"pid":1,"x":[[[[[[[[[[]]]]]]]]]]}`, `{"pid":42`, "\x00\x01garbage{", ``, `[]`, `null`,
		`{"pid":7,"ownerId":"u","port":18789,"role":"sqlite-maintenance","startTime":1}`, `{"pid":7,"port":99999999,"role":null}`,
		`{"pid":7,"role":"\xff"}`, `{"pid":7,"port":"18789"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var l Lock
		why := parseLock(&l, b)
		if why != "" {
			return
		}
		if l.PID <= 0 || l.PID >= maxPID {
			t.Fatalf("accepted pid %d", l.PID)
		}
		if l.Port < 0 || l.Port > 65535 {
			t.Fatalf("accepted port %d", l.Port)
		}
		if l.Role != "other" && !knownRoles[l.Role] {
			t.Fatalf("role %q is no bounded label value", l.Role)
		}
		if fileio.CheckDepth(b, fileio.MaxDepth) != nil {
			t.Fatal("accepted a lock nested deeper than the limit")
		}
	})
}

// FuzzParseKernelLocks: whatever /proc/locks holds (another mount could
// be anything), the parser neither panics nor keeps a pid <= 0.
func FuzzParseKernelLocks(f *testing.F) {
	for _, s := range []string{
		"1: POSIX  ADVISORY  WRITE 4242 00:2d:56789 1073741824 1073741824\n1: -> POSIX  ADVISORY  WRITE 4243 00:2d:56789 0 EOF\n",
		"2: FLOCK  ADVISORY  WRITE 900 fd:01:3333 0 EOF\n", "3: OFDLCK ADVISORY READ -1 08:01:77 0 EOF\n", "->", "1: ->", "",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		k := parseKernelLocks(context.Background(), bytes.NewReader(b))
		for _, m := range []map[fileKey][]int{k.holders, k.waiters} {
			for _, pids := range m {
				for _, p := range pids {
					if p <= 0 {
						t.Fatalf("kept pid %d", p)
					}
				}
			}
		}
	})
}
