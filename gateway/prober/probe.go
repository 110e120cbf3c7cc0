package prober

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"

	"github.com/clawdbot-exporter/clawdbot_exporter/gateway"
	"github.com/clawdbot-exporter/clawdbot_exporter/internal/lru"
	"github.com/clawdbot-exporter/clawdbot_exporter/internal/secret"
	"github.com/clawdbot-exporter/clawdbot_exporter/internal/text"
)

// Phase is one step of a probe, in order.
type Phase int

const (
	PhaseConnect   Phase = iota // TCP connect
	PhaseUpgrade                // TLS and HTTP upgrade to WebSocket
	PhaseChallenge              // wait for the unprompted connect.challenge event
	PhaseHello                  // connect request until hello-ok
	PhaseHealth                 // health RPC
	numPhases
)

var phaseNames = [numPhases]string{"connect", "upgrade", "challenge", "hello", "health"}

func (p Phase) String() string {
	if p < 0 || p >= numPhases {
		return "unknown"
	}
	return phaseNames[p]
}

// Phases lists every phase, in order, for metrics that must always carry all.
func Phases() []Phase {
	return []Phase{PhaseConnect, PhaseUpgrade, PhaseChallenge, PhaseHello, PhaseHealth}
}

// Reason says why a probe failed, from a small fixed set usable as a label.
type Reason string

const (
	ReasonDial      Reason = "dial"      // TCP connect refused or unreachable
	ReasonTimeout   Reason = "timeout"   // the deadline passed: a wedged or frozen gateway
	ReasonTLS       Reason = "tls"       // TLS handshake or certificate failed
	ReasonUpgrade   Reason = "upgrade"   // the port answers but not as a WebSocket
	ReasonAuth      Reason = "auth"      // token or password refused (close 1008)
	ReasonProtocol  Reason = "protocol"  // no common protocol version (close 1002)
	ReasonClosed    Reason = "closed"    // the gateway closed the connection (1012 restart, reset, EOF)
	ReasonRPC       Reason = "rpc"       // a request was answered with an error
	ReasonBadFrame  Reason = "bad_frame" // garbage, binary, oversized or unexpected frames
	ReasonStarting  Reason = "starting"  // the gateway answers UNAVAILABLE while it boots
	ReasonUnhealthy Reason = "unhealthy" // health answered with ok:false
	// ReasonHelloTimeout: the gateway sent the challenge and answered a
	// WebSocket ping (its event loop runs) but not connect before the
	// deadline, as openclaw does while it throttles refused logins. Not a
	// hung gateway: never a reason to restart it.
	ReasonHelloTimeout Reason = "hello_timeout"
)

// Reasons lists every reason, so counters can start at zero.
func Reasons() []Reason {
	return []Reason{ReasonDial, ReasonTimeout, ReasonTLS, ReasonUpgrade, ReasonAuth, ReasonProtocol,
		ReasonClosed, ReasonRPC, ReasonBadFrame, ReasonStarting, ReasonUnhealthy, ReasonHelloTimeout}
}

// ProbeError is a failed probe: the phase it failed in and why.
type ProbeError struct {
	Phase  Phase
	Reason Reason
	Err    error
}

func (e *ProbeError) Error() string {
	return fmt.Sprintf("%s failed in phase %s: %v", e.Reason, e.Phase, e.Err)
}

func (e *ProbeError) Unwrap() error { return e.Err }

// Result is what one probe learnt. Fields are filled as far as the probe got.
type Result struct {
	Durations [numPhases]time.Duration
	Hello     *Hello
	Health    *Health
	// Ready is the openclaw /readyz answer; nil when the gateway has no such
	// endpoint (clawdbot answers every path with its HTML page). A gateway
	// that once answered it gets a Ready (not answered) while it is down.
	Ready *Readiness
	// Status is openclaw's status RPC payload as last fetched (at most once
	// a minute per gateway, cached in between); StatusAt is when.
	Status   *Status
	StatusAt time.Time
	// HealthFromSnapshot: Health is the hello-ok's snapshot, the health
	// RPC having answered ok less than a minute ago (healthcache.go).
	HealthFromSnapshot bool
}

