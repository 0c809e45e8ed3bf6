/** Gateway nodes of a cluster in this process, over one shared data folder and one Redis. */
import { pino } from 'pino';
import { startGateway, type Gateway } from '../../gateway/index.js';
import { testGatewayOptions } from '../mqtt-helpers.js';
import type { tempDir } from '../helpers.js';

export type Node = Gateway & { dir: string; caPem: string };

/** A gateway node on `redis` over the shared data folder `dir` (scoring off unless `extra` turns it on: most tests set scores themselves). */
export async function node(t: Parameters<typeof tempDir>[0], dir: string, redis: string, nodeId: string, extra: Partial<Parameters<typeof startGateway>[0]> = {}): Promise<Node> {
  const gw = await startGateway(
    testGatewayOptions(dir, { log: pino({ level: process.env.TEST_LOG ?? 'silent' }), cluster: { redis, nodeId, leaseMs: 3000 }, ...extra }),
  );
  t.teardown(() => gw.close());
  return Object.assign(gw, { dir, caPem: gw.ca.caCertificates().map((c) => c.toString()).join('') });
}

