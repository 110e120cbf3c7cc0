package gateway

import (
	"encoding/hex"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/clawdbot-exporter/clawdbot_exporter/gateway/configfile"
	"github.com/clawdbot-exporter/clawdbot_exporter/internal/secret"
)

// DefaultURL is where a gateway listens unless told otherwise
// (docs/protocol.md#where-the-gateway-listens).
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
	// TLS for a wss:// URL, by precedence: TLSFingerprint pins the SHA-256
	// of the gateway's DER certificate (hex, colons optional, as openclaw's
	// gateway.remote.tlsFingerprint); TLSCAFile verifies the chain and the
	// hostname; TLSCertFile, found from the gateway's own gateway.tls, pins
	// the certificate in that file (openclaw's autoGenerate certificate has
	// no IP SANs: ordinary verification cannot pass).
	TLSFingerprint string
	TLSCAFile      string
	TLSCertFile    string
}

// ParseFingerprint reads a SHA-256 certificate fingerprint: 64 hex digits,
// colons (and spaces) optional, any case.
func ParseFingerprint(s string) ([]byte, error) {
	clean := strings.NewReplacer(":", "", " ", "").Replace(strings.TrimSpace(s))
	b, err := hex.DecodeString(clean)
	if err != nil || len(b) != 32 {
		return nil, fmt.Errorf("tls fingerprint %q: must be the SHA-256 of the certificate, 64 hex digits (colons optional)", s)
	}
	return b, nil
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

// ParseURL parses a gateway's WebSocket URL: ws:// or wss://, a host, no
// credentials. It is how --gateway.url, a config file's url: and the
// gateways' URL variables are read.
func ParseURL(raw string) (*url.URL, error) { return ParseURLWith(raw, URLOptions{}) }

// URLOptions widen what ParseURLWith accepts.
type URLOptions struct {
	// BareHostPort reads "host:port" as ws://host:port: for targets a
	// person types in a query (/probe?target=), not for configuration,
	// where a missing scheme is more likely a mistake than a shorthand.
	BareHostPort bool
}

// ParseURLWith is ParseURL with options. http:// and https:// are refused
// with a hint: the gateway answers plain HTTP on the same port, so such a
// URL looks right and probes nothing the exporter can use.
func ParseURLWith(raw string, o URLOptions) (*url.URL, error) {
	if raw == "" {
		return nil, fmt.Errorf("empty gateway URL")
	}
	if !strings.Contains(raw, "://") {
		if !o.BareHostPort {
			return nil, fmt.Errorf("invalid gateway URL %q: no scheme; use ws://%s (or wss:// for TLS)", redactBare(raw), redactBare(raw))
		}
		raw = "ws://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("invalid gateway URL: %w", err)
	}
	switch u.Scheme {
	case "ws", "wss":
	case "http", "https":
		ws := "ws" + strings.TrimPrefix(u.Scheme, "http")
		return nil, fmt.Errorf("invalid gateway URL %q: the gateway's WebSocket URL is %s://, not %s:// (try %s)", u.Redacted(), ws, u.Scheme, strings.Replace(u.Redacted(), u.Scheme, ws, 1))
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

// redactBare hides credentials in a URL without a scheme.
func redactBare(raw string) string {
	if at := strings.LastIndex(raw, "@"); at >= 0 {
		return "xxxxx@" + raw[at+1:]
	}
	return raw
}

// Env reads environment variables; tests pass a map's lookup.
type Env = configfile.Env
