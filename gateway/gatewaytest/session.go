package gatewaytest

import (
	"encoding/json"
	"errors"
	"io"
	"strings"
	"time"

	"github.com/gorilla/websocket"
)

// ErrorShape is the error object of an ok:false response.
type ErrorShape struct {
	Code         string `json:"code"`
	Message      string `json:"message"`
	Retryable    *bool  `json:"retryable,omitempty"`
	RetryAfterMs *int   `json:"retryAfterMs,omitempty"`
}

type resFrame struct {
	Type    string      `json:"type"`
	ID      string      `json:"id"`
	OK      bool        `json:"ok"`
	Payload any         `json:"payload,omitempty"`
	Error   *ErrorShape `json:"error,omitempty"`
}

type eventFrame struct {
	Type    string `json:"type"`
	Event   string `json:"event"`
	Payload any    `json:"payload"`
	Seq     *int64 `json:"seq,omitempty"`
}

type message struct {
	typ  int
	data []byte
}

type session struct {
	s        *Server
	ws       *websocket.Conn
	opts     Options
	connID   string
	msgs     chan message
	readDone chan struct{} // closed when the reader goroutine ends (client gone)
	done     chan struct{} // closed when the handler ends
	seq      int64
}

func (s *Server) runSession(ws *websocket.Conn, opts Options) {
	ss := &session{
		s:        s,
		ws:       ws,
		opts:     opts,
		connID:   newUUID(),
		msgs:     make(chan message, 16),
		readDone: make(chan struct{}),
		done:     make(chan struct{}),
	}
	if opts.Protocol >= 4 {
		ws.SetReadLimit(readLimitP4)
	} else {
		ws.SetReadLimit(readLimitP3)
	}
	ws.SetCloseHandler(func(code int, _ string) error {
		// The client sent a close frame: count it, then echo it like
		// gorilla's default handler (and the Node ws library) do.
		s.cleanCloses.Add(1)
		_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, ""), time.Now().Add(controlDeadline))
		return nil
	})
	if opts.Delay > 0 {
		// A slow gateway is slow to answer pings too: its event loop
		// answers them.
		ws.SetPingHandler(func(data string) error {
			if !ss.sleep(opts.Delay) {
				return nil
			}
			_ = ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(controlDeadline))
			return nil
		})
	}
	// The handler holds a count on s.handlers, so this Add cannot race Wait.
	s.handlers.Add(1)
	if opts.Fault == FaultFreezeAfterChallenge {
		go ss.frozenReadLoop()
	} else {
		go ss.readLoop()
	}
	defer func() {
		close(ss.done)
		_ = ws.Close() // closes the TCP connection without a close frame
		<-ss.readDone
	}()
	ss.run()
}

// readLoop reads every frame so that a client close is always noticed, even
// while the handler stalls. When it ends the TCP connection is closed, which
// also unblocks a handler stuck writing to a client that went away.
func (ss *session) readLoop() {
	defer ss.s.handlers.Done()
	defer close(ss.readDone)
	defer ss.ws.Close()
	for {
		mt, data, err := ss.ws.ReadMessage()
		if err != nil {
			return
		}
		if mt == websocket.TextMessage {
			ss.s.record(data)
		}
		select {
		case ss.msgs <- message{typ: mt, data: data}:
		case <-ss.done:
			return
		case <-ss.s.quit:
			return
		}
	}
}

// frozenReadLoop reads nothing at the WebSocket level (no pong, no close
// echo), only drains the TCP stream to notice when the client goes away.
func (ss *session) frozenReadLoop() {
	defer ss.s.handlers.Done()
	defer close(ss.readDone)
	defer ss.ws.Close()
	_, _ = io.Copy(io.Discard, ss.ws.NetConn())
}

// next returns the next client frame; false when the client went away or
// the server is closing.
func (ss *session) next() (message, bool) {
	select {
	case m := <-ss.msgs:
		return m, true
	case <-ss.readDone:
		return message{}, false
	case <-ss.s.quit:
		return message{}, false
	}
}

