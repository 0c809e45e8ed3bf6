/**
 * The Grafana boards, built with @grafana/grafana-foundation-sdk and committed as JSON (grafana/dashboards/).
 * `npm run grafana` regenerates them; a test checks the committed JSON is what this code produces.
 */
import type * as cog from '@grafana/grafana-foundation-sdk/cog';
import * as common from '@grafana/grafana-foundation-sdk/common';
import * as dashboard from '@grafana/grafana-foundation-sdk/dashboard';
import { PanelBuilder as HistogramPanel } from '@grafana/grafana-foundation-sdk/histogram';
import { PanelBuilder as StatPanel } from '@grafana/grafana-foundation-sdk/stat';
import { PanelBuilder as TablePanel } from '@grafana/grafana-foundation-sdk/table';
import { PanelBuilder as TimeSeriesPanel } from '@grafana/grafana-foundation-sdk/timeseries';
import { deviceQueries, fleetQueries } from './queries.js';

/** The datasource the provisioning file creates (grafana/provisioning/datasources/wott-influxdb.yaml). */
export const DATASOURCE: common.DataSourceRef = { type: 'influxdb', uid: 'wott-influxdb' };

/** An InfluxQL target: the SDK ships no InfluxDB query type, so this is the documented custom-query pattern. */
interface InfluxQuery extends cog.Dataquery {
  refId: string;
  datasource: common.DataSourceRef;
  query: string;
  rawQuery: true;
  resultFormat: 'time_series' | 'table';
}

class InfluxQL implements cog.Builder<cog.Dataquery> {
  constructor(
    private readonly query: string,
    private readonly format: 'time_series' | 'table' = 'time_series',
    private readonly refId = 'A',
  ) {}

  build(): InfluxQuery {
    return { refId: this.refId, datasource: DATASOURCE, query: this.query, rawQuery: true, resultFormat: this.format, _implementsDataqueryVariant() {} };
  }
}

/** The score scale every score panel shares: red below the lowest policy threshold, green above the highest. */
function scoreThresholds(thresholds: number[]): dashboard.ThresholdsConfigBuilder {
  const colors = ['red', 'orange', 'yellow', 'green'];
  const steps: dashboard.Threshold[] = [{ value: null as unknown as number, color: 'red' }];
  [...thresholds].sort((a, b) => a - b).forEach((value, i) => steps.push({ value, color: colors[Math.min(i + 1, colors.length - 1)]! }));
  return new dashboard.ThresholdsConfigBuilder().mode(dashboard.ThresholdsMode.Absolute).steps(steps);
}

const lastValue = () => new common.ReduceDataOptionsBuilder().calcs(['lastNotNull']).values(false);

/** A count that should be 0: green at 0, `alert` from 1. */
function countStat(title: string, description: string, query: string, alert: string): StatPanel {
  return new StatPanel()
    .title(title)
    .description(description)
    .withTarget(new InfluxQL(query))
    .reduceOptions(lastValue())
    .noValue('0')
    .thresholds(new dashboard.ThresholdsConfigBuilder().mode(dashboard.ThresholdsMode.Absolute).steps([{ value: null as unknown as number, color: 'green' }, { value: 1, color: alert }]))
    .height(5);
}

/** Policy thresholds shown on the fleet board when none are given (the ones in wott.example.yaml). */
export const DEFAULT_THRESHOLDS = [0.4, 0.9];

