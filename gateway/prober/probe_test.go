package prober

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"unicode/utf8"

	"github.com/gorilla/websocket"
)

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestClassify(t *testing.T) {
	authDetails := &RPCError{Code: "INVALID_REQUEST", Message: "token mismatch"}
	authDetails.Details.Code = "AUTH_TOKEN_MISMATCH"
	tests := []struct {
		name  string
		phase Phase
		err   error
		want  Reason
		alive bool // the gateway answered the ping after connect
	}{
		{"refused", PhaseConnect, &net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, ReasonDial, false},
		{"dial timeout", PhaseConnect, &net.OpError{Op: "dial", Err: timeoutErr{}}, ReasonTimeout, false},
		{"deadline", PhaseChallenge, fmt.Errorf("wrapped: %w", context.DeadlineExceeded), ReasonTimeout, false},
		{"read timeout", PhaseHealth, &net.OpError{Op: "read", Err: timeoutErr{}}, ReasonTimeout, false},
		{"hello timeout, ping answered (throttled login)", PhaseHello, &net.OpError{Op: "read", Err: timeoutErr{}}, ReasonHelloTimeout, true},
		{"hello deadline, ping answered", PhaseHello, context.DeadlineExceeded, ReasonHelloTimeout, true},
		{"hello timeout, no pong (frozen after the challenge)", PhaseHello, &net.OpError{Op: "read", Err: timeoutErr{}}, ReasonTimeout, false},
		{"health timeout with pong is still a timeout", PhaseHealth, &net.OpError{Op: "read", Err: timeoutErr{}}, ReasonTimeout, true},
		{"challenge timeout is a timeout", PhaseChallenge, context.DeadlineExceeded, ReasonTimeout, true},
		{"bad handshake", PhaseUpgrade, fmt.Errorf("%w: HTTP 200 OK", websocket.ErrBadHandshake), ReasonUpgrade, false},
		{"EOF during upgrade", PhaseUpgrade, io.ErrUnexpectedEOF, ReasonUpgrade, false},
		{"1008 policy", PhaseHello, &websocket.CloseError{Code: 1008}, ReasonAuth, false},
		{"1002 protocol", PhaseHello, &websocket.CloseError{Code: 1002}, ReasonProtocol, false},
		{"1012 restart", PhaseHello, &websocket.CloseError{Code: 1012}, ReasonClosed, false},
		{"1013 starting (openclaw)", PhaseHello, &websocket.CloseError{Code: 1013}, ReasonStarting, false},
		{"1009 too big", PhaseChallenge, &websocket.CloseError{Code: 1009}, ReasonBadFrame, false},
		{"1006 abnormal", PhaseHealth, &websocket.CloseError{Code: 1006}, ReasonClosed, false},
		{"reset", PhaseHealth, &net.OpError{Op: "read", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, ReasonClosed, false},
		{"EOF", PhaseChallenge, io.EOF, ReasonClosed, false},
		{"read limit", PhaseChallenge, websocket.ErrReadLimit, ReasonBadFrame, false},
		{"not JSON", PhaseChallenge, &badFrameError{"frame is not JSON"}, ReasonBadFrame, false},
		{"protocol 5 agreed", PhaseHello, &protocolError{5}, ReasonProtocol, false},
		{"token mismatch (clawdbot)", PhaseHello, &RPCError{Code: "INVALID_REQUEST", Message: "unauthorized: gateway token mismatch"}, ReasonAuth, false},
		{"token mismatch (openclaw details)", PhaseHello, authDetails, ReasonAuth, false},
		{"device identity", PhaseHello, &RPCError{Code: "NOT_PAIRED", Message: "device identity required"}, ReasonAuth, false},
		{"protocol mismatch answer", PhaseHello, &RPCError{Code: "INVALID_REQUEST", Message: "protocol mismatch"}, ReasonProtocol, false},
		{"starting", PhaseHello, &RPCError{Code: "UNAVAILABLE", Message: "gateway starting; retry shortly", Retryable: true}, ReasonStarting, false},
		{"health unavailable is not starting", PhaseHealth, &RPCError{Code: "UNAVAILABLE", Message: "health unavailable"}, ReasonRPC, false},
		{"other RPC error", PhaseHealth, &RPCError{Code: "INTERNAL", Message: "boom"}, ReasonRPC, false},
		{"unknown error after connect", PhaseHealth, errors.New("websocket: bad opcode 7"), ReasonBadFrame, false},
	}
	for _, tc := range tests {
		if got := classify(context.Background(), tc.phase, tc.err, tc.alive); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestResultVersion(t *testing.T) {
	for v, want := range map[string]string{"dev": "", "": "", "2026.9.6": "2026.9.6", "unknown": ""} {
		r := &Result{Hello: &Hello{}}
		r.Hello.Server.Version = v
		if got := r.Version(); got != want {
			t.Errorf("version %q -> %q, want %q", v, got, want)
		}
	}
	if (&Result{}).Product() != "" || ProductForProtocol(3) != "clawdbot" || ProductForProtocol(4) != "openclaw" {
		t.Error("product names")
	}
}

func TestVersionLabel(t *testing.T) {
	tests := []struct {
		name, version, want string
	}{
		{"real", "2026.9.6", "2026.9.6"},
		{"none", "", ""},
		{"clawdbot without CLAWDBOT_VERSION", "dev", ""},
		{"65 bytes, cut inside é", strings.Repeat("a", 63) + "é", strings.Repeat("a", 63)},
		{"64 bytes ending in é", strings.Repeat("a", 62) + "é", strings.Repeat("a", 62) + "é"},
		{"4-byte characters", strings.Repeat("𝄞", 20), strings.Repeat("𝄞", 16)},
		{"long ASCII", strings.Repeat("1", 1000), strings.Repeat("1", 64)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &Result{Hello: &Hello{}}
			r.Hello.Server.Version = tc.version
			got := r.Version()
			if got != tc.want {
				t.Errorf("Version() of %q = %q, want %q", tc.version, got, tc.want)
			}
			if !utf8.ValidString(got) || len(got) > 64 {
				t.Errorf("Version() = %q: not a valid label of at most 64 bytes", got)
			}
		})
	}
}
