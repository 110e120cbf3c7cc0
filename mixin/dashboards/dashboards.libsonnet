// The Grafana dashboards of the clawdbot mixin, rendered to grafana/*.json.
// They use $._config's dashboardTags, dashboardNamePrefix, dashboardUIDPrefix
// and clawdbotExporterSelector, the thresholds the alerts share, and
// remediationPanelsEnabled (default true): the Remediation row of the
// overview, on the remediation webhook's metrics.
{
  grafanaDashboards+:: {
    'clawdbot-overview.json': (import 'overview.libsonnet').new($._config),
    'clawdbot-local-state.json': (import 'local-state.libsonnet').new($._config),
  },
}
