package fileio

import (
	"bytes"
	"fmt"
)

// MaxDepth bounds how deeply a JSON or JSON5 document the exporter reads
// (gateway configs and their $include files, lock files, session stores) may
// nest. Real ones nest less than 20 deep. The JSON5 decoder has no limit of
// its own and recurses once per level, and so does the $include resolution:
// a 4 MiB config of brackets overflowed the stack and killed the process.
// encoding/json stops at 10000 levels by itself; the same, lower, limit
// applies to every document read from disk all the same.
const MaxDepth = 128

// depthError is a document nested deeper than allowed. It never quotes the
// document.
type depthError struct {
	max          int
	line, column int
}

func (e *depthError) Error() string {
	return fmt.Sprintf("nested deeper than %d levels at line %d, column %d", e.max, e.line, e.column)
}

// CheckDepth refuses a JSON or JSON5 document that nests arrays and objects
// deeper than max, before any decoder sees it. It is one pass over the
// bytes, with no allocation, and never fails otherwise: syntax is the
// decoder's business.
func CheckDepth(b []byte, max int) error {
	depth, off := scanDepth(b, max)
	if depth <= max {
		return nil
	}
	before := b[:off]
	return &depthError{
		max:    max,
		line:   1 + bytes.Count(before, []byte("\n")),
		column: off - bytes.LastIndexByte(before, '\n'),
	}
}

// scanDepth returns how deeply b nests, counting brackets outside strings
// and comments. It stops at the first bracket that goes beyond limit and
// returns limit+1 and that bracket's offset.
//
// It reads strings and comments the way github.com/titanous/json5 does, so
// that for every document that decoder accepts the depth is exact (for JSON,
// which has neither single quotes nor comments, too): double- and
// single-quoted strings, where a backslash escapes the next byte; line
// comments, which end at \n or \r; block comments, which end at the first
// '/' after the first '*' following "/*" (the decoder's reading: /* a * b / c
// */ ends before " c */"; the JSON5 specification's at "*/"). Where the
// decoder would fail anyway, the depth does not matter.
func scanDepth(b []byte, limit int) (depth, offset int) {
	open := 0 // brackets open at i
	for i := 0; i < len(b); i++ {
		switch c := b[i]; c {
		case '[', '{':
			open++
			if open > limit {
				return open, i
			}
			depth = max(depth, open)
		case ']', '}':
			if open > 0 {
				open--
			}
		case '"', '\'':
			for i++; i < len(b) && b[i] != c; i++ {
				if b[i] == '\\' {
					i++
				}
			}
		case '/':
			if i+1 == len(b) {
				break
			}
			switch b[i+1] {
			case '/':
				end := bytes.IndexAny(b[i+2:], "\n\r")
				if end < 0 {
					return depth, len(b)
				}
				i += 2 + end
			case '*':
				star := bytes.IndexByte(b[i+2:], '*')
				if star < 0 {
					return depth, len(b)
				}
				i += 2 + star + 1
				end := bytes.IndexByte(b[i:], '/')
				if end < 0 {
					return depth, len(b)
				}
				i += end
			}
		}
	}
	return depth, len(b)
}
