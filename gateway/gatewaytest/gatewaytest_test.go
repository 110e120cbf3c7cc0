package gatewaytest

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/clawdbot-exporter/clawdbot_exporter/internal/testutil"
)

const short = 300 * time.Millisecond

type frame struct {
	Type    string          `json:"type"`
	ID      string          `json:"id"`
	OK      bool            `json:"ok"`
	Event   string          `json:"event"`
	Seq     *int64          `json:"seq"`
	Payload json.RawMessage `json:"payload"`
	Error   *ErrorShape     `json:"error"`
}

func dial(t *testing.T, s *Server) *websocket.Conn {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	c, _, err := d.Dial(s.URL(), nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func readFrame(t *testing.T, c *websocket.Conn, timeout time.Duration) (frame, error) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(timeout))
	mt, data, err := c.ReadMessage()
	if err != nil {
		return frame{}, err
	}
	if mt != websocket.TextMessage {
		t.Fatalf("got message type %d, want text", mt)
	}
	var f frame
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatalf("bad JSON frame %q: %v", data, err)
	}
	return f, nil
}

func mustFrame(t *testing.T, c *websocket.Conn) frame {
	t.Helper()
	f, err := readFrame(t, c, 5*time.Second)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return f
}

func send(t *testing.T, c *websocket.Conn, v any) {
	t.Helper()
	if err := c.WriteJSON(v); err != nil {
		t.Fatalf("write: %v", err)
	}
}

func connectReq(id string, minP, maxP int, auth map[string]any) map[string]any {
	req := map[string]any{
		"type": "req", "id": id, "method": "connect",
		"params": map[string]any{
			"minProtocol": minP, "maxProtocol": maxP,
			"client": map[string]any{"id": "cli", "version": "1.0.0", "platform": "linux", "mode": "cli"},
			"role":   "operator", "scopes": []string{"operator.read"},
			"auth": auth,
		},
	}
	if auth == nil {
		delete(req["params"].(map[string]any), "auth")
	}
	return req
}

func tokenAuth(tok string) map[string]any { return map[string]any{"token": tok} }

func challenge(t *testing.T, c *websocket.Conn) map[string]any {
	t.Helper()
	f := mustFrame(t, c)
	if f.Type != "event" || f.Event != "connect.challenge" {
		t.Fatalf("first frame = %+v, want connect.challenge event", f)
	}
	var p map[string]any
	if err := json.Unmarshal(f.Payload, &p); err != nil {
		t.Fatal(err)
	}
	if n, _ := p["nonce"].(string); len(n) != 36 {
		t.Fatalf("nonce %v is not a uuid", p["nonce"])
	}
	if ts, _ := p["ts"].(float64); ts < float64(time.Now().Add(-time.Minute).UnixMilli()) {
		t.Fatalf("ts %v not a recent ms timestamp", p["ts"])
	}
	return p
}

// expectClose reads until the connection ends and returns the close code
// (-1 when the error is not a close frame).
func expectClose(t *testing.T, c *websocket.Conn) int {
	t.Helper()
	for {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, _, err := c.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return ce.Code
		}
		t.Logf("non-close error: %v", err)
		return -1
	}
}

func expectNothing(t *testing.T, c *websocket.Conn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(short))
	_, data, err := c.ReadMessage()
	if err == nil {
		t.Fatalf("unexpected frame %q", data)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("want read timeout, got %v", err)
	}
}

