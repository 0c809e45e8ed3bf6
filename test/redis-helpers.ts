/** A real redis-server (Debian's redis-server package) on a free loopback port, in a temporary folder. */
import { spawn, type ChildProcess } from 'node:child_process';
import { freePort } from '../bench/servers.js';
import { requireCommand, tempDir } from './helpers.js';

export interface RedisServer {
  url: string;
  port: number;
  /** Stops the server (SIGTERM: it writes its append-only file first). */
  stop(): Promise<void>;
  /** Kills and starts it again on the same port and folder (clients must reconnect by themselves). */
  restart(): Promise<void>;
}

function startProcess(port: number, dir: string): Promise<ChildProcess> {
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
        resolve(child);
      }
    };
    const onExit = (code: number | null) => reject(new Error(`redis-server exited (${code}) before it was ready: ${out}`));
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
    child.once('exit', onExit);
  });
}

/** Starts redis-server for test `t` (installing the Debian package as root when missing); stopped at teardown. */
export async function startRedis(t: Parameters<typeof tempDir>[0]): Promise<RedisServer | undefined> {
  if (!requireCommand(t, 'redis-server', 'redis-server')) return undefined;
  const dir = tempDir(t);
  const port = await freePort();
  let child = await startProcess(port, dir);
  const stopChild = (c: ChildProcess, signal: NodeJS.Signals) =>
    new Promise<void>((resolve) => {
      if (c.exitCode !== null || c.signalCode !== null) return resolve();
      c.once('exit', () => resolve());
      c.kill(signal);
    });
  const server: RedisServer = {
    url: `redis://127.0.0.1:${port}`,
    port,
    stop: () => stopChild(child, 'SIGTERM'),
    async restart() {
      await stopChild(child, 'SIGKILL');
      child = await startProcess(port, dir);
    },
  };
  t.teardown(() => server.stop());
  return server;
}
