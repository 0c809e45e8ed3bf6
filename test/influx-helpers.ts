/** A real influxd (Debian `influxdb`, 1.x) for a test: installed when missing (as root), stopped at teardown. */
import type { Test } from 'tap';
import { influxd, type InfluxdProcess } from '../bench/servers.js';
import { requireCommand, tempDir } from './helpers.js';

export { freePort } from '../bench/servers.js';

export interface Influxd extends InfluxdProcess {
  /** InfluxQL; returns the first series' values (or []). */
  query(q: string, db?: string): Promise<unknown[][]>;
}

export async function startInfluxd(t: Test): Promise<Influxd | undefined> {
  if (!requireCommand(t, 'influxd', 'influxdb')) return undefined;
  const server = await influxd(tempDir(t, 'wott-influx-'));
  await server.start();
  t.teardown(() => server.stop());
  return Object.assign(server, {
    async query(q: string, db?: string) {
      const u = new URL('/query', server.url);
      if (db) u.searchParams.set('db', db);
      u.searchParams.set('q', q);
      const body = (await (await fetch(u, { method: 'POST' })).json()) as { results: Array<{ series?: Array<{ values: unknown[][] }>; error?: string }> };
      const r = body.results[0];
      if (r?.error) throw new Error(r.error);
      return r?.series?.[0]?.values ?? [];
    },
  });
}