func expectErrorClose(t *testing.T, c *websocket.Conn, id, code, msgPrefix string, closeCode int) {
	t.Helper()
	f := mustFrame(t, c)
	if f.Type != "res" || f.ID != id || f.OK || f.Error == nil {
		t.Fatalf("got %+v, want error res id %s", f, id)
	}
	if f.Error.Code != code || !strings.HasPrefix(f.Error.Message, msgPrefix) {
		t.Fatalf("error = %+v, want %s %q", f.Error, code, msgPrefix)
	}
	if got := expectClose(t, c); got != closeCode {
		t.Fatalf("close code %d, want %d", got, closeCode)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testutil.WaitFor(t, what, 5*time.Second, cond)
}

func clientClose(c *websocket.Conn) {
	_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	// wait for the echo, like a polite client
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	for {
		if _, _, err := c.ReadMessage(); err != nil {
			break
		}
	}
	c.Close()
}

func handshake(t *testing.T, s *Server, c *websocket.Conn) map[string]any {
	t.Helper()
	challenge(t, c)
	send(t, c, connectReq("c1", 3, 4, tokenAuth(s.Options().Token)))
	f := mustFrame(t, c)
	if f.Type != "res" || f.ID != "c1" || !f.OK {
		t.Fatalf("connect answer %+v", f)
	}
	var hello map[string]any
	if err := json.Unmarshal(f.Payload, &hello); err != nil {
		t.Fatal(err)
	}
	return hello
}

func healthRes(t *testing.T, c *websocket.Conn, id string) frame {
	t.Helper()
	send(t, c, map[string]any{"type": "req", "id": id, "method": "health", "params": map[string]any{}})
	for {
		f := mustFrame(t, c)
		if f.Type == "res" {
			if f.ID != id {
				t.Fatalf("res id %q, want %q", f.ID, id)
			}
			return f
		}
	}
}

func TestHappyPath(t *testing.T) {
	for _, proto := range []int{3, 4} {
		t.Run(fmt.Sprint("protocol", proto), func(t *testing.T) {
			s := New(Options{Protocol: proto})
			defer s.Close()
			time.Sleep(20 * time.Millisecond)
			c := dial(t, s)
			ch := challenge(t, c)
			_, hasCaps := ch["capabilities"]
			if hasCaps != (proto == 4) {
				t.Fatalf("capabilities present=%v on protocol %d", hasCaps, proto)
			}
			send(t, c, connectReq("c1", 3, 4, tokenAuth(DefaultToken)))
			f := mustFrame(t, c)
			if f.Type != "res" || f.ID != "c1" || !f.OK {
				t.Fatalf("connect answer %+v", f)
			}
			var hello struct {
				Type     string `json:"type"`
				Protocol int    `json:"protocol"`
				Server   struct {
					Version, Host, ConnID string
				} `json:"server"`
				Features struct {
					Methods []string `json:"methods"`
					Events  []string `json:"events"`
				} `json:"features"`
				Snapshot struct {
					UptimeMs int64 `json:"uptimeMs"`
				} `json:"snapshot"`
				Policy struct {
					MaxPayload     int `json:"maxPayload"`
					TickIntervalMs int `json:"tickIntervalMs"`
				} `json:"policy"`
			}
			if err := json.Unmarshal(f.Payload, &hello); err != nil {
				t.Fatal(err)
			}
			wantVersion := map[int]string{3: "dev", 4: "2026.9.6"}[proto]
			if hello.Type != "hello-ok" || hello.Protocol != proto || hello.Server.Version != wantVersion ||
				hello.Server.Host != "fake" || hello.Server.ConnID == "" || hello.Policy.TickIntervalMs != 30000 ||
				len(hello.Features.Methods) == 0 || len(hello.Features.Events) == 0 {
				t.Fatalf("bad hello: %+v", hello)
			}
			if hello.Snapshot.UptimeMs < 20 || hello.Snapshot.UptimeMs > 60000 {
				t.Fatalf("uptimeMs %d", hello.Snapshot.UptimeMs)
			}
			if proto == 3 && hello.Policy.MaxPayload != 524288 {
				t.Fatalf("maxPayload %d", hello.Policy.MaxPayload)
			}

			h := healthRes(t, c, "r1")
			if !h.OK {
				t.Fatalf("health not ok: %+v", h)
			}
			var health map[string]any
			if err := json.Unmarshal(h.Payload, &health); err != nil {
				t.Fatal(err)
			}
			if health["ok"] != true || health["defaultAgentId"] != "main" || health["heartbeatSeconds"] != float64(1800) {
				t.Fatalf("health payload %v", health)
			}
			chans := health["channels"].(map[string]any)
			tg := chans["telegram"].(map[string]any)
			if tg["configured"] != true || tg["probe"].(map[string]any)["ok"] != true {
				t.Fatalf("telegram %v", tg)
			}
			if _, ok := tg["accounts"].(map[string]any)["default"]; !ok {
				t.Fatalf("telegram accounts %v", tg["accounts"])
			}
			agent := health["agents"].([]any)[0].(map[string]any)
			sess := agent["sessions"].(map[string]any)
			rec := sess["recent"].([]any)[0].(map[string]any)
			if sess["count"] != float64(2) || rec["age"] != float64(5000) || rec["key"] != "agent:main:main" {
				t.Fatalf("agent sessions %v", sess)
			}
			for _, k := range []string{"plugins", "modelRuntime", "eventLoop"} {
				if _, ok := health[k]; ok != (proto == 4) {
					t.Fatalf("health[%s] present=%v on protocol %d", k, ok, proto)
				}
			}
			if proto == 4 {
				el := health["eventLoop"].(map[string]any)
				if el["degraded"] != false || el["delayP99Ms"] != 12.5 {
					t.Fatalf("eventLoop %v", el)
				}
			}

			clientClose(c)
			waitFor(t, "open conns 0", func() bool { return s.OpenConns() == 0 })
			if got := s.CleanCloses(); got != 1 {
				t.Fatalf("CleanCloses = %d", got)
			}
			if got := s.Accepted(); got != 1 {
				t.Fatalf("Accepted = %d", got)
			}
			if m := s.Methods(); strings.Join(m, ",") != "connect,health" {
				t.Fatalf("Methods = %v", m)
			}
			cps := s.ConnectParams()
			if len(cps) != 1 || !strings.Contains(string(cps[0]), `"token":"test-token"`) {
				t.Fatalf("ConnectParams = %s", cps)
			}
		})
	}
}

func TestConnectWithoutWaitingForChallenge(t *testing.T) {
	s := New(Options{})
	defer s.Close()
	c := dial(t, s)
	send(t, c, connectReq("c1", 3, 3, tokenAuth(DefaultToken)))
	challenge(t, c)
	if f := mustFrame(t, c); !f.OK || f.ID != "c1" {
		t.Fatalf("connect answer %+v", f)
	}
}

func TestInterleaveEvents(t *testing.T) {
	s := New(Options{InterleaveEvents: true})
	defer s.Close()
	c := dial(t, s)
	handshake(t, s, c)
	for i, id := range []string{"h1", "h2"} {
		send(t, c, map[string]any{"type": "req", "id": id, "method": "health", "params": map[string]any{}})
		ev := mustFrame(t, c)
		if ev.Type != "event" || ev.Event != "tick" || ev.Seq == nil || *ev.Seq != int64(i+1) {
			t.Fatalf("want tick event seq %d, got %+v", i+1, ev)
		}
		if res := mustFrame(t, c); res.Type != "res" || res.ID != id || !res.OK {
			t.Fatalf("res %+v", res)
		}
	}
}

func TestWrongToken(t *testing.T) {
	s := New(Options{Token: "right"})
	defer s.Close()
	c := dial(t, s)
	challenge(t, c)
	send(t, c, connectReq("c1", 3, 4, tokenAuth("wrong")))
	expectErrorClose(t, c, "c1", "INVALID_REQUEST", "unauthorized: gateway token mismatch", 1008)
	waitFor(t, "open conns 0", func() bool { return s.OpenConns() == 0 })
	// gorilla's client echoes the server's close frame: that is a clean close.
	if s.CleanCloses() != 1 {
		t.Fatalf("CleanCloses = %d", s.CleanCloses())
	}
}

func TestMissingOrEmptyToken(t *testing.T) {
	for _, auth := range []map[string]any{nil, {}, {"token": ""}} {
		s := New(Options{AuthMode: "none"})
		c := dial(t, s)
		challenge(t, c)
		send(t, c, connectReq("c1", 3, 3, auth))
		expectErrorClose(t, c, "c1", "NOT_PAIRED", "device identity required", 1008)
		s.Close()
	}
}

func TestProtocolNegotiation(t *testing.T) {
	cases := []struct {
		server, minP, maxP int
		ok                 bool
	}{
		{3, 3, 3, true}, {3, 3, 4, true}, {3, 1, 3, true}, {3, 4, 4, false}, {3, 1, 2, false},
		{4, 3, 4, true}, {4, 4, 4, true}, {4, 4, 5, true}, {4, 3, 3, false}, {4, 5, 5, false},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("server%d_%d-%d", tc.server, tc.minP, tc.maxP), func(t *testing.T) {
			s := New(Options{Protocol: tc.server})
			defer s.Close()
			c := dial(t, s)
			challenge(t, c)
			send(t, c, connectReq("c1", tc.minP, tc.maxP, tokenAuth(DefaultToken)))
			if !tc.ok {
				expectErrorClose(t, c, "c1", "INVALID_REQUEST", "protocol mismatch", 1002)
				return
			}
			f := mustFrame(t, c)
			var hello struct{ Protocol int }
			_ = json.Unmarshal(f.Payload, &hello)
			if !f.OK || hello.Protocol != tc.server {
				t.Fatalf("got %+v", f)
			}
		})
	}
}

