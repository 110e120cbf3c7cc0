// Package gatewaytest provides a fake Clawdbot/OpenClaw gateway for tests,
// in the spirit of net/http/httptest.
//
// The fake speaks the real gateway WebSocket protocol (see
// docs/protocol.md#handshake-sequence, #connect-params, #payloads and
// #plain-http-on-the-gateway-port): it sends the connect.challenge event,
// validates the connect request as strictly as the real gateways do (unknown
// keys, client ids, protocol range, auth), answers health, serves the plain
// HTTP endpoints, and can inject faults (stalls, garbage, restarts, dropped
// TCP connections...). It records what clients did (request methods, connect
// params, clean closes) and tracks server-side TCP connections so tests can
// assert that probes never leak connections or goroutines.
//
// Differences from the real gateways that callers should know:
//   - connect params are validated against exactly the keys the exporter is
//     expected to send (minProtocol, maxProtocol, client{id,version,platform,
//     mode}, role, scopes, auth{token,password}); the real schema knows a few
//     more optional keys, the fake rejects them like unknown keys.
//   - there is no 10 s handshake timeout and no periodic tick (ticks are only
//     sent with Options.InterleaveEvents).
//   - methods other than health, status and config.get that appear in
//     hello-ok.features.methods are answered with an empty ok:true payload.
package gatewaytest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// Fault selects a misbehaviour of the fake gateway. Faults apply to
// connections accepted after they are set.
type Fault string

// Faults the fake gateway can inject.
const (
	// FaultNone: a healthy gateway.
	FaultNone Fault = ""
	// FaultNoUpgrade accepts TCP, reads the HTTP request and never answers
	// (WebSocket upgrades and plain HTTP alike). The connection is held until
	// the client closes it or the server is closed.
	FaultNoUpgrade Fault = "no-upgrade"
	// FaultNoChallenge upgrades but never sends the challenge nor answers
	// anything; client frames are read and discarded (and recorded).
	FaultNoChallenge Fault = "no-challenge"
	// FaultStallAfterChallenge sends the challenge and never answers connect.
	FaultStallAfterChallenge Fault = "stall-after-challenge"
	// FaultStallHealth completes the handshake and never answers health
	// (other methods are still answered).
	FaultStallHealth Fault = "stall-health"
	// FaultRestart answers the connect request with event "shutdown" followed
	// by close 1012 (service restart), as a gateway that is being stopped.
	FaultRestart Fault = "restart"
	// FaultGarbage sends the text frame "\x00garbage{" instead of the
	// challenge, then goes on with the protocol (connect is answered).
	FaultGarbage Fault = "garbage"
	// FaultBinaryFrame sends a binary frame instead of the challenge, then
	// goes on with the protocol.
	FaultBinaryFrame Fault = "binary"
	// FaultOversized sends a 64 MiB text frame of valid JSON (a challenge
	// whose nonce is 64 MiB long) instead of the challenge, streamed in
	// fragments, then goes on with the protocol.
	FaultOversized Fault = "oversized"
	// FaultHealthNotOK answers health with ok:true and a payload with ok:false.
	FaultHealthNotOK Fault = "health-not-ok"
	// FaultHealthError answers health with ok:false,
	// error {code:"UNAVAILABLE",message:"health unavailable"}.
	FaultHealthError Fault = "health-error"
	// FaultStarting answers every connect with ok:false
	// {code:"UNAVAILABLE",message:"gateway starting; retry shortly",
	// retryable:true,retryAfterMs:1000} and keeps the connection open, like
	// openclaw while it boots.
	FaultStarting Fault = "starting"
	// FaultDropTCP sends the challenge, then, when the client's first frame
	// (the connect request) arrives, closes the TCP connection without a
	// close frame and without answering.
	FaultDropTCP Fault = "drop-tcp"
	// FaultHelloNotOK answers connect with ok:true but a payload whose type is
	// not "hello-ok".
	FaultHelloNotOK Fault = "bad-hello"
	// FaultFreezeAfterChallenge sends the challenge and then does nothing at
	// all, not even answer WebSocket pings: a process stopped (SIGSTOP) or
	// wedged right after the challenge. Unlike FaultStallAfterChallenge,
	// whose event loop still answers pings.
	FaultFreezeAfterChallenge Fault = "freeze-after-challenge"
	// FaultTrickleUpgrade answers the WebSocket upgrade (and plain HTTP)
	// one byte every 50 ms, forever: a response that never ends, cut by
	// the client's deadline in the middle of its status line or headers.
	FaultTrickleUpgrade Fault = "trickle-upgrade"
	// FaultStallStatus completes the handshake and answers health but never
	// the status RPC.
	FaultStallStatus Fault = "stall-status"
)

// OversizedBytes is the size of the padding in the FaultOversized frame; the
// whole frame is slightly larger.
const OversizedBytes = 64 << 20

