package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/clawdbot-exporter/clawdbot_exporter/gateway"
	"github.com/clawdbot-exporter/clawdbot_exporter/gateway/sessionstore"
)

func init() {
	registerCollector("sessions", true, newSessionsCollector)
}

var (
	sessionLabels      = []string{"gateway", "agent"}
	sessionStoreDesc   = newDesc("session_store_sessions", "Sessions in the agent's store: entries of sessions.json (clawdbot), rows of session_nodes (openclaw).", sessionLabels...)
	sessionBytesDesc   = newDesc("session_store_transcript_bytes", "Total size of the agent's session transcripts (openclaw: uncompressed size of the current windows' events).", sessionLabels...)
	sessionLargestDesc = newDesc("session_store_largest_transcript_bytes",
		"Size of the agent's largest session transcript.", sessionLabels...)
	sessionLinesDesc = newDesc("session_store_largest_transcript_lines",
		"Lines in the agent's largest session transcript: its history length (openclaw: events).", sessionLabels...)
	sessionUpdateDesc = newDesc("session_store_last_update_timestamp_seconds",
		"Newest updatedAt of the agent's sessions.", sessionLabels...)
	sessionErrorsDesc = newDesc("session_store_read_errors",
		"Session files that could not be read or parsed in the last scan.", sessionLabels...)
	sessionInfoDesc = newDesc("session_store_info",
		"The agent's session store: format json (clawdbot's sessions.json) or sqlite (openclaw's openclaw-agent.sqlite).",
		"gateway", "agent", "format")
	sessionFileDesc = newDesc("session_store_file_bytes",
		"Size on disk of the agent's openclaw session store: file database, wal, shm, or archive (the transcript archives in its sessions dir).",
		"gateway", "agent", "file")
	sessionSchemaDesc = newDesc("session_store_schema_version",
		"schema_meta.schema_version of the agent's openclaw session database; a version the exporter does not know is a read error.", sessionLabels...)
	sessionDeniedDesc = newDesc("session_store_permission_denied",
		"1 when the exporter may not read the agent's openclaw session database (0600 files: run it as the gateway's user or root).", sessionLabels...)
	sessionProgressDesc = newDesc("session_store_scan_progress_ratio",
		"Share done of the running read of the agent's openclaw session database; 1 when none runs. While the first read runs, no session numbers are exported.",
		sessionLabels...)
)

type sessionsTarget struct {
	name, stateDir string
	scanner        *sessionstore.Scanner
}

// sessionsCollector reads the session stores in each gateway's state
// directory: clawdbot's sessions.json and transcripts, openclaw's SQLite
// database (read-only, in the background when a read outlasts the scrape).
type sessionsCollector struct {
	targets func() []gateway.Target
	logger  *slog.Logger

	mu sync.Mutex
	// scanners keep what they read per state directory, across scrapes.
	scanners map[string]*sessionstore.Scanner
}

func newSessionsCollector(cfg Config, logger *slog.Logger) (Collector, error) {
	return &sessionsCollector{logger: logger, targets: cfg.targets(), scanners: map[string]*sessionstore.Scanner{}}, nil
}

// stores are the scrape's state directories, each with its scanner. The
// scanners of gateways no longer configured are closed (each holds an
// inotify instance, of which a user has 128 by default).
func (c *sessionsCollector) stores(ctx context.Context) []sessionsTarget {
	c.mu.Lock()
	var out []sessionsTarget
	keep := map[string]bool{}
	for _, t := range scrapeTargets(ctx, c.targets) {
		if t.StateDir == "" {
			continue
		}
		key := t.Name + "\x00" + t.StateDir
		keep[key] = true
		s := c.scanners[key]
		if s == nil {
			s = sessionstore.NewScanner()
			s.SetLogger(c.logger)
			c.scanners[key] = s
		}
		out = append(out, sessionsTarget{name: t.Name, stateDir: t.StateDir, scanner: s})
	}
	var gone []*sessionstore.Scanner
	for key, s := range c.scanners {
		if !keep[key] {
			gone = append(gone, s)
			delete(c.scanners, key)
		}
	}
	c.mu.Unlock()
	// Close waits for a scan of another scrape that still runs.
	for _, s := range gone {
		_ = s.Close()
	}
	return out
}

// Update scans every gateway's state directory concurrently. A scan cut
// short by the deadline exports nothing for its gateway: partial sums would
// look like shrinking stores. What it read is kept for the next scrape.
func (c *sessionsCollector) Update(ctx context.Context, ch chan<- prometheus.Metric) error {
	var (
		g    safeGroup
		mu   sync.Mutex
		errs []error
	)
	for _, t := range c.stores(ctx) {
		g.Go(func() {
			agents, err := t.scanner.Scan(ctx, t.stateDir)
			if err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("gateway %s: scanning %s: %w", t.name, t.stateDir, err))
				mu.Unlock()
				return
			}
			for _, a := range agents {
				if a.Errors > 0 {
					c.logger.Debug("unreadable session files", "gateway", t.name, "agent", a.Agent, "format", a.Format, "errors", a.Errors)
				}
				exportAgentSessions(ch, t.name, a)
			}
		})
	}
	err := g.Wait()
	return errors.Join(append(errs, err)...)
}

func exportAgentSessions(ch chan<- prometheus.Metric, gw string, a sessionstore.AgentSessions) {
	// Agent ids are directory names: newMetric makes them valid labels.
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- newMetric(d, prometheus.GaugeValue, v, gw, a.Agent)
	}
	format := a.Format
	if format == "" {
		format = "json"
	}
	ch <- newMetric(sessionInfoDesc, prometheus.GaugeValue, 1, gw, a.Agent, format)
	if !a.NoCounts {
		gauge(sessionStoreDesc, float64(a.Sessions))
		gauge(sessionBytesDesc, float64(a.TranscriptBytes))
		gauge(sessionLargestDesc, float64(a.LargestBytes))
		gauge(sessionLinesDesc, float64(a.LargestLines))
		if !a.LastUpdate.IsZero() {
			gauge(sessionUpdateDesc, float64(a.LastUpdate.UnixMilli())/1000)
		}
	}
	gauge(sessionErrorsDesc, float64(a.Errors))
	if a.Format != "sqlite" {
		return
	}
	gauge(sessionDeniedDesc, boolValue(a.PermissionDenied))
	gauge(sessionProgressDesc, a.Progress)
	if a.SchemaVersion > 0 {
		gauge(sessionSchemaDesc, float64(a.SchemaVersion))
	}
	if f := a.Files; f != nil {
		file := func(name string, have bool, v int64) {
			if have {
				ch <- newMetric(sessionFileDesc, prometheus.GaugeValue, float64(v), gw, a.Agent, name)
			}
		}
		file("database", f.HaveDatabase, f.Database)
		file("wal", f.HaveWAL, f.WAL)
		file("shm", f.HaveSHM, f.SHM)
		file("archive", f.HaveArc, f.Archive)
	}
}