// discard reads and ignores frames until the client goes away or the
// server closes.
func (ss *session) discard() {
	for {
		if _, ok := ss.next(); !ok {
			return
		}
	}
}

// wait sleeps Options.Delay; false when interrupted.
func (ss *session) wait() bool { return ss.sleep(ss.opts.Delay) }

// sleep waits d; false when the client went away or the server closes.
func (ss *session) sleep(d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ss.readDone:
		return false
	case <-ss.s.quit:
		return false
	}
}

func (ss *session) writeFrame(mt int, b []byte) bool {
	if !ss.wait() {
		return false
	}
	return ss.ws.WriteMessage(mt, b) == nil
}

func (ss *session) writeJSON(v any) bool {
	b, err := json.Marshal(v)
	if err != nil {
		return false
	}
	return ss.writeFrame(websocket.TextMessage, b)
}

func (ss *session) event(name string, payload any, withSeq bool) bool {
	ev := eventFrame{Type: "event", Event: name, Payload: payload}
	if withSeq {
		ss.seq++
		seq := ss.seq
		ev.Seq = &seq
	}
	return ss.writeJSON(ev)
}

func (ss *session) tickBeforeResponse(connected bool) bool {
	if !ss.opts.InterleaveEvents || !connected {
		return true
	}
	return ss.event("tick", map[string]any{"ts": time.Now().UnixMilli()}, true)
}

func (ss *session) resOK(id string, payload any, connected bool) bool {
	if !ss.tickBeforeResponse(connected) {
		return false
	}
	if payload == nil {
		payload = map[string]any{}
	}
	return ss.writeJSON(resFrame{Type: "res", ID: id, OK: true, Payload: payload})
}

func (ss *session) resErr(id string, e ErrorShape, connected bool) bool {
	if !ss.tickBeforeResponse(connected) {
		return false
	}
	return ss.writeJSON(resFrame{Type: "res", ID: id, OK: false, Error: &e})
}

// closeWith sends a close frame, waits (bounded) for the client's echo, and
// returns; the caller then closes the TCP connection.
func (ss *session) closeWith(code int, reason string) {
	if !ss.wait() {
		return
	}
	if err := ss.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(controlDeadline)); err != nil {
		return
	}
	t := time.NewTimer(closeWait)
	defer t.Stop()
	for {
		select {
		case <-ss.msgs: // frames sent before the client saw our close
		case <-ss.readDone:
			return
		case <-ss.s.quit:
			return
		case <-t.C:
			return
		}
	}
}

func (ss *session) sendChallenge() bool {
	payload := map[string]any{"nonce": newUUID(), "ts": time.Now().UnixMilli()}
	if ss.opts.Protocol >= 4 {
		payload["capabilities"] = []string{"connect.challenge", "hello.features", "health.eventLoop"}
	}
	return ss.event("connect.challenge", payload, false)
}

func (ss *session) sendOversized() bool {
	if !ss.wait() {
		return false
	}
	w, err := ss.ws.NextWriter(websocket.TextMessage)
	if err != nil {
		return false
	}
	prefix := `{"type":"event","event":"connect.challenge","payload":{"nonce":"`
	if _, err := w.Write([]byte(prefix)); err != nil {
		return false
	}
	chunk := []byte(strings.Repeat("a", 32<<10))
	for n := 0; n < OversizedBytes; n += len(chunk) {
		select {
		case <-ss.readDone:
			return false
		case <-ss.s.quit:
			return false
		default:
		}
		if _, err := w.Write(chunk); err != nil {
			return false
		}
	}
	suffix := `","ts":` + itoa(time.Now().UnixMilli()) + `}}`
	if _, err := w.Write([]byte(suffix)); err != nil {
		return false
	}
	return w.Close() == nil
}

type reqFrame struct {
	Type   string          `json:"type"`
	ID     string          `json:"id"`
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
}

