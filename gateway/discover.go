package gateway

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/clawdbot-exporter/clawdbot_exporter/gateway/configfile"
	"github.com/clawdbot-exporter/clawdbot_exporter/internal/secret"
)

// Settings describe one gateway as the user configured it (flags or one
// entry of the exporter's config file).
type Settings struct {
	Name         string `yaml:"name"`
	URL          string `yaml:"url"`
	TokenFile    string `yaml:"token_file"`
	PasswordFile string `yaml:"password_file"`
	// ConfigPath is the gateway's own config file, read for its port and
	// credentials; empty means look where the gateway looks.
	ConfigPath string `yaml:"config_path"`
	Profile    string `yaml:"profile"`
	// StateDir is the gateway's state directory (sessions, openclaw's
	// lock); empty means the config file's directory.
	StateDir string `yaml:"state_dir"`
	// TLSFingerprint and TLSCAFile: see Target. Without either, a gateway
	// whose config enables gateway.tls is probed over wss:// with its own
	// certificate pinned.
	TLSFingerprint string `yaml:"tls_fingerprint"`
	TLSCAFile      string `yaml:"tls_ca_file"`
}

// Resolve turns settings into a probe target. Precedence, for each of URL
// and credentials: explicit settings, then the environment (useEnv: only the
// flag-described default gateway shares the gateway's environment), then the
// gateway's own config file, then defaults.
func Resolve(s Settings, env Env, home string, useEnv bool) (Target, error) {
	if !useEnv {
		env = func(string) string { return "" }
	}
	t := Target{Name: s.Name}
	if t.Name == "" {
		t.Name = DefaultName
	}
	var err error
	if s.TLSFingerprint != "" {
		if _, err := ParseFingerprint(s.TLSFingerprint); err != nil {
			return t, fmt.Errorf("gateway %q: %w", t.Name, err)
		}
	}
	t.TLSFingerprint, t.TLSCAFile = s.TLSFingerprint, configfile.ExpandHome(s.TLSCAFile, home)
	if s.TokenFile != "" {
		if t.Token, err = secret.ReadFile(s.TokenFile); err != nil {
			return t, fmt.Errorf("gateway %q: token file: %w", t.Name, err)
		}
		t.Source = "token file " + s.TokenFile
	}
	if s.PasswordFile != "" {
		if t.Password, err = secret.ReadFile(s.PasswordFile); err != nil {
			return t, fmt.Errorf("gateway %q: password file: %w", t.Name, err)
		}
		t.Source = strings.TrimPrefix(t.Source+", password file "+s.PasswordFile, ", ")
	}
	if t.Source == "" {
		for _, product := range []string{"OPENCLAW", "CLAWDBOT"} {
			tok, pw := env(product+"_GATEWAY_TOKEN"), env(product+"_GATEWAY_PASSWORD")
			if tok != "" || pw != "" {
				t.Token, t.Password, t.Source = secret.Secret(tok), secret.Secret(pw), "environment "+product+"_GATEWAY_*"
				break
			}
		}
	}

	// The gateway's own files are the gateway's business: missing or
	// broken, they are a problem to report (ConfigErr), never a reason not
	// to start; the exporter picks them up when they appear.
	configPath := s.ConfigPath
	profile := s.Profile != "" && s.Profile != "default"
	switch {
	case configPath != "":
		configPath = configfile.ExpandHome(configPath, home)
	default:
		configPath = configfile.Find(env, home, s.Profile)
		if configPath == "" && profile {
			// Never fall back to the default gateway's files under
			// this gateway's name.
			t.ConfigErr = fmt.Errorf("profile %q: no gateway config in %s or %s", s.Profile,
				filepath.Join(home, ".openclaw-"+s.Profile), filepath.Join(home, ".clawdbot-"+s.Profile))
		}
	}
	t.ConfigPath = configPath
	t.StateDir = stateDir(s, env, home, configPath)
	var cfg *configfile.Config
	if configPath != "" {
		if cfg, err = configfile.Load(configPath); err != nil {
			t.ConfigErr, cfg = err, nil
		}
	}
	if t.Source == "" && configPath != "" {
		if cfg != nil {
			t.Token, t.Password = cfg.Credentials()
		}
		if t.Token != "" || t.Password != "" || cfg == nil {
			t.Source = "gateway config " + configPath
			t.Creds = &Credentials{ConfigPath: configPath}
		}
	}
	if s.TokenFile != "" || s.PasswordFile != "" {
		t.Creds = &Credentials{TokenFile: s.TokenFile, PasswordFile: s.PasswordFile}
	}
	if t.Source == "" {
		t.Source = "none (the gateway must accept any token)"
	}

	var tlsOn bool
	if cfg != nil {
		if g := cfg.TLS(); g.Enabled {
			tlsOn = true
			t.TLSCertFile = configfile.ExpandHome(g.CertPath, home)
			if t.TLSCertFile == "" {
				// Both products write autoGenerate's certificate here.
				t.TLSCertFile = filepath.Join(t.StateDir, "gateway", "tls", "gateway-cert.pem")
			}
		}
	}
	t.URL = s.URL
	if t.URL == "" && useEnv {
		t.URL = env("OPENCLAW_GATEWAY_URL")
	}
	if t.URL == "" {
		port := 0
		for _, product := range []string{"OPENCLAW", "CLAWDBOT"} {
			if v := env(product + "_GATEWAY_PORT"); v != "" && port == 0 {
				if port, err = strconv.Atoi(v); err != nil || port <= 0 || port > 65535 {
					return t, fmt.Errorf("gateway %q: %s_GATEWAY_PORT=%q is not a port", t.Name, product, v)
				}
			}
		}
		if port == 0 && cfg != nil && cfg.Gateway.Port != nil {
			port = *cfg.Gateway.Port
		}
		t.URL = DefaultURL
		if port > 0 && port <= 65535 {
			t.URL = "ws://127.0.0.1:" + strconv.Itoa(port)
		}
		if tlsOn {
			t.URL = "wss" + strings.TrimPrefix(t.URL, "ws")
		}
	}
	if _, err := ParseURL(t.URL); err != nil {
		return t, fmt.Errorf("gateway %q: %w", t.Name, err)
	}
	return t, nil
}

