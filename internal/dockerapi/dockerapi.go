// Package dockerapi is the three Docker Engine API calls the docker action
// makes (ping, inspect a container, restart it), configured the way the
// docker CLI is (DOCKER_HOST, DOCKER_API_VERSION, DOCKER_CERT_PATH,
// DOCKER_TLS_VERIFY).
//
// It stands in for the official client (github.com/moby/moby/client), which
// the tests still use as the reference: linking that client costs every
// start of the binary about 200 page faults, 1.3 MiB of RSS and 0.5-1.4 ms
// (its image-reference regexps and tracing set themselves up at init), and
// the probe subcommand, a container health check, starts every 30 s.
package dockerapi

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
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/clawdbot-exporter/clawdbot_exporter/internal/text"
)

const (
	// DefaultHost is the daemon's socket on Linux, as the docker CLI has it.
	DefaultHost = "unix:///var/run/docker.sock"
	// MinAPIVersion is the oldest API this client speaks: every field it
	// reads and both calls it makes are in API 1.24 (Docker 1.12).
	MinAPIVersion = "1.24"
	// MaxAPIVersion is the newest it asks for; a daemon that speaks less is
	// asked for its own version (as the official client negotiates).
	MaxAPIVersion = "1.52"

	// DefaultTimeout bounds a call whose context has no deadline.
	DefaultTimeout = 5 * time.Minute

	maxInspectBytes = 8 << 20  // an inspect answer: Config.Env, labels, mounts
	maxErrorBytes   = 64 << 10 // an error answer's body
	maxMessageBytes = 512      // the daemon's message, as quoted in errors
)

// Client talks to one daemon. It is cheap to make; Close releases its idle
// connections.
type Client struct {
	host    string // as configured, for errors
	scheme  string // http or https
	addr    string // the URL's host: the daemon's for tcp, a placeholder for unix
	hc      *http.Client
	mu      sync.Mutex
	version string // "" until negotiated, unless fixed
	fixed   bool   // DOCKER_API_VERSION set: never negotiated
}

// New configures a client like the docker CLI: host when not empty, else
// DOCKER_HOST, else the local socket; DOCKER_API_VERSION fixes the API
// version (otherwise Ping negotiates it); DOCKER_CERT_PATH holds ca.pem,
// cert.pem and key.pem for a tcp daemon, verified only when
// DOCKER_TLS_VERIFY is set, as the docker CLI does. It dials nothing.
func New(host string) (*Client, error) {
	if host == "" {
		host = os.Getenv("DOCKER_HOST")
	}
	if host == "" {
		host = DefaultHost
	}
	c := &Client{host: host}
	if v := strings.TrimSpace(os.Getenv("DOCKER_API_VERSION")); v != "" {
		pv, err := ParseVersion(strings.TrimPrefix(v, "v"))
		if err != nil {
			return nil, fmt.Errorf("DOCKER_API_VERSION=%q: %w", v, err)
		}
		c.version, c.fixed = pv.String(), true
	}
	proto, addr, ok := strings.Cut(host, "://")
	if !ok || addr == "" {
		return nil, fmt.Errorf("docker host %q: want unix:///path/to/socket or tcp://host:port", host)
	}
	tr := &http.Transport{
		MaxIdleConns:          2,
		IdleConnTimeout:       30 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
	}
	var d net.Dialer
	switch proto {
	case "unix":
		c.scheme, c.addr = "http", "docker" // the Host header; the socket is what is dialled
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", addr)
		}
	case "tcp":
		u, err := url.Parse("tcp://" + addr)
		if err != nil || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return nil, fmt.Errorf("docker host %q: want tcp://host:port", host)
		}
		c.scheme, c.addr = "http", u.Host
		tr.DialContext = d.DialContext
		tr.Proxy = http.ProxyFromEnvironment
		cfg, err := tlsFromEnv()
		if err != nil {
			return nil, err
		}
		if cfg != nil {
			c.scheme, tr.TLSClientConfig = "https", cfg
		}
	default:
		return nil, fmt.Errorf("docker host %q: scheme %q not supported (want unix:// or tcp://)", host, proto)
	}
	c.hc = &http.Client{
		Transport: tr,
		// The API never redirects; a redirect is a proxy or a wrong host.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return c, nil
}

