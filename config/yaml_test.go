package config

import (
	"strings"
	"testing"
)

// TestYAMLErrorLines: every YAML error names the line of the problem, on
// one line of text.
func TestYAMLErrorLines(t *testing.T) {
	for _, tc := range []struct {
		name, doc, want string
	}{
		{"indentation on line 4", "gateways:\n  - name: main\n    url: ws://127.0.0.1:18789\n   token_file: /x\n", "yaml: line 4: "},
		{"indentation deeper down", "gateways:\n  - name: a\n    url: ws://127.0.0.1:1\n  - name: b\n    url: ws://127.0.0.1:2\n     token_file: /x\n", "yaml: line 6: "},
		{"tab on line 3", "gateways:\n  - name: main\n\turl: ws://127.0.0.1:1\n", "yaml: line 3: "},
		{"unclosed quote on line 3", "gateways:\n  - name: main\n    url: \"ws://127.0.0.1:1\n", "yaml: line 3: "},
		{"mapping in a value on line 2", "gateways:\n  - name: main: x\n", "yaml: line 2: "},
		{"error on line 1", "gateways: [\n", "yaml: line 1: "},
		{"unknown key on line 4", "gateways:\n  - name: main\n    url: ws://127.0.0.1:1\n    nope: 1\n", "line 4: field nope not found"},
		{"two type errors", "gateways:\n  - name: main\n    nope: 1\n    other: 2\n", "line 3: field nope not found in type gateway.Settings; line 4: field other not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.doc))
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%q, want it to contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error on more than one line: %q", err)
			}
		})
	}
}
