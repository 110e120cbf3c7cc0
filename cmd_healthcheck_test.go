package main

import (
	"bytes"
	"crypto/tls"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	gt "github.com/clawdbot-exporter/clawdbot_exporter/gateway/gatewaytest"
	"github.com/clawdbot-exporter/clawdbot_exporter/internal/testutil"
)

func TestHealthcheckParseArgs(t *testing.T) {
	tests := []struct {
		name    string
		cmdline string // as in /proc/<pid>/cmdline
		want    exporterArgs
	}{
		{"image default", "/bin/clawdbot_exporter\x00", exporterArgs{Command: "serve"}},
		{"flag=value", "/bin/clawdbot_exporter\x00--web.listen-address=127.0.0.1:33479\x00",
			exporterArgs{Command: "serve", ListenAddresses: []string{"127.0.0.1:33479"}}},
		{"flag value", "clawdbot_exporter\x00--web.listen-address\x00[::1]:9100\x00--log.level\x00debug\x00",
			exporterArgs{Command: "serve", ListenAddresses: []string{"[::1]:9100"}}},
		{"repeated, mixed forms", "/bin/clawdbot_exporter\x00--web.listen-address=:1\x00--config.file\x00/etc/c.yml\x00--web.listen-address\x00:2\x00",
			exporterArgs{Command: "serve", ListenAddresses: []string{":1", ":2"}}},
		{"no trailing NUL", "/bin/clawdbot_exporter\x00--web.listen-address=:3",
			exporterArgs{Command: "serve", ListenAddresses: []string{":3"}}},
		{"explicit serve after flags", "/bin/clawdbot_exporter\x00--web.listen-address=:4\x00serve\x00",
			exporterArgs{Command: "serve", ListenAddresses: []string{":4"}}},
		{"compose pidns holder", "/bin/clawdbot_exporter\x00pause\x00", exporterArgs{Command: "pause"}},
		{"gateway's probe", "/usr/local/bin/clawdbot_exporter\x00probe\x00--probe.timeout=5s\x00", exporterArgs{Command: "probe"}},
		{"a health check", "/bin/clawdbot_exporter\x00healthcheck\x00--web.listen-address=:5\x00",
			exporterArgs{Command: "healthcheck", ListenAddresses: []string{":5"}}},
		{"value that looks like a command", "/bin/clawdbot_exporter\x00--gateway.name\x00probe\x00",
			exporterArgs{Command: "serve"}},
		{"bool flag before a command", "/bin/clawdbot_exporter\x00--remediation.dry-run\x00probe\x00", exporterArgs{Command: "probe"}},
		{"negated collector flag", "/bin/clawdbot_exporter\x00--no-collector.lock\x00locks\x00", exporterArgs{Command: "locks"}},
		{"collector flag", "/bin/clawdbot_exporter\x00--collector.disable-defaults\x00--web.listen-address=:6\x00",
			exporterArgs{Command: "serve", ListenAddresses: []string{":6"}}},
		{"systemd socket", "/bin/clawdbot_exporter\x00--web.systemd-socket\x00", exporterArgs{Command: "serve", SystemdSocket: true}},
		{"systemd socket off again", "/bin/clawdbot_exporter\x00--web.systemd-socket\x00--no-web.systemd-socket\x00", exporterArgs{Command: "serve"}},
		{"web config file", "/bin/clawdbot_exporter\x00--web.config.file\x00/etc/web.yml\x00--web.listen-address=:7\x00",
			exporterArgs{Command: "serve", ListenAddresses: []string{":7"}}},
		{"after --", "/bin/clawdbot_exporter\x00--\x00--web.listen-address=:8\x00", exporterArgs{}},
		{"unknown command", "/bin/clawdbot_exporter\x00frobnicate\x00", exporterArgs{}},
		{"dangling value flag", "/bin/clawdbot_exporter\x00--web.listen-address\x00", exporterArgs{Command: "serve"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			argv := splitCmdline([]byte(tc.cmdline))
			got := parseExporterArgs(argv[1:])
			if got.Command != tc.want.Command || !slices.Equal(got.ListenAddresses, tc.want.ListenAddresses) || got.SystemdSocket != tc.want.SystemdSocket {
				t.Errorf("parseExporterArgs(%q) = %+v, want %+v", argv[1:], got, tc.want)
			}
		})
	}
	if got := splitCmdline(nil); got != nil {
		t.Errorf("empty cmdline (a kernel thread): %q", got)
	}
}

