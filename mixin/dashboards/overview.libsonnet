// Clawdbot / Overview: is each gateway up, and if not why; how fast it
// answers; restarts; its lock; its memory against the limit; channels;
// sessions; remediation.
local d = import '../lib/dashboard.libsonnet';
local common = import 'common.libsonnet';

{
  new(cfg)::
    local c = common.new(cfg);
    local s = c.sel;
    local q(expr) = expr % { s: s, e: c.exporterSel };

    // Thresholds shared with the alerts, when config.libsonnet has them.
    local cfgGet(k, default) = std.get(cfg, k, default);
    local restartsWindow = cfgGet('restartsWindow', '1h');
    local restartsThreshold = cfgGet('restartsThreshold', 3);
    local probeSlowSeconds = cfgGet('probeSlowThresholdSeconds', 1);
    local memoryRatio = cfgGet('memoryLimitRatioThreshold', 0.85);
    local growthWindow = cfgGet('memoryGrowthWindow', '6h');
    local growthHours = cfgGet('memoryGrowthHorizonHours', 4);
    local historyLines = cfgGet('sessionHistoryLinesThreshold', 2000);
    local sessionGrowthWindow = cfgGet('sessionGrowthWindow', '6h');
    local sessionGrowthPerDay = cfgGet('sessionGrowthBytesPerDayThreshold', 100 * 1024 * 1024);
    local remediationEnabled = cfgGet('remediationPanelsEnabled', true);
    // The remediation webhook's series (they have a target, no gateway label).
    // Like every query, filtered by the variables only (the selector is in
    // the Job variable).
    local r = c.exporterSel;

    local upDown = { '0': ['DOWN', 'red'], '1': ['UP', 'green'] };
    local noYes = { '0': ['no', 'red'], '1': ['yes', 'green'] };
    local thresholdLine = { fieldConfig+: { defaults+: { custom+: { thresholdsStyle: { mode: 'dashed' } } } } };

    // Probe result as one value per gateway: 0 up, else the failure reason's
    // code, so that a state timeline shows one row per gateway.
    local reasons = [
      ['dial', 'red'],
      ['timeout', 'red'],
      ['tls', 'purple'],
      ['upgrade', 'purple'],
      ['auth', 'purple'],
      ['protocol', 'purple'],
      ['closed', 'red'],
      ['rpc', 'red'],
      ['bad_frame', 'red'],
      ['starting', 'blue'],
      ['unhealthy', 'orange'],
    ];
    local probeResult = q('max by (job, instance, gateway) (\n  (clawdbot_up{%(s)s} == 1) * 0\n') + std.join('', [
      '  or (clawdbot_probe_failing{%s, reason="%s"} == 1) * %d\n' % [s, reasons[i][0], i + 1]
      for i in std.range(0, std.length(reasons) - 1)
    ]) + '  or (clawdbot_probe_failing{%s, reason!~"%s"} == 1) * 99\n)' % [s, std.join('|', [x[0] for x in reasons])];
    local probeResultMappings = { '0': ['up', 'green'], '99': ['other failure', 'red'] } + {
      ['%d' % (i + 1)]: reasons[i]
      for i in std.range(0, std.length(reasons) - 1)
    };

    // Restarts: the process start time changes (a local gateway whose process
    // the exporter finds), else the uptime the gateway reports drops.
    local restarts(window) = q('changes(clawdbot_process_start_time_seconds{%(s)s}[' + window + '])\n  or resets(clawdbot_gateway_uptime_seconds{%(s)s}[' + window + '])');
    // The recording rules (rules/rules.libsonnet) the alerts use too.
    local restartsRecorded = q('instance_gateway:clawdbot_restarts:changes%s{%%(s)s}' % restartsWindow);

    local lockState = c.lockState;
    local lockStateMappings = c.lockStateMappings;

    local rssRatio = q('instance_gateway:clawdbot_process_tree_resident_memory_bytes_per_cgroup_limit:ratio{%(s)s}');

    local rows = [
      d.row('Summary', [
        d.stat('Gateways up', 'Gateways whose last probe completed the WebSocket handshake and whose health RPC answered ok:true (clawdbot_up).', 'none', [
          d.target(q('sum(clawdbot_up{%(s)s})')),
        ], w=4),
        d.stat('Gateways down', 'Gateways whose last probe failed (clawdbot_up 0, including gateways still starting); "no exporter up" when Prometheus scrapes no exporter of the selected jobs, so nothing is known (not 0). The Gateway status table says why.', 'none', [
          d.target(q('(count(clawdbot_up{%(s)s} == 0) or vector(0))\n  unless on () absent(up{%(e)s} == 1)\nor on ()\nabsent(up{%(e)s} == 1) * -1')),
        ], w=4) + d.thresholds([['green', null], ['red', 1]]) + d.mappings({ '-1': ['no exporter up', 'red'] }),
        d.stat('Stale locks', 'Gateway locks whose owner is dead or whose pid was reused (clawdbot_lock_stale). A stale lock can keep a gateway from starting; clawdbot_exporter locks --remove-stale removes it.', 'none', [
          d.target(q('sum(clawdbot_lock_stale{%(s)s}) or vector(0)')),
        ], w=4) + d.thresholds([['green', null], ['red', 1]]),
        d.stat('Restarts in range', 'Gateway restarts within the selected time range, summed over the selected gateways: changes of the process start time, or drops of the reported uptime for gateways whose process the exporter cannot see.', 'none', [
          d.target('sum(' + restarts('$__range') + ') or vector(0)'),
        ], w=4) + d.thresholds([['green', null], ['yellow', 1], ['red', restartsThreshold]]),
        d.stat('Highest RSS / cgroup limit', "The largest ratio of a gateway process's resident memory to its cgroup memory limit. Empty when no limit is known (no cgroup limit, or the process is not visible to the exporter).", 'percentunit', [
          d.target('max(' + rssRatio + ')'),
        ], w=4) + d.thresholds([['green', null], ['yellow', memoryRatio * 0.8], ['red', memoryRatio]]) + d.noValue('no limit'),
        d.stat('Sessions', "Sessions in the agents' session stores, as the gateways report them in their health payload (clawdbot_agent_sessions), summed.", 'none', [
          d.target(q('sum(clawdbot_agent_sessions{%(s)s})')),
        ], w=4, graph=true) + d.thresholds([['blue', null]]),
      ]),

      d.row('Gateways: up or down, and why', [
        d.table('Gateway status', 'One row per gateway: UP or DOWN with the reason the last probe failed (dial, timeout, tls, upgrade, auth, protocol, closed, rpc, bad_frame, starting, unhealthy; ok when up), the uptime the gateway reports and its product and version.', 'none', [
          d.instantTarget(q('clawdbot_up{%(s)s}\n  * on(job, instance, gateway) group_left(reason)\nmax by (job, instance, gateway, reason) (\n  label_replace(clawdbot_up{%(s)s} == 1, "reason", "ok", "", "")\n  or clawdbot_probe_failing{%(s)s} == 1\n)')),
          d.instantTarget(q('max by (job, instance, gateway) (clawdbot_gateway_uptime_seconds{%(s)s})')),
          d.instantTarget(q('max by (job, instance, gateway, product, protocol, version) (clawdbot_gateway_info{%(s)s})')),
        ], w=12, h=8, hide=['Value #C'], rename={
          gateway: 'Gateway',
          instance: 'Instance',
          job: 'Job',
          reason: 'Reason',
          product: 'Product',
          protocol: 'Protocol',
          version: 'Version',
          'Value #A': 'State',
          'Value #B': 'Uptime',
        })
        + d.overrideName('State', { mappings: d.mappingsProperty(upDown), 'custom.cellOptions': { type: 'color-background' } })
        + d.overrideName('Uptime', { unit: 's' }),
        d.stateTimeline('Probe result', 'The result of each probe over time, one row per gateway: up, or the reason it failed (clawdbot_probe_failing). starting means the gateway is booting; tls, upgrade, auth and protocol mean the exporter and the gateway disagree, which a restart does not fix.', 'none', [
          d.target(probeResult, '{{gateway}} on {{instance}}'),
        ], w=12, h=8) + d.mappings(probeResultMappings),
        d.timeseries('Failed probes by reason', 'Failed probes per second, by gateway and reason (rate of clawdbot_probe_failures_total). One probe per scrape: at a 15 s scrape interval, a gateway that fails every probe shows 0.067/s.', 'ops', [
          d.target(q('sum by (job, instance, gateway, reason) (rate(clawdbot_probe_failures_total{%(s)s}[$__rate_interval]))'), '{{gateway}}: {{reason}}'),
        ], bars=true, stack=true),
        d.stateTimeline('Exporter scrape', 'Whether Prometheus scrapes each exporter (up): while it cannot, nothing about its gateways is known and no gateway alert can fire (ClawdbotExporterDown, ClawdbotExporterAbsent).', 'none', [
          d.target(q('up{%(e)s}'), '{{instance}}'),
        ]) + d.mappings({ '0': ['DOWN', 'red'], '1': ['UP', 'green'] }),
        d.stateTimeline('Health and readiness', "The health payload's ok flag (clawdbot_health_ok) and, for openclaw, whether GET /readyz answered ready (clawdbot_http_ready).", 'none', [
          d.target(q('clawdbot_health_ok{%(s)s}'), '{{gateway}} health'),
          d.target(q('clawdbot_http_ready{%(s)s}'), '{{gateway}} /readyz'),
        ]) + d.mappings(noYes),
      ]),

      d.row('Probe latency', [
        d.timeseries('Probe duration by phase', 'Time spent in each phase of the last probe (clawdbot_probe_duration_seconds): connect, upgrade, challenge, hello, health. In a failed probe the failing phase shows the time until the failure. The dashed line is the threshold of the slow-probe alert.', 's', [
          d.target(q('clawdbot_probe_duration_seconds{%(s)s}'), '{{gateway}} {{phase}}'),
        ]) + d.thresholds([['green', null], ['red', probeSlowSeconds]]) + thresholdLine,
        d.timeseries('Total probe duration', 'Time the whole probe took, the sum of its phases, per gateway.', 's', [
          d.target(q('instance_gateway:clawdbot_probe_duration_seconds:sum{%(s)s}'), '{{gateway}} on {{instance}}'),
        ]),
      ]),

      d.row('Uptime and restarts', [
        d.timeseries('Uptime', 'How long each gateway process has been running, as the gateway reports it (clawdbot_gateway_uptime_seconds). A drop to zero is a restart.', 's', [
          d.target(q('clawdbot_gateway_uptime_seconds{%(s)s}'), '{{gateway}} on {{instance}}'),
        ]),
        d.timeseries('Restarts in the last %s' % restartsWindow, 'Restarts within a sliding window of %s: changes of clawdbot_process_start_time_seconds, else resets of the reported uptime. The dashed line is the threshold of the restart alert.' % restartsWindow, 'none', [
          d.target(restartsRecorded, '{{gateway}} on {{instance}}'),
        ]) + d.thresholds([['green', null], ['red', restartsThreshold]]) + thresholdLine,
      ]),

      d.row('Lock', [
        d.stateTimeline('Lock owner state', 'One row per lock file: alive (the pid runs with the start time the lock records), dead, reused (the pid now belongs to another process), unknown (unreadable or garbage), or no lock at the path a configured gateway would use. dead and reused are stale locks.', 'none', [
          d.target(lockState, '{{gateway}}: {{path}}'),
        ]) + d.mappings(lockStateMappings),
        d.timeseries('Lock age', 'Age of each lock file, from its createdAt, else its mtime (clawdbot_lock_age_seconds). A lock older than its gateway uptime belongs to an earlier process.', 's', [
          d.target(q('clawdbot_lock_age_seconds{%(s)s}'), '{{gateway}}: {{path}}'),
        ]),
      ]),

      d.row('Memory', [
        d.timeseries('Resident memory and its limit', 'Resident memory of each gateway process (clawdbot_process_resident_memory_bytes), its cgroup memory limit (dashed red) and where the linear trend over %s puts it in %s hours (dashed orange).' % [growthWindow, growthHours], 'bytes', [
          d.target(q('clawdbot_process_resident_memory_bytes{%(s)s}'), '{{gateway}} RSS'),
          d.target(q('clawdbot_process_memory_limit_bytes{%(s)s, kind="cgroup"}'), '{{gateway}} cgroup limit'),
          d.target(q('predict_linear(clawdbot_process_resident_memory_bytes{%(s)s}[' + growthWindow + '], ' + growthHours + ' * 3600)'), '{{gateway}} RSS in %s h' % growthHours),
        ], fill=0) + d.limitLine('B') + d.limitLine('C', 'orange'),
        d.timeseries('RSS against the cgroup limit', 'Resident memory as a share of the cgroup memory limit. The dashed line is the threshold of the memory alert. Empty when the exporter knows no cgroup limit: the v8_heap limit (--max-old-space-size) caps only the V8 heap, not RSS.', 'percentunit', [
          d.target(rssRatio, '{{gateway}} on {{instance}}'),
        ], min=0) + d.thresholds([['green', null], ['red', memoryRatio]]) + thresholdLine,
        d.timeseries('RSS growth rate', 'How fast resident memory grows: the slope of RSS over %s (deriv), in bytes per second (1 MiB an hour is 291 B/s). A gateway that keeps growing leaks, for example through unbounded session history.' % growthWindow, 'binBps', [
          d.target(q('instance_gateway:clawdbot_process_resident_memory_bytes:deriv%s{%%(s)s}' % growthWindow), '{{gateway}} on {{instance}}'),
        ]),
        d.timeseries('Anonymous and file-backed memory', 'Resident memory split into anonymous memory (heap and other allocations) and file-backed memory (mapped files and libraries).', 'bytes', [
          d.target(q('clawdbot_process_resident_memory_anon_bytes{%(s)s}'), '{{gateway}} anon'),
          d.target(q('clawdbot_process_resident_memory_file_bytes{%(s)s}'), '{{gateway}} file'),
        ], stack=true),
      ]),

      d.row('Channels', [
        d.stateTimeline('Channel running', 'Whether the gateway reports each channel account running (clawdbot_channel_running).', 'none', [
          d.target(q('clawdbot_channel_running{%(s)s}'), '{{gateway}} {{channel}}/{{account}}'),
        ]) + d.mappings({ '0': ['stopped', 'red'], '1': ['running', 'green'] }),
        d.stateTimeline('Channel probe', "Whether the gateway's last probe of each channel account succeeded (clawdbot_channel_probe_ok); absent for accounts it has not probed.", 'none', [
          d.target(q('clawdbot_channel_probe_ok{%(s)s}'), '{{gateway}} {{channel}}/{{account}}'),
        ]) + d.mappings({ '0': ['failing', 'red'], '1': ['ok', 'green'] }),
        d.table('Channel accounts', 'Each channel account: configured, enabled, running and its last probe, where the gateway reports them (clawdbot_channel_*). A configured and enabled account that does not run or whose probe fails needs attention.', 'none', [
          d.instantTarget(q('max by (job, instance, gateway, channel, account) (clawdbot_channel_configured{%(s)s})')),
          d.instantTarget(q('max by (job, instance, gateway, channel, account) (clawdbot_channel_enabled{%(s)s})')),
          d.instantTarget(q('max by (job, instance, gateway, channel, account) (clawdbot_channel_running{%(s)s})')),
          d.instantTarget(q('max by (job, instance, gateway, channel, account) (clawdbot_channel_probe_ok{%(s)s})')),
        ], h=6, rename={
          gateway: 'Gateway',
          instance: 'Instance',
          job: 'Job',
          channel: 'Channel',
          account: 'Account',
          'Value #A': 'Configured',
          'Value #B': 'Enabled',
          'Value #C': 'Running',
          'Value #D': 'Probe ok',
        }) + d.mappings(noYes),
      ]),

      d.row('Sessions', [
        d.timeseries('Sessions per agent', "Sessions per agent: as the gateway reports them (clawdbot_agent_sessions) and as the exporter counts them in the agent's sessions.json (clawdbot_session_store_sessions).", 'none', [
          d.target(q('clawdbot_agent_sessions{%(s)s}'), '{{gateway}}/{{agent}}'),
          d.target(q('clawdbot_session_store_sessions{%(s)s}'), '{{gateway}}/{{agent}} in sessions.json'),
        ]),
        d.timeseries('Transcript size', "Total size of each agent's session transcripts and the size of its largest transcript (clawdbot_session_store_*). Session history that is never pruned grows the gateway's memory with it.", 'bytes', [
          d.target(q('clawdbot_session_store_transcript_bytes{%(s)s}'), '{{gateway}}/{{agent}} total'),
          d.target(q('clawdbot_session_store_largest_transcript_bytes{%(s)s}'), '{{gateway}}/{{agent}} largest'),
        ]),
        d.timeseries('Transcript growth rate', 'How fast the transcripts grow: the slope of their total size over %s, in bytes per second. The dashed line is the threshold of the session growth alert (%d MiB a day).' % [sessionGrowthWindow, sessionGrowthPerDay / 1048576], 'binBps', [
          d.target(q('instance_gateway_agent:clawdbot_session_store_transcript_bytes:deriv%s{%%(s)s}' % sessionGrowthWindow), '{{gateway}}/{{agent}}'),
        ]) + d.thresholds([['green', null], ['red', sessionGrowthPerDay / 86400]]) + thresholdLine,
        d.timeseries('Longest session history', "Lines in each agent's largest session transcript: the length of its history (clawdbot_session_store_largest_transcript_lines). The dashed line is the threshold of the large-session alert.", 'none', [
          d.target(q('clawdbot_session_store_largest_transcript_lines{%(s)s}'), '{{gateway}}/{{agent}}'),
        ]) + d.thresholds([['green', null], ['red', historyLines]]) + thresholdLine,
        d.timeseries('Time since last activity', "Time since each agent's most recently updated session was updated (clawdbot_agent_last_activity_age_seconds).", 's', [
          d.target(q('clawdbot_agent_last_activity_age_seconds{%(s)s}'), '{{gateway}}/{{agent}}'),
        ]),
        d.timeseries('Session read errors', 'Session files the exporter could not read or parse in its last scan (clawdbot_session_store_read_errors).', 'none', [
          d.target(q('clawdbot_session_store_read_errors{%(s)s}'), '{{gateway}}/{{agent}}'),
        ]),
      ]),
    ] + (if remediationEnabled then [
           d.row('Remediation', [
             // Per exporter (job, instance) and target: two exporters may
             // each have a target of the same name.
             d.timeseries('Remediation actions', 'Actions the remediation webhook took per second, by exporter, target, action and result (rate of clawdbot_remediation_actions_total).', 'ops', [
               d.target('sum by (job, instance, target, action, result) (rate(clawdbot_remediation_actions_total{%s}[$__rate_interval]))' % r, '{{instance}} {{target}} {{action}} {{result}}'),
             ], bars=true, stack=true),
             d.timeseries('Remediation held back', 'Alerts the remediation webhook did not act on per second, by exporter, target and reason: duplicate, cooldown, breaker, grace, resolved, unmatched, dry_run, busy (rate of clawdbot_remediation_skipped_total).', 'ops', [
               d.target('sum by (job, instance, target, reason) (rate(clawdbot_remediation_skipped_total{%s}[$__rate_interval]))' % r, '{{instance}} {{target}} {{reason}}'),
             ], bars=true, stack=true),
             d.stateTimeline('Circuit breaker', 'Whether the circuit breaker of each remediation target is open (clawdbot_remediation_breaker_open): after too many restarts the webhook stops acting and leaves the gateway to a person.', 'none', [
               d.target('clawdbot_remediation_breaker_open{%s}' % r, '{{instance}} {{target}}'),
             ]) + d.mappings({ '0': ['closed', 'green'], '1': ['open', 'red'] }),
             d.stat('Last remediation action', 'When the remediation webhook last acted on each target, per exporter (clawdbot_remediation_last_action_timestamp_seconds).', 'dateTimeFromNow', [
               d.target('max by (job, instance, target) (clawdbot_remediation_last_action_timestamp_seconds{%s}) * 1000' % r, '{{instance}} {{target}}'),
             ], w=12, h=8) + d.thresholds([['blue', null]]),
             d.timeseries('Time to recovery', 'How long after the start of an action the probe saw the gateway up again, 90th percentile over the last day, per exporter and target (clawdbot_remediation_recovery_seconds).', 's', [
               d.target('histogram_quantile(0.9, sum by (job, instance, target, le) (increase(clawdbot_remediation_recovery_seconds_bucket{%s}[1d])))' % r, '{{instance}} {{target}}'),
             ]),
             d.timeseries('Remediation action duration', 'How long actions took, 90th percentile over the last day, by exporter, target and action (clawdbot_remediation_action_duration_seconds).', 's', [
               d.target('histogram_quantile(0.9, sum by (job, instance, target, action, le) (increase(clawdbot_remediation_action_duration_seconds_bucket{%s}[1d])))' % r, '{{instance}} {{target}} {{action}}'),
             ]),
           ]),
         ] else []);

    d.dashboard(
      title=c.title('Overview'),
      uid=c.uid('overview'),
      description='clawdbot_exporter: whether each Clawdbot/OpenClaw gateway works and why not, probe latency, restarts, lock, memory against its limit, channels and sessions.',
      tags=cfg.dashboardTags,
      variables=c.variables,
      panels=d.layout(rows),
      annotations=[c.restartAnnotation(s)],
    ),
}
