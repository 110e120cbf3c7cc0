// Package mixinrender renders the monitoring mixin the way `make mixin`
// does, for the tests that check the rendered files (mixin/) and load them
// into a real Prometheus (e2e/). The Makefile's MIXIN_RENDER is the one
// definition of what is rendered.
package mixinrender

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-jsonnet"
)

// Snippet is the Makefile's MIXIN_RENDER, read from root/Makefile.
func Snippet(t testing.TB, root string) string {
	t.Helper()
	mk, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(mk), "\n") {
		if k, v, ok := strings.Cut(l, ":="); ok && strings.TrimSpace(k) == "MIXIN_RENDER" {
			return strings.TrimSpace(v)
		}
	}
	t.Fatal("no MIXIN_RENDER in the Makefile")
	return ""
}

// Render evaluates root/mixin with overrides merged into it (a jsonnet
// object, "" for none) into path -> file content, as `jsonnet -S -m`
// writes them.
func Render(t testing.TB, root, overrides string) map[string]string {
	t.Helper()
	snippet := Snippet(t, root)
	if overrides != "" {
		snippet = strings.Replace(snippet, `import "mixin.libsonnet"`, `(import "mixin.libsonnet") + `+overrides, 1)
	}
	vm := jsonnet.MakeVM()
	vm.Importer(&jsonnet.FileImporter{JPaths: []string{filepath.Join(root, "mixin")}})
	out, err := vm.EvaluateAnonymousSnippetMulti("render.jsonnet", snippet)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for path, v := range out {
		var s string
		if err := json.Unmarshal([]byte(v), &s); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		files[path] = s + "\n" // jsonnet -S -m ends every file with a newline
	}
	return files
}
