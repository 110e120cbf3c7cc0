package collector

import (
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
)

const expositionPath = "testdata/exposition.golden"

// TestExpositionGolden compares the whole exposition of the fixture scrape
// (every series with its labels, help and type, and every value that does
// not change between runs) with testdata/exposition.golden, in the manner of
// node_exporter's e2e-output.txt. Volatile values (times, durations, sizes
// of live processes, pids) become "<v>"; temporary paths and the fakes'
// addresses become placeholders. -update rewrites the file.
func TestExpositionGolden(t *testing.T) {
	res, paths := fixtureScrape(t)
	got := maskExposition(res.Body, paths)
	if *update {
		if err := os.WriteFile(expositionPath, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(expositionPath)
	if err != nil {
		t.Fatalf("%v (create it with: go test ./collector/ -run TestExpositionGolden -update)", err)
	}
	if got != string(want) {
		t.Errorf("the exposition differs from %s (if the change is intended: go test ./collector/ -run TestExpositionGolden -update):\n%s", expositionPath, lineDiff(string(want), got))
	}
}

// volatile matches the series whose values change from run to run.
var volatile = regexp.MustCompile(`^(` + strings.Join([]string{
	`.*_seconds(_bucket|_sum|_count)?`, // times and durations
	`.*_timestamp.*`,
	`clawdbot_process_.*`, // the live child: pid, memory, fds, threads
	`.*_pid`,
	`clawdbot_lock_volatile`, // the test's TMPDIR may be a tmpfs
	`.*_bytes`,
	`clawdbot_exporter_scrape_.*`,
}, "|") + `)$`)

var sample = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$`)

// maskExposition replaces what changes between runs and sorts nothing:
// the exposition is already in a stable order.
func maskExposition(body string, paths map[string]string) string {
	// Longest first, so that a path inside another is replaced after it.
	keys := make([]string, 0, len(paths))
	for k := range paths {
		if k != "" {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool { return len(keys[i]) > len(keys[j]) })
	var pairs []string
	for _, k := range keys {
		pairs = append(pairs, k, paths[k])
	}
	r := strings.NewReplacer(pairs...)
	var out strings.Builder
	for _, line := range strings.Split(strings.TrimRight(body, "\n"), "\n") {
		line = r.Replace(line)
		if m := sample.FindStringSubmatch(line); m != nil && volatile.MatchString(m[1]) {
			line = m[1] + m[2] + " <v>"
		}
		if strings.HasPrefix(line, "clawdbot_exporter_build_info{") {
			line = buildInfo.ReplaceAllString(line, `$1="<v>"`)
		}
		// Lock names hash the (temporary) config path; directories carry
		// the uid; the filesystem is the test machine's.
		line = tempDir.ReplaceAllString(line, "$$TMP/$1")
		line = lockHash.ReplaceAllString(line, ".<hash>.lock")
		line = uidDir.ReplaceAllString(line, "$1-<uid>/")
		line = fstype.ReplaceAllString(line, `fstype="<v>"`)
		out.WriteString(line)
		out.WriteByte('\n')
	}
	return out.String()
}

var (
	lockHash = regexp.MustCompile(`\.[0-9a-f]{8,64}\.lock`)
	uidDir   = regexp.MustCompile(`\b(clawdbot|openclaw|openclaw-state-locks)-\d+/`)
	tempDir  = regexp.MustCompile(regexp.QuoteMeta(os.TempDir()) + `/Test\w+?\d+/(\d{3})`)
	fstype   = regexp.MustCompile(`fstype="[^"]*"`)
)

// buildInfo's labels describe the test binary's build.
var buildInfo = regexp.MustCompile(`\b(goversion|revision|branch|version|goarch|goos|tags)="[^"]*"`)

// lineDiff lists the lines only one side has.
func lineDiff(want, got string) string {
	w, g := map[string]int{}, map[string]int{}
	for _, l := range strings.Split(want, "\n") {
		w[l]++
	}
	for _, l := range strings.Split(got, "\n") {
		g[l]++
	}
	var b strings.Builder
	for _, l := range strings.Split(want, "\n") {
		if g[l] < w[l] {
			b.WriteString("- " + l + "\n")
			g[l]++
		}
	}
	w2 := map[string]int{}
	for _, l := range strings.Split(want, "\n") {
		w2[l]++
	}
	for _, l := range strings.Split(got, "\n") {
		if w2[l] == 0 {
			b.WriteString("+ " + l + "\n")
		} else {
			w2[l]--
		}
	}
	return b.String()
}