// Defaults applied by New / SetOptions to zero fields.
const (
	DefaultToken    = "test-token"
	DefaultPassword = "test-password"
)

// Server versions reported in hello-ok.server.version.
const (
	VersionProtocol3 = "dev"
	VersionProtocol4 = "2026.9.6"
)

// Options configures the fake gateway. Zero values select the defaults
// documented on each field.
type Options struct {
	// ListenAddr is where to listen (default 127.0.0.1:0, a free port).
	ListenAddr string
	// SnapshotHealth puts the health payload in hello-ok's snapshot, as
	// the real gateways do (without openclaw's modelRuntime); by default
	// the snapshot's health is empty.
	SnapshotHealth bool
	// Protocol is 3 (clawdbot, default) or 4 (openclaw).
	Protocol int
	// AuthMode is "token" (default), "password" or "none".
	AuthMode string
	// Token is the gateway token in token mode (default DefaultToken).
	Token string
	// Password is the gateway password in password mode (default
	// DefaultPassword).
	Password string
	// Fault injects a misbehaviour (default none).
	Fault Fault
	// Delay is waited before every server frame and every plain HTTP
	// response (a slow gateway). Waits end early when the client goes away
	// or the server is closed.
	Delay time.Duration
	// InterleaveEvents makes the server send one "tick" event before each
	// response after the handshake, so clients must match responses by id.
	InterleaveEvents bool
	// ReadyFailing makes the protocol-4 /readyz answer 503
	// {"ready":false,"failing":["channels"],...}. The default (false) is a
	// ready gateway: 200 {"ready":true,"failing":[],...}.
	ReadyFailing bool
	// ReadyChecks, with ReadyFailing, replaces failing[] (default
	// ["channels"]).
	ReadyChecks []string
	// Health, when set, replaces the health payload (sent as is).
	Health json.RawMessage
	// Status, when set, replaces the status payload (sent as is).
	Status json.RawMessage
	// TLS serves wss:// and https:// with a self-signed certificate made at
	// New, as openclaw's gateway.tls.autoGenerate does: CN
	// openclaw-gateway, no IP SANs (CertPEM returns it). Fixed at New.
	TLS bool
	// ConfigSchema, when set, is the answer to config.schema (openclaw's
	// own config schema), which hello-ok then advertises.
	ConfigSchema json.RawMessage
	// AuthThrottle, when set, delays every refused connect the way openclaw
	// 2026.9 does for loopback clients: AuthThrottle·2^(n-1), n the refusals
	// of the last AuthThrottleWindow (default 1 minute, at most 6 counted),
	// capped at AuthThrottleMax (default 20·AuthThrottle). Pings are
	// answered meanwhile, as the real gateway's event loop is free.
	AuthThrottle       time.Duration
	AuthThrottleMax    time.Duration
	AuthThrottleWindow time.Duration
	// ServerVersion, when set, replaces hello-ok.server.version (default
	// VersionProtocol3 or VersionProtocol4).
	ServerVersion string
}

func (o Options) normalized() Options {
	if o.Protocol == 0 {
		o.Protocol = 3
	}
	if o.AuthMode == "" {
		o.AuthMode = "token"
	}
	if o.Token == "" {
		o.Token = DefaultToken
	}
	if o.Password == "" {
		o.Password = DefaultPassword
	}
	if o.AuthThrottle > 0 && o.AuthThrottleMax == 0 {
		o.AuthThrottleMax = 20 * o.AuthThrottle
	}
	if o.AuthThrottleWindow == 0 {
		o.AuthThrottleWindow = time.Minute
	}
	return o
}

const (
	maxMethods       = 1000
	maxConnectParams = 100
	closeWait        = 2 * time.Second // how long the server waits for the client's close echo
	controlDeadline  = 5 * time.Second
	readLimitP3      = 512 << 10
	readLimitP4      = 25 << 20
)

// Server is a fake gateway listening on 127.0.0.1.
type Server struct {
	ln      net.Listener
	hs      *http.Server
	addr    string
	started time.Time

	mu            sync.Mutex
	opts          Options
	closed        bool
	conns         map[*trackedConn]struct{}
	methods       []string
	connectParams []json.RawMessage
	authFailures  []time.Time
	bootID        string
	certPEM       []byte // Options.TLS

	accepted    atomic.Int64
	schemaCalls atomic.Int64
	// readyzGets counts plain-HTTP GETs of /readyz, whatever the product.
	readyzGets  atomic.Int64
	open        atomic.Int64
	cleanCloses atomic.Int64

	quit      chan struct{}
	serveDone chan struct{}
	closeOnce sync.Once
	httpConns sync.WaitGroup // http.Server connection goroutines (until closed or hijacked)
	handlers  sync.WaitGroup // handlers and their reader goroutines
}

