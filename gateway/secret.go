package gateway

import (
	"log/slog"
	"strings"
)

// Secret holds a gateway token or password. Every way Go has of printing a
// value prints a placeholder instead, so a secret that slips into a log line,
// an error or a metric label cannot leak.
type Secret string

const redacted = "<secret>"

func (s Secret) String() string   { return redacted }
func (s Secret) GoString() string { return redacted }

// LogValue keeps slog from printing the secret.
func (s Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalText keeps encoding/json and YAML encoders from printing the secret.
func (s Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// Reveal returns the secret itself; call it only where the gateway needs it.
func (s Secret) Reveal() string { return string(s) }

// Redact replaces every occurrence of the given secrets in text, for text
// that comes from elsewhere (a gateway's error message) and might echo one.
func Redact(text string, secrets ...Secret) string {
	for _, s := range secrets {
		if len(s) >= 4 {
			text = strings.ReplaceAll(text, string(s), redacted)
		}
	}
	return text
}
