package gateway

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A gateway whose own config enables gateway.tls is probed over wss://
// with its own certificate pinned: zero flags.
func TestResolveTLS(t *testing.T) {
	write := func(t *testing.T, h, json5 string) {
		t.Helper()
		p := filepath.Join(h, ".openclaw", "openclaw.json")
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(json5), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	fp := strings.Repeat("ab", 32)
	tests := []struct {
		name     string
		config   string
		settings Settings
		wantURL  string
		wantCert string // relative to home; "" none
		wantErr  string
	}{
		{name: "autoGenerate", config: `{gateway: {port: 28001, tls: {enabled: true, autoGenerate: true}, auth: {token: "t"}}}`,
			wantURL: "wss://127.0.0.1:28001", wantCert: ".openclaw/gateway/tls/gateway-cert.pem"},
		{name: "own certPath", config: `{gateway: {port: 28001, tls: {enabled: true, certPath: "~/certs/gw.pem"}}}`,
			wantURL: "wss://127.0.0.1:28001", wantCert: "certs/gw.pem"},
		{name: "TLS off", config: `{gateway: {port: 28001, tls: {enabled: false, autoGenerate: true}}}`,
			wantURL: "ws://127.0.0.1:28001"},
		{name: "no port", config: `{gateway: {tls: {enabled: true}}}`,
			wantURL: "wss://127.0.0.1:18789", wantCert: ".openclaw/gateway/tls/gateway-cert.pem"},
		{name: "a tls block of the wrong shape is TLS off, not a broken config", config: `{gateway: {port: 28001, tls: "yes"}}`,
			wantURL: "ws://127.0.0.1:28001"},
		{name: "an explicit URL wins", config: `{gateway: {port: 28001, tls: {enabled: true}}}`,
			settings: Settings{URL: "ws://10.0.0.1:1"}, wantURL: "ws://10.0.0.1:1", wantCert: ".openclaw/gateway/tls/gateway-cert.pem"},
		{name: "fingerprint with colons", config: `{gateway: {port: 28001}}`,
			settings: Settings{TLSFingerprint: strings.ToUpper(strings.Repeat("ab:", 31) + "ab")}, wantURL: "ws://127.0.0.1:28001"},
		{name: "bad fingerprint", config: `{gateway: {port: 28001}}`,
			settings: Settings{TLSFingerprint: fp[:60]}, wantErr: "64 hex digits"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := t.TempDir()
			write(t, h, tc.config)
			got, err := Resolve(tc.settings, mapEnv(nil), h, true)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.URL != tc.wantURL {
				t.Errorf("URL %q, want %q", got.URL, tc.wantURL)
			}
			want := ""
			if tc.wantCert != "" {
				want = filepath.Join(h, tc.wantCert)
			}
			if got.TLSCertFile != want {
				t.Errorf("cert file %q, want %q", got.TLSCertFile, want)
			}
			if got.ConfigErr != nil {
				t.Errorf("config error %v", got.ConfigErr)
			}
		})
	}
}
