// The alerts. Every alert: a CamelCase name prefixed Clawdbot, a severity
// (critical: page; warning: ticket; info), a static summary ending with a
// period, a templated description and a runbook_url into runbook.md.
// restart: true adds _config.remediationLabel, for the alerts a restart of
// the gateway can fix, and only those.
{
  local c = $._config,
  local sel = c.clawdbotExporterSelector,
  local alert(name, severity, expr, forDuration, summary, description, restart=false) = {
    alert: name,
    expr: expr,
    [if forDuration != null then 'for']: forDuration,
    labels: { severity: severity } + (if restart then c.remediationLabel else {}),
    annotations: {
      summary: summary,
      description: description,
      runbook_url: c.runbookURLPattern % std.asciiLower(name),
    },
  },
  local regex(list) = std.join('|', list),
  local gw = 'gateway {{ $labels.gateway }} on {{ $labels.instance }}',
  local GW = 'Gateway {{ $labels.gateway }} on {{ $labels.instance }}',
  // Gateways booting: the process started, or the gateway reports an
  // uptime, less than the warm-up ago.
  local booting = |||
    (
      clawdbot_process_start_time_seconds{%(sel)s} > time() - %(warmup)d
      or
      clawdbot_gateway_uptime_seconds{%(sel)s} < %(warmup)d
    )
  ||| % { sel: sel, warmup: c.gatewayWarmupSeconds },

  prometheusAlerts+:: {
    groups+: [
      {
        name: 'clawdbot-gateway',
        rules: [
          alert(
            'ClawdbotGatewayDown',
            'critical',
            |||
              clawdbot:gateway_down:reason{%(sel)s, reason=~"%(reasons)s"} == 1
              unless ignoring (reason)
            ||| % { sel: sel, reasons: regex(c.gatewayRestartableReasons) } + booting,
            c.gatewayDownFor,
            'A Clawdbot gateway is down.',
            'The probe of %s fails with reason {{ $labels.reason }} (the gateway is not booting).' % gw,
            restart=true,
          ),
          alert(
            'ClawdbotGatewayUnhealthy',
            'critical',
            |||
              clawdbot_health_ok{%(sel)s} == 0
              unless
            ||| % { sel: sel } + booting,
            c.gatewayUnhealthyFor,
            'A Clawdbot gateway reports itself unhealthy.',
            'The health RPC of %s answers ok:false.' % gw,
            restart=true,
          ),
          alert(
            'ClawdbotGatewayStartingTooLong',
            'warning',
            'clawdbot_probe_failing{%s, reason="starting"} == 1' % sel,
            c.gatewayStartingFor,
            'A Clawdbot gateway has been starting for too long.',
            '%s has answered "starting" to every probe for more than %s.' % [GW, c.gatewayStartingFor],
            restart=true,
          ),
          alert(
            'ClawdbotGatewayProbeRejected',
            'warning',
            'clawdbot_probe_failing{%s, reason=~"%s"} == 1' % [sel, regex(c.gatewayRejectedReasons)],
            c.gatewayRejectedFor,
            "A Clawdbot gateway rejects the exporter's probe.",
            '%s answers but the probe fails with reason {{ $labels.reason }}: the credentials, TLS or protocol of the exporter do not match the gateway.' % GW,
          ),
          alert(
            'ClawdbotProbeSlow',
            'warning',
            |||
              clawdbot_probe_duration_seconds{%(sel)s, phase=~"%(phases)s"} > %(threshold)s
              and ignoring (phase)
              clawdbot_up{%(sel)s} == 1
            ||| % { sel: sel, phases: regex(c.probeSlowPhases), threshold: c.probeSlowThresholdSeconds },
            c.probeSlowFor,
            'A Clawdbot gateway answers its probe slowly.',
            'The {{ $labels.phase }} phase of the probe of %s takes {{ $value | humanizeDuration }}.' % gw,
          ),
          alert(
            'ClawdbotGatewayNotReady',
            'warning',
            |||
              clawdbot_http_ready{%(sel)s} == 0
              unless ignoring (reason)
              clawdbot_probe_failing{%(sel)s, reason="starting"} == 1
            ||| % { sel: sel },
            c.notReadyFor,
            'An openclaw gateway is not ready.',
            'GET /readyz on %s does not answer 200 with ready:true.' % gw,
          ),
          alert(
            'ClawdbotEventLoopDegraded',
            'warning',
            'clawdbot_event_loop_degraded{%s} == 1' % sel,
            c.eventLoopDegradedFor,
            'An openclaw gateway reports its event loop degraded.',
            '%s reports its event loop degraded.' % GW,
          ),
          alert(
            'ClawdbotModelRuntimeDegraded',
            'warning',
            'clawdbot_model_runtime_degraded{%s} == 1' % sel,
            c.modelRuntimeDegradedFor,
            'An openclaw gateway reports its model runtime degraded.',
            '%s reports its model runtime degraded.' % GW,
          ),
          alert(
            'ClawdbotPluginLoadErrors',
            'info',
            'clawdbot_plugins_load_errors{%s} > 0' % sel,
            c.pluginLoadErrorsFor,
            'Plugins of an openclaw gateway failed to load.',
            '{{ $value }} plugins of %s failed to load.' % gw,
          ),
          alert(
            'ClawdbotChannelProbeFailing',
            'warning',
            |||
              clawdbot_channel_probe_ok{%(sel)s} == 0
              and
              clawdbot_channel_configured{%(sel)s} == 1
              unless
              clawdbot_channel_enabled{%(sel)s} == 0
            ||| % { sel: sel },
            c.channelFailingFor,
            "A configured Clawdbot channel fails the gateway's probe.",
            'Channel {{ $labels.channel }} account {{ $labels.account }} of %s is configured but its probe fails.' % gw,
          ),
          alert(
            'ClawdbotChannelNotRunning',
            'warning',
            |||
              clawdbot_channel_running{%(sel)s} == 0
              and
              clawdbot_channel_configured{%(sel)s} == 1
              unless
              clawdbot_channel_enabled{%(sel)s} == 0
            ||| % { sel: sel },
            c.channelFailingFor,
            'A configured Clawdbot channel is not running.',
            'Channel {{ $labels.channel }} account {{ $labels.account }} of %s is configured and enabled but not running.' % gw,
          ),
        ],
      },
      {
        name: 'clawdbot-restarts',
        rules: [
          alert(
            'ClawdbotGatewayRestarting',
            'warning',
            |||
              changes(clawdbot_process_start_time_seconds{%(sel)s}[%(window)s]) >= %(n)d
              or
              resets(clawdbot_gateway_uptime_seconds{%(sel)s}[%(window)s]) >= %(n)d
            ||| % { sel: sel, window: c.restartsWindow, n: c.restartsThreshold },
            null,
            'A Clawdbot gateway restarts repeatedly.',
            '%s restarted {{ $value }} times in the last %s.' % [GW, c.restartsWindow],
          ),
          alert(
            'ClawdbotGatewayFlapping',
            'warning',
            'changes(clawdbot_up{%s}[%s]) >= %d' % [sel, c.flappingWindow, c.flappingThreshold],
            null,
            'A Clawdbot gateway flaps between up and down.',
            '%s changed between up and down {{ $value }} times in the last %s.' % [GW, c.flappingWindow],
          ),
        ],
      },
      {
        name: 'clawdbot-locks',
        rules: [
          alert(
            'ClawdbotLockStale',
            'warning',
            'clawdbot_lock_stale{%s} == 1' % sel,
            c.lockStaleFor,
            'A Clawdbot gateway lock is stale.',
            'The owner of lock {{ $labels.path }} (gateway "{{ $labels.gateway }}") on {{ $labels.instance }} is dead or its pid was reused: the gateway may refuse to start.',
          ),
          alert(
            'ClawdbotLockOnNetworkFilesystem',
            'warning',
            'clawdbot_lock_network_filesystem{%s} == 1' % sel,
            c.lockFilesystemFor,
            'A Clawdbot gateway lock is on a network filesystem.',
            'Lock {{ $labels.path }} (gateway "{{ $labels.gateway }}") on {{ $labels.instance }} is on a network filesystem, where liveness checks and locking are unreliable.',
          ),
          alert(
            'ClawdbotLockNotVolatile',
            'info',
            'clawdbot_lock_volatile{%s} == 0' % sel,
            c.lockFilesystemFor,
            'A Clawdbot gateway lock survives reboots.',
            'Lock {{ $labels.path }} (gateway "{{ $labels.gateway }}") on {{ $labels.instance }} is not on tmpfs: a lock left behind survives a reboot or container restart.',
          ),
          alert(
            'ClawdbotMultipleLiveLocks',
            'warning',
            'clawdbot:lock_live:count{%s, gateway!=""} > 1' % sel,
            c.multipleLiveLocksFor,
            'Several live Clawdbot gateway locks exist for one config.',
            '{{ $value }} live locks for %s: more than one gateway process runs with its config.' % gw,
          ),
        ],
      },
      {
        name: 'clawdbot-memory',
        rules: [
          alert(
            'ClawdbotMemoryNearLimit',
            'warning',
            'clawdbot:process_resident_memory_bytes:cgroup_limit_ratio{%s} > %s' % [sel, c.memoryLimitRatioThreshold],
            c.memoryLimitFor,
            'A Clawdbot gateway uses most of its memory limit.',
            'The resident memory of %s is {{ $value | humanizePercentage }} of its cgroup memory limit.' % gw,
          ),
          alert(
            'ClawdbotMemoryHigh',
            'warning',
            |||
              clawdbot_process_resident_memory_bytes{%(sel)s} > %(bytes)d
              unless ignoring (kind)
              clawdbot_process_memory_limit_bytes{%(sel)s, kind="cgroup"}
            ||| % { sel: sel, bytes: c.memoryRSSAbsoluteThresholdBytes },
            c.memoryRSSAbsoluteFor,
            'A Clawdbot gateway without a memory limit uses a lot of memory.',
            'The resident memory of %s is {{ $value | humanize1024 }}B and no cgroup memory limit is set.' % gw,
          ),
          alert(
            'ClawdbotMemoryGrowing',
            'warning',
            |||
              (
                predict_linear(clawdbot_process_resident_memory_bytes{%(sel)s}[%(window)s], %(horizon)d)
                > ignoring (kind)
                clawdbot_process_memory_limit_bytes{%(sel)s, kind="cgroup"}
              )
              or
              (
                predict_linear(clawdbot_process_resident_memory_bytes{%(sel)s}[%(window)s], %(horizon)d) > %(bytes)d
                unless ignoring (kind)
                clawdbot_process_memory_limit_bytes{%(sel)s, kind="cgroup"}
              )
            ||| % {
              sel: sel,
              window: c.memoryGrowthWindow,
              horizon: c.memoryGrowthHorizonHours * 3600,
              bytes: c.memoryRSSAbsoluteThresholdBytes,
            },
            c.memoryGrowthFor,
            'A Clawdbot gateway is growing towards its memory limit.',
            'At the rate of the last %s, the resident memory of %s reaches its limit within %d hours (predicted {{ $value | humanize1024 }}B).' % [c.memoryGrowthWindow, gw, c.memoryGrowthHorizonHours],
          ),
        ],
      },
      {
        name: 'clawdbot-sessions',
        rules: [
          alert(
            'ClawdbotSessionHistoryLong',
            'warning',
            'clawdbot_session_store_largest_transcript_lines{%s} > %d' % [sel, c.sessionHistoryLinesThreshold],
            c.sessionLargeFor,
            'A Clawdbot session history is long.',
            'The longest session transcript of agent {{ $labels.agent }} of %s has {{ $value }} lines.' % gw,
          ),
          alert(
            'ClawdbotSessionTranscriptLarge',
            'warning',
            'clawdbot_session_store_largest_transcript_bytes{%s} > %d' % [sel, c.sessionTranscriptBytesThreshold],
            c.sessionLargeFor,
            'A Clawdbot session transcript is large.',
            'The largest session transcript of agent {{ $labels.agent }} of %s is {{ $value | humanize1024 }}B.' % gw,
          ),
          alert(
            'ClawdbotSessionStoreGrowing',
            'info',
            'deriv(clawdbot_session_store_transcript_bytes{%s}[%s]) * 86400 > %d' % [sel, c.sessionGrowthWindow, c.sessionGrowthBytesPerDayThreshold],
            c.sessionGrowthFor,
            'Clawdbot session transcripts grow fast.',
            'The session transcripts of agent {{ $labels.agent }} of %s grow by {{ $value | humanize1024 }}B a day.' % gw,
          ),
          alert(
            'ClawdbotSessionStoreReadErrors',
            'info',
            'clawdbot_session_store_read_errors{%s} > 0' % sel,
            c.sessionReadErrorsFor,
            'Clawdbot session files cannot be read.',
            '{{ $value }} session files of agent {{ $labels.agent }} of %s cannot be read or parsed.' % gw,
          ),
        ],
      },
      {
        name: 'clawdbot-config',
        rules: [
          alert(
            'ClawdbotConfigExposedWithoutAuth',
            'warning',
            'clawdbot_config_exposed_without_auth{%s} == 1' % sel,
            c.configFor,
            'A Clawdbot gateway config binds beyond loopback without auth.',
            'The config file of %s binds the gateway beyond loopback with auth mode none.' % gw,
          ),
          alert(
            'ClawdbotConfigAuthSecretMissing',
            'warning',
            'clawdbot_config_auth_secret_missing{%s} == 1' % sel,
            c.configFor,
            'A Clawdbot gateway config names an auth mode without its secret.',
            'The config file of %s sets auth mode token or password but no secret of that kind.' % gw,
          ),
          alert(
            'ClawdbotConfigUnknownKey',
            'warning',
            'clawdbot_config_unknown_key{%s} == 1' % sel,
            c.configFor,
            'A Clawdbot gateway config has a key the gateway refuses.',
            'The config file of %s sets {{ $labels.key }}, which the gateway refuses: it will not start after its next restart.' % gw,
          ),
          alert(
            'ClawdbotConfigParseError',
            'warning',
            'clawdbot_config_parse_ok{%s} == 0' % sel,
            c.configFor,
            'A Clawdbot gateway config cannot be parsed.',
            'The config file of %s (or one of its $include files) cannot be read or parsed: the gateway will not start after its next restart.' % gw,
          ),
        ],
      },
      {
        name: 'clawdbot-exporter',
        rules: [
          alert(
            'ClawdbotExporterDown',
            'warning',
            'up{%s} == 0' % sel,
            c.exporterDownFor,
            'Prometheus cannot scrape the Clawdbot exporter.',
            'Prometheus cannot scrape the exporter {{ $labels.instance }} (job {{ $labels.job }}): its gateways are not monitored.',
          ),
          alert(
            'ClawdbotExporterAbsent',
            'warning',
            'absent(up{%s})' % sel,
            c.exporterAbsentFor,
            'Prometheus has no Clawdbot exporter target.',
            'No Prometheus target matches {%s}, so no gateway of job "{{ $labels.job }}" is monitored.' % sel,
          ),
          alert(
            'ClawdbotExporterCollectorFailing',
            'warning',
            'clawdbot_exporter_collector_success{%s} == 0' % sel,
            c.collectorFailingFor,
            'A Clawdbot exporter collector fails.',
            'Collector {{ $labels.collector }} of the exporter {{ $labels.instance }} fails or does not finish within the scrape deadline.',
          ),
        ],
      },
    ] + (
      // The remediation webhook itself: see _config.remediationAlertsEnabled.
      // These need a person, never a restart: no remediation label.
      if c.remediationAlertsEnabled then [
        {
          name: 'clawdbot-remediation',
          rules: [
            alert(
              'ClawdbotRemediationFailing',
              'critical',
              'increase(clawdbot_remediation_actions_total{%s, result=~"%s"}[%s]) > 0' % [c.remediationSelector, regex(c.remediationFailingResults), c.remediationFailingWindow],
              c.remediationFailingFor,
              'Clawdbot remediation actions fail.',
              'Remediation {{ $labels.action }} of target {{ $labels.target }} on {{ $labels.instance }} ended {{ $labels.result }} in the last %s: the gateway may still be down.' % c.remediationFailingWindow,
            ),
            alert(
              'ClawdbotRemediationBreakerOpen',
              'critical',
              'clawdbot_remediation_breaker_open{%s} == 1' % c.remediationSelector,
              c.remediationBreakerOpenFor,
              'The Clawdbot remediation circuit breaker is open.',
              'Remediation of target {{ $labels.target }} on {{ $labels.instance }} holds actions back after too many in its window, until a person reloads the exporter.',
            ),
            alert(
              'ClawdbotRemediationTooFrequent',
              'warning',
              'sum without (result) (increase(clawdbot_remediation_actions_total{%s}[%s])) >= %d' % [c.remediationSelector, c.remediationTooFrequentWindow, c.remediationTooFrequentThreshold],
              c.remediationTooFrequentFor,
              'Clawdbot remediation acts too often.',
              'Remediation {{ $labels.action }} of target {{ $labels.target }} on {{ $labels.instance }} ran {{ $value | humanize }} times in the last %s.' % c.remediationTooFrequentWindow,
            ),
          ],
        },
      ] else []
    ),
  },
}