export function fleetDashboard(thresholds: number[] = DEFAULT_THRESHOLDS): dashboard.Dashboard {
  const b = new dashboard.DashboardBuilder('wott: fleet trust')
    .uid('wott-fleet')
    .tags(['wott', 'trust'])
    .description('Trust Scores across the fleet: distribution, devices below each policy threshold, the lowest-scored devices and why, certificates, denials and authentication failures.')
    .refresh('30s')
    .time({ from: 'now-6h', to: 'now' })
    .timezone('browser')
    .withRow(new dashboard.RowBuilder('Now'))
    .withPanel(new StatPanel().title('Devices').description('Devices with a score in the time range.').withTarget(new InfluxQL(fleetQueries.devices)).reduceOptions(lastValue()).span(4).height(5));
  for (const t of [...thresholds].sort((a, b) => b - a)) {
    b.withPanel(
      countStat(`Below ${t}`, `Devices whose latest score is under ${t}: topics with that threshold are closed to them.`, fleetQueries.below(t), 'orange').span(
        Math.max(2, Math.floor(8 / Math.max(1, thresholds.length))),
      ),
    );
  }
  b.withPanel(
    countStat(
      'Certificates expiring within 48 h',
      'Devices whose certificate ends within 48 hours of their latest score: a healthy agent renews at 2/3 of the lifetime.',
      fleetQueries.expiringSoon(48 * 3600),
      'red',
    ).span(4),
  )
    .withPanel(
      new HistogramPanel()
        .title('Score distribution')
        .description("Each device's latest score.")
        .withTarget(new InfluxQL(fleetQueries.distribution, 'table'))
        .bucketSize(0.05)
        .min(0)
        .max(1)
        .span(8)
        .height(8),
    )
    .withPanel(
      new TablePanel()
        .title('Lowest-scored devices')
        .description('Latest score and the reason that costs it most (wott score show ID for every factor and fix).')
        .withTarget(new InfluxQL(fleetQueries.lowest, 'table'))
        .withTransformation({ id: 'organize', options: { excludeByName: { Time: true }, indexByName: { device: 0, score: 1, 'top reason': 2 } } })
        .sortBy([new common.TableSortByFieldStateBuilder().displayName('score').desc(false)])
        .thresholds(scoreThresholds(thresholds))
        .overrideByName('score', [{ id: 'custom.cellOptions', value: { type: 'color-background' } }, { id: 'decimals', value: 3 }])
        .span(16)
        .height(8),
    )
    .withRow(new dashboard.RowBuilder('Over time'))
    .withPanel(
      new TimeSeriesPanel()
        .title('Fleet score over time')
        .withTarget(new InfluxQL(fleetQueries.overTime))
        .min(0)
        .max(1)
        .thresholds(scoreThresholds(thresholds))
        .thresholdsStyle(new common.GraphThresholdsStyleConfigBuilder().mode(common.GraphThresholdsStyleMode.Dashed))
        .span(12)
        .height(8),
    )
    .withPanel(
      new TablePanel()
        .title('Certificates by expiry')
        .withTarget(new InfluxQL(fleetQueries.certificates, 'table'))
        .withTransformation({ id: 'organize', options: { excludeByName: { Time: true } } })
        .sortBy([new common.TableSortByFieldStateBuilder().displayName('expires').desc(false)])
        .overrideByName('expires', [{ id: 'unit', value: 'dateTimeAsIso' }])
        .span(12)
        .height(8),
    )
    .withPanel(new TimeSeriesPanel().title('Policy denials').description('Denied publishes and subscribes, from the broker counters.').withTarget(new InfluxQL(fleetQueries.denials)).min(0).span(12).height(8))
    .withPanel(
      new TimeSeriesPanel()
        .title('Authentication failures')
        .description('Refused TLS or identity checks that named a device (revoked, expired, forged certificates).')
        .withTarget(new InfluxQL(fleetQueries.authFailures))
        .min(0)
        .span(12)
        .height(8),
    )
    .withPanel(
      new TimeSeriesPanel()
        .title('Lateral movement')
        .description('Login attempts and dropped connections other devices saw from fleet devices (by the device they came from).')
        .withTarget(new InfluxQL(fleetQueries.lateral))
        .min(0)
        .span(12)
        .height(8),
    );
  return numbered(b.build());
}

/** Stable, unique panel ids (the builder leaves them unset, and rows at 0). */
function numbered(d: dashboard.Dashboard): dashboard.Dashboard {
  d.panels?.forEach((p, i) => (p.id = i + 1));
  return d;
}

