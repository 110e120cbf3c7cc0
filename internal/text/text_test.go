package text

import (
	"testing"
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
