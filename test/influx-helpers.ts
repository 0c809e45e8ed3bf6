/** A real influxd (Debian `influxdb`, 1.x) on loopback ports, with its data in a temp folder; stoppable and restartable. */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { Test } from 'tap';
import { requireCommand, tempDir } from './helpers.js';

type T = Test;

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

export interface Influxd {
  url: string;
  port: number;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** InfluxQL; returns the first series' values (or []). */
  query(q: string, db?: string): Promise<unknown[][]>;
}

export async function startInfluxd(t: T): Promise<Influxd | undefined> {
  if (!requireCommand(t, 'influxd', 'influxdb')) return undefined;
  const dir = tempDir(t, 'wott-influx-');
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
  const influxd: Influxd = {
    url,
    port,
    async start() {
      child = spawn('influxd', ['run', '-config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
      child.stdout!.on('data', (d: Buffer) => log.push(d.toString()));
      child.stderr!.on('data', (d: Buffer) => log.push(d.toString()));
      const deadline = Date.now() + 30_000;
      while (Date.now() < deadline) {
        try {
          if ((await fetch(`${url}/ping`)).status === 204) return;
        } catch {
          // not up yet
        }
        if (child.exitCode !== null) break;
        await new Promise((r) => setTimeout(r, 100));
      }
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
    async query(q, db) {
      const u = new URL('/query', url);
      if (db) u.searchParams.set('db', db);
      u.searchParams.set('q', q);
      const body = (await (await fetch(u, { method: 'POST' })).json()) as { results: Array<{ series?: Array<{ values: unknown[][] }>; error?: string }> };
      const r = body.results[0];
      if (r?.error) throw new Error(r.error);
      return r?.series?.[0]?.values ?? [];
    },
  };
  await influxd.start();
  t.teardown(() => influxd.stop());
  return influxd;
}
