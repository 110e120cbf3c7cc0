package fileio

import (
	"os"
	"syscall"
	"time"
)

// Stamp identifies one version of a file: a changed inode (a file replaced
// by rename, a Kubernetes ConfigMap update), size or mtime means a new
// version. A file that does not exist is stamped too, so that its creation
// is noticed.
type Stamp struct {
	Path   string
	Exists bool
	Err    error
	ino    uint64
	size   int64
	mtime  int64
}

// StampOf stats path.
func StampOf(path string) Stamp {
	st, err := os.Stat(path)
	if err != nil {
		return Stamp{Path: path, Err: err}
	}
	s := Stamp{Path: path, Exists: true, size: st.Size(), mtime: st.ModTime().UnixNano()}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		s.ino = sys.Ino
	}
	return s
}

// Same says whether two stamps are of the same version.
func (a Stamp) Same(b Stamp) bool {
	return a.Path == b.Path && a.Exists == b.Exists && a.ino == b.ino && a.size == b.size && a.mtime == b.mtime
}

// ModTime is the file's mtime.
func (a Stamp) ModTime() time.Time { return time.Unix(0, a.mtime) }
