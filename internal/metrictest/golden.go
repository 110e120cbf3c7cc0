package metrictest

import (
	"os"
	"sort"
	"strings"
	"testing"
)

// Golden compares metric names with the golden file at path, one name a
// line, sorted; with update it rewrites the file instead. regenerate is the
// command that does that, for the failure message.
func Golden(t testing.TB, path string, names []string, update bool, regenerate string) {
	t.Helper()
	sorted := append([]string(nil), names...)
	sort.Strings(sorted)
	text := strings.Join(sorted, "\n") + "\n"
	if update {
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v: run %s", err, regenerate)
	}
	if string(want) != text {
		t.Errorf("metric names differ from %s (run %s and check the mixin):\n got: %v\nwant: %v",
			path, regenerate, sorted, strings.Fields(string(want)))
	}
}