// Duration of one phase; zero for a phase the probe did not reach.
func (r *Result) Duration(p Phase) time.Duration { return r.Durations[p] }

// Product is "clawdbot" for protocol 3 (the clawdbot/moltbot era) and
// "openclaw" for protocol 4; empty before a successful handshake.
func (r *Result) Product() string {
	if r.Hello == nil {
		return ""
	}
	return ProductForProtocol(r.Hello.Protocol)
}

// ProductForProtocol names the product that speaks a protocol version.
func ProductForProtocol(p int) string {
	switch p {
	case 3:
		return "clawdbot"
	case 4:
		return "openclaw"
	}
	return "unknown"
}

// Version is the gateway's version, or "" when it reports none worth a
// label: clawdbot says "dev" unless CLAWDBOT_VERSION is set.
func (r *Result) Version() string {
	if r.Hello == nil {
		return ""
	}
	switch v := r.Hello.Server.Version; v {
	case "", "dev", "unknown", "0.0.0":
		return ""
	default:
		// A label value: valid UTF-8, at most 64 bytes, cut between
		// characters.
		return text.TruncateUTF8(strings.ToValidUTF8(v, "\uFFFD"), 64)
	}
}

// BuildID is the gateway's build id (openclaw's hello-ok.server.buildId),
// as a label value: valid UTF-8, at most 64 bytes.
func (r *Result) BuildID() string {
	if r.Hello == nil {
		return ""
	}
	return text.TruncateUTF8(strings.ToValidUTF8(r.Hello.Server.BuildID, "\uFFFD"), 64)
}

const (
	// Protocol versions this client speaks: 3 (clawdbot) and 4 (openclaw).
	minProtocol = 3
	maxProtocol = 4
	// readLimit bounds one incoming frame: far above any health payload,
	// far below what could hurt the exporter.
	readLimit = 4 << 20
	// placeholderToken satisfies the gateway's non-empty-token rule when
	// the gateway has no token (docs/protocol.md#credentials).
	placeholderToken = "clawdbot_exporter"
	// closeWait bounds the wait for the gateway's answer to our close frame.
	closeWait = 250 * time.Millisecond
)

// Prober probes gateways. The zero value works; ClientVersion is sent to
// the gateway in connect.
type Prober struct {
	ClientVersion string
	TLSConfig     *tls.Config
	// OneShot is a prober that probes each gateway once (the probe
	// subcommand, a container health check): with nothing learnt yet, it
	// asks /readyz only after hello-ok named a gateway that may have one,
	// rather than beside the WebSocket, where clawdbot (protocol 3) would
	// serve its whole Control UI page on the same event loop as the probe.
	OneShot bool

	mu sync.Mutex
	// backend remembers URLs of gateways that admit only the backend client.
	backend lru.Map[bool]
	// gate holds each target's auth backoff; every probe of a target goes
	// through it, so share one Prober between everything that probes.
	gate gate
	// schemas caches each gateway's config schema (schema.go).
	schemas schemas
	// runs counts each target's restarts (restarts.go).
	runs restarts
	// statuses caches each target's status RPC payload; readyz remembers
	// the targets that have a /readyz endpoint.
	// Both bounded like the other per-target state (lru.go).
	statuses lru.Map[*statusEntry]
	readyz   lru.Map[bool]
	// noReadyz holds the gateways known to have no /readyz: clawdbot
	// (protocol 3) answers it with its whole Control UI page, an HTTP
	// request that costs the gateway half as much as the WebSocket probe
	// and proves nothing the probe does not.
	noReadyz lru.Map[bool]
	// healths holds each target's last ok health RPC (healthcache.go).
	healths lru.Map[*healthEntry]
	// now is the gate's clock; tests set it.
	now func() time.Time
}

func (p *Prober) clock() time.Time {
	if p.now != nil {
		return p.now()
	}
	return time.Now()
}

// gateKey identifies a target for the gate.
func gateKey(t gateway.Target) string { return t.Name + "\x00" + t.URL }

