/**
 * `npm run bench -- scoring`: telemetry reports scored per second, and points written per second to a real influxd.
 * Baselines in the same run: parsing + schema validation alone (the floor of handling a report at all), and bare
 * HTTP POSTs of the same line protocol to the same influxd (the floor of writing it).
 */
import { Aedes } from 'aedes';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseMessage, telemetrySchema, topics, TELEMETRY_SCHEMA_VERSION, type Telemetry } from '../protocol/index.js';
import { aedesBus, InfluxWriter, loadModel, Point, ScoreEngine, ScoringService } from '../scoring/index.js';
import type { Suite, SuiteResult } from './harness.js';
import { influxd } from './servers.js';

const list = Array.from({ length: 400 }, (_, i) => ({ name: `pkg${i}`, source: `src${i % 300}`, version: `1.${i}.0-1` }));

function report(device: string, reportId: number, time: number, withList: boolean, variant: number): Telemetry {
  return {
    schema: TELEMETRY_SCHEMA_VERSION,
    device,
    reportId,
    time: new Date(time).toISOString(),
    agentVersion: '0.1.0',
    os: { id: 'debian', versionId: '12', versionCodename: 'bookworm' },
    kernel: '6.1.0-27-amd64',
    listening: [
      { protocol: 'tcp', address: '0.0.0.0', port: 22, process: 'sshd' },
      ...(variant % 3 === 0 ? [{ protocol: 'tcp' as const, address: '0.0.0.0', port: 23, process: 'inetd' }] : []),
    ],
    firewall: { tool: 'nftables', rules: variant % 2 ? 5 : 0, defaultInputPolicy: variant % 2 ? 'drop' : 'accept' },
    ssh: { installed: true, settings: { passwordauthentication: variant % 4 ? 'no' : 'yes', permitrootlogin: 'no', x11forwarding: 'no' } },
    defaultCredentials: variant % 7 === 0 ? [{ user: 'pi', scheme: 'yescrypt' }] : [],
    failedLoginsLastHour: variant % 11,
    packages: { count: list.length, hash: createHash('sha256').update(device).digest('hex'), ...(withList ? { list } : {}) },
    autoUpdates: variant % 5 !== 0,
    mac: { apparmor: variant % 2 ? 'enabled' : 'absent', selinux: 'absent' },
    cpuVulnerabilities: [],
    rebootRequired: false,
    insecureServices: [],
    keyStore: 'file',
  };
}

