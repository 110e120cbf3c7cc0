package secret

import (
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/clawdbot-exporter/clawdbot_exporter/internal/fileio"
)

// Secret holds a gateway token or password. Every way Go has of printing a
// value prints a placeholder instead, so a secret that slips into a log line,
// an error or a metric label cannot leak.
type Secret string

// Redacted is what a secret prints as.
const Redacted = "<secret>"

func (s Secret) String() string   { return Redacted }
func (s Secret) GoString() string { return Redacted }

// LogValue keeps slog from printing the secret.
func (s Secret) LogValue() slog.Value { return slog.StringValue(Redacted) }

// MarshalText keeps encoding/json and YAML encoders from printing the secret.
func (s Secret) MarshalText() ([]byte, error) { return []byte(Redacted), nil }

// Reveal returns the secret itself; call it only where the gateway needs it.
func (s Secret) Reveal() string { return string(s) }

// Redact replaces every occurrence of the given secrets in text, for text
// that comes from elsewhere (a gateway's error message) and might echo one.
func Redact(text string, secrets ...Secret) string {
	for _, s := range secrets {
		if len(s) >= 4 {
			text = strings.ReplaceAll(text, string(s), Redacted)
		}
	}
	return text
}

// File is a secret kept in a file, read again when the file changes
// (inode, size or mtime): a rotated token works without a restart. A file
// that cannot be read for a moment (being rewritten) keeps the last value.
type File struct {
	path  string
	mu    sync.Mutex
	stamp fileio.Stamp
	val   Secret
}

// NewFile reads the file once; it must hold a secret now.
func NewFile(path string) (*File, error) {
	f := &File{path: path}
	if _, err := f.Get(); err != nil {
		return nil, err
	}
	return f, nil
}

// Path is the file's path (never the secret).
func (f *File) Path() string { return f.path }

// Get returns the secret as the file holds it now.
func (f *File) Get() (Secret, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := fileio.StampOf(f.path)
	if st.Exists && st.Same(f.stamp) {
		return f.val, nil
	}
	v, err := ReadFile(f.path)
	if err != nil {
		return f.val, err
	}
	f.val, f.stamp = v, st
	return v, nil
}

// ReadFile reads a one-line secret; surrounding whitespace is dropped
// because editors and `echo` add a newline.
func ReadFile(path string) (Secret, error) {
	b, err := fileio.ReadFileBounded(path, 64<<10)
	if err != nil {
		return "", err
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("%s: empty", path)
	}
	return Secret(s), nil
}

// NewFileUnread is a File read at its first Get, for a secret that may
// not exist yet.
func NewFileUnread(path string) *File { return &File{path: path} }
