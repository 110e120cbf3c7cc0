// Package config owns the exporter's configuration: the YAML file, the
// flags that take part in it, and every rule about them. Load turns them
// into an immutable Snapshot, validated and resolved; the start, the
// --config.check flag and every reload run exactly that, so they agree.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/clawdbot-exporter/clawdbot_exporter/gateway"
	"github.com/clawdbot-exporter/clawdbot_exporter/internal/fileio"
	"github.com/clawdbot-exporter/clawdbot_exporter/internal/secret"
)

// maxSize bounds the file: it is a handful of gateways, not data.
const maxSize = 1 << 20

// File is the YAML document.
type File struct {
	// Gateways to probe. Empty means the single gateway the flags describe.
	Gateways []gateway.Settings `yaml:"gateways"`
	// Remediation is off unless this section names targets.
	Remediation *Remediation `yaml:"remediation"`
	// Modules of the /probe endpoint (modules.go), by name.
	Modules map[string]ModuleSettings `yaml:"modules"`
}

// Sources are the settings that come from elsewhere than the file: flags
// and the process's environment.
type Sources struct {
	// Path is --config.file; empty means none.
	Path string
	// Gateway is the gateway the --gateway.* flags describe; GatewaySet
	// says whether any of them was given.
	Gateway    gateway.Settings
	GatewaySet bool
	// WebhookTokenFile is --remediation.token-file.
	WebhookTokenFile string
	// Web is where the exporter listens, for the exposure rule.
	Web  Web
	Env  gateway.Env
	Home string
}

// Web is what the exposure rule needs of the web flags.
type Web struct {
	ListenAddresses []string
	SystemdSocket   bool
	ConfigFile      string
}

// Snapshot is one loaded configuration. Treat it as read-only: a reload
// makes a new one.
type Snapshot struct {
	// Targets are the gateways to probe, resolved.
	Targets []gateway.Target
	// Problems are gateway files that are missing or unreadable. The
	// exporter runs with them (reports them, picks the files up when they
	// appear); --config.check fails on them.
	Problems []Problem
	// Remediation is validated, with defaults filled; no targets means off.
	Remediation Remediation
	// WebhookToken is the bearer token Alertmanager must send; nil when
	// none is configured. It is re-read when its file changes.
	WebhookToken *secret.File
	// Modules of the /probe endpoint, validated (modules.go).
	Modules map[string]*Module

	file    File
	sources Sources
	watched []fileio.Stamp
}

// Problem is one gateway whose files are not (yet) usable.
type Problem struct {
	Gateway string
	Err     error
}

func (p Problem) String() string { return fmt.Sprintf("gateway %q: %v", p.Gateway, p.Err) }