// The parser knows the real command line: its subcommands, and every
// --[no-]flag as one that takes no value (else it would take the next
// argument for the flag's value).
func TestHealthcheckBoolFlags(t *testing.T) {
	helpOf := func(args ...string) string {
		var help bytes.Buffer
		run(args, &help, io.Discard)
		return help.String()
	}
	top := helpOf("--help")
	_, cmds, ok := strings.Cut(top, "\nCommands:\n")
	if !ok {
		t.Fatalf("no commands in the help:\n%s", top)
	}
	var names []string
	for _, m := range regexp.MustCompile(`(?m)^([a-z]+)\*?(?: |$)`).FindAllStringSubmatch(cmds, -1) {
		names = append(names, m[1])
	}
	if !slices.Contains(names, "serve") || !slices.Contains(names, "pause") {
		t.Fatalf("commands %q: the help changed shape", names)
	}
	for _, c := range names {
		if !exporterCommands[c] {
			t.Errorf("command %s: add it to exporterCommands", c)
		}
	}
	for _, c := range names {
		help := helpOf("help", c)
		bools := regexp.MustCompile(`--\[no-\]([a-z0-9.-]+)`).FindAllStringSubmatch(help, -1)
		if len(bools) == 0 {
			t.Fatalf("help %s: no --[no-] flags:\n%s", c, help)
		}
		for _, m := range bools {
			if !isBoolFlag(m[1]) {
				t.Errorf("--%s takes no value: add it to boolFlags", m[1])
			}
		}
		for _, m := range regexp.MustCompile(`(?m)^\s+(?:-\w, )?--([a-z0-9.-]+)=`).FindAllStringSubmatch(help, -1) {
			if isBoolFlag(m[1]) {
				t.Errorf("--%s takes a value but isBoolFlag says not", m[1])
			}
		}
	}
}

// fakeProc is a /proc with the processes a test sets up. Its "self" is
// pid 99, in mount namespace 1.
type fakeProc struct {
	t    *testing.T
	root string
}

const fakeSelf = 99

func newFakeProc(t *testing.T) *fakeProc {
	p := &fakeProc{t, t.TempDir()}
	p.add(fakeSelf, 1, "/bin/clawdbot_exporter", "healthcheck")
	return p
}

func (p *fakeProc) add(pid, mntNS int, argv ...string) {
	dir := filepath.Join(p.root, strconv.Itoa(pid))
	if err := os.MkdirAll(filepath.Join(dir, "ns"), 0o755); err != nil {
		p.t.Fatal(err)
	}
	if err := os.Symlink("mnt:["+strconv.Itoa(4026531000+mntNS)+"]", filepath.Join(dir, "ns", "mnt")); err != nil {
		p.t.Fatal(err)
	}
	cmdline := strings.Join(argv, "\x00") + "\x00"
	if err := os.WriteFile(filepath.Join(dir, "cmdline"), []byte(cmdline), 0o444); err != nil {
		p.t.Fatal(err)
	}
}

func (p *fakeProc) exe(pid int, target string) {
	if err := os.Symlink(target, filepath.Join(p.root, strconv.Itoa(pid), "exe")); err != nil {
		p.t.Fatal(err)
	}
}

func (p *fakeProc) check(addr string, explicit bool) (int, string) {
	var out bytes.Buffer
	code := healthcheckWith(healthOptions{Addr: addr, Explicit: explicit, Proc: p.root, Self: fakeSelf, Timeout: 10 * time.Second}, &out)
	return code, out.String()
}