// parseReq decodes a request frame; ok is false for anything that is not a
// well-formed request. id is returned whenever it could be read.
func parseReq(m message) (f reqFrame, ok bool) {
	if m.typ != websocket.TextMessage {
		return f, false
	}
	var raw map[string]json.RawMessage
	if json.Unmarshal(m.data, &raw) != nil {
		return f, false
	}
	_ = json.Unmarshal(raw["id"], &f.ID)
	if json.Unmarshal(raw["type"], &f.Type) != nil || f.Type != "req" {
		return f, false
	}
	if json.Unmarshal(raw["method"], &f.Method) != nil || f.Method == "" || f.ID == "" {
		return f, false
	}
	f.Params = raw["params"]
	return f, true
}

func (ss *session) run() {
	o := ss.opts
	if o.Fault == FaultNoChallenge {
		ss.discard()
		return
	}

	var ok bool
	switch o.Fault {
	case FaultGarbage:
		ok = ss.writeFrame(websocket.TextMessage, []byte("\x00garbage{"))
	case FaultBinaryFrame:
		ok = ss.writeFrame(websocket.BinaryMessage, []byte{0x00, 0xff, 0xfe, 0x7b, 0x01})
	case FaultOversized:
		ok = ss.sendOversized()
	default:
		ok = ss.sendChallenge()
	}
	if !ok {
		return
	}

	switch o.Fault {
	case FaultStallAfterChallenge, FaultFreezeAfterChallenge:
		ss.discard()
		return
	case FaultDropTCP:
		if _, ok := ss.next(); ok {
			_ = ss.ws.NetConn().Close()
		}
		return
	}

	connected := false
	for {
		m, ok := ss.next()
		if !ok {
			return
		}
		req, valid := parseReq(m)
		if !connected {
			if !valid || req.Method != "connect" {
				if req.ID != "" {
					ss.resErr(req.ID, ErrorShape{Code: "INVALID_REQUEST", Message: "invalid handshake: first request must be connect"}, false)
				}
				ss.closeWith(websocket.ClosePolicyViolation, "invalid handshake")
				return
			}
			done, ok := ss.handleConnect(req)
			if done {
				return
			}
			connected = ok
			continue
		}
		if !valid {
			if req.ID != "" && !ss.resErr(req.ID, ErrorShape{Code: "INVALID_REQUEST", Message: "invalid request frame"}, true) {
				return
			}
			continue
		}
		if !ss.handleRequest(req) {
			return
		}
	}
}

// handleConnect answers a connect request. done means the session is over
// (the connection was closed); connected means hello-ok was sent.
func (ss *session) handleConnect(req reqFrame) (done, connected bool) {
	o := ss.opts
	switch o.Fault {
	case FaultRestart:
		ss.event("shutdown", map[string]any{"reason": "gateway restarting", "restartExpectedMs": 1000}, true)
		ss.closeWith(websocket.CloseServiceRestart, "service restart")
		return true, false
	case FaultStarting:
		retry, after := true, 1000
		if !ss.resErr(req.ID, ErrorShape{Code: "UNAVAILABLE", Message: "gateway starting; retry shortly", Retryable: &retry, RetryAfterMs: &after}, false) {
			return true, false
		}
		return false, false
	}

	cp, msg := validateConnect(req.Params, o.Protocol)
	if msg != "" {
		ss.resErr(req.ID, ErrorShape{Code: "INVALID_REQUEST", Message: msg}, false)
		ss.closeWith(websocket.ClosePolicyViolation, "invalid connect params")
		return true, false
	}
	if !protocolOK(o.Protocol, cp.minProtocol, cp.maxProtocol) {
		ss.resErr(req.ID, ErrorShape{Code: "INVALID_REQUEST", Message: "protocol mismatch"}, false)
		ss.closeWith(websocket.CloseProtocolError, "protocol mismatch")
		return true, false
	}
	if code, msg := checkAuth(o, cp); code != "" {
		if d := ss.s.authPenalty(o); d > 0 && !ss.sleep(d) {
			return true, false
		}
		ss.resErr(req.ID, ErrorShape{Code: code, Message: msg}, false)
		ss.closeWith(websocket.ClosePolicyViolation, msg)
		return true, false
	}
	payload := ss.hello()
	if o.Fault == FaultHelloNotOK {
		payload = map[string]any{"type": "hello-rejected", "protocol": o.Protocol}
	}
	if !ss.resOK(req.ID, payload, false) {
		return true, false
	}
	return false, true
}

