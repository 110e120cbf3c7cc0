package deploy

// Checks of the single-host deployment: single-host/ (the advised stack
// with the exporter's watch mode in place of autoheal, no Prometheus or
// Alertmanager) and the watch-mode files under systemd/. They reuse the
// helpers of deploy_test.go and manifests_test.go.

import (
	"bytes"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/clawdbot-exporter/clawdbot_exporter/config"
)

const (
	singleHostDir     = "single-host"
	singleHostCompose = singleHostDir + "/docker-compose.yml"
	watchConfig       = "clawdbot_exporter-watch.yml"
	watchNotifyDropIn = "clawdbot_exporter.service.d/watch-notify.conf"
)

// singleHostServices are all the services of the single-host stack.
var singleHostServices = []string{pidnsService, gatewayService, exporterService}

// rawServices decodes a compose file's services generically, with what
// legitimately differs between files normalized: relative host paths
// resolved against the file's directory (as compose does), and the
// messages of ${VAR:?message} (they name each stack's env.example).
func rawServices(t *testing.T, file string) (services map[string]map[string]any, volumes map[string]any) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	b = regexp.MustCompile(`\$\{([A-Z_]+):\?[^}]*\}`).ReplaceAll(b, []byte("$${$1:?}"))
	var doc struct {
		Services map[string]map[string]any `yaml:"services"`
		Volumes  map[string]any            `yaml:"volumes"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	dir := filepath.Dir(file)
	for _, s := range doc.Services {
		vols, _ := s["volumes"].([]any)
		for i, v := range vols {
			str, _ := v.(string)
			if m := parseMount(str); strings.HasPrefix(m.source, ".") {
				vols[i] = filepath.Join(dir, m.source) + strings.TrimPrefix(str, m.source)
			}
		}
		if b, ok := s["build"].(map[string]any); ok {
			if c, ok := b["context"].(string); ok {
				b["context"] = filepath.Join(dir, c)
			}
		}
	}
	return doc.Services, doc.Volumes
}

func TestSingleHostComposeSpec(t *testing.T) {
	checkComposeSpec(t, singleHostCompose)
}

// docker-compose resolves the file, and the gateway and its PID namespace
// holder resolve exactly as in the full stack.
func TestSingleHostComposeConfig(t *testing.T) {
	dc := need(t, "docker-compose")
	env, envFile := composeConfigEnv(t)
	resolve := func(file string) map[string]map[string]any {
		out, err := run(t, time.Minute, env, dc, "--env-file", envFile, "-f", file, "config")
		if err != nil {
			t.Fatalf("docker-compose -f %s config: %v\n%s", file, err, out)
		}
		var r struct {
			Services map[string]map[string]any `yaml:"services"`
		}
		if err := yaml.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("docker-compose config output: %v\n%s", err, out)
		}
		return r.Services
	}
	single, full := resolve(singleHostCompose), resolve(composeFile)
	var names []string
	for n := range single {
		names = append(names, n)
	}
	slices.Sort(names)
	if want := slices.Sorted(slices.Values(singleHostServices)); !slices.Equal(names, want) {
		t.Errorf("resolved services %v, want %v", names, want)
	}
	for _, svc := range []string{gatewayService, pidnsService} {
		if !reflect.DeepEqual(single[svc], full[svc]) {
			t.Errorf("resolved service %s differs from %s's:\n%v\n%v", svc, composeFile, single[svc], full[svc])
		}
	}
	exp := single[exporterService]
	var cmd []string
	for _, a := range exp["command"].([]any) {
		cmd = append(cmd, a.(string))
	}
	if got, _ := (&service{Command: cmd}).flag("lock.dir"); got != "/tmp/clawdbot-1000" {
		t.Errorf("resolved --lock.dir = %q, want /tmp/clawdbot-1000", got)
	}

	out, err := run(t, time.Minute, nil, dc, "--env-file", envFile, "-f", singleHostCompose, "config", "-q")
	if err == nil || !strings.Contains(out, "CLAWDBOT_") {
		t.Errorf("docker-compose config without CLAWDBOT_* variables: err=%v, want a missing-variable error\n%s", err, out)
	}
}

func TestSingleHostComposeWiring(t *testing.T) {
	doc, root := loadComposeFile(t, singleHostCompose)
	var names []string
	for n := range doc.Services {
		names = append(names, n)
	}
	slices.Sort(names)
	if want := slices.Sorted(slices.Values(singleHostServices)); !slices.Equal(names, want) {
		t.Fatalf("services %v, want exactly %v (no autoheal, prometheus, alertmanager, grafana)", names, want)
	}
	// No autoheal label either: nothing may restart the gateway behind the exporter's back.
	walkKey(root, "labels", func(n *yaml.Node) {
		if strings.Contains(strings.ToLower(yamlText(t, n)), "autoheal") {
			t.Errorf("line %d: an autoheal label", n.Line)
		}
	})

	// The gateway, its PID namespace holder and the lock volume are the full stack's.
	single, singleVols := rawServices(t, singleHostCompose)
	full, fullVols := rawServices(t, composeFile)
	for _, svc := range []string{gatewayService, pidnsService} {
		if single[svc] == nil || !reflect.DeepEqual(single[svc], full[svc]) {
			t.Errorf("service %s differs from %s's:\n%v\n%v", svc, composeFile, single[svc], full[svc])
		}
	}
	if len(singleVols) != 1 {
		t.Errorf("volumes %v: want only the gateway's /tmp", singleVols)
	}
	if gtmp, _ := doc.Services[gatewayService].mountAt("/tmp"); singleVols[gtmp.source] == nil || !reflect.DeepEqual(singleVols[gtmp.source], fullVols[gtmp.source]) {
		t.Errorf("volume %q differs from %s's: %v, %v", gtmp.source, composeFile, singleVols[gtmp.source], fullVols[gtmp.source])
	}
	// The exporter too, except for its remediation plumbing (secrets, config file).
	se, fe := single[exporterService], full[exporterService]
	for _, k := range []string{"image", "build", "user", "group_add", "pid", "depends_on", "ports", "read_only", "cap_drop",
		"security_opt", "restart", "mem_limit", "deploy"} {
		if !reflect.DeepEqual(se[k], fe[k]) {
			t.Errorf("exporter %s = %v, the full stack's is %v", k, se[k], fe[k])
		}
	}
	full2, _ := loadCompose(t)
	gw, exp, fexp := doc.Services[gatewayService], doc.Services[exporterService], full2.Services[exporterService]
	for _, f := range []string{"lock.dir", "config.file"} {
		a, _ := exp.flag(f)
		b, _ := fexp.flag(f)
		if a != b {
			t.Errorf("exporter --%s=%q, the full stack's is %q", f, a, b)
		}
	}
	for _, target := range []string{"/tmp", "/home/node/.clawdbot"} {
		a, _ := exp.mountAt(target)
		b, _ := fexp.mountAt(target)
		if a != b || a.mode != "ro" {
			t.Errorf("exporter mount at %s = %+v, want the full stack's %+v, read-only", target, a, b)
		}
	}
	if !slices.Equal(exp.Ports, []string{"127.0.0.1:" + exporterPort + ":" + exporterPort}) {
		t.Errorf("exporter ports %v: the status page on the host's loopback only", exp.Ports)
	}
	if gw.ContainerName != gatewayService {
		t.Errorf("gateway container_name = %q", gw.ContainerName)
	}

	// The control token: a secret of the exporter.
	tok, _ := exp.flag("remediation.token-file")
	if sec, ok := strings.CutPrefix(tok, "/run/secrets/"); !ok || !contains(exp.Secrets, sec) {
		t.Errorf("--remediation.token-file %q must be one of the exporter's secrets", tok)
	}

	// The Docker socket: only in the exporter, only with the docker action, and said why.
	cfg := singleHostExporterConfig(t, doc)
	docker := false
	for _, tg := range cfg.Remediation.Targets {
		docker = docker || tg.Action.Type == "docker"
	}
	for name, s := range doc.Services {
		if _, ok := s.mountAt("/var/run/docker.sock"); ok != (docker && name == exporterService) {
			t.Errorf("service %s: Docker socket mounted %v, docker action %v", name, ok, docker)
		}
	}
	b, _ := os.ReadFile(singleHostCompose)
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, "docker.sock:") && !strings.Contains(line, "docker action") {
			t.Errorf("the Docker socket mount needs a comment saying it is only for the docker action: %s", strings.TrimSpace(line))
		}
	}

	// env.example sets every variable the file uses.
	envEx, err := os.ReadFile(filepath.Join(singleHostDir, "env.example"))
	if err != nil {
		t.Fatal(err)
	}
	set := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^([A-Z_]+)=`).FindAllStringSubmatch(string(envEx), -1) {
		set[m[1]] = true
	}
	for _, m := range regexp.MustCompile(`\$\{([A-Z_]+)`).FindAllStringSubmatch(string(b), -1) {
		if !set[m[1]] {
			t.Errorf("${%s} is not in %s/env.example", m[1], singleHostDir)
		}
	}
	// Real secrets and .env stay out of git.
	for _, f := range []string{"secrets/.gitignore", ".gitignore"} {
		if _, err := os.Stat(filepath.Join(singleHostDir, f)); err != nil {
			t.Error(err)
		}
	}
}

