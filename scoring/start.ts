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
import { ScoringService } from './service.js';
import { ScoringStore } from './store.js';
import { CveStore, StoreMatcher } from '../vuln/index.js';

/**
 * The CVE store as the engine's matcher. Its generation (a query) is read at most once a second: the engine asks on
 * every score, and a feed update may take a second to be noticed.
 */
export class CachedCveMatcher implements VulnerabilityMatcher {
  private gen = 0;
  private checkedAt = -Infinity;

  constructor(
    private readonly inner: StoreMatcher,
    private readonly everyMs = 1000,
  ) {}

  get generation(): number {
    const now = Date.now();
    if (now - this.checkedAt >= this.everyMs) {
      this.gen = this.inner.generation;
      this.checkedAt = now;
    }
    return this.gen;
  }

  get loaded(): boolean {
    return this.generation > 0;
  }

  match(...args: Parameters<VulnerabilityMatcher['match']>): ReturnType<VulnerabilityMatcher['match']> {
    return this.inner.match(...args);
  }
}

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
  /** What the CA knows about devices (the FleetView, where the CA inventory is at hand). */
  caFacts?: CaFactsSource;
}

export const scoringPaths = (dataDir: string) => ({
  store: join(dataDir, 'scoring', 'scores.db'),
  spool: join(dataDir, 'scoring', 'influx-spool'),
});

export async function startScoring(options: StartScoringOptions): Promise<ScoringService> {
  const paths = scoringPaths(options.dataDir);
  const facts = options.caFacts;
  // `wott cve update` loads the feed into data/cve/cve.db; scoring picks up each new generation.
  const cveStore = options.vulnerabilities ? undefined : CveStore.open(options.dataDir);
  const vulnerabilities = options.vulnerabilities ?? new CachedCveMatcher(new StoreMatcher(cveStore!));
  const engine = new ScoreEngine({
    model: options.model,
    ...(facts ? { caFacts: (device: string) => facts.facts(device) } : {}),
    vulnerabilities,
    ...(options.thresholds ? { thresholds: options.thresholds } : {}),
  });
  const store = new ScoringStore(paths.store, options.historyRetentionMs);
  const influx = options.influx ? new InfluxWriter({ ...options.influx, spoolDir: paths.spool, ...(options.log ? { log: options.log } : {}) }) : undefined;
  await influx?.start();
  const service = new ScoringService({
    bus: options.bus,
    engine,
    store,
    ...(influx ? { influx } : {}),
    ...(options.log ? { log: options.log } : {}),
    republishMs: options.republishMs,
    ...(options.tickMs ? { tickMs: options.tickMs } : {}),
    onClose: () => {
      store.close();
      stopFacts?.();
      cveStore?.close();
    },
  });
  await service.start();
  // A quarantine, release, claim or revocation changes what scoring publishes (its state ceilings): score those
  // devices again now rather than at the next tick, so a release restores deliveries at once.
  const stopFacts = facts?.onChange?.((devices) => devices.forEach((device) => service.recompute(device, true)));
  options.log?.info({ model: options.model.version, influx: options.influx ? `${options.influx.url} (${options.influx.api ?? 'v1'})` : 'off', ca: Boolean(facts) }, 'scoring started');
  return service;
}
