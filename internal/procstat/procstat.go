// Package procstat reads /proc/<pid>/stat into procfs.ProcStat without
// procfs's fmt.Fscan parser: the lock scan, the process collector and the
// exporter's own process_* series read it on every scrape.
package procstat

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"

	"github.com/prometheus/procfs"
)

// maxProcStatSize bounds a read of /proc/<pid>/stat: about 300 bytes,
// at most 52 numbers and a comm of 64 bytes.
const maxProcStatSize = 2 << 10

var statBufs = sync.Pool{New: func() any { return new([maxProcStatSize]byte) }}

// Read reads <procRoot>/<pid>/stat into the procfs.ProcStat that
// procfs' Proc.Stat returns, fields and errors alike, but for its
// StartTime method, which needs the FS: use the Starttime ticks. procfs
// parses with fmt.Fscan, some 70,000 instructions a call: most of a lock
// scan that reads no file, and of a process collector's scrape.
func Read(procRoot string, pid int) (procfs.ProcStat, error) {
	f, err := os.Open(procRoot + "/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procfs.ProcStat{}, err
	}
	defer f.Close()
	bp := statBufs.Get().(*[maxProcStatSize]byte)
	defer statBufs.Put(bp)
	n, err := io.ReadFull(f, bp[:])
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return procfs.ProcStat{}, err
	}
	return Parse(pid, bp[:n])
}

// Parse parses the content of /proc/<pid>/stat as procfs does:
// comm between the first '(' and the last ')', then 42 fields.
func Parse(pid int, data []byte) (procfs.ProcStat, error) {
	s := procfs.ProcStat{PID: pid}
	l, r := bytes.IndexByte(data, '('), bytes.LastIndexByte(data, ')')
	if l < 0 || r < 0 || r < l || r+2 > len(data) {
		return procfs.ProcStat{}, fmt.Errorf("%w: unexpected format, couldn't extract comm %q", procfs.ErrFileParse, data)
	}
	s.Comm = string(data[l+1 : r])
	rest := data[r+2:]
	field := 0
	var err error
	next := func() []byte {
		for len(rest) > 0 && isSpace(rest[0]) {
			rest = rest[1:]
		}
		i := 0
		for i < len(rest) && !isSpace(rest[i]) {
			i++
		}
		tok := rest[:i]
		rest = rest[i:]
		if len(tok) == 0 && err == nil {
			err = fmt.Errorf("%w: %d fields in stat, want 42", procfs.ErrFileParse, field)
		}
		field++
		return tok
	}
	i := func(dst *int) {
		if tok := next(); err == nil {
			v, e := strconv.ParseInt(string(tok), 10, strconv.IntSize)
			*dst, err = int(v), e
		}
	}
	u := func(dst *uint) {
		if tok := next(); err == nil {
			v, e := strconv.ParseUint(string(tok), 10, strconv.IntSize)
			*dst, err = uint(v), e
		}
	}
	u64 := func(dst *uint64) {
		if tok := next(); err == nil {
			*dst, err = strconv.ParseUint(string(tok), 10, 64)
		}
	}
	var ignoreInt int
	var ignoreUint64 uint64
	s.State = string(next())
	for _, p := range []*int{&s.PPID, &s.PGRP, &s.Session, &s.TTY, &s.TPGID} {
		i(p)
	}
	for _, p := range []*uint{&s.Flags, &s.MinFlt, &s.CMinFlt, &s.MajFlt, &s.CMajFlt, &s.UTime, &s.STime} {
		u(p)
	}
	for _, p := range []*int{&s.CUTime, &s.CSTime, &s.Priority, &s.Nice, &s.NumThreads, &ignoreInt} {
		i(p)
	}
	u64(&s.Starttime)
	u(&s.VSize)
	i(&s.RSS)
	for _, p := range []*uint64{&s.RSSLimit, &s.StartCode, &s.EndCode, &s.StartStack} {
		u64(p)
	}
	for range 9 {
		u64(&ignoreUint64)
	}
	i(&ignoreInt)
	for _, p := range []*uint{&s.Processor, &s.RTPriority, &s.Policy} {
		u(p)
	}
	u64(&s.DelayAcctBlkIOTicks)
	i(&s.GuestTime)
	i(&s.CGuestTime)
	if err != nil {
		return procfs.ProcStat{}, err
	}
	return s, nil
}

func isSpace(c byte) bool { return c == ' ' || c == '\n' || c == '\t' || c == '\r' }
