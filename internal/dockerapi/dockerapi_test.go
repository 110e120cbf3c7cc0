package dockerapi

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clawdbot-exporter/clawdbot_exporter/internal/testutil"
)

func clearEnv(t *testing.T) {
	for _, k := range []string{"DOCKER_HOST", "DOCKER_API_VERSION", "DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY"} {
		t.Setenv(k, "")
	}
}

func TestParseVersion(t *testing.T) {
	for _, c := range []struct {
		in   string
		want string
		ok   bool
	}{
		{"1.41", "1.41", true}, {" 1.24 ", "1.24", true}, {"1.041", "1.41", true}, {"2.0", "2.0", true},
		{"", "", false}, {"1", "", false}, {"1.", "", false}, {".41", "", false}, {"v1.41", "", false},
		{"1.41.2", "", false}, {"1.-1", "", false}, {"1.+4", "", false}, {"99999.1", "", false}, {"not-a-version", "", false},
	} {
		v, err := ParseVersion(c.in)
		if (err == nil) != c.ok || (c.ok && v.String() != c.want) {
			t.Errorf("ParseVersion(%q) = %v, %v; want %q ok=%v", c.in, v, err, c.want, c.ok)
		}
	}
	a, _ := ParseVersion("1.9")
	b, _ := ParseVersion("1.41")
	if !a.Less(b) || b.Less(a) || a.Less(a) {
		t.Error("1.9 < 1.41 must hold, and not the reverse")
	}
}

func TestNew(t *testing.T) {
	for _, c := range []struct {
		host, env, apiEnv string
		wantErr           string // "" = no error
		wantHost          string
	}{
		{host: "", wantHost: DefaultHost},
		{host: "", env: "tcp://10.0.0.1:2375", wantHost: "tcp://10.0.0.1:2375"},
		{host: "unix:///run/d.sock", env: "tcp://10.0.0.1:2375", wantHost: "unix:///run/d.sock"},
		{host: "127.0.0.1:2375", wantErr: `"127.0.0.1:2375"`},
		{host: "unix://", wantErr: "want unix://"},
		{host: "ssh://me@host", wantErr: `scheme "ssh" not supported`},
		{host: "npipe:////./pipe/docker_engine", wantErr: `scheme "npipe" not supported`},
		{host: "tcp://", wantErr: "want unix://"},
		{host: "tcp://host:2375/some/path", wantErr: "want tcp://host:port"},
		{host: "tcp://host:2375", apiEnv: "not-a-version", wantErr: "DOCKER_API_VERSION"},
		{host: "tcp://host:2375", apiEnv: "v1.41", wantHost: "tcp://host:2375"},
	} {
		t.Run(c.host+c.env+c.apiEnv, func(t *testing.T) {
			clearEnv(t)
			t.Setenv("DOCKER_HOST", c.env)
			t.Setenv("DOCKER_API_VERSION", c.apiEnv)
			cl, err := New(c.host)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("New(%q) = %v, want an error containing %s", c.host, err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			if cl.Host() != c.wantHost {
				t.Errorf("Host() = %q, want %q", cl.Host(), c.wantHost)
			}
			if c.apiEnv == "v1.41" && cl.Version() != "1.41" {
				t.Errorf("DOCKER_API_VERSION=v1.41: Version() = %q", cl.Version())
			}
		})
	}
}

// daemon is a scripted Engine API endpoint that records the paths asked.
type daemon struct {
	pingStatus int
	apiVersion string // the Api-Version header; "" = none
	inspect    string // the inspect answer's body
	status     int    // inspect's and restart's status
	mu         sync.Mutex
	paths      []string
}

func (d *daemon) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	d.mu.Lock()
	d.paths = append(d.paths, r.Method+" "+r.URL.RequestURI())
	d.mu.Unlock()
	if d.apiVersion != "" {
		w.Header().Set("Api-Version", d.apiVersion)
	}
	if r.URL.Path == "/_ping" {
		w.WriteHeader(max(d.pingStatus, 200))
		_, _ = io.WriteString(w, "OK")
		return
	}
	w.WriteHeader(max(d.status, 200))
	_, _ = io.WriteString(w, d.inspect)
}

func (d *daemon) asked() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.paths...)
}