// New starts a fake gateway on 127.0.0.1 with a random port. It panics if it
// cannot listen. Call Close when done.
func New(opts Options) *Server {
	addr := opts.ListenAddr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		panic(fmt.Sprintf("gatewaytest: listen: %v", err))
	}
	s := &Server{
		addr:      ln.Addr().String(),
		started:   time.Now(),
		opts:      opts.normalized(),
		conns:     make(map[*trackedConn]struct{}),
		quit:      make(chan struct{}),
		serveDone: make(chan struct{}),
		bootID:    newUUID(),
	}
	s.ln = &trackingListener{Listener: ln, s: s}
	if opts.TLS {
		s.ln = s.serveTLS(s.ln)
	}
	s.hs = &http.Server{
		Handler:  http.HandlerFunc(s.handle),
		ErrorLog: log.New(io.Discard, "", 0),
		ConnState: func(_ net.Conn, st http.ConnState) {
			switch st {
			case http.StateNew:
				s.httpConns.Add(1)
			case http.StateHijacked, http.StateClosed:
				s.httpConns.Done()
			}
		},
	}
	go func() {
		defer close(s.serveDone)
		_ = s.hs.Serve(s.ln)
	}()
	return s
}

// URL returns the WebSocket URL, "ws://127.0.0.1:PORT" (wss:// with
// Options.TLS).
func (s *Server) URL() string {
	if s.certPEM != nil {
		return "wss://" + s.addr
	}
	return "ws://" + s.addr
}

// HTTPURL returns "http://127.0.0.1:PORT" (https:// with Options.TLS).
func (s *Server) HTTPURL() string {
	if s.certPEM != nil {
		return "https://" + s.addr
	}
	return "http://" + s.addr
}

// Addr returns "127.0.0.1:PORT".
func (s *Server) Addr() string { return s.addr }

// Started returns when the server started; hello-ok.snapshot.uptimeMs and
// /readyz uptimeMs count from it.
func (s *Server) Started() time.Time { return s.started }

// SetFault sets the fault for connections (and HTTP requests) that start
// afterwards. Safe for concurrent use.
func (s *Server) SetFault(f Fault) {
	s.SetOptions(func(o *Options) { o.Fault = f })
}

// SetOptions changes the options for connections (and HTTP requests) that
// start afterwards. Zero fields get their defaults again. Safe for concurrent
// use.
func (s *Server) SetOptions(f func(*Options)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.opts
	f(&o)
	s.opts = o.normalized()
}

// Options returns the current (normalized) options.
func (s *Server) Options() Options {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.opts
}

func (s *Server) countSchema() { s.schemaCalls.Add(1) }

// ReadyzGets is how many plain-HTTP requests asked for /readyz.
func (s *Server) ReadyzGets() int64 { return s.readyzGets.Load() }

// SchemaCalls counts config.schema requests answered.
func (s *Server) SchemaCalls() int64 { return s.schemaCalls.Load() }

// OpenConns returns the number of server-side TCP connections currently
// open (upgraded or not).
func (s *Server) OpenConns() int { return int(s.open.Load()) }

// Accepted returns the total number of TCP connections accepted.
func (s *Server) Accepted() int64 { return s.accepted.Load() }

// CleanCloses returns the number of WebSocket connections on which the
// client sent a close frame before the TCP connection ended (this includes a
// client echoing a close frame the server sent first). It is updated before
// the server closes the TCP connection, so once OpenConns drops the count is
// final.
func (s *Server) CleanCloses() int64 { return s.cleanCloses.Load() }

// Methods returns every request method received (all connections, in
// arrival order, including connect and requests the server ignored; the last
// 1000).
func (s *Server) Methods() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.methods
	if len(m) > maxMethods {
		m = m[len(m)-maxMethods:]
	}
	return append([]string(nil), m...)
}

// ConnectParams returns the raw params of the connect requests received
// (the last 100).
func (s *Server) ConnectParams() []json.RawMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.connectParams
	if len(p) > maxConnectParams {
		p = p[len(p)-maxConnectParams:]
	}
	return append([]json.RawMessage(nil), p...)
}

// Close stops the server, closes every connection (hijacked and upgraded
// ones included) and waits until all server goroutines have ended. It does
// not wait for clients. Idempotent and safe for concurrent use.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		conns := make([]*trackedConn, 0, len(s.conns))
		for c := range s.conns {
			conns = append(conns, c)
		}
		s.mu.Unlock()
		close(s.quit)
		_ = s.hs.Close()
		_ = s.ln.Close()
		for _, c := range conns {
			_ = c.Close()
		}
		<-s.serveDone
		s.httpConns.Wait()
		s.handlers.Wait()
	})
}

func (s *Server) snapshot() Options {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.opts
}

