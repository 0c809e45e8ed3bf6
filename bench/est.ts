/**
 * `npm run bench -- est`: EST token enrollment (simpleenroll, HTTP Basic id:token) over HTTPS, a new TLS connection
 * per device, enrollments per second, against a bare node:https server on the same TLS settings (P-256 server
 * certificate from the same CA, client certificates asked for) that signs one P-256 signature per request — the
 * least an issuing server must do. Rounds alternate, median of rounds. Goal (issue 20): ≥ 0.5×.
 *
 * The clients run in worker threads (several event loops, each opening its own connections), so the client is not
 * what limits the rate: each worker reports its event-loop utilisation, printed beside the figures; a client
 * loop that is not saturated (well below 1) was waiting for the server. The bare server's higher rate with the
 * same clients shows the same. Options: --devices N enrollments per round (default 1,000; 150 with --quick).
 */
import { Agent, createServer, request, type Server } from 'node:https';
import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { bitString, explicit, oid, sequence, set, smallInteger, utf8String } from '../ca/der.js';
import { quietGatewayOptions, startGateway, type Gateway } from '../gateway/index.js';
import { EST_PATHS } from '../protocol/index.js';
import { ratio, type Suite, type SuiteResult } from './harness.js';

interface Job {
  user: string;
  password: string;
  body: string;
}
interface WorkerSpec {
  role: 'wott-bench-est-client';
  port: number;
  path: string;
  ca: string;
  jobs: Job[];
  concurrency: number;
}
interface WorkerResult {
  done: number;
  errors: number;
  firstError?: string;
  ms: number;
  elu: number;
}

/** A PKCS#10 request for `cn` (P-256, ECDSA-SHA256), built with the DER writer: no openssl start-up per device. */
function makeCsr(cn: string): string {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const spki = publicKey.export({ format: 'der', type: 'spki' });
  const info = sequence(smallInteger(0), sequence(set(sequence(oid('2.5.4.3'), utf8String(cn)))), spki, explicit(0));
  const der = sequence(info, sequence(oid('1.2.840.10045.4.3.2')), bitString(sign('sha256', info, { key: privateKey, dsaEncoding: 'der' })));
  return der.toString('base64');
}

// ------------------------------------------------------------------ client worker

async function runClient(spec: WorkerSpec): Promise<WorkerResult> {
  const { port, path, ca, jobs, concurrency } = spec;
  // A fresh agent with keepAlive off: every request makes its own TCP + TLS connection, as a new device does.
  const agent = new Agent({ keepAlive: false, maxSockets: Infinity });
  let next = 0;
  let done = 0;
  let errors = 0;
  let firstError: string | undefined;
  const one = (job: Job) =>
    new Promise<void>((resolve) => {
      const req = request(
        { host: '127.0.0.1', port, path, method: 'POST', ca, agent, servername: 'localhost', auth: `${job.user}:${job.password}`, headers: { 'Content-Type': 'application/pkcs10' } },
        (res) => {
          res.resume();
          res.on('end', () => {
            if (res.statusCode === 200) done++;
            else {
              errors++;
              firstError ??= `HTTP ${res.statusCode}`;
            }
            resolve();
          });
        },
      );
      req.on('error', (err) => {
        errors++;
        firstError ??= err.message;
        resolve();
      });
      req.end(job.body);
    });
  const elu0 = performance.eventLoopUtilization();
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < jobs.length) await one(jobs[next++]!);
    }),
  );
  const ms = performance.now() - started;
  return { done, errors, firstError, ms, elu: performance.eventLoopUtilization(elu0).utilization };
}

if (!isMainThread && (workerData as { role?: string } | null)?.role === 'wott-bench-est-client') {
  void runClient(workerData as WorkerSpec).then((r) => parentPort!.postMessage(r));
}

function client(spec: Omit<WorkerSpec, 'role'>): Promise<WorkerResult> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL(import.meta.url), { workerData: { role: 'wott-bench-est-client', ...spec } });
    worker.once('message', (m: WorkerResult) => {
      resolve(m);
      void worker.terminate();
    });
    worker.on('error', reject);
  });
}

/** One round: `jobs` split over `workers` client threads started together; rate over the slowest thread's time. */
async function round(port: number, path: string, ca: string, jobs: Job[], workers: number, concurrency: number) {
  const parts = Array.from({ length: workers }, (_, w) => jobs.filter((_, i) => i % workers === w));
  const results = await Promise.all(parts.map((p) => client({ port, path, ca, jobs: p, concurrency })));
  const done = results.reduce((s, r) => s + r.done, 0);
  const errors = results.reduce((s, r) => s + r.errors, 0);
  const ms = Math.max(...results.map((r) => r.ms));
  return { rate: (done * 1000) / ms, done, errors, firstError: results.find((r) => r.firstError)?.firstError, elu: Math.max(...results.map((r) => r.elu)) };
}

