package gateway

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/clawdbot-exporter/clawdbot_exporter/internal/fileio"
)

func mapEnv(m map[string]string) Env { return func(k string) string { return m[k] } }

// home builds a fake home directory holding the given config files
// (relative path -> testdata file).
func home(t *testing.T, files map[string]string) string {
	t.Helper()
	h := t.TempDir()
	for rel, src := range files {
		b, err := os.ReadFile(filepath.Join("testdata", "config", src))
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(h, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestResolve(t *testing.T) {
	tokenFile := writeFile(t, "tok-from-file\n")
	pwFile := writeFile(t, "pw-from-file")
	tests := []struct {
		name          string
		settings      Settings
		env           map[string]string
		files         map[string]string
		useEnv        bool
		wantURL       string
		wantToken     string
		wantPW        string
		wantErr       string
		wantConfigErr string
	}{
		{name: "nothing configured", useEnv: true,
			wantURL: DefaultURL},
		{name: "clawdbot config JSON5", useEnv: true,
			files:   map[string]string{".clawdbot/clawdbot.json": "clawdbot-json5.json"},
			wantURL: "ws://127.0.0.1:19001", wantToken: "tok-from-config"},
		{name: "openclaw dir wins over clawdbot dir", useEnv: true,
			files: map[string]string{
				".openclaw/openclaw.json": "password.json",
				".clawdbot/clawdbot.json": "clawdbot-json5.json",
			},
			wantURL: "ws://127.0.0.1:19002", wantPW: "pw-from-config"},
		{name: "env token beats config, config port kept", useEnv: true,
			env:     map[string]string{"CLAWDBOT_GATEWAY_TOKEN": "tok-env"},
			files:   map[string]string{".clawdbot/clawdbot.json": "clawdbot-json5.json"},
			wantURL: "ws://127.0.0.1:19001", wantToken: "tok-env"},
		{name: "env port beats config port", useEnv: true,
			env:     map[string]string{"CLAWDBOT_GATEWAY_PORT": "19999"},
			files:   map[string]string{".clawdbot/clawdbot.json": "clawdbot-json5.json"},
			wantURL: "ws://127.0.0.1:19999", wantToken: "tok-from-config"},
		{name: "token file beats env", useEnv: true,
			settings: Settings{TokenFile: tokenFile},
			env:      map[string]string{"CLAWDBOT_GATEWAY_TOKEN": "tok-env"},
			wantURL:  DefaultURL, wantToken: "tok-from-file"},
		{name: "token and password files", useEnv: true,
			settings: Settings{TokenFile: tokenFile, PasswordFile: pwFile},
			wantURL:  DefaultURL, wantToken: "tok-from-file", wantPW: "pw-from-file"},
		{name: "state dir variable", useEnv: true,
			env:     map[string]string{"CLAWDBOT_STATE_DIR": "STATE"},
			files:   map[string]string{"STATE/clawdbot.json": "password.json"},
			wantURL: "ws://127.0.0.1:19002", wantPW: "pw-from-config"},
		{name: "profile directory", useEnv: true,
			settings: Settings{Profile: "work"},
			files: map[string]string{
				".clawdbot-work/clawdbot.json": "password.json",
				".clawdbot/clawdbot.json":      "clawdbot-json5.json",
			},
			wantURL: "ws://127.0.0.1:19002", wantPW: "pw-from-config"},
		{name: "explicit URL", useEnv: true,
			settings: Settings{URL: "wss://gw.example:443/ws"},
			wantURL:  "wss://gw.example:443/ws"},
		{name: "openclaw's migrated legacy home", useEnv: true,
			files:   map[string]string{".openclaw/clawdbot.json": "password.json"},
			wantURL: "ws://127.0.0.1:19002", wantPW: "pw-from-config"},
		{name: "openclaw state dir with legacy name", useEnv: true,
			env:     map[string]string{"OPENCLAW_STATE_DIR": "STATE"},
			files:   map[string]string{"STATE/clawdbot.json": "clawdbot-json5.json"},
			wantURL: "ws://127.0.0.1:19001", wantToken: "tok-from-config"},
		{name: "profile variable alone does not move the state dir", useEnv: true,
			env: map[string]string{"CLAWDBOT_PROFILE": "work"},
			files: map[string]string{
				".clawdbot-work/clawdbot.json": "password.json",
				".clawdbot/clawdbot.json":      "clawdbot-json5.json",
			},
			wantURL: "ws://127.0.0.1:19001", wantToken: "tok-from-config"},
		{name: "config-file entries ignore the exporter's environment", useEnv: false,
			env:     map[string]string{"CLAWDBOT_GATEWAY_TOKEN": "tok-env", "CLAWDBOT_GATEWAY_PORT": "19999"},
			wantURL: DefaultURL},
		{name: "no auth in gateway config", useEnv: true,
			files:   map[string]string{".clawdbot/clawdbot.json": "noauth.json"},
			wantURL: DefaultURL},
		{name: "missing token file", useEnv: true,
			settings: Settings{TokenFile: "/nonexistent/token"},
			wantErr:  "token file: open /nonexistent/token: no such file or directory"},
		{name: "empty token file", useEnv: true,
			settings: Settings{TokenFile: writeFile(t, " \n")},
			wantErr:  "empty"},
		// The gateway's own files are reported, never a reason not to start.
		{name: "invalid JSON5 config", useEnv: true,
			files:   map[string]string{".clawdbot/clawdbot.json": "invalid.json"},
			wantURL: DefaultURL, wantConfigErr: "invalid JSON5"},
		{name: "wrong type in config", useEnv: true,
			files:   map[string]string{".clawdbot/clawdbot.json": "wrongtype.json"},
			wantURL: DefaultURL, wantConfigErr: "invalid JSON5"},
		{name: "named config missing", useEnv: true,
			settings: Settings{ConfigPath: "/nonexistent/clawdbot.json"},
			wantURL:  DefaultURL, wantConfigErr: "no such file"},
		{name: "profile without a directory", useEnv: true,
			settings: Settings{Profile: "work"},
			files:    map[string]string{".clawdbot/clawdbot.json": "clawdbot-json5.json"},
			wantURL:  DefaultURL, wantConfigErr: `profile "work": no gateway config`},
		{name: "bad env port", useEnv: true,
			env:     map[string]string{"OPENCLAW_GATEWAY_PORT": "http"},
			wantErr: `OPENCLAW_GATEWAY_PORT="http" is not a port`},
		{name: "bad URL", useEnv: true,
			settings: Settings{URL: "ftp://x"},
			wantErr:  "scheme must be ws or wss"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := home(t, tc.files)
			env := map[string]string{}
			for k, v := range tc.env {
				if strings.HasSuffix(k, "_STATE_DIR") {
					v = filepath.Join(h, v)
				}
				env[k] = v
			}
			got, err := Resolve(tc.settings, mapEnv(env), h, tc.useEnv)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantConfigErr != "" && (got.ConfigErr == nil || !strings.Contains(got.ConfigErr.Error(), tc.wantConfigErr)) ||
				tc.wantConfigErr == "" && got.ConfigErr != nil {
				t.Errorf("config error %v, want %q", got.ConfigErr, tc.wantConfigErr)
			}
			if got.URL != tc.wantURL || got.Token.Reveal() != tc.wantToken || got.Password.Reveal() != tc.wantPW {
				t.Errorf("got url=%s token=%q password=%q, want url=%s token=%q password=%q",
					got.URL, got.Token.Reveal(), got.Password.Reveal(), tc.wantURL, tc.wantToken, tc.wantPW)
			}
			if got.Name != DefaultName {
				t.Errorf("name = %q", got.Name)
			}
		})
	}
}

func TestResolveErrorsNeverShowSecrets(t *testing.T) {
	h := t.TempDir()
	p := filepath.Join(h, ".clawdbot", "clawdbot.json")
	_ = os.MkdirAll(filepath.Dir(p), 0o700)
	// A token followed by a syntax error: the message must not quote it.
	_ = os.WriteFile(p, []byte(`{"gateway":{"auth":{"token":"SUPERSECRET-123"}} oops`), 0o600)
	got, err := Resolve(Settings{}, mapEnv(nil), h, true)
	if err != nil {
		t.Fatal(err)
	}
	err = got.ConfigErr
	if err == nil {
		t.Fatal("want an error")
	}
	if strings.Contains(err.Error(), "SUPERSECRET") {
		t.Fatalf("error leaks the token: %v", err)
	}
}

func TestReadFileBoundedNeverBlocks(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := fileio.ReadFileBounded(fifo, 10); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("fifo: err = %v", err)
	}
	big := filepath.Join(dir, "big")
	_ = os.WriteFile(big, make([]byte, 100), 0o600)
	if _, err := fileio.ReadFileBounded(big, 10); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("big: err = %v", err)
	}
	if _, err := fileio.ReadFileBounded(dir, 10); err == nil {
		t.Fatal("directory: want an error")
	}
	if b, err := fileio.ReadFileBounded(big, 100); err != nil || len(b) != 100 {
		t.Fatalf("exact size: %d, %v", len(b), err)
	}
}

