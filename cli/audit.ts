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
 * `wott report compliance` builds the report from the data folder through the same use case as
 * GET /api/v1/reports/compliance (report/service.ts).
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { collectFacts, runChecks, type AuditFacts, type AuditSettings } from '../audit/index.js';
import { ROUTES } from '../api/index.js';
import { FleetService, localActor } from '../fleet/index.js';
import { AUDIT_PATHS, type AuditRun, type ReportFormat } from '../protocol/index.js';
import { ComplianceReports } from '../report/index.js';
import { scoringPaths } from '../scoring/index.js';
import { openReportHistory, openSelectedScoreStore, openSelectedVulnStore, openSqliteScoreStore, vulnStorePath, type ScoreStore, type VulnStore } from '../store/index.js';
import { writeFileAtomic } from '../lib/atomic-file.js';
import { loadConfig, type WottConfig as Config } from './config.js';
import { apiCaller, readOperatorCredentials } from './devices.js';
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

/** An audit run now by the gateway listening at `at` (on this data folder), as the CLI's admin service. */
async function gatewayRun(opts: DataOptions, at: GatewayListen): Promise<AuditRun> {
  const ca = await openCa(opts);
  try {
    const fleet = new FleetService(ca, localActor());
    const { key, cert } = await adminCredentials(fleet, resolve(opts.data));
    const host = at.host.includes(':') ? `[${at.host}]` : at.host;
    const server = `https://${host}:${at.httpsPort}`;
    // The gateway's server certificate always names localhost, whatever address it is reached on.
    const call = apiCaller(server, new URL(server), { key, cert, ca: fleet.caCertificates().map((c) => c.toString()), servername: 'localhost' });
    return await call<AuditRun>('POST', AUDIT_PATHS.runs, {});
  } finally {
    await ca.close();
  }
}

export function registerAuditCommands(program: Command): void {
  const audit = program.commands.find((c) => c.name() === 'audit') ?? program.command('audit').description('the fleet audit');
  withData(audit.command('run'), { remote: true })
    .description('audit the fleet now: CA, certificates, identity, policies, operations; each finding with severity, objects, evidence and fix. Asks the gateway running on the data folder (or --server) so that the live broker is seen')
    .option('--json', 'the run as JSON (the shape of GET /api/v1/audit/latest run)')
    .option('--local', 'audit the data folder alone, even when a gateway runs on it (the checks that need the live broker are then not assessable)')
    .action(async (opts: DataOptions & { json?: boolean; local?: boolean }) => {
      const g = program.opts<{ server?: string; credentials?: string }>();
      let run: AuditRun | undefined;
      if (g.server) {
        if (!g.credentials) throw new InvalidArgumentError('--server needs --credentials DIR (NAME.key, NAME.crt, ca.crt from wott operator create)');
        let base: URL;
        try {
          base = new URL(g.server);
        } catch {
          throw new InvalidArgumentError(`--server ${g.server}: not a URL (https://host:8443)`);
        }
        if (base.protocol !== 'https:') throw new InvalidArgumentError('--server must be an https:// URL');
        run = await apiCaller(g.server, base, readOperatorCredentials(g.credentials))<AuditRun>('POST', AUDIT_PATHS.runs, {});
      } else {
        const at = opts.local ? undefined : readGatewayListen(resolve(opts.data));
        if (at) {
          try {
            run = await gatewayRun(opts, at);
          } catch (err) {
            process.stderr.write(`could not ask the gateway (pid ${at.pid}) to run the audit: ${(err as Error).message}\nauditing the data folder alone: the checks that need the live broker are not assessable\n`);
          }
        }
        run ??= runChecks(await localFacts(opts), Date.now());
      }
      if (opts.json) process.stdout.write(JSON.stringify(run, null, 2) + '\n');
      else printRun(run);
    });

  const report = program.command('report').description('reports built from the fleet\'s live evidence');
  withData(report.command('compliance'))
    .description('ETSI EN 303 645 (5.1–5.13) and NIST IR 8259A: per provision and device met / not met / not assessable, with evidence and fix')
    .addOption(new Option('--format <format>', 'html (self-contained), pdf (printed by Chromium) or json').choices(['html', 'pdf', 'json']).default('html'))
    .requiredOption('--out <file>', 'the file to write (replaced if it exists)')
    .action(async (opts: DataOptions & { format: ReportFormat; out: string }) => {
      const out = resolve(opts.out);
      if (existsSync(out) && !/\.(html?|pdf|json)$/i.test(out)) throw new InvalidArgumentError(`${out} exists and is not a report file (.html, .pdf, .json): give another --out`);
      // The same use case as GET /api/v1/reports/compliance, building one report now (no cache on the CLI).
      const reports = new ComplianceReports({ collect: () => localFacts(opts), history: openReportHistory(resolve(opts.data)), cacheMs: 0 });
      const { body, report: built } = await reports.render(opts.format);
      writeFileAtomic(out, body, 0o600);
      const failing = built.provisions.filter((p) => p.result === 'not_met').length;
      process.stdout.write(`wrote ${out}: ${built.provisions.length} provisions, ${failing} not met, ${built.summary.devices} device(s)\n`);
    });
}
