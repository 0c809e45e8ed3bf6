/**
 * `wott device …`: one implementation of the device commands over `DeviceOperations`, with two backends — the local
 * data folder (FleetService + FleetView + the score store, through the same FleetAdapter the API uses) and a remote
 * gateway over the HTTPS API with an operator certificate (`wott --server URL --credentials DIR device …`).
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { request } from 'node:https';
import { join, resolve } from 'node:path';
import { FleetAdapter } from '../api/fleet-adapter.js';
import { FleetRefusal, type FleetOperations } from '../api/fleet-port.js';
import { FleetInsights, FleetService, FleetView, localActor } from '../fleet/index.js';
import { API_PREFIX, API_REVOCATION_REASONS, DEVICE_SORT_KEYS, DEVICE_STATES, type DeviceDetail, type DeviceListItem, type DevicePage } from '../protocol/index.js';
import { scoringPaths } from '../scoring/index.js';
import { openSelectedScoreStore, openSqliteScoreStore } from '../store/index.js';
import { loadConfig } from './config.js';
import { openCa, withData, type DataOptions } from './options.js';

/** What the device commands need; the API's port has exactly these, so both backends speak it. */
export type DeviceOperations = Pick<FleetOperations, 'listDevices' | 'device' | 'quarantine' | 'release' | 'claim' | 'reject' | 'setTags' | 'changeTags' | 'revoke'>;
type Filter = Parameters<DeviceOperations['listDevices']>[0];

