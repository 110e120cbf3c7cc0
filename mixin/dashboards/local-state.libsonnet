// Clawdbot / Local state: what the exporter reads on the gateway's host
// without touching the network (config file, lock files, process), the
// openclaw runtime, and the exporter's own collectors.
local d = import '../lib/dashboard.libsonnet';
local common = import 'common.libsonnet';

{
  new(cfg)::
    local c = common.new(cfg);
    local s = c.sel;
    local q(expr) = expr % { s: s, e: c.exporterSel };

    local noYesGood = { '0': ['no', 'red'], '1': ['yes', 'green'] };
    local noYesBad = { '0': ['no', 'green'], '1': ['yes', 'red'] };
    local colored = { 'custom.cellOptions': { type: 'color-text' } };
    local thresholdLine = { fieldConfig+: { defaults+: { custom+: { thresholdsStyle: { mode: 'dashed' } } } } };

    local rows = [
      d.row('Config file', [
        d.table('Config files', "Each gateway's config file as the exporter reads it: gateway.bind and the auth mode (configured, else inferred from the secrets in the file), whether it parses, whether it binds beyond loopback without auth, whether its auth mode lacks its secret, and when it last changed. Secrets given to the gateway in its environment are invisible here.", 'none', [
          d.instantTarget(q('max by (job, instance, gateway, bind, auth_mode) (clawdbot_config_info{%(s)s})')),
          d.instantTarget(q('max by (job, instance, gateway) (clawdbot_config_parse_ok{%(s)s})')),
          d.instantTarget(q('max by (job, instance, gateway) (clawdbot_config_exposed_without_auth{%(s)s})')),
          d.instantTarget(q('max by (job, instance, gateway) (clawdbot_config_auth_secret_missing{%(s)s})')),
          d.instantTarget(q('clawdbot_config_last_modified_timestamp_seconds{%(s)s} * 1000')),
        ], w=16, h=7, hide=['Value #A'], rename={
          gateway: 'Gateway',
          instance: 'Instance',
          job: 'Job',
          bind: 'Bind',
          auth_mode: 'Auth mode',
          'Value #B': 'Parses',
          'Value #C': 'Exposed without auth',
          'Value #D': 'Auth secret missing',
          'Value #E': 'Modified',
        })
        + d.overrideName('Parses', colored { mappings: d.mappingsProperty(noYesGood) })
        + d.overrideName('Exposed without auth', colored { mappings: d.mappingsProperty(noYesBad) })
        + d.overrideName('Auth secret missing', colored { mappings: d.mappingsProperty(noYesBad) })
        + d.overrideName('Modified', { unit: 'dateTimeAsIso' }),
        d.table('Refused config keys', "Known-bad keys (session.historyLimit, reply) that guides recommend but the gateway's strict schema refuses: with one of them the gateway does not start (clawdbot_config_unknown_key).", 'none', [
          d.instantTarget(q('max by (job, instance, gateway, key) (clawdbot_config_unknown_key{%(s)s})')),
        ], w=8, h=7, rename={
          gateway: 'Gateway',
          instance: 'Instance',
          job: 'Job',
          key: 'Key',
          Value: 'Present',
        }) + d.mappings(noYesBad) + d.overrideName('Present', colored),
      ]),

      d.row('Lock files', [
        d.table('Lock files', 'Every gateway lock file the exporter found, and the expected lock of a configured gateway that has none: owner state (alive, dead, reused, unknown), age, the pid it names, its filesystem and whether that filesystem is volatile (tmpfs, ramfs) or a network filesystem. Locks of other configs have an empty gateway.', 'none', [
          d.instantTarget(c.lockState),
          d.instantTarget(q('max by (job, instance, gateway, path) (clawdbot_lock_age_seconds{%(s)s})')),
          d.instantTarget(q('max by (job, instance, gateway, path) (clawdbot_lock_owner_pid{%(s)s})')),
          d.instantTarget(q('max by (job, instance, gateway, path, fstype) (clawdbot_lock_filesystem_info{%(s)s})')),
          d.instantTarget(q('max by (job, instance, gateway, path) (clawdbot_lock_volatile{%(s)s})')),
          d.instantTarget(q('max by (job, instance, gateway, path) (clawdbot_lock_network_filesystem{%(s)s})')),
        ], h=7, hide=['Value #D'], rename={
          gateway: 'Gateway',
          instance: 'Instance',
          job: 'Job',
          path: 'Path',
          fstype: 'Filesystem',
          'Value #A': 'Owner',
          'Value #B': 'Age',
          'Value #C': 'PID',
          'Value #E': 'Volatile',
          'Value #F': 'Network filesystem',
        })
        + d.overrideName('Owner', colored { mappings: d.mappingsProperty(c.lockStateMappings) })
        + d.overrideName('Age', { unit: 's' })
        + d.overrideName('Volatile', colored { mappings: d.mappingsProperty({ '0': ['no', 'green'], '1': ['yes', 'orange'] }) })
        + d.overrideName('Network filesystem', colored { mappings: d.mappingsProperty(noYesBad) }),
        d.timeseries('Live locks per gateway', 'Locks whose owner is alive, per gateway. More than one means two gateway processes run for one config. The dashed line marks one.', 'none', [
          d.target(q('instance_gateway:clawdbot_lock_owner_alive:count{%(s)s}'), '{{gateway}} on {{instance}}'),
        ]) + d.thresholds([['green', null], ['red', 2]]) + thresholdLine,
        d.timeseries('Lock owner PID', "The pid each lock names, in the gateway's PID namespace (clawdbot_lock_owner_pid). It changes when the gateway restarts.", 'none', [
          d.target(q('clawdbot_lock_owner_pid{%(s)s}'), '{{gateway}}: {{path}}'),
        ]),
      ]),

      d.row('Process', [
        d.stateTimeline('Process found', 'Whether the exporter found the gateway process (clawdbot_process_up): the live owner of its lock, or a process titled like a gateway on its port. Process metrics exist only for a process it found.', 'none', [
          d.target(q('clawdbot_process_up{%(s)s}'), '{{gateway}} on {{instance}}'),
        ]) + d.mappings({ '0': ['not found', 'red'], '1': ['found', 'green'] }),
        d.timeseries('CPU', 'CPU time the gateway process uses per second, user and system (rate of clawdbot_process_cpu_seconds_total); 100% is one core.', 'percentunit', [
          d.target(q('rate(clawdbot_process_cpu_seconds_total{%(s)s}[$__rate_interval])'), '{{gateway}} on {{instance}}'),
        ]),
        d.timeseries('Open file descriptors', 'Open file descriptors of the gateway process and its limit (dashed red).', 'none', [
          d.target(q('clawdbot_process_open_fds{%(s)s}'), '{{gateway}} open'),
          d.target(q('clawdbot_process_max_fds{%(s)s}'), '{{gateway}} limit'),
        ]) + d.limitLine('B'),
        d.timeseries('Threads', 'Threads of the gateway process (clawdbot_process_threads).', 'none', [
          d.target(q('clawdbot_process_threads{%(s)s}'), '{{gateway}} on {{instance}}'),
        ]),
        d.timeseries('Memory limits', 'The memory ceilings of the gateway process (clawdbot_process_memory_limit_bytes): cgroup, the lowest memory limit on its cgroups, and v8_heap, from --max-old-space-size, which caps only the V8 heap.', 'bytes', [
          d.target(q('clawdbot_process_memory_limit_bytes{%(s)s}'), '{{gateway}} {{kind}}'),
        ]),
        d.timeseries('Virtual memory', 'Virtual memory of the gateway process (clawdbot_process_virtual_memory_bytes).', 'bytes', [
          d.target(q('clawdbot_process_virtual_memory_bytes{%(s)s}'), '{{gateway}} on {{instance}}'),
        ]),
      ]),

      d.row('Runtime (openclaw)', [
        d.timeseries('Event loop delay', "The gateway's event-loop delay, 99th percentile and maximum, as openclaw reports it (clawdbot_event_loop_delay_*). A long delay makes every request wait.", 's', [
          d.target(q('clawdbot_event_loop_delay_p99_seconds{%(s)s}'), '{{gateway}} p99'),
          d.target(q('clawdbot_event_loop_delay_max_seconds{%(s)s}'), '{{gateway}} max'),
        ]),
        d.timeseries('Event loop utilization', 'Share of time the event loop was busy, as openclaw reports it (clawdbot_event_loop_utilization_ratio).', 'percentunit', [
          d.target(q('clawdbot_event_loop_utilization_ratio{%(s)s}'), '{{gateway}} on {{instance}}'),
        ], min=0),
        d.stateTimeline('Degraded', 'Whether openclaw reports its event loop (clawdbot_event_loop_degraded) or its model runtime (clawdbot_model_runtime_degraded) degraded.', 'none', [
          d.target(q('clawdbot_event_loop_degraded{%(s)s}'), '{{gateway}} event loop'),
          d.target(q('clawdbot_model_runtime_degraded{%(s)s}'), '{{gateway}} model runtime'),
        ]) + d.mappings({ '0': ['ok', 'green'], '1': ['degraded', 'red'] }),
        d.timeseries('Plugins', 'Plugins openclaw loaded, failed to load and reports unavailable (clawdbot_plugins_*); absent when plugins are disabled.', 'none', [
          d.target(q('clawdbot_plugins_loaded{%(s)s}'), '{{gateway}} loaded'),
          d.target(q('clawdbot_plugins_load_errors{%(s)s}'), '{{gateway}} load errors'),
          d.target(q('clawdbot_plugins_unavailable{%(s)s}'), '{{gateway}} unavailable'),
        ]),
      ]),

      d.row('Exporter', [
        d.stateTimeline('Collector success', "Whether each of the exporter's collectors finished without error within the scrape deadline (clawdbot_exporter_collector_success). One failing collector never fails the scrape.", 'none', [
          d.target(q('clawdbot_exporter_collector_success{%(e)s}'), '{{instance}} {{collector}}'),
        ]) + d.mappings({ '0': ['failed', 'red'], '1': ['ok', 'green'] }),
        d.timeseries('Collector duration', 'How long each collector took in the last scrape (clawdbot_exporter_collector_duration_seconds).', 's', [
          d.target(q('clawdbot_exporter_collector_duration_seconds{%(e)s}'), '{{instance}} {{collector}}'),
        ]),
        d.table('Exporter build', 'Version, revision and Go version of each clawdbot_exporter (clawdbot_exporter_build_info).', 'none', [
          d.instantTarget(q('clawdbot_exporter_build_info{%(e)s}')),
        ], h=5, hide=['Value'], rename={
          instance: 'Instance',
          job: 'Job',
          version: 'Version',
          revision: 'Revision',
          branch: 'Branch',
          goversion: 'Go version',
        }),
      ]),
    ];

    d.dashboard(
      title=c.title('Local state'),
      uid=c.uid('local-state'),
      description="clawdbot_exporter: the gateway's config file, lock files and process as the exporter reads them on the host, the openclaw runtime, and the exporter's own collectors.",
      tags=cfg.dashboardTags,
      variables=c.variables,
      panels=d.layout(rows),
      annotations=[c.restartAnnotation(s)],
    ),
}
