package configfile

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/clawdbot-exporter/clawdbot_exporter/internal/testutil"
)

// realSchema is openclaw 2026.9.6's own config schema, compiled.
func realSchema(t testing.TB) *Schema {
	t.Helper()
	s, err := CompileSchema(testutil.RealConfigSchema(t, "../testdata/real/openclaw-config.schema.json.gz"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSchemaUnknownKeys(t *testing.T) {
	s := realSchema(t)
	if s.Version != "2026.9.6" {
		t.Errorf("version %q", s.Version)
	}
	base := `"gateway": {"mode": "local", "port": 18789, "bind": "loopback", "auth": {"mode": "token", "token": "T"}}, "plugins": {"enabled": false}`
	for _, tc := range []struct {
		name, doc string
		want      []string
	}{
		{"the minimal config the tests start gateways with", `{` + base + `}`, nil},
		{"TLS and a channel", `{` + base + `, "channels": {"telegram": {"enabled": false, "botToken": "x"}}, "session": {"reset": {"mode": "daily", "atHour": 4}}}`, nil},
		{"session.historyLimit (advice in docs/verified-versions.md#configuration-examples)", `{` + base + `, "session": {"historyLimit": 50}}`, []string{"session.historyLimit"}},
		{"an unknown root key", `{` + base + `, "reply": {"mode": "text"}}`, []string{"reply"}},
		{"an unknown key deep in a strict object", `{"gateway": {"mode": "local", "auth": {"mode": "token", "tokn": "T"}}}`, []string{"gateway.auth.tokn"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "openclaw.json")
			if err := os.WriteFile(p, []byte(tc.doc), 0o600); err != nil {
				t.Fatal(err)
			}
			rep, err := Inspect(p)
			if err != nil {
				t.Fatal(err)
			}
			if got := s.UnknownKeys(rep); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("unknown keys %v, want %v", got, tc.want)
			}
		})
	}
}

func TestCompileSchemaHostile(t *testing.T) {
	for name, doc := range map[string]string{
		"not JSON":       `{"schema":`,
		"not object":     `{"schema": {"type": "string"}}`,
		"deep":           `{"schema": ` + string(bytes.Repeat([]byte(`{"items":`), 1000)) + `{}` + string(bytes.Repeat([]byte(`}`), 1000)) + `}`,
		"ref to nowhere": `{"schema": {"type": "object", "properties": {"a": {"$ref": "#/nope"}}, "additionalProperties": false}}`,
	} {
		s, err := CompileSchema([]byte(doc))
		if name == "ref to nowhere" {
			if err != nil || s == nil {
				t.Errorf("%s: %v", name, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: compiled", name)
		}
	}
}

// A recursive $ref compiles (and does not loop).
func TestSchemaRecursiveRef(t *testing.T) {
	s, err := CompileSchema([]byte(`{"schema": {"$defs": {"n": {"type": "object", "properties": {"child": {"$ref": "#/$defs/n"}, "v": {}}, "additionalProperties": false}}, "$ref": "#/$defs/n"}}`))
	if err != nil {
		t.Fatal(err)
	}
	rep := &Report{tree: map[string]any{"child": map[string]any{"child": map[string]any{"x": 1.0}, "v": 1.0}}}
	if got := s.UnknownKeys(rep); !reflect.DeepEqual(got, []string{"child.child.x"}) {
		t.Errorf("unknown keys %v", got)
	}
}
