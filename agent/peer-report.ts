/**
 * Peer reports from a device (issue 18): "device X behaved like this", published with the device's own certificate
 * on wott/v1/reports/{reporter}/{subject} (the broker lets a device publish only its own reports).
 *
 * Report ids: scoring drops a report whose id is not above the reporter's last, so an id must never repeat, even
 * after a restart, and the agent CLI, an application's link and its trust client may all report for one device.
 * Each id is max(last id + 1, now in ms): persisted where there is a store, and increasing across independent
 * reporters on one device as long as its clock does not step back.
 *
 * Rate: scoring keeps only each reporter's latest report about a subject, so repeating one is pointless; the
 * client refuses a second report about the same subject within `perSubjectMs`, and more than `maxPerWindow`
 * reports in `windowMs`, before anything is sent.
 */
import { randomBytes } from 'node:crypto';
import mqtt from 'mqtt';
import { peerReportSchema, topics, type PeerReport } from '../protocol/index.js';
import type { AgentStore, Identity, PeerState } from './store.js';

export interface PeerRateLimits {
  /** Shortest time between two reports about the same subject (default one minute). */
  perSubjectMs: number;
  /** At most this many reports … (default 30) */
  maxPerWindow: number;
  /** … in this long (default one hour). */
  windowMs: number;
}

export const DEFAULT_PEER_RATE: PeerRateLimits = { perSubjectMs: 60_000, maxPerWindow: 30, windowMs: 3_600_000 };

/** Refused before sending: too soon or too many. */
export class PeerRateError extends Error {
  override name = 'PeerRateError';
}

export interface PeerReportInput {
  subject: string;
  /** 1 = behaves as expected … 0 = hostile. */
  rating: number;
  reason: string;
}

/**
 * The next report and the bookkeeping to persist before publishing it. Pure. Throws on a report about oneself,
 * an invalid field (the protocol schema's message) or the rate bound.
 */
export function nextPeerReport(state: PeerState, reporter: string, input: PeerReportInput, now: number, limits: PeerRateLimits = DEFAULT_PEER_RATE): { report: PeerReport; state: PeerState } {
  if (input.subject === reporter) throw new Error('a device cannot report about itself');
  const parsed = peerReportSchema.safeParse({ reporter, subject: input.subject, reportId: 0, time: new Date(now).toISOString(), rating: input.rating, reason: input.reason });
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(`invalid peer report: ${issue?.path.join('.') || '(root)'}: ${issue?.message}`);
  }
  const recent = state.recent.filter((r) => now - r.at < Math.max(limits.windowMs, limits.perSubjectMs) && r.at <= now);
  const last = recent.filter((r) => r.subject === input.subject).reduce((a, r) => Math.max(a, r.at), -Infinity);
  if (now - last < limits.perSubjectMs) {
    throw new PeerRateError(`already reported ${input.subject} ${Math.round((now - last) / 1000)} s ago: at most one report per subject every ${Math.round(limits.perSubjectMs / 1000)} s (scoring keeps only the latest)`);
  }
  if (recent.filter((r) => now - r.at < limits.windowMs).length >= limits.maxPerWindow) {
    throw new PeerRateError(`at most ${limits.maxPerWindow} peer reports every ${Math.round(limits.windowMs / 1000)} s`);
  }
  const reportId = Math.max(state.lastId + 1, now);
  const kept = [...recent, { subject: input.subject, at: now }].slice(-1024);
  return { report: { ...parsed.data, reportId }, state: { lastId: reportId, recent: kept } };
}

export interface PublishTarget {
  /** Brokers, tried in turn. */
  urls: string[];
  caPem: string;
  identity: Identity;
  /** TLS server name, when it differs from the URL's host. */
  servername?: string;
  timeoutMs?: number;
}

/** Publishes one report (QoS 1) on its own short session and resolves when the broker acknowledged it. */
export async function publishPeerReport(target: PublishTarget, report: PeerReport): Promise<void> {
  let lastError: Error | undefined;
  for (const url of target.urls) {
    // Its own client id suffix: the agent's telemetry session (client id = device) keeps running beside it.
    const client = mqtt.connect(url, {
      key: target.identity.keyPem,
      cert: target.identity.certPem,
      ca: target.caPem,
      ...(target.servername ? { servername: target.servername } : {}),
      clientId: `${report.reporter}:peer-report-${randomBytes(4).toString('hex')}`,
      protocolVersion: 4,
      reconnectPeriod: 0,
      connectTimeout: target.timeoutMs ?? 15_000,
    });
    try {
      await new Promise<void>((resolve, reject) => {
        client.once('connect', () => resolve());
        client.once('error', reject);
        client.once('close', () => reject(new Error(`connection to ${url} closed`)));
      });
      await new Promise<void>((resolve, reject) => {
        client.once('close', () => reject(new Error('connection closed before the broker acknowledged the report')));
        client.publish(topics.reports(report.reporter, report.subject), JSON.stringify(report), { qos: 1 }, (err) => (err ? reject(err) : resolve()));
      });
      return;
    } catch (err) {
      lastError = err as Error;
    } finally {
      await client.endAsync(true).catch(() => undefined);
    }
  }
  throw new Error(`peer report not delivered: ${lastError?.message ?? 'no broker'}`);
}

/** The agent's reportPeer: bookkeeping in the agent directory, the device's current certificate. */
export async function reportPeerFromStore(
  store: AgentStore,
  input: PeerReportInput,
  options: { urls: string[]; limits?: PeerRateLimits; now?: number },
): Promise<PeerReport> {
  const state = store.state();
  const { report, state: next } = nextPeerReport(store.peerState(), state.device, input, options.now ?? Date.now(), options.limits);
  store.savePeerState(next); // before sending: a crash after it never reuses the id
  try {
    await publishPeerReport({ urls: options.urls, caPem: store.caPem(), identity: store.identity(state) }, report);
  } catch (err) {
    // Not delivered: it does not count against the rate (the id stays used).
    const now = store.peerState();
    store.savePeerState({ ...now, recent: now.recent.filter((r) => !(r.subject === report.subject && r.at === Date.parse(report.time))) });
    throw err;
  }
  return report;
}
