package configfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Every secret in the fixtures contains this marker (in some case).
const secretMarker = "s3cr3t"

func TestInspectConfig(t *testing.T) {
	type want struct {
		bind, mode      string
		inferred        bool
		token, password bool
		exposed         bool
		secretMissing   bool
		unknown         []string
		files           int
	}
	tests := []struct {
		file string
		err  string // substring of the error; "" = none
		want want
	}{
		{file: "json5-syntax.json5", want: want{bind: "lan", mode: "token", inferred: true, token: true}},
		// docs/verified-versions.md#configuration-examples: "Configuration for Stability", verbatim.
		{file: "guide-stability.json", want: want{bind: "loopback", mode: "none", inferred: true,
			unknown: []string{"reply", "session.historyLimit"}}},
		// docs/verified-versions.md#configuration-examples: "Recommended clawdbot.json additions",
		// verbatim: refused keys, and mode password with only a token.
		{file: "guide-summary.json", want: want{bind: "lan", mode: "password", token: true,
			secretMissing: true, unknown: []string{"session.historyLimit"}}},
		{file: "guide-fixed.json5", want: want{bind: "lan", mode: "token", token: true}},
		{file: "lan-token.json5", want: want{bind: "lan", mode: "token", token: true}},
		{file: "lan-noauth.json5", want: want{bind: "lan", mode: "none", inferred: true, exposed: true}},
		{file: "loopback-noauth.json5", want: want{bind: "loopback", mode: "none", inferred: true}},
		{file: "openclaw-none-lan.json5", want: want{bind: "lan", mode: "none", exposed: true}},
		{file: "openclaw-trusted-proxy.json5", want: want{bind: "lan", mode: "trusted-proxy"}},
		{file: "openclaw-secretref.json5", want: want{bind: "tailnet", mode: "token", inferred: true, token: true}},
		{file: "both-secrets.json5", want: want{bind: "custom", mode: "password", inferred: true, token: true, password: true}},
		{file: "token-mode-blank.json5", want: want{bind: "lan", mode: "token", secretMissing: true}},
		{file: "env-substitution.json5", want: want{bind: "lan", mode: "token", inferred: true, token: true}},
		{file: "odd-values.json5", want: want{bind: "invalid", mode: "a-mode-name-much-longer-than-any", token: true}},
		{file: "secret-in-bind.json5", want: want{bind: "<secret>", mode: "<secret>", token: true}},
		{file: "bom.json", want: want{bind: "lan", mode: "token", inferred: true, token: true}},
		{file: "include-main.json5", want: want{bind: "lan", mode: "token", inferred: true, token: true,
			unknown: []string{"session.historyLimit"}, files: 3}},
		{file: "garbage.json5", err: "invalid JSON5 (syntax error at line 1, column"},
		{file: "empty.json5", err: "invalid JSON5 (unexpected end of input)"},
		{file: "comment-only.json5", err: "invalid JSON5"},
		{file: "array-root.json", err: "top level is not an object"},
		{file: "include-cycle.json5", err: "circular $include"},
		{file: "include-missing.json5", err: "does-not-exist.json5"},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join("testdata", tc.file)
			rep, err := Inspect(path)
			if rep == nil {
				t.Fatalf("no report for an existing file (err %v)", err)
			}
			st, _ := os.Stat(path)
			if !rep.ModTime.Equal(st.ModTime()) || rep.Path != path {
				t.Errorf("path %q mtime %v, want %q %v", rep.Path, rep.ModTime, path, st.ModTime())
			}
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			w := tc.want
			if w.files == 0 {
				w.files = 1
			}
			got := want{bind: rep.Bind, mode: rep.AuthMode, inferred: rep.AuthModeInferred,
				token: rep.TokenSet, password: rep.PasswordSet, exposed: rep.ExposedWithoutAuth,
				secretMissing: rep.AuthSecretMissing, unknown: rep.UnknownKeys, files: rep.Files}
			if fmt.Sprint(got) != fmt.Sprint(w) {
				t.Errorf("got  %+v\nwant %+v", got, w)
			}
		})
	}
}

func TestInspectConfigMissing(t *testing.T) {
	rep, err := Inspect(filepath.Join(t.TempDir(), "clawdbot.json"))
	if rep != nil || err == nil || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: report %v, err %v", rep, err)
	}
	// A directory: an error, with a report (the path exists).
	dir := t.TempDir()
	if rep, err := Inspect(dir); err == nil || rep == nil {
		t.Errorf("directory: report %v, err %v", rep, err)
	}
}