func TestPasswordMode(t *testing.T) {
	cases := []struct {
		proto int
		auth  map[string]any
		code  string // "" = accepted
		msg   string
	}{
		{3, map[string]any{"password": "pw"}, "NOT_PAIRED", "device identity required"},
		{3, map[string]any{"token": "anything", "password": "pw"}, "", ""},
		{3, map[string]any{"token": "anything", "password": "bad"}, "INVALID_REQUEST", "unauthorized: gateway password mismatch"},
		{3, map[string]any{"token": "anything"}, "INVALID_REQUEST", "unauthorized: gateway password mismatch"},
		{4, map[string]any{"password": "pw"}, "", ""},
		{4, map[string]any{"token": "x", "password": "pw"}, "", ""},
		{4, map[string]any{"password": "bad"}, "INVALID_REQUEST", "unauthorized: gateway password mismatch"},
		{4, map[string]any{"token": "x"}, "INVALID_REQUEST", "unauthorized: gateway password mismatch"},
		{4, map[string]any{}, "NOT_PAIRED", "device identity required"},
	}
	for i, tc := range cases {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			s := New(Options{Protocol: tc.proto, AuthMode: "password", Password: "pw"})
			defer s.Close()
			c := dial(t, s)
			challenge(t, c)
			send(t, c, connectReq("c1", 3, 4, tc.auth))
			if tc.code != "" {
				expectErrorClose(t, c, "c1", tc.code, tc.msg, 1008)
				return
			}
			if f := mustFrame(t, c); !f.OK {
				t.Fatalf("rejected: %+v", f.Error)
			}
		})
	}
}

