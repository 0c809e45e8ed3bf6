/**
 * The InfluxDB schema, kept to bounded cardinality: the device id and the model version are the only tags;
 * scores, factor contributions and counts are fields. Grafana's boards (grafana/) query exactly these names.
 */
import { Point } from '@influxdata/influxdb-client';
import type { BehaviourEvent, ScoreMessage } from '../protocol/index.js';
import type { CveFindingInput } from './factors.js';

export const MEASUREMENTS = {
  score: 'trust_score',
  behaviour: 'behaviour',
} as const;

/** Factor ids are a fixed set, but ceilings carry a suffix: keep field names to [a-zA-Z0-9_]. */
export const factorField = (id: string) => `f_${id.replace(/[^a-zA-Z0-9_]/g, '_')}`;

export function scorePoint(message: ScoreMessage, findings?: CveFindingInput[]): Point {
  const p = new Point(MEASUREMENTS.score).tag('device', message.device).tag('model', message.modelVersion).floatField('score', message.score);
  for (const f of message.factors) p.floatField(factorField(f.id), f.contribution);
  const worst = message.factors[0];
  if (worst && worst.contribution < 0) p.stringField('top_reason', worst.reason);
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
