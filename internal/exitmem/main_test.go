package main

import (
	"os/exec"
	"strings"
	"testing"
)

func TestParseStatus(t *testing.T) {
	const full = "Name:\tx\nVmPeak:\t  9000 kB\nVmHWM:\t    14952 kB\nVmRSS:\t   14900 kB\nRssAnon:\t    2150 kB\nRssFile:\t   12750 kB\nRssShmem:\t       0 kB\n"
	tests := []struct {
		name, in string
		want     Memory
		err      string
	}{
		{"all fields", full, Memory{PeakKiB: 14952, AnonKiB: 2150, FileKiB: 12750}, ""},
		{"a field missing", strings.Replace(full, "RssFile", "RssFoo", 1), Memory{}, "lacks 1"},
		{"not a number", strings.Replace(full, "2150 kB", "lots", 1), Memory{}, "RssAnon"},
		{"empty", "", Memory{}, "lacks 4"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseStatus([]byte(tc.in))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want one with %q", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

// A real child stopped at its exit: its binary's pages are file-backed, the
// peak is at least what it held at exit, and a failing command is an error.
func TestMeasure(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatal(err)
	}
	m, err := measure([]string{sh, "-c", "x=$(seq 1 20000); exit 0"})
	if err != nil {
		t.Fatal(err)
	}
	if m.FileKiB <= 0 || m.AnonKiB <= 0 || m.PeakKiB < m.FileKiB+m.AnonKiB {
		t.Errorf("implausible memory at exit: %+v", m)
	}
	if _, err := measure([]string{sh, "-c", "exit 3"}); err == nil || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("a failing command: %v, want its exit status", err)
	}
}
