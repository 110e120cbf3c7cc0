// The alerts. Every alert: a CamelCase name prefixed Clawdbot, a severity
// (critical: page; warning: ticket; info), a static summary ending with a
// period, a templated description and a runbook_url into runbook.md.
// restart: true adds _config.remediationLabel, for the alerts a restart of
// the gateway can fix, and only those.
{
  local c = $._config,
  local sel = c.clawdbotExporterSelector,
  // The local-state and exporter alerts: not on the jobs that scrape
  // /probe (_config.probeJobs), whose series are remote gateways' probes.
  local lsel = sel + ', job!~"%s"' % regex(c.probeJobs),
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
  // A threshold as PromQL text: 0.85, not 0.84999999999999998.
  local ratio(x) = std.rstripChars(std.rstripChars('%.6f' % x, '0'), '.'),
  // Bytes as Prometheus' humanize1024 prints them: 1.5GiB.
  local humanBytes(b) =
    local units = ['', 'Ki', 'Mi', 'Gi', 'Ti'];
    local i = std.min(4, std.floor(std.log(b) / std.log(1024)));
    local v = b / std.pow(1024, i);
    (if v == std.floor(v) then '%d' % v else '%.1f' % v) + units[i] + 'B',
  local gw = 'gateway {{ $labels.gateway }} on {{ $labels.instance }}',
  // Appended to a lock series' expression: not an openclaw lock, by the
  // lock's location or content, or by the product the probe reports.
  local notOpenclaw = |||
    unless ignoring (kind, product, role)
    clawdbot_lock_info{%(sel)s, product="openclaw"}
    unless ignoring (path)
    group without (product, protocol, version) (clawdbot_gateway_info{%(sel)s, product="openclaw"})
  ||| % { sel: sel },
  local GW = 'Gateway {{ $labels.gateway }} on {{ $labels.instance }}',
  // The reason the last probe of the alert's gateway failed with, for the
  // alerts keyed on the gateway rather than on the reason.
  local currentReason = '{{ with printf `clawdbot_probe_failing{job=%q, instance=%q, gateway=%q} == 1` $labels.job $labels.instance $labels.gateway | query }}{{ range . }}{{ .Labels.reason }}{{ end }}{{ else }}unknown{{ end }}',
  // Gateways booting: the last restart of any kind was less than the
  // warm-up ago: the process started, the gateway reports an uptime, or the
  // exporter saw a restart (clawdbot_gateway_restarts_total increased:
  // openclaw restarts inside its process, with the same start time and an
  // uptime that runs on; a decrease is the exporter's own restart).
  local booting = |||
    (
      clawdbot_process_start_time_seconds{%(sel)s} > time() - %(warmup)d
      or
      clawdbot_gateway_uptime_seconds{%(sel)s} < %(warmup)d
      or
      (
        changes(clawdbot_gateway_restarts_total{%(sel)s}[%(warmup)ds])
        -
        resets(clawdbot_gateway_restarts_total{%(sel)s}[%(warmup)ds])
      ) > 0
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
              max without (reason) (clawdbot_probe_failing{%(sel)s, reason=~"%(reasons)s"} == 1)
              unless
            ||| % { sel: sel, reasons: regex(c.gatewayRestartableReasons) } + booting,
            c.gatewayDownFor,
            'A Clawdbot gateway is down.',
            'The probe of %s fails with reason %s (the gateway is not booting).' % [gw, currentReason],
            restart=true,
          ),
          alert(
            'ClawdbotGatewayNotRecovering',
            'critical',
            |||
              max_over_time(clawdbot_up{%(sel)s}[%(window)s]) == 0
              unless ignoring (reason)
              clawdbot_probe_failing{%(sel)s, reason=~"%(rejected)s"} == 1
            ||| % { sel: sel, window: c.gatewayNotRecoveringWindow, rejected: regex(c.gatewayRejectedReasons) },
            c.gatewayNotRecoveringFor,
            'A Clawdbot gateway has not been up for %d minutes.' % c.gatewayNotRecoveringMinutes,
            '%s has not been up once in the last %d minutes (probe: %s; restarts in the last %s: %s). It crash-loops or stays down, warm-up or not: restarting does not fix it, a person must look.' % [
              GW,
              c.gatewayNotRecoveringMinutes,
              currentReason,
              c.restartsWindow,
              '{{ with printf `instance_gateway:clawdbot_restarts:changes%s{job=%%q, instance=%%q, gateway=%%q}` $labels.job $labels.instance $labels.gateway | query }}{{ . | first | value }}{{ else }}unknown{{ end }}' % c.restartsWindow,
            ],
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
            'max without (reason) (clawdbot_probe_failing{%s, reason=~"%s"} == 1)' % [sel, regex(c.gatewayRejectedReasons)],
            c.gatewayRejectedFor,
            "A Clawdbot gateway rejects the exporter's probe.",
            '%s answers but the probe fails with reason %s: the credentials, TLS or protocol of the exporter do not match the gateway, or (hello_timeout) the gateway throttles its logins after refused ones.' % [GW, currentReason],
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
            'instance_gateway:clawdbot_restarts:changes%s{%s} >= %d' % [c.restartsWindow, sel, c.restartsThreshold],
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
            'ClawdbotLockBlockingStart',
            'warning',
            'max without (why) (clawdbot_lock_blocking_start{%s} == 1)' % lsel,
            c.lockBlockingStartFor,
            "A lock blocks the Clawdbot gateway's next start.",
            '{{ $labels.path }} blocks the next start of %s: a leftover reclaim guard, or a live process that is not the gateway holds a lock (see clawdbot_lock_blocking_start{why}).' % gw,
          ),
          alert(
            'ClawdbotLockStale',
            'warning',
            // openclaw reclaims a dead owner's lock at its next start by
            // itself: a stale lock there is no problem.
            |||
              clawdbot_lock_stale{%(sel)s} == 1
            ||| % { sel: lsel } + notOpenclaw,
            c.lockStaleFor,
            'A Clawdbot gateway lock is stale.',
            'The owner of lock {{ $labels.path }} (gateway "{{ $labels.gateway }}") on {{ $labels.instance }} is dead or its pid was reused: the gateway may refuse to start.',
          ),
          alert(
            'ClawdbotLockOnNetworkFilesystem',
            'warning',
            'clawdbot_lock_network_filesystem{%s} == 1' % lsel,
            c.lockFilesystemFor,
            'A Clawdbot gateway lock is on a network filesystem.',
            'Lock {{ $labels.path }} (gateway "{{ $labels.gateway }}") on {{ $labels.instance }} is on a network filesystem, where liveness checks and locking are unreliable.',
          ),
          alert(
            'ClawdbotLockNotVolatile',
            'info',
            // openclaw keeps its locks on the state volume by design.
            |||
              clawdbot_lock_volatile{%(sel)s} == 0
            ||| % { sel: lsel } + notOpenclaw,
            c.lockFilesystemFor,
            'A Clawdbot gateway lock survives reboots.',
            'Lock {{ $labels.path }} (gateway "{{ $labels.gateway }}") on {{ $labels.instance }} is not on tmpfs: a lock left behind survives a reboot or container restart.',
          ),
          alert(
            'ClawdbotMultipleLiveLocks',
            'warning',
            'instance_gateway:clawdbot_lock_owner_alive:count{%s, gateway!=""} > 1' % lsel,
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
            'instance_gateway:clawdbot_process_tree_resident_memory_bytes_per_cgroup_limit:ratio{%s} > %s' % [lsel, ratio(c.memoryLimitRatioThreshold)],
            c.memoryLimitFor,
            'A Clawdbot gateway uses most of its memory limit.',
            'The resident memory of %s (its process tree) is {{ $value | humanizePercentage }} of its cgroup memory limit.' % gw,
          ),
          alert(
            'ClawdbotMemoryHigh',
            'warning',
            |||
              clawdbot_process_tree_resident_memory_bytes{%(sel)s} > %(bytes)d
              unless ignoring (kind)
              clawdbot_process_memory_limit_bytes{%(sel)s, kind="cgroup"}
            ||| % { sel: lsel, bytes: c.memoryRSSAbsoluteThresholdBytes },
            c.memoryRSSAbsoluteFor,
            'A Clawdbot gateway without a memory limit uses a lot of memory.',
            'The resident memory of %s (its process tree) is {{ $value | humanize1024 }}B and no cgroup memory limit is set.' % gw,
          ),
          // The value is the predicted RSS as a share of the limit: the
          // cgroup limit, else memoryRSSAbsoluteThresholdBytes.
          alert(
            'ClawdbotMemoryGrowing',
            'warning',
            |||
              (
                (
                  predict_linear(clawdbot_process_tree_resident_memory_bytes{%(sel)s}[%(window)s], %(horizon)d)
                  / ignoring (kind) clawdbot_process_memory_limit_bytes{%(sel)s, kind="cgroup"} > 1
                  and
                  predict_linear(clawdbot_process_tree_resident_memory_bytes{%(sel)s}[%(recent)s], %(horizon)d)
                  / ignoring (kind) clawdbot_process_memory_limit_bytes{%(sel)s, kind="cgroup"} > 1
                  and
                  instance_gateway:clawdbot_process_tree_resident_memory_bytes_per_cgroup_limit:ratio{%(sel)s} > %(minRatio)s
                )
                or
                (
                  predict_linear(clawdbot_process_tree_resident_memory_bytes{%(sel)s}[%(window)s], %(horizon)d) / %(bytes)d > 1
                  and
                  predict_linear(clawdbot_process_tree_resident_memory_bytes{%(sel)s}[%(recent)s], %(horizon)d) / %(bytes)d > 1
                  and
                  clawdbot_process_tree_resident_memory_bytes{%(sel)s} / %(bytes)d > %(minRatio)s
                  unless ignoring (kind)
                  clawdbot_process_memory_limit_bytes{%(sel)s, kind="cgroup"}
                )
              )
              and
              clawdbot_process_up{%(sel)s} == 1
            ||| % {
              sel: lsel,
              window: c.memoryGrowthWindow,
              recent: c.memoryGrowthRecentWindow,
              horizon: c.memoryGrowthHorizonHours * 3600,
              bytes: c.memoryRSSAbsoluteThresholdBytes,
              minRatio: ratio(c.memoryGrowthMinRatio),
            },
            c.memoryGrowthFor,
            'A Clawdbot gateway is growing towards its memory limit.',
            'At the trend of the last %s and of the last %s, the resident memory of %s (its process tree) reaches {{ $value | humanizePercentage }} of its limit (its cgroup memory limit, else %s) within %d hours.' % [c.memoryGrowthWindow, c.memoryGrowthRecentWindow, gw, humanBytes(c.memoryRSSAbsoluteThresholdBytes), c.memoryGrowthHorizonHours],
          ),
          alert(
            'ClawdbotFileDescriptorsHigh',
            'warning',
            |||
              clawdbot_process_open_fds{%(sel)s} / clawdbot_process_max_fds{%(sel)s} > %(ratio)s
              and
              clawdbot_process_open_fds{%(sel)s} / clawdbot_process_max_fds{%(sel)s} <= %(critical)s
            ||| % { sel: lsel, ratio: ratio(c.fdsWarningRatio), critical: ratio(c.fdsCriticalRatio) },
            c.fdsFor,
            'A Clawdbot gateway uses most of its file descriptors.',
            '%s has {{ $value | humanizePercentage }} of its file descriptor limit open.' % GW,
          ),
          alert(
            'ClawdbotFileDescriptorsExhausted',
            'critical',
            'clawdbot_process_open_fds{%(sel)s} / clawdbot_process_max_fds{%(sel)s} > %(ratio)s' % { sel: lsel, ratio: ratio(c.fdsCriticalRatio) },
            c.fdsFor,
            'A Clawdbot gateway is about to run out of file descriptors.',
            '%s has {{ $value | humanizePercentage }} of its file descriptor limit open: new connections and files will fail.' % GW,
          ),
        ],
      },
      {
        name: 'clawdbot-sessions',
        rules: [
          alert(
            'ClawdbotSessionHistoryLong',
            'warning',
            'clawdbot_session_store_largest_transcript_lines{%s} > %d' % [lsel, c.sessionHistoryLinesThreshold],
            c.sessionLargeFor,
            'A Clawdbot session history is long.',
            'The longest session transcript of agent {{ $labels.agent }} of %s has {{ $value }} lines.' % gw,
          ),
          alert(
            'ClawdbotSessionTranscriptLarge',
            'warning',
            'clawdbot_session_store_largest_transcript_bytes{%s} > %d' % [lsel, c.sessionTranscriptBytesThreshold],
            c.sessionLargeFor,
            'A Clawdbot session transcript is large.',
            'The largest session transcript of agent {{ $labels.agent }} of %s is {{ $value | humanize1024 }}B.' % gw,
          ),
          alert(
            'ClawdbotSessionStoreGrowing',
            'info',
            |||
              instance_gateway_agent:clawdbot_session_store_transcript_bytes:deriv%(window)s{%(sel)s} * 86400 > %(threshold)d
              and
              deriv(clawdbot_session_store_transcript_bytes{%(sel)s}[%(recent)s]) * 86400 > %(threshold)d
              and ignoring (agent)
              clawdbot_up{%(sel)s} == 1
            ||| % { sel: lsel, window: c.sessionGrowthWindow, recent: c.sessionGrowthRecentWindow, threshold: c.sessionGrowthBytesPerDayThreshold },
            c.sessionGrowthFor,
            'Clawdbot session transcripts grow fast.',
            'The session transcripts of agent {{ $labels.agent }} of %s grow by {{ $value | humanize1024 }}B a day.' % gw,
          ),
          alert(
            'ClawdbotSessionStoreReadErrors',
            'info',
            'clawdbot_session_store_read_errors{%s} > 0' % lsel,
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
            'clawdbot_config_exposed_without_auth{%s} == 1' % lsel,
            c.configFor,
            'A Clawdbot gateway config binds beyond loopback without auth.',
            'The config file of %s binds the gateway beyond loopback with auth mode none.' % gw,
          ),
          alert(
            'ClawdbotConfigAuthSecretMissing',
            'warning',
            'clawdbot_config_auth_secret_missing{%s} == 1' % lsel,
            c.configFor,
            'A Clawdbot gateway config names an auth mode without its secret.',
            'The config file of %s sets auth mode token or password but no secret of that kind.' % gw,
          ),
          alert(
            'ClawdbotConfigUnknownKey',
            'warning',
            'clawdbot_config_unknown_key{%s} == 1' % lsel,
            c.configFor,
            'A Clawdbot gateway config has a key the gateway refuses.',
            'The config file of %s sets {{ $labels.key }}, which the gateway refuses: it will not start after its next restart.' % gw,
          ),
          alert(
            'ClawdbotConfigParseError',
            'warning',
            'clawdbot_config_parse_ok{%s} == 0' % lsel,
            c.configFor,
            'A Clawdbot gateway config cannot be parsed.',
            'The config file of %s (or one of its $include files) cannot be read or parsed: the gateway will not start after its next restart.' % gw,
          ),
        ],
      },
      {
        name: 'clawdbot-exporter',
        rules: [
          // Exactly one page per loss: ExporterAbsent when no target is up,
          // ExporterDown for each target down while another one is up.
          alert(
            'ClawdbotExporterDown',
            'critical',
            |||
              up{%(sel)s} == 0
              unless on ()
              absent(up{%(sel)s} == 1)
            ||| % { sel: lsel },
            c.exporterDownFor,
            'Prometheus cannot scrape a Clawdbot exporter.',
            'Prometheus cannot scrape the exporter {{ $labels.instance }} (job {{ $labels.job }}): its gateways are not monitored, and their alerts resolved or cannot fire.',
          ),
          alert(
            'ClawdbotExporterAbsent',
            'critical',
            'absent(up{%s} == 1)' % lsel,
            c.exporterAbsentFor,
            'No Clawdbot exporter is up.',
            'No Prometheus target matching {%s} is up (%s): no gateway is monitored, and no gateway alert can fire.' % [sel, '{{ with query `count(up{%s})` }}{{ . | first | value }} targets, none scraped successfully{{ else }}there is no such target{{ end }}' % lsel],
          ),
          alert(
            'ClawdbotExporterTargetsLost',
            'critical',
            |||
              job:clawdbot_exporter_targets:count
              < ignoring ()
              max_over_time(job:clawdbot_exporter_targets:min_over_time%(settle)s[%(window)s])
            ||| % { settle: c.exporterTargetsSettle, window: c.exporterTargetsWindow },
            c.exporterTargetsLostFor,
            'A Clawdbot exporter target disappeared.',
            'Job {{ $labels.job }} has {{ $value }} exporter targets, fewer than in the last %s ({{ with printf `max_over_time(job:clawdbot_exporter_targets:min_over_time%s{job=%%q}[%s])` $labels.job | query }}{{ . | first | value }}{{ end }}): one left service discovery and its gateways are not monitored.' % [c.exporterTargetsWindow, c.exporterTargetsSettle, c.exporterTargetsWindow],
          ),
          alert(
            'ClawdbotExporterCollectorFailing',
            'warning',
            'clawdbot_exporter_collector_success{%s} == 0' % lsel,
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
              'warning',
              |||
                instance_target:clawdbot_remediation_last_failure:timestamp{%(sel)s}
                unless
                instance_target:clawdbot_remediation_last_recovery:timestamp{%(sel)s}
                > instance_target:clawdbot_remediation_last_failure:timestamp{%(sel)s}
              ||| % { sel: c.remediationSelector },
              c.remediationFailingFor,
              'Clawdbot remediation failed and left the gateway to a person.',
              'The last remediation action of target {{ $labels.target }} on {{ $labels.instance }} failed ({{ $value | humanizeTimestamp }}: error or not_recovered), and since then no action recovered the gateway and its alert did not resolve. Bring the gateway back by hand and fix what the action lacks (runbook); this alert resolves when the alert of the gateway resolves or an action recovers it.',
            ),
            alert(
              'ClawdbotRemediationBreakerOpen',
              'critical',
              'clawdbot_remediation_breaker_open{%s} == 1' % c.remediationSelector,
              c.remediationBreakerOpenFor,
              'The Clawdbot remediation circuit breaker is open.',
              'Remediation of target {{ $labels.target }} on {{ $labels.instance }} holds actions back after too many in its window, until a person resets it (POST /-/remediation/reset).',
            ),
            alert(
              'ClawdbotRemediationNeedsPerson',
              'warning',
              'increase(clawdbot_remediation_skipped_total{%s, reason=~"needs_person|lock_held"}[%s]) > 0' % [c.remediationSelector, c.remediationNeedsPersonWindow],
              null,
              'Clawdbot remediation held a restart back: a person is needed.',
              "Remediation of target {{ $labels.target }} on {{ $labels.instance }} did not restart the gateway ({{ $labels.reason }}) in the last %s: its last exit was 78, a configuration or lock problem a restart cannot fix (needs_person), or a live process that is not the gateway holds what a start needs (lock_held). The exporter's log and status page say which." % c.remediationNeedsPersonWindow,
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
