package gateway

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestTruncateUTF8(t *testing.T) {
	tests := []struct {
		name string
		in   string
		max  int
		want string
	}{
		{"short", "abc", 64, "abc"},
		{"exact", "abcd", 4, "abcd"},
		{"ASCII cut", "abcdef", 4, "abcd"},
		{"cut inside a 2-byte character", "abcé", 4, "abc"},
		{"2-byte character fits", "abé", 4, "abé"},
		{"cut inside a 4-byte character", "a𝄞", 4, "a"},
		{"4-byte character fits", "𝄞x", 4, "𝄞"},
		{"zero", "abc", 0, ""},
		{"negative", "abc", -1, ""},
		{"invalid bytes are cut like single bytes", "ab\xff\xfecd", 3, "ab\xff"},
		{"cut before an invalid sequence's start", "abc\xe2\x82", 4, "abc\xe2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := TruncateUTF8(tc.in, tc.max); got != tc.want {
				t.Errorf("TruncateUTF8(%q, %d) = %q, want %q", tc.in, tc.max, got, tc.want)
			}
		})
	}
}

func TestVersionLabel(t *testing.T) {
	tests := []struct {
		name, version, want string
	}{
		{"real", "2026.9.6", "2026.9.6"},
		{"none", "", ""},
		{"clawdbot without CLAWDBOT_VERSION", "dev", ""},
		{"65 bytes, cut inside é", strings.Repeat("a", 63) + "é", strings.Repeat("a", 63)},
		{"64 bytes ending in é", strings.Repeat("a", 62) + "é", strings.Repeat("a", 62) + "é"},
		{"4-byte characters", strings.Repeat("𝄞", 20), strings.Repeat("𝄞", 16)},
		{"long ASCII", strings.Repeat("1", 1000), strings.Repeat("1", 64)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &Result{Hello: &Hello{}}
			r.Hello.Server.Version = tc.version
			got := r.Version()
			if got != tc.want {
				t.Errorf("Version() of %q = %q, want %q", tc.version, got, tc.want)
			}
			if !utf8.ValidString(got) || len(got) > 64 {
				t.Errorf("Version() = %q: not a valid label of at most 64 bytes", got)
			}
		})
	}
}
