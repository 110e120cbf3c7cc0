// Package config reads the exporter's YAML configuration file.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"gopkg.in/yaml.v3"

	"github.com/clawdbot-exporter/clawdbot_exporter/gateway"
	"github.com/clawdbot-exporter/clawdbot_exporter/remediate"
)

// maxSize bounds the file: it is a handful of gateways, not data.
const maxSize = 1 << 20

// Config is the whole file.
type Config struct {
	// Gateways to probe. Empty means the single gateway the flags describe.
	Gateways []gateway.Settings `yaml:"gateways"`
	// Remediation is off unless this section names targets.
	Remediation *remediate.Config `yaml:"remediation"`
}

// Load reads and validates the file. Unknown keys are errors: a typo must
// not silently fall back to a default.
func Load(path string) (*Config, error) {
	b, err := gateway.ReadFileBounded(path, maxSize)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	cfg, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	return cfg, nil
}

// Parse decodes and validates a config document.
func Parse(b []byte) (*Config, error) {
	cfg := &Config{}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	seen := map[string]bool{}
	for i, g := range cfg.Gateways {
		if g.Name == "" {
			return nil, fmt.Errorf("gateways[%d]: name is required", i)
		}
		if seen[g.Name] {
			return nil, fmt.Errorf("gateways[%d]: duplicate name %q", i, g.Name)
		}
		seen[g.Name] = true
	}
	return cfg, nil
}
