/** Prometheus metrics for the gateway: one registry, served at /metrics on the HTTPS port. */
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import type { ScoringService } from '../scoring/index.js';

export function createMetrics(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'wott_process_' });
  return registry;
}

/**
 * Scoring's counters, read at scrape time (no per-message cost). `current` is the running scoring service, if any:
 * in a cluster only the leader scores, and the service is replaced when leadership comes back.
 */
export function registerScoringMetrics(registry: Registry, current: () => ScoringService | undefined, withInflux: boolean): void {
  const none: ScoringService['counters'] = { accepted: 0, rejected: 0, published: 0, refusedReports: {}, intrusionSources: {} };
  const counters = () => current()?.counters ?? none;
  new Counter({
    name: 'wott_scoring_messages_total',
    help: 'Telemetry, behaviour events and peer reports scoring accepted or ignored (malformed, replayed, out of order)',
    labelNames: ['result'],
    registers: [registry],
    collect() {
      this.reset();
      const c = counters();
      this.labels('accepted').inc(c.accepted);
      this.labels('ignored').inc(c.rejected);
    },
  });
  new Counter({
    name: 'wott_scores_published_total',
    help: 'Scores published (changes and periodic refreshes)',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(counters().published);
    },
  });
  new Counter({
    name: 'wott_peer_reports_refused_total',
    help: 'Peer reports (and intrusion reports over the rate) scoring refused, by reason: schema, huge, topic, self, unknown_device, future, too_old, replay, rate',
    labelNames: ['reason'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [reason, n] of Object.entries(counters().refusedReports)) this.labels(reason).inc(n);
    },
  });
  new Counter({
    name: 'wott_intrusion_sources_total',
    help: 'Intrusion sources in telemetry, by outcome: attributed to one device, shared (several devices held the address), unheld (none did), self, unknown_device, rate',
    labelNames: ['outcome'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [outcome, n] of Object.entries(counters().intrusionSources)) this.labels(outcome).inc(n);
    },
  });
  const noInflux = { spooledBatches: 0, written: 0, dropped: 0 };
  const stats = () => current()?.influxStats ?? noInflux;
  if (withInflux) {
    new Gauge({
      name: 'wott_influx_spooled_batches',
      help: 'Batches waiting on disk for InfluxDB',
      registers: [registry],
      collect() {
        this.set(stats().spooledBatches);
      },
    });
    new Counter({
      name: 'wott_influx_points_total',
      help: 'Points written to InfluxDB, or dropped (refused with a 4xx, or the spool was full)',
      labelNames: ['result'],
      registers: [registry],
      collect() {
        this.reset();
        const influx = stats();
        this.labels('written').inc(influx.written);
        this.labels('dropped').inc(influx.dropped);
      },
    });
  }
}

/** Runs of the periodic CRL refresh on this node: in a cluster it follows the lease, so only the leader's count moves. */
/** EST's admission control (ca/est.ts, enrollment.maxInProgress): work under way and requests turned away. */
export function registerEstMetrics(registry: Registry, stats: { readonly inProgress: number; readonly busyRefusals: number }): void {
  new Gauge({
    name: 'wott_est_in_progress',
    help: 'Enrollments and renewals being worked on (bounded by enrollment.maxInProgress)',
    registers: [registry],
    collect() {
      this.set(stats.inProgress);
    },
  });
  new Counter({
    name: 'wott_est_busy_refusals_total',
    help: 'Enrollments and renewals answered 503 (Retry-After) because enrollment.maxInProgress were under way',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(stats.busyRefusals);
    },
  });
}

export function registerCrlMetrics(registry: Registry): Counter {
  return new Counter({ name: 'wott_crl_refresh_runs_total', help: 'Periodic CRL refreshes run by this node (in a cluster: only while it leads)', registers: [registry] });
}
