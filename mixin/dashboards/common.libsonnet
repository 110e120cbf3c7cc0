// What the clawdbot dashboards share: selectors and template variables.
local d = import '../lib/dashboard.libsonnet';

{
  new(cfg):: {
    local nonEmpty(xs) = std.join(', ', std.filter(function(s) s != '', xs)),

    // Series of the exporter, filtered by the dashboard's variables. The
    // selector (clawdbotExporterSelector) is applied once, in the Job
    // variable, as node-mixin does: the panels filter by $job only, so the
    // Job variable lists every job the selector matches.
    sel: 'job=~"$job", instance=~"$instance", gateway=~"$gateway"',
    // The same for the exporter's own series, which have no gateway label.
    exporterSel: 'job=~"$job", instance=~"$instance"',

    variables: [
      d.datasourceVariable,
      d.queryVariable('job', 'Job', 'clawdbot_up{%s}' % cfg.clawdbotExporterSelector),
      d.queryVariable('instance', 'Instance', 'clawdbot_up{job=~"$job"}'),
      // The exporter's own series have no gateway label: .* matches them.
      d.queryVariable('gateway', 'Gateway', 'clawdbot_up{job=~"$job", instance=~"$instance"}', allValue='.*'),
    ],

    // A restart of a gateway process, as an annotation on every panel.
    restartAnnotation(sel):: d.annotation(
      'Gateway restarts',
      'changes(clawdbot_process_start_time_seconds{%s}[2m]) != 0' % sel,
      'gateway {{gateway}} on {{instance}} restarted',
    ),

    // Lock owner state as one value per lock, for state timelines and
    // tables: 0 no lock at the path a configured gateway would use, then
    // alive, dead, reused, unknown.
    local lockStates = [['alive', 'green'], ['dead', 'red'], ['reused', 'red'], ['unknown', 'yellow']],
    lockState: 'max by (job, instance, gateway, path) (\n  (clawdbot_lock_present{%s} == 0) * 0\n' % self.sel + std.join('', [
      '  or (clawdbot_lock_owner_state{%s, state="%s"} == 1) * %d\n' % [self.sel, lockStates[i][0], i + 1]
      for i in std.range(0, std.length(lockStates) - 1)
    ]) + ')',
    lockStateMappings: { '0': ['no lock', 'text'] } + {
      ['%d' % (i + 1)]: lockStates[i]
      for i in std.range(0, std.length(lockStates) - 1)
    },

    uid(name):: '%s-%s' % [cfg.dashboardUIDPrefix, name],
    title(name):: cfg.dashboardNamePrefix + name,
  },
}
