package configfile

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/clawdbot-exporter/clawdbot_exporter/internal/secret"
)

// maxConfigSize bounds how much of a gateway config file is read.
const maxConfigSize = 4 << 20

// Config is the part of a gateway's own config file (clawdbot.json /
// openclaw.json, JSON5) the exporter needs.
type Config struct {
	Path    string
	Gateway struct {
		Port *int   `json:"port"`
		Bind string `json:"bind"`
		Auth struct {
			Mode     string        `json:"mode"`
			Token    secret.Secret `json:"token"`
			Password secret.Secret `json:"password"`
		} `json:"auth"`
		// TLSRaw is gateway.tls as written; TLS reads it leniently.
		TLSRaw json.RawMessage `json:"tls"`
	} `json:"gateway"`
}

// Candidates lists where a gateway keeps its config, in the order the
// gateways themselves look (verified on clawdbot 2026.1.24-3 and openclaw
// 2026.9.6): explicit paths and state directories from the environment, the
// profile's directory, then ~/.openclaw and ~/.clawdbot. openclaw moves a
// legacy ~/.clawdbot to ~/.openclaw and keeps the name clawdbot.json. A
// *_PROFILE variable alone does not move a gateway's state directory (only
// its --profile flag does), so profile comes from the exporter's settings.
func Candidates(env Env, home, profile string) []string {
	var out []string
	add := func(p string) {
		if p != "" {
			out = append(out, ExpandHome(p, home))
		}
	}
	add(env("OPENCLAW_CONFIG_PATH"))
	add(env("CLAWDBOT_CONFIG_PATH"))
	if dir := env("OPENCLAW_STATE_DIR"); dir != "" {
		add(filepath.Join(dir, "openclaw.json"))
		add(filepath.Join(dir, "clawdbot.json"))
	}
	if dir := env("CLAWDBOT_STATE_DIR"); dir != "" {
		add(filepath.Join(dir, "clawdbot.json"))
	}
	suffix := ""
	if profile != "" && profile != "default" {
		suffix = "-" + profile
	}
	add(filepath.Join(home, ".openclaw"+suffix, "openclaw.json"))
	add(filepath.Join(home, ".openclaw"+suffix, "clawdbot.json"))
	add(filepath.Join(home, ".clawdbot"+suffix, "clawdbot.json"))
	return out
}

// Find returns the first candidate that exists, or "" when none does.
func Find(env Env, home, profile string) string {
	for _, p := range Candidates(env, home, profile) {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// Load reads a gateway's JSON5 config file.
func Load(path string) (*Config, error) {
	// One reader for the file, with $include resolved as the gateway
	// resolves it (the same one Inspect uses), then the typed view.
	root, err := (&includeReader{}).load(path, 0, nil)
	if err != nil {
		return nil, fmt.Errorf("gateway %w", err)
	}
	b, err := json.Marshal(root)
	if err != nil {
		return nil, fmt.Errorf("gateway config %s: %w", path, err)
	}
	cfg := &Config{Path: path}
	if err := json.Unmarshal(b, cfg); err != nil {
		// The message names a type, never the document: no secret leaks.
		return nil, fmt.Errorf("gateway config %s: invalid JSON5: %s", path, typeError(err))
	}
	return cfg, nil
}

// typeError says which field had the wrong type, without its value.
func typeError(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("%s must be %s, not %s", te.Field, te.Type, te.Value)
	}
	return "wrong type"
}

// ExpandHome expands a leading ~ as a shell does.
func ExpandHome(p, home string) string {
	if p == "~" {
		return home
	}
	if strings.HasPrefix(p, "~/") {
		return filepath.Join(home, p[2:])
	}
	return p
}

// Env reads environment variables; tests pass a map's lookup.
type Env func(key string) string

// Credentials picks the secrets the gateway's auth mode uses.
func (cfg *Config) Credentials() (token, password secret.Secret) {
	a := cfg.Gateway.Auth
	switch a.Mode {
	case "password":
		return "", a.Password
	case "token":
		return a.Token, ""
	}
	return a.Token, a.Password
}