func TestParseURL(t *testing.T) {
	tests := []struct{ in, want, err string }{
		{in: "ws://127.0.0.1:18789", want: "ws://127.0.0.1:18789/"},
		{in: "127.0.0.1:18789", err: "no scheme; use ws://127.0.0.1:18789"},
		{in: "user:pw@gw:1", err: "no scheme"},
		{in: "http://gw:1/x", err: "not http:// (try ws://gw:1/x)"},
		{in: "https://gw", err: "is wss://, not https://"},
		{in: "https://user:pw@gw", err: "not https://"},
		{in: "", err: "empty"},
		{in: "ws://", err: "no host"},
		{in: "ws://user:pw@gw", err: "credentials belong"},
		{in: "gopher://gw", err: "scheme"},
		{in: "ws://gw:99999999999", err: "out of range"},
	}
	for _, tc := range tests {
		u, err := ParseURL(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: err = %v, want %q", tc.in, err, tc.err)
			}
			if err != nil && strings.Contains(err.Error(), "pw@") {
				t.Errorf("%q: error shows the password: %v", tc.in, err)
			}
			continue
		}
		if err != nil || u.String() != tc.want {
			t.Errorf("%q: got %v, %v; want %s", tc.in, u, err, tc.want)
		}
	}
	// A person typing a target may leave the scheme out.
	if u, err := ParseURLWith("127.0.0.1:18789", URLOptions{BareHostPort: true}); err != nil || u.String() != "ws://127.0.0.1:18789/" {
		t.Errorf("bare host:port with the option: %v, %v", u, err)
	}
	if _, err := ParseURLWith("http://gw", URLOptions{BareHostPort: true}); err == nil {
		t.Error("http:// accepted with the option")
	}
}