/** A remote call the server refused or failed: its status and message. */
export class RemoteError extends Error {
  override name = 'RemoteError';
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** NAME.key, NAME.crt and ca.crt from a folder `wott operator create` wrote (the one key in it). */
export function readOperatorCredentials(dir: string): { key: string; cert: string; ca: string; name: string } {
  const folder = resolve(dir);
  if (!existsSync(folder)) throw new InvalidArgumentError(`--credentials ${dir}: no such folder`);
  const names = readdirSync(folder)
    .filter((f) => f.endsWith('.key') && existsSync(join(folder, f.replace(/\.key$/, '.crt'))))
    .map((f) => f.slice(0, -4));
  if (names.length !== 1) throw new InvalidArgumentError(`--credentials ${dir}: expected one NAME.key with its NAME.crt (as wott operator create writes them), found ${names.length}`);
  const name = names[0]!;
  if (!existsSync(join(folder, 'ca.crt'))) throw new InvalidArgumentError(`--credentials ${dir}: no ca.crt`);
  return { name, key: readFileSync(join(folder, `${name}.key`), 'utf8'), cert: readFileSync(join(folder, `${name}.crt`), 'utf8'), ca: readFileSync(join(folder, 'ca.crt'), 'utf8') };
}

/**
 * Calls of the HTTPS API at `base` with a client certificate (an operator's, or the CLI's admin service certificate
 * for a gateway on its own data folder): the answer's JSON on 200, else a RemoteError with the server's reason.
 */
export function apiCaller(server: string, base: URL, creds: { key: string; cert: string; ca: string | string[]; servername?: string }) {
  return async <T>(method: string, path: string, body?: unknown): Promise<T> => {
    const { status, body: answer } = await apiRequest(server, base, creds, method, path, body);
    const text = answer.toString('utf8');
    let json: any;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    if (status === 200) return json as T;
    throw new RemoteError(status, `${server}: ${status} ${json?.message ?? text.slice(0, 200)}`);
  };
}

/** One API request; the answer's status and bytes (downloads: the compliance report's PDF). */
export function apiRequest(server: string, base: URL, creds: { key: string; cert: string; ca: string | string[]; servername?: string }, method: string, path: string, body?: unknown): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolvePromise, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = request(
      new URL(API_PREFIX + path, base),
      { method, key: creds.key, cert: creds.cert, ca: creds.ca, ...(creds.servername ? { servername: creds.servername } : {}), agent: false, timeout: 130_000, headers: payload ? { 'Content-Type': 'application/json' } : {} },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolvePromise({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${server}: no answer within 130 s`)));
    req.on('error', (err) => reject(new Error(`${server}: ${err.message}`)));
    req.end(payload);
  });
}

/** The HTTPS API as DeviceOperations; the server audits as the certificate's identity (the actor argument is not sent). */
export function remoteDevices(server: string, credentialsDir: string): DeviceOperations {
  let base: URL;
  try {
    base = new URL(server);
  } catch {
    throw new InvalidArgumentError(`--server ${server}: not a URL (https://host:8443)`);
  }
  if (base.protocol !== 'https:') throw new InvalidArgumentError('--server must be an https:// URL');
  const call = apiCaller(server, base, readOperatorCredentials(credentialsDir));
  const device = (id: string) => `/devices/${encodeURIComponent(id)}`;
  return {
    listDevices(filter: Filter) {
      const query = new URLSearchParams();
      for (const [k, v] of Object.entries(filter)) if (v !== undefined) query.set(k, String(v));
      return call<DevicePage>('GET', `/devices?${query}`);
    },
    async device(id) {
      try {
        return await call<DeviceDetail>('GET', device(id));
      } catch (err) {
        if (err instanceof RemoteError && err.status === 404) return undefined;
        throw err;
      }
    },
    quarantine: (id) => call('POST', `${device(id)}/quarantine`, {}),
    release: (id) => call('POST', `${device(id)}/release`, {}),
    claim: (id) => call('POST', `${device(id)}/claim`, {}),
    reject: (id) => call('POST', `${device(id)}/reject`, {}),
    setTags: (id, tags) => call('PUT', `${device(id)}/tags`, { tags }),
    changeTags: (id, change) => call('POST', `${device(id)}/tags`, change),
    revoke: (id, reason) => call('POST', `${device(id)}/revoke`, { reason }),
  };
}

/** The local data folder as DeviceOperations (the API's own adapter, scores from the score store); `close` after. */
export async function localDevices(opts: DataOptions): Promise<{ ops: DeviceOperations; close(): Promise<void> }> {
  const { config } = loadConfig(opts.config);
  const ca = await openCa(opts);
  const view = await FleetView.open(ca.inventory);
  const insights = new FleetInsights({ initialScore: config.scoring.initialScore });
  const path = scoringPaths(resolve(opts.data)).store;
  const scores = config.store.postgres ? await openSelectedScoreStore(config.store, path) : existsSync(path) ? await openSqliteScoreStore(path) : undefined;
  if (scores) insights.setHistory((device, o) => scores.history(device, o));
  const adapter = new FleetAdapter(new FleetService(ca, localActor()), view, { tokenTtlMs: config.enrollment.tokenTtl }, insights);
  /** The stored latest scores and findings, read once, only by the commands that show them. */
  let loaded: Promise<void> | undefined;
  const load = () =>
    (loaded ??= (async () => {
      if (!scores) return;
      for (const d of view.allDevices()) {
        const latest = await scores.latest(d.id);
        if (!latest) continue;
        insights.onScore(latest.message);
        if (latest.findings) insights.onFindings(d.id, latest.findings);
      }
    })());
  return {
    ops: {
      listDevices: async (filter) => (await load(), adapter.listDevices(filter)),
      device: async (id) => (await load(), adapter.device(id)),
      quarantine: (id, actor) => adapter.quarantine(id, actor),
      release: (id, actor) => adapter.release(id, actor),
      claim: (id, actor) => adapter.claim(id, actor),
      reject: (id, actor) => adapter.reject(id, actor),
      setTags: (id, tags, actor) => adapter.setTags(id, tags, actor),
      changeTags: (id, change, actor) => adapter.changeTags(id, change, actor),
      revoke: (id, reason, actor) => adapter.revoke(id, reason, actor),
    },
    async close() {
      await view.close();
      await scores?.close();
      await ca.close();
    },
  };
}

interface Globals {
  server?: string;
  credentials?: string;
}

/** Runs `fn` on the remote backend when --server is given, else on the local data folder. */
async function withDevices<T>(program: Command, opts: DataOptions, fn: (ops: DeviceOperations, actor: string) => Promise<T>): Promise<T> {
  const g = program.opts<Globals>();
  if (g.server) {
    if (!g.credentials) throw new InvalidArgumentError('--server needs --credentials DIR (NAME.key, NAME.crt, ca.crt from wott operator create)');
    return fn(remoteDevices(g.server, g.credentials), 'remote'); // the server audits as the certificate's identity
  }
  const local = await localDevices(opts);
  try {
    return await fn(local.ops, localActor());
  } finally {
    await local.close();
  }
}

const vulnText = (d: DeviceListItem) => `${d.vulnerabilities.critical}/${d.vulnerabilities.high}/${d.vulnerabilities.medium}/${d.vulnerabilities.low}`;

function printDetail(d: DeviceDetail): void {
  const out: string[] = [];
  out.push(`${d.id}  ${d.state}  score ${d.score.toFixed(3)}${d.modelVersion ? ` (model ${d.modelVersion}, ${d.scoredAt})` : ''}`);
  out.push(`tags: ${d.tags.join(', ') || '(none)'}`);
  out.push(`connected: ${d.connected ? `since ${d.connected.since} from ${d.connected.remoteAddress ?? '?'} (${d.connected.sessions} session(s))` : 'no'}; last report: ${d.lastReport ?? 'never'}`);
  out.push('factors:');
  for (const f of d.factors) out.push(`  ${f.contribution >= 0 ? '+' : ''}${f.contribution.toFixed(3)}  ${f.id}: ${f.reason}${f.fix ? ` — ${f.fix}` : ''}`);
  out.push(`actions (${d.actions.length}):`);
  for (const a of d.actions) out.push(`  ${a.id}  −${a.cost.toFixed(3)}  ${a.status}${a.snoozedUntil ? ` until ${a.snoozedUntil}` : ''}: ${a.fix}`);
  out.push(`vulnerabilities (${d.findings.length}):`);
  for (const f of d.findings) out.push(`  ${f.cve}  ${f.severity}  ${f.package} ${f.installed} -> ${f.fixed}: ${f.fixCommand}`);
  out.push('certificates:');
  for (const c of d.certificates) out.push(`  ${c.serial}  ${c.status}  until ${c.notAfter}${c.replacedBy ? `  renewed as ${c.replacedBy}` : ''}`);
  if (d.events.length) out.push('recent events:', ...d.events.slice(0, 10).map((e) => `  ${e.time}  ${e.type}${e.topic ? ` ${e.topic}` : ''}${e.reason ? `: ${e.reason}` : ''}`));
  if (d.history.length) out.push(`history: ${d.history.length} point(s), from ${d.history[0]!.time} (${d.history[0]!.score}) to ${d.history.at(-1)!.time} (${d.history.at(-1)!.score})`);
  out.push(`audit (${d.audit.length}):`, ...d.audit.slice(0, 10).map((e) => `  ${e.time}  ${e.actor}  ${e.action}  ${e.outcome}${e.detail ? `  ${e.detail}` : ''}`));
  process.stdout.write(out.join('\n') + '\n');
}

const scoreArg = (v: string) => {
  const n = Number(v);
  if (!(n >= 0 && n <= 1)) throw new InvalidArgumentError('a score between 0 and 1');
  return n;
};

export function registerDeviceCommands(program: Command): void {
  const device = program.command('device').description('device lifecycle and state (local data folder, or a gateway with --server)');
  withData(device.command('list'), { remote: true })
    .description('devices with their effective score, costliest factor, connection and vulnerabilities (critical/high/medium/low)')
    .addOption(new Option('--state <state>', 'only devices in this state').choices([...DEVICE_STATES]))
    .option('--tag <tag>', 'only devices with this tag')
    .option('--search <text>', 'part of the id or a tag')
    .option('--min-score <n>', 'effective score at least', scoreArg)
    .option('--max-score <n>', 'effective score at most', scoreArg)
    .option('--below <rule>', 'below the threshold of a rule, e.g. publish:payments/#')
    .addOption(new Option('--sort <key>', 'sort by').choices([...DEVICE_SORT_KEYS]).default('id'))
    .option('--desc', 'descending')
    .option('--json', 'JSON lines, one device each')
    .action(async (opts: DataOptions & { state?: (typeof DEVICE_STATES)[number]; tag?: string; search?: string; minScore?: number; maxScore?: number; below?: string; sort: (typeof DEVICE_SORT_KEYS)[number]; desc?: boolean; json?: boolean }) => {
      await withDevices(program, opts, async (ops) => {
        let cursor: string | undefined;
        if (!opts.json) process.stdout.write('ID\tSTATE\tSCORE\tCOSTS MOST\tCONNECTED\tVULNS C/H/M/L\tCERT EXPIRY\n');
        do {
          const filter: Filter = {
            sort: opts.sort,
            order: opts.desc ? 'desc' : 'asc',
            limit: 500,
            ...(opts.state ? { state: opts.state } : {}),
            ...(opts.tag ? { tag: opts.tag } : {}),
            ...(opts.search !== undefined ? { q: opts.search } : {}),
            ...(opts.minScore !== undefined ? { minScore: opts.minScore } : {}),
            ...(opts.maxScore !== undefined ? { maxScore: opts.maxScore } : {}),
            ...(opts.below ? { below: opts.below } : {}),
            ...(cursor ? { cursor } : {}),
          };
          const page = await ops.listDevices(filter);
          for (const d of page.items) {
            if (opts.json) process.stdout.write(JSON.stringify(d) + '\n');
            else process.stdout.write(`${d.id}\t${d.state}\t${d.score.toFixed(3)}\t${d.worstFactor?.id ?? '-'}\t${d.connected ? (d.connected.remoteAddress ?? 'yes') : 'no'}\t${vulnText(d)}\t${d.certificateExpiry ?? '-'}\n`);
          }
          cursor = page.nextCursor ?? undefined;
        } while (cursor);
      });
    });
  withData(device.command('show'), { remote: true })
    .description('one device: score with every factor, actions, vulnerabilities, certificates, sessions, events, audit')
    .argument('<id>', 'device id')
    .option('--json', 'machine-readable output')
    .action(async (id: string, opts: DataOptions & { json?: boolean }) => {
      await withDevices(program, opts, async (ops) => {
        const d = await ops.device(id);
        if (!d) throw new FleetRefusal(404, `no device "${id}"`);
        if (opts.json) process.stdout.write(JSON.stringify(d, null, 2) + '\n');
        else printDetail(d);
      });
    });
  withData(device.command('claim'), { remote: true })
    .description('activate a device that enrolled unclaimed (claim mode)')
    .argument('<id>', 'device id')
    .action(async (id: string, opts: DataOptions) => {
      await withDevices(program, opts, async (ops, actor) => {
        const row = await ops.claim(id, actor);
        process.stdout.write(`${row.id} is now ${row.state}\n`);
      });
    });
  withData(device.command('reject'), { remote: true })
    .description('refuse a device waiting to be claimed: its certificate is revoked and it is marked revoked (a token can still enroll the id)')
    .argument('<id>', 'device id')
    .action(async (id: string, opts: DataOptions) => {
      await withDevices(program, opts, async (ops, actor) => {
        const { device: row, revoked } = await ops.reject(id, actor);
        process.stdout.write(`${row.id} is now ${row.state}; revoked ${revoked.join(', ') || 'nothing'}\n`);
      });
    });
  for (const [name, quarantined] of [['quarantine', true], ['release', false]] as const) {
    withData(device.command(name), { remote: true })
      .description(quarantined ? 'quarantine a device: its score ceiling becomes 0 in the running broker' : 'lift a quarantine')
      .argument('<id>', 'device id')
      .action(async (id: string, opts: DataOptions) => {
        await withDevices(program, opts, async (ops, actor) => {
          const row = await (quarantined ? ops.quarantine(id, actor) : ops.release(id, actor));
          process.stdout.write(`${row.id} is now ${row.state}\n`);
        });
      });
  }
  withData(device.command('tag'), { remote: true })
    .description("add tags to a device, keeping the ones it has (--remove: take them off; --set: replace them all, --set '' removes them all)")
    .argument('<id>', 'device id')
    .argument('[tags...]', 'tags to add, or with --remove to remove (comma-separated lists work too)')
    .option('--remove', 'remove the given tags instead of adding them')
    .option('--set <tags>', 'replace all tags with these, comma-separated, e.g. site:berlin,camera')
    .action(async (id: string, given: string[], opts: DataOptions & { set?: string; remove?: boolean }) => {
      const split = (list: string[]) => list.flatMap((s) => s.split(',')).map((t) => t.trim()).filter(Boolean);
      const tags = split(given);
      if (opts.set !== undefined && (tags.length || opts.remove)) throw new InvalidArgumentError('--set replaces every tag: give no other tags and no --remove with it');
      if (opts.set === undefined && !tags.length) throw new InvalidArgumentError(`give tags to ${opts.remove ? 'remove' : 'add'} (or --set to replace them all)`);
      await withDevices(program, opts, async (ops, actor) => {
        // Add/remove is one transaction on the server: another operator's change to other tags is kept.
        const row = opts.set !== undefined ? await ops.setTags(id, split([opts.set]), actor) : await ops.changeTags(id, opts.remove ? { remove: tags } : { add: tags }, actor);
        process.stdout.write(`${row.id} tags: ${row.tags.join(', ') || '(none)'}\n`);
      });
    });
  withData(device.command('revoke'), { remote: true })
    .description('revoke every certificate of a device and mark it revoked (same as wott ca revoke --device)')
    .argument('<id>', 'device id')
    .addOption(new Option('--reason <reason>', 'CRL reason').choices([...API_REVOCATION_REASONS]).default('unspecified'))
    .action(async (id: string, opts: DataOptions & { reason: (typeof API_REVOCATION_REASONS)[number] }) => {
      await withDevices(program, opts, async (ops, actor) => {
        const { device: row, revoked } = await ops.revoke(id, opts.reason, actor);
        process.stdout.write(`${row.id} is now ${row.state}; revoked ${revoked.join(', ') || 'nothing'}\n`);
      });
    });
}
