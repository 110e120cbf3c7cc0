package metrictest

import (
	"bufio"
	"strings"
	"time"
)

// Scrape is one /metrics answer as the tests see it: the text, how long it
// took, and the parsed families. Both test suites (collector, e2e) use it.
type Scrape struct {
	Body    string
	Elapsed time.Duration
	Families
}

// ParseScrape parses a /metrics body.
func ParseScrape(body string, elapsed time.Duration) (Scrape, error) {
	fams, err := Parse(body)
	return Scrape{Body: body, Elapsed: elapsed, Families: fams}, err
}

// Samples are the clawdbot_ samples, for a test log (the per-reason
// series, many and mostly 0, left out).
func (s Scrape) Samples() string {
	var b strings.Builder
	sc := bufio.NewScanner(strings.NewReader(s.Body))
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "clawdbot_") && !strings.HasPrefix(l, "clawdbot_probe_failures_total") && !strings.HasPrefix(l, "clawdbot_probe_failing") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}
