// Package deploy validates the Docker deployment: ../Dockerfile,
// ../.dockerignore, docker-compose.yml and the files under docker/.
//
// Each check that needs a missing tool (docker-compose, promtool, amtool, a
// Docker daemon) skips, or fails when CI=true.
package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/clawdbot-exporter/clawdbot_exporter/config"
	"github.com/clawdbot-exporter/clawdbot_exporter/internal/testutil"
)

const (
	composeFile     = "docker-compose.yml"
	gatewayService  = "clawdbot-gateway"
	pidnsService    = "clawdbot-pidns"
	exporterService = "clawdbot-exporter"
	exporterPort    = "9789"
	// Binaries built by tests that are not the repository's own: they
	// never touch ../clawdbot_exporter.
	imageTag = "clawdbot_exporter:deploy-test"
)

// composeEnv is what docker-compose needs to interpolate the file: its
// required variables (${X:?...}) and nothing from the caller's .env.
var composeEnv = map[string]string{
	"CLAWDBOT_GATEWAY_TOKEN": "test-token",
	"CLAWDBOT_CONFIG_DIR":    "/srv/clawdbot/config",
	"CLAWDBOT_WORKSPACE_DIR": "/srv/clawdbot/workspace",
}

// need finds a tool, or skips (fails in CI).
func need(t *testing.T, tool string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		missing(t, "%s not found: %v", tool, err)
	}
	return p
}

var missing = testutil.Missing

