package remediate

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/clawdbot-exporter/clawdbot_exporter/internal/logrepeat"
)

// maxBody bounds a webhook request; Alertmanager's are a few KiB.
const maxBody = 1 << 20

// Handler serves Alertmanager's webhook: it authenticates, validates,
// decides and answers at once; actions run in the background, so a slow
// restart never makes Alertmanager retry.
type Handler struct {
	Engine *Engine
	// Token is the bearer token as of now (its file is re-read when it
	// changes); nil or empty means none is required.
	Token func() []byte
	// Enabled says whether remediation is configured now; without it the
	// webhook answers 404.
	Enabled func() bool
	Metrics *Metrics
	Logger  *slog.Logger

	once    sync.Once
	refused *logrepeat.Logger
}

// RefusalLogWindow is how long refusals of one kind are counted into one
// log line after the first: anyone who reaches the port can send them.
const RefusalLogWindow = time.Minute

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	code, msg, body := h.serve(r)
	h.Metrics.requests.WithLabelValues(strconv.Itoa(code)).Inc()
	if code != http.StatusOK {
		h.once.Do(func() { h.refused = logrepeat.New(h.Logger, RefusalLogWindow) })
		h.refused.Warn(strconv.Itoa(code), "remediation webhook refused", "code", code, "reason", msg, "remote", r.RemoteAddr)
		if code == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="clawdbot_exporter"`)
		}
		http.Error(w, msg, code)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(body)
}

type answer struct {
	Status  string `json:"status"`
	Alerts  int    `json:"alerts"`
	Actions int    `json:"actions"`
}

func (h *Handler) serve(r *http.Request) (int, string, *answer) {
	if h.Enabled != nil && !h.Enabled() {
		return http.StatusNotFound, "remediation is not configured", nil
	}
	if r.Method != http.MethodPost {
		return http.StatusMethodNotAllowed, "POST only", nil
	}
	// Alertmanager never sends Origin; a browser's cross-site POST always
	// does: no web page may restart a gateway.
	if r.Header.Get("Origin") != "" {
		return http.StatusForbidden, "cross-origin requests are refused", nil
	}
	var token []byte
	if h.Token != nil {
		token = h.Token()
	}
	if !BearerOK(r, token) {
		return http.StatusUnauthorized, "missing or wrong bearer token", nil
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(strings.ToLower(strings.TrimSpace(ct)), "application/json") {
		return http.StatusUnsupportedMediaType, "Content-Type must be application/json", nil
	}
	b, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return http.StatusRequestEntityTooLarge, "body larger than 1 MiB", nil
		}
		return http.StatusBadRequest, "reading body: " + err.Error(), nil
	}
	m, err := ParseMessage(b)
	if err != nil {
		return http.StatusBadRequest, err.Error(), nil
	}
	n := h.Engine.Handle(m)
	return http.StatusOK, "", &answer{Status: "accepted", Alerts: len(m.Alerts), Actions: n}
}

// BearerOK compares the request's bearer token with token in constant time
// (hashes of equal length, so not even the length leaks); an empty token
// requires none. The scheme is case-insensitive (RFC 7235).
func BearerOK(r *http.Request, token []byte) bool {
	if len(token) == 0 {
		return true
	}
	scheme, got, ok := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	a, b := sha256.Sum256([]byte(strings.TrimSpace(got))), sha256.Sum256(token)
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}
