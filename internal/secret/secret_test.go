package secret

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// holder is a struct with secrets in it, as a gateway target is.
type holder struct {
	Name            string
	Token, Password Secret
}

func TestSecretNeverPrints(t *testing.T) {
	s := Secret("hunter2-token")
	var logs bytes.Buffer
	slog.New(slog.NewTextHandler(&logs, nil)).Info("x", "token", s, "target", holder{Name: "a", Token: s})
	j, _ := json.Marshal(holder{Token: s, Password: s})
	for name, out := range map[string]string{
		"%v":   fmt.Sprintf("%v", s),
		"%s":   fmt.Sprintf("[%s]", s),
		"%#v":  fmt.Sprintf("%#v", holder{Token: s}),
		"%+v":  fmt.Sprintf("%+v", holder{Token: s}),
		"slog": logs.String(),
		"json": string(j),
	} {
		if strings.Contains(out, "hunter2") {
			t.Errorf("%s prints the secret: %s", name, out)
		}
	}
	if s.Reveal() != "hunter2-token" {
		t.Fatal("Reveal lost the secret")
	}
	if got := Redact("token hunter2-token mismatch", s); got != "token <secret> mismatch" {
		t.Errorf("Redact = %q", got)
	}
}
