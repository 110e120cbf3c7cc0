package lockfile

import (
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
		if fileio.CheckDepth(b, fileio.MaxDepth) != nil {
			t.Fatal("accepted a lock nested deeper than the limit")
		}
	})
}
