package collector

import (
	"bytes"
	"compress/gzip"
	"net/http"
	"strings"
	"sync"
)

// compressAbove is the body size from which /metrics answers are gzipped.
// One gateway's answer (~25 KB) costs more CPU to compress (15 % of a
// scrape) than its bytes cost on the loopback or pod network it crosses;
// a many-gateway answer is compressed, at the fastest level.
const compressAbove = 64 << 10

var gzipPool = sync.Pool{New: func() any {
	w, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed)
	return w
}}

// bufPool holds the buffers answers wait in: grown to one answer's size
// once, not on every scrape (about 64 KB of allocations each).
var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledBuf: a larger buffer (a many-gateway answer, compressed from
// 64 KiB on anyway) is left to the garbage collector.
const maxPooledBuf = compressAbove + 4<<10

// compressLarge serves h's answer as is while it is small and gzipped once
// it grows past compressAbove, for clients that accept gzip. h must not
// compress itself.
func compressLarge(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !acceptsGzip(r.Header.Get("Accept-Encoding")) {
			h.ServeHTTP(w, r)
			return
		}
		w.Header().Add("Vary", "Accept-Encoding")
		lw := &lazyGzip{w: w, status: http.StatusOK, buf: bufPool.Get().(*bytes.Buffer)}
		defer lw.finish()
		h.ServeHTTP(lw, r)
	})
}

// acceptsGzip: gzip listed without q=0.
func acceptsGzip(h string) bool {
	for _, part := range strings.Split(h, ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(coding), "gzip") {
			continue
		}
		p := strings.ReplaceAll(params, " ", "")
		return p != "q=0" && p != "q=0.0" && p != "q=0.00" && p != "q=0.000"
	}
	return false
}

// lazyGzip buffers an answer until it is known to be large.
type lazyGzip struct {
	w       http.ResponseWriter
	buf     *bytes.Buffer // from bufPool, nil once given back
	gz      *gzip.Writer
	status  int
	written bool // the header went out
}

func (l *lazyGzip) Header() http.Header { return l.w.Header() }

func (l *lazyGzip) WriteHeader(code int) {
	if !l.written {
		l.status = code
	}
}

func (l *lazyGzip) Write(p []byte) (int, error) {
	if l.gz != nil {
		return l.gz.Write(p)
	}
	if l.written { // an error answer went out uncompressed
		return l.w.Write(p)
	}
	l.buf.Write(p)
	if l.buf.Len() <= compressAbove {
		return len(p), nil
	}
	if l.status != http.StatusOK { // a large error page: as it is
		l.w.WriteHeader(l.status)
		l.written = true
		_, err := l.w.Write(l.buf.Bytes())
		l.release()
		return len(p), err
	}
	l.Header().Set("Content-Encoding", "gzip")
	l.Header().Del("Content-Length")
	l.w.WriteHeader(l.status)
	l.written = true
	l.gz = gzipPool.Get().(*gzip.Writer)
	l.gz.Reset(l.w)
	_, err := l.gz.Write(l.buf.Bytes())
	l.release()
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

// release gives the buffer back to bufPool.
func (l *lazyGzip) release() {
	if l.buf == nil {
		return
	}
	if l.buf.Cap() <= maxPooledBuf {
		l.buf.Reset()
		bufPool.Put(l.buf)
	}
	l.buf = nil
}

func (l *lazyGzip) finish() {
	defer l.release()
	if l.gz != nil {
		_ = l.gz.Close()
		gzipPool.Put(l.gz)
		return
	}
	if l.written { // a large error page, gone out as it came
		return
	}
	l.w.WriteHeader(l.status)
	_, _ = l.w.Write(l.buf.Bytes())
}
