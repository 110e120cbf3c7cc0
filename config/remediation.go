package config

// The remediation section: which gateway is restarted how, and the safety
// limits around it. remediate acts on what this validates.

import (
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"sync"
	"syscall"
	"time"
)

// Signals are the signals a signal action may send, by name.
var Signals = map[string]syscall.Signal{
	"SIGTERM": syscall.SIGTERM, "SIGKILL": syscall.SIGKILL, "SIGINT": syscall.SIGINT, "SIGHUP": syscall.SIGHUP,
	"SIGQUIT": syscall.SIGQUIT, "SIGUSR1": syscall.SIGUSR1, "SIGUSR2": syscall.SIGUSR2,
}

// Remediation is the remediation section of the exporter's config file.
type Remediation struct {
	// WebhookPath is where Alertmanager posts (default /alertmanager/webhook).
	WebhookPath string              `yaml:"webhook_path"`
	Targets     []RemediationTarget `yaml:"targets"`
}

// RemediationTarget binds one gateway to one action, for the alerts its
// matchers select.
type RemediationTarget struct {
	Name    string `yaml:"name"`
	Gateway string `yaml:"gateway"`
	// Matchers select alerts by exact label values. The target's gateway
	// label is always required too. Default: remediation="restart".
	Matchers map[string]string `yaml:"matchers"`
	Action   ActionSpec        `yaml:"action"`
	// RemoveStaleLock removes the gateway's lock before acting when its
	// owner is dead or reused (never a live owner's).
	RemoveStaleLock bool `yaml:"remove_stale_lock"`
	// Warmup: no action while the gateway process is younger. An explicit
	// 0s turns it off; absent means the default.
	Warmup *Duration `yaml:"warmup"`
	// Cooldown: the least time between two actions (0s: none).
	Cooldown *Duration `yaml:"cooldown"`
	// Breaker: at most MaxActions in Window, then hold off until a person
	// looks.
	Breaker Breaker `yaml:"breaker"`
	// VerifyTimeout: how long to probe for the gateway to come back.
	VerifyTimeout Duration `yaml:"verify_timeout"`
	// Watch, when set, has the exporter probe the gateway on its own
	// schedule and act on its own failures: the single host without
	// Prometheus and Alertmanager.
	Watch *Watch `yaml:"watch"`
	// Notify, when set, tells a person of each action, its outcome and
	// the breaker opening: the host without Alertmanager.
	Notify *Notify `yaml:"notify"`
}

// Watch is the watch loop of one target.
type Watch struct {
	// Interval between the loop's probes (default 30 s).
	Interval Duration `yaml:"interval"`
	// After this many consecutive failures with a restart reason the loop
	// asks for an action (default 3).
	After int `yaml:"after"`
}

// Notify is where a target's notifications go.
type Notify struct {
	// URLFile holds the webhook URL (its token is a secret): re-read when
	// it changes.
	URLFile string `yaml:"url_file"`
	// Format is slack ({"text": …}, the default) or discord
	// ({"content": …}).
	Format string `yaml:"format"`
}

// Breaker is the circuit breaker's limit.
type Breaker struct {
	MaxActions int      `yaml:"max_actions"`
	Window     Duration `yaml:"window"`
}

// ActionSpec is exactly one of the actions. Nothing in it ever comes from an
// alert: commands, units, containers and signals are fixed here.
type ActionSpec struct {
	Type    string       `yaml:"type"` // exec, signal, docker, systemd
	Exec    *ExecSpec    `yaml:"exec"`
	Signal  *SignalSpec  `yaml:"signal"`
	Docker  *DockerSpec  `yaml:"docker"`
	Systemd *SystemdSpec `yaml:"systemd"`
}

// ExecSpec runs an argv without a shell.
type ExecSpec struct {
	Command []string `yaml:"command"`
	Timeout Duration `yaml:"timeout"`
}

