package collector

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/clawdbot-exporter/clawdbot_exporter/gateway"
	"github.com/clawdbot-exporter/clawdbot_exporter/gateway/configfile"
	"github.com/clawdbot-exporter/clawdbot_exporter/gateway/prober"
)

func init() {
	registerCollector("config", true, newConfigCollector)
}

// The config collector reads each gateway's own config file (read-only,
// re-parsed only when it or an $include changed) for settings that make the
// gateway refuse to start or expose it. It sees the file only: a token or
// password the gateway takes from its environment (CLAWDBOT_GATEWAY_TOKEN,
// OPENCLAW_GATEWAY_TOKEN, *_PASSWORD) and a --bind flag are invisible to
// another process, so no metric claims to know them. No metric, label or log
// line carries a secret: the inspection keeps only whether one is set.
var (
	configParseOKDesc = newDesc("config_parse_ok",
		"1 when the gateway's config file and its $include files were read and parsed as JSON5; 0 when the file exists but cannot be read or parsed (the gateway refuses such a file too). Absent for a gateway without a config file.",
		"gateway")
	configModifiedDesc = newDesc("config_last_modified_timestamp_seconds",
		"Modification time of the gateway's config file.", "gateway")
	configInfoDesc = newDesc("config_info",
		"The config file's gateway.bind (loopback when absent, invalid when not a string), auth mode (gateway.auth.mode, else inferred as the gateway does from the secrets in the file: password, token, none; openclaw without either is token, with a token it makes up at start) and tls (gateway.tls.enabled: enabled or disabled). Secrets given to the gateway in its environment are invisible here.",
		"gateway", "bind", "auth_mode", "tls")
	configExposedDesc = newDesc("config_exposed_without_auth",
		"1 when the config file binds the gateway beyond loopback with auth mode none (configured, or inferred because the file sets no token or password); trusted-proxy counts as auth. The gateway refuses to start like that unless its environment supplies a secret, which the exporter cannot see.",
		"gateway")
	configSecretMissingDesc = newDesc("config_auth_secret_missing",
		"1 when the config file's auth mode is token or password but the file sets no secret of that kind (as in a widespread example, docs/verified-versions.md#where-real-gateways-contradict-it: mode password with only a token). clawdbot refuses to start like that unless its environment supplies one.",
		"gateway")
	configUnknownKeyDesc = newDesc("config_unknown_key",
		"1 for each key of the config file that the gateway's strict schema refuses, so that its next start fails (exit 78): checked against the running gateway's own schema (openclaw's config.schema, fetched once per gateway version), else against the known-bad keys (session.historyLimit, reply), which are then 0 when absent. At most 50 keys.",
		"gateway", "key")
	configPresentDesc = newDesc("config_present",
		"1 when the gateway's config file exists; 0 when it is expected (a configured config_path, a profile) but not found, yet: the exporter picks it up when it appears.",
		"gateway")
	configUnknownKeySourceDesc = newDesc("config_schema_info",
		"What the unknown keys were checked against: source=gateway (the running gateway's own schema, with its version) or builtin (the known-bad keys).",
		"gateway", "source", "version")
)

type configCollector struct {
	targets   func() []gateway.Target
	inspector *configfile.Inspector
	prober    *prober.Prober
	logger    *slog.Logger

	mu   sync.Mutex
	last map[string]string // gateway -> last error ("" = ok), to log changes only
}

func newConfigCollector(cfg Config, logger *slog.Logger) (Collector, error) {
	return &configCollector{
		targets:   cfg.targets(),
		inspector: &configfile.Inspector{},
		prober:    cfg.prober(),
		logger:    logger,
		last:      map[string]string{},
	}, nil
}

// Update inspects every gateway's config file. A file that cannot be read or
// parsed is a finding (parse_ok 0), not a failure of the collector.
func (c *configCollector) Update(ctx context.Context, ch chan<- prometheus.Metric) error {
	for _, t := range scrapeTargets(ctx, c.targets) {
		if t.ConfigPath == "" {
			if t.ConfigErr != nil { // a profile without its directory
				ch <- newMetric(configPresentDesc, prometheus.GaugeValue, 0, t.Name)
			}
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if _, err := os.Stat(t.ConfigPath); errors.Is(err, fs.ErrNotExist) {
			c.record(t.Name, t.ConfigPath, nil, err)
			ch <- newMetric(configPresentDesc, prometheus.GaugeValue, 0, t.Name)
			continue
		}
		ch <- newMetric(configPresentDesc, prometheus.GaugeValue, 1, t.Name)
		rep, err := c.inspector.Inspect(t.ConfigPath)
		c.record(t.Name, t.ConfigPath, rep, err)
		exportConfig(ch, t.Name, rep, err, c.prober.ConfigSchema(t))
	}
	return nil
}

func exportConfig(ch chan<- prometheus.Metric, name string, rep *configfile.Report, err error, schema *configfile.Schema) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- newMetric(d, prometheus.GaugeValue, v, append([]string{name}, labels...)...)
	}
	gauge(configParseOKDesc, boolValue(err == nil))
	if rep == nil {
		return
	}
	gauge(configModifiedDesc, float64(rep.ModTime.UnixNano())/1e9)
	if err != nil {
		return
	}
	gauge(configInfoDesc, 1, rep.Bind, rep.AuthMode, onOff(rep.TLS))
	gauge(configExposedDesc, boolValue(rep.ExposedWithoutAuth))
	gauge(configSecretMissingDesc, boolValue(rep.AuthSecretMissing))
	if schema != nil {
		gauge(configUnknownKeySourceDesc, 1, "gateway", schema.Version)
		for _, k := range schema.UnknownKeys(rep) {
			gauge(configUnknownKeyDesc, 1, k)
		}
		return
	}
	gauge(configUnknownKeySourceDesc, 1, "builtin", "")
	present := map[string]bool{}
	for _, k := range rep.UnknownKeys {
		present[k] = true
	}
	for _, k := range configfile.KnownBadKeys() {
		gauge(configUnknownKeyDesc, boolValue(present[k.Key]), k.Key)
	}
}

// record logs when a gateway's config becomes unreadable, recovers or its
// findings change; not on every scrape. The errors name the file and the
// position of a syntax error, never its content.
func (c *configCollector) record(name, path string, rep *configfile.Report, err error) {
	state := ""
	if err != nil {
		state = "error: " + err.Error()
	} else if rep != nil {
		state = fmt.Sprintf("ok %v %t %t", rep.UnknownKeys, rep.ExposedWithoutAuth, rep.AuthSecretMissing)
	}
	c.mu.Lock()
	prev, seen := c.last[name]
	c.last[name] = state
	c.mu.Unlock()
	if seen && prev == state {
		return
	}
	if err != nil {
		c.logger.Warn("gateway config unreadable", "gateway", name, "path", path, "err", err)
		return
	}
	if strings.HasPrefix(prev, "error: ") {
		c.logger.Info("gateway config readable again", "gateway", name, "path", path)
	}
	for _, k := range rep.UnknownKeys {
		c.logger.Warn("gateway config has a key the gateway refuses", "gateway", name, "path", path, "key", k)
	}
	if rep.ExposedWithoutAuth {
		c.logger.Warn("gateway config binds beyond loopback without auth", "gateway", name, "path", path, "bind", rep.Bind)
	}
	if rep.AuthSecretMissing {
		c.logger.Warn("gateway config names an auth mode without its secret", "gateway", name, "path", path, "auth_mode", rep.AuthMode)
	}
}