// TestInspectConfigNoSecrets: no report field, printed in every way, and no
// error holds a secret from any fixture.
func TestInspectConfigNoSecrets(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*"))
	if err != nil || len(files) == 0 {
		t.Fatal(err, files)
	}
	for _, f := range files {
		rep, err := Inspect(f)
		out := fmt.Sprintf("%v %+v %#v %v", rep, rep, rep, err)
		if low := strings.ToLower(out); strings.Contains(low, secretMarker) || strings.Contains(low, "your_token") {
			t.Errorf("%s: a secret leaked: %s", f, out)
		}
	}
	// A syntax error right inside a secret.
	path := filepath.Join(t.TempDir(), "c.json5")
	write(t, path, `{gateway:{auth:{token:"s3cr3t`+"\x01"+`rest"}}}`)
	if _, err := Inspect(path); err == nil || strings.Contains(err.Error(), secretMarker) || strings.Contains(err.Error(), "rest") {
		t.Errorf("err = %v", err)
	}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestInspectorCache(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "clawdbot.json")
	inc := filepath.Join(dir, "auth.json5")
	write(t, path, `{gateway: {bind: "lan", auth: {"$include": "./auth.json5"}}}`)
	write(t, inc, `{token: "s3cr3t-a"}`)
	in := &Inspector{}

	check := func(step string, parses int64, exposed bool, wantErr bool) {
		t.Helper()
		rep, err := in.Inspect(path)
		if (err != nil) != wantErr {
			t.Fatalf("%s: err = %v", step, err)
		}
		if got := in.Parses(); got != parses {
			t.Errorf("%s: %d parses, want %d", step, got, parses)
		}
		if err == nil && rep.ExposedWithoutAuth != exposed {
			t.Errorf("%s: exposed = %t, want %t", step, rep.ExposedWithoutAuth, exposed)
		}
	}
	check("first", 1, false, false)
	check("unchanged", 1, false, false)
	check("unchanged again", 1, false, false)

	// The included file changes: same size, new mtime.
	write(t, inc, `{tokeX: "s3cr3t-a"}`)
	future := time.Now().Add(time.Hour)
	if err := os.Chtimes(inc, future, future); err != nil {
		t.Fatal(err)
	}
	check("include changed", 2, true, false)
	check("include unchanged", 2, true, false)

	// Replaced by rename with the same size and mtime: a new inode.
	tmp := filepath.Join(dir, "new.json5")
	write(t, tmp, `{token: "s3cr3t-b"}`)
	if err := os.Chtimes(tmp, future, future); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, inc); err != nil {
		t.Fatal(err)
	}
	check("include replaced", 3, false, false)

	// The main file becomes garbage: the error is cached too.
	write(t, path, `{gateway:`)
	check("garbage", 4, false, true)
	check("garbage unchanged", 4, false, true)

	// A missing include appears.
	write(t, path, `{"$include": "./later.json5"}`)
	check("include missing", 5, false, true)
	write(t, filepath.Join(dir, "later.json5"), `{gateway: {bind: "lan"}}`)
	check("include created", 6, true, false)

	// The main file disappears, comes back.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if rep, err := in.Inspect(path); rep != nil || err == nil {
		t.Fatalf("deleted: %v %v", rep, err)
	}
	write(t, path, `{gateway: {bind: "loopback"}}`)
	check("recreated", 8, false, false)
}

func TestInspectorConcurrent(t *testing.T) {
	path := filepath.Join("testdata", "guide-summary.json")
	in := &Inspector{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				rep, err := in.Inspect(path)
				if err != nil || !slices.Equal(rep.UnknownKeys, []string{"session.historyLimit"}) {
					t.Errorf("%v %v", rep, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestInspectConfigLimits(t *testing.T) {
	dir := t.TempDir()
	// A chain of includes deeper than the gateway allows.
	for i := range 12 {
		write(t, filepath.Join(dir, fmt.Sprintf("%d.json5", i)), fmt.Sprintf(`{"$include": "./%d.json5"}`, i+1))
	}
	write(t, filepath.Join(dir, "12.json5"), `{}`)
	if _, err := Inspect(filepath.Join(dir, "0.json5")); err == nil || !strings.Contains(err.Error(), "deeper than 10") {
		t.Errorf("deep includes: %v", err)
	}
	// Too large.
	big := filepath.Join(dir, "big.json")
	write(t, big, `{"x":"`+strings.Repeat("a", maxConfigSize)+`"}`)
	if _, err := Inspect(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("big file: %v", err)
	}
}

func TestDeepMerge(t *testing.T) {
	a := map[string]any{"x": map[string]any{"a": 1.0, "l": []any{1.0}}, "s": "a"}
	b := map[string]any{"x": map[string]any{"b": 2.0, "l": []any{2.0}}, "s": "b"}
	got := fmt.Sprint(deepMerge(a, b))
	if want := "map[s:b x:map[a:1 b:2 l:[1 2]]]"; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	if fmt.Sprint(a) != "map[s:a x:map[a:1 l:[1]]]" {
		t.Errorf("deepMerge modified its input: %v", a)
	}
}