// enter registers a handler goroutine; false once the server is closing.
func (s *Server) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.handlers.Add(1)
	return true
}

func (s *Server) record(data []byte) {
	var f struct {
		Type   string          `json:"type"`
		Method string          `json:"method"`
		Params json.RawMessage `json:"params"`
	}
	if json.Unmarshal(data, &f) != nil || f.Type != "req" || f.Method == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// Keep up to twice the bound and trim in one go (amortized O(1)).
	s.methods = append(s.methods, f.Method)
	if n := len(s.methods); n > 2*maxMethods {
		s.methods = append(s.methods[:0:0], s.methods[n-maxMethods:]...)
	}
	if f.Method == "connect" {
		s.connectParams = append(s.connectParams, append(json.RawMessage(nil), f.Params...))
		if n := len(s.connectParams); n > 2*maxConnectParams {
			s.connectParams = append(s.connectParams[:0:0], s.connectParams[n-maxConnectParams:]...)
		}
	}
}

func (s *Server) uptimeMs() int64 { return time.Since(s.started).Milliseconds() }

// RestartInProcess does what openclaw's in-process restart does: a new
// hello-ok.server.bootId, while the uptime keeps counting and the refused
// logins are forgotten.
func (s *Server) RestartInProcess() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bootID = newUUID()
	s.authFailures = nil
}

// BootID is the current hello-ok.server.bootId (protocol 4).
func (s *Server) BootID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bootID
}

// authPenalty records a refused login and returns how long to hold its
// answer back (Options.AuthThrottle).
func (s *Server) authPenalty(o Options) time.Duration {
	if o.AuthThrottle <= 0 {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	kept := s.authFailures[:0]
	for _, t := range s.authFailures {
		if now.Sub(t) < o.AuthThrottleWindow {
			kept = append(kept, t)
		}
	}
	kept = append(kept, now)
	if len(kept) > 6 {
		kept = kept[len(kept)-6:]
	}
	s.authFailures = kept
	return min(o.AuthThrottle<<(len(kept)-1), o.AuthThrottleMax)
}

// ---- connection tracking ----

type trackingListener struct {
	net.Listener
	s *Server
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	s := l.s
	s.accepted.Add(1)
	tc := &trackedConn{Conn: c, s: s}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = c.Close()
		return nil, net.ErrClosed
	}
	s.conns[tc] = struct{}{}
	s.open.Add(1)
	s.mu.Unlock()
	return tc, nil
}

type trackedConn struct {
	net.Conn
	s    *Server
	once sync.Once
	err  error
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.err = c.Conn.Close()
		c.s.mu.Lock()
		delete(c.s.conns, c)
		c.s.mu.Unlock()
		c.s.open.Add(-1)
	})
	return c.err
}

// ---- HTTP ----

func (s *Server) handle(w http.ResponseWriter, r *http.Request) {
	if !s.enter() {
		http.Error(w, "server closed", http.StatusServiceUnavailable)
		return
	}
	defer s.handlers.Done()
	opts := s.snapshot()

	if opts.Fault == FaultNoUpgrade {
		s.hold(w)
		return
	}
	if opts.Fault == FaultTrickleUpgrade {
		s.trickle(w)
		return
	}
	if !websocket.IsWebSocketUpgrade(r) {
		s.serveHTTP(w, r, opts)
		return
	}
	up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	ws, err := up.Upgrade(w, r, nil)
	if err != nil {
		return // Upgrade already answered with an HTTP error
	}
	s.runSession(ws, opts)
}

// hold hijacks the connection and never answers; it returns when the peer
// closes or the server closes the connection.
func (s *Server) hold(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		return
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	_, _ = io.Copy(io.Discard, conn)
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request, opts Options) {
	if opts.Delay > 0 {
		t := time.NewTimer(opts.Delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return
		case <-s.quit:
			return
		}
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if r.URL.Path == "/readyz" {
		s.readyzGets.Add(1)
	}
	if opts.Protocol >= 4 {
		switch r.URL.Path {
		case "/healthz":
			writeJSON(w, http.StatusOK, map[string]any{"ok": true, "status": "live"})
			return
		case "/readyz":
			if opts.ReadyFailing {
				failing := opts.ReadyChecks
				if failing == nil {
					failing = []string{"channels"}
				}
				writeJSON(w, http.StatusServiceUnavailable, map[string]any{"ready": false, "failing": failing, "uptimeMs": s.uptimeMs()})
			} else {
				writeJSON(w, http.StatusOK, map[string]any{"ready": true, "failing": []string{}, "uptimeMs": s.uptimeMs()})
			}
			return
		}
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, "<html>control ui</html>")
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write(b)
}

// ---- helpers ----

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = (b[6] & 0x0f) | 0x40
	b[8] = (b[8] & 0x3f) | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
