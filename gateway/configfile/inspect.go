package configfile

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/titanous/json5"

	"github.com/clawdbot-exporter/clawdbot_exporter/internal/fileio"
	"github.com/clawdbot-exporter/clawdbot_exporter/internal/secret"
)

// This file inspects a gateway's own config file, read-only, for settings
// that make the gateway refuse to start or expose it: the bind address
// without auth, and keys the gateway's strict schema refuses although
// popular guides recommend them (docs/local-state.md#schema-strictness).
//
// What the gateway does, checked in the npm packages clawdbot@2026.1.24-3
// (dist/config/zod-schema*.js, dist/config/io.js, dist/config/includes.js,
// dist/gateway/auth.js, dist/cli/gateway-cli/run.js) and openclaw@2026.9.6
// (dist/zod-schema-*.mjs, dist/run-*.mjs, dist/auth-resolve-*.mjs,
// dist/startup-auth-*.mjs), and where noted on a running clawdbot:
//
//   - The file is JSON5. `$include` (a path or a list of paths, relative
//     to the including file, at most 10 deep) is replaced by the included
//     files' content, deep-merged with its sibling keys (objects merge,
//     arrays concatenate, scalars: the sibling wins) before validation. A
//     token kept in an included file secures a lan bind (verified). The
//     decoder used here, like Load's, refuses three rare JSON5
//     forms the gateway accepts (\xHH escapes, non-ASCII unquoted keys, a
//     block comment with a '/' after a '*' before its end, which the decoder
//     takes for the end), and both refuse a file nested deeper than
//     fileio.MaxDepth (128) levels: such a file shows as unparseable.
//   - bind: `gateway.bind`, "loopback" when absent. Any other bind without
//     auth is refused at start: "Refusing to bind gateway to lan without
//     auth." (verified). clawdbot judges by the bind's name (auto, custom
//     and tailnet count as beyond loopback), and so does this inspection;
//     openclaw judges by the resolved host (custom 127.0.0.1 is loopback
//     there), and in a container its default bind is "auto" (0.0.0.0). A
//     --bind flag overrides the file; this inspection sees the file only.
//   - auth: mode = `gateway.auth.mode`, else inferred: password when a
//     password is set, else token when a token is set, else none (clawdbot;
//     openclaw names the last case token and generates an ephemeral one,
//     which changes nothing for a non-loopback bind: it refuses that too).
//     clawdbot accepts only the modes token and password (mode "none" is an
//     invalid config there, verified); openclaw also none and
//     trusted-proxy, and refuses none on a non-loopback bind as well.
//   - Mode password with no password (docs/local-state.md#bind-and-auth-rules;
//     the example in docs/verified-versions.md#configuration-examples has
//     mode password with only a token) is refused at start: "Gateway auth
//     is set to password, but no password is configured." (verified).
//   - The gateway also takes the token and password from its environment
//     (CLAWDBOT_GATEWAY_TOKEN / CLAWDBOT_GATEWAY_PASSWORD, OPENCLAW_*), and
//     substitutes ${VAR} in config strings. The exporter cannot see another
//     process's environment, so a secret provided only there is invisible
//     here: ExposedWithoutAuth and AuthSecretMissing describe the file, and
//     are false alarms for a gateway that gets its secret from the
//     environment. A "${VAR}" string counts as set.

const (
	// maxConfigFiles bounds how many files one inspection reads ($include).
	maxConfigFiles   = 32
	maxIncludeDepth  = 10 // the gateway's own limit
	maxConfigLabel   = 32 // bytes of a bind or auth mode value kept for labels
	invalidLabel     = "invalid"
	defaultBind      = "loopback"
	includeDirective = "$include"
)

// KnownBadKey is a config key the gateway's strict schema refuses (the
// gateway does not start) although guides recommend it
// (docs/local-state.md#schema-strictness).
type KnownBadKey struct {
	// Key is the dotted path, as the gateway's error names it.
	Key string
	// Instead says what exists instead.
	Instead string
}

// knownBadKeys is a fixed allowlist of known-bad keys, not a reimplementation
// of the schema. Each entry was checked against both schemas (see above) and,
// for clawdbot, by starting the real gateway with the key:
//
//   - session.historyLimit (docs/verified-versions.md#configuration-examples): clawdbot's and
//     openclaw's session schemas are strict and have no historyLimit;
//     clawdbot exits with `session: Unrecognized key: "historyLimit"`.
//   - reply (reply.timeoutSeconds, same examples): neither root schema
//     has a `reply` section; clawdbot exits with `<root>: Unrecognized key:
//     "reply"`.
//
// Recommended by the same examples and accepted by both schemas (clawdbot
// started with all of them): session.reset.mode "daily", session.reset.atHour,
// session.reset.idleMinutes, logging.level, logging.consoleLevel "debug",
// logging.consoleStyle "pretty", gateway.bind, gateway.auth.mode,
// gateway.auth.token.
var knownBadKeys = []KnownBadKey{
	{Key: "session.historyLimit", Instead: "channels.<channel>.historyLimit, channels.<channel>.dmHistoryLimit, messages.groupChat.historyLimit"},
	{Key: "reply", Instead: "no such section; the agent run timeout is agents.defaults.timeoutSeconds"},
}

