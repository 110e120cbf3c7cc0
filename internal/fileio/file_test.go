package fileio

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestReadInto(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, path string
		limit      int
		want       string
		wantErr    string
	}{
		{"small", write("small", "1 2 3\n"), 64, "1 2 3\n", ""},
		{"empty", write("empty", ""), 64, "", ""},
		{"at the limit", write("at", strings.Repeat("x", 100)), 100, strings.Repeat("x", 100), ""},
		{"over the limit", write("over", strings.Repeat("x", 5000)), 100, "", "larger than 100 bytes"},
		{"missing", filepath.Join(dir, "none"), 64, "", "no such file"},
		{"a FIFO nobody writes: no hang", fifo, 64, "", ""},
		{"a real /proc file", "/proc/self/stat", 1 << 20, "(", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			buf := make([]byte, 0, 16) // smaller than most: it must grow
			b, err := ReadInto(c.path, &buf, c.limit)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.path == "/proc/self/stat" {
				if !strings.Contains(string(b), c.want) {
					t.Errorf("read %q", b)
				}
				return
			}
			if string(b) != c.want {
				t.Errorf("read %q, want %q", b, c.want)
			}
			if len(b) > 0 && &buf[:1][0] != &b[0] {
				t.Error("the buffer grown is not kept for the next read")
			}
		})
	}
}
