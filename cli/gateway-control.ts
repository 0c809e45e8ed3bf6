/**
 * How local commands reach a running `wott gateway` on the same data folder: its pid file, and a reload request
 * that says who asked (a signal carries no sender). Both live in the private data folder (0700).
 */
import { InvalidArgumentError } from 'commander';
import { readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { isActorName } from '../protocol/index.js';

export const gatewayPidFile = (dataDir: string) => join(dataDir, 'gateway.pid');
export const reloadRequestFile = (dataDir: string) => join(dataDir, 'policy-reload.request');

/** The running gateway's pid, or a clear error when none runs on this data folder. */
export function readGatewayPid(dataDir: string): number {
  let pid: number;
  try {
    pid = Number.parseInt(readFileSync(gatewayPidFile(dataDir), 'utf8'), 10);
  } catch {
    throw new InvalidArgumentError(`no gateway is running on ${dataDir} (no ${gatewayPidFile(dataDir)}); start it with wott gateway`);
  }
  try {
    if (!(pid > 1)) throw new Error('bad pid');
    process.kill(pid, 0);
  } catch {
    throw new InvalidArgumentError(`no gateway is running on ${dataDir} (${gatewayPidFile(dataDir)} names pid ${pid}, which is gone)`);
  }
  return pid;
}

/** Who asked for the reload being handled (a request younger than a minute), consumed; undefined when nobody said. */
export function takeReloadRequest(dataDir: string): string | undefined {
  const path = reloadRequestFile(dataDir);
  try {
    if (Date.now() - statSync(path).mtimeMs > 60_000) return undefined;
    const { actor } = JSON.parse(readFileSync(path, 'utf8')) as { actor?: unknown };
    return isActorName(actor) ? actor : undefined;
  } catch {
    return undefined;
  } finally {
    rmSync(path, { force: true });
  }
}

/**
 * Where the gateway on this data folder answers HTTPS, for local commands that ask it (`wott audit run`): written
 * by every gateway process once it listens (workers share the port, so they write the same), removed at its stop.
 */
export const gatewayListenFile = (dataDir: string) => join(dataDir, 'gateway.listen.json');

export interface GatewayListen {
  /** An address that reaches the HTTPS listener from this machine (loopback when it binds every address). */
  host: string;
  httpsPort: number;
}

/** The address for local commands of a listener bound to `bind`. */
export function reachableHost(bind: string): string {
  if (bind === '0.0.0.0' || bind === '') return '127.0.0.1';
  if (bind === '::') return '::1';
  return bind;
}

/** The running gateway's HTTPS address, or undefined when no gateway runs on this data folder (or it has not said). */
export function readGatewayListen(dataDir: string): (GatewayListen & { pid: number }) | undefined {
  let pid: number;
  try {
    pid = readGatewayPid(dataDir);
  } catch {
    return undefined;
  }
  try {
    const { host, httpsPort } = JSON.parse(readFileSync(gatewayListenFile(dataDir), 'utf8')) as Partial<GatewayListen>;
    if (typeof host !== 'string' || !Number.isInteger(httpsPort) || httpsPort! <= 0 || httpsPort! > 65535) return undefined;
    return { pid, host, httpsPort: httpsPort! };
  } catch {
    return undefined;
  }
}