func TestNoAuthModeAcceptsAnyToken(t *testing.T) {
	s := New(Options{AuthMode: "none"})
	defer s.Close()
	c := dial(t, s)
	challenge(t, c)
	send(t, c, connectReq("c1", 3, 3, tokenAuth("whatever")))
	if f := mustFrame(t, c); !f.OK {
		t.Fatalf("rejected: %+v", f.Error)
	}
}

func TestParamValidation(t *testing.T) {
	mutate := []struct {
		name string
		f    func(p map[string]any)
	}{
		{"root key", func(p map[string]any) { p["device"] = map[string]any{} }},
		{"client key", func(p map[string]any) { p["client"].(map[string]any)["displayName"] = "x" }},
		{"auth key", func(p map[string]any) { p["auth"].(map[string]any)["signature"] = "x" }},
		{"bad client id", func(p map[string]any) { p["client"].(map[string]any)["id"] = "prometheus" }},
		{"openclaw-probe on 3", func(p map[string]any) { p["client"].(map[string]any)["id"] = "openclaw-probe" }},
		{"bad mode", func(p map[string]any) { p["client"].(map[string]any)["mode"] = "daemon" }},
		{"missing client version", func(p map[string]any) { delete(p["client"].(map[string]any), "version") }},
		{"missing minProtocol", func(p map[string]any) { delete(p, "minProtocol") }},
		{"string protocol", func(p map[string]any) { p["maxProtocol"] = "3" }},
		{"numeric token", func(p map[string]any) { p["auth"].(map[string]any)["token"] = 42 }},
		{"scopes not array", func(p map[string]any) { p["scopes"] = "operator.read" }},
	}
	for _, m := range mutate {
		t.Run(m.name, func(t *testing.T) {
			s := New(Options{})
			defer s.Close()
			c := dial(t, s)
			challenge(t, c)
			req := connectReq("c1", 3, 3, tokenAuth(DefaultToken))
			m.f(req["params"].(map[string]any))
			send(t, c, req)
			expectErrorClose(t, c, "c1", "INVALID_REQUEST", "invalid connect params", 1008)
		})
	}
	t.Run("probe ids per protocol", func(t *testing.T) {
		for proto, id := range map[int]string{3: "clawdbot-probe", 4: "openclaw-probe"} {
			s := New(Options{Protocol: proto})
			c := dial(t, s)
			challenge(t, c)
			req := connectReq("c1", 3, 4, tokenAuth(DefaultToken))
			req["params"].(map[string]any)["client"].(map[string]any)["id"] = id
			send(t, c, req)
			if f := mustFrame(t, c); !f.OK {
				t.Fatalf("%s rejected on %d: %+v", id, proto, f.Error)
			}
			s.Close()
		}
	})
}

func TestFirstRequestMustBeConnect(t *testing.T) {
	s := New(Options{})
	defer s.Close()
	c := dial(t, s)
	challenge(t, c)
	send(t, c, map[string]any{"type": "req", "id": "x1", "method": "health", "params": map[string]any{}})
	expectErrorClose(t, c, "x1", "INVALID_REQUEST", "invalid handshake", 1008)

	c2 := dial(t, s)
	challenge(t, c2)
	if err := c2.WriteMessage(websocket.TextMessage, []byte("not json")); err != nil {
		t.Fatal(err)
	}
	if got := expectClose(t, c2); got != 1008 {
		t.Fatalf("close %d, want 1008", got)
	}
}