// AuthBackoff is the target's current backoff between logins; 0 when the
// gateway has not refused the credentials.
func (p *Prober) AuthBackoff(t gateway.Target) time.Duration { return p.gate.backoff(gateKey(t)) }

// ObserveRestart tells the gate what identifies the gateway's current run
// (its hello-ok bootId, its process start time in clock ticks; zero values
// are unknown): a change means a restart, whose fresh gateway has forgotten
// the refused logins, so the backoff ends.
func (p *Prober) ObserveRestart(t gateway.Target, bootID string, startTicks uint64) {
	p.gate.observe(gateKey(t), bootID, startTicks)
	p.runs.observe(gateKey(t), evidence{bootID: bootID, startTicks: startTicks}, p.clock())
}

// Restarts is how many restarts of the target this prober has seen (a new
// bootId, process start time, or an uptime that went down) and when it saw
// the last one (zero when none).
func (p *Prober) Restarts(t gateway.Target) (count uint64, last time.Time) {
	return p.runs.get(gateKey(t))
}

// The client identities the probe presents. cli/cli is what the gateway's
// own CLI uses and stays out of the presence list. An openclaw gateway with
// auth mode none refuses it ("device identity required") and admits only
// gateway-client/backend from loopback; the probe falls back to that when it
// holds no credentials.
var (
	cliClient     = clientInfo{ID: "cli", Mode: "cli"}
	backendClient = clientInfo{ID: "gateway-client", Mode: "backend"}
)

// Probe runs the WebSocket probe and, concurrently, the HTTP readiness
// probe, both bounded by ctx. It returns a *ProbeError when the gateway is not
// up; the Result then holds what was learnt before the failure.
func (p *Prober) Probe(ctx context.Context, t gateway.Target) (*Result, error) {
	u, err := gateway.ParseURL(t.URL)
	if err != nil {
		return &Result{}, &ProbeError{Phase: PhaseConnect, Reason: ReasonDial, Err: err}
	}
	token, password, credErr := t.Secrets()
	t.Token, t.Password = token, password
	key := u.String()
	var tlsCfg *tls.Config
	if u.Scheme == "wss" {
		if tlsCfg, err = p.tlsConfig(t); err != nil {
			return &Result{}, &ProbeError{Phase: PhaseUpgrade, Reason: ReasonTLS, Err: err}
		}
	}
	var (
		wg    sync.WaitGroup
		ready *Readiness
	)
	p.mu.Lock()
	client := cliClient
	if has(&p.backend, key) {
		client = backendClient
	}
	skipReady := has(&p.noReadyz, key) || p.OneShot
	p.mu.Unlock()
	if !skipReady {
		wg.Go(func() { ready = p.readiness(ctx, httpURL(u, "/readyz"), t.Token, tlsCfg) })
	}

	gk, creds := gateKey(t), fingerprint(token, password)
	full, refused, retryIn := p.gate.admit(gk, creds, p.clock())
	if !full {
		res, err := p.probeLiveness(ctx, key, tlsCfg, refused, retryIn)
		if pe := (*ProbeError)(nil); errors.As(err, &pe) && pe.Reason == ReasonDial {
			p.gate.done(gk, creds, ReasonDial, p.clock())
		}
		wg.Wait()
		res.Ready = p.rememberReady(key, ready, res)
		return res, p.explain(err, t, credErr)
	}
	res, err := p.probeWS(ctx, key, t, client, tlsCfg)
	if client == cliClient && t.Token == "" && t.Password == "" && needsIdentity(err) {
		if res, err = p.probeWS(ctx, key, t, backendClient, tlsCfg); err == nil {
			p.mu.Lock()
			p.backend.Put(key, true)
			p.mu.Unlock()
		}
	}
	wg.Wait()
	if p.OneShot && res.Hello != nil && res.Hello.Protocol != 3 {
		ready = p.readiness(ctx, httpURL(u, "/readyz"), t.Token, tlsCfg)
	}
	res.Ready = p.rememberReady(key, ready, res)
	p.learnReadyz(key, skipReady, ready, res)
	var reason Reason
	var pe *ProbeError
	if errors.As(err, &pe) {
		reason = pe.Reason
	}
	p.gate.done(gk, creds, reason, p.clock())
	if h := res.Hello; h != nil {
		p.gate.observe(gk, h.Server.BootID, 0)
		p.runs.observe(gk, evidence{bootID: h.Server.BootID, uptimeMs: h.Snapshot.UptimeMs}, p.clock())
	}
	return res, p.explain(err, t, credErr)
}