// stateDir is where the gateway keeps its state: the setting, the
// environment, the config file's directory, or the default home.
func stateDir(s Settings, env Env, home, configPath string) string {
	if s.StateDir == "" && configPath == "" && s.Profile != "" && s.Profile != "default" {
		for _, d := range []string{".openclaw-" + s.Profile, ".clawdbot-" + s.Profile} {
			if st, err := os.Stat(filepath.Join(home, d)); err == nil && st.IsDir() {
				return filepath.Join(home, d)
			}
		}
		return filepath.Join(home, ".openclaw-"+s.Profile)
	}
	switch {
	case s.StateDir != "":
		return configfile.ExpandHome(s.StateDir, home)
	case env("OPENCLAW_STATE_DIR") != "":
		return configfile.ExpandHome(env("OPENCLAW_STATE_DIR"), home)
	case env("CLAWDBOT_STATE_DIR") != "":
		return configfile.ExpandHome(env("CLAWDBOT_STATE_DIR"), home)
	case configPath != "":
		return filepath.Dir(configPath)
	}
	for _, d := range []string{".openclaw", ".clawdbot"} {
		if st, err := os.Stat(filepath.Join(home, d)); err == nil && st.IsDir() {
			return filepath.Join(home, d)
		}
	}
	return filepath.Join(home, ".clawdbot")
}

// WatchPaths are the files whose appearance or change alters what Resolve
// returns for these settings: the gateway config candidates.
func WatchPaths(s Settings, env Env, home string, useEnv bool) []string {
	if !useEnv {
		env = func(string) string { return "" }
	}
	if s.ConfigPath != "" {
		return []string{configfile.ExpandHome(s.ConfigPath, home)}
	}
	return configfile.Candidates(env, home, s.Profile)
}