func TestConfigGetRecordedAndRefused(t *testing.T) {
	s := New(Options{})
	defer s.Close()
	c := dial(t, s)
	handshake(t, s, c)
	send(t, c, map[string]any{"type": "req", "id": "g1", "method": "config.get", "params": map[string]any{}})
	f := mustFrame(t, c)
	if f.ID != "g1" || f.OK || f.Error == nil {
		t.Fatalf("config.get answered %+v", f)
	}
	send(t, c, map[string]any{"type": "req", "id": "s1", "method": "status", "params": map[string]any{}})
	if f := mustFrame(t, c); !f.OK || f.ID != "s1" {
		t.Fatalf("status %+v", f)
	}
	send(t, c, map[string]any{"type": "req", "id": "u1", "method": "nope", "params": map[string]any{}})
	if f := mustFrame(t, c); f.OK || f.ID != "u1" {
		t.Fatalf("unknown method %+v", f)
	}
	if got := strings.Join(s.Methods(), ","); got != "connect,config.get,status,nope" {
		t.Fatalf("Methods = %s", got)
	}
}

func TestMaxPayload(t *testing.T) {
	s := New(Options{})
	defer s.Close()
	c := dial(t, s)
	challenge(t, c)
	big := strings.Repeat("x", 600<<10)
	err := c.WriteMessage(websocket.TextMessage, []byte(`{"type":"req","id":"a","method":"connect","params":{"x":"`+big+`"}}`))
	switch {
	case errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE):
		// The server read the frame's header, refused it and closed
		// before the client had written it all: the same refusal.
	case err != nil:
		t.Fatal(err)
	default:
		if got := expectClose(t, c); got != websocket.CloseMessageTooBig && got != -1 {
			t.Fatalf("close %d", got)
		}
	}
	waitFor(t, "open conns 0", func() bool { return s.OpenConns() == 0 })
}

func TestFaultNoUpgrade(t *testing.T) {
	s := New(Options{Fault: FaultNoUpgrade})
	defer s.Close()
	d := websocket.Dialer{HandshakeTimeout: short}
	start := time.Now()
	_, _, err := d.Dial(s.URL(), nil)
	if err == nil || time.Since(start) < short-10*time.Millisecond {
		t.Fatalf("dial err=%v after %v, want handshake timeout", err, time.Since(start))
	}
	waitFor(t, "open conns 0 after client gave up", func() bool { return s.OpenConns() == 0 })

	// Plain HTTP hangs too; the server keeps the conn until the client leaves.
	conn, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	_ = conn.SetReadDeadline(time.Now().Add(short))
	if n, err := conn.Read(make([]byte, 10)); n != 0 || err == nil {
		t.Fatalf("got %d bytes, err %v; want nothing", n, err)
	}
	if s.OpenConns() != 1 || s.Accepted() != 2 {
		t.Fatalf("OpenConns %d Accepted %d", s.OpenConns(), s.Accepted())
	}
	conn.Close()
	waitFor(t, "open conns 0", func() bool { return s.OpenConns() == 0 })
}

func TestFaultNoChallenge(t *testing.T) {
	s := New(Options{Fault: FaultNoChallenge})
	defer s.Close()
	c := dial(t, s)
	expectNothing(t, c)
	send(t, c, connectReq("c1", 3, 3, tokenAuth(DefaultToken)))
	expectNothing(t, c)
	waitFor(t, "connect recorded", func() bool { return len(s.Methods()) == 1 })
	clientClose(c)
	waitFor(t, "open conns 0", func() bool { return s.OpenConns() == 0 })
	if s.CleanCloses() != 1 {
		t.Fatalf("CleanCloses %d", s.CleanCloses())
	}
}

func TestFaultStallAfterChallenge(t *testing.T) {
	s := New(Options{Fault: FaultStallAfterChallenge})
	defer s.Close()
	c := dial(t, s)
	challenge(t, c)
	send(t, c, connectReq("c1", 3, 3, tokenAuth(DefaultToken)))
	expectNothing(t, c)
	c.Close() // abrupt client close is noticed while stalled
	waitFor(t, "open conns 0", func() bool { return s.OpenConns() == 0 })
	if s.CleanCloses() != 0 {
		t.Fatalf("CleanCloses %d", s.CleanCloses())
	}
}

