package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"

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
	}{
		{"refused", PhaseConnect, &net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, ReasonDial},
		{"dial timeout", PhaseConnect, &net.OpError{Op: "dial", Err: timeoutErr{}}, ReasonTimeout},
		{"deadline", PhaseChallenge, fmt.Errorf("wrapped: %w", context.DeadlineExceeded), ReasonTimeout},
		{"read timeout", PhaseHealth, &net.OpError{Op: "read", Err: timeoutErr{}}, ReasonTimeout},
		{"bad handshake", PhaseUpgrade, fmt.Errorf("%w: HTTP 200 OK", websocket.ErrBadHandshake), ReasonUpgrade},
		{"EOF during upgrade", PhaseUpgrade, io.ErrUnexpectedEOF, ReasonUpgrade},
		{"1008 policy", PhaseHello, &websocket.CloseError{Code: 1008}, ReasonAuth},
		{"1002 protocol", PhaseHello, &websocket.CloseError{Code: 1002}, ReasonProtocol},
		{"1012 restart", PhaseHello, &websocket.CloseError{Code: 1012}, ReasonClosed},
		{"1013 starting (openclaw)", PhaseHello, &websocket.CloseError{Code: 1013}, ReasonStarting},
		{"1009 too big", PhaseChallenge, &websocket.CloseError{Code: 1009}, ReasonBadFrame},
		{"1006 abnormal", PhaseHealth, &websocket.CloseError{Code: 1006}, ReasonClosed},
		{"reset", PhaseHealth, &net.OpError{Op: "read", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, ReasonClosed},
		{"EOF", PhaseChallenge, io.EOF, ReasonClosed},
		{"read limit", PhaseChallenge, websocket.ErrReadLimit, ReasonBadFrame},
		{"not JSON", PhaseChallenge, &badFrameError{"frame is not JSON"}, ReasonBadFrame},
		{"protocol 5 agreed", PhaseHello, &protocolError{5}, ReasonProtocol},
		{"token mismatch (clawdbot)", PhaseHello, &RPCError{Code: "INVALID_REQUEST", Message: "unauthorized: gateway token mismatch"}, ReasonAuth},
		{"token mismatch (openclaw details)", PhaseHello, authDetails, ReasonAuth},
		{"device identity", PhaseHello, &RPCError{Code: "NOT_PAIRED", Message: "device identity required"}, ReasonAuth},
		{"protocol mismatch answer", PhaseHello, &RPCError{Code: "INVALID_REQUEST", Message: "protocol mismatch"}, ReasonProtocol},
		{"starting", PhaseHello, &RPCError{Code: "UNAVAILABLE", Message: "gateway starting; retry shortly", Retryable: true}, ReasonStarting},
		{"health unavailable is not starting", PhaseHealth, &RPCError{Code: "UNAVAILABLE", Message: "health unavailable"}, ReasonRPC},
		{"other RPC error", PhaseHealth, &RPCError{Code: "INTERNAL", Message: "boom"}, ReasonRPC},
		{"unknown error after connect", PhaseHealth, errors.New("websocket: bad opcode 7"), ReasonBadFrame},
	}
	for _, tc := range tests {
		if got := classify(context.Background(), tc.phase, tc.err); got != tc.want {
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
