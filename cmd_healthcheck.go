package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// defaultWebListenAddress is --web.listen-address's default (main.go's
// kingpinflag.AddFlags).
const defaultWebListenAddress = ":9789"

const (
	// healthcheckTimeout bounds the HTTP check (both schemes together),
	// under the image's HEALTHCHECK --timeout=5s.
	healthcheckTimeout = 3 * time.Second
	// discoverTimeout bounds the /proc scan: a read of a cmdline can block
	// on a process stuck in the kernel.
	discoverTimeout = time.Second
	// maxCmdline bounds the read of one /proc/<pid>/cmdline.
	maxCmdline = 64 << 10
)

// healthOptions are the inputs of one health check. The zero Proc, Self
// and timeouts mean /proc, this process and the defaults above.
type healthOptions struct {
	Addr     string // the healthcheck command's own --web.listen-address
	Explicit bool   // Addr was given: check it, do not look for the exporter
	Proc     string // procfs root, a fixture in tests
	Self     int    // this process's pid under Proc, skipped by the scan
	Timeout  time.Duration
	Discover time.Duration
}

func healthcheckWith(o healthOptions, out io.Writer) int {
	if o.Proc == "" {
		o.Proc = "/proc"
	}
	if o.Self == 0 {
		o.Self = os.Getpid()
	}
	if o.Timeout <= 0 {
		o.Timeout = healthcheckTimeout
	}
	if o.Discover <= 0 {
		o.Discover = discoverTimeout
	}
	addr, why, err := healthAddress(o)
	if err != nil {
		fmt.Fprintf(out, "unhealthy: %v\n", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.Timeout)
	defer cancel()
	url, note, err := checkHealthy(ctx, addr)
	if err != nil {
		fmt.Fprintf(out, "unhealthy: %v (%s)\n", err, why)
		return 1
	}
	fmt.Fprintf(out, "healthy: %s%s (%s)\n", url, note, why)
	return 0
}

// healthAddress is the address to check and where it comes from.
func healthAddress(o healthOptions) (addr, why string, err error) {
	if o.Explicit {
		return o.Addr, "--web.listen-address " + o.Addr, nil
	}
	type found struct {
		pid  int
		args exporterArgs
		note string
	}
	ch := make(chan found, 1)
	go func() {
		pid, args, note := findServingExporter(o.Proc, o.Self)
		ch <- found{pid, args, note}
	}()
	var f found
	select {
	case f = <-ch:
	case <-time.After(o.Discover):
		f.note = fmt.Sprintf("reading %s took over %s", o.Proc, o.Discover)
	}
	if f.pid == 0 {
		return o.Addr, fmt.Sprintf("default %s: %s; give healthcheck --web.listen-address", o.Addr, f.note), nil
	}
	who := fmt.Sprintf("pid %d", f.pid)
	if f.args.SystemdSocket {
		return "", "", fmt.Errorf("%s serves systemd socket-activated listeners (--web.systemd-socket), whose address is not on its command line: give healthcheck --web.listen-address", who)
	}
	if len(f.args.ListenAddresses) == 0 {
		return defaultWebListenAddress, who + "'s default " + defaultWebListenAddress, nil
	}
	for _, a := range f.args.ListenAddresses {
		if !strings.HasPrefix(a, "vsock://") {
			return a, who + "'s --web.listen-address " + a, nil
		}
	}
	return "", "", fmt.Errorf("%s listens on vsock only (%s), which this check cannot reach: give healthcheck --web.listen-address", who, strings.Join(f.args.ListenAddresses, " "))
}

// findServingExporter returns the clawdbot_exporter serving in this
// process's mount namespace (the same container): PID 1 when it is one,
// else the only one found, else pid 0 and why not.
func findServingExporter(proc string, self int) (pid int, args exporterArgs, note string) {
	selfNS, err := os.Readlink(filepath.Join(proc, strconv.Itoa(self), "ns", "mnt"))
	if err != nil {
		return 0, args, fmt.Sprintf("cannot read this process's mount namespace: %v", err)
	}
	selfExe, _ := os.Readlink(filepath.Join(proc, strconv.Itoa(self), "exe"))
	candidate := func(pid int) (exporterArgs, bool) {
		dir := filepath.Join(proc, strconv.Itoa(pid))
		argv, err := readCmdline(filepath.Join(dir, "cmdline"))
		if err != nil || len(argv) == 0 {
			return exporterArgs{}, false
		}
		if path.Base(argv[0]) != exporterName {
			if exe, err := os.Readlink(filepath.Join(dir, "exe")); err != nil || selfExe == "" || exe != selfExe {
				return exporterArgs{}, false
			}
		}
		a := parseExporterArgs(argv[1:])
		if a.Command != "serve" {
			return a, false
		}
		// Not one of another container's (seen through a shared PID
		// namespace), nor the host's: those are other exporters.
		ns, err := os.Readlink(filepath.Join(dir, "ns", "mnt"))
		return a, err == nil && ns == selfNS
	}
	if self != 1 {
		if a, ok := candidate(1); ok {
			return 1, a, ""
		}
	}
	entries, err := os.ReadDir(proc)
	if err != nil {
		return 0, args, err.Error()
	}
	var pids []int
	for _, e := range entries {
		if p, err := strconv.Atoi(e.Name()); err == nil && p > 1 && p != self {
			pids = append(pids, p)
		}
	}
	slices.Sort(pids)
	var found []int
	var first exporterArgs
	for _, p := range pids {
		a, ok := candidate(p)
		if !ok {
			continue
		}
		if len(found) == 0 {
			first = a
		} else if !slices.Equal(a.ListenAddresses, first.ListenAddresses) || a.SystemdSocket != first.SystemdSocket {
			return 0, args, fmt.Sprintf("several clawdbot_exporter processes serve here, on different addresses (pids %d and %d)", found[0], p)
		}
		found = append(found, p)
	}
	if len(found) == 0 {
		return 0, args, "no clawdbot_exporter serving in this mount namespace"
	}
	return found[0], first, ""
}

// readCmdline reads a /proc/<pid>/cmdline (NUL-separated, NUL-terminated
// argv), at most maxCmdline bytes of it.
func readCmdline(name string) ([]string, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxCmdline))
	if err != nil {
		return nil, err
	}
	return splitCmdline(b), nil
}