// handleRequest answers a request after the handshake; false ends the
// session.
func (ss *session) handleRequest(req reqFrame) bool {
	o := ss.opts
	switch req.Method {
	case "health":
		switch o.Fault {
		case FaultStallHealth:
			return true
		case FaultHealthError:
			return ss.resErr(req.ID, ErrorShape{Code: "UNAVAILABLE", Message: "health unavailable"}, true)
		}
		var payload any
		if len(o.Health) > 0 {
			payload = o.Health
		} else {
			h := healthPayload(o.Protocol, time.Now())
			if o.Fault == FaultHealthNotOK {
				h["ok"] = false
			}
			payload = h
		}
		return ss.resOK(req.ID, payload, true)
	case "status":
		if o.Fault == FaultStallStatus {
			return true
		}
		if len(o.Status) > 0 {
			return ss.resOK(req.ID, o.Status, true)
		}
		return ss.resOK(req.ID, statusPayload(o.Protocol, ss.s.uptimeMs()), true)
	case "config.get":
		return ss.resErr(req.ID, ErrorShape{Code: "INVALID_REQUEST", Message: "gatewaytest: config.get must never be called (its payload holds secrets)"}, true)
	case "config.schema":
		if len(o.ConfigSchema) == 0 {
			break
		}
		ss.s.countSchema()
		return ss.resOK(req.ID, o.ConfigSchema, true)
	case "connect":
		return ss.resErr(req.ID, ErrorShape{Code: "INVALID_REQUEST", Message: "already connected"}, true)
	}
	for _, m := range methods {
		if m == req.Method {
			return ss.resOK(req.ID, nil, true)
		}
	}
	return ss.resErr(req.ID, ErrorShape{Code: "INVALID_REQUEST", Message: "unknown method: " + req.Method}, true)
}

// ---- connect validation ----

type connectParams struct {
	minProtocol, maxProtocol int
	clientID, mode           string
	token, password          string
}

var errBadType = errors.New("bad type")

func protocolOK(server, minP, maxP int) bool {
	return maxP >= server && minP <= server
}

func checkAuth(o Options, cp connectParams) (code, msg string) {
	// openclaw in auth mode none admits only gateway-client/backend (from
	// loopback, which every test connection is), with or without a token;
	// anyone else needs a device identity (seen on openclaw 2026.9.6).
	if o.Protocol >= 4 && o.AuthMode == "none" {
		if cp.clientID == "gateway-client" && cp.mode == "backend" {
			return "", ""
		}
		return "NOT_PAIRED", "device identity required"
	}
	hasToken, hasPassword := cp.token != "", cp.password != ""
	passwordOnly := o.Protocol >= 4 && o.AuthMode == "password" && hasPassword
	if !hasToken && !passwordOnly {
		return "NOT_PAIRED", "device identity required"
	}
	switch o.AuthMode {
	case "token":
		if cp.token != o.Token {
			return "INVALID_REQUEST", "unauthorized: gateway token mismatch"
		}
	case "password":
		if cp.password != o.Password {
			return "INVALID_REQUEST", "unauthorized: gateway password mismatch"
		}
	}
	return "", ""
}

func validClientIDs(protocol int) map[string]bool {
	ids := map[string]bool{"cli": true, "gateway-client": true, "webchat": true, "node-host": true, "test": true}
	if protocol >= 4 {
		ids["openclaw-probe"] = true
	} else {
		ids["clawdbot-probe"] = true
	}
	return ids
}