// Load reads the file (if any) and validates everything. An error means the
// exporter must not start (or a reload must keep the running snapshot).
func Load(src Sources) (*Snapshot, error) {
	var f File
	if src.Path != "" {
		b, err := fileio.ReadFileBounded(src.Path, maxSize)
		if err != nil {
			return nil, fmt.Errorf("config file: %w", err)
		}
		if err := parse(b, &f); errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("config file %s is empty: list gateways or remediation targets, or drop --config.file", src.Path)
		} else if err != nil {
			return nil, fmt.Errorf("config file %s: %w", src.Path, err)
		}
		if len(f.Gateways) > 0 && src.GatewaySet {
			return nil, fmt.Errorf("--config.file lists gateways: set them there, not with --gateway.* flags")
		}
		if len(f.Gateways) == 0 && f.Remediation == nil && len(f.Modules) == 0 {
			return nil, fmt.Errorf("config file %s has neither gateways nor remediation, nor modules", src.Path)
		}
	}
	s := &Snapshot{file: f, sources: src}
	if err := s.resolve(); err != nil {
		return nil, err
	}
	var err error
	if s.Modules, err = resolveModules(f.Modules, src.Home); err != nil {
		return nil, err
	}
	names := make([]string, len(s.Targets))
	for i, t := range s.Targets {
		names[i] = t.Name
	}
	if f.Remediation != nil {
		s.Remediation = *f.Remediation
		s.Remediation.Targets = append([]RemediationTarget(nil), f.Remediation.Targets...)
	}
	if err := s.Remediation.Validate(names); err != nil {
		return nil, err
	}
	if src.WebhookTokenFile != "" {
		tok, err := secret.NewFile(src.WebhookTokenFile)
		if err != nil {
			return nil, fmt.Errorf("remediation token file: %w", err)
		}
		s.WebhookToken = tok
	}
	if len(s.Remediation.Targets) > 0 {
		if err := checkExposure(src.Web, s.WebhookToken != nil); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Parse decodes a document and checks its structure, without resolving
// gateways or reading other files: for tools that check config files
// shipped elsewhere (the deploy assets).
func Parse(b []byte) (*File, error) {
	var f File
	if err := parse(b, &f); err != nil {
		return nil, err
	}
	return &f, nil
}

// parse decodes a document. Unknown keys are errors: a typo must not
// silently fall back to a default.
func parse(b []byte, f *File) error {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(f); errors.Is(err, io.EOF) {
		return err
	} else if err != nil {
		return yamlError(b, err)
	}
	seen := map[string]bool{}
	for i, g := range f.Gateways {
		if g.Name == "" {
			return fmt.Errorf("gateways[%d]: name is required", i)
		}
		if seen[g.Name] {
			return fmt.Errorf("gateways[%d]: duplicate name %q", i, g.Name)
		}
		seen[g.Name] = true
	}
	return nil
}

// yamlError flattens yaml.v3's multi-line type errors into one line, so
// that a logfmt log keeps them readable, and corrects the line of a syntax
// error: yaml.v3 reports the (0-based) line where the enclosing block began,
// not the line of the problem (an indentation error on line 4 came out as
// "line 1").
func yamlError(b []byte, err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		return errors.New(strings.Join(te.Errors, "; "))
	}
	m := yamlSyntax().FindStringSubmatch(err.Error())
	if m == nil {
		return err
	}
	if line := syntaxErrorLine(b, m[2]); line > 0 {
		return fmt.Errorf("yaml: line %d: %s", line, m[2])
	}
	return err
}

var yamlSyntax = lazyRegexp(`^yaml: line (\d+): (.*)$`)

// syntaxErrorLine is the first line n such that the document's first n
// lines fail with the same problem: where the problem is. 0 when there is
// none, or the document is too long to search.
func syntaxErrorLine(b []byte, problem string) int {
	lines := bytes.SplitAfter(b, []byte("\n"))
	if len(lines) > 2000 {
		return 0
	}
	prefix := make([]byte, 0, len(b))
	for i, l := range lines {
		prefix = append(prefix, l...)
		var n yaml.Node
		err := yaml.Unmarshal(prefix, &n)
		if err == nil {
			continue
		}
		if m := yamlSyntax().FindStringSubmatch(err.Error()); m != nil && m[2] == problem {
			return i + 1
		}
	}
	return 0
}

// resolve turns gateway settings into targets and notes which files to
// watch for them.
func (s *Snapshot) resolve() error {
	settings := []gateway.Settings{s.sources.Gateway}
	useEnv := true
	switch {
	case len(s.file.Gateways) > 0:
		settings, useEnv = s.file.Gateways, false
	case len(s.file.Modules) > 0 && s.file.Remediation == nil && !s.sources.GatewaySet:
		// A central prober: its gateways come to /probe from service
		// discovery; it has no local one to probe on /metrics.
		settings = nil
	}
	env := s.sources.Env
	if env == nil {
		env = os.Getenv
	}
	s.Targets, s.Problems, s.watched = nil, nil, nil
	for _, st := range settings {
		t, err := gateway.Resolve(st, env, s.sources.Home, useEnv)
		if err != nil {
			return err
		}
		if t.ConfigErr != nil {
			s.Problems = append(s.Problems, Problem{Gateway: t.Name, Err: t.ConfigErr})
		}
		s.Targets = append(s.Targets, t)
		for _, p := range gateway.WatchPaths(st, env, s.sources.Home, useEnv) {
			s.watched = append(s.watched, fileio.StampOf(p))
		}
	}
	return nil
}

// Check is --config.check: the validation the start runs, plus the gateway
// files, which must exist for a configuration to be called right.
func Check(src Sources) (*Snapshot, error) {
	s, err := Load(src)
	if err != nil {
		return nil, err
	}
	if len(s.Problems) > 0 {
		msgs := make([]string, len(s.Problems))
		for i, p := range s.Problems {
			msgs[i] = p.String()
		}
		return s, errors.New(strings.Join(msgs, "; "))
	}
	return s, nil
}