// explain redacts a probe error and, for a refusal, says what to fix on
// the exporter's side: the gateway's own hint (gateway.remote.token) is
// about its CLI, not about this exporter.
func (p *Prober) explain(err error, t gateway.Target, credErr error) error {
	var pe *ProbeError
	if !errors.As(err, &pe) {
		return err
	}
	pe.Err = redactErr(pe.Err, t)
	if pe.Reason == ReasonAuth || pe.Reason == ReasonHelloTimeout {
		hint := fmt.Sprintf("credentials from %s", t.Source)
		if credErr != nil {
			hint += fmt.Sprintf(" (re-reading them failed: %v)", credErr)
		}
		hint += "; give the exporter the gateway's token with --gateway.token-file or token_file in --config.file " +
			"(or $OPENCLAW_GATEWAY_TOKEN / $CLAWDBOT_GATEWAY_TOKEN), or set gateway.auth.token in the gateway's config"
		if t.ConfigPath != "" {
			hint += " " + t.ConfigPath
		}
		hint += "; an openclaw without gateway.auth makes up a token at each start that nobody else knows"
		pe.Err = fmt.Errorf("%w: %s", pe.Err, hint)
	}
	return err
}

// probeLiveness is the probe of a gateway in auth backoff: connect,
// upgrade, wait for the challenge, close, without logging in, so that the
// gateway's penalty for refused logins decays. A challenge proves the event
// loop answers; the remembered refusal is then the result.
func (p *Prober) probeLiveness(ctx context.Context, wsURL string, tlsCfg *tls.Config, refused Reason, retryIn time.Duration) (*Result, error) {
	res, conn, pe := p.open(ctx, wsURL, tlsCfg)
	if pe != nil {
		return res, pe
	}
	conn.close()
	return res, &ProbeError{Phase: PhaseHello, Reason: refused, Err: fmt.Errorf(
		"the gateway refused the credentials earlier (%s); it answers (challenge received), next login attempt in %v", refused, retryIn.Round(time.Second))}
}

// needsIdentity tells a refusal of the cli client by a gateway without auth.
func needsIdentity(err error) bool {
	var rpcErr *RPCError
	return errors.As(err, &rpcErr) && (rpcErr.Details.Code == "DEVICE_IDENTITY_REQUIRED" || rpcErr.Code == "NOT_PAIRED")
}

// phases times a probe's phases into its Result.
type phases struct {
	res   *Result
	phase Phase
	start time.Time
}

func (ph *phases) begin(p Phase) {
	now := time.Now()
	ph.res.Durations[ph.phase] = now.Sub(ph.start)
	ph.phase, ph.start = p, now
}

// fail records the time spent in the failing phase too: a timeout shows
// where the gateway hung.
func (ph *phases) fail(ctx context.Context, e error, pongs *atomic.Int32) *ProbeError {
	ph.res.Durations[ph.phase] = time.Since(ph.start)
	return &ProbeError{Phase: ph.phase, Reason: classify(ctx, ph.phase, e, pongs != nil && pongs.Load() > 0), Err: e}
}