// KnownBadKeys lists the keys Inspect reports when present.
func KnownBadKeys() []KnownBadKey {
	return append([]KnownBadKey(nil), knownBadKeys...)
}

// Report is what Inspect learned about one gateway config. It
// never holds a secret, only whether one is set. Treat it as read-only: an
// Inspector hands the same report to every caller until the files change.
type Report struct {
	Path string
	// ModTime is the config file's modification time.
	ModTime time.Time
	// Files is how many files were read: the config and its includes.
	Files int

	// Bind is gateway.bind as configured, "loopback" when absent,
	// "invalid" when not a non-empty string; at most 32 bytes.
	Bind string
	// AuthMode is gateway.auth.mode as configured ("invalid" when not a
	// non-empty string; at most 32 bytes), else the mode the gateway
	// infers: password, token or none. AuthModeInferred tells which.
	AuthMode         string
	AuthModeInferred bool
	// TokenSet and PasswordSet: the file sets gateway.auth.token /
	// gateway.auth.password (a non-blank string, or an openclaw SecretRef
	// object).
	TokenSet    bool
	PasswordSet bool

	// ExposedWithoutAuth: the bind is not loopback and the auth mode is
	// none (configured or inferred). Both gateways refuse to start like
	// that; trusted-proxy counts as auth.
	ExposedWithoutAuth bool
	// AuthSecretMissing: the mode is token or password but the file sets
	// no secret of that kind. clawdbot refuses to start like that unless
	// its environment supplies one (openclaw too for password; for token it
	// generates one).
	AuthSecretMissing bool

	// UnknownKeys are the known-bad keys present, sorted.
	UnknownKeys []string
	// Product is openclaw or clawdbot, from where the file lives.
	Product string
	// TLS: gateway.tls.enabled is true (openclaw serves wss://).
	TLS bool

	// tree is the document's shape, $include resolved, for a schema check:
	// its objects and lists with every value dropped, so no secret stays.
	tree map[string]any
	// redact keeps the file's token and password out of key labels; a
	// func, so that printing a Report shows no secret either.
	redact func(string) string
}

// Inspect reads and inspects a gateway config file and its includes.
// When the file exists but cannot be read or parsed, it returns the error and
// a report holding only Path and ModTime. Errors never quote the file's
// content.
func Inspect(path string) (*Report, error) {
	rep, _, err := inspect(path)
	return rep, err
}

func inspect(path string) (*Report, []fileio.Stamp, error) {
	r := &includeReader{}
	root, err := r.load(path, 0, nil)
	main := r.stamps[0]
	if !main.Exists {
		return nil, r.stamps, fmt.Errorf("config %s: %w", path, main.Err)
	}
	rep := &Report{Path: path, ModTime: main.ModTime(), Files: len(r.stamps), Product: Product(path)}
	if err != nil {
		return rep, r.stamps, err
	}
	obj, ok := root.(map[string]any)
	if !ok {
		return rep, r.stamps, fmt.Errorf("config %s: the top level is not an object", path)
	}
	rep.fill(obj)
	rep.tree, _ = keysOnly(obj, 0).(map[string]any)
	return rep, r.stamps, nil
}