func serve(t *testing.T, d *daemon) *Client {
	t.Helper()
	clearEnv(t)
	srv := httptest.NewServer(d)
	t.Cleanup(srv.Close)
	c, err := New("tcp://" + srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func TestNegotiation(t *testing.T) {
	for _, c := range []struct {
		name       string
		pingStatus int
		header     string
		want       string // the version used, or the error's text
		wantErr    bool
	}{
		{"debian 20.10", 200, "1.41", "1.41", false},
		{"newer than this client", 200, "1.60", MaxAPIVersion, false},
		{"no header", 200, "", MaxAPIVersion, false},
		{"too old", 200, "1.23", "older than 1.24", true},
		{"garbage", 200, "1.x", "API version", true},
		{"unhealthy daemon naming its version", 500, "1.44", "1.44", false},
		{"500 without a version", 500, "", "status 500", true},
		{"not a daemon", 404, "", "status 404", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := &daemon{pingStatus: c.pingStatus, apiVersion: c.header, status: 204}
			cl := serve(t, d)
			err := cl.Ping(t.Context())
			if c.wantErr {
				if err == nil || !strings.Contains(err.Error(), c.want) {
					t.Fatalf("Ping = %v, want an error containing %q", err, c.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cl.Version() != c.want {
				t.Errorf("version = %q, want %q", cl.Version(), c.want)
			}
			if err := cl.Restart(t.Context(), "/gw", 7); err != nil {
				t.Fatal(err)
			}
			if got, want := d.asked()[1], "POST /v"+c.want+"/containers/gw/restart?t=7"; got != want {
				t.Errorf("restart asked %q, want %q", got, want)
			}
		})
	}
}

func TestFixedVersionIsNotNegotiated(t *testing.T) {
	d := &daemon{apiVersion: "1.44", status: 204}
	cl := serve(t, d)
	t.Setenv("DOCKER_API_VERSION", "1.40")
	cl, err := New(cl.Host())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	if cl.Version() != "1.40" {
		t.Errorf("version = %q, want DOCKER_API_VERSION's 1.40", cl.Version())
	}
}

func TestInspect(t *testing.T) {
	for _, c := range []struct {
		name    string
		status  int
		body    string
		check   func(Container) error
		wantErr string
	}{
		{name: "running", status: 200,
			body: `{"Id":"abc","Name":"/gw","RestartCount":3,"State":{"Status":"running","Running":true,"Pid":42,"ExitCode":0},"HostConfig":{"RestartPolicy":{"Name":"unless-stopped"}},"Config":{"Env":["A=1"]}}`,
			check: func(ct Container) error {
				if ct.ID != "abc" || ct.RestartCount != 3 || ct.State == nil || !ct.State.Running || ct.State.Pid != 42 || ct.RestartPolicy() != "unless-stopped" {
					return fmt.Errorf("%+v", ct)
				}
				return nil
			}},
		{name: "no policy", status: 200, body: `{"Id":"abc","State":{"Status":"exited","ExitCode":78}}`,
			check: func(ct Container) error {
				if ct.RestartPolicy() != "no" || ct.State.ExitCode != 78 {
					return fmt.Errorf("%+v", ct)
				}
				return nil
			}},
		{name: "not found", status: 404, body: `{"message":"No such container: gw"}`, wantErr: "status 404: No such container: gw"},
		{name: "hostile message", status: 500, body: `{"message":"line1\nline2\u001b[31m` + strings.Repeat("x", 2000) + `"}`, wantErr: "status 500: line1 line2 [31mxxx"},
		{name: "not json", status: 200, body: `<html>`, wantErr: "inspect answer"},
		{name: "too large", status: 200, body: `{"Id":"` + strings.Repeat("a", maxInspectBytes) + `"}`, wantErr: "larger than"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cl := serve(t, &daemon{apiVersion: "1.41", status: c.status, inspect: c.body})
			if err := cl.Ping(t.Context()); err != nil {
				t.Fatal(err)
			}
			ct, err := cl.Inspect(t.Context(), "gw")
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("Inspect = %v, want an error containing %q", err, c.wantErr)
				}
				if len(err.Error()) > maxMessageBytes+64 || strings.ContainsAny(err.Error(), "\n\x1b") {
					t.Errorf("error not clipped to one printable line: %q", err.Error())
				}
				if (c.status == 404) != IsNotFound(err) {
					t.Errorf("IsNotFound(%v) = %v", err, IsNotFound(err))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := c.check(ct); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestUnixSocketAndConnectionErrors(t *testing.T) {
	clearEnv(t)
	sock := filepath.Join(t.TempDir(), "d.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	d := &daemon{apiVersion: "1.41", status: 200, inspect: `{"Id":"x","State":{"Running":true}}`}
	srv := &httptest.Server{Listener: l, Config: &http.Server{Handler: d, ReadHeaderTimeout: time.Second}}
	srv.Start()
	defer srv.Close()
	cl, err := New("unix://" + sock)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	if ct, err := cl.Inspect(t.Context(), "gw"); err != nil || ct.ID != "x" {
		t.Fatalf("Inspect over the socket = %+v, %v", ct, err)
	}

	gone, _ := New("unix://" + filepath.Join(t.TempDir(), "none.sock"))
	err = gone.Ping(t.Context())
	if !IsConnectionFailed(err) || !strings.Contains(err.Error(), "none.sock") {
		t.Errorf("no socket: %v, want a connection failure naming the path", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := cl.Ping(ctx); IsConnectionFailed(err) || !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v, want context.Canceled, not a connection failure", err)
	}
}

func TestNoRedirects(t *testing.T) {
	clearEnv(t)
	target := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { t.Error("redirect followed") }))
	defer target.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	defer srv.Close()
	cl, _ := New("tcp://" + srv.Listener.Addr().String())
	defer cl.Close()
	if err := cl.Ping(t.Context()); err == nil || !strings.Contains(err.Error(), "status 307") {
		t.Errorf("Ping through a redirect = %v, want status 307", err)
	}
}

// TestTLSFromEnv checks DOCKER_CERT_PATH's client certificate reaches a
// daemon that requires one, and DOCKER_TLS_VERIFY's verification.
func TestTLSFromEnv(t *testing.T) {
	dir := t.TempDir()
	caKey, caCert := testutil.Cert(t, nil, nil, "ca", true)
	testutil.WriteCert(t, filepath.Join(dir, "ca.pem"), "", caCert, nil)
	ck, cc := testutil.Cert(t, caCert, caKey, "client", false)
	testutil.WriteCert(t, filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), cc, ck)

	sk, sc := testutil.Cert(t, caCert, caKey, "127.0.0.1", false)
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	srv := httptest.NewUnstartedServer(&daemon{apiVersion: "1.41"})
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{sc.Raw}, PrivateKey: sk}},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool, MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	defer srv.Close()
	host := "tcp://" + srv.Listener.Addr().String()

	clearEnv(t)
	t.Setenv("DOCKER_CERT_PATH", dir)
	t.Setenv("DOCKER_TLS_VERIFY", "1")
	cl, err := New(host)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.Ping(t.Context()); err != nil {
		t.Fatalf("verified TLS with a client certificate: %v", err)
	}

	// Without the certificates the daemon refuses the handshake.
	t.Setenv("DOCKER_CERT_PATH", "")
	plain, _ := New(host)
	defer plain.Close()
	if err := plain.Ping(t.Context()); err == nil {
		t.Error("plain HTTP to a TLS daemon: want an error")
	}

	// A CA that did not sign the daemon's certificate fails verification.
	_, other := testutil.Cert(t, nil, nil, "other-ca", true)
	testutil.WriteCert(t, filepath.Join(dir, "ca.pem"), "", other, nil)
	t.Setenv("DOCKER_CERT_PATH", dir)
	wrong, _ := New(host)
	defer wrong.Close()
	if err := wrong.Ping(t.Context()); !IsConnectionFailed(err) {
		t.Errorf("unknown CA with DOCKER_TLS_VERIFY: %v, want a connection failure", err)
	}

	if err := os.Remove(filepath.Join(dir, "key.pem")); err != nil {
		t.Fatal(err)
	}
	if _, err := New(host); err == nil || !strings.Contains(err.Error(), "DOCKER_CERT_PATH") {
		t.Errorf("missing key.pem: %v, want an error at New naming DOCKER_CERT_PATH", err)
	}
}
