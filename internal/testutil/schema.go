package testutil

import (
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"testing"
)

// RealConfigSchema is openclaw 2026.9.6's own answer to config.schema,
// captured from the running gateway (gateway/testdata/real); path is that
// file relative to the calling test's package.
func RealConfigSchema(t testing.TB, path string) json.RawMessage {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	var frame struct {
		Payload json.RawMessage `json:"payload"`
	}
	if err := json.Unmarshal(b, &frame); err != nil {
		t.Fatal(err)
	}
	return frame.Payload
}
