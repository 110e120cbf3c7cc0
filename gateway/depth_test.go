package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/titanous/json5"

	gt "github.com/clawdbot-exporter/clawdbot_exporter/gateway/gatewaytest"
)

// nested is prefix, n opening and n closing brackets, then suffix.
func nested(prefix string, n int, suffix string) []byte {
	var b bytes.Buffer
	b.Grow(len(prefix) + 2*n + len(suffix))
	b.WriteString(prefix)
	b.Write(bytes.Repeat([]byte("["), n))
	b.Write(bytes.Repeat([]byte("]"), n))
	b.WriteString(suffix)
	return b.Bytes()
}

// largestDeepConfig is the deepest config under the 4 MiB read limit:
// `{a:` + n × `[` + n × `]` + `}`.
const largestDeepConfig = (maxConfigSize - 4) / 2

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
			if err := checkDepth(b, tc.depth); err != nil {
				t.Errorf("checkDepth(%d): %v", tc.depth, err)
			}
			if tc.depth == 0 {
				return
			}
			err := checkDepth(b, tc.depth-1)
			var de *depthError
			if !errors.As(err, &de) || de.line != tc.line || de.column != tc.column {
				t.Errorf("checkDepth(%d) = %v, want the error at line %d, column %d", tc.depth-1, err, tc.line, tc.column)
			}
			// The decoder never sees deeper than the scan.
			var v any
			if json5.Unmarshal(b, &v) == nil && valueDepth(v) > tc.depth {
				t.Errorf("the decoder reads depth %d, the scan %d", valueDepth(v), tc.depth)
			}
		})
	}
}

// TestDeepDocuments: every JSON or JSON5 document read from disk is refused
// when it nests deeper than maxJSONDepth, as a parse error, before a decoder
// recurses into it. Before, the largest config below the read limit killed
// the process with a stack overflow.
func TestDeepDocuments(t *testing.T) {
	depths := []int{maxJSONDepth + 1, 10_001, 500_000, largestDeepConfig}
	type tcase struct {
		name string
		// run reads a document nested n deep from dir and returns the
		// error the reader reports (nil: accepted).
		run func(t *testing.T, dir string, n int) error
	}
	write := func(t *testing.T, path string, b []byte) string {
		t.Helper()
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	// The wrappers add one level ({a: ... }): n-1 brackets make a document
	// n deep.
	tests := []tcase{
		{"config", func(t *testing.T, dir string, n int) error {
			p := write(t, filepath.Join(dir, "clawdbot.json"), nested("{a:", n-1, "}"))
			rep, err := InspectConfig(p)
			if err != nil && (rep == nil || rep.ModTime.IsZero()) {
				t.Errorf("no report with the modification time beside %v", err)
			}
			return err
		}},
		{"config $include", func(t *testing.T, dir string, n int) error {
			write(t, filepath.Join(dir, "deep.json5"), nested("{a:", n-1, "}"))
			p := write(t, filepath.Join(dir, "clawdbot.json"), []byte(`{gateway: {$include: "./deep.json5"}}`))
			_, err := InspectConfig(p)
			if err != nil && !strings.Contains(err.Error(), "deep.json5") {
				t.Errorf("the error does not name the included file: %v", err)
			}
			return err
		}},
		{"gateway config for credentials", func(t *testing.T, dir string, n int) error {
			_, err := LoadGatewayConfig(write(t, filepath.Join(dir, "clawdbot.json"), nested("{a:", n-1, "}")))
			return err
		}},
		{"lock file", func(t *testing.T, dir string, n int) error {
			n = min(n, maxLockSize/2-20) // the deepest lock that is read
			l := InspectLock(procTree(t, nil), write(t, filepath.Join(dir, "gateway.12345678.lock"), nested(`{"pid":31337,"x":`, n-1, "}")))
			if l.State == OwnerUnknown {
				return errors.New(l.Why)
			}
			return nil
		}},
		{"session store", func(t *testing.T, dir string, n int) error {
			if st := parseStore(nested(`{"agent:main:main":{"updatedAt":1,"x":`, n-2, "}}"), dir); st.bad {
				return errors.New("nested deeper than")
			}
			return nil
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, n := range []int{3, 20, maxJSONDepth} {
				if err := tc.run(t, t.TempDir(), n); err != nil {
					t.Errorf("%d deep: %v", n, err)
				}
			}
			for _, n := range depths {
				err := tc.run(t, t.TempDir(), n)
				if err == nil || !strings.Contains(err.Error(), "nested deeper than") {
					t.Errorf("%d deep: %v, want nested deeper than %d", n, err, maxJSONDepth)
				}
			}
		})
	}
}

func TestDeepConfigParseError(t *testing.T) {
	p := filepath.Join(t.TempDir(), "clawdbot.json")
	if err := os.WriteFile(p, nested("{\n  a: ", largestDeepConfig-10, "}"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := InspectConfig(p)
	want := "config " + p + ": invalid JSON5 (nested deeper than 128 levels at line 2, column 133)"
	if err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
}

// TestProbeDeepPayload: gateway frames are decoded by encoding/json, which
// refuses more than 10000 levels by itself and decodes into fixed types, so
// that nesting costs a pass of its scanner, not recursion. The fake gateway
// cannot send more than 10000 levels (its encoder refuses them too): a bare
// WebSocket server sends those as the challenge.
func TestProbeDeepPayload(t *testing.T) {
	tests := []struct {
		depth int
		want  Reason // "" = up
	}{
		{depth: 100},
		{depth: 9_000},
		{depth: 10_001, want: ReasonBadFrame},
		{depth: 1_000_000, want: ReasonBadFrame},
	}
	for _, tc := range tests {
		url := ""
		if tc.depth < 10_000 {
			srv := gt.New(gt.Options{Health: nested(`{"ok":true,"x":`, tc.depth, "}")})
			defer srv.Close()
			url = srv.URL()
		} else {
			frame := nested(`{"type":"event","event":"connect.challenge","payload":{"x":`, tc.depth, "}}")
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				c, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
				if err != nil {
					return
				}
				defer c.Close()
				_ = c.WriteMessage(websocket.TextMessage, frame)
				_, _, _ = c.ReadMessage()
			}))
			defer srv.Close()
			url = "ws" + strings.TrimPrefix(srv.URL, "http")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := (&Prober{}).Probe(ctx, Target{Name: "gw", URL: url, Token: gt.DefaultToken})
		cancel()
		var pe *ProbeError
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%d deep: %v, want up", tc.depth, err)
		case tc.want != "" && (!errors.As(err, &pe) || pe.Reason != tc.want || !strings.Contains(err.Error(), "max depth")):
			t.Errorf("%d deep: %v, want %s for its depth", tc.depth, err, tc.want)
		}
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
		if err := checkDepth(b, depth); err != nil {
			t.Fatalf("depth %d, yet checkDepth(%d): %v", depth, depth, err)
		}
		if depth > 0 {
			if err := checkDepth(b, depth-1); err == nil {
				t.Fatalf("depth %d, yet checkDepth(%d) accepts it", depth, depth-1)
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
