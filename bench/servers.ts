/**
 * Real servers on loopback ports, shared by the benchmarks and the tests (which import it from source):
 * a free port, and influxd (Debian `influxdb`, 1.x) with its data in a given folder, stoppable and restartable.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

export interface InfluxdProcess {
  url: string;
  port: number;
  /** Starts influxd and resolves once /ping answers; throws with its log if it does not. */
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** An influxd whose HTTP API (and RPC port) bind to free loopback ports, with meta, data and WAL under `dir`. */
export async function influxd(dir: string): Promise<InfluxdProcess> {
  const port = await freePort();
  const rpc = await freePort();
  const config = join(dir, 'influxdb.conf');
  writeFileSync(
    config,
    `reporting-disabled = true
bind-address = "127.0.0.1:${rpc}"
[meta]
  dir = "${dir}/meta"
[data]
  dir = "${dir}/data"
  wal-dir = "${dir}/wal"
  query-log-enabled = false
[monitor]
  store-enabled = false
[http]
  bind-address = "127.0.0.1:${port}"
  log-enabled = false
`,
  );
  const url = `http://127.0.0.1:${port}`;
  let child: ChildProcess | undefined;
  const log: string[] = [];
  return {
    url,
    port,
    async start() {
      const c = spawn('influxd', ['run', '-config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
      child = c;
      c.stdout!.on('data', (d: Buffer) => log.push(d.toString()));
      c.stderr!.on('data', (d: Buffer) => log.push(d.toString()));
      const deadline = Date.now() + 30_000;
      while (Date.now() < deadline) {
        try {
          if ((await fetch(`${url}/ping`)).status === 204) return;
        } catch {
          // not up yet
        }
        if (c.exitCode !== null) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      c.kill();
      throw new Error(`influxd did not start:\n${log.join('').slice(-2000)}`);
    },
    async stop() {
      const c = child;
      child = undefined;
      if (!c || c.exitCode !== null) return;
      await new Promise<void>((resolve) => {
        c.once('exit', () => resolve());
        c.kill('SIGTERM');
      });
    },
  };
}

export interface RedisProcess {
  url: string;
  port: number;
  /** The server's process id (benchmarks read its CPU time from /proc). */
  readonly pid: number;
  /** Stops the server (SIGTERM: it writes its append-only file first). */
  stop(): Promise<void>;
  /** Kills it (SIGKILL) and starts it again on the same port and folder. */
  restart(): Promise<void>;
}

function spawnRedis(port: number, dir: string): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    // Append-only with fsync on every write: what an acknowledged QoS 1 message in a cluster relies on.
    const child = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'yes', '--appendfsync', 'always', '--protected-mode', 'yes'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    const onData = (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes('Ready to accept connections')) {
        child.stdout!.off('data', onData);
        child.off('exit', onExit);
        child.stdout!.resume();
        resolve(child);
      }
    };
    const onExit = (code: number | null) => reject(new Error(`redis-server exited (${code}) before it was ready: ${out}`));
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
    child.once('exit', onExit);
  });
}

/** A redis-server (Debian `redis-server`) on a free loopback port with its files in `dir`, started. */
export async function redisServer(dir: string): Promise<RedisProcess> {
  const port = await freePort();
  let child = await spawnRedis(port, dir);
  const stopChild = (c: ChildProcess, signal: NodeJS.Signals) =>
    new Promise<void>((resolve) => {
      if (c.exitCode !== null || c.signalCode !== null) return resolve();
      c.once('exit', () => resolve());
      c.kill(signal);
    });
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    get pid() {
      return child.pid!;
    },
    stop: () => stopChild(child, 'SIGTERM'),
    async restart() {
      await stopChild(child, 'SIGKILL');
      child = await spawnRedis(port, dir);
    },
  };
}
