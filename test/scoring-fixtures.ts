/** Telemetry for the scoring tests, collected by the real agent collectors from the fixture roots. */
import { resolve } from 'node:path';
import { collectState, realCrypt } from '../agent/collectors/index.js';
import { TELEMETRY_SCHEMA_VERSION, type BehaviourEvent, type Telemetry } from '../protocol/index.js';

const ROOTS = resolve('test/fixtures/roots');
const cache = new Map<string, Omit<Telemetry, 'device' | 'reportId' | 'time'>>();

/** A full report (with package list) of a fixture root, as `device`, numbered `reportId`, dated `time`. */
export function fixtureTelemetry(root: 'debian12-hardened' | 'rpi-factory', device: string, reportId: number, time: number): Telemetry {
  let base = cache.get(root);
  if (!base) {
    // The fixtures' auth logs are dated 2024-11-24 10:30 (local time for the Pi); collect as of then.
    const now = root === 'rpi-factory' ? new Date(2024, 10, 24, 10, 30) : new Date('2024-11-24T10:30:00Z');
    base = { schema: TELEMETRY_SCHEMA_VERSION, agentVersion: '0.1.0', keyStore: 'file', ...collectState(resolve(ROOTS, root), { crypt: realCrypt, now }) };
    cache.set(root, base);
  }
  return { ...structuredClone(base), device, reportId, time: new Date(time).toISOString() } as Telemetry;
}

export function event(device: string, type: BehaviourEvent['type'], extra: Partial<BehaviourEvent> = {}): string {
  return JSON.stringify({ device, type, time: new Date().toISOString(), verified: true, ...extra });
}

export function counters(device: string, messagesIn: number, intervalMs = 10_000, suppressedEvents = 0): string {
  return event(device, 'counters', {
    counters: { intervalMs, messagesIn, bytesIn: messagesIn * 10, messagesOut: 0, bytesOut: 0, publishDenied: 0, subscribeDenied: 0, suppressedEvents },
  });
}