func splitCmdline(b []byte) []string {
	b = bytes.TrimSuffix(b, []byte{0})
	if len(b) == 0 {
		return nil
	}
	return strings.Split(string(b), "\x00")
}

// exporterArgs is what the health check needs from an exporter's
// command line.
type exporterArgs struct {
	Command         string   // the subcommand; "serve" when none is named
	ListenAddresses []string // every --web.listen-address, in order; none: the default
	SystemdSocket   bool     // --web.systemd-socket
}

// exporterCommands are the subcommands main.go defines (and kingpin's help).
var exporterCommands = map[string]bool{"serve": true, "probe": true, "healthcheck": true, "pause": true, "locks": true, "help": true}

// boolFlags are the exporter's flags that take no value, so the argument
// after them is not theirs; every --collector.* flag is one too.
// TestHealthcheckBoolFlags keeps the list in step with main.go.
var boolFlags = map[string]bool{
	"help": true, "help-long": true, "help-man": true, "version": true,
	"completion-bash": true, "completion-script-bash": true, "completion-script-zsh": true,
	"config.check": true, "remediation.dry-run": true, "web.systemd-socket": true,
	"json": true, "remove-stale": true,
}

func isBoolFlag(name string) bool {
	name = strings.TrimPrefix(name, "no-")
	// --collector.<name> switches are bool; --collector.<name>.<option>
	// (--collector.probe.max-items-per-kind) take values.
	rest, ok := strings.CutPrefix(name, "collector.")
	return boolFlags[name] || ok && !strings.Contains(rest, ".")
}

// parseExporterArgs reads argv[1:] of a clawdbot_exporter the way kingpin
// does, as far as the health check cares: --flag=value and --flag value,
// --[no-]bool, the subcommand anywhere among the flags, -- ending flags.
func parseExporterArgs(args []string) exporterArgs {
	var a exporterArgs
	flagsDone := false
	for i := 0; i < len(args); i++ {
		arg := args[i]
		if !flagsDone && arg == "--" {
			flagsDone = true
			continue
		}
		if flagsDone || !strings.HasPrefix(arg, "-") || arg == "-" {
			if a.Command == "" {
				a.Command = arg
			}
			continue
		}
		if !strings.HasPrefix(arg, "--") {
			continue // -h: the only short flag
		}
		name, value, hasValue := strings.Cut(arg[2:], "=")
		if isBoolFlag(name) {
			switch name {
			case "web.systemd-socket":
				a.SystemdSocket = !hasValue || value == "true"
			case "no-web.systemd-socket":
				a.SystemdSocket = false
			}
			continue
		}
		if !hasValue {
			if i+1 >= len(args) {
				break
			}
			i++
			value = args[i]
		}
		if name == "web.listen-address" {
			a.ListenAddresses = append(a.ListenAddresses, value)
		}
	}
	switch {
	case a.Command == "":
		a.Command = "serve"
	case !exporterCommands[a.Command]:
		a.Command = "" // kingpin would have refused it: not running
	}
	return a
}

// checkHealthy GETs /-/healthy at addr: over http, then https when the
// server says it speaks TLS (--web.config.file). A server that refuses the
// check's missing credentials (basic auth, client certificates) answered,
// which is all a liveness check can learn; note says so.
func checkHealthy(ctx context.Context, addr string) (url, note string, err error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", "", fmt.Errorf("listen address %q: %w", addr, err)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	hostport := net.JoinHostPort(host, port)
	client := &http.Client{
		Transport: &http.Transport{
			Proxy:             nil,                                   // never through $HTTP_PROXY
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, // liveness only: nothing is sent, nothing trusted
			DisableKeepAlives: true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	get := func(scheme string) (string, int, http.Header, []byte, error) {
		u := scheme + "://" + hostport + "/-/healthy"
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return u, 0, nil, nil, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return u, 0, nil, nil, err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		return u, resp.StatusCode, resp.Header, body, nil
	}
	url, code, hdr, body, err := get("http")
	if err == nil && code == http.StatusBadRequest && bytes.Contains(body, []byte("HTTP request to an HTTPS server")) {
		url, code, hdr, body, err = get("https")
		if err != nil && isClientCertRefusal(err) {
			return url, ": it requires a client certificate, so only the TLS handshake was checked", nil
		}
	}
	switch {
	case err != nil:
		return url, "", err
	case code == http.StatusOK:
		return url, "", nil
	case code == http.StatusUnauthorized && hdr.Get("WWW-Authenticate") != "":
		return url, ": HTTP 401, its --web.config.file requires authentication, so only that it answers was checked", nil
	default:
		return url, "", fmt.Errorf("%s: HTTP %d %s", url, code, strings.TrimSpace(string(body)))
	}
}

// isClientCertRefusal: the server's TLS alert for a missing client
// certificate (TLS 1.3 "certificate required", TLS 1.2 "bad certificate").
func isClientCertRefusal(err error) bool {
	s := err.Error()
	return strings.Contains(s, "tls: certificate required") || strings.Contains(s, "tls: bad certificate")
}
