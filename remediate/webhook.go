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
)

// maxBody bounds a webhook request; Alertmanager's are a few KiB.
const maxBody = 1 << 20

// Handler serves Alertmanager's webhook: it authenticates, validates,
// decides and answers at once; actions run in the background, so a slow
// restart never makes Alertmanager retry.
type Handler struct {
	Engine  func() *Engine // the current engine (reloads replace it)
	Token   []byte         // bearer token; empty means none is required
	Metrics *Metrics
	Logger  *slog.Logger
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	code, msg, body := h.serve(r)
	h.Metrics.requests.WithLabelValues(strconv.Itoa(code)).Inc()
	if code != http.StatusOK {
		h.Logger.Warn("remediation webhook refused", "code", code, "reason", msg, "remote", r.RemoteAddr)
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
	if r.Method != http.MethodPost {
		return http.StatusMethodNotAllowed, "POST only", nil
	}
	if !h.authorized(r) {
		return http.StatusUnauthorized, "missing or wrong bearer token", nil
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
	n := h.Engine().Handle(m)
	return http.StatusOK, "", &answer{Status: "accepted", Alerts: len(m.Alerts), Actions: n}
}

// authorized compares the bearer token in constant time (hashes of equal
// length, so not even the length leaks).
func (h *Handler) authorized(r *http.Request) bool {
	if len(h.Token) == 0 {
		return true
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return false
	}
	a, b := sha256.Sum256([]byte(strings.TrimSpace(got))), sha256.Sum256(h.Token)
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}
