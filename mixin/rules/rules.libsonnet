// Recording rules shared by the alerts and the dashboards:
//
//   clawdbot:probe_duration_seconds:sum
//       whole probe time per gateway (all phases).
//   clawdbot:gateway_down:reason
//       1 per gateway that is down, labelled with the failure reason; not
//       while it is starting.
//   clawdbot:process_resident_memory_bytes:cgroup_limit_ratio
//       RSS / cgroup memory limit, 0 to 1; absent without a cgroup limit.
//   clawdbot:process_resident_memory_bytes:deriv1h
//       RSS growth in bytes per second over the last hour.
//   clawdbot:process_restarts:changes1h
//       restarts in the last hour (changes of the process start time).
//   clawdbot:lock_live:count
//       live locks per gateway (a lock whose owner runs).
//   clawdbot:session_store_transcript_bytes:deriv1h
//       transcript growth per agent in bytes per second over the last hour.
{
  prometheusRules+:: {
    local sel = $._config.clawdbotExporterSelector,
    groups+: [
      {
        name: 'clawdbot.rules',
        rules: [
          {
            record: 'clawdbot:probe_duration_seconds:sum',
            expr: 'sum without (phase) (clawdbot_probe_duration_seconds{%s})' % sel,
          },
          {
            record: 'clawdbot:gateway_down:reason',
            expr: 'clawdbot_probe_failing{%s, reason!="starting"} == 1' % sel,
          },
          {
            record: 'clawdbot:process_resident_memory_bytes:cgroup_limit_ratio',
            expr: |||
              clawdbot_process_resident_memory_bytes{%(sel)s}
              / ignoring (kind)
              clawdbot_process_memory_limit_bytes{%(sel)s, kind="cgroup"}
            ||| % { sel: sel },
          },
          {
            record: 'clawdbot:process_resident_memory_bytes:deriv1h',
            expr: 'deriv(clawdbot_process_resident_memory_bytes{%s}[1h])' % sel,
          },
          {
            record: 'clawdbot:process_restarts:changes1h',
            expr: 'changes(clawdbot_process_start_time_seconds{%s}[1h])' % sel,
          },
          {
            record: 'clawdbot:lock_live:count',
            expr: 'count without (path, state) (clawdbot_lock_owner_state{%s, state="alive"} == 1)' % sel,
          },
          {
            record: 'clawdbot:session_store_transcript_bytes:deriv1h',
            expr: 'deriv(clawdbot_session_store_transcript_bytes{%s}[1h])' % sel,
          },
        ],
      },
    ],
  },
}