// SignalSpec signals the gateway process found by its lock.
type SignalSpec struct {
	Signal string `yaml:"signal"` // SIGTERM (default), SIGKILL, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2
	// KillAfter: SIGKILL a process still alive this long after a
	// terminating signal (default 10 s; a wedged event loop never exits).
	KillAfter Duration `yaml:"kill_after"`
}

// DockerSpec restarts a container through the Docker Engine API.
type DockerSpec struct {
	Container   string   `yaml:"container"`
	Host        string   `yaml:"host"` // default: DOCKER_HOST or the local socket
	StopTimeout Duration `yaml:"stop_timeout"`
}

// SystemdSpec restarts a unit over D-Bus.
type SystemdSpec struct {
	Unit string `yaml:"unit"`
	Bus  string `yaml:"bus"` // user (default) or system
	Mode string `yaml:"mode"`
}

// Duration is a time.Duration written as "5m" in YAML.
type Duration time.Duration

// UnmarshalText parses Go duration syntax.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	if v < 0 {
		return fmt.Errorf("negative duration %s", b)
	}
	*d = Duration(v)
	return nil
}

// D is the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Defaults (issue: real gateways take minutes to boot with plugins).
const (
	DefaultWebhookPath   = "/alertmanager/webhook"
	DefaultWarmup        = 5 * time.Minute
	DefaultCooldown      = 10 * time.Minute
	DefaultBreakerMax    = 3
	DefaultBreakerWindow = time.Hour
	DefaultVerifyTimeout = 2 * time.Minute
	DefaultExecTimeout   = time.Minute
	DefaultWatchInterval = 30 * time.Second
	DefaultWatchAfter    = 3
	// WatchStartingFor is how long a gateway may answer "starting" before
	// the watch loop counts it as failed: the mixin's StartingTooLong
	// period (gatewayStartingFor), which a test keeps equal.
	WatchStartingFor = 15 * time.Minute
	// MinWatchInterval keeps the loop from hammering a gateway.
	MinWatchInterval = time.Second
)

// Notification formats.
const (
	NotifySlack   = "slack"
	NotifyDiscord = "discord"
)