// open connects, upgrades and waits for the challenge. On success the
// connection carries the context's deadline on every read and write, and
// its close ends the deadline's watcher too.
func (p *Prober) open(ctx context.Context, wsURL string, tlsCfg *tls.Config) (*Result, *wsConn, *ProbeError) {
	res := &Result{}
	ph := &phases{res: res, phase: PhaseConnect, start: time.Now()}
	dialer := &websocket.Dialer{
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dialFor(ctx)(ctx, network, addr)
			if err == nil {
				ph.begin(PhaseUpgrade)
			}
			return c, err
		},
		TLSClientConfig: tlsCfg,
		ReadBufferSize:  16 << 10,
		WriteBufferSize: 4 << 10,
	}
	conn, resp, err := dialer.DialContext(ctx, wsURL, nil)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		if resp != nil && errors.Is(err, websocket.ErrBadHandshake) {
			err = fmt.Errorf("%w: HTTP %s", err, resp.Status)
		}
		return res, nil, ph.fail(ctx, err, nil)
	}
	// Every read and write carries the deadline; a cancelled context (the
	// scrape's client went away) ends a blocked read at once.
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(30 * time.Second)
	}
	conn.SetReadLimit(readLimit)
	_ = conn.SetReadDeadline(deadline)
	_ = conn.SetWriteDeadline(deadline)
	wc := &wsConn{Conn: conn, ctx: ctx, ph: ph}
	wc.stop = context.AfterFunc(ctx, func() { _ = conn.NetConn().SetDeadline(time.Unix(1, 0)) })
	conn.SetPongHandler(func(string) error { wc.pongs.Add(1); return nil })

	ph.begin(PhaseChallenge)
	if _, err := readUntil(conn, func(f *frame) bool { return f.Type == "event" && f.Event == "connect.challenge" }); err != nil {
		wc.close()
		return res, nil, ph.fail(ctx, err, nil)
	}
	return res, wc, nil
}

// wsConn is an open probe connection.
type wsConn struct {
	*websocket.Conn
	ctx   context.Context
	ph    *phases
	stop  func() bool
	pongs atomic.Int32
}

func (c *wsConn) close() {
	c.stop()
	closeGracefully(c.ctx, c.Conn)
}

func (c *wsConn) fail(e error) *ProbeError { return c.ph.fail(c.ctx, e, &c.pongs) }

func (p *Prober) probeWS(ctx context.Context, wsURL string, t gateway.Target, client clientInfo, tlsCfg *tls.Config) (*Result, error) {
	res, conn, pe := p.open(ctx, wsURL, tlsCfg)
	if pe != nil {
		return res, pe
	}
	defer conn.close()
	fail := func(e error) (*Result, error) { return res, conn.fail(e) }
	ph := conn.ph

	ph.begin(PhaseHello)
	auth := connectAuth{Token: t.Token.Reveal(), Password: t.Password.Reveal()}
	if auth.Token == "" {
		auth.Token = placeholderToken
	}
	version := p.ClientVersion
	if version == "" {
		version = "0.0.0"
	}
	client.Version, client.Platform = version, runtime.GOOS
	// The ping after connect is the evidence for a slow answer: a gateway
	// whose event loop runs answers it at once, even while it holds the
	// connect answer back (openclaw's login throttling); a frozen one
	// answers neither.
	hello, err := call(conn.Conn, "c1", "connect", connectParams{
		MinProtocol: minProtocol, MaxProtocol: maxProtocol,
		Client: client,
		Role:   "operator", Scopes: []string{"operator.read"}, Auth: auth,
	}, func() {
		_ = conn.WriteControl(websocket.PingMessage, []byte("clawdbot_exporter"), time.Now().Add(time.Second))
	})
	if err != nil {
		return fail(err)
	}
	var h Hello
	if err := json.Unmarshal(hello, &h); err != nil || h.Type != "hello-ok" {
		// Never quote the payload: openclaw's hello carries secret URLs.
		return fail(&badFrameError{"connect answered without hello-ok"})
	}
	if h.Protocol < minProtocol || h.Protocol > maxProtocol {
		return fail(&protocolError{h.Protocol})
	}
	res.Hello = &h

	ph.begin(PhaseHealth)
	if snap := p.snapshotHealth(wsURL, &h); snap != nil {
		res.Health, res.HealthFromSnapshot = snap, true
		res.Durations[PhaseHealth] = time.Since(ph.start)
	} else {
		payload, err := call(conn.Conn, "h1", "health", struct{}{}, nil)
		if err != nil {
			p.healthDone(wsURL, nil)
			return fail(err)
		}
		var health Health
		if err := json.Unmarshal(payload, &health); err != nil {
			p.healthDone(wsURL, nil)
			return fail(&badFrameError{"health payload: " + err.Error()})
		}
		p.healthDone(wsURL, &health)
		res.Health = &health
		res.Durations[PhaseHealth] = time.Since(ph.start)
		if health.OK == nil || !*health.OK {
			return res, &ProbeError{Phase: PhaseHealth, Reason: ReasonUnhealthy, Err: errors.New("health answered ok:false")}
		}
	}
	p.fetchSchema(ctx, conn.Conn, t, &h)
	res.Status, res.StatusAt = p.fetchStatus(ctx, conn.Conn, t, &h)
	return res, nil
}

