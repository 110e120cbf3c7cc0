package text

import "unicode/utf8"

// TruncateUTF8 cuts s to at most max bytes without splitting a UTF-8
// character: a character that does not fit whole is dropped. Bytes that are
// not UTF-8 count as one-byte characters, so a valid s stays valid; make s
// valid first (strings.ToValidUTF8) when it may not be.
func TruncateUTF8(s string, max int) string {
	if len(s) <= max {
		return s
	}
	n := 0
	for n < max {
		_, size := utf8.DecodeRuneInString(s[n:])
		if n+size > max {
			break
		}
		n += size
	}
	return s[:n]
}