func TestFaultStallHealth(t *testing.T) {
	s := New(Options{Fault: FaultStallHealth})
	defer s.Close()
	c := dial(t, s)
	handshake(t, s, c)
	send(t, c, map[string]any{"type": "req", "id": "r1", "method": "health", "params": map[string]any{}})
	expectNothing(t, c)
	clientClose(c)
	waitFor(t, "open conns 0", func() bool { return s.OpenConns() == 0 })
}

func TestFaultRestart(t *testing.T) {
	s := New(Options{Fault: FaultRestart})
	defer s.Close()
	c := dial(t, s)
	challenge(t, c)
	send(t, c, connectReq("c1", 3, 3, tokenAuth(DefaultToken)))
	f := mustFrame(t, c)
	if f.Type != "event" || f.Event != "shutdown" {
		t.Fatalf("got %+v, want shutdown event", f)
	}
	if got := expectClose(t, c); got != websocket.CloseServiceRestart {
		t.Fatalf("close %d, want 1012", got)
	}
}

func TestFaultGarbageAndBinary(t *testing.T) {
	for _, fault := range []Fault{FaultGarbage, FaultBinaryFrame} {
		t.Run(string(fault), func(t *testing.T) {
			s := New(Options{Fault: fault})
			defer s.Close()
			c := dial(t, s)
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			mt, data, err := c.ReadMessage()
			if err != nil {
				t.Fatal(err)
			}
			if fault == FaultGarbage && (mt != websocket.TextMessage || string(data) != "\x00garbage{" || json.Valid(data)) {
				t.Fatalf("got %d %q", mt, data)
			}
			if fault == FaultBinaryFrame && mt != websocket.BinaryMessage {
				t.Fatalf("got type %d", mt)
			}
			// The protocol goes on after the bad frame.
			send(t, c, connectReq("c1", 3, 3, tokenAuth(DefaultToken)))
			if f := mustFrame(t, c); !f.OK {
				t.Fatalf("connect %+v", f)
			}
		})
	}
}

func TestFaultOversized(t *testing.T) {
	s := New(Options{Fault: FaultOversized})
	defer s.Close()

	// A client with a read limit fails fast and the server notices.
	c := dial(t, s)
	c.SetReadLimit(1 << 20)
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, _, err := c.ReadMessage(); !errors.Is(err, websocket.ErrReadLimit) {
		t.Fatalf("err %v, want read limit", err)
	}
	c.Close()
	waitFor(t, "open conns 0", func() bool { return s.OpenConns() == 0 })

	// A client without a limit gets the whole valid-looking frame.
	c2 := dial(t, s)
	_ = c2.SetReadDeadline(time.Now().Add(60 * time.Second))
	mt, r, err := c2.NextReader()
	if err != nil || mt != websocket.TextMessage {
		t.Fatalf("NextReader %d %v", mt, err)
	}
	br := bufio.NewReaderSize(r, 64<<10)
	head, _ := br.Peek(20)
	if !strings.HasPrefix(string(head), `{"type":"event"`) {
		t.Fatalf("head %q", head)
	}
	n, err := io.Copy(io.Discard, br)
	if err != nil || n < OversizedBytes {
		t.Fatalf("read %d bytes, err %v", n, err)
	}
}

func TestFaultHealth(t *testing.T) {
	t.Run("not-ok", func(t *testing.T) {
		s := New(Options{Fault: FaultHealthNotOK})
		defer s.Close()
		c := dial(t, s)
		handshake(t, s, c)
		f := healthRes(t, c, "r1")
		var p struct{ OK *bool }
		_ = json.Unmarshal(f.Payload, &p)
		if !f.OK || p.OK == nil || *p.OK {
			t.Fatalf("res %+v", f)
		}
	})
	t.Run("error", func(t *testing.T) {
		s := New(Options{Fault: FaultHealthError})
		defer s.Close()
		c := dial(t, s)
		handshake(t, s, c)
		f := healthRes(t, c, "r1")
		if f.OK || f.Error == nil || f.Error.Code != "UNAVAILABLE" || f.Error.Message != "health unavailable" {
			t.Fatalf("res %+v", f)
		}
	})
	t.Run("custom payload", func(t *testing.T) {
		s := New(Options{Health: json.RawMessage(`{"ok":true,"custom":1}`)})
		defer s.Close()
		c := dial(t, s)
		handshake(t, s, c)
		if f := healthRes(t, c, "r1"); string(f.Payload) != `{"ok":true,"custom":1}` {
			t.Fatalf("payload %s", f.Payload)
		}
	})
}