// tlsFromEnv is the docker CLI's DOCKER_CERT_PATH/DOCKER_TLS_VERIFY.
func tlsFromEnv() (*tls.Config, error) {
	dir := os.Getenv("DOCKER_CERT_PATH")
	if dir == "" {
		return nil, nil
	}
	fail := func(err error) (*tls.Config, error) {
		return nil, fmt.Errorf("TLS from DOCKER_CERT_PATH=%s: %w", dir, err)
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
	if err != nil {
		return fail(err)
	}
	ca, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil {
		return fail(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return fail(errors.New("ca.pem holds no PEM certificate"))
	}
	return &tls.Config{
		Certificates:       []tls.Certificate{cert},
		RootCAs:            pool,
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: os.Getenv("DOCKER_TLS_VERIFY") == "", //nolint:gosec // the docker CLI's meaning of an unset DOCKER_TLS_VERIFY
	}, nil
}

// Host is the daemon as configured, for messages.
func (c *Client) Host() string { return c.host }

// Close drops the client's idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// Version is the API version calls use: fixed, negotiated, or "" before
// the first Ping.
func (c *Client) Version() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.version
}

// ConnError is a daemon that could not be reached (refused, no socket, no
// permission on it, reset, TLS failure). Its message is the cause's; Host
// names the daemon for the caller's.
type ConnError struct {
	Host string
	Err  error
}

func (e *ConnError) Error() string {
	return e.Err.Error()
}
func (e *ConnError) Unwrap() error { return e.Err }

// StatusError is the daemon's refusal of a call.
type StatusError struct {
	Code    int
	Message string // the daemon's, clipped and made printable
}

func (e *StatusError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("status %d", e.Code)
	}
	return fmt.Sprintf("status %d: %s", e.Code, e.Message)
}

// IsNotFound tells a call on a container the daemon does not have.
func IsNotFound(err error) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Code == http.StatusNotFound
}

// IsConnectionFailed tells a daemon that could not be reached.
func IsConnectionFailed(err error) bool {
	var ce *ConnError
	return errors.As(err, &ce)
}

