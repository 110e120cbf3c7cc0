// A small Grafana dashboard library in plain jsonnet (grafonnet cannot be
// fetched here). It builds Grafana 10+ dashboard JSON (schemaVersion 39):
// panels are plain objects, refined with `+ d.mappings(...)`,
// `+ d.thresholds(...)`, `+ d.overrides(...)`; d.layout places rows of panels
// on Grafana's 24-column grid and numbers them.
//
// Every panel queries the dashboard's `datasource` variable, carries a
// description and a unit, and every dashboard declares a DS_PROMETHEUS input
// so that Grafana's "Import dashboard" asks for the Prometheus datasource.
{
  local d = self,

  // The datasource of every panel and query: the `datasource` variable.
  datasource:: { type: 'prometheus', uid: '${datasource}' },

  // A PromQL query. Range queries by default; instant table queries with
  // d.instantTarget.
  target(expr, legend='', refId='A'):: {
    datasource: d.datasource,
    editorMode: 'code',
    expr: expr,
    legendFormat: legend,
    range: true,
    instant: false,
    refId: refId,
  },
  instantTarget(expr, refId='A'):: d.target(expr, '', refId) + {
    format: 'table',
    range: false,
    instant: true,
  },

  // Gives the targets of a panel consecutive refIds A, B, C… unless set.
  local withRefIds(targets) = std.mapWithIndex(
    function(i, t) t { refId: std.char(std.codepoint('A') + i) },
    targets,
  ),

  // The common part of every panel. w and h are the panel's size on the grid
  // (24 columns); d.layout turns them into gridPos.
  panel(type, title, description, unit, targets, w=12, h=8):: {
    w:: w,
    h:: h,
    type: type,
    title: title,
    description: description,
    datasource: d.datasource,
    targets: withRefIds(targets),
    fieldConfig: {
      defaults: {
        unit: unit,
        mappings: [],
        thresholds: {
          mode: 'absolute',
          steps: [{ color: 'green', value: null }],
        },
      },
      overrides: [],
    },
    options: {},
  },

  timeseries(title, description, unit, targets, w=12, h=8, stack=false, bars=false, fill=10, min=null)::
    d.panel('timeseries', title, description, unit, targets, w, h) + {
      fieldConfig+: {
        defaults+: {
          color: { mode: 'palette-classic' },
          custom: {
            drawStyle: if bars then 'bars' else 'line',
            lineWidth: 1,
            fillOpacity: if bars then 80 else fill,
            gradientMode: 'none',
            showPoints: 'never',
            spanNulls: false,
            axisSoftMin: 0,
            stacking: { mode: if stack then 'normal' else 'none', group: 'A' },
          },
        } + (if min != null then { min: min } else {}),
      },
      options: {
        legend: { displayMode: 'table', placement: 'bottom', showLegend: true, calcs: ['lastNotNull', 'max'] },
        tooltip: { mode: 'multi', sort: 'desc' },
      },
    },

  // A single value per series (the last one). graph adds a sparkline.
  stat(title, description, unit, targets, w=6, h=4, graph=false, colorMode='value')::
    d.panel('stat', title, description, unit, targets, w, h) + {
      fieldConfig+: { defaults+: { color: { mode: 'thresholds' } } },
      options: {
        reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
        colorMode: colorMode,
        graphMode: if graph then 'area' else 'none',
        justifyMode: 'auto',
        orientation: 'auto',
        textMode: 'auto',
      },
    },

  // Discrete states over time, one row per series; use with d.mappings.
  stateTimeline(title, description, unit, targets, w=12, h=8)::
    d.panel('state-timeline', title, description, unit, targets, w, h) + {
      fieldConfig+: {
        defaults+: {
          color: { mode: 'thresholds' },
          custom: { lineWidth: 0, fillOpacity: 80 },
        },
      },
      options: {
        mergeValues: true,
        showValue: 'auto',
        alignValue: 'left',
        rowHeight: 0.9,
        legend: { displayMode: 'list', placement: 'bottom', showLegend: false },
        tooltip: { mode: 'single', sort: 'none' },
      },
    },

  // A table of instant queries (d.instantTarget). Several queries are merged
  // into one row per label set; hide lists columns not to show, rename maps
  // column names ('Value #A', label names) to headers.
  table(title, description, unit, targets, w=24, h=8, hide=[], rename={})::
    d.panel('table', title, description, unit, targets, w, h) + {
      fieldConfig+: {
        defaults+: {
          custom: { align: 'auto', cellOptions: { type: 'auto' }, filterable: false },
        },
      },
      options: { showHeader: true, cellHeight: 'sm', footer: { show: false } },
      transformations: (if std.length(targets) > 1 then [{ id: 'merge', options: {} }] else []) + [{
        id: 'organize',
        options: {
          excludeByName: { [c]: true for c in ['Time', '__name__'] + hide },
          renameByName: rename,
          indexByName: {},
        },
      }],
    },

  // Refinements, added with `+`.

  // mappings({ '0': ['DOWN', 'red'], '1': ['UP', 'green'] }): values to text
  // and colour.
  mappings(m):: {
    fieldConfig+: {
      defaults+: {
        mappings+: d.mappingsProperty(m),
      },
    },
  },

  // thresholds([['green', null], ['red', 1]]): colour steps from the base.
  thresholds(steps):: {
    fieldConfig+: {
      defaults+: {
        thresholds: {
          mode: 'absolute',
          steps: [{ color: s[0], value: s[1] } for s in steps],
        },
      },
    },
  },

  // Colour and style the series of one query (refId) differently, for
  // example a limit drawn as a dashed red line.
  overrideRefId(refId, properties):: {
    fieldConfig+: {
      overrides+: [{
        matcher: { id: 'byFrameRefID', options: refId },
        properties: [{ id: k, value: properties[k] } for k in std.objectFields(properties)],
      }],
    },
  },
  // The same for one column or series by its (display) name.
  overrideName(name, properties):: {
    fieldConfig+: {
      overrides+: [{
        matcher: { id: 'byName', options: name },
        properties: [{ id: k, value: properties[k] } for k in std.objectFields(properties)],
      }],
    },
  },
  // Value mappings as an override property: mappingsProperty({ '0': ['DOWN', 'red'] }).
  mappingsProperty(m):: [{
    type: 'value',
    options: {
      [std.objectFields(m)[i]]: { text: m[std.objectFields(m)[i]][0], color: m[std.objectFields(m)[i]][1], index: i }
      for i in std.range(0, std.length(std.objectFields(m)) - 1)
    },
  }],
  limitLine(refId, color='red'):: d.overrideRefId(refId, {
    color: { mode: 'fixed', fixedColor: color },
    'custom.lineStyle': { fill: 'dash', dash: [10, 10] },
    'custom.fillOpacity': 0,
  }),

  // Text shown instead of "No data" (for panels empty while all is well).
  noValue(text):: { fieldConfig+: { defaults+: { noValue: text } } },

  // A row and its panels, for d.layout.
  row(title, panels):: { title: title, panels: panels },

  // Places rows of panels on the grid: each row gets a row panel, its panels
  // fill lines of 24 columns left to right. Returns the flat panel list with
  // ids 1, 2, 3….
  layout(rows)::
    local placeRow(acc, r) =
      local start = { x: 0, y: acc.y + 1, lineH: 0, out: [] };
      local placed = std.foldl(
        function(s, p)
          local wrap = s.x + p.w > 24;
          local x = if wrap then 0 else s.x;
          local y = if wrap then s.y + s.lineH else s.y;
          {
            x: x + p.w,
            y: y,
            lineH: if wrap then p.h else std.max(s.lineH, p.h),
            out: s.out + [p { gridPos: { x: x, y: y, w: p.w, h: p.h } }],
          },
        r.panels,
        start,
      );
      {
        y: placed.y + placed.lineH,
        out: acc.out + [{
          type: 'row',
          title: r.title,
          collapsed: false,
          gridPos: { x: 0, y: acc.y, w: 24, h: 1 },
          panels: [],
        }] + placed.out,
      };
    local flat = std.foldl(placeRow, rows, { y: 0, out: [] }).out;
    std.mapWithIndex(function(i, p) p { id: i + 1 }, flat),

  // Template variables.
  datasourceVariable:: {
    name: 'datasource',
    label: 'Data source',
    type: 'datasource',
    query: 'prometheus',
    // Grafana's import replaces ${DS_PROMETHEUS} with the chosen datasource.
    current: { selected: true, text: '${DS_PROMETHEUS}', value: '${DS_PROMETHEUS}' },
    hide: 0,
    includeAll: false,
    multi: false,
    options: [],
    refresh: 1,
    regex: '',
    skipUrlSync: false,
  },
  // A multi-value variable from label_values(selector, label). "All" is the
  // regex allValue: .+ (every value) for labels every series has, as
  // dashboard-linter wants for job and instance; .* for a label some series
  // lack, so that "All" matches them too.
  queryVariable(name, label, selector, allValue='.+'):: {
    name: name,
    label: label,
    type: 'query',
    datasource: d.datasource,
    definition: 'label_values(%s, %s)' % [selector, name],
    // The classic string form, which every Grafana version reads.
    query: 'label_values(%s, %s)' % [selector, name],
    current: { selected: true, text: ['All'], value: ['$__all'] },
    hide: 0,
    includeAll: true,
    allValue: allValue,
    multi: true,
    options: [],
    refresh: 2,
    regex: '',
    skipUrlSync: false,
    sort: 1,
  },

  // An annotation from a PromQL query: a mark wherever expr returns a value.
  annotation(name, expr, legend, color='orange'):: {
    name: name,
    datasource: d.datasource,
    enable: true,
    hide: false,
    iconColor: color,
    expr: expr,
    step: '60s',
    titleFormat: name,
    textFormat: legend,
    useValueForTime: false,
  },

  // A dashboard, importable through Grafana's "Import dashboard".
  dashboard(title, uid, description, tags, variables, panels, annotations=[], refresh='1m', from='now-6h'):: {
    __inputs: [{
      name: 'DS_PROMETHEUS',
      label: 'Prometheus',
      description: 'The Prometheus that scrapes clawdbot_exporter.',
      type: 'datasource',
      pluginId: 'prometheus',
      pluginName: 'Prometheus',
    }],
    __requires: [
      { type: 'grafana', id: 'grafana', name: 'Grafana', version: '10.0.0' },
      { type: 'datasource', id: 'prometheus', name: 'Prometheus', version: '1.0.0' },
    ] + [
      { type: 'panel', id: t, name: t, version: '' }
      for t in std.set([p.type for p in panels if p.type != 'row'])
    ],
    uid: uid,
    title: title,
    description: description,
    tags: tags,
    // Provisioned from files: an edit in Grafana would be lost on the next
    // provisioning (and dashboard-linter wants it so).
    editable: false,
    graphTooltip: 1,
    fiscalYearStartMonth: 0,
    liveNow: false,
    schemaVersion: 39,
    version: 1,
    timezone: '',
    refresh: refresh,
    time: { from: from, to: 'now' },
    timepicker: {},
    links: [],
    annotations: {
      list: [{
        builtIn: 1,
        datasource: { type: 'grafana', uid: '-- Grafana --' },
        enable: true,
        hide: true,
        iconColor: 'rgba(0, 211, 255, 1)',
        name: 'Annotations and alerts',
        type: 'dashboard',
      }] + annotations,
    },
    templating: { list: variables },
    panels: panels,
  },
}
