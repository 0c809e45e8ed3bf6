/** A real redis-server (Debian's redis-server package) on a free loopback port, in a temporary folder. */
import { redisServer, type RedisProcess } from '../bench/servers.js';
import { requireCommand, tempDir } from './helpers.js';

/** Starts redis-server for test `t` (installing the Debian package as root when missing); stopped at teardown. */
export async function startRedis(t: Parameters<typeof tempDir>[0]): Promise<RedisProcess | undefined> {
  if (!requireCommand(t, 'redis-server', 'redis-server')) return undefined;
  const server = await redisServer(tempDir(t));
  t.teardown(() => server.stop());
  return server;
}