// Compiled on first use: the subcommands that never read a config (probe,
// a health check run every 30 s) do not pay for them at start.
var (
	labelName = lazyRegexp(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
	unitName  = lazyRegexp(`^[a-zA-Z0-9:_.@\\-]+\.(service|target|scope)$`)
	container = lazyRegexp(`^/?[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)
)

func lazyRegexp(expr string) func() *regexp.Regexp {
	return sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(expr) })
}

// Validate fills defaults and checks the section; gateways are the names
// the probe knows.
func (c *Remediation) Validate(gateways []string) error {
	if c.WebhookPath == "" {
		c.WebhookPath = DefaultWebhookPath
	}
	if c.WebhookPath[0] != '/' {
		return fmt.Errorf("remediation.webhook_path %q must start with /", c.WebhookPath)
	}
	known := map[string]bool{}
	for _, g := range gateways {
		known[g] = true
	}
	seen := map[string]bool{}
	for i := range c.Targets {
		t := &c.Targets[i]
		where := fmt.Sprintf("remediation.targets[%d]", i)
		if t.Name == "" {
			return fmt.Errorf("%s: name is required", where)
		}
		if seen[t.Name] {
			return fmt.Errorf("%s: duplicate name %q", where, t.Name)
		}
		seen[t.Name] = true
		where = fmt.Sprintf("remediation target %q", t.Name)
		if !known[t.Gateway] {
			return fmt.Errorf("%s: gateway %q is not one the exporter probes (%v)", where, t.Gateway, gateways)
		}
		if t.Matchers == nil {
			t.Matchers = map[string]string{"remediation": "restart"}
		}
		for k := range t.Matchers {
			if !labelName().MatchString(k) {
				return fmt.Errorf("%s: invalid matcher label %q", where, k)
			}
		}
		if t.Warmup == nil {
			t.Warmup = ptr(Duration(DefaultWarmup))
		}
		if t.Cooldown == nil {
			t.Cooldown = ptr(Duration(DefaultCooldown))
		}
		setDefault(&t.VerifyTimeout, DefaultVerifyTimeout)
		setDefault(&t.Breaker.Window, DefaultBreakerWindow)
		if t.Breaker.MaxActions == 0 {
			t.Breaker.MaxActions = DefaultBreakerMax
		}
		if t.Breaker.MaxActions < 0 {
			return fmt.Errorf("%s: breaker.max_actions must be positive", where)
		}
		if err := t.Action.Validate(); err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		if err := t.Watch.validate(); err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		if err := t.Notify.validate(); err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
	}
	return c.checkOverlaps()
}

func (w *Watch) validate() error {
	if w == nil {
		return nil
	}
	setDefault(&w.Interval, DefaultWatchInterval)
	if w.Interval.D() < MinWatchInterval {
		return fmt.Errorf("watch.interval %v is below %v", w.Interval.D(), MinWatchInterval)
	}
	if w.After == 0 {
		w.After = DefaultWatchAfter
	}
	if w.After < 0 {
		return errors.New("watch.after must be positive")
	}
	return nil
}

func (n *Notify) validate() error {
	if n == nil {
		return nil
	}
	if n.URLFile == "" {
		return errors.New("notify.url_file is required (the webhook URL holds a secret: it is read from a file)")
	}
	switch n.Format {
	case "":
		n.Format = NotifySlack
	case NotifySlack, NotifyDiscord:
	default:
		return fmt.Errorf("notify.format %q must be slack or discord", n.Format)
	}
	return nil
}

func ptr[T any](v T) *T { return &v }

func setDefault(d *Duration, v time.Duration) {
	if *d == 0 {
		*d = Duration(v)
	}
}

// Validate checks one action and fills its defaults.
func (a *ActionSpec) Validate() error {
	set := 0
	for _, p := range []bool{a.Exec != nil, a.Signal != nil, a.Docker != nil, a.Systemd != nil} {
		if p {
			set++
		}
	}
	if set > 1 {
		return errors.New("action: set exactly one of exec, signal, docker, systemd")
	}
	switch a.Type {
	case "exec":
		if a.Exec == nil || len(a.Exec.Command) == 0 {
			return errors.New("action exec: command (an argv list) is required")
		}
		if !filepath.IsAbs(a.Exec.Command[0]) {
			return fmt.Errorf("action exec: command[0] %q must be an absolute path (no PATH lookup, no shell)", a.Exec.Command[0])
		}
		setDefault(&a.Exec.Timeout, DefaultExecTimeout)
	case "signal":
		if a.Signal == nil {
			a.Signal = &SignalSpec{}
		}
		if a.Signal.Signal == "" {
			a.Signal.Signal = "SIGTERM"
		}
		if _, ok := Signals[a.Signal.Signal]; !ok {
			return fmt.Errorf("action signal: unsupported signal %q", a.Signal.Signal)
		}
		setDefault(&a.Signal.KillAfter, 10*time.Second)
	case "docker":
		if a.Docker == nil || !container().MatchString(a.Docker.Container) {
			return errors.New("action docker: container (a name or id) is required")
		}
		setDefault(&a.Docker.StopTimeout, 30*time.Second)
	case "systemd":
		if a.Systemd == nil || !unitName().MatchString(a.Systemd.Unit) {
			return errors.New("action systemd: unit (e.g. clawdbot-gateway.service) is required")
		}
		switch a.Systemd.Bus {
		case "":
			a.Systemd.Bus = "user"
		case "user", "system":
		default:
			return fmt.Errorf("action systemd: bus %q must be user or system", a.Systemd.Bus)
		}
		switch a.Systemd.Mode {
		case "":
			a.Systemd.Mode = "replace"
		case "replace", "fail", "isolate", "ignore-dependencies", "ignore-requirements":
		default:
			return fmt.Errorf("action systemd: mode %q", a.Systemd.Mode)
		}
	case "":
		return errors.New("action: type is required (exec, signal, docker, systemd)")
	default:
		return fmt.Errorf("action: unknown type %q", a.Type)
	}
	return nil
}