func healthyServer(t *testing.T) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/-/healthy" {
			http.NotFound(w, r)
			return
		}
		_, _ = io.WriteString(w, "Healthy\n")
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

func TestHealthcheckFindsTheExporter(t *testing.T) {
	live := healthyServer(t)
	_, livePort, _ := net.SplitHostPort(live)
	closed := freeAddr(t) // where the default points: nothing listens there
	exporter := "/bin/clawdbot_exporter"

	t.Run("PID 1 on a non-default port", func(t *testing.T) {
		p := newFakeProc(t)
		p.add(1, 1, exporter, "--web.listen-address=0.0.0.0:"+livePort, "--config.file=/etc/c.yml")
		code, out := p.check(closed, false)
		if code != 0 || !strings.HasPrefix(out, "healthy: http://127.0.0.1:"+livePort+"/-/healthy") || !strings.Contains(out, "pid 1's --web.listen-address") {
			t.Errorf("exit %d: %s", code, out)
		}
	})
	t.Run("--flag value form, several addresses", func(t *testing.T) {
		p := newFakeProc(t)
		p.add(1, 1, exporter, "--web.listen-address", live, "--web.listen-address", closed)
		if code, out := p.check(closed, false); code != 0 || !strings.Contains(out, live) {
			t.Errorf("exit %d: %s", code, out)
		}
	})
	t.Run("shared PID namespace: PID 1 is the pause holder", func(t *testing.T) {
		p := newFakeProc(t)
		p.add(1, 2, exporter, "pause")                                          // the holder's container
		p.add(7, 3, "/usr/local/bin/clawdbot_exporter", "probe")                // the gateway's health check
		p.add(8, 3, "node", "dist/index.js", "gateway", "--port", "18789")      // the gateway
		p.add(20, 4, exporter, "--web.listen-address="+closed)                  // another container's exporter
		p.add(30, 1, exporter, "--web.listen-address="+live, "--lock.dir=/tmp") // ours
		p.add(31, 1, exporter, "healthcheck")                                   // an overlapping check
		if code, out := p.check(closed, false); code != 0 || !strings.Contains(out, "pid 30's --web.listen-address "+live) {
			t.Errorf("exit %d: %s", code, out)
		}
	})
	t.Run("renamed binary, same executable", func(t *testing.T) {
		p := newFakeProc(t)
		p.exe(fakeSelf, "/opt/exporter")
		p.add(1, 1, "/opt/exporter", "--web.listen-address="+live)
		p.exe(1, "/opt/exporter")
		p.add(2, 1, "/usr/bin/other", "--web.listen-address="+closed)
		p.exe(2, "/usr/bin/other")
		if code, out := p.check(closed, false); code != 0 || !strings.Contains(out, "pid 1's --web.listen-address "+live) {
			t.Errorf("exit %d: %s", code, out)
		}
	})
	t.Run("an explicit address wins", func(t *testing.T) {
		p := newFakeProc(t)
		p.add(1, 1, exporter, "--web.listen-address="+closed)
		if code, out := p.check(live, true); code != 0 || !strings.Contains(out, "(--web.listen-address "+live+")") {
			t.Errorf("exit %d: %s", code, out)
		}
	})
	t.Run("the exporter at its default", func(t *testing.T) {
		p := newFakeProc(t)
		p.add(1, 1, exporter)
		code, out := p.check(live, false)
		// Its default is :9789, not the address handed over.
		if !strings.Contains(out, "pid 1's default :9789") || strings.Contains(out, live) {
			t.Errorf("exit %d: %s", code, out)
		}
	})
	t.Run("no exporter here: the default", func(t *testing.T) {
		p := newFakeProc(t)
		p.add(1, 1, "/sbin/init")
		p.add(5, 2, exporter, "--web.listen-address="+live) // another mount namespace
		code, out := p.check(closed, false)
		if code != 1 || !strings.HasPrefix(out, "unhealthy: ") || !strings.Contains(out, "default "+closed+": no clawdbot_exporter serving in this mount namespace") {
			t.Errorf("exit %d: %s", code, out)
		}
	})
	t.Run("several exporters disagree: the default", func(t *testing.T) {
		p := newFakeProc(t)
		p.add(1, 1, "/sbin/init")
		p.add(5, 1, exporter, "--web.listen-address="+live)
		p.add(6, 1, exporter, "--web.listen-address="+closed)
		if code, out := p.check(closed, false); code != 1 || !strings.Contains(out, "pids 5 and 6") {
			t.Errorf("exit %d: %s", code, out)
		}
	})
	t.Run("the exporter is down", func(t *testing.T) {
		p := newFakeProc(t)
		p.add(1, 1, exporter, "--web.listen-address="+closed)
		if code, out := p.check(live, false); code != 1 || !strings.HasPrefix(out, "unhealthy: ") || !strings.Contains(out, closed) {
			t.Errorf("exit %d: %s", code, out)
		}
	})
	t.Run("systemd socket activation cannot be checked", func(t *testing.T) {
		p := newFakeProc(t)
		p.add(1, 1, exporter, "--web.systemd-socket")
		if code, out := p.check(live, false); code != 1 || !strings.Contains(out, "--web.systemd-socket") || !strings.Contains(out, "give healthcheck --web.listen-address") {
			t.Errorf("exit %d: %s", code, out)
		}
	})
	t.Run("vsock only cannot be checked", func(t *testing.T) {
		p := newFakeProc(t)
		p.add(1, 1, exporter, "--web.listen-address=vsock://:9100")
		if code, out := p.check(live, false); code != 1 || !strings.Contains(out, "vsock only") {
			t.Errorf("exit %d: %s", code, out)
		}
	})
	t.Run("vsock first, TCP next", func(t *testing.T) {
		p := newFakeProc(t)
		p.add(1, 1, exporter, "--web.listen-address=vsock://:9100", "--web.listen-address="+live)
		if code, out := p.check(closed, false); code != 0 || !strings.Contains(out, live) {
			t.Errorf("exit %d: %s", code, out)
		}
	})
	t.Run("no /proc", func(t *testing.T) {
		var out bytes.Buffer
		code := healthcheckWith(healthOptions{Addr: live, Proc: filepath.Join(t.TempDir(), "none"), Self: fakeSelf}, &out)
		if code != 0 || !strings.Contains(out.String(), "default "+live+": cannot read this process's mount namespace") {
			t.Errorf("exit %d: %s", code, out.String())
		}
	})
}