// call sends one request and waits for the response with its id; events and
// other responses in between are skipped.
func call(conn *websocket.Conn, id, method string, params any, afterWrite func()) (json.RawMessage, error) {
	b, err := json.Marshal(request{Type: "req", ID: id, Method: method, Params: params})
	if err != nil {
		return nil, err
	}
	if err := conn.WriteMessage(websocket.TextMessage, b); err != nil {
		return nil, err
	}
	if afterWrite != nil {
		afterWrite()
	}
	f, err := readUntil(conn, func(f *frame) bool { return f.Type == "res" && f.ID == id })
	if err != nil {
		return nil, err
	}
	if f.OK == nil || !*f.OK {
		if f.Error == nil {
			return nil, &RPCError{Code: "UNKNOWN", Message: method + " failed without an error object"}
		}
		return nil, f.Error
	}
	return f.Payload, nil
}

func (e *RPCError) Error() string {
	msg := e.Message
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	return fmt.Sprintf("gateway error %s: %s", e.Code, msg)
}

// readUntil reads frames until match accepts one. Reads end at the
// connection's deadline.
func readUntil(conn *websocket.Conn, match func(*frame) bool) (*frame, error) {
	for {
		typ, data, err := conn.ReadMessage()
		if err != nil {
			return nil, err
		}
		if typ != websocket.TextMessage {
			return nil, &badFrameError{"binary frame"}
		}
		var f frame
		if err := json.Unmarshal(data, &f); err != nil {
			return nil, &badFrameError{fmt.Sprintf("frame is not JSON: %v", err)}
		}
		if match(&f) {
			return &f, nil
		}
	}
}

// closeGracefully sends a close frame, waits briefly for the gateway's close
// frame, then closes the TCP connection: a probe never leaves a half-open
// connection behind on the gateway.
func closeGracefully(ctx context.Context, conn *websocket.Conn) {
	defer conn.Close()
	deadline := time.Now().Add(closeWait)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if ctx.Err() != nil || time.Until(deadline) <= 0 {
		return
	}
	msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
	if err := conn.WriteControl(websocket.CloseMessage, msg, deadline); err != nil {
		return
	}
	_ = conn.SetReadDeadline(deadline)
	for {
		if _, _, err := conn.NextReader(); err != nil {
			return
		}
	}
}

type badFrameError struct{ msg string }

func (e *badFrameError) Error() string { return e.msg }

type protocolError struct{ got int }

func (e *protocolError) Error() string {
	return fmt.Sprintf("gateway agreed on protocol %d, this client speaks %d-%d", e.got, minProtocol, maxProtocol)
}