export const scoringSuite: Suite = {
  name: 'scoring',
  description: 'telemetry reports scored per second; points written per second to a real influxd (Debian influxdb)',
  async run({ quick }) {
    const result: SuiteResult = { suite: 'scoring', measurements: [], ratios: [], goals: [] };
    const devices = quick ? 500 : 2000;
    const perDevice = quick ? 10 : 25;
    const t0 = Date.now() - 3_600_000;
    // Payloads are made up front: the producer's JSON.stringify is not scoring's cost.
    // Every report changes the device's state (and so its score): the worst case for publishing. Agents send the
    // package list only when it changed (after an upgrade), the hash otherwise: the first round carries the lists,
    // and is measured on its own; the goal is judged on the reports that arrive every interval (hash only).
    const listRound: Array<readonly [string, Buffer]> = [];
    const payloads: Array<readonly [string, Buffer]> = [];
    for (let r = 0; r < perDevice; r++) {
      for (let d = 0; d < devices; d++) (r === 0 ? listRound : payloads).push([`dev${d}`, Buffer.from(JSON.stringify(report(`dev${d}`, r, t0 + r * 1000, r === 0, d + r)))]);
    }
    const n = payloads.length;

    let start = performance.now();
    for (const [, p] of payloads) parseMessage(telemetrySchema, p);
    result.measurements.push({ name: 'parse + validate only (floor)', value: (n * 1000) / (performance.now() - start), unit: 'reports/s', baseline: true });

    const engine = new ScoreEngine({ model: loadModel(), thresholds: [0.4, 0.9] });
    for (const [device, p] of listRound) engine.ingestTelemetry(device, p);
    start = performance.now();
    for (const [device, p] of payloads) {
      engine.ingestTelemetry(device, p);
      engine.changed(device);
    }
    const scored = (n * 1000) / (performance.now() - start);
    result.measurements.push({ name: 'engine: ingest + compute + change check', value: scored, unit: 'reports/s' });

    // The whole service path on an in-process Aedes: ingest, coalesce, compute, publish retained.
    const broker = await Aedes.createBroker();
    const service = new ScoringService({ bus: aedesBus(broker), engine: new ScoreEngine({ model: loadModel(), thresholds: [0.4, 0.9] }), tickMs: 3_600_000 });
    await service.start();
    const feed = async (batch: Array<readonly [string, Buffer]>) => {
      const began = performance.now();
      for (let i = 0; i < batch.length; i += 1000) {
        for (const [device, p] of batch.slice(i, i + 1000)) service.onMessage(topics.telemetry(device), p);
        await new Promise((r) => setImmediate(r));
      }
      await new Promise((r) => setImmediate(r));
      return (batch.length * 1000) / (performance.now() - began);
    };
    const withLists = await feed(listRound);
    const viaService = await feed(payloads);
    result.measurements.push({ name: 'service on Aedes: reports with a 400-package list', value: withLists, unit: 'reports/s' });
    result.measurements.push({ name: 'service on Aedes: reports (hash only)', value: viaService, unit: 'reports/s' });
    await service.close();
    await new Promise<void>((r) => broker.close(() => r()));

    result.ratios.push({ name: 'engine / parse-only', of: 'engine: ingest + compute + change check', to: 'parse + validate only (floor)', value: scored / result.measurements[0]!.value });
    result.goals.push({ name: '>= 20,000 reports/s scored', met: viaService >= 20_000, detail: `${Math.round(viaService)} reports/s through the service (every one publishing a changed score), ${Math.round(scored)} in the engine` });

    // Points to a real influxd.
    const dir = mkdtempSync(join(tmpdir(), 'wott-bench-influx-'));
    const influx = spawnSync('sh', ['-c', 'command -v influxd']).status === 0 ? await influxd(dir) : undefined;
    await influx?.start();
    if (!influx) {
      result.goals.push({ name: '>= 100,000 points/s written', met: false, detail: 'influxd not found: apt-get install influxdb' });
      rmSync(dir, { recursive: true, force: true });
      return result;
    }
    try {
      const points = quick ? 100_000 : 400_000;
      const batch = 5000;
      await fetch(`${influx.url}/query`, { method: 'POST', body: new URLSearchParams({ q: 'CREATE DATABASE raw' }) });
      const lines: string[] = [];
      for (let i = 0; i < points; i++) lines.push(`trust_score,device=raw${i % 10_000},model=m score=0.5,f_firewall=-0.2 ${1_700_000_000_000 + i}`);
      start = performance.now();
      for (let i = 0; i < points; i += batch) {
        const res = await fetch(`${influx.url}/write?db=raw&precision=ms`, { method: 'POST', body: lines.slice(i, i + batch).join('\n') });
        await res.arrayBuffer();
      }
      const raw = (points * 1000) / (performance.now() - start);
      result.measurements.push({ name: 'bare HTTP POST of line protocol', value: raw, unit: 'points/s', baseline: true });

      const writer = new InfluxWriter({ url: influx.url, database: 'wott', spoolDir: join(dir, 'spool'), batchSize: batch, flushIntervalMs: 50 });
      await writer.start();
      start = performance.now();
      for (let i = 0; i < points; i++) {
        writer.add([new Point('trust_score').tag('device', `dev${i % 10_000}`).tag('model', 'm').floatField('score', (i % 100) / 100).floatField('f_firewall', -0.2).timestamp(new Date(1_700_000_000_000 + i))]);
        if (i % batch === 0) await writer.flush();
      }
      await writer.flush();
      while (writer.stats.written < points && writer.stats.dropped === 0) await writer.flush();
      const written = (points * 1000) / (performance.now() - start);
      await writer.close();
      result.measurements.push({ name: 'wott writer (Point + batches + v1 /write)', value: written, unit: 'points/s' });
      result.ratios.push({ name: 'writer / bare POST', of: 'wott writer (Point + batches + v1 /write)', to: 'bare HTTP POST of line protocol', value: written / raw });
      result.goals.push({ name: '>= 100,000 points/s written', met: written >= 100_000, detail: `${Math.round(written)} points/s in batches of ${batch}` });
    } finally {
      await influx.stop();
      rmSync(dir, { recursive: true, force: true });
    }
    return result;
  },
};