func yamlText(t *testing.T, n *yaml.Node) string {
	t.Helper()
	b, err := yaml.Marshal(n)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// singleHostExporterConfig is the exporter's config file, the one the
// compose file mounts at its --config.file, validated.
func singleHostExporterConfig(t *testing.T, doc *composeDoc) *config.File {
	t.Helper()
	b := singleHostConfigBytes(t, doc)
	cfg, err := config.Parse(b)
	if err != nil {
		t.Fatalf("exporter config: %v", err)
	}
	var names []string
	for _, g := range cfg.Gateways {
		names = append(names, g.Name)
	}
	if cfg.Remediation == nil {
		t.Fatal("exporter config: no remediation section")
	}
	if err := cfg.Remediation.Validate(names); err != nil {
		t.Fatalf("exporter config remediation: %v", err)
	}
	return cfg
}

func singleHostConfigBytes(t *testing.T, doc *composeDoc) []byte {
	t.Helper()
	exp := doc.Services[exporterService]
	cfgPath, _ := exp.flag("config.file")
	m, ok := exp.mountAt(cfgPath)
	if !ok || !m.isBind() || m.mode != "ro" {
		t.Fatalf("--config.file %q is not mounted read-only into the exporter: %+v", cfgPath, m)
	}
	b, err := os.ReadFile(filepath.Join(singleHostDir, m.source))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// uncomment turns the commented line starting with prefix (after "# ")
// into a setting, as a person enabling the option does.
func uncomment(t *testing.T, b []byte, prefix string) []byte {
	t.Helper()
	re := regexp.MustCompile(`(?m)^(\s*)# (` + regexp.QuoteMeta(prefix) + `.*)$`)
	if len(re.FindAll(b, -1)) != 1 {
		t.Fatalf("want one commented line starting with %q", prefix)
	}
	return re.ReplaceAll(b, []byte("$1$2"))
}

func TestSingleHostExporterConfig(t *testing.T) {
	doc, _ := loadComposeFile(t, singleHostCompose)
	exp, gw := doc.Services[exporterService], doc.Services[gatewayService]
	cfg := singleHostExporterConfig(t, doc)

	if len(cfg.Gateways) != 1 || len(cfg.Remediation.Targets) != 1 {
		t.Fatalf("want one gateway and one remediation target, got %d and %d", len(cfg.Gateways), len(cfg.Remediation.Targets))
	}
	g, tg := cfg.Gateways[0], cfg.Remediation.Targets[0]
	if sec, ok := strings.CutPrefix(g.TokenFile, "/run/secrets/"); !ok || !contains(exp.Secrets, sec) {
		t.Errorf("token_file %q is not one of the exporter's secrets", g.TokenFile)
	}
	if _, ok := exp.mountAt(path.Dir(g.ConfigPath)); g.ConfigPath != "" && !ok {
		t.Errorf("config_path %s: its directory is not mounted into the exporter", g.ConfigPath)
	}
	if !strings.HasPrefix(g.URL, "ws://"+gatewayService+":") {
		t.Errorf("gateway url %q must name the %s service", g.URL, gatewayService)
	}
	if tg.Gateway != g.Name {
		t.Errorf("target gateway %q, want %q", tg.Gateway, g.Name)
	}
	// Watch mode with the advised cadence: its health check's interval and retries.
	if tg.Watch == nil {
		t.Fatal("the remediation target has no watch: section")
	}
	var hc struct {
		Services map[string]struct {
			Healthcheck struct {
				Interval string `yaml:"interval"`
				Retries  int    `yaml:"retries"`
			} `yaml:"healthcheck"`
		} `yaml:"services"`
	}
	readYAML(t, singleHostCompose, &hc)
	h := hc.Services[gatewayService].Healthcheck
	if iv, err := time.ParseDuration(h.Interval); err != nil || tg.Watch.Interval.D() != iv || tg.Watch.After != h.Retries {
		t.Errorf("watch %v x %d, want the health check's %s x %d", tg.Watch.Interval.D(), tg.Watch.After, h.Interval, h.Retries)
	}
	if tg.Watch.Interval.D() != config.DefaultWatchInterval || tg.Watch.After != config.DefaultWatchAfter {
		t.Errorf("watch %v x %d: the comments say these are the defaults", tg.Watch.Interval.D(), tg.Watch.After)
	}
	if tg.Action.Type != "docker" || tg.Action.Docker == nil || strings.TrimPrefix(tg.Action.Docker.Container, "/") != gw.ContainerName {
		t.Errorf("action %+v: want docker on container %s", tg.Action, gw.ContainerName)
	}
	if tg.RemoveStaleLock {
		t.Error("remove_stale_lock needs write access to /tmp, which the exporter mounts read-only")
	}
	if tg.Notify != nil {
		t.Error("notify is on by default: the stack must run without a webhook URL (autoheal's webhook is optional in the advice)")
	}

	b := singleHostConfigBytes(t, doc)
	withNotify := uncomment(t, b, "notify:")
	cfgN, err := config.Parse(withNotify)
	if err != nil {
		t.Fatalf("config with notify uncommented: %v", err)
	}
	if err := cfgN.Remediation.Validate([]string{g.Name}); err != nil {
		t.Fatalf("config with notify uncommented: %v", err)
	}
	n := cfgN.Remediation.Targets[0].Notify
	if n == nil || n.Format != config.NotifySlack {
		t.Fatalf("uncommented notify %+v: want the slack format", n)
	}
	if sec, ok := strings.CutPrefix(n.URLFile, "/run/secrets/"); !ok || !contains(exp.Secrets, sec) {
		t.Errorf("notify url_file %q is not one of the exporter's secrets", n.URLFile)
	}
	withSignal := uncomment(t, uncomment(t, b, "type: signal"), "signal: {")
	withSignal = regexp.MustCompile(`(?m)^\s*(type: docker|docker: \{).*\n`).ReplaceAll(withSignal, nil)

	// The binary agrees, with the compose's flags, for the file as shipped
	// and with its commented options turned on.
	for _, c := range []struct {
		name string
		doc  []byte
	}{{"as shipped", b}, {"notify", withNotify}, {"signal action", withSignal}} {
		t.Run(c.name, func(t *testing.T) {
			if out := exporterConfigCheck(t, exp, cfg, c.doc); !strings.Contains(out, "OK: 1 gateway(s), 1 remediation target(s)") {
				t.Errorf("--config.check: %s", out)
			}
		})
	}
}

// ---- systemd: watch mode for clawdbot_exporter.service ----

// The watch config is the unit's usual config plus watch (and an optional
// notify): same gateway, same target, same action.
func TestSingleHostSystemdWatchConfig(t *testing.T) {
	parse := func(b []byte) *config.File {
		t.Helper()
		f, err := config.Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, g := range f.Gateways {
			names = append(names, g.Name)
		}
		if f.Remediation == nil {
			t.Fatal("no remediation section")
		}
		if err := f.Remediation.Validate(names); err != nil {
			t.Fatal(err)
		}
		return f
	}
	baseB, err := os.ReadFile(filepath.Join(unitDir, "clawdbot_exporter.yml"))
	if err != nil {
		t.Fatal(err)
	}
	watchB, err := os.ReadFile(filepath.Join(unitDir, watchConfig))
	if err != nil {
		t.Fatal(err)
	}
	base, watch := parse(baseB), parse(watchB)
	if !reflect.DeepEqual(watch.Gateways, base.Gateways) {
		t.Errorf("gateways differ from clawdbot_exporter.yml's:\n%+v\n%+v", watch.Gateways, base.Gateways)
	}
	if len(watch.Remediation.Targets) != 1 {
		t.Fatalf("want one target, got %d", len(watch.Remediation.Targets))
	}
	tg := watch.Remediation.Targets[0]
	if tg.Watch == nil {
		t.Fatal("no watch: section")
	}
	if tg.Notify != nil {
		t.Error("notify is on by default: the unit would not start without the notify-url credential")
	}
	if tg.Action.Type != "systemd" || tg.Action.Systemd == nil || tg.Action.Systemd.Unit != "clawdbot-gateway.service" || tg.Action.Systemd.Bus != "user" {
		t.Errorf("action %+v: want systemd, clawdbot-gateway.service (the user unit here), bus user", tg.Action)
	}
	cp := tg
	cp.Watch, cp.Notify = nil, nil
	if !reflect.DeepEqual(cp, base.Remediation.Targets[0]) {
		t.Errorf("the target differs from clawdbot_exporter.yml's beyond watch and notify:\n%+v\n%+v", cp, base.Remediation.Targets[0])
	}

	// The notify drop-in loads the credential the commented notify line reads.
	d := unitParse(t, filepath.Join(unitDir, watchNotifyDropIn))
	if len(d) != 1 || len(d["Service"]) != 1 || d["Service"][0].key != "LoadCredential" {
		t.Fatalf("%s: want only [Service] LoadCredential=, got %v", watchNotifyDropIn, d)
	}
	id, src, _ := strings.Cut(d["Service"][0].value, ":")
	if !strings.HasPrefix(src, "/etc/clawdbot_exporter/") {
		t.Errorf("LoadCredential source %q: want a file in /etc/clawdbot_exporter", src)
	}
	for _, c := range unitExporterUnit(t).all("Service", "LoadCredential") {
		if bid, _, _ := strings.Cut(c, ":"); bid == id {
			t.Errorf("credential %s is the unit's already", id)
		}
	}
	withNotify := parse(uncomment(t, watchB, "notify:"))
	n := withNotify.Remediation.Targets[0].Notify
	if n == nil || n.URLFile != "/run/credentials/clawdbot_exporter.service/"+id || n.Format != config.NotifySlack {
		t.Errorf("uncommented notify %+v: want url_file /run/credentials/clawdbot_exporter.service/%s, slack", n, id)
	}

	// The binary agrees, with the unit's flags and credentials (the drop-in's too).
	for _, c := range []struct {
		name string
		doc  []byte
	}{{"as shipped", watchB}, {"notify", uncomment(t, watchB, "notify:")}} {
		t.Run(c.name, func(t *testing.T) {
			singleHostUnitConfigCheck(t, c.doc, d)
		})
	}
}

func singleHostUnitConfigCheck(t *testing.T, doc []byte, dropIn unitFile) {
	t.Helper()
	bin := exporterBinary(t)
	u := unitExporterUnit(t)
	argv := unitExecStart(t, u)
	tmp := t.TempDir()
	credDir := filepath.Join(tmp, "credentials")
	if err := os.Mkdir(credDir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, c := range append(u.all("Service", "LoadCredential"), dropIn.all("Service", "LoadCredential")...) {
		id, _, _ := strings.Cut(c, ":")
		content := "test-" + id + "\n"
		if strings.Contains(id, "url") {
			content = "https://discord.com/api/webhooks/0/x\n"
		}
		if err := os.WriteFile(filepath.Join(credDir, id), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	doc = bytes.ReplaceAll(doc, []byte("/run/credentials/clawdbot_exporter.service/"), []byte(credDir+"/"))
	if bytes.Contains(doc, []byte("/run/credentials/")) {
		t.Fatal("the config names another unit's credentials")
	}
	cf := filepath.Join(tmp, "clawdbot_exporter.yml")
	if err := os.WriteFile(cf, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	var args []string
	for _, a := range argv[1:] {
		a = strings.ReplaceAll(a, "${CREDENTIALS_DIRECTORY}", credDir)
		if unitFlagName(a) == "config.file" {
			a = "--config.file=" + cf
		}
		args = append(args, a)
	}
	out, err := unitRun(t, tmp, []string{"HOME=" + tmp}, bin, append(args, "--config.check")...)
	if err != nil {
		t.Fatalf("clawdbot_exporter --config.check: %v\n%s", err, out)
	}
	if !strings.Contains(out, "OK: 1 gateway(s), 1 remediation target(s)") {
		t.Errorf("--config.check: %s", out)
	}
}

// systemd's parser accepts the unit with both drop-ins, as installed for
// watch mode with notifications.
func TestSingleHostSystemdAnalyzeVerify(t *testing.T) {
	analyze := unitNeedTool(t, "systemd-analyze")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	for _, rel := range []string{"clawdbot_exporter.service", "clawdbot_exporter.service.d/remediation-user-bus.conf", watchNotifyDropIn} {
		b, err := os.ReadFile(filepath.Join(unitDir, rel))
		if err != nil {
			t.Fatal(err)
		}
		b = bytes.ReplaceAll(b, []byte("ExecStart=/usr/local/bin/clawdbot_exporter"), []byte("ExecStart="+self))
		dst := filepath.Join(tmp, rel)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	runtimeDir := filepath.Join(tmp, "run")
	if err := os.Mkdir(runtimeDir, 0o700); err != nil {
		t.Fatal(err)
	}
	unit := filepath.Join(tmp, "clawdbot_exporter.service")
	out, err := unitRun(t, tmp, []string{"XDG_RUNTIME_DIR=" + runtimeDir, "SYSTEMD_LOG_COLOR=0"}, analyze, "verify", "--man=no", unit)
	hostNoise := regexp.MustCompile(`Failed to parse system call|Failed to read \$container`)
	var bad []string
	for _, l := range strings.Split(out, "\n") {
		if l = strings.TrimSpace(l); l != "" && !hostNoise.MatchString(l) {
			bad = append(bad, l)
		}
	}
	if err != nil || len(bad) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, strings.Join(bad, "\n"))
	}
	// The drop-ins were read: systemd-analyze cat-config is not offline, so
	// break one and expect verify to say so.
	broken := filepath.Join(tmp, watchNotifyDropIn)
	if err := os.WriteFile(broken, []byte("[Service]\nLoadCredential=notify-url:relative/path\nNoSuchKey=1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _ = unitRun(t, tmp, []string{"XDG_RUNTIME_DIR=" + runtimeDir, "SYSTEMD_LOG_COLOR=0"}, analyze, "verify", "--man=no", unit)
	if !strings.Contains(out, "NoSuchKey") {
		t.Errorf("systemd-analyze verify did not read %s (no complaint about a bad key):\n%s", watchNotifyDropIn, out)
	}
}
