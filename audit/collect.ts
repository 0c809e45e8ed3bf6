/**
 * The audit's I/O: collects one facts snapshot through the fleet core (FleetService: devices, certificates,
 * tokens, the audit log), the CA's own files (certificates, which key files are there and whether encrypted), the
 * score and vulnerability stores (through store/'s interfaces), the configuration, and, in the gateway, the live
 * broker (sessions, behaviour events, InfluxDB counters).
 */
import type { X509Certificate } from 'node:crypto';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { caKeyStatus, caPaths } from '../ca/index.js';
import type { FleetService } from '../fleet/index.js';
import type { PolicyRule } from '../policy/index.js';
import type { ScoreFactor } from '../protocol/index.js';
import type { StoredFinding, VulnStore } from '../store/index.js';
import type { AuditDevice, AuditFacts, CaCertFacts, LiveFacts } from './facts.js';

export interface AuditSettings {
  policies: PolicyRule[];
  initialScore: number;
  claim: boolean;
  metrics: { port: number | false; bind: string };
  influx: boolean;
  apiRoutes: AuditFacts['config']['apiRoutes'];
}

/** Where the latest scores come from: the broker's insights in the gateway, the score store on the CLI. */
export interface ScoreSource {
  latest(device: string): Promise<{ score: number; time: string; factors: ScoreFactor[]; findings?: StoredFinding[] } | undefined>;
  lastReport?(device: string): number | undefined;
}

export interface CollectOptions {
  fleet: FleetService;
  dataDir: string;
  settings: AuditSettings;
  scores: ScoreSource;
  /** The vulnerability store (undefined: none in this deployment). */
  vuln?: VulnStore;
  live?: LiveFacts;
  source: 'gateway' | 'cli';
  now?: () => number;
}

export function caCertFacts(cert: X509Certificate): CaCertFacts {
  const details = cert.publicKey.asymmetricKeyDetails ?? {};
  return {
    subject: cert.subject.replace(/\n/g, ', '),
    notBefore: Date.parse(cert.validFrom),
    notAfter: Date.parse(cert.validTo),
    keyType: cert.publicKey.asymmetricKeyType ?? 'unknown',
    ...(details.namedCurve ? { curve: details.namedCurve } : {}),
    ...(details.modulusLength ? { bits: details.modulusLength } : {}),
    fingerprint: cert.fingerprint256,
  };
}

/** The spool of the InfluxDB writer (scoring/start.ts keeps it at DATA/scoring/influx-spool). */
function spoolFacts(dataDir: string): AuditFacts['influxSpool'] {
  const dir = join(dataDir, 'scoring', 'influx-spool');
  if (!existsSync(dir)) return undefined;
  const files = readdirSync(dir).filter((f) => f.endsWith('.lp'));
  const oldest = files.length ? Math.min(...files.map((f) => statSync(join(dir, f)).mtimeMs)) : undefined;
  return { batches: files.length, ...(oldest !== undefined ? { oldest } : {}) };
}

export async function collectFacts(o: CollectOptions): Promise<AuditFacts> {
  const now = o.now ?? Date.now;
  const [intermediate, root] = o.fleet.caCertificates();
  const devices: AuditDevice[] = [];
  for (const d of await o.fleet.list()) {
    const score = await o.scores.latest(d.id);
    const lastReport = o.scores.lastReport?.(d.id);
    devices.push({
      id: d.id,
      state: d.state,
      tpm: d.tpmKey !== null,
      createdAt: d.createdAt,
      certificates: d.certificates
        .filter((c) => c.kind === 'device')
        .map((c) => ({ serial: c.serial, status: c.status, notBefore: Date.parse(c.notBefore), notAfter: Date.parse(c.notAfter) }))
        .sort((a, b) => b.notBefore - a.notBefore),
      ...(score ? { score: { score: score.score, time: score.time, factors: score.factors } } : {}),
      ...(score?.findings ? { vulnerabilities: score.findings.map((f) => ({ cve: f.cve, severity: f.severity, source: f.source, installed: f.installed, fixed: f.fixed })) } : {}),
      ...(lastReport !== undefined ? { lastReport } : {}),
    });
  }
  devices.sort((a, b) => (a.id < b.id ? -1 : 1));
  const status = o.vuln ? await o.vuln.status() : null;
  const paths = caPaths(o.dataDir);
  const spool = spoolFacts(o.dataDir);
  return {
    now: now(),
    source: o.source,
    ca: { root: caCertFacts(root!), intermediate: caCertFacts(intermediate!), rootKeyOnline: existsSync(paths.rootKey), keys: caKeyStatus(o.dataDir) },
    devices,
    tokens: (await o.fleet.outstandingTokens()).map((t) => ({ deviceId: t.deviceId, expiresAt: Date.parse(t.expiresAt) })),
    auditLog: (await o.fleet.auditLog()).map((e) => ({ seq: e.seq, time: e.time, action: e.action })),
    config: { ...o.settings },
    vuln: status ? { feeds: status.feeds.map((f) => ({ name: f.name, loadedAt: f.loadedAt, entries: f.entries })) } : null,
    ...(spool ? { influxSpool: spool } : {}),
    ...(o.live ? { live: o.live } : {}),
  };
}
