package fileio

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"testing"

	"github.com/titanous/json5"
)

func TestCheckDepth(t *testing.T) {
	tests := []struct {
		name  string
		doc   string
		depth int // scanDepth with no limit in reach
		// line and column of the bracket past a limit of depth-1
		line, column int
	}{
		{name: "empty", doc: "", depth: 0},
		{name: "scalar", doc: `"x"`, depth: 0},
		{name: "object", doc: `{}`, depth: 1, line: 1, column: 1},
		{name: "arrays", doc: `[[[]]]`, depth: 3, line: 1, column: 3},
		{name: "siblings do not add up", doc: `{"a":[1],"b":{"c":[2]},"d":[[]]}`, depth: 3, line: 1, column: 19},
		{name: "brackets in a string", doc: `{"a":"[[[[{{{{"}`, depth: 1, line: 1, column: 1},
		{name: "escaped quote", doc: `{"a":"\"[[[[","b":[]}`, depth: 2, line: 1, column: 19},
		{name: "escaped backslash ends the string", doc: `{"a":"\\",b:[[]]}`, depth: 3, line: 1, column: 14},
		{name: "single quotes", doc: `{'a':'[[[[ "'}`, depth: 1, line: 1, column: 1},
		{name: "double quote in single quotes", doc: `{a:'"',b:[]}`, depth: 2, line: 1, column: 10},
		{name: "line comment", doc: "{a:1, // [[[[ 'x\n b:[]}", depth: 2, line: 2, column: 4},
		{name: "line comment ends at CR", doc: "{a:1, // [[[[\r b:[]}", depth: 2, line: 1, column: 18},
		{name: "block comment", doc: "{a:/* [[[[ \" */[]}", depth: 2, line: 1, column: 16},
		{name: "block comment over lines", doc: "{\n/* [[\n[[ */\n a:[]}", depth: 2, line: 4, column: 4},
		{name: "/*/ does not close", doc: `/*/ [[ */{}`, depth: 1, line: 1, column: 10},
		// The decoder ends a block comment at the first '/' after a '*'.
		{name: "block comment as the decoder reads it", doc: `{a:/* * / [[ */1}`, depth: 3, line: 1, column: 12},
		{name: "unterminated string", doc: `{"a":"[[[[`, depth: 1, line: 1, column: 1},
		{name: "unterminated comment", doc: `{/* [[[[`, depth: 1, line: 1, column: 1},
		{name: "unterminated comment after a star", doc: `{/* * [[[[`, depth: 1, line: 1, column: 1},
		{name: "unterminated line comment", doc: `{// [[[[`, depth: 1, line: 1, column: 1},
		{name: "lone slash at the end", doc: `{}/`, depth: 1, line: 1, column: 1},
		{name: "closing first", doc: `]]]]{{`, depth: 2, line: 1, column: 6},
		{name: "backslash at the end", doc: `["\`, depth: 1, line: 1, column: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := []byte(tc.doc)
			if got, _ := scanDepth(b, 1<<30); got != tc.depth {
				t.Errorf("depth %d, want %d", got, tc.depth)
			}
			if err := CheckDepth(b, tc.depth); err != nil {
				t.Errorf("CheckDepth(%d): %v", tc.depth, err)
			}
			if tc.depth == 0 {
				return
			}
			err := CheckDepth(b, tc.depth-1)
			var de *depthError
			if !errors.As(err, &de) || de.line != tc.line || de.column != tc.column {
				t.Errorf("CheckDepth(%d) = %v, want the error at line %d, column %d", tc.depth-1, err, tc.line, tc.column)
			}
			// The decoder never sees deeper than the scan.
			var v any
			if json5.Unmarshal(b, &v) == nil && valueDepth(v) > tc.depth {
				t.Errorf("the decoder reads depth %d, the scan %d", valueDepth(v), tc.depth)
			}
		})
	}
}

// valueDepth is how deeply a decoded JSON value nests: 0 for a scalar.
func valueDepth(v any) int {
	d := 0
	switch t := v.(type) {
	case []any:
		for _, e := range t {
			d = max(d, valueDepth(e))
		}
		return d + 1
	case map[string]any:
		for _, e := range t {
			d = max(d, valueDepth(e))
		}
		return d + 1
	}
	return 0
}

// tokenDepth is how deeply a JSON document nests, from encoding/json's
// tokens (which, unlike a decoded value, keep duplicate keys); ok is false
// when it is not one valid JSON value.
func tokenDepth(b []byte) (depth int, ok bool) {
	if !json.Valid(b) {
		return 0, false
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	open := 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return depth, true
		}
		if err != nil {
			return 0, false
		}
		switch tok {
		case json.Delim('['), json.Delim('{'):
			open++
			depth = max(depth, open)
		case json.Delim(']'), json.Delim('}'):
			open--
		}
	}
}

// FuzzCheckDepth compares the pre-scan with the decoders: for JSON it is
// exact, and the JSON5 decoder never reads a document deeper than it.
func FuzzCheckDepth(f *testing.F) {
	for _, s := range []string{
		`{}`, `[[[]]]`, `{"a":"[[["}`, `{'a':'[[["'}`, "{a:1 // [[\n}", "{a:/* [[ */1}",
		`{a:/* * / [[1]] */1}`, `{"a":"\\",b:[[]]}`, `{"a":{"a":[]},"a":1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		depth, _ := scanDepth(b, 1<<30)
		if err := CheckDepth(b, depth); err != nil {
			t.Fatalf("depth %d, yet CheckDepth(%d): %v", depth, depth, err)
		}
		if depth > 0 {
			if err := CheckDepth(b, depth-1); err == nil {
				t.Fatalf("depth %d, yet CheckDepth(%d) accepts it", depth, depth-1)
			}
		}
		if want, ok := tokenDepth(b); ok && want != depth {
			t.Fatalf("JSON %q: encoding/json reads depth %d, the scan %d", b, want, depth)
		}
		var v any
		if json5.Unmarshal(b, &v) == nil {
			if got := valueDepth(v); got > depth {
				t.Fatalf("JSON5 %q: the decoder reads depth %d, the scan %d", b, got, depth)
			}
		}
	})
}