/** The baseline: node:https on the gateway's TLS settings, one P-256 signature over the request body per request. */
async function bareServer(gw: Gateway, caPem: string, key: KeyObject): Promise<Server> {
  const issued = await gw.ca.issueServer(['localhost']);
  const server = createServer({ key: issued.keyPem, cert: issued.pem + gw.ca.material.intermediate.toString(), ca: caPem, requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.2' }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const signature = sign('sha256', Buffer.concat(chunks), { key, dsaEncoding: 'der' });
      res.writeHead(200, { 'Content-Type': 'application/pkcs7-mime' }).end(signature.toString('base64'));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return server;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

export const estSuite: Suite = {
  name: 'est',
  description: 'EST token enrollment over HTTPS, a new TLS connection per device, vs node:https signing one P-256 signature per request',
  async run({ quick, args = [] }) {
    const rounds = quick ? 1 : 3;
    // --devices N: enrollments per round (the smoke test uses a few dozen).
    const at = args.findIndex((a) => a === '--devices' || a.startsWith('--devices='));
    const given = at < 0 ? NaN : Number(args[at]!.includes('=') ? args[at]!.split('=')[1] : args[at + 1]);
    const perRound = Number.isInteger(given) && given > 0 ? given : quick ? 150 : 1000;
    const WORKERS = 3;
    const CONCURRENCY = 16;
    const dir = mkdtempSync(join(tmpdir(), 'wott-bench-est-'));
    const gw = await startGateway({
      ...quietGatewayOptions(dir, [{ topic: 'bench/#', publish: 0.4, subscribe: 0.4 }]),
      // One source (this machine) opens every connection of the benchmark.
      httpsLimits: { maxConnectionsPerSource: 5_000, connectRate: { max: 1_000_000, windowMs: 10_000, banMs: 1_000 } },
    });
    const caPem = gw.ca.caCertificates().map((c) => c.toString()).join('');
    const bare = await bareServer(gw, caPem, generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey);
    const barePort = (bare.address() as AddressInfo).port;
    const result: SuiteResult = { suite: 'est', measurements: [], ratios: [], goals: [] };
    try {
      const wott: number[] = [];
      const base: number[] = [];
      const elus: number[] = [];
      let errors = 0;
      let firstError: string | undefined;
      for (let r = 0; r < rounds; r++) {
        // Fresh devices every round: a token is good for one enrollment.
        const jobs: Job[] = [];
        for (let i = 0; i < perRound; i++) {
          const id = `est-bench-${r}-${i}`;
          jobs.push({ user: id, password: '', body: makeCsr(id) });
        }
        for (let i = 0; i < jobs.length; i += 100) {
          await Promise.all(jobs.slice(i, i + 100).map(async (j) => void (j.password = (await gw.ca.createToken(j.user)).token)));
        }
        const a = await round(gw.httpsPort, EST_PATHS.simpleenroll, caPem, jobs, WORKERS, CONCURRENCY);
        const b = await round(barePort, '/sign', caPem, jobs, WORKERS, CONCURRENCY);
        wott.push(a.rate);
        base.push(b.rate);
        elus.push(a.elu, b.elu);
        errors += a.errors + b.errors;
        firstError ??= a.firstError ?? b.firstError;
        process.stderr.write(`est round ${r + 1}/${rounds}: wott ${a.rate.toFixed(0)}/s (${a.done} ok, ${a.errors} failed), bare ${b.rate.toFixed(0)}/s; client loop utilisation ≤ ${Math.max(a.elu, b.elu).toFixed(2)}\n`);
      }
      result.measurements.push({ name: 'node:https + one P-256 signature per request, new TLS connection each', value: median(base), unit: 'req/s', baseline: true });
      result.measurements.push({ name: 'wott EST simpleenroll (token), new TLS connection each', value: median(wott), unit: 'enroll/s' });
      result.measurements.push({ name: `client worker event-loop utilisation, max (${WORKERS} threads × ${CONCURRENCY} in flight)`, value: Math.max(...elus), unit: '' });
      result.measurements.push({ name: 'failed requests (both servers, all rounds)', value: errors, unit: firstError ? `(first: ${firstError})` : '' });
      const x = ratio(result, 'wott EST vs bare signing server', 'wott EST simpleenroll (token), new TLS connection each', 'node:https + one P-256 signature per request, new TLS connection each');
      result.goals.push({ name: 'EST enrollment over HTTPS >= 0.5x bare signing server (issue 20)', met: x >= 0.5 && errors === 0, detail: `${x.toFixed(2)}x, median of ${rounds} rounds${errors ? `, ${errors} failed requests` : ''}` });
      return result;
    } finally {
      await new Promise<void>((r) => bare.close(() => r()));
      await gw.close();
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
