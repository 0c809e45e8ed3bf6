/** `wott scoring` (scoring on its own host, over MQTT) and `wott score show`. */
import { Command, InvalidArgumentError, Option } from 'commander';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { cliLogger, withLogFormat, type LogFormat } from './log.js';
import type { GatewayScoringOptions } from '../gateway/index.js';
import { enforcedScoreMessage, policyThresholds, stateCeiling } from '../policy/index.js';
import { readServiceCredentials } from '../ca/index.js';
import { fleetCaFacts, openFleetInventory, openLocalView } from '../fleet/index.js';
import { isDeviceId, type DeviceState } from '../protocol/index.js';
import { mqttBus, scoringPaths, startScoring } from '../scoring/index.js';
import { openSelectedScoreStore, openSqliteScoreStore, type HistoryRow, type ScoreStore, type StoredScore } from '../store/index.js';
import { loadConfig, type WottConfig } from './config.js';
import { durationArg, LOG_REDACT, withData, type DataOptions } from './options.js';

/** The scoring settings of wott.yaml; the InfluxDB token may come from WOTT_INFLUX_TOKEN instead of the file. */
export function scoringFromConfig(config: WottConfig): GatewayScoringOptions {
  const s = config.scoring;
  const token = process.env.WOTT_INFLUX_TOKEN || s.influx?.token;
  return {
    model: s.model,
    republishMs: s.republishInterval,
    historyRetentionMs: s.historyRetention,
    ...(s.influx
      ? {
          influx: {
            url: s.influx.url,
            api: s.influx.api,
            database: s.influx.database,
            batchSize: s.influx.batchSize,
            flushIntervalMs: s.influx.flushInterval,
            spoolMaxBytes: s.influx.spoolMaxBytes,
            ...(s.influx.retentionPolicy ? { retentionPolicy: s.influx.retentionPolicy } : {}),
            ...(s.influx.org ? { org: s.influx.org } : {}),
            ...(s.influx.bucket ? { bucket: s.influx.bucket } : {}),
            ...(token ? { token } : {}),
            ...(s.influx.username ? { username: s.influx.username, password: s.influx.password ?? '' } : {}),
          },
        }
      : {}),
  };
}

/** `stored` as `wott score show` prints it: the message as the broker enforces it for a device in `state`. */
export function formatScore(stored: StoredScore, state?: DeviceState): string {
  const m = enforcedScoreMessage(stored.message, state);
  const cap = stateCeiling(state);
  const lines = [`${m.device}  score ${m.score.toFixed(3)}  (model ${m.modelVersion}, ${m.time})`];
  if (cap) lines.push(`  capped at ${cap.ceiling} by the broker: the device is ${cap.state}`);
  lines.push('');
  for (const f of m.factors) {
    const c = f.contribution === 0 ? '    ok' : f.contribution.toFixed(3).padStart(6);
    lines.push(`  ${c}  ${f.id.padEnd(26)} ${f.reason}`);
    if (f.fix) lines.push(`  ${''.padStart(6)}  ${''.padEnd(26)} fix: ${f.fix}`);
  }
  if (stored.findings) {
    lines.push('', stored.findings.length ? `Vulnerabilities (${stored.findings.length}):` : 'Vulnerabilities: none known');
    for (const v of stored.findings) {
      const flags = [v.severity, v.remote === null ? 'scope unknown' : v.remote ? 'remote' : 'local', ...(v.exposed ? ['on a listening service'] : [])];
      lines.push(`  ${v.cve.padEnd(16)} ${v.source} ${v.installed} -> fixed in ${v.fixed}  (${flags.join(', ')})`);
      lines.push(`  ${''.padEnd(16)} ${v.action}`);
    }
  }
  return lines.join('\n') + '\n';
}

/**
 * The device's CA state, read from the inventory beside the data, so that what we print is what the broker
 * enforces: scoring learns of a quarantine only when it next recomputes the device.
 */
async function deviceState(opts: DataOptions, id: string): Promise<DeviceState | undefined> {
  const inventory = await openFleetInventory(resolve(opts.data), loadConfig(opts.config).config.store);
  try {
    return (await inventory?.device(id))?.state;
  } finally {
    await inventory?.close();
  }
}

/** The gateway's score store, or undefined before scoring ever ran (the reading commands do not create it). */
async function openStore(opts: DataOptions): Promise<ScoreStore | undefined> {
  const { store: selection } = loadConfig(opts.config).config;
  if (selection.postgres) return openSelectedScoreStore(selection, '');
  const path = scoringPaths(resolve(opts.data)).store;
  return existsSync(path) ? await openSqliteScoreStore(path) : undefined;
}

