/**
 * Wires a scoring service from a data folder: the embedded store (data/scoring/scores.db), CA facts from the
 * inventory when it is there, the InfluxDB writer (spool in data/scoring/influx-spool) when configured.
 * Used by `wott gateway` (in-process bus) and `wott scoring` (MQTT bus).
 */
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { ScoringBus } from './bus.js';
import type { CaFactsSource } from './ca-facts.js';
import { ScoreEngine, type VulnerabilityMatcher } from './engine.js';
import { InfluxWriter, type InfluxOptions } from './influx.js';
import type { ScoreModel } from './model.js';
import { ScoringService, type ScoringServiceOptions } from './service.js';
import { openSelectedScoreStore, openSelectedVulnStore, type StoreSelection } from '../store/index.js';
import { CveDatabase } from '../vuln/index.js';

/**
 * How often scoring re-checks the CVE store's generation: `wott cve update` (often another process) loads new data,
 * and scoring's matcher is synchronous, so it holds the index in memory and rebuilds it when the generation moved.
 */
const CVE_RECHECK_MS = 1000;

export interface StartScoringOptions {
  dataDir: string;
  bus: ScoringBus;
  model: ScoreModel;
  republishMs: number;
  historyRetentionMs: number;
  thresholds?: number[];
  influx?: Omit<InfluxOptions, 'spoolDir' | 'log'>;
  vulnerabilities?: VulnerabilityMatcher;
  tickMs?: number;
  log?: Logger;
  /** Where scores and CVE data live (wott.yaml `store:`); default: the SQLite files in dataDir. */
  store?: StoreSelection;
  /** What the CA knows about devices (the FleetView, where the CA inventory is at hand). */
  caFacts?: CaFactsSource;
  /** The broker's live device sessions when scoring starts (in-process only: this node's), and the node they are on. */
  sessions?: { node: string; list: () => Array<{ device: string; remoteAddress: string | null; since: number }> };
  /** In a cluster: the scoring lease's epoch, carried by every score and fencing every store write (ScoringServiceOptions.epoch). */
  epoch?: number;
  /** In a cluster: the live nodes, to close the sessions of a dead one (ScoringServiceOptions.nodes). */
  nodes?: ScoringServiceOptions['nodes'];
  /** Told when the store refused a write from a newer leader's epoch. */
  onDeposed?: ScoringServiceOptions['onDeposed'];
  /** Called with every published score and its findings, from the first (start republishes every known score). */
  onScore?: Parameters<ScoringService['onScore']>[0];
}

export const scoringPaths = (dataDir: string) => ({
  store: join(dataDir, 'scoring', 'scores.db'),
  spool: join(dataDir, 'scoring', 'influx-spool'),
});

export async function startScoring(options: StartScoringOptions): Promise<ScoringService> {
  const paths = scoringPaths(options.dataDir);
  const facts = options.caFacts;
  // `wott cve update` loads the feed into data/cve/cve.db; scoring picks up each new generation.
  const cveStore = options.vulnerabilities ? undefined : await openSelectedVulnStore(options.store, options.dataDir);
  let lastCveError = '';
  const onCveError = (err: Error) => {
    // Re-checked every second: say it once, not every second.
    if (err.message !== lastCveError) options.log?.warn({ err: err.message }, 'scoring: could not re-read the CVE data; matching with the previous data');
    lastCveError = err.message;
  };
  const cves = cveStore ? await CveDatabase.open(cveStore, { recheckMs: CVE_RECHECK_MS, onError: onCveError }) : undefined;
  const vulnerabilities = options.vulnerabilities ?? cves!;
  const engine = new ScoreEngine({
    model: options.model,
    ...(facts ? { caFacts: (device: string) => facts.facts(device) } : {}),
    vulnerabilities,
    ...(options.thresholds ? { thresholds: options.thresholds } : {}),
  });
  const store = await openSelectedScoreStore(options.store, paths.store, { retentionMs: options.historyRetentionMs });
  const influx = options.influx ? new InfluxWriter({ ...options.influx, spoolDir: paths.spool, ...(options.log ? { log: options.log } : {}) }) : undefined;
  await influx?.start();
  let stopFacts: (() => void) | undefined;
  const service = new ScoringService({
    bus: options.bus,
    engine,
    store,
    ...(influx ? { influx } : {}),
    ...(options.log ? { log: options.log } : {}),
    republishMs: options.republishMs,
    ...(options.tickMs ? { tickMs: options.tickMs } : {}),
    ...(options.epoch !== undefined ? { epoch: options.epoch } : {}),
    ...(options.onDeposed ? { onDeposed: options.onDeposed } : {}),
    ...(options.nodes ? { nodes: options.nodes } : {}),
    onClose: async () => {
      stopFacts?.();
      cves?.close();
      await Promise.all([store.close(), cveStore?.close()]);
    },
  });
  if (options.onScore) service.onScore(options.onScore);
  // Sessions opened before this moment are seeded below; their connect events (if any) went out before scoring
  // subscribed and never reach it, so no session is counted twice. One opened in between is missed: blames nobody.
  const before = Date.now();
  try {
    await service.start();
  } catch (err) {
    // A stale epoch (a newer leader has written the store) or a store that cannot be read: release what was opened.
    await service.close().catch(() => undefined);
    throw err;
  }
  // Sessions opened before scoring subscribed to the broker's events: their addresses are known to the broker only.
  if (options.sessions) {
    const now = Date.now();
    const counts = new Map<string, { device: string; address: string; n: number }>();
    for (const s of options.sessions.list()) {
      if (!s.remoteAddress || s.since >= before || (facts && !facts.facts(s.device))) continue;
      const key = `${s.device}|${s.remoteAddress}`;
      const c = counts.get(key);
      if (c) c.n++;
      else counts.set(key, { device: s.device, address: s.remoteAddress, n: 1 });
    }
    for (const c of counts.values()) engine.addresses.seed(c.device, c.address, options.sessions.node, c.n, now);
  }
  // A quarantine, release, claim or revocation changes what scoring publishes (its state ceilings): score those
  // devices again now rather than at the next tick, so a release restores deliveries at once.
  stopFacts = facts?.onChange?.((devices) => devices.forEach((device) => service.recompute(device, true)));
  options.log?.info({ model: options.model.version, influx: options.influx ? `${options.influx.url} (${options.influx.api ?? 'v1'})` : 'off', ca: Boolean(facts) }, 'scoring started');
  return service;
}
