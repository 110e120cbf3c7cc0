// Recording rules, named level:metric:operations (prometheus.io, "Defining
// recording rules"): the level is the labels the result keeps (instance
// stands for the target, job included). Each is used by an alert or a
// dashboard, which do not recompute it inline:
//
//   instance_gateway:clawdbot_probe_duration_seconds:sum
//       whole probe time per gateway, all phases (dashboard).
//   instance_gateway:clawdbot_process_tree_resident_memory_bytes_per_cgroup_limit:ratio
//       RSS of the gateway's process tree (openclaw's children included:
//       the cgroup limit covers them too) / cgroup memory limit, 0 to 1;
//       absent without a cgroup limit (ClawdbotMemoryNearLimit,
//       ClawdbotMemoryGrowing, dashboard).
//   instance_gateway:clawdbot_process_resident_memory_bytes:deriv<memoryGrowthWindow>
//       RSS growth in bytes per second (dashboard).
//   instance_gateway:clawdbot_restarts:changes<restartsWindow>
//       restarts: increases of clawdbot_gateway_restarts_total (the
//       exporter's count, openclaw's in-process restarts included; a reset
//       is the exporter's restart, not the gateway's), else changes of the
//       process start time, else resets of the reported uptime
//       (ClawdbotGatewayRestarting, dashboard).
//   instance_gateway:clawdbot_lock_owner_alive:count
//       live config locks per gateway: locks whose owner runs (openclaw's
//       gateway.state.lock left out)
//       (ClawdbotMultipleLiveLocks, dashboard).
//   instance_gateway_agent:clawdbot_session_store_transcript_bytes:deriv<sessionGrowthWindow>
//       transcript growth per agent in bytes per second
//       (ClawdbotSessionStoreGrowing, dashboard).
//   job:clawdbot_exporter_targets:count
//       exporter targets (up series) of the selector, up or not
//       (ClawdbotExporterTargetsLost, dashboard).
//   job:clawdbot_exporter_targets:min_over_time<exporterTargetsSettle>
//       the same, its lowest value over the settle time: a count that held
//       that long, not the overlap of a rollout (ClawdbotExporterTargetsLost).
//   instance_target:clawdbot_remediation_last_failure:timestamp
//   instance_target:clawdbot_remediation_last_recovery:timestamp
//       when (Unix time) a remediation action of the target last ended
//       error or not_recovered; when an action last recovered the gateway or
//       the webhook last saw the target's alert resolve. Within
//       remediationFailingWindow, to the minute (ClawdbotRemediationFailing).
{
  prometheusRules+:: {
    local c = $._config,
    local sel = c.clawdbotExporterSelector,
    // Local state and exporter targets: not the /probe jobs (alerts.libsonnet).
    local lsel = sel + ', job!~"%s"' % std.join('|', c.probeJobs),
    local rsel = c.remediationSelector,
    // When (the evaluation time, to the minute) the counters of selector
    // last increased within the window: a difference over one minute,
    // sampled every minute, so that no increase falls between two samples
    // whatever the scrape interval, and no window boundary is involved.
    local lastIncrease(selector, window) = |||
      max_over_time(
        timestamp((%(s)s - %(s)s offset 1m) > 0)[%(w)s:1m]
      )
    ||| % { s: selector, w: window },
    groups+: [
      {
        name: 'clawdbot.rules',
        rules: [
          {
            record: 'instance_gateway:clawdbot_probe_duration_seconds:sum',
            expr: 'sum without (phase) (clawdbot_probe_duration_seconds{%s})' % sel,
          },
          {
            record: 'instance_gateway:clawdbot_process_tree_resident_memory_bytes_per_cgroup_limit:ratio',
            expr: |||
              clawdbot_process_tree_resident_memory_bytes{%(sel)s}
              / ignoring (kind)
              clawdbot_process_memory_limit_bytes{%(sel)s, kind="cgroup"}
            ||| % { sel: lsel },
          },
          {
            record: 'instance_gateway:clawdbot_process_resident_memory_bytes:deriv%s' % c.memoryGrowthWindow,
            expr: 'deriv(clawdbot_process_resident_memory_bytes{%s}[%s])' % [lsel, c.memoryGrowthWindow],
          },
          {
            record: 'instance_gateway:clawdbot_restarts:changes%s' % c.restartsWindow,
            expr: |||
              (
                changes(clawdbot_gateway_restarts_total{%(sel)s}[%(w)s])
                -
                resets(clawdbot_gateway_restarts_total{%(sel)s}[%(w)s])
              )
              or
              changes(clawdbot_process_start_time_seconds{%(sel)s}[%(w)s])
              or
              resets(clawdbot_gateway_uptime_seconds{%(sel)s}[%(w)s])
            ||| % { sel: sel, w: c.restartsWindow },
          },
          {
            record: 'instance_gateway:clawdbot_lock_owner_alive:count',
            // Config locks only: openclaw's gateway.state.lock is the same
            // gateway's second lock.
            expr: |||
              count without (path, state) (
                clawdbot_lock_owner_state{%(sel)s, state="alive"} == 1
                unless ignoring (state, kind, product, role)
                clawdbot_lock_info{%(sel)s, kind="state"}
              )
            ||| % { sel: lsel },
          },
          {
            record: 'instance_gateway_agent:clawdbot_session_store_transcript_bytes:deriv%s' % c.sessionGrowthWindow,
            expr: 'deriv(clawdbot_session_store_transcript_bytes{%s}[%s])' % [lsel, c.sessionGrowthWindow],
          },
          {
            record: 'job:clawdbot_exporter_targets:count',
            expr: 'count by (job) (up{%s})' % lsel,
          },
          {
            record: 'job:clawdbot_exporter_targets:min_over_time%s' % c.exporterTargetsSettle,
            expr: 'min_over_time(job:clawdbot_exporter_targets:count{%s}[%s])' % [lsel, c.exporterTargetsSettle],
          },
        ] + (
          if c.remediationAlertsEnabled then [
            {
              record: 'instance_target:clawdbot_remediation_last_failure:timestamp',
              expr: 'max without (action, result) (\n' + lastIncrease(
                'clawdbot_remediation_actions_total{%s, result=~"%s"}' % [rsel, std.join('|', c.remediationFailingResults)],
                c.remediationFailingWindow,
              ) + ')',
            },
            {
              record: 'instance_target:clawdbot_remediation_last_recovery:timestamp',
              expr: 'max without (action, result, reason) (\n' + lastIncrease(
                'clawdbot_remediation_actions_total{%s, result="recovered"}' % rsel,
                c.remediationFailingWindow,
              ) + '  or\n' + lastIncrease(
                'clawdbot_remediation_skipped_total{%s, reason="resolved"}' % rsel,
                c.remediationFailingWindow,
              ) + ')',
            },
          ] else []
        ),
      },
    ],
  },
}