// classify maps an error to a Reason. The order matters: a deadline is a
// timeout whatever the error looks like, a gateway's error answer wins over
// the close that follows it.
//
// alive says the gateway answered a ping after the connect request: a
// timeout waiting for hello is then hello_timeout, not timeout.
func classify(ctx context.Context, phase Phase, err error, alive bool) Reason {
	var (
		rpcErr   *RPCError
		closeErr *websocket.CloseError
		netErr   net.Error
		bad      *badFrameError
		proto    *protocolError
		certErr  *tls.CertificateVerificationError
		unknownA x509.UnknownAuthorityError
		hostErr  x509.HostnameError
		recErr   tls.RecordHeaderError
		pinErr   *pinError
		alertErr tls.AlertError
	)
	// The deadline ended the read even when the error does not say so: a
	// trickled upgrade answer cut at the deadline reads as "malformed HTTP
	// response", and the context's own timer may fire a moment after the
	// connection's deadline.
	deadline, hasDeadline := ctx.Deadline()
	timedOut := errors.Is(err, context.DeadlineExceeded) || ctx.Err() == context.DeadlineExceeded ||
		errors.As(err, &netErr) && netErr.Timeout() || hasDeadline && !time.Now().Before(deadline)
	switch {
	case timedOut && phase == PhaseHello && alive:
		return ReasonHelloTimeout
	case timedOut:
		return ReasonTimeout
	case errors.As(err, &rpcErr):
		return classifyRPC(phase, rpcErr)
	case errors.As(err, &proto):
		return ReasonProtocol
	case errors.As(err, &closeErr):
		switch closeErr.Code {
		case websocket.CloseTryAgainLater: // openclaw: "gateway starting"
			return ReasonStarting
		case websocket.ClosePolicyViolation:
			return ReasonAuth
		case websocket.CloseProtocolError:
			return ReasonProtocol
		case websocket.CloseMessageTooBig, websocket.CloseUnsupportedData, websocket.CloseInvalidFramePayloadData:
			return ReasonBadFrame
		}
		return ReasonClosed
	case errors.As(err, &bad), errors.Is(err, websocket.ErrReadLimit):
		return ReasonBadFrame
	case errors.As(err, &certErr), errors.As(err, &unknownA), errors.As(err, &hostErr), errors.As(err, &recErr),
		errors.As(err, &pinErr), errors.As(err, &alertErr):
		return ReasonTLS
	case phase == PhaseConnect:
		return ReasonDial
	case phase == PhaseUpgrade:
		return ReasonUpgrade
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return ReasonClosed
	}
	// gorilla reports protocol violations by the peer (bad opcodes, RSV bits)
	// as plain errors once connected.
	return ReasonBadFrame
}

func classifyRPC(phase Phase, e *RPCError) Reason {
	switch {
	case e.Code == "UNAVAILABLE" && phase == PhaseHello:
		return ReasonStarting
	case e.Code == "NOT_PAIRED", strings.HasPrefix(e.Details.Code, "AUTH_"), e.Details.Code == "DEVICE_IDENTITY_REQUIRED",
		strings.Contains(strings.ToLower(e.Message), "unauthorized"):
		return ReasonAuth
	case strings.Contains(strings.ToLower(e.Message), "protocol mismatch"):
		return ReasonProtocol
	}
	return ReasonRPC
}

func redactErr(err error, t gateway.Target) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if clean := secret.Redact(msg, t.Token, t.Password); clean != msg {
		return errors.New(clean)
	}
	return err
}

// Readiness is the answer of openclaw's /readyz.
type Readiness struct {
	// Ready is true for 200 with ready:true.
	Ready bool
	// Answered is false when the request failed (timeout, refused) although
	// the endpoint may exist.
	Answered bool
	Failing  []string
	Err      error
}

func (p *Prober) readiness(ctx context.Context, url string, token secret.Secret, tlsCfg *tls.Config) *Readiness {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return &Readiness{Err: err}
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token.Reveal())
	}
	client := &http.Client{
		Transport: &http.Transport{DisableKeepAlives: true, TLSClientConfig: tlsCfg, Proxy: nil, DialContext: dialFor(ctx)},
		// A redirect is not a readiness answer.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Do(req)
	if err != nil {
		return &Readiness{Err: err}
	}
	defer resp.Body.Close()
	var body struct {
		Ready   *bool    `json:"ready"`
		Failing []string `json:"failing"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&body); err != nil || body.Ready == nil {
		// clawdbot's catch-all HTML page: there is no readiness endpoint.
		return nil
	}
	return &Readiness{
		Answered: true,
		Ready:    resp.StatusCode == http.StatusOK && *body.Ready,
		Failing:  body.Failing,
	}
}
