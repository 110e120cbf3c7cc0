// Everything a user may want to change. Override with
//   (import 'mixin.libsonnet') + { _config+:: { clawdbotExporterSelector: 'job="gw"' } }
{
  _config+:: {
    // Selects the exporter's series. Must not be empty: it is spliced into
    // selectors next to other matchers.
    clawdbotExporterSelector: 'job="clawdbot"',

    // Dashboards (used by dashboards/).
    dashboardTags: ['clawdbot'],
    dashboardNamePrefix: 'Clawdbot / ',
    dashboardUIDPrefix: 'clawdbot',
    rateInterval: '5m',

    // Every alert links to its section of runbook.md; %s is the alert name
    // in lower case (GitHub's anchor for the "## AlertName" heading).
    runbookURLPattern: 'https://github.com/clawdbot-exporter/clawdbot_exporter/blob/main/mixin/runbook.md#%s',

    // Added to the labels of the alerts a restart of the gateway can fix, and
    // to no other alert, so that one Alertmanager route can send them to the
    // remediation webhook. {} turns it off.
    remediationLabel: { remediation: 'restart' },

    // The remediation alerts (group clawdbot-remediation) and the
    // Remediation row of the overview dashboard, on the remediation
    // webhook's metrics (clawdbot_remediation_*, exposed when the exporter's
    // config has a remediation: section). Without remediation they match no
    // series and stay silent; false leaves them out.
    remediationAlertsEnabled: true,
    remediationPanelsEnabled: true,

    // Gateway down. Probe failure reasons a restart can fix (the process is
    // gone, wedged, or answers garbage), and those it cannot (the exporter's
    // credentials, TLS or protocol do not match the gateway).
    gatewayRestartableReasons: ['dial', 'timeout', 'closed', 'rpc', 'bad_frame'],
    gatewayRejectedReasons: ['auth', 'protocol', 'tls', 'upgrade'],
    gatewayDownFor: '2m',
    gatewayUnhealthyFor: '2m',
    gatewayRejectedFor: '5m',
    // A gateway whose process started (or that reports an uptime) less than
    // this long ago is booting, not down: real gateways take from seconds to
    // minutes (many plugins) to serve.
    gatewayWarmupSeconds: 300,
    // openclaw says "starting" while it boots; this long is stuck.
    gatewayStartingFor: '15m',

    // Probe phases slower than this (seconds) on a gateway that is up.
    probeSlowPhases: ['challenge', 'hello', 'health'],
    probeSlowThresholdSeconds: 1,
    probeSlowFor: '15m',

    // openclaw.
    notReadyFor: '10m',
    eventLoopDegradedFor: '15m',
    modelRuntimeDegradedFor: '15m',
    pluginLoadErrorsFor: '15m',

    // Channels configured (and not disabled) whose probe fails or that do
    // not run.
    channelFailingFor: '15m',

    // Restarts and flapping.
    restartsWindow: '1h',
    restartsThreshold: 3,
    flappingWindow: '30m',
    flappingThreshold: 6,  // changes of clawdbot_up: 3 down-up cycles

    // Locks.
    lockStaleFor: '10m',
    lockFilesystemFor: '1h',
    multipleLiveLocksFor: '5m',

    // Memory. RSS against the cgroup limit (the v8_heap limit caps only the
    // V8 heap, not RSS: not comparable).
    memoryLimitRatioThreshold: 0.85,
    memoryLimitFor: '15m',
    // RSS above this when no cgroup limit is known.
    memoryRSSAbsoluteThresholdBytes: 1.5 * 1024 * 1024 * 1024,
    memoryRSSAbsoluteFor: '30m',
    // RSS predicted over memoryGrowthWindow to reach the limit (or the
    // absolute threshold) within memoryGrowthHorizonHours.
    memoryGrowthWindow: '6h',
    memoryGrowthHorizonHours: 4,
    memoryGrowthFor: '1h',

    // Sessions.
    sessionHistoryLinesThreshold: 2000,
    sessionTranscriptBytesThreshold: 50 * 1024 * 1024,
    sessionLargeFor: '1h',
    sessionGrowthWindow: '6h',
    sessionGrowthBytesPerDayThreshold: 100 * 1024 * 1024,
    sessionGrowthFor: '1h',
    sessionReadErrorsFor: '30m',

    // Config.
    configFor: '5m',

    // Exporter.
    exporterDownFor: '5m',
    exporterAbsentFor: '15m',
    collectorFailingFor: '15m',

    // Remediation (remediationAlertsEnabled): the remediation webhook's
    // metrics (clawdbot_remediation_actions_total{target,action,result},
    // result recovered, not_recovered or error;
    // clawdbot_remediation_breaker_open{target}), served by the exporter.
    remediationSelector: self.clawdbotExporterSelector,
    // Failing: an action ended error or not_recovered within the window.
    // null: fires at once; the alert lasts the window.
    remediationFailingResults: ['error', 'not_recovered'],
    remediationFailingWindow: '1h',
    remediationFailingFor: null,
    // Breaker open: holds actions back until a person reloads.
    remediationBreakerOpenFor: '1m',
    // Too frequent: this many actions or more on one target within the
    // window (the default breaker: 3 actions an hour, so this warns as the
    // breaker is about to open).
    remediationTooFrequentWindow: '1h',
    remediationTooFrequentThreshold: 3,
    remediationTooFrequentFor: null,
  },
}
