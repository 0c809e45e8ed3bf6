/**
 * `wott gateway --workers N`: N gateway processes on one machine, so one big machine uses all its cores. They are
 * nodes of a cluster (docs/cluster.md): Redis carries MQTT between them and the lease picks one scorer; the data
 * folder is shared. node:cluster shares the listening ports (connections go round-robin to the workers), which is
 * what a TCP load balancer in front of several machines does.
 *
 * The primary process only supervises: it restarts a worker that dies, forwards reloads (SIGHUP, `wott gateway
 * reload`, a saved wott.yaml) to every worker, and stops them on SIGTERM/SIGINT.
 */
import cluster, { type Worker } from 'node:cluster';
import { watch, rmSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import type { Logger } from 'pino';
import { writeFileAtomic } from '../lib/atomic-file.js';
import { gatewayListenFile, gatewayPidFile, takeReloadRequest } from './gateway-control.js';

/** What the primary sends a worker. */
export interface WorkerMessage {
  reload: string;
}

export function isWorkerMessage(value: unknown): value is WorkerMessage {
  return typeof value === 'object' && value !== null && typeof (value as WorkerMessage).reload === 'string';
}

export const isGatewayWorker = () => cluster.isWorker;
export const workerId = () => cluster.worker?.id;

export function superviseWorkers(count: number, options: { dataDir: string; configFile?: string; log: Logger }): void {
  const { log, dataDir } = options;
  let stopping = false;
  const started = new Map<Worker, number>();
  const fork = () => {
    const worker = cluster.fork();
    started.set(worker, Date.now());
  };
  cluster.on('exit', (worker, code, signal) => {
    const since = started.get(worker) ?? 0;
    started.delete(worker);
    if (stopping) {
      if (started.size === 0) {
        rmSync(gatewayPidFile(dataDir), { force: true });
        rmSync(gatewayListenFile(dataDir), { force: true });
        process.exit(0);
      }
      return;
    }
    // A worker that dies at once would die again: back off instead of spinning.
    const wait = Date.now() - since < 5_000 ? 5_000 : 200;
    log.error({ pid: worker.process.pid, code, signal, restartInMs: wait }, 'gateway worker exited; starting another');
    setTimeout(() => {
      if (!stopping) fork();
    }, wait).unref();
  });
  for (let i = 0; i < count; i++) fork();
  writeFileAtomic(gatewayPidFile(dataDir), `${process.pid}\n`, 0o600);
  log.info({ workers: count, pid: process.pid }, 'gateway workers started');

  const reloadAll = (actor: string) => {
    for (const worker of started.keys()) worker.send({ reload: actor } satisfies WorkerMessage);
  };
  process.on('SIGHUP', () => reloadAll(takeReloadRequest(dataDir) ?? 'signal:SIGHUP'));
  if (options.configFile) {
    const file = options.configFile;
    let debounce: NodeJS.Timeout | undefined;
    watch(dirname(resolve(file)), (_event, name) => {
      if (name !== basename(file)) return;
      clearTimeout(debounce);
      debounce = setTimeout(() => reloadAll('file:wott.yaml'), 300);
    }).unref();
  }
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping gateway workers');
    for (const worker of started.keys()) worker.process.kill('SIGTERM');
    if (started.size === 0) process.exit(0);
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}