func TestFaultStarting(t *testing.T) {
	s := New(Options{Protocol: 4, Fault: FaultStarting})
	defer s.Close()
	c := dial(t, s)
	challenge(t, c)
	send(t, c, connectReq("c1", 3, 4, tokenAuth(DefaultToken)))
	f := mustFrame(t, c)
	if f.OK || f.ID != "c1" || f.Error == nil || f.Error.Code != "UNAVAILABLE" ||
		f.Error.Message != "gateway starting; retry shortly" || f.Error.Retryable == nil || !*f.Error.Retryable ||
		f.Error.RetryAfterMs == nil || *f.Error.RetryAfterMs != 1000 {
		t.Fatalf("res %+v err %+v", f, f.Error)
	}
	expectNothing(t, c) // connection stays open
	if s.OpenConns() != 1 {
		t.Fatalf("OpenConns %d", s.OpenConns())
	}
}

func TestFaultDropTCP(t *testing.T) {
	s := New(Options{Fault: FaultDropTCP})
	defer s.Close()
	c := dial(t, s)
	challenge(t, c)
	send(t, c, connectReq("c1", 3, 3, tokenAuth(DefaultToken)))
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _, err := c.ReadMessage()
	var ce *websocket.CloseError
	if err == nil || (errors.As(err, &ce) && ce.Code != websocket.CloseAbnormalClosure) {
		t.Fatalf("err %v, want abnormal closure (no close frame)", err)
	}
	waitFor(t, "open conns 0", func() bool { return s.OpenConns() == 0 })
}

func TestFaultHelloNotOK(t *testing.T) {
	s := New(Options{Fault: FaultHelloNotOK})
	defer s.Close()
	c := dial(t, s)
	challenge(t, c)
	send(t, c, connectReq("c1", 3, 3, tokenAuth(DefaultToken)))
	f := mustFrame(t, c)
	var p struct{ Type string }
	_ = json.Unmarshal(f.Payload, &p)
	if !f.OK || p.Type == "hello-ok" || p.Type == "" {
		t.Fatalf("res %+v", f)
	}
}

func TestDelay(t *testing.T) {
	s := New(Options{Delay: 150 * time.Millisecond})
	defer s.Close()
	start := time.Now()
	c := dial(t, s)
	challenge(t, c)
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Fatalf("challenge after %v", d)
	}
	// A delayed server notices the client leaving and frees the conn.
	c.Close()
	waitFor(t, "open conns 0", func() bool { return s.OpenConns() == 0 })
}

func TestSetFaultAppliesToNewConns(t *testing.T) {
	s := New(Options{})
	defer s.Close()
	c1 := dial(t, s)
	s.SetFault(FaultHealthError)
	handshake(t, s, c1)
	if f := healthRes(t, c1, "r1"); !f.OK {
		t.Fatalf("old conn got fault: %+v", f)
	}
	c2 := dial(t, s)
	handshake(t, s, c2)
	if f := healthRes(t, c2, "r1"); f.OK {
		t.Fatalf("new conn has no fault: %+v", f)
	}
	s.SetOptions(func(o *Options) { o.Fault = FaultNone; o.Token = "" })
	if o := s.Options(); o.Fault != FaultNone || o.Token != DefaultToken {
		t.Fatalf("options %+v", o)
	}
}

func TestPlainHTTP(t *testing.T) {
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	get := func(url string) (int, string, string) {
		t.Helper()
		resp, err := client.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
	}
	s3 := New(Options{Protocol: 3})
	defer s3.Close()
	for _, p := range []string{"/", "/health", "/healthz", "/readyz", "/metrics"} {
		code, ct, body := get(s3.HTTPURL() + p)
		if code != 200 || !strings.HasPrefix(ct, "text/html") || !strings.Contains(body, "control ui") {
			t.Fatalf("p3 %s: %d %s %q", p, code, ct, body)
		}
	}
	s4 := New(Options{Protocol: 4})
	defer s4.Close()
	if code, _, body := get(s4.HTTPURL() + "/healthz"); code != 200 || body != `{"ok":true,"status":"live"}` {
		t.Fatalf("healthz %d %s", code, body)
	}
	code, ct, body := get(s4.HTTPURL() + "/readyz")
	var rz struct {
		Ready    bool     `json:"ready"`
		Failing  []string `json:"failing"`
		UptimeMs *int64   `json:"uptimeMs"`
	}
	if err := json.Unmarshal([]byte(body), &rz); err != nil || code != 200 || !rz.Ready || rz.Failing == nil || len(rz.Failing) != 0 || rz.UptimeMs == nil || !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("readyz %d %s %s", code, ct, body)
	}
	s4.SetOptions(func(o *Options) { o.ReadyFailing = true })
	code, _, body = get(s4.HTTPURL() + "/readyz")
	if code != 503 || !strings.Contains(body, `"ready":false`) || !strings.Contains(body, `"failing":["channels"]`) {
		t.Fatalf("readyz failing %d %s", code, body)
	}
	if code, ct, _ := get(s4.HTTPURL() + "/other"); code != 200 || !strings.HasPrefix(ct, "text/html") {
		t.Fatalf("other %d %s", code, ct)
	}
	waitFor(t, "http conns closed", func() bool { return s3.OpenConns() == 0 && s4.OpenConns() == 0 })
}

