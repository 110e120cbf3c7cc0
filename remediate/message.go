package remediate

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Message is Alertmanager's webhook payload, version 4. Fields it adds in
// later versions are ignored.
type Message struct {
	Version  string  `json:"version"`
	Status   string  `json:"status"`
	Receiver string  `json:"receiver"`
	GroupKey string  `json:"groupKey"`
	Alerts   []Alert `json:"alerts"`
}

// Alert is one alert of a webhook message. Its status, not the group's,
// decides.
type Alert struct {
	Status      string            `json:"status"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	StartsAt    time.Time         `json:"startsAt"`
	EndsAt      time.Time         `json:"endsAt"`
	Fingerprint string            `json:"fingerprint"`
}

// ErrBadMessage wraps every reason a payload is refused.
var ErrBadMessage = errors.New("bad webhook payload")

// ParseMessage decodes and validates a webhook body.
func ParseMessage(b []byte) (*Message, error) {
	var m Message
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%w: malformed JSON: %w", ErrBadMessage, err)
	}
	if m.Version != "4" {
		return nil, fmt.Errorf("%w: version %q, want \"4\"", ErrBadMessage, m.Version)
	}
	if m.Alerts == nil {
		return nil, fmt.Errorf("%w: no alerts field", ErrBadMessage)
	}
	for i, a := range m.Alerts {
		switch {
		case a.Status != "firing" && a.Status != "resolved":
			return nil, fmt.Errorf("%w: alerts[%d].status %q, want firing or resolved", ErrBadMessage, i, a.Status)
		case len(a.Labels) == 0:
			return nil, fmt.Errorf("%w: alerts[%d] has no labels", ErrBadMessage, i)
		case a.Fingerprint == "":
			return nil, fmt.Errorf("%w: alerts[%d] has no fingerprint", ErrBadMessage, i)
		case a.StartsAt.IsZero():
			return nil, fmt.Errorf("%w: alerts[%d] has no startsAt", ErrBadMessage, i)
		}
	}
	return &m, nil
}