export function registerScoringCommands(program: Command): void {
  // On its own host scoring keeps only its score store in the data folder; a CA there is followed when present.
  withLogFormat(withData(program.command('scoring'), { needs: 'folder' }))
    .description('run scoring on its own, as an MQTT client with a scoring service certificate (wott ca service --role scoring)')
    .requiredOption('--mqtt <url>', 'broker URL, e.g. mqtts://gateway.example:8883')
    .option('--credentials <dir>', 'folder with scoring.key, scoring.crt and ca.crt (as written by wott ca service)', './scoring-credentials')
    .option('--insecure-hostname', 'do not check the broker certificate names the host (still checks it is from our CA)')
    .action(async (opts: DataOptions & { mqtt: string; credentials: string; insecureHostname?: boolean; logFormat?: LogFormat }) => {
      const { config } = loadConfig(opts.config);
      const log = await cliLogger('wott-scoring', { format: opts.logFormat, redact: LOG_REDACT });
      let credentials: ReturnType<typeof readServiceCredentials>;
      try {
        credentials = readServiceCredentials(resolve(opts.credentials), 'scoring');
      } catch (err) {
        throw new InvalidArgumentError((err as Error).message);
      }
      const { key, cert, ca, identity } = credentials;
      const bus = await mqttBus({
        url: opts.mqtt,
        key,
        cert,
        ca,
        clientId: `${identity}:${process.pid}`,
        ...(opts.insecureHostname ? { checkServerIdentity: () => undefined } : {}),
      });
      const settings = scoringFromConfig(config);
      // With the CA inventory in the data folder (scoring beside the gateway), follow it: state changes are scored
      // again at once, as in the gateway.
      const fleet = await openLocalView(resolve(opts.data), { store: config.store });
      const service = await startScoring({
        ...settings,
        dataDir: resolve(opts.data),
        ...(config.store.postgres ? { store: config.store } : {}),
        bus,
        thresholds: policyThresholds(config.policies),
        ...(fleet ? { caFacts: fleetCaFacts(fleet.view) } : {}),
        log,
      });
      log.info({ mqtt: opts.mqtt, identity, ca: Boolean(fleet) }, 'scoring connected');
      const stop = () =>
        void service
          .close()
          .then(() => fleet?.close())
          .then(() => process.exit(0));
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
    });

  const score = program.command('score').description('Trust Scores');
  withData(score.command('show'), { needs: 'scores' })
    .description("a device's latest score with every factor, its reason and fix, and its vulnerabilities")
    .argument('<id>', 'device id')
    .option('--json', 'print the stored score message (and findings) as JSON')
    .action(async (id: string, opts: DataOptions & { json?: boolean }) => {
      if (!isDeviceId(id)) throw new InvalidArgumentError(`"${id}" is not a device id`);
      const store = await openStore(opts);
      try {
        const stored = await store?.latest(id);
        const state = await deviceState(opts, id);
        const cap = stateCeiling(state);
        if (!stored) {
          const enforced = cap ? `; the broker enforces ${cap.ceiling}: the device is ${cap.state}` : '';
          process.stderr.write(`no score for ${id} yet (scoring publishes one once it hears from or about the device)${enforced}\n`);
          process.exitCode = 1;
          return;
        }
        const json = { ...stored, message: enforcedScoreMessage(stored.message, state), ...(state ? { state } : {}) };
        process.stdout.write(opts.json ? JSON.stringify(json, null, 2) + '\n' : formatScore(stored, state));
      } finally {
        await store?.close();
      }
    });

  withData(score.command('history'), { needs: 'scores' })
    .description("a device's score history from the gateway's embedded store (kept for scoring.historyRetention)")
    .argument('<id>', 'device id')
    .addOption(new Option('--since <duration>', 'how far back, e.g. 1h, 7d').argParser(durationArg).default(86_400_000, '24h'))
    .option('--json', 'one JSON object per line')
    .action(async (id: string, opts: DataOptions & { since: number; json?: boolean }) => {
      if (!isDeviceId(id)) throw new InvalidArgumentError(`"${id}" is not a device id`);
      const store = await openStore(opts);
      try {
        const rows: Array<HistoryRow & { state?: DeviceState }> = (await store?.history(id, { since: Date.now() - opts.since, limit: 10_000 })) ?? [];
        if (rows.length === 0) {
          process.stderr.write(`no score history for ${id} in that period\n`);
          process.exitCode = 1;
          return;
        }
        // Each row is what scoring published then. When the device's state now caps it lower (scoring has not
        // recomputed since the quarantine, say), a last row says what the broker enforces now.
        const cap = stateCeiling(await deviceState(opts, id));
        const last = rows[rows.length - 1]!;
        if (cap && last.score > cap.ceiling) {
          const contribution = Math.round((cap.ceiling - last.score) * 1000) / 1000;
          rows.push({ time: Date.now(), score: cap.ceiling, model: last.model, factors: [{ id: `ceiling:${cap.state}`, contribution }], state: cap.state });
        }
        for (const r of rows) {
          const worst = r.factors.reduce<{ id: string; contribution: number } | undefined>((w, f) => (!w || f.contribution < w.contribution ? f : w), undefined);
          process.stdout.write(
            opts.json
              ? JSON.stringify({ ...r, time: new Date(r.time).toISOString() }) + '\n'
              : `${new Date(r.time).toISOString()}  ${r.score.toFixed(3)}  ${worst && worst.contribution < 0 ? `${worst.id} ${worst.contribution}` : ''}${r.state ? `  (now: the device is ${r.state})` : ''}\n`,
          );
        }
      } finally {
        await store?.close();
      }
    });
}
