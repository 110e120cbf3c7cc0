package gateway

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
	"syscall"
	"time"

	"github.com/gorilla/websocket"
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
)

// Reasons lists every reason, so counters can start at zero.
func Reasons() []Reason {
	return []Reason{ReasonDial, ReasonTimeout, ReasonTLS, ReasonUpgrade, ReasonAuth, ReasonProtocol,
		ReasonClosed, ReasonRPC, ReasonBadFrame, ReasonStarting, ReasonUnhealthy}
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
	// endpoint (clawdbot answers every path with its HTML page).
	Ready *Readiness
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
		if len(v) > 64 {
			return v[:64]
		}
		return v
	}
}

const (
	// Protocol versions this client speaks: 3 (clawdbot) and 4 (openclaw).
	minProtocol = 3
	maxProtocol = 4
	// readLimit bounds one incoming frame: far above any health payload,
	// far below what could hurt the exporter.
	readLimit = 4 << 20
	// placeholderToken satisfies the gateway's non-empty-token rule when
	// the gateway has no token (gateway.md §2).
	placeholderToken = "clawdbot_exporter"
	// closeWait bounds the wait for the gateway's answer to our close frame.
	closeWait = 250 * time.Millisecond
)

// Prober probes gateways. The zero value works; ClientVersion is sent to
// the gateway in connect.
type Prober struct {
	ClientVersion string
	TLSConfig     *tls.Config

	mu sync.Mutex
	// backend remembers URLs of gateways that admit only the backend client.
	backend map[string]bool
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
func (p *Prober) Probe(ctx context.Context, t Target) (*Result, error) {
	u, err := ParseURL(t.URL)
	if err != nil {
		return &Result{}, &ProbeError{Phase: PhaseConnect, Reason: ReasonDial, Err: err}
	}
	var (
		wg    sync.WaitGroup
		ready *Readiness
	)
	wg.Go(func() { ready = p.readiness(ctx, httpURL(u, "/readyz"), t.Token) })
	key := u.String()
	p.mu.Lock()
	client := cliClient
	if p.backend[key] {
		client = backendClient
	}
	p.mu.Unlock()
	res, err := p.probeWS(ctx, key, t, client)
	if client == cliClient && t.Token == "" && t.Password == "" && needsIdentity(err) {
		if res, err = p.probeWS(ctx, key, t, backendClient); err == nil {
			p.mu.Lock()
			if p.backend == nil {
				p.backend = map[string]bool{}
			}
			p.backend[key] = true
			p.mu.Unlock()
		}
	}
	wg.Wait()
	res.Ready = ready
	if err != nil {
		var pe *ProbeError
		if errors.As(err, &pe) {
			pe.Err = redactErr(pe.Err, t)
		}
	}
	return res, err
}

// needsIdentity tells a refusal of the cli client by a gateway without auth.
func needsIdentity(err error) bool {
	var rpcErr *RPCError
	return errors.As(err, &rpcErr) && (rpcErr.Details.Code == "DEVICE_IDENTITY_REQUIRED" || rpcErr.Code == "NOT_PAIRED")
}

func (p *Prober) probeWS(ctx context.Context, wsURL string, t Target, client clientInfo) (res *Result, err error) {
	res = &Result{}
	phase, phaseStart := PhaseConnect, time.Now()
	begin := func(p Phase) {
		now := time.Now()
		res.Durations[phase] = now.Sub(phaseStart)
		phase, phaseStart = p, now
	}
	// fail records the time spent in the failing phase too: a timeout shows
	// where the gateway hung.
	fail := func(e error) (*Result, error) {
		res.Durations[phase] = time.Since(phaseStart)
		return res, &ProbeError{Phase: phase, Reason: classify(ctx, phase, e), Err: e}
	}

	dialer := &websocket.Dialer{
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err == nil {
				begin(PhaseUpgrade)
			}
			return c, err
		},
		TLSClientConfig: p.TLSConfig,
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
		return fail(err)
	}
	defer closeGracefully(ctx, conn)

	// Every read and write carries the deadline; a cancelled context (the
	// scrape's client went away) ends a blocked read at once.
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(30 * time.Second)
	}
	conn.SetReadLimit(readLimit)
	_ = conn.SetReadDeadline(deadline)
	_ = conn.SetWriteDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = conn.NetConn().SetDeadline(time.Unix(1, 0)) })
	defer stop()

	begin(PhaseChallenge)
	if _, err := readUntil(conn, func(f *frame) bool { return f.Type == "event" && f.Event == "connect.challenge" }); err != nil {
		return fail(err)
	}

	begin(PhaseHello)
	auth := connectAuth{Token: t.Token.Reveal(), Password: t.Password.Reveal()}
	if auth.Token == "" {
		auth.Token = placeholderToken
	}
	version := p.ClientVersion
	if version == "" {
		version = "0.0.0"
	}
	client.Version, client.Platform = version, runtime.GOOS
	hello, err := call(conn, "c1", "connect", connectParams{
		MinProtocol: minProtocol, MaxProtocol: maxProtocol,
		Client: client,
		Role:   "operator", Scopes: []string{"operator.read"}, Auth: auth,
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

	begin(PhaseHealth)
	payload, err := call(conn, "h1", "health", struct{}{})
	if err != nil {
		return fail(err)
	}
	var health Health
	if err := json.Unmarshal(payload, &health); err != nil {
		return fail(&badFrameError{"health payload: " + err.Error()})
	}
	res.Health = &health
	res.Durations[PhaseHealth] = time.Since(phaseStart)
	if health.OK == nil || !*health.OK {
		return res, &ProbeError{Phase: PhaseHealth, Reason: ReasonUnhealthy, Err: errors.New("health answered ok:false")}
	}
	return res, nil
}

// call sends one request and waits for the response with its id; events and
// other responses in between are skipped.
func call(conn *websocket.Conn, id, method string, params any) (json.RawMessage, error) {
	b, err := json.Marshal(request{Type: "req", ID: id, Method: method, Params: params})
	if err != nil {
		return nil, err
	}
	if err := conn.WriteMessage(websocket.TextMessage, b); err != nil {
		return nil, err
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
func classify(ctx context.Context, phase Phase, err error) Reason {
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
	)
	switch {
	case errors.Is(err, context.DeadlineExceeded) || ctx.Err() == context.DeadlineExceeded:
		return ReasonTimeout
	case errors.As(err, &netErr) && netErr.Timeout():
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
	case errors.As(err, &certErr), errors.As(err, &unknownA), errors.As(err, &hostErr), errors.As(err, &recErr):
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

func redactErr(err error, t Target) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if clean := Redact(msg, t.Token, t.Password); clean != msg {
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

func (p *Prober) readiness(ctx context.Context, url string, token Secret) *Readiness {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return &Readiness{Err: err}
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token.Reveal())
	}
	client := &http.Client{
		Transport: &http.Transport{DisableKeepAlives: true, TLSClientConfig: p.TLSConfig, Proxy: nil},
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
