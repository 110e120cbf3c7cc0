package collector

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/clawdbot-exporter/clawdbot_exporter/gateway"
	"github.com/clawdbot-exporter/clawdbot_exporter/gateway/configfile"
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
		"The config file's gateway.bind (loopback when absent, invalid when not a string) and auth mode: gateway.auth.mode, else inferred as the gateway does from the secrets in the file (password, token, none). Secrets given to the gateway in its environment are invisible here.",
		"gateway", "bind", "auth_mode")
	configExposedDesc = newDesc("config_exposed_without_auth",
		"1 when the config file binds the gateway beyond loopback with auth mode none (configured, or inferred because the file sets no token or password); trusted-proxy counts as auth. The gateway refuses to start like that unless its environment supplies a secret, which the exporter cannot see.",
		"gateway")
	configSecretMissingDesc = newDesc("config_auth_secret_missing",
		"1 when the config file's auth mode is token or password but the file sets no secret of that kind (as in the stability guide's example: mode password with only a token). clawdbot refuses to start like that unless its environment supplies one.",
		"gateway")
	configUnknownKeyDesc = newDesc("config_unknown_key",
		"1 for each known-bad key in the config file: keys guides recommend that the gateway's strict schema refuses, so that it does not start (session.historyLimit; reply). 0 for the known-bad keys absent.",
		"gateway", "key")
)

type configCollector struct {
	targets   func() []gateway.Target
	inspector *configfile.Inspector
	logger    *slog.Logger

	mu   sync.Mutex
	last map[string]string // gateway -> last error ("" = ok), to log changes only
}

func newConfigCollector(cfg Config, logger *slog.Logger) (Collector, error) {
	return &configCollector{
		targets:   cfg.targets(),
		inspector: &configfile.Inspector{},
		logger:    logger,
		last:      map[string]string{},
	}, nil
}

// Update inspects every gateway's config file. A file that cannot be read or
// parsed is a finding (parse_ok 0), not a failure of the collector.
func (c *configCollector) Update(ctx context.Context, ch chan<- prometheus.Metric) error {
	for _, t := range scrapeTargets(ctx, c.targets) {
		if t.ConfigPath == "" {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rep, err := c.inspector.Inspect(t.ConfigPath)
		c.record(t.Name, t.ConfigPath, rep, err)
		exportConfig(ch, t.Name, rep, err)
	}
	return nil
}

func exportConfig(ch chan<- prometheus.Metric, name string, rep *configfile.Report, err error) {
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
	gauge(configInfoDesc, 1, rep.Bind, rep.AuthMode)
	gauge(configExposedDesc, boolValue(rep.ExposedWithoutAuth))
	gauge(configSecretMissingDesc, boolValue(rep.AuthSecretMissing))
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