// Ping checks that the daemon answers and, unless DOCKER_API_VERSION fixed
// it, settles the API version: the daemon's, at most MaxAPIVersion, and an
// error below MinAPIVersion. A daemon that answers 500 (unhealthy) but
// names its version still counts, as it does for the official client.
func (c *Client) Ping(ctx context.Context) error {
	ctx, cancel := bounded(ctx)
	defer cancel()
	resp, err := c.do(ctx, http.MethodGet, "/_ping", nil)
	if err != nil {
		return err
	}
	defer drain(resp)
	api := resp.Header.Get("Api-Version")
	if resp.StatusCode/100 != 2 && (resp.StatusCode != http.StatusInternalServerError || api == "") {
		return statusError(resp)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fixed {
		return nil
	}
	return c.negotiate(api)
}

func (c *Client) negotiate(api string) error {
	maxV, _ := ParseVersion(MaxAPIVersion)
	if api == "" { // a daemon too old to say, or something else: ask for the newest
		c.version = maxV.String()
		return nil
	}
	v, err := ParseVersion(api)
	if err != nil {
		return fmt.Errorf("docker daemon at %s: API version %q: %w", c.host, text.TruncateUTF8(api, 32), err)
	}
	if minV, _ := ParseVersion(MinAPIVersion); v.Less(minV) {
		return fmt.Errorf("docker daemon at %s speaks API %s, older than %s, the oldest this exporter speaks", c.host, v, minV)
	}
	if maxV.Less(v) {
		v = maxV
	}
	c.version = v.String()
	return nil
}

// Container is the part of an inspect answer the docker action reads.
type Container struct {
	ID           string `json:"Id"`
	Name         string
	RestartCount int
	State        *State
	HostConfig   *struct {
		RestartPolicy struct {
			Name string
		}
	}
}

// State is a container's state as inspect reports it.
type State struct {
	Status     string // created, running, paused, restarting, removing, exited, dead
	Running    bool
	Paused     bool
	Restarting bool
	OOMKilled  bool
	Dead       bool
	Pid        int
	ExitCode   int
}

// RestartPolicy is the container's restart policy name, "no" when unset.
func (c Container) RestartPolicy() string {
	if c.HostConfig != nil && c.HostConfig.RestartPolicy.Name != "" {
		return c.HostConfig.RestartPolicy.Name
	}
	return "no"
}

// Inspect reads one container, by name or id.
func (c *Client) Inspect(ctx context.Context, name string) (Container, error) {
	ctx, cancel := bounded(ctx)
	defer cancel()
	resp, err := c.do(ctx, http.MethodGet, c.containerPath(name, "json"), nil)
	if err != nil {
		return Container{}, err
	}
	defer drain(resp)
	if resp.StatusCode != http.StatusOK {
		return Container{}, statusError(resp)
	}
	var ct Container
	lr := &io.LimitedReader{R: resp.Body, N: maxInspectBytes + 1}
	if err := json.NewDecoder(lr).Decode(&ct); err != nil {
		if lr.N <= 0 {
			return Container{}, fmt.Errorf("inspect answer larger than %d bytes", maxInspectBytes)
		}
		return Container{}, fmt.Errorf("inspect answer: %w", err)
	}
	return ct, nil
}

// Restart stops the container (its stop signal, then SIGKILL after
// stopSeconds) and starts it again; it returns once the daemon has.
func (c *Client) Restart(ctx context.Context, name string, stopSeconds int) error {
	ctx, cancel := bounded(ctx)
	defer cancel()
	q := url.Values{"t": {strconv.Itoa(stopSeconds)}}
	resp, err := c.do(ctx, http.MethodPost, c.containerPath(name, "restart"), q)
	if err != nil {
		return err
	}
	defer drain(resp)
	if resp.StatusCode/100 != 2 {
		return statusError(resp)
	}
	return nil
}

// containerPath is the versioned path of a call on a container. A name may
// carry docker's leading "/".
func (c *Client) containerPath(name, op string) string {
	p := "/containers/" + url.PathEscape(strings.TrimPrefix(name, "/")) + "/" + op
	if v := c.Version(); v != "" {
		p = "/v" + v + p
	}
	return p
}

// bounded gives a call without a deadline DefaultTimeout.
func bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, DefaultTimeout)
}

func (c *Client) do(ctx context.Context, method, path string, q url.Values) (*http.Response, error) {
	u := url.URL{Scheme: c.scheme, Host: c.addr, Path: path, RawQuery: q.Encode()}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("docker daemon at %s: %w", c.host, ctx.Err())
		}
		return nil, &ConnError{Host: c.host, Err: unwrapURL(err)}
	}
	return resp, nil
}

// unwrapURL drops net/http's `Get "http://docker/_ping":` prefix, which
// names a placeholder host for a socket.
func unwrapURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// statusError reads the daemon's {"message": ...} from a refusal.
func statusError(resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBytes))
	var m struct {
		Message string `json:"message"`
	}
	msg := strings.TrimSpace(string(body))
	if json.Unmarshal(body, &m) == nil && m.Message != "" {
		msg = m.Message
	}
	return &StatusError{Code: resp.StatusCode, Message: printable(msg)}
}

// printable keeps a message from the daemon to one clipped line of valid
// UTF-8.
func printable(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, "\uFFFD"))
	return text.TruncateUTF8(s, maxMessageBytes)
}

// drain reads what is left of a small answer so the connection can be
// reused, then closes it.
func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBytes))
	_ = resp.Body.Close()
}