var validModes = map[string]bool{"webchat": true, "cli": true, "ui": true, "backend": true, "node": true, "probe": true, "test": true}

// validateConnect checks connect params like the real gateway's schema
// (additionalProperties:false everywhere). msg is empty when valid.
func validateConnect(raw json.RawMessage, protocol int) (cp connectParams, msg string) {
	bad := func(format string) (connectParams, string) {
		return connectParams{}, "invalid connect params: " + format
	}
	root, err := object(raw)
	if err != nil {
		return bad("params must be an object")
	}
	if k := unknownKey(root, "minProtocol", "maxProtocol", "client", "role", "scopes", "auth"); k != "" {
		return bad("at root: unexpected property '" + k + "'")
	}
	for _, k := range []string{"minProtocol", "maxProtocol", "client"} {
		if _, ok := root[k]; !ok {
			return bad("at root: must have required property '" + k + "'")
		}
	}
	if cp.minProtocol, err = positiveInt(root["minProtocol"]); err != nil {
		return bad("at /minProtocol: must be integer >= 1")
	}
	if cp.maxProtocol, err = positiveInt(root["maxProtocol"]); err != nil {
		return bad("at /maxProtocol: must be integer >= 1")
	}

	client, err := object(root["client"])
	if err != nil {
		return bad("at /client: must be object")
	}
	if k := unknownKey(client, "id", "version", "platform", "mode"); k != "" {
		return bad("at /client: unexpected property '" + k + "'")
	}
	fields := map[string]string{}
	for _, k := range []string{"id", "version", "platform", "mode"} {
		v, ok := client[k]
		if !ok {
			return bad("at /client: must have required property '" + k + "'")
		}
		var s string
		if json.Unmarshal(v, &s) != nil || s == "" {
			return bad("at /client/" + k + ": must be non-empty string")
		}
		fields[k] = s
	}
	cp.clientID, cp.mode = fields["id"], fields["mode"]
	if !validClientIDs(protocol)[cp.clientID] {
		return bad("at /client/id: must be equal to one of the allowed values")
	}
	if !validModes[cp.mode] {
		return bad("at /client/mode: must be equal to one of the allowed values")
	}

	if v, ok := root["role"]; ok {
		var role string
		if json.Unmarshal(v, &role) != nil || (role != "operator" && role != "node") {
			return bad("at /role: must be \"operator\" or \"node\"")
		}
	}
	if v, ok := root["scopes"]; ok {
		var scopes []string
		if json.Unmarshal(v, &scopes) != nil || scopes == nil {
			return bad("at /scopes: must be array of strings")
		}
	}
	if v, ok := root["auth"]; ok {
		auth, err := object(v)
		if err != nil {
			return bad("at /auth: must be object")
		}
		if k := unknownKey(auth, "token", "password"); k != "" {
			return bad("at /auth: unexpected property '" + k + "'")
		}
		if t, ok := auth["token"]; ok && json.Unmarshal(t, &cp.token) != nil {
			return bad("at /auth/token: must be string")
		}
		if p, ok := auth["password"]; ok && json.Unmarshal(p, &cp.password) != nil {
			return bad("at /auth/password: must be string")
		}
	}
	return cp, ""
}

func object(raw json.RawMessage) (map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	if len(raw) == 0 || json.Unmarshal(raw, &m) != nil || m == nil {
		return nil, errBadType
	}
	return m, nil
}

func unknownKey(m map[string]json.RawMessage, allowed ...string) string {
	for k := range m {
		known := false
		for _, a := range allowed {
			if k == a {
				known = true
				break
			}
		}
		if !known {
			return k
		}
	}
	return ""
}

func positiveInt(raw json.RawMessage) (int, error) {
	var f float64
	if json.Unmarshal(raw, &f) != nil || f < 1 || f != float64(int(f)) {
		return 0, errBadType
	}
	return int(f), nil
}

func itoa(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}
