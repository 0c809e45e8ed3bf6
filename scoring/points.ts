/**
 * The InfluxDB schema, kept to bounded cardinality: the device id and the model version are the only tags;
 * scores, factor contributions and counts are fields. Grafana's boards (grafana/) query exactly these names.
 */
import { Point } from '@influxdata/influxdb-client';
import type { BehaviourEvent, ScoreMessage } from '../protocol/index.js';
import type { LateralObservation } from './engine.js';
import type { CveFindingInput } from './factors.js';

export const MEASUREMENTS = {
  score: 'trust_score',
  behaviour: 'behaviour',
  cveFinding: 'cve_finding',
  lateralMovement: 'lateral_movement',
} as const;

/** Findings kept per device in InfluxDB (tag `rank`, so the series count stays bounded). */
export const MAX_FINDING_POINTS = 20;

/** Factor ids are a fixed set, but ceilings carry a suffix: keep field names to [a-zA-Z0-9_]. */
export const factorField = (id: string) => `f_${id.replace(/[^a-zA-Z0-9_]/g, '_')}`;

export function scorePoint(message: ScoreMessage, findings?: CveFindingInput[], certificateNotAfter?: number): Point {
  const p = new Point(MEASUREMENTS.score).tag('device', message.device).tag('model', message.modelVersion).floatField('score', message.score);
  for (const f of message.factors) p.floatField(factorField(f.id), f.contribution);
  // Always written, so that last(top_reason) is the current one.
  const worst = message.factors[0];
  p.stringField('top_reason', worst && worst.contribution < 0 ? worst.reason : 'nothing costs points');
  if (certificateNotAfter !== undefined) {
    p.intField('cert_not_after', certificateNotAfter);
    p.intField('cert_remaining_s', Math.round((certificateNotAfter - Date.parse(message.time)) / 1000));
  }
  if (findings) {
    p.intField('cves', findings.length);
    p.intField('cves_high', findings.filter((f) => f.severity === 'high' || f.severity === 'critical').length);
    p.intField('cves_exposed', findings.filter((f) => f.exposed).length);
  }
  return p.timestamp(new Date(message.time));
}

export function behaviourPoint(event: BehaviourEvent, now: number): Point {
  const p = new Point(MEASUREMENTS.behaviour).tag('device', event.device).tag('type', event.type).intField('count', 1).booleanField('verified', event.verified);
  const c = event.counters;
  if (c) {
    p.intField('messages_in', c.messagesIn).intField('messages_out', c.messagesOut).intField('bytes_in', c.bytesIn).intField('bytes_out', c.bytesOut);
    p.intField('publish_denied', c.publishDenied).intField('subscribe_denied', c.subscribeDenied).intField('interval_ms', c.intervalMs);
  }
  // Scoring's clock: the broker's is the same process or trusted, but a skewed clock must not scatter points.
  return p.timestamp(new Date(now));
}

/**
 * The device's findings, most severe first, one point per rank up to MAX_FINDING_POINTS; ranks beyond the current
 * count are written empty, so a fixed vulnerability disappears from the board.
 */
export function findingPoints(device: string, findings: CveFindingInput[], time: string): Point[] {
  const at = new Date(time);
  const out: Point[] = [];
  for (let rank = 0; rank < MAX_FINDING_POINTS; rank++) {
    const f = findings[rank];
    const p = new Point(MEASUREMENTS.cveFinding).tag('device', device).tag('rank', String(rank).padStart(2, '0'));
    if (f) {
      p.stringField('cve', f.cve).stringField('package', f.source).stringField('installed', f.installed).stringField('fixed', f.fixed);
      p.stringField('severity', f.severity).booleanField('exposed', f.exposed).stringField('scope', f.remote === null ? 'unknown' : f.remote ? 'remote' : 'local').stringField('action', f.action);
    } else {
      p.stringField('cve', '');
    }
    out.push(p.timestamp(at));
  }
  return out;
}

/**
 * One intrusion source attributed to a device: tags subject (the device it came from) and reporter (the device
 * that saw it), both fleet device ids, so the series count stays within the fleet's pairs that actually occur.
 */
export function lateralPoint(o: LateralObservation, now: number): Point {
  return new Point(MEASUREMENTS.lateralMovement)
    .tag('subject', o.subject)
    .tag('reporter', o.reporter)
    .intField('count', o.logins + o.dropped)
    .intField('failed_logins', o.logins)
    .intField('dropped', o.dropped)
    .stringField('services', o.services.join(','))
    .timestamp(new Date(now));
}
