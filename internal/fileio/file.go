package fileio

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
)

// ReadFileBounded reads a regular file of at most limit bytes. It opens
// without blocking, so a FIFO or device in place of the file is an error,
// never a hang; a larger file is an error, never a huge allocation.
func ReadFileBounded(path string, limit int64) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file (%s)", path, st.Mode().Type())
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, limit)
	}
	return b, nil
}

// ReadInto reads a kernel file (under /proc) of at most limit bytes into
// *buf, which it grows and keeps for the next call: no stat and no
// allocation per read, for files read on every scrape. It opens without
// blocking, as ReadFileBounded.
func ReadInto(path string, buf *[]byte, limit int) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := (*buf)[:0]
	for {
		if len(b) == cap(b) {
			if len(b) > limit {
				return nil, fmt.Errorf("%s: larger than %d bytes", path, limit)
			}
			b = append(b, 0)[:len(b)]
		}
		n, err := f.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		*buf = b
		if errors.Is(err, io.EOF) || (err == nil && n == 0) {
			if len(b) > limit {
				return nil, fmt.Errorf("%s: larger than %d bytes", path, limit)
			}
			return b, nil
		}
		if err != nil {
			return nil, err
		}
	}
}