// The real /proc: this test binary is no clawdbot_exporter, so unless one
// serves on this machine the check falls back to the address handed over.
func TestHealthcheckRealProc(t *testing.T) {
	if _, err := os.Stat("/proc/self/ns/mnt"); err != nil {
		missingProcfs(t, err)
	}
	pid, args, note := findServingExporter("/proc", os.Getpid())
	if strings.HasPrefix(note, "cannot read") {
		t.Fatalf("own mount namespace: %s", note)
	}
	if pid != 0 {
		t.Skipf("a clawdbot_exporter serves on this machine (pid %d, %+v): the fallback is not testable here", pid, args)
	}
	live := healthyServer(t)
	var out bytes.Buffer
	if code := healthcheckWith(healthOptions{Addr: live}, &out); code != 0 || !strings.Contains(out.String(), "default "+live+": no clawdbot_exporter serving") {
		t.Errorf("exit %d: %s", code, out.String())
	}
}

func missingProcfs(t *testing.T, err error) {
	t.Helper()
	testutil.Missing(t, "procfs: %v", err)
}

func TestHealthcheckHTTP(t *testing.T) {
	handler := func(code int, hdr ...string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			for i := 0; i+1 < len(hdr); i += 2 {
				w.Header().Set(hdr[i], hdr[i+1])
			}
			w.WriteHeader(code)
			_, _ = io.WriteString(w, http.StatusText(code)+"\n")
		})
	}
	quiet := log.New(io.Discard, "", 0) // the TLS servers' handshake errors are expected
	tlsServer := func(h http.Handler, auth tls.ClientAuthType) string {
		srv := httptest.NewUnstartedServer(h)
		srv.TLS = &tls.Config{ClientAuth: auth}
		srv.Config.ErrorLog = quiet
		srv.StartTLS()
		t.Cleanup(srv.Close)
		return srv.Listener.Addr().String()
	}
	plain := func(h http.Handler) string {
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		return srv.Listener.Addr().String()
	}
	tests := []struct {
		name string
		addr string
		code int
		want string
	}{
		{"200", plain(handler(200)), 0, "healthy: http://"},
		{"TLS (--web.config.file)", tlsServer(handler(200), tls.NoClientCert), 0, "healthy: https://"},
		{"basic auth", plain(handler(401, "WWW-Authenticate", "Basic")), 0, "HTTP 401, its --web.config.file requires authentication"},
		{"TLS client certificates", tlsServer(handler(200), tls.RequireAndVerifyClientCert), 0, "requires a client certificate"},
		{"500", plain(handler(500)), 1, "HTTP 500 Internal Server Error"},
		{"404", plain(handler(404)), 1, "HTTP 404"},
		{"401 without a challenge", plain(handler(401)), 1, "HTTP 401"},
		{"not host:port", "9789", 1, `listen address "9789"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			code := healthcheckWith(healthOptions{Addr: tc.addr, Explicit: true, Timeout: 10 * time.Second}, &out)
			if code != tc.code || !strings.Contains(out.String(), tc.want) {
				t.Errorf("exit %d, want %d with %q: %s", code, tc.code, tc.want, out.String())
			}
		})
	}

	// A server that accepts and never answers: the check gives up.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	var out bytes.Buffer
	if code := healthcheckWith(healthOptions{Addr: l.Addr().String(), Explicit: true, Timeout: 200 * time.Millisecond}, &out); code != 1 || !strings.Contains(out.String(), "unhealthy") {
		t.Errorf("hanging server: exit %d %s", code, out.String())
	}
}

// The real exporter behind --web.config.file: TLS with basic auth, and TLS
// with client certificates. The check reaches both, without credentials.
func TestHealthcheckWebConfig(t *testing.T) {
	isolate(t)
	gw := gt.New(gt.Options{})
	defer gw.Close()
	dir := t.TempDir()
	key, cert := testutil.Cert(t, nil, nil, "127.0.0.1", false)
	crt, kf := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	testutil.WriteCert(t, crt, kf, cert, key)
	tlsConfig := "tls_server_config:\n  cert_file: " + crt + "\n  key_file: " + kf + "\n"
	for _, tc := range []struct{ name, config, want string }{
		{"TLS and basic auth", tlsConfig + "basic_auth_users:\n  alice: $2y$12$1DpfPeqF9HzHJt.EWswy1exHluGfbhnn3yXhR7Xes6m3WJqFg0Wby\n", "requires authentication"},
		{"client certificates", tlsConfig + "  client_auth_type: RequireAnyClientCert\n", "requires a client certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			webConfig := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".yml")
			if err := os.WriteFile(webConfig, []byte(tc.config), 0o600); err != nil {
				t.Fatal(err)
			}
			addr := freeAddr(t)
			go runCLI("--web.listen-address", addr, "--web.config.file", webConfig, "--gateway.url", gw.URL())
			for end := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				code, out, _ := runCLI("healthcheck", "--web.listen-address", addr)
				if code == 0 {
					if !strings.HasPrefix(out, "healthy: https://"+addr+"/-/healthy") || !strings.Contains(out, tc.want) {
						t.Errorf("%s", out)
					}
					return
				}
				if time.Now().After(end) {
					t.Fatalf("exit %d %s", code, out)
				}
			}
		})
	}
}
