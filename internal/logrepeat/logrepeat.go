// Package logrepeat aggregates repeated log lines: the first of a kind is
// logged at once, the repeats within a window become one line with their
// count. Whoever can reach the port (an unauthenticated client, a flood of
// alerts) must not be able to fill the disk through the log.
package logrepeat

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// maxKinds bounds the kinds tracked at once; beyond it lines of new kinds
// are counted as repeats of one overflow kind.
const maxKinds = 256

// overflow is the kind that stands for every kind beyond maxKinds.
const overflow = "\x00overflow"

// Logger logs the first line of each kind per window and, when the window
// ends, one line with how many were held back. Kinds must come from a
// bounded set (a message and a reason, never a remote address).
type Logger struct {
	logger *slog.Logger
	window time.Duration

	mu    sync.Mutex
	kinds map[string]*kind
}

type kind struct {
	level    slog.Level
	msg      string
	args     []any // of the last line held back
	repeated int
	timer    *time.Timer
}

// New aggregates lines logged within window of the first of their kind.
func New(logger *slog.Logger, window time.Duration) *Logger {
	return &Logger{logger: logger, window: window, kinds: map[string]*kind{}}
}

// Warn logs msg at WARN, or counts it when a line of the same key was
// logged less than the window ago.
func (l *Logger) Warn(key, msg string, args ...any) { l.Log(slog.LevelWarn, key, msg, args...) }

// Info is Warn at INFO.
func (l *Logger) Info(key, msg string, args ...any) { l.Log(slog.LevelInfo, key, msg, args...) }

// Log logs at level, or counts the line as a repeat of key.
func (l *Logger) Log(level slog.Level, key, msg string, args ...any) {
	l.mu.Lock()
	if _, ok := l.kinds[key]; !ok && len(l.kinds) >= maxKinds {
		key = overflow
	}
	if k := l.kinds[key]; k != nil {
		k.repeated++
		k.level, k.msg, k.args = max(k.level, level), msg, args
		l.mu.Unlock()
		return
	}
	k := &kind{level: level, msg: msg}
	l.kinds[key] = k
	k.timer = time.AfterFunc(l.window, func() { l.flush(key) })
	l.mu.Unlock()
	l.logger.Log(context.Background(), level, msg, args...)
}

// flush ends a kind's window: one line for its repeats, if any.
func (l *Logger) flush(key string) {
	l.mu.Lock()
	k := l.kinds[key]
	delete(l.kinds, key)
	l.mu.Unlock()
	if k == nil || k.repeated == 0 {
		return
	}
	args := append([]any{"repeated", k.repeated, "window", l.window}, k.args...)
	msg := k.msg + " (repeated; the last one's details)"
	if key == overflow {
		msg = "more kinds of repeated lines than tracked (the last one)"
		args = append(args, "msg", k.msg)
	}
	l.logger.Log(context.Background(), k.level, msg, args...)
}

// Flush logs every pending count now: for tests and shutdown.
func (l *Logger) Flush() {
	l.mu.Lock()
	keys := make([]string, 0, len(l.kinds))
	for key, k := range l.kinds {
		k.timer.Stop()
		keys = append(keys, key)
	}
	l.mu.Unlock()
	for _, key := range keys {
		l.flush(key)
	}
}