func (rep *Report) fill(root map[string]any) {
	gw, _ := root["gateway"].(map[string]any)
	auth, _ := gw["auth"].(map[string]any)
	token, password := auth["token"], auth["password"]
	rep.TokenSet, rep.PasswordSet = secretSet(token), secretSet(password)
	// A label must not show a secret even when one was pasted in the wrong
	// field.
	var secrets []secret.Secret
	for _, v := range []any{token, password} {
		if s, ok := v.(string); ok {
			secrets = append(secrets, secret.Secret(s))
		}
	}

	rep.redact = func(s string) string { return secret.Redact(s, secrets...) }
	rep.Bind = labelValue(gw["bind"], defaultBind, secrets)
	if tls, ok := gw["tls"].(map[string]any); ok {
		rep.TLS = tls["enabled"] == true
	}
	if m, present := auth["mode"]; present && m != nil {
		rep.AuthMode = labelValue(m, invalidLabel, secrets)
	} else {
		rep.AuthModeInferred = true
		switch {
		case rep.PasswordSet:
			rep.AuthMode = "password"
		case rep.TokenSet:
			rep.AuthMode = "token"
		case rep.Product == "openclaw":
			// openclaw's default mode is token: with no token it makes
			// one up at each start that nobody else knows.
			rep.AuthMode = "token"
		default:
			rep.AuthMode = "none"
		}
	}
	// openclaw's inferred token mode without a token is no better: the
	// token it makes up is nobody's.
	rep.ExposedWithoutAuth = rep.Bind != defaultBind &&
		(rep.AuthMode == "none" || rep.AuthModeInferred && !rep.TokenSet && !rep.PasswordSet)
	rep.AuthSecretMissing = rep.AuthMode == "token" && !rep.TokenSet ||
		rep.AuthMode == "password" && !rep.PasswordSet

	for _, k := range knownBadKeys {
		if hasKey(root, strings.Split(k.Key, ".")) {
			rep.UnknownKeys = append(rep.UnknownKeys, k.Key)
		}
	}
	sort.Strings(rep.UnknownKeys)
}

// secretSet follows the gateway: a non-blank string, or (openclaw) a
// SecretRef object.
func secretSet(v any) bool {
	switch s := v.(type) {
	case string:
		return strings.TrimSpace(s) != ""
	case map[string]any:
		return len(s) > 0
	}
	return false
}

// labelValue is a config string fit for a label: absent (or null, which the
// gateway treats as absent) gives def, anything but a non-empty string
// "invalid"; long values are cut, and a value holding a secret is replaced.
func labelValue(v any, def string, secrets []secret.Secret) string {
	if v == nil {
		return def
	}
	s, ok := v.(string)
	if !ok || s == "" {
		return invalidLabel
	}
	if secret.Redact(s, secrets...) != s {
		return secret.Redacted
	}
	if len(s) > maxConfigLabel {
		s = s[:maxConfigLabel] // a rune cut in two becomes "?"
	}
	return strings.ToValidUTF8(s, "?")
}

func hasKey(obj map[string]any, path []string) bool {
	for i, k := range path {
		v, ok := obj[k]
		if !ok {
			return false
		}
		if i == len(path)-1 {
			return true
		}
		if obj, ok = v.(map[string]any); !ok {
			return false
		}
	}
	return false
}

// includeReader resolves $include the way the gateway does.
type includeReader struct {
	stamps []fileio.Stamp
}

// load reads, parses and resolves one file. chain holds the files being
// included, to refuse cycles as the gateway does.
func (r *includeReader) load(path string, depth int, chain []string) (any, error) {
	if len(r.stamps) >= maxConfigFiles {
		return nil, fmt.Errorf("config %s: more than %d files included", path, maxConfigFiles)
	}
	// Stamp before reading: content read afterwards is at least as new,
	// so a cache keyed by the stamp is never stale for longer than one
	// inspection.
	r.stamps = append(r.stamps, fileio.StampOf(path))
	b, err := fileio.ReadFileBounded(path, maxConfigSize)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	// JSON5 counts a byte-order mark as white space; the decoder does not.
	b = bytes.TrimPrefix(b, []byte("\ufeff"))
	// The decoder and resolve recurse once per level: bound the nesting
	// before either sees the document.
	if err := fileio.CheckDepth(b, fileio.MaxDepth); err != nil {
		return nil, fmt.Errorf("config %s: invalid JSON5 (%w)", path, err)
	}
	var v any
	if err := json5.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("config %s: invalid JSON5%s", path, syntaxPosition(b, err))
	}
	chain = append(slices.Clip(chain), filepath.Clean(path))
	return r.resolve(v, path, depth, chain)
}

// syntaxPosition locates a JSON5 error without quoting the document: the
// decoder's message names the offending character, which may be part of a
// secret.
func syntaxPosition(b []byte, err error) string {
	var se *json5.SyntaxError
	if !errors.As(err, &se) {
		return ""
	}
	off := min(max(se.Offset, 0), int64(len(b)))
	line := 1 + strings.Count(string(b[:off]), "\n")
	col := off - int64(strings.LastIndexByte(string(b[:off]), '\n'))
	if strings.Contains(se.Error(), "unexpected end") {
		return " (unexpected end of input)"
	}
	return fmt.Sprintf(" (syntax error at line %d, column %d)", line, col)
}

