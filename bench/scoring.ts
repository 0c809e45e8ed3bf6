/**
 * `npm run bench -- scoring`: telemetry reports scored per second, peer and intrusion reports (lateral movement) scored
 * per second against plain state reports, address → device lookups per second, and points written per second to a
 * real influxd.
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
import { AddressBook, aedesBus, InfluxWriter, loadModel, Point, ScoreEngine, ScoringService } from '../scoring/index.js';
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

    peersAndLateral(result, quick);

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

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/**
 * Peer reports and intrusion reports at a 10,000-device fleet's rates, through the engine (ingest + compute + change
 * check, as for state reports), against plain state reports in the same run; and the address → device lookup alone
 * (in memory: the engine never touches storage for it). Median of rounds, one report per device per round.
 *
 * What such a fleet produces in an outbreak, generously: agents every minute (the default is 15 min) → 167 state
 * reports/s, one peer report per device per minute → 167/s, and every state report naming 8 intrusion sources →
 * 167 intrusion reports/s, 1,333 lookups/s. Each intrusion report re-scores its reporter and up to 8 subjects at
 * once (the attacker must lose trust now), so it can not cost less than that many state reports; the goals say
 * that the lookups and bookkeeping add little beyond it, and that the outbreak fits in half of one core.
 */
function peersAndLateral(result: SuiteResult, quick: boolean): void {
  const fleet = 10_000;
  const rounds = quick ? 3 : 5;
  const sources = 8;
  const model = loadModel();
  const known = new Set(Array.from({ length: fleet }, (_, i) => `dev${i}`));
  const address = (i: number) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
  const book = new AddressBook({ limit: model.lateralMovement.addresses });
  const t0 = Date.now();
  for (let i = 0; i < fleet; i++) book.connect(`dev${i}`, address(i), 'n1', t0 - 60_000);
  // Some churn and NAT: closed sessions and a few hundred addresses shared by two devices.
  for (let i = 0; i < fleet; i += 20) {
    book.connect(`dev${i}`, address(fleet + i), 'n2', t0 - 50_000);
    book.disconnect(`dev${i}`, address(fleet + i), 'n2', t0 - 40_000);
    book.connect(`dev${i + 1}`, address(i), 'n2', t0 - 30_000);
  }
  const engine = new ScoreEngine({ model, thresholds: [0.4, 0.9], caFacts: (d) => (known.has(d) ? { state: 'active' } : undefined), addresses: book });
  const devices = [...known];
  const listed = Array.from({ length: 400 }, (_, i) => ({ name: `pkg${i}`, source: `src${i % 300}`, version: `1.${i}.0-1` }));
  for (let d = 0; d < fleet; d++) engine.ingestTelemetry(devices[d]!, Buffer.from(JSON.stringify({ ...report(devices[d]!, 0, t0 - 30_000, false, d), packages: { count: 400, hash: createHash('sha256').update(devices[d]!).digest('hex'), list: listed } })));
  for (const d of devices) engine.changed(d, true);

  let reportId = 1;
  const plain: number[] = [];
  const peers: number[] = [];
  const intrusions: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const id = reportId++;
    const now = Date.now();
    const state = devices.map((d, i) => [d, Buffer.from(JSON.stringify(report(d, id, now, false, i + r)))] as const);
    const peer = devices.map((d, i) => [d, `dev${(i + 1 + r) % fleet}`, Buffer.from(JSON.stringify({ reporter: d, subject: `dev${(i + 1 + r) % fleet}`, reportId: id, time: new Date(now).toISOString(), rating: 0.2, reason: 'port scan' }))] as const);
    const intr = devices.map((d, i) => {
      const base = report(d, id + 1_000_000, now, false, i + r);
      const list = Array.from({ length: sources }, (_, k) => ({ address: address((i + 1 + k * 97 + r) % fleet), failedLogins: 30, dropped: 2, services: ['ssh' as const] }));
      return [d, Buffer.from(JSON.stringify({ ...base, intrusions: { windowSeconds: 60, sources: list } }))] as const;
    });

    let start = performance.now();
    for (const [d, p] of state) {
      engine.ingestTelemetry(d, p);
      engine.changed(d);
    }
    plain.push((fleet * 1000) / (performance.now() - start));

    start = performance.now();
    for (const [reporter, subject, p] of peer) {
      engine.ingestReport(reporter, subject, p);
      engine.changed(subject);
    }
    peers.push((fleet * 1000) / (performance.now() - start));

    start = performance.now();
    for (const [d, p] of intr) {
      const res = engine.ingestTelemetry(d, p);
      engine.changed(d);
      if (res.accepted) for (const o of res.lateral ?? []) engine.changed(o.subject);
    }
    intrusions.push((fleet * 1000) / (performance.now() - start));
  }
  const lookups = 200_000;
  const probes = Array.from({ length: lookups }, (_, i) => address((i * 7919) % (fleet * 2)));
  const lookupRounds: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const now = Date.now();
    let held = 0;
    const start = performance.now();
    for (const a of probes) held += book.holders(a, now - 120_000, now).length;
    lookupRounds.push((lookups * 1000) / (performance.now() - start));
    if (held === 0) throw new Error('bench: no lookup found a holder');
  }

  const names = {
    plain: 'engine, 10k fleet: state reports (hash only)',
    peer: 'engine, 10k fleet: peer reports',
    intrusion: `engine, 10k fleet: state reports with ${sources} intrusion sources`,
    lookup: 'address → device lookups (in memory)',
  };
  const m = { plain: median(plain), peer: median(peers), intrusion: median(intrusions), lookup: median(lookupRounds) };
  result.measurements.push({ name: names.plain, value: m.plain, unit: 'reports/s', baseline: true });
  result.measurements.push({ name: names.peer, value: m.peer, unit: 'reports/s' });
  result.measurements.push({ name: names.intrusion, value: m.intrusion, unit: 'reports/s' });
  result.measurements.push({ name: names.lookup, value: m.lookup, unit: 'lookups/s' });
  result.ratios.push({ name: 'peer reports / state reports', of: names.peer, to: names.plain, value: m.peer / m.plain });
  result.ratios.push({ name: 'intrusion reports / state reports', of: names.intrusion, to: names.plain, value: m.intrusion / m.plain });
  result.goals.push({ name: 'a peer report costs at most 1.25 state reports', met: m.peer / m.plain >= 0.8, detail: `ratio ${(m.peer / m.plain).toFixed(2)}` });
  result.goals.push({
    name: `an intrusion report costs at most one state report per device it re-scores (1 + ${sources})`,
    met: m.intrusion / m.plain >= 1 / (1 + sources),
    detail: `ratio ${(m.intrusion / m.plain).toFixed(3)} (floor ${(1 / (1 + sources)).toFixed(3)}); lookups ${Math.round(m.lookup)}/s over ${book.size} holdings`,
  });
  // The outbreak's load (see above) as a share of one core.
  const need = fleet / 60;
  const share = need / m.plain + need / m.peer + need / m.intrusion;
  result.goals.push({
    name: 'a 10,000-device fleet in an outbreak fits in half of one core',
    met: share <= 0.5,
    detail: `${(share * 100).toFixed(1)}% of a core for ${Math.round(need)} state + ${Math.round(need)} peer + ${Math.round(need)} intrusion reports/s (${sources} sources each) and ${Math.round(need * sources)} lookups/s`,
  });
}
