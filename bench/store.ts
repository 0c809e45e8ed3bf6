/**
 * `npm run bench -- store`: token enrollments per second through CertificateAuthority (CSR check, signing, one
 * inventory transaction that checks and uses the token and records the certificate, committed before the answer),
 * 30 in flight: the embedded SQLite inventory (baseline) vs PostgreSQL with one node and with three nodes (three CA
 * objects, each with its own pool, in this one process: the same CPU, so the ratio shows what the shared store
 * costs or allows, not what more machines would add). Median of rounds. Needs the Debian postgresql package.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { mkdtempSync, rmSync } from 'node:fs';
import { webcrypto } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CertificateAuthority } from '../ca/index.js';
import { openPostgresInventory } from '../store/index.js';
import { ratio, type Suite, type SuiteResult } from './harness.js';
import { postgresBin, startPostgresServer } from './postgres.js';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

async function makeCsr(cn: string): Promise<Buffer> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = (await webcrypto.subtle.generateKey(alg, false, ['sign', 'verify'])) as CryptoKeyPair;
  return Buffer.from((await x509.Pkcs10CertificateRequestGenerator.create({ name: `CN=${cn}`, keys, signingAlgorithm: alg })).rawData);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Enrolls `n` fresh devices through `cas` (round-robin), `inFlight` at a time; returns enrollments per second. */
async function enrollRate(cas: CertificateAuthority[], prefix: string, n: number, inFlight: number): Promise<number> {
  const devices = Array.from({ length: n }, (_, i) => `${prefix}-${i}`);
  const tokens = await Promise.all(devices.map((d, i) => cas[i % cas.length]!.createToken(d)));
  const csrs = await Promise.all(devices.map((d) => makeCsr(d)));
  let next = 0;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      for (let i = next++; i < n; i = next++) await cas[(i + 1) % cas.length]!.enrollWithToken(devices[i]!, tokens[i]!.token, csrs[i]!);
    }),
  );
  return (n * 1000) / (performance.now() - start);
}

export const storeSuite: Suite = {
  name: 'store',
  description: 'token enrollments per second: SQLite (1 node) vs PostgreSQL (1 node, 3 nodes on one database)',
  async run({ quick }) {
    const bin = postgresBin();
    if (!bin) throw new Error('the store benchmark needs PostgreSQL: apt-get install postgresql');
    const n = quick ? 100 : 400;
    const rounds = quick ? 1 : 3;
    const inFlight = 30;
    const result: SuiteResult = { suite: 'store', measurements: [], ratios: [], goals: [] };
    const dir = mkdtempSync(join(tmpdir(), 'wott-bench-store-'));
    const pgDir = mkdtempSync(join(tmpdir(), 'wott-bench-pg-'));
    const server = await startPostgresServer(pgDir, bin, { fsync: true }); // durable commits, as SQLite's synchronous=FULL
    const opened: CertificateAuthority[] = [];
    try {
      const sqlite = await CertificateAuthority.open({ dataDir: join(dir, 'sqlite'), onWarning: () => undefined });
      opened.push(sqlite);
      const url = await server.newDatabase();
      const nodes: CertificateAuthority[] = [];
      for (let i = 0; i < 3; i++) {
        // One CA (the same keys, as every node of a cluster has), three inventories on one database.
        nodes.push(await CertificateAuthority.open({ dataDir: join(dir, 'pg'), inventory: await openPostgresInventory(url), onWarning: () => undefined }));
      }
      opened.push(...nodes);
      const runs = { sqlite: [] as number[], pg1: [] as number[], pg3: [] as number[] };
      for (let r = 0; r < rounds; r++) {
        runs.sqlite.push(await enrollRate([sqlite], `s${r}`, n, inFlight));
        runs.pg1.push(await enrollRate([nodes[0]!], `a${r}`, n, inFlight));
        runs.pg3.push(await enrollRate(nodes, `b${r}`, n, inFlight));
      }
      result.measurements.push({ name: 'SQLite, 1 node', value: median(runs.sqlite), unit: 'enroll/s', baseline: true });
      result.measurements.push({ name: 'PostgreSQL, 1 node', value: median(runs.pg1), unit: 'enroll/s' });
      result.measurements.push({ name: 'PostgreSQL, 3 nodes', value: median(runs.pg3), unit: 'enroll/s' });
      ratio(result, 'PostgreSQL 1 node / SQLite', 'PostgreSQL, 1 node', 'SQLite, 1 node');
      const three = ratio(result, 'PostgreSQL 3 nodes / SQLite', 'PostgreSQL, 3 nodes', 'SQLite, 1 node');
      // One process, one CPU budget: three nodes must at least not lose to one SQLite node by much.
      result.goals.push({ name: '3 PostgreSQL nodes ≥ 0.5 × 1 SQLite node (same process)', met: three >= 0.5, detail: `${three.toFixed(2)}x` });
    } finally {
      await Promise.allSettled(opened.map((ca) => ca.close()));
      await server.destroy();
      rmSync(dir, { recursive: true, force: true });
    }
    return result;
  },
};
