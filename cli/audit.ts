/**
 * `wott audit run` and `wott report compliance` (issue 19): the fleet audit and the compliance report.
 *
 * `wott audit run` runs an audit now, with everything wott can see: that is what a person typing "run" expects,
 * rather than the latest scheduled result (which may be a day old) or a partial one. Five checks need what only the
 * running broker observes (live sessions, refused handshakes and client ids), so:
 * - with a gateway running on this data folder, the CLI asks it to run the audit (POST /api/v1/audit/runs on its
 *   HTTPS listener, found through DATA/gateway.listen.json, with the CLI's own admin service certificate kept in
 *   DATA/admin, as `wott policy explain` does); the run is the gateway's, with the live facts;
 * - with `--server URL --credentials DIR`, the same request to a remote gateway as that operator;
 * - otherwise (no gateway runs here, or `--local`, or the gateway cannot be reached: said on stderr) the checks
 *   run on the data folder alone, and those five say "not assessable" with why.
 * `wott report compliance` goes the same way: the gateway's report (GET /api/v1/reports/compliance: its live view,
 * the latest report it built within the last minute), else one built from the data folder through the same use
 * case (report/service.ts).
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { collectFacts, runChecks, type AuditFacts, type AuditSettings } from '../audit/index.js';
import { ROUTES } from '../api/index.js';
import { FleetService, localActor } from '../fleet/index.js';
import { AUDIT_PATHS, complianceReportSchema, type AuditRun, type ReportFormat } from '../protocol/index.js';
import { ComplianceReports } from '../report/index.js';
import { scoringPaths } from '../scoring/index.js';
import { openReportHistory, openSelectedScoreStore, openSelectedVulnStore, openSqliteScoreStore, vulnStorePath, type ScoreStore, type VulnStore } from '../store/index.js';
import { writeFileAtomic } from '../lib/atomic-file.js';
import { loadConfig, type WottConfig as Config } from './config.js';
import { apiCaller, apiRequest, readOperatorCredentials, RemoteError } from './devices.js';
import { adminCredentials } from './explain.js';
import { readGatewayListen, type GatewayListen } from './gateway-control.js';
import { openCa, withData, type DataOptions } from './options.js';

export function auditSettings(config: Config): AuditSettings {
  return {
    policies: config.policies,
    initialScore: config.scoring.initialScore,
    claim: config.enrollment.claim,
    metrics: { port: config.gateway.metricsPort, bind: config.gateway.metricsBind },
    influx: Boolean(config.scoring.enabled && config.scoring.influx),
    apiRoutes: ROUTES.map((r) => ({ method: r.method, path: r.path, role: r.access?.role ?? null })),
  };
}

/** One facts snapshot of the data folder (and its configured stores). */
async function localFacts(opts: DataOptions): Promise<AuditFacts> {
  const { config } = loadConfig(opts.config);
  const dataDir = resolve(opts.data);
  const ca = await openCa(opts);
  let scores: ScoreStore | undefined;
  let vuln: VulnStore | undefined;
  try {
    const scorePath = scoringPaths(dataDir).store;
    scores = config.store.postgres ? await openSelectedScoreStore(config.store, scorePath) : existsSync(scorePath) ? await openSqliteScoreStore(scorePath) : undefined;
    vuln = config.store.postgres || existsSync(vulnStorePath(dataDir)) ? await openSelectedVulnStore(config.store, dataDir) : undefined;
    const store = scores;
    return await collectFacts({
      fleet: new FleetService(ca, localActor()),
      dataDir,
      source: 'cli',
      settings: auditSettings(config),
      scores: {
        latest: async (device) => {
          const s = await store?.latest(device);
          return s && { score: s.message.score, time: s.message.time, factors: s.message.factors, ...(s.findings ? { findings: s.findings } : {}) };
        },
      },
      ...(vuln ? { vuln } : {}),
    });
  } finally {
    await scores?.close();
    await vuln?.close();
    await ca.close();
  }
}

function printRun(run: AuditRun): void {
  const out: string[] = [`audit ${run.id} (${run.source}): ${run.devices} device(s), ${run.findings.length} finding(s) — ` + Object.entries(run.counts).filter(([, n]) => n > 0).map(([s, n]) => `${n} ${s}`).join(', ')];
  for (const f of run.findings) {
    out.push(`\n[${f.severity.toUpperCase()}] ${f.title}`, `  check:    ${f.check}`, `  affects:  ${f.objects.join(', ')}`);
    for (const e of f.evidence) out.push(`  evidence: ${e.fact} (observed ${e.observedAt})`);
    out.push(`  fix:      ${f.fix}`);
  }
  const na = run.checks.filter((c) => c.status === 'not_assessable');
  if (na.length) out.push('', 'not assessable here:', ...na.map((c) => `  ${c.id}: ${c.note ?? ''}`));
  process.stdout.write(out.join('\n') + '\n');
}

type Creds = { key: string; cert: string; ca: string | string[]; servername?: string };

/** A gateway with the live view: `--server` as that operator, or the one on this data folder as the CLI's admin service. */
interface LiveGateway {
  server: string;
  base: URL;
  creds: Creds;
  /** The local gateway's pid (undefined: --server). */
  pid?: number;
}

function serverUrl(server: string): URL {
  let base: URL;
  try {
    base = new URL(server);
  } catch {
    throw new InvalidArgumentError(`--server ${server}: not a URL (https://host:8443)`);
  }
  if (base.protocol !== 'https:') throw new InvalidArgumentError('--server must be an https:// URL');
  return base;
}

