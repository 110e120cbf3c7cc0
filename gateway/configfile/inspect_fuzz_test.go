package configfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzInspect: whatever a gateway's config file holds (JSON5, $include,
// deep nesting, junk), the inspection returns a report or an error, never
// panics, and never puts a secret in a label value.
func FuzzInspect(f *testing.F) {
	for _, seed := range []string{
		`{gateway: {bind: "lan", auth: {mode: "token", token: "s3cr3t-fuzz"}}}`,
		`{gateway: {$include: "./x.json5"}, session: {historyLimit: 1}}`,
		`// c
{'a': [1, 2, {b: null}], "gateway": {"tls": {"enabled": true}}}`,
		`{gateway: {bind: "s3cr3t-fuzz", auth: {token: "s3cr3t-fuzz"}}}`,
		`{"s3cr3t-fuzz": 1, gateway: {auth: {token: "s3cr3t-fuzz"}}}`,
		"\ufeff{}", `[`, ``,
	} {
		f.Add([]byte(seed))
	}
	schema, err := CompileSchema([]byte(`{"schema": {"type": "object", "properties": {"gateway": {"type": "object", "additionalProperties": false, "properties": {"bind": {}, "auth": {}}}}, "additionalProperties": false}}`))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		dir := t.TempDir()
		p := filepath.Join(dir, "openclaw.json")
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		_ = os.WriteFile(filepath.Join(dir, "x.json5"), []byte(`{port: 1}`), 0o600)
		rep, err := Inspect(p)
		if err != nil || rep == nil {
			return
		}
		if !rep.TokenSet || !strings.Contains(string(b), `"s3cr3t-fuzz"`) {
			return // only the file's own secret must never show
		}
		for _, l := range append([]string{rep.Bind, rep.AuthMode}, schema.UnknownKeys(rep)...) {
			if strings.Contains(l, "s3cr3t-fuzz") {
				t.Fatalf("a secret in a label: %q", l)
			}
		}
	})
}