// stableGoroutines waits until the goroutine count is at most want.
func stableGoroutines(t *testing.T, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= want {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("goroutines: %d, want <= %d\n%s", n, want, buf)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestNoLeakPerProbe(t *testing.T) {
	s := New(Options{Protocol: 4, InterleaveEvents: true})
	defer s.Close()
	probe := func() {
		d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
		c, _, err := d.Dial(s.URL(), nil)
		if err != nil {
			t.Fatal(err)
		}
		handshake(t, s, c)
		healthRes(t, c, "r1")
		clientClose(c)
	}
	probe()
	waitFor(t, "idle", func() bool { return s.OpenConns() == 0 })
	base := runtime.NumGoroutine()
	const n = 200
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range n / 4 {
				probe()
			}
		}()
	}
	wg.Wait()
	waitFor(t, "idle", func() bool { return s.OpenConns() == 0 })
	stableGoroutines(t, base)
	if s.Accepted() != n+1 || s.CleanCloses() != n+1 {
		t.Fatalf("Accepted %d CleanCloses %d", s.Accepted(), s.CleanCloses())
	}
}

func TestCloseEndsEverything(t *testing.T) {
	base := runtime.NumGoroutine()
	faults := []Fault{FaultNone, FaultNoUpgrade, FaultNoChallenge, FaultStallAfterChallenge, FaultStallHealth, FaultStarting, FaultOversized}
	s := New(Options{Delay: time.Millisecond})
	var conns []io.Closer
	for _, f := range faults {
		s.SetFault(f)
		switch f {
		case FaultNoUpgrade:
			nc, err := net.Dial("tcp", s.Addr())
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(nc, "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
			conns = append(conns, nc)
		case FaultOversized:
			// a client that never reads: the server blocks writing
			c := dial(t, s)
			conns = append(conns, c)
		default:
			c := dial(t, s)
			if f == FaultStallHealth {
				handshake(t, s, c)
				send(t, c, map[string]any{"type": "req", "id": "r1", "method": "health", "params": map[string]any{}})
			} else if f != FaultNoChallenge {
				challenge(t, c)
				send(t, c, connectReq("c1", 3, 3, tokenAuth(DefaultToken)))
			}
			conns = append(conns, c)
		}
	}
	// an idle HTTP keep-alive connection
	tr := &http.Transport{}
	s.SetFault(FaultNone)
	resp, err := (&http.Client{Transport: tr}).Get(s.HTTPURL() + "/")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()

	waitFor(t, "all conns open", func() bool { return s.OpenConns() == len(faults)+1 })
	done := make(chan struct{})
	go func() { s.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close blocked")
	}
	if s.OpenConns() != 0 {
		t.Fatalf("OpenConns after Close: %d", s.OpenConns())
	}
	s.Close() // idempotent
	for _, c := range conns {
		c.Close()
	}
	tr.CloseIdleConnections()
	stableGoroutines(t, base)
}

func TestRecordBounds(t *testing.T) {
	s := New(Options{})
	defer s.Close()
	for i := range 2500 {
		s.record([]byte(fmt.Sprintf(`{"type":"req","id":"x","method":"m%d","params":{}}`, i)))
	}
	for i := range 250 {
		s.record([]byte(fmt.Sprintf(`{"type":"req","id":"x","method":"connect","params":{"n":%d}}`, i)))
	}
	s.record([]byte(`{"type":"event","event":"tick"}`))
	m := s.Methods()
	if len(m) != 1000 || m[999] != "connect" || m[0] != "m1750" {
		t.Fatalf("len %d first %s last %s", len(m), m[0], m[len(m)-1])
	}
	p := s.ConnectParams()
	if len(p) != 100 || string(p[0]) != `{"n":150}` || string(p[99]) != `{"n":249}` {
		t.Fatalf("len %d first %s last %s", len(p), p[0], p[len(p)-1])
	}
}