export function deviceDashboard(thresholds: number[] = DEFAULT_THRESHOLDS): dashboard.Dashboard {
  const b = new dashboard.DashboardBuilder('wott: device')
    .uid('wott-device')
    .tags(['wott', 'trust'])
    .description("One device: its score and each factor's contribution over time, behaviour the broker observed, and its CVE findings.")
    .refresh('30s')
    .time({ from: 'now-24h', to: 'now' })
    .timezone('browser')
    .withVariable(
      new dashboard.QueryVariableBuilder('device')
        .label('Device')
        .datasource(DATASOURCE)
        .query(deviceQueries.devices)
        .definition(deviceQueries.devices)
        .refresh(dashboard.VariableRefresh.OnTimeRangeChanged)
        .sort(dashboard.VariableSort.AlphabeticalAsc),
    )
    .withPanel(new StatPanel().title('Score').withTarget(new InfluxQL(deviceQueries.score)).reduceOptions(lastValue()).min(0).max(1).decimals(3).thresholds(scoreThresholds(thresholds)).span(4).height(5))
    .withPanel(new StatPanel().title('Costs most').withTarget(new InfluxQL(deviceQueries.topReason)).reduceOptions(new common.ReduceDataOptionsBuilder().calcs(['lastNotNull']).fields('/.*/')).span(12).height(5))
    .withPanel(new StatPanel().title('Vulnerabilities').withTarget(new InfluxQL(deviceQueries.cveCounts)).reduceOptions(lastValue()).noValue('no data loaded').span(8).height(5))
    .withPanel(new TimeSeriesPanel().title('Score').withTarget(new InfluxQL(deviceQueries.scoreOverTime)).min(0).max(1).thresholds(scoreThresholds(thresholds)).thresholdsStyle(new common.GraphThresholdsStyleConfigBuilder().mode(common.GraphThresholdsStyleMode.Dashed)).span(12).height(8))
    .withPanel(
      new TimeSeriesPanel()
        .title('Factor contributions')
        .description('What each factor costs (negative); wott score show ID gives the reasons and fixes.')
        .withTarget(new InfluxQL(deviceQueries.factors))
        .withTransformation({ id: 'renameByRegex', options: { regex: '^.*mean_f_(.*)$', renamePattern: '$1' } })
        .max(0)
        .span(12)
        .height(8),
    )
    .withPanel(new TimeSeriesPanel().title('Behaviour events').description('What the broker observed, by type.').withTarget(new InfluxQL(deviceQueries.events)).min(0).span(12).height(8))
    .withPanel(new TimeSeriesPanel().title('Messages').withTarget(new InfluxQL(deviceQueries.traffic)).min(0).span(12).height(8))
    .withPanel(
      new TimeSeriesPanel()
        .title('Lateral movement')
        .description('Failed logins and dropped connections from this device, as other devices reported them (by reporter).')
        .withTarget(new InfluxQL(deviceQueries.lateral))
        .min(0)
        .span(24)
        .height(8),
    )
    .withPanel(
      new TablePanel()
        .title('CVE findings')
        .description('Known, fixed vulnerabilities in installed packages, most severe first (wott cve update loads the data).')
        .withTarget(new InfluxQL(deviceQueries.findings, 'table'))
        .withTransformation({ id: 'filterByValue', options: { type: 'exclude', match: 'any', filters: [{ fieldName: 'CVE', config: { id: 'equal', options: { value: '' } } }] } })
        .withTransformation({ id: 'organize', options: { excludeByName: { Time: true, rank: true } } })
        .span(24)
        .height(10),
    );
  return numbered(b.build());
}

/** File name → JSON text, as committed. */
export function renderDashboards(thresholds: number[] = DEFAULT_THRESHOLDS): Record<string, string> {
  return {
    'fleet-trust.json': JSON.stringify(fleetDashboard(thresholds), null, 2) + '\n',
    'device.json': JSON.stringify(deviceDashboard(thresholds), null, 2) + '\n',
  };
}
