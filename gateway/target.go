package gateway

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/clawdbot-exporter/clawdbot_exporter/gateway/configfile"
	"github.com/clawdbot-exporter/clawdbot_exporter/internal/secret"
)

// DefaultURL is where a gateway listens unless told otherwise (gateway.md §1).
const DefaultURL = "ws://127.0.0.1:18789"

// DefaultName labels the gateway described by the command-line flags.
const DefaultName = "default"

// Target is one gateway to probe: where it is and how to authenticate.
type Target struct {
	Name     string
	URL      string
	Token    secret.Secret
	Password secret.Secret
	// Source says where the credentials came from (flag, env, config file
	// path): logged at start so an operator can tell which one is used.
	Source string
	// ConfigPath is the gateway's own config file as the gateway names it
	// (its lock file name is a hash of this string); empty when none was
	// found. StateDir holds its sessions and, for openclaw, its lock.
	ConfigPath string
	StateDir   string
	// Creds, when set, re-reads Token and Password from their files; the
	// two fields then hold the values read at start.
	Creds *Credentials
	// ConfigErr says why the gateway's own config could not be used (not
	// found, unreadable, invalid); the target is probed all the same.
	ConfigErr error
}

// Secrets are the target's token and password as of now.
func (t Target) Secrets() (token, password secret.Secret, err error) {
	if t.Creds == nil {
		return t.Token, t.Password, nil
	}
	return t.Creds.Get()
}

// Validate reports a target that can never be probed.
func (t Target) Validate() error {
	if t.Name == "" {
		return fmt.Errorf("gateway without a name")
	}
	_, err := ParseURL(t.URL)
	if err != nil {
		return fmt.Errorf("gateway %q: %w", t.Name, err)
	}
	return nil
}

// ParseURL accepts ws://, wss://, http:// and https:// gateway URLs and
// returns the WebSocket form. A bare host:port means ws://host:port.
func ParseURL(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, fmt.Errorf("empty gateway URL")
	}
	if !strings.Contains(raw, "://") {
		raw = "ws://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("invalid gateway URL: %w", err)
	}
	switch u.Scheme {
	case "ws", "wss":
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	default:
		return nil, fmt.Errorf("invalid gateway URL %q: scheme must be ws or wss", u.Redacted())
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("invalid gateway URL %q: no host", u.Redacted())
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("invalid gateway URL %q: port %s out of range", u.Redacted(), p)
		}
	}
	if u.User != nil {
		return nil, fmt.Errorf("invalid gateway URL %q: credentials belong in --gateway.token-file, not the URL", u.Redacted())
	}
	if u.Path == "" {
		u.Path = "/"
	}
	return u, nil
}

// Env reads environment variables; tests pass a map's lookup.
type Env = configfile.Env