func (r *includeReader) resolve(v any, path string, depth int, chain []string) (any, error) {
	switch t := v.(type) {
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			var err error
			if out[i], err = r.resolve(e, path, depth, chain); err != nil {
				return nil, err
			}
		}
		return out, nil
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			if k == includeDirective {
				continue
			}
			var err error
			if out[k], err = r.resolve(e, path, depth, chain); err != nil {
				return nil, err
			}
		}
		inc, ok := t[includeDirective]
		if !ok {
			return out, nil
		}
		included, err := r.include(inc, path, depth, chain)
		if err != nil {
			return nil, err
		}
		if len(out) == 0 {
			return included, nil
		}
		if _, ok := included.(map[string]any); !ok {
			return nil, fmt.Errorf("config %s: %s beside other keys must include an object", path, includeDirective)
		}
		return deepMerge(included, out), nil
	}
	return v, nil
}

func (r *includeReader) include(v any, from string, depth int, chain []string) (any, error) {
	var paths []string
	switch t := v.(type) {
	case string:
		paths = []string{t}
	case []any:
		for _, e := range t {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("config %s: %s list item is not a string", from, includeDirective)
			}
			paths = append(paths, s)
		}
	default:
		return nil, fmt.Errorf("config %s: %s is neither a path nor a list of paths", from, includeDirective)
	}
	var merged any = map[string]any{}
	for _, p := range paths {
		if !filepath.IsAbs(p) {
			p = filepath.Join(filepath.Dir(from), p)
		}
		p = filepath.Clean(p)
		if slices.Contains(chain, p) {
			return nil, fmt.Errorf("config %s: circular %s of %s", from, includeDirective, p)
		}
		if depth >= maxIncludeDepth {
			return nil, fmt.Errorf("config %s: %s deeper than %d", from, includeDirective, maxIncludeDepth)
		}
		got, err := r.load(p, depth+1, chain)
		if err != nil {
			return nil, err
		}
		if _, single := v.(string); single {
			return got, nil
		}
		merged = deepMerge(merged, got)
	}
	return merged, nil
}

// deepMerge is the gateway's: arrays concatenate, objects merge recursively,
// otherwise src wins.
func deepMerge(dst, src any) any {
	if a, ok := dst.([]any); ok {
		if b, ok := src.([]any); ok {
			return append(append([]any(nil), a...), b...)
		}
	}
	a, okA := dst.(map[string]any)
	b, okB := src.(map[string]any)
	if !okA || !okB {
		return src
	}
	out := make(map[string]any, len(a)+len(b))
	maps.Copy(out, a)
	for k, v := range b {
		if old, ok := out[k]; ok {
			out[k] = deepMerge(old, v)
		} else {
			out[k] = v
		}
	}
	return out
}

// Inspector caches Inspect per path: a scrape stats the config and its
// includes and parses again only when one of them changed (inode, size or
// mtime). Safe for concurrent use.
type Inspector struct {
	mu     sync.Mutex
	cache  map[string]*inspection
	parses atomic.Int64
}

type inspection struct {
	stamps []fileio.Stamp
	report *Report
	err    error
}

// Inspect is Inspect, cached.
func (in *Inspector) Inspect(path string) (*Report, error) {
	in.mu.Lock()
	cached := in.cache[path]
	in.mu.Unlock()
	if cached != nil && fresh(cached.stamps) {
		return cached.report, cached.err
	}
	in.parses.Add(1)
	rep, stamps, err := inspect(path)
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.cache == nil {
		in.cache = map[string]*inspection{}
	}
	if rep == nil {
		// Missing main file: nothing worth caching, a stat is the check.
		delete(in.cache, path)
	} else {
		in.cache[path] = &inspection{stamps: stamps, report: rep, err: err}
	}
	return rep, err
}

// Parses counts the inspections that read files rather than the cache.
func (in *Inspector) Parses() int64 { return in.parses.Load() }

func fresh(stamps []fileio.Stamp) bool {
	for _, s := range stamps {
		if !s.Same(fileio.StampOf(s.Path)) {
			return false
		}
	}
	return true
}

// Product tells which product a config file is for from where it lives:
// openclaw reads openclaw.json, and ~/.openclaw (or a profile's
// ~/.openclaw-<p>) even under the legacy name clawdbot.json.
func Product(path string) string {
	if filepath.Base(path) == "openclaw.json" {
		return "openclaw"
	}
	for _, dir := range strings.Split(filepath.ToSlash(filepath.Dir(path)), "/") {
		if dir == ".openclaw" || strings.HasPrefix(dir, ".openclaw-") {
			return "openclaw"
		}
	}
	return "clawdbot"
}

// keysOnly copies a document's objects and lists, dropping every other
// value.
func keysOnly(v any, depth int) any {
	if depth > fileio.MaxDepth {
		return nil
	}
	switch val := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(val))
		for k, e := range val {
			out[k] = keysOnly(e, depth+1)
		}
		return out
	case []any:
		out := make([]any, len(val))
		for i, e := range val {
			out[i] = keysOnly(e, depth+1)
		}
		return out
	}
	return nil
}