/** The gateway to ask, or undefined: none runs on the data folder (or --local) and no --server was given. */
async function liveGateway(program: Command, opts: DataOptions & { local?: boolean }): Promise<LiveGateway | undefined> {
  const g = program.opts<{ server?: string; credentials?: string }>();
  if (g.server) {
    if (!g.credentials) throw new InvalidArgumentError('--server needs --credentials DIR (NAME.key, NAME.crt, ca.crt from wott operator create)');
    return { server: g.server, base: serverUrl(g.server), creds: readOperatorCredentials(g.credentials) };
  }
  const at: GatewayListen & { pid?: number } | undefined = opts.local ? undefined : readGatewayListen(resolve(opts.data));
  if (!at) return undefined;
  const ca = await openCa(opts);
  try {
    const fleet = new FleetService(ca, localActor());
    const { key, cert } = await adminCredentials(fleet, resolve(opts.data));
    const server = `https://${at.host.includes(':') ? `[${at.host}]` : at.host}:${at.httpsPort}`;
    // The gateway's server certificate always names localhost, whatever address it is reached on.
    return { server, base: new URL(server), creds: { key, cert, ca: fleet.caCertificates().map((c) => c.toString()), servername: 'localhost' }, ...(at.pid ? { pid: at.pid } : {}) };
  } finally {
    await ca.close();
  }
}

/** Asks `gw`; a local gateway that cannot answer is said on stderr and `fallback` runs instead (--server: the error). */
async function askOrLocal<T>(gw: LiveGateway | undefined, what: string, ask: (gw: LiveGateway) => Promise<T>, fallback: () => Promise<T>): Promise<T> {
  if (!gw) return fallback();
  if (gw.pid === undefined) return ask(gw);
  try {
    return await ask(gw);
  } catch (err) {
    process.stderr.write(`could not ask the gateway (pid ${gw.pid}) for ${what}: ${(err as Error).message}\nusing the data folder alone: the checks that need the live broker are not assessable\n`);
    return fallback();
  }
}

export function registerAuditCommands(program: Command): void {
  const audit = program.commands.find((c) => c.name() === 'audit') ?? program.command('audit').description('the fleet audit');
  withData(audit.command('run'), { remote: true })
    .description('audit the fleet now: CA, certificates, identity, policies, operations; each finding with severity, objects, evidence and fix. Asks the gateway running on the data folder (or --server) so that the live broker is seen')
    .option('--json', 'the run as JSON (the shape of GET /api/v1/audit/latest run)')
    .option('--local', 'audit the data folder alone, even when a gateway runs on it (the checks that need the live broker are then not assessable)')
    .action(async (opts: DataOptions & { json?: boolean; local?: boolean }) => {
      const gw = await liveGateway(program, opts);
      const run = await askOrLocal(
        gw,
        'an audit run',
        (g) => apiCaller(g.server, g.base, g.creds)<AuditRun>('POST', AUDIT_PATHS.runs, {}),
        async () => runChecks(await localFacts(opts), Date.now()),
      );
      if (opts.json) process.stdout.write(JSON.stringify(run, null, 2) + '\n');
      else printRun(run);
    });

  const report = program.command('report').description('reports built from the fleet\'s live evidence');
  withData(report.command('compliance'), { remote: true })
    .description('ETSI EN 303 645 (5.1–5.13) and NIST IR 8259A: per provision and device met / not met / not assessable, with evidence and fix')
    .addOption(new Option('--format <format>', 'html (self-contained), pdf (printed by Chromium) or json').choices(['html', 'pdf', 'json']).default('html'))
    .requiredOption('--out <file>', 'the file to write (replaced if it exists)')
    .option('--local', 'build it from the data folder alone, even when a gateway runs on it')
    .action(async (opts: DataOptions & { format: ReportFormat; out: string; local?: boolean }) => {
      const out = resolve(opts.out);
      if (existsSync(out) && !/\.(html?|pdf|json)$/i.test(out)) throw new InvalidArgumentError(`${out} exists and is not a report file (.html, .pdf, .json): give another --out`);
      // Like `audit run`: the gateway's report (its live view) when one runs here or with --server; else the same
      // use case as GET /api/v1/reports/compliance on the data folder, building one report now (no cache here).
      const gw = await liveGateway(program, opts);
      const { body, report: built } = await askOrLocal(
        gw,
        'the compliance report',
        async (g) => {
          const ask = (format: ReportFormat) => apiRequest(g.server, g.base, g.creds, 'GET', `${AUDIT_PATHS.compliance}?format=${format}`);
          const answer = await ask(opts.format);
          if (answer.status !== 200) {
            const text = answer.body.toString('utf8');
            let message = text.slice(0, 200);
            try {
              message = (JSON.parse(text) as { message?: string }).message ?? message;
            } catch {
              // not JSON
            }
            throw new RemoteError(answer.status, `${g.server}: ${answer.status} ${message}`);
          }
          // The summary line below needs the report itself: the JSON of the same (cached) report.
          const json = opts.format === 'json' ? answer : await ask('json');
          return { body: answer.body, report: complianceReportSchema.parse(JSON.parse(json.body.toString('utf8'))) };
        },
        () => new ComplianceReports({ collect: () => localFacts(opts), history: openReportHistory(resolve(opts.data)), cacheMs: 0 }).render(opts.format),
      );
      writeFileAtomic(out, body, 0o600);
      const failing = built.provisions.filter((p) => p.result === 'not_met').length;
      process.stdout.write(`wrote ${out}: ${built.provisions.length} provisions, ${failing} not met, ${built.summary.devices} device(s)\n`);
    });
}
