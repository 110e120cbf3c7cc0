package gateway

import (
	"log/slog"
	"strings"
	"sync"
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

// SecretFile is a secret kept in a file, read again when the file changes
// (inode, size or mtime): a rotated token works without a restart. A file
// that cannot be read for a moment (being rewritten) keeps the last value.
type SecretFile struct {
	path  string
	mu    sync.Mutex
	stamp fileStamp
	val   Secret
}

// NewSecretFile reads the file once; it must hold a secret now.
func NewSecretFile(path string) (*SecretFile, error) {
	f := &SecretFile{path: path}
	if _, err := f.Get(); err != nil {
		return nil, err
	}
	return f, nil
}

// Path is the file's path (never the secret).
func (f *SecretFile) Path() string { return f.path }

// Get returns the secret as the file holds it now.
func (f *SecretFile) Get() (Secret, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := stampFile(f.path)
	if st.exists && st.same(f.stamp) {
		return f.val, nil
	}
	v, err := readSecretFile(f.path)
	if err != nil {
		return f.val, err
	}
	f.val, f.stamp = v, st
	return v, nil
}
