// Everything a user may want to change. Override with
//   (import 'mixin.libsonnet') + { _config+:: { clawdbotExporterSelector: 'job="gw"' } }
{
  _config+:: {
    // Selects the exporter's series. Must not be empty: it is spliced into
    // selectors next to other matchers.
    clawdbotExporterSelector: 'job="clawdbot"',

    // Jobs that scrape the exporter's /probe endpoint (README, "Fleets":
    // Prometheus discovers the gateways, one exporter probes them all).
    // Include them in clawdbotExporterSelector (job=~"clawdbot|clawdbot-probe")
    // and the gateway alerts apply to their series, which carry the same
    // names, with instance and gateway set by relabelling. The local-state
    // alerts (process, lock, memory, sessions, config) and the exporter
    // alerts (up, targets lost, collectors) do not: a remote gateway's
    // process and files are not on the exporter's host, and a /probe
    // target that leaves service discovery or fails its scrape is a
    // gateway, not an exporter. Those exclude these jobs.
    probeJobs: ['clawdbot-probe'],

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
    // gone, wedged, or answers garbage), and those it cannot: the exporter's
    // credentials, TLS or protocol do not match the gateway, or the gateway
    // throttles the exporter's logins (hello_timeout: it sent the challenge,
    // so its event loop answers, but not connect). The other reasons,
    // starting and unhealthy, have alerts of their own. The paging alert is
    // keyed on the gateway, not on the reason: a reason that changes
    // (timeout, closed, timeout...) does not restart its clock.
    gatewayRestartableReasons: ['dial', 'timeout', 'closed', 'rpc', 'bad_frame'],
    gatewayRejectedReasons: ['auth', 'hello_timeout', 'protocol', 'tls', 'upgrade'],
    gatewayDownFor: '2m',
    gatewayUnhealthyFor: '2m',
    gatewayRejectedFor: '5m',
    // A gateway whose process started (or that reports an uptime) less than
    // this long ago is booting, not down: real gateways take from seconds to
    // minutes (many plugins) to serve.
    gatewayWarmupSeconds: 300,
    // openclaw says "starting" while it boots; this long is stuck.
    gatewayStartingFor: '15m',
    // Not up once in gatewayNotRecoveringWindow + gatewayNotRecoveringFor
    // (15 minutes), warm-up or not, and not because it rejects the probe: a
    // crash loop (restarted faster than the warm-up, so ClawdbotGatewayDown
    // holds off) or an outage restarts did not fix. Pages a person, without
    // the remediation label. A gateway the exporter only started to probe
    // gets gatewayNotRecoveringFor (10 minutes).
    gatewayNotRecoveringWindow: '5m',
    gatewayNotRecoveringFor: '10m',
    gatewayNotRecoveringMinutes: 15,  // the sum, for the alert's text

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
    // A state that blocks the next start (clawdbot_lock_blocking_start):
    // the exporter already waits a minute before it calls a reclaim guard
    // stuck; a doctor run may hold the locks a few minutes.
    lockBlockingStartFor: '5m',
    lockFilesystemFor: '1h',
    multipleLiveLocksFor: '5m',

    // Memory. RSS against the cgroup limit (the v8_heap limit caps only the
    // V8 heap, not RSS: not comparable).
    memoryLimitRatioThreshold: 0.85,
    memoryLimitFor: '15m',
    // RSS above this when no cgroup limit is known.
    memoryRSSAbsoluteThresholdBytes: 1.5 * 1024 * 1024 * 1024,
    memoryRSSAbsoluteFor: '30m',
    // RSS predicted to reach the limit (or the absolute threshold) within
    // memoryGrowthHorizonHours both at the trend of memoryGrowthWindow and
    // at that of memoryGrowthRecentWindow (a ramp that has flattened does
    // not count), while RSS is already above memoryGrowthMinRatio of it and
    // the process runs (a dead gateway's old samples do not count).
    memoryGrowthWindow: '6h',
    memoryGrowthRecentWindow: '1h',
    memoryGrowthHorizonHours: 4,
    memoryGrowthMinRatio: 0.5,
    memoryGrowthFor: '1h',

    // Sessions.
    sessionHistoryLinesThreshold: 2000,
    sessionTranscriptBytesThreshold: 50 * 1024 * 1024,
    sessionLargeFor: '1h',
    // Growth above the threshold over sessionGrowthWindow and over the last
    // sessionGrowthRecentWindow, on a gateway that is up.
    sessionGrowthWindow: '6h',
    sessionGrowthRecentWindow: '1h',
    sessionGrowthBytesPerDayThreshold: 100 * 1024 * 1024,
    sessionGrowthFor: '1h',
    sessionReadErrorsFor: '30m',

    // Config.
    configFor: '5m',

    // Exporter. Its loss pages: without it no gateway alert can fire (and
    // a firing one resolves). ClawdbotExporterAbsent: no target of the
    // selector is up (absent(up == 1)); ClawdbotExporterDown: one of
    // several is down; ClawdbotExporterTargetsLost: fewer targets than held
    // for exporterTargetsSettle within the last exporterTargetsWindow (one
    // left service discovery).
    exporterDownFor: '5m',
    exporterAbsentFor: '5m',
    exporterTargetsSettle: '10m',
    exporterTargetsWindow: '1d',
    exporterTargetsLostFor: '15m',
    collectorFailingFor: '15m',

    // Open file descriptors of the gateway process against its limit.
    fdsWarningRatio: 0.7,
    fdsCriticalRatio: 0.9,
    fdsFor: '15m',

    // Remediation (remediationAlertsEnabled): the remediation webhook's
    // metrics (clawdbot_remediation_actions_total{target,action,result},
    // result recovered, not_recovered or error;
    // clawdbot_remediation_breaker_open{target}), served by the exporter.
    remediationSelector: self.clawdbotExporterSelector,
    // Failing: the target's last action ended error or not_recovered, and
    // since then no action recovered the gateway and its alert did not
    // resolve (the webhook saw it resolved): a person must bring the gateway
    // back and fix what the action lacks. It stays until one of those
    // happens, or for at most the window.
    remediationFailingResults: ['error', 'not_recovered'],
    remediationFailingWindow: '1d',
    remediationFailingFor: null,
    // Breaker open: holds actions back until a person resets it.
    remediationBreakerOpenFor: '1m',
    // Too frequent: this many actions or more on one target within the
    // window (the default breaker: 3 actions an hour, so this warns as the
    // breaker is about to open).
    remediationTooFrequentWindow: '1h',
    remediationTooFrequentThreshold: 3,
    remediationTooFrequentFor: null,
    // ClawdbotRemediationNeedsPerson: a restart held back (exit 78, a live
    // lock holder) within this window.
    remediationNeedsPersonWindow: '1h',
  },
}