func run(t *testing.T, timeout time.Duration, env []string, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// ---- the compose file, as data ----

type service struct {
	Image       string            `yaml:"image"`
	Build       any               `yaml:"build"`
	User        string            `yaml:"user"`
	Pid         string            `yaml:"pid"`
	Init        bool              `yaml:"init"`
	Restart     string            `yaml:"restart"`
	StopGrace   string            `yaml:"stop_grace_period"`
	Environment map[string]string `yaml:"environment"`
	Volumes     []string          `yaml:"volumes"`
	Secrets     []string          `yaml:"secrets"`
	DependsOn   []string          `yaml:"depends_on"`
	Command     []string          `yaml:"command"`
	Ports       []string          `yaml:"ports"`
	MemLimit    string            `yaml:"mem_limit"`
	Healthcheck *struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
	ContainerName string `yaml:"container_name"`
	Deploy        struct {
		Resources struct {
			Limits struct {
				Memory string `yaml:"memory"`
			} `yaml:"limits"`
		} `yaml:"resources"`
	} `yaml:"deploy"`
}

type composeDoc struct {
	Services map[string]*service `yaml:"services"`
	Volumes  map[string]*struct {
		Driver     string            `yaml:"driver"`
		DriverOpts map[string]string `yaml:"driver_opts"`
	} `yaml:"volumes"`
	Secrets map[string]*struct {
		File string `yaml:"file"`
	} `yaml:"secrets"`
}

func loadCompose(t *testing.T) (*composeDoc, *yaml.Node) {
	t.Helper()
	return loadComposeFile(t, composeFile)
}

func loadComposeFile(t *testing.T, composeFile string) (*composeDoc, *yaml.Node) {
	t.Helper()
	b, err := os.ReadFile(composeFile)
	if err != nil {
		t.Fatal(err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		t.Fatalf("%s: %v", composeFile, err)
	}
	var doc composeDoc
	if err := root.Decode(&doc); err != nil {
		t.Fatalf("%s: %v", composeFile, err)
	}
	return &doc, &root
}

// mount is one short-syntax volume entry.
type mount struct{ source, target, mode string }

func parseMount(s string) mount {
	// A ${VAR:?message} source contains colons of its own.
	var src string
	if strings.HasPrefix(s, "${") {
		if end := strings.Index(s, "}"); end > 0 {
			src, s = s[:end+1], "x"+s[end+1:]
		}
	}
	p := strings.Split(s, ":")
	m := mount{source: p[0]}
	if src != "" {
		m.source = src
	}
	if len(p) > 1 {
		m.target = p[1]
	}
	if len(p) > 2 {
		m.mode = p[2]
	}
	return m
}

// isBind: compose treats a source starting with ., /, ~ or a variable as a
// host path; anything else names a volume.
func (m mount) isBind() bool {
	return strings.HasPrefix(m.source, ".") || strings.HasPrefix(m.source, "/") ||
		strings.HasPrefix(m.source, "~") || strings.HasPrefix(m.source, "$")
}

func (s *service) mountAt(target string) (mount, bool) {
	for _, v := range s.Volumes {
		if m := parseMount(v); m.target == target {
			return m, true
		}
	}
	return mount{}, false
}

func (s *service) mountOf(source string) (mount, bool) {
	for _, v := range s.Volumes {
		if m := parseMount(v); m.source == source {
			return m, true
		}
	}
	return mount{}, false
}

func (s *service) flag(name string) (string, bool) {
	for _, a := range s.Command {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// defaultEnv expands ${VAR:-default} to its default, as compose does
// with VAR unset.
var defaultVar = regexp.MustCompile(`\$\{[A-Z_]+:-([^}]*)\}`)

func defaultEnv(s string) string { return defaultVar.ReplaceAllString(s, "$1") }

// ---- (1) docker-compose config ----

// composeConfigEnv is the environment for `docker-compose config` (the
// composeEnv variables) and an empty --env-file: a developer's deploy/.env
// must not change the result.
func composeConfigEnv(t *testing.T) (env []string, envFile string) {
	t.Helper()
	for k, v := range composeEnv {
		env = append(env, k+"="+v)
	}
	envFile = filepath.Join(t.TempDir(), "empty.env")
	if err := os.WriteFile(envFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return env, envFile
}

func TestComposeConfig(t *testing.T) {
	dc := need(t, "docker-compose")
	env, envFile := composeConfigEnv(t)
	out, err := run(t, time.Minute, env, dc, "--env-file", envFile, "-f", composeFile, "config")
	if err != nil {
		t.Fatalf("docker-compose config: %v\n%s", err, out)
	}
	// The resolved file uses the long syntax: read only what is checked.
	var resolved struct {
		Services map[string]*struct {
			Pid     string   `yaml:"pid"`
			Command []string `yaml:"command"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal([]byte(out), &resolved); err != nil {
		t.Fatalf("docker-compose config output: %v\n%s", err, out)
	}
	exp := resolved.Services[exporterService]
	if exp == nil {
		t.Fatalf("no %s service in the resolved config", exporterService)
	}
	if got, _ := (&service{Command: exp.Command}).flag("lock.dir"); got != "/tmp/clawdbot-1000" {
		t.Errorf("resolved --lock.dir = %q, want /tmp/clawdbot-1000", got)
	}
	if exp.Pid != "service:"+pidnsService {
		t.Errorf("resolved pid = %q", exp.Pid)
	}

	// The required variables really are required.
	out, err = run(t, time.Minute, nil, dc, "--env-file", envFile, "-f", composeFile, "config", "-q")
	if err == nil || !strings.Contains(out, "CLAWDBOT_") {
		t.Errorf("docker-compose config without CLAWDBOT_* variables: err=%v, want a missing-variable error\n%s", err, out)
	}
}

// ---- (2) compose-spec rules that docker compose v2 enforces ----

func TestComposeSpec(t *testing.T) { checkComposeSpec(t, composeFile) }

// checkComposeSpec applies the rules to one compose file; its relative
// paths are relative to its directory.
func checkComposeSpec(t *testing.T, composeFile string) {
	doc, root := loadComposeFile(t, composeFile)
	dir := filepath.Dir(composeFile)
	top := root.Content[0]
	for i := 0; i < len(top.Content); i += 2 {
		switch k := top.Content[i].Value; {
		case k == "version":
			t.Errorf("top-level version: is obsolete in the Compose Specification (v2 warns); leave it out")
		case k == "services", k == "volumes", k == "secrets", k == "networks", k == "configs", strings.HasPrefix(k, "x-"):
		default:
			// `name` is valid in v2 but docker-compose v1 rejects it.
			t.Errorf("top-level key %q: not accepted by both docker-compose v1 and docker compose v2", k)
		}
	}

	for name, s := range doc.Services {
		if s.Image == "" && s.Build == nil {
			t.Errorf("service %s: neither image nor build", name)
		}
		for _, v := range s.Volumes {
			m := parseMount(v)
			if m.target == "" || !path.IsAbs(m.target) {
				t.Errorf("service %s: volume %q: target must be an absolute path", name, v)
			}
			if m.mode != "" && m.mode != "ro" && m.mode != "rw" {
				t.Errorf("service %s: volume %q: mode %q", name, v, m.mode)
			}
			if !m.isBind() {
				if _, ok := doc.Volumes[m.source]; !ok {
					t.Errorf("service %s: volume %q is not declared under top-level volumes", name, m.source)
				}
				continue
			}
			// Relative host paths are files of this repository, except
			// the binary that `make build` produces.
			if src := filepath.Join(dir, m.source); strings.HasPrefix(m.source, ".") && src != "../clawdbot_exporter" {
				if _, err := os.Stat(src); err != nil {
					t.Errorf("service %s: bind source %q: %v", name, m.source, err)
				}
			}
		}
		for _, sec := range s.Secrets {
			if _, ok := doc.Secrets[sec]; !ok {
				t.Errorf("service %s: secret %q is not declared under top-level secrets", name, sec)
			}
		}
		for _, d := range s.DependsOn {
			if _, ok := doc.Services[d]; !ok {
				t.Errorf("service %s: depends_on %q: no such service", name, d)
			}
		}
		if s.Healthcheck != nil {
			if len(s.Healthcheck.Test) < 2 || s.Healthcheck.Test[0] != "CMD" {
				t.Errorf("service %s: healthcheck test %q must be a list starting with CMD (exec form, no shell)", name, s.Healthcheck.Test)
			}
		}
		if svc, ok := strings.CutPrefix(s.Pid, "service:"); ok {
			if _, ok := doc.Services[svc]; !ok {
				t.Errorf("service %s: pid %q: no such service", name, s.Pid)
			}
			if !contains(s.DependsOn, svc) {
				t.Errorf("service %s: pid %q: add %s to depends_on (its namespace must exist first)", name, s.Pid, svc)
			}
		}
		lim, dl := s.MemLimit, s.Deploy.Resources.Limits.Memory
		if lim != "" && dl != "" && mustBytes(t, lim) != mustBytes(t, dl) {
			t.Errorf("service %s: mem_limit %s != deploy.resources.limits.memory %s (v2 refuses conflicting values)", name, lim, dl)
		}
	}
	for name, sec := range doc.Secrets {
		if sec == nil || sec.File == "" {
			t.Errorf("secret %s: needs file: (no swarm)", name)
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, sec.File) + ".example"); err != nil {
			t.Errorf("secret %s: no example next to %s: %v", name, sec.File, err)
		}
	}

	// Ports are strings: YAML reads 9090:9090 as a base-60 number in places.
	walkKey(root, "ports", func(n *yaml.Node) {
		for _, p := range n.Content {
			if p.Kind == yaml.ScalarNode && p.Tag != "!!str" {
				t.Errorf("line %d: port %s is %s, want a quoted string", p.Line, p.Value, p.Tag)
			}
			if p.Kind == yaml.ScalarNode && p.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) == 0 {
				t.Errorf("line %d: port %s: quote it", p.Line, p.Value)
			}
		}
	})

	// Every choice commented in one line.
	services := mapValue(top, "services")
	for i := 0; i < len(services.Content); i += 2 {
		checkComments(t, services.Content[i].Value, services.Content[i+1])
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func mustBytes(t *testing.T, s string) int64 {
	t.Helper()
	s = strings.ToLower(s)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		m      int64
	}{{"gb", 1 << 30}, {"mb", 1 << 20}, {"kb", 1 << 10}, {"g", 1 << 30}, {"m", 1 << 20}, {"k", 1 << 10}, {"b", 1}} {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = v, u.m
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("memory %q: %v", s, err)
	}
	return n * mult
}

func mapValue(n *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

func walkKey(n *yaml.Node, key string, f func(*yaml.Node)) {
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				f(n.Content[i+1])
			}
		}
	}
	for _, c := range n.Content {
		walkKey(c, key, f)
	}
}

// checkComments wants a comment on every leaf setting of a service: a
// scalar value, a flow-style collection, or a block-sequence item.
func checkComments(t *testing.T, where string, n *yaml.Node) {
	t.Helper()
	commented := func(ns ...*yaml.Node) bool {
		for _, x := range ns {
			if x.LineComment != "" || x.HeadComment != "" {
				return true
			}
		}
		return false
	}
	leaf := func(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode || n.Style&yaml.FlowStyle != 0 }
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if leaf(v) {
				if !commented(k, v) {
					t.Errorf("%s.%s (line %d): no comment explains this choice", where, k.Value, k.Line)
				}
				continue
			}
			checkComments(t, where+"."+k.Value, v)
		}
	case yaml.SequenceNode:
		for _, item := range n.Content {
			if leaf(item) {
				if !commented(item) {
					t.Errorf("%s[] %q (line %d): no comment explains this choice", where, item.Value, item.Line)
				}
				continue
			}
			checkComments(t, where+"[]", item)
		}
	}
}

// The services fit together: the design the deployment relies on.
func TestComposeWiring(t *testing.T) {
	doc, _ := loadCompose(t)
	gw, exp := doc.Services[gatewayService], doc.Services[exporterService]
	if gw == nil || exp == nil {
		t.Fatalf("services %s and %s are required", gatewayService, exporterService)
	}

	// The gateway service of docs/verified-versions.md#docker-advice.
	if !gw.Init || gw.StopGrace == "" || gw.Restart == "" || gw.MemLimit == "" || gw.Deploy.Resources.Limits.Memory == "" {
		t.Errorf("gateway: want init, stop_grace_period, restart and memory limits (mem_limit for v1, deploy.resources for v2): %+v", gw)
	}
	if gw.ContainerName != gatewayService {
		t.Errorf("gateway container_name = %q, want %q (the docker action names it)", gw.ContainerName, gatewayService)
	}
	bin, ok := gw.mountOf("../clawdbot_exporter")
	if !ok || bin.mode != "ro" {
		t.Errorf("gateway: the exporter binary must be mounted read-only: %+v", bin)
	}
	if hc := gw.Healthcheck; hc == nil || len(hc.Test) < 3 || hc.Test[1] != bin.target || hc.Test[2] != "probe" {
		t.Errorf("gateway healthcheck must run %s probe: %+v", bin.target, hc)
	}

	// The lock directory: one tmpfs volume, the gateway's /tmp, read-only in the exporter.
	gtmp, ok := gw.mountAt("/tmp")
	if !ok || gtmp.isBind() {
		t.Fatalf("gateway: /tmp must be a named volume: %+v", gtmp)
	}
	if v := doc.Volumes[gtmp.source]; v == nil || v.DriverOpts["type"] != "tmpfs" || v.DriverOpts["device"] != "tmpfs" {
		t.Errorf("volume %s must be a tmpfs (driver_opts type/device tmpfs): %+v", gtmp.source, v)
	}
	if etmp, ok := exp.mountAt("/tmp"); !ok || etmp.source != gtmp.source || etmp.mode != "ro" {
		t.Errorf("exporter: %s must be mounted read-only at /tmp: %+v", gtmp.source, etmp)
	}
	if gw.Environment["TMPDIR"] != "/tmp" {
		t.Errorf("gateway TMPDIR = %q, want /tmp", gw.Environment["TMPDIR"])
	}
	lockDir, ok := exp.flag("lock.dir")
	if !ok || !strings.HasPrefix(defaultEnv(lockDir), "/tmp/clawdbot-") {
		t.Errorf("exporter --lock.dir = %q, want /tmp/clawdbot-<uid>", lockDir)
	}
	if uid := strings.Split(defaultEnv(exp.User), ":")[0]; defaultEnv(lockDir) != "/tmp/clawdbot-"+uid {
		t.Errorf("exporter user %q and --lock.dir %q disagree on the gateway's uid", exp.User, lockDir)
	}

	// PID namespace and the gateway's config, at the same path.
	// Both in the namespace clawdbot-pidns holds: a gateway restart must
	// not kill the exporter and its remediation state.
	if exp.Pid != "service:"+pidnsService || gw.Pid != "service:"+pidnsService {
		t.Errorf("exporter pid = %q, gateway pid = %q, want both service:%s", exp.Pid, gw.Pid, pidnsService)
	}
	if p := doc.Services[pidnsService]; p == nil || len(p.Command) != 1 || p.Command[0] != "pause" {
		t.Errorf("%s must run the exporter's pause subcommand", pidnsService)
	}
	gcfg, ok := gw.mountAt("/home/node/.clawdbot")
	ecfg, ok2 := exp.mountAt("/home/node/.clawdbot")
	if !ok || !ok2 || gcfg.source != ecfg.source || ecfg.mode != "ro" {
		t.Errorf("the gateway's config dir must be mounted read-only at the same path in the exporter: %+v %+v", gcfg, ecfg)
	}

	// The Docker socket: only in the exporter, and said why.
	for name, s := range doc.Services {
		if _, ok := s.mountAt("/var/run/docker.sock"); ok && name != exporterService {
			t.Errorf("service %s mounts the Docker socket", name)
		}
	}
	b, _ := os.ReadFile(composeFile)
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, "docker.sock:") && !strings.Contains(line, "docker action") {
			t.Errorf("the Docker socket mount needs a comment saying it is only for the docker action: %s", strings.TrimSpace(line))
		}
	}

	// Remediation token: one secret file shared by the exporter and Alertmanager.
	tok, ok := exp.flag("remediation.token-file")
	sec, found := strings.CutPrefix(tok, "/run/secrets/")
	if !ok || !found || !contains(exp.Secrets, sec) || !contains(doc.Services["alertmanager"].Secrets, sec) {
		t.Errorf("--remediation.token-file %q must be a secret of both the exporter and alertmanager", tok)
	}

	// The exporter image is this repository's Dockerfile.
	if build, ok := exp.Build.(map[string]any); !ok || build["context"] != ".." {
		t.Errorf("exporter build = %v, want context ..", exp.Build)
	}
	for _, img := range []struct{ svc, want string }{
		{gatewayService, "${CLAWDBOT_IMAGE:-clawdbot:local}"},
		{"prometheus", "prom/prometheus"}, {"alertmanager", "prom/alertmanager"}, {"grafana", "grafana/grafana"},
	} {
		if s := doc.Services[img.svc]; s == nil || !strings.HasPrefix(s.Image, img.want) {
			t.Errorf("service %s: image must be %s", img.svc, img.want)
		}
	}
}

// ---- the exporter's config.yml ----

func TestExporterConfig(t *testing.T) {
	doc, _ := loadCompose(t)
	exp := doc.Services[exporterService]
	cfgPath, _ := exp.flag("config.file")
	m, ok := exp.mountAt(cfgPath)
	if !ok {
		t.Fatalf("--config.file %q is not mounted into the exporter", cfgPath)
	}
	b, err := os.ReadFile(m.source)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(b)
	if err != nil {
		t.Fatalf("%s: %v", m.source, err)
	}
	var names []string
	for _, g := range cfg.Gateways {
		names = append(names, g.Name)
		if sec, ok := strings.CutPrefix(g.TokenFile, "/run/secrets/"); g.TokenFile != "" && (!ok || !contains(exp.Secrets, sec)) {
			t.Errorf("gateway %s: token_file %q is not one of the exporter's secrets", g.Name, g.TokenFile)
		}
		if g.ConfigPath != "" {
			if _, ok := exp.mountAt(path.Dir(g.ConfigPath)); !ok {
				t.Errorf("gateway %s: config_path %s: its directory is not mounted into the exporter", g.Name, g.ConfigPath)
			}
		}
		if u, err := url.Parse(g.URL); g.URL != "" && (err != nil || doc.Services[u.Hostname()] == nil) {
			t.Errorf("gateway %s: url %q must name a compose service", g.Name, g.URL)
		}
	}
	if cfg.Remediation == nil || len(cfg.Remediation.Targets) == 0 {
		t.Fatal("config.yml: no remediation targets")
	}
	if err := cfg.Remediation.Validate(names); err != nil {
		t.Fatalf("config.yml remediation: %v", err)
	}
	for _, tg := range cfg.Remediation.Targets {
		if tg.Action.Type != "docker" || tg.Action.Docker == nil {
			t.Errorf("target %s: want the docker action, got %q", tg.Name, tg.Action.Type)
			continue
		}
		if c := strings.TrimPrefix(tg.Action.Docker.Container, "/"); c != doc.Services[gatewayService].ContainerName {
			t.Errorf("target %s: container %q is not the gateway's container_name", tg.Name, c)
		}
		if tg.RemoveStaleLock {
			t.Errorf("target %s: remove_stale_lock needs write access to /tmp, which the exporter mounts read-only", tg.Name)
		}
	}

	// The binary agrees (--config.check), with the secrets and the
	// gateway's config (a minimal clawdbot.json) in a temporary directory.
	exporterConfigCheck(t, exp, cfg, b)
}

// exporterConfigCheck runs --config.check on doc with the exporter's own
// flags (the check applies the exposure rule, which needs the webhook token
// beyond loopback), the secrets and the gateway's config dir (a minimal
// clawdbot.json) moved into a temp dir. It returns the check's output.
func exporterConfigCheck(t *testing.T, exp *service, cfg *config.File, doc []byte) string {
	t.Helper()
	bin := exporterBinary(t)
	dir := t.TempDir()
	s := string(doc)
	for _, g := range cfg.Gateways {
		if g.ConfigPath == "" {
			continue
		}
		home := filepath.Join(dir, g.Name)
		if err := os.MkdirAll(home, 0o700); err != nil {
			t.Fatal(err)
		}
		minimal := `{"gateway":{"mode":"local","port":18789,"bind":"lan","auth":{"mode":"token","token":"T"}}}`
		if err := os.WriteFile(filepath.Join(home, path.Base(g.ConfigPath)), []byte(minimal), 0o600); err != nil {
			t.Fatal(err)
		}
		s = strings.ReplaceAll(s, path.Dir(g.ConfigPath), home)
	}
	for _, sec := range exp.Secrets {
		f := filepath.Join(dir, sec)
		content := "x\n"
		if strings.Contains(sec, "url") {
			content = "https://hooks.slack.com/services/T000/B000/XXXX\n"
		}
		if err := os.WriteFile(f, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		s = strings.ReplaceAll(s, "/run/secrets/"+sec, f)
	}
	if strings.Contains(s, "/run/secrets/") {
		t.Fatalf("the config names a secret the exporter does not have:\n%s", s)
	}
	cf := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cf, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"--config.file=" + cf, "--config.check"}
	if tok, ok := exp.flag("remediation.token-file"); ok {
		args = append(args, "--remediation.token-file="+filepath.Join(dir, strings.TrimPrefix(tok, "/run/secrets/")))
	}
	out, err := run(t, time.Minute, nil, bin, args...)
	if err != nil {
		t.Fatalf("clawdbot_exporter --config.check: %v\n%s", err, out)
	}
	return out
}

// ---- (3) Prometheus, Alertmanager, Grafana ----

func TestPrometheusConfig(t *testing.T) {
	doc, _ := loadCompose(t)
	prom := doc.Services["prometheus"]
	cfgMount, ok := prom.mountAt("/etc/prometheus/prometheus.yml")
	if !ok {
		t.Fatal("prometheus.yml is not mounted at /etc/prometheus/prometheus.yml")
	}
	rules, ok := prom.mountOf("../alerts")
	if !ok {
		t.Fatal("../alerts is not mounted into prometheus")
	}
	b, err := os.ReadFile(cfgMount.source)
	if err != nil {
		t.Fatal(err)
	}
	var pc struct {
		RuleFiles []string `yaml:"rule_files"`
		Alerting  struct {
			Alertmanagers []struct {
				StaticConfigs []struct {
					Targets []string `yaml:"targets"`
				} `yaml:"static_configs"`
			} `yaml:"alertmanagers"`
		} `yaml:"alerting"`
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(b, &pc); err != nil {
		t.Fatalf("%s: %v", cfgMount.source, err)
	}

	// Each rule_files glob lies under the mount and matches the files in ../alerts.
	matched := 0
	for _, rf := range pc.RuleFiles {
		rel, ok := strings.CutPrefix(rf, rules.target+"/")
		if !ok {
			t.Errorf("rule_files %q is not under the rules mount %s", rf, rules.target)
			continue
		}
		files, _ := filepath.Glob(filepath.Join(rules.source, rel))
		matched += len(files)
	}
	all, _ := filepath.Glob(filepath.Join(rules.source, "*.y*ml"))
	if matched == 0 || matched != len(all) {
		t.Errorf("rule_files %v match %d of the %d files in %s", pc.RuleFiles, matched, len(all), rules.source)
	}

	// The job the mixin selects scrapes the exporter service.
	alerts, _ := os.ReadFile(filepath.Join(rules.source, "clawdbot-alerts.yaml"))
	jobRe := regexp.MustCompile(`job=\\?"([^"\\]+)\\?"`)
	jm := jobRe.FindSubmatch(alerts)
	if jm == nil {
		t.Fatal("no job selector in the rendered alerts")
	}
	job, found := string(jm[1]), false
	for _, sc := range pc.ScrapeConfigs {
		if sc.JobName != job {
			continue
		}
		found = true
		for _, s := range sc.StaticConfigs {
			for _, tg := range s.Targets {
				if tg != exporterService+":"+exporterPort {
					t.Errorf("job %s target %q, want %s:%s", job, tg, exporterService, exporterPort)
				}
			}
		}
	}
	if !found {
		t.Errorf("no scrape job %q (the mixin's selector)", job)
	}
	amOK := false
	for _, am := range pc.Alerting.Alertmanagers {
		for _, s := range am.StaticConfigs {
			for _, tg := range s.Targets {
				amOK = amOK || tg == "alertmanager:9093"
			}
		}
	}
	if !amOK {
		t.Error("prometheus.yml does not send alerts to alertmanager:9093")
	}

	// promtool, with the rules where the globs point.
	promtool := need(t, "promtool")
	dir := t.TempDir()
	rdir := filepath.Join(dir, "rules")
	if err := os.Mkdir(rdir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range all {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(rdir, filepath.Base(f)), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	pf := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(pf, bytes.ReplaceAll(b, []byte(rules.target+"/"), []byte(rdir+"/")), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, time.Minute, nil, promtool, "check", "config", pf)
	if err != nil {
		t.Fatalf("promtool check config: %v\n%s", err, out)
	}
	if !strings.Contains(out, fmt.Sprintf("%d rule files found", len(all))) {
		t.Errorf("promtool did not load the %d rule files:\n%s", len(all), out)
	}
}

func TestAlertmanagerConfig(t *testing.T) {
	doc, _ := loadCompose(t)
	am := doc.Services["alertmanager"]
	m, ok := am.mountAt("/etc/alertmanager/alertmanager.yml")
	if !ok {
		t.Fatal("alertmanager.yml is not mounted at /etc/alertmanager/alertmanager.yml")
	}
	b, err := os.ReadFile(m.source)
	if err != nil {
		t.Fatal(err)
	}
	type route struct {
		Receiver string   `yaml:"receiver"`
		Matchers []string `yaml:"matchers"`
		Continue bool     `yaml:"continue"`
	}
	var ac struct {
		Route struct {
			Receiver string  `yaml:"receiver"`
			Routes   []route `yaml:"routes"`
		} `yaml:"route"`
		Receivers []struct {
			Name           string `yaml:"name"`
			WebhookConfigs []struct {
				URL        string `yaml:"url"`
				HTTPConfig struct {
					Authorization struct {
						Type            string `yaml:"type"`
						CredentialsFile string `yaml:"credentials_file"`
					} `yaml:"authorization"`
				} `yaml:"http_config"`
			} `yaml:"webhook_configs"`
		} `yaml:"receivers"`
	}
	if err := yaml.Unmarshal(b, &ac); err != nil {
		t.Fatalf("%s: %v", m.source, err)
	}
	var rem *route
	for i, r := range ac.Route.Routes {
		if contains(r.Matchers, `remediation="restart"`) {
			rem = &ac.Route.Routes[i]
		}
	}
	if rem == nil || !rem.Continue {
		t.Fatalf("want a route matching remediation=\"restart\" with continue: true: %+v", ac.Route.Routes)
	}
	exp := doc.Services[exporterService]
	tokenFile, _ := exp.flag("remediation.token-file")
	for _, r := range ac.Receivers {
		if r.Name != rem.Receiver {
			continue
		}
		if len(r.WebhookConfigs) != 1 {
			t.Fatalf("receiver %s: want one webhook", r.Name)
		}
		w := r.WebhookConfigs[0]
		if w.URL != "http://"+exporterService+":"+exporterPort+"/alertmanager/webhook" {
			t.Errorf("webhook url %q", w.URL)
		}
		if a := w.HTTPConfig.Authorization; a.Type != "Bearer" || a.CredentialsFile != tokenFile {
			t.Errorf("webhook authorization %+v: want Bearer from %s (the exporter's --remediation.token-file)", a, tokenFile)
		}
	}

	amtool := need(t, "amtool")
	if out, err := run(t, time.Minute, nil, amtool, "check-config", m.source); err != nil {
		t.Fatalf("amtool check-config: %v\n%s", err, out)
	}
	for _, tc := range []struct {
		labels []string
		want   string
	}{
		{[]string{"alertname=ClawdbotGatewayDown", "gateway=main", "remediation=restart"}, rem.Receiver + "," + ac.Route.Receiver},
		{[]string{"alertname=ClawdbotLockStale", "gateway=main"}, ac.Route.Receiver},
	} {
		args := append([]string{"config", "routes", "test", "--config.file=" + m.source}, tc.labels...)
		out, err := run(t, time.Minute, nil, amtool, args...)
		if err != nil {
			t.Fatalf("amtool %v: %v\n%s", args, err, out)
		}
		if got := lastLine(out); got != tc.want {
			t.Errorf("alert %v goes to %q, want %q", tc.labels, got, tc.want)
		}
	}
}

// lastLine skips amtool's warnings about --alertmanager.url.
func lastLine(s string) string {
	var last string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "Warning:") {
			last = l
		}
	}
	return last
}

func TestGrafanaProvisioning(t *testing.T) {
	doc, _ := loadCompose(t)
	g := doc.Services["grafana"]
	prov, ok := g.mountAt("/etc/grafana/provisioning")
	if !ok {
		t.Fatal("no provisioning mount")
	}
	dash, ok := g.mountOf("../grafana")
	if !ok {
		t.Fatal("../grafana is not mounted into grafana")
	}

	var ds struct {
		APIVersion  int `yaml:"apiVersion"`
		Datasources []struct {
			Type      string `yaml:"type"`
			URL       string `yaml:"url"`
			IsDefault bool   `yaml:"isDefault"`
		} `yaml:"datasources"`
	}
	readYAML(t, filepath.Join(prov.source, "datasources", "prometheus.yml"), &ds)
	if ds.APIVersion != 1 || len(ds.Datasources) != 1 || ds.Datasources[0].Type != "prometheus" ||
		ds.Datasources[0].URL != "http://prometheus:9090" || !ds.Datasources[0].IsDefault {
		t.Errorf("datasource: %+v", ds)
	}

	var dp struct {
		APIVersion int `yaml:"apiVersion"`
		Providers  []struct {
			Type    string `yaml:"type"`
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	readYAML(t, filepath.Join(prov.source, "dashboards", "clawdbot.yml"), &dp)
	if dp.APIVersion != 1 || len(dp.Providers) != 1 || dp.Providers[0].Type != "file" || dp.Providers[0].Options.Path != dash.target {
		t.Errorf("dashboard provider %+v: want type file, path %s", dp, dash.target)
	}

	files, _ := filepath.Glob(filepath.Join(dash.source, "*.json"))
	if len(files) == 0 {
		t.Fatalf("no dashboards in %s", dash.source)
	}
	for _, f := range files {
		var d struct {
			UID        string `json:"uid"`
			Templating struct {
				List []struct{ Name, Type, Query any } `json:"list"`
			} `json:"templating"`
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(data, &d); err != nil || d.UID == "" {
			t.Errorf("%s: %v, uid %q", f, err, d.UID)
		}
		// The dashboards pick a datasource of type prometheus: the provisioned one is the default.
		for _, v := range d.Templating.List {
			if v.Type == "datasource" && v.Query != "prometheus" {
				t.Errorf("%s: datasource variable of type %v", f, v.Query)
			}
		}
	}
}

func readYAML(t *testing.T, file string, v any) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

// ---- (4) the image ----

var (
	binOnce sync.Once
	binPath string
	binErr  error
	binDir  string
)

// exporterBinary builds a fresh static binary, as `make build` does, into
// a temporary directory (never over ../clawdbot_exporter).
func exporterBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "deploy-test-")
		if binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "clawdbot_exporter")
		cmd := exec.Command("go", "build", "-trimpath", "-tags", "netgo,osusergo",
			"-ldflags", "-s -w -X github.com/prometheus/common/version.Version=deploy-test", "-o", binPath, ".")
		cmd.Dir = ".."
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// The Dockerfile copies what .dockerignore lets through, and nothing else.
func TestDockerignore(t *testing.T) {
	df, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	di, err := os.ReadFile("../.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	var patterns []string
	for _, l := range strings.Split(string(di), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			patterns = append(patterns, l)
		}
	}
	if len(patterns) == 0 || patterns[0] != "*" {
		t.Fatalf(".dockerignore must start with * (exclude everything): %q", patterns)
	}
	allowed := map[string]bool{}
	for _, p := range patterns[1:] {
		name, ok := strings.CutPrefix(p, "!")
		if !ok || strings.ContainsAny(name, "*?[/") {
			t.Errorf(".dockerignore %q: only !<file> exceptions after *", p)
		}
		allowed[name] = true
	}
	copied := map[string]bool{}
	for _, l := range strings.Split(string(df), "\n") {
		f := strings.Fields(l)
		if len(f) >= 3 && (strings.EqualFold(f[0], "COPY") || strings.EqualFold(f[0], "ADD")) {
			for _, src := range f[1 : len(f)-1] {
				if !strings.HasPrefix(src, "--") {
					copied[src] = true
					if !allowed[src] {
						t.Errorf("Dockerfile copies %s, which .dockerignore excludes", src)
					}
				}
			}
		}
	}
	for a := range allowed {
		if !copied[a] {
			t.Errorf(".dockerignore lets %s through but the Dockerfile does not copy it", a)
		}
	}
}

// freeHostAddr is a loopback address nothing listens on, for a container
// on the host network.
func freeHostAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func TestDockerImage(t *testing.T) {
	docker := need(t, "docker")
	env := []string{"DOCKER_BUILDKIT=0"}
	if os.Getenv("DOCKER_API_VERSION") == "" {
		env = append(env, "DOCKER_API_VERSION=1.41") // the newest this Debian daemon speaks; newer CLIs negotiate down anyway
	}
	if out, err := run(t, 30*time.Second, env, docker, "info", "--format", "{{.ServerVersion}}"); err != nil {
		missing(t, "no Docker daemon: %v\n%s", err, out)
	}

	// A context with the fresh binary, LICENSE, and the real Dockerfile and .dockerignore.
	ctxDir := t.TempDir()
	for src, dst := range map[string]string{
		exporterBinary(t): "clawdbot_exporter", "../LICENSE": "LICENSE",
		"../Dockerfile": "Dockerfile", "../.dockerignore": ".dockerignore",
	} {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(ctxDir, dst), data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Something .dockerignore must keep out of the context.
	if err := os.WriteFile(filepath.Join(ctxDir, "junk"), bytes.Repeat([]byte("x"), 8<<20), 0o644); err != nil {
		t.Fatal(err)
	}

	tag := fmt.Sprintf("%s-%d", imageTag, os.Getpid())
	out, err := run(t, 5*time.Minute, env, docker, "build", "--pull=false", "-t", tag, ctxDir)
	if err != nil {
		t.Fatalf("DOCKER_BUILDKIT=0 docker build: %v\n%s", err, out)
	}
	t.Cleanup(func() { _, _ = run(t, time.Minute, env, docker, "rmi", "-f", tag) })
	if m := regexp.MustCompile(`Sending build context to Docker daemon\s+([0-9.]+)([kMG]B)`).FindStringSubmatch(out); m != nil {
		size, _ := strconv.ParseFloat(m[1], 64)
		if m[2] == "GB" || (m[2] == "MB" && size > 40) {
			t.Errorf("build context %s%s: .dockerignore let the junk through", m[1], m[2])
		}
	}

	out, err = run(t, time.Minute, env, docker, "image", "inspect", "--format",
		"{{.Config.User}}|{{json .Config.Entrypoint}}|{{json .Config.ExposedPorts}}|{{json .Config.Healthcheck.Test}}", tag)
	if err != nil {
		t.Fatalf("docker image inspect: %v\n%s", err, out)
	}
	f := strings.Split(strings.TrimSpace(out), "|")
	if len(f) != 4 {
		t.Fatalf("inspect: %q", out)
	}
	if uid := strings.Split(f[0], ":")[0]; uid != "65534" {
		t.Errorf("image user %q, want 65534 (non-root)", f[0])
	}
	if f[1] != `["/bin/clawdbot_exporter"]` {
		t.Errorf("entrypoint %s", f[1])
	}
	if !strings.Contains(f[2], `"9789/tcp"`) {
		t.Errorf("exposed ports %s, want 9789/tcp", f[2])
	}
	var hc []string
	if err := json.Unmarshal([]byte(f[3]), &hc); err != nil || len(hc) < 2 || hc[0] != "CMD" || hc[1] != "/bin/clawdbot_exporter" {
		t.Errorf("healthcheck %s: want [CMD /bin/clawdbot_exporter ...]", f[3])
	}

	out, err = run(t, time.Minute, env, docker, "run", "--rm", "--network=none", tag, "--version")
	if err != nil || !strings.Contains(out, "clawdbot_exporter, version deploy-test") {
		t.Fatalf("docker run %s --version: %v\n%s", tag, err, out)
	}

	// The HEALTHCHECK checks the address the exporter listens on, read from
	// its command line: the default, a non-default one on the host network,
	// and one behind the compose stack's shared PID namespace.
	t.Run("healthcheck", func(t *testing.T) {
		help, _ := run(t, time.Minute, nil, exporterBinary(t), "--help")
		if len(hc) < 3 || !regexp.MustCompile(`(?m)^\s+`+regexp.QuoteMeta(hc[2])+`\b`).MatchString(help) {
			missing(t, "the image's HEALTHCHECK runs `clawdbot_exporter %s`, which this binary does not have yet", strings.Join(hc[2:], " "))
		}
		id := fmt.Sprintf("deploy-test-%d", os.Getpid())
		holder := id + "-holder"
		defer func() { _, _ = run(t, time.Minute, env, docker, "rm", "-f", holder) }()
		if out, err := run(t, time.Minute, env, docker, "run", "-d", "--name", holder, "--network=none", tag, "pause"); err != nil {
			t.Fatalf("docker run: %v\n%s", err, out)
		}
		addr1, addr2 := freeHostAddr(t), freeHostAddr(t)
		for _, c := range []struct {
			name string
			opts []string // docker run's
			args []string // the exporter's
			want string   // in the check's output
		}{
			{"default", []string{"--network=none"}, nil, "pid 1's default :9789"},
			{"non-default address", []string{"--network=host"}, []string{"--web.listen-address=" + addr1}, "http://" + addr1 + "/-/healthy (pid 1's --web.listen-address"},
			{"shared PID namespace", []string{"--network=host", "--pid=container:" + holder}, []string{"--web.listen-address", addr2},
				"http://" + addr2 + "/-/healthy (pid "},
		} {
			t.Run(c.name, func(t *testing.T) {
				name := id + "-" + strings.ReplaceAll(c.name, " ", "-")
				args := append([]string{"run", "-d", "--name", name, "--health-interval=1s", "--health-start-period=1s"}, c.opts...)
				out, err := run(t, time.Minute, env, docker, append(append(args, tag), c.args...)...)
				if err != nil {
					t.Fatalf("docker run: %v\n%s", err, out)
				}
				defer func() { _, _ = run(t, time.Minute, env, docker, "rm", "-f", name) }()
				deadline := time.Now().Add(45 * time.Second)
				var status string
				for time.Now().Before(deadline) {
					out, _ := run(t, 10*time.Second, env, docker, "inspect", "--format", "{{.State.Health.Status}}", name)
					if status = strings.TrimSpace(out); status == "healthy" || status == "unhealthy" {
						break
					}
					time.Sleep(500 * time.Millisecond)
				}
				health, _ := run(t, 10*time.Second, env, docker, "inspect", "--format", "{{json .State.Health}}", name)
				if status != "healthy" {
					logs, _ := run(t, 10*time.Second, env, docker, "logs", name)
					t.Fatalf("container health %q, want healthy\n%s\n%s", status, health, logs)
				}
				// Healthy for the right reason: not another exporter's port.
				var h struct {
					Log []struct {
						ExitCode int
						Output   string
					}
				}
				if err := json.Unmarshal([]byte(health), &h); err != nil || len(h.Log) == 0 {
					t.Fatalf("health %s: %v", health, err)
				}
				if last := h.Log[len(h.Log)-1]; last.ExitCode != 0 || !strings.Contains(last.Output, c.want) {
					t.Errorf("last check: exit %d %q, want %q in it", last.ExitCode, last.Output, c.want)
				}
				if c.name == "shared PID namespace" && strings.Contains(h.Log[len(h.Log)-1].Output, "(pid 1'") {
					t.Errorf("PID 1 is the pause holder, not the exporter: %s", h.Log[len(h.Log)-1].Output)
				}
			})
		}
	})

	// The compose stack's PID namespace: held by a pause container, shared
	// by the gateway and the exporter. A gateway restart must leave the
	// exporter (and its remediation state) running.
	t.Run("pid namespace holder", func(t *testing.T) {
		id := fmt.Sprintf("deploy-pidns-%d", os.Getpid())
		holder, gw, exp := id+"-holder", id+"-gateway", id+"-exporter"
		defer func() { _, _ = run(t, time.Minute, env, docker, "rm", "-f", holder, gw, exp) }()
		for _, c := range [][]string{
			{"--name", holder, tag, "pause"},
			{"--name", gw, "--pid", "container:" + holder, tag, "pause"},
			{"--name", exp, "--pid", "container:" + holder, "--restart", "unless-stopped", tag, "pause"},
		} {
			if out, err := run(t, time.Minute, env, docker, append([]string{"run", "-d", "--network=none"}, c...)...); err != nil {
				t.Fatalf("docker run %v: %v\n%s", c, err, out)
			}
		}
		inspect := func(name string) string {
			out, _ := run(t, 10*time.Second, env, docker, "inspect", "--format", "{{.State.Running}} {{.RestartCount}} {{.State.StartedAt}}", name)
			return strings.TrimSpace(out)
		}
		before := inspect(exp)
		gwBefore := inspect(gw)
		if out, err := run(t, time.Minute, env, docker, "restart", "-t", "2", gw); err != nil {
			t.Fatalf("docker restart: %v\n%s", err, out)
		}
		time.Sleep(time.Second)
		if after := inspect(exp); after != before || !strings.HasPrefix(after, "true 0 ") {
			t.Errorf("the exporter was touched by the gateway's restart: %q -> %q", before, after)
		}
		if gwAfter := inspect(gw); gwAfter == gwBefore {
			t.Errorf("the gateway did not restart: %q", gwAfter)
		}
	})
}
