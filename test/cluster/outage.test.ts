/**
 * Redis, then PostgreSQL, restarted under load (issue 16): two nodes on both keep QoS 1 publishers and a persistent
 * subscriber running. The nodes reconnect by themselves; every QoS 1 message the publisher had acknowledged reaches
 * the subscriber, those acknowledged around the Redis restart included (the bus is a Redis Stream: docs/cluster.md,
 * "When Redis restarts"). A revocation made while Redis is down closes the session while it is down; an enrollment
 * while PostgreSQL is down gets a clear 503 and nothing is issued, and the same token works after.
 */
import { request } from 'node:https';
import { cpSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import type { MqttClient } from 'mqtt';
import { EST_PATHS } from '../../protocol/index.js';
import { makeCsr, tempDir } from '../helpers.js';
import { connect, enroll, waitFor } from '../mqtt-helpers.js';
import { startPostgres } from '../postgres-helpers.js';
import { startRedis } from '../redis-helpers.js';
import { node } from './helpers.js';

function estEnroll(gw: { httpsPort: number; caPem: string }, id: string, token: string, csr: Buffer): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(`https://localhost:${gw.httpsPort}${EST_PATHS.simpleenroll}`, { method: 'POST', ca: gw.caPem, auth: `${id}:${token}` }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end(csr.toString('base64'));
  });
}

const pg = await startPostgres(t);

t.test('Redis restarts, then PostgreSQL, under load: nothing acknowledged is lost; revocations and enrollments behave', async (t) => {
  if (!pg) return;
  const redis = await startRedis(t);
  if (!redis) return;
  const url = await pg.newDatabase();
  const dirA = tempDir(t);
  const a = await node(t, dirA, redis.url, 'node-a', { store: { postgres: url } });
  // Node B: its own data folder with the same CA keys and credentials key, as a cluster's nodes are provisioned.
  const dirB = tempDir(t);
  cpSync(join(dirA, 'ca'), join(dirB, 'ca'), { recursive: true });
  cpSync(join(dirA, 'credentials.key'), join(dirB, 'credentials.key'));
  const b = await node(t, dirB, redis.url, 'node-b', { store: { postgres: url } });
  const creds = tempDir(t);
  const publisher = await enroll(a, creds, 'pub-1');
  const subscriber = await enroll(b, creds, 'sub-1');
  const victim = await enroll(a, creds, 'victim-1');

  // The persistent subscriber on node B (clean session off, reconnecting by itself).
  const received = new Set<string>();
  const sub = await connect(b, subscriber, { clean: false, reconnectPeriod: 500 });
  t.teardown(() => sub.end(true));
  sub.on('message', (_topic, payload) => received.add(payload.toString()));
  await sub.subscribeAsync('weather/#', { qos: 1 });

  // The publisher on node A: QoS 1 without pause; only what was acknowledged (PUBACK) counts.
  const pub = await connect(a, publisher, { reconnectPeriod: 500 });
  t.teardown(() => pub.end(true));
  const acked: string[] = [];
  let publishing = true;
  const loop = (async () => {
    for (let i = 0; publishing; i++) {
      try {
        await pub.publishAsync(`weather/${i % 4}`, `m${i}`, { qos: 1 });
        acked.push(`m${i}`);
      } catch {
        // refused or cut off: not acknowledged, so not owed
      }
      if (!pub.connected) await new Promise((r) => setTimeout(r, 50));
    }
  })();
  t.teardown(() => {
    publishing = false;
    return loop;
  });
  /** Waits until every message acknowledged so far has arrived. */
  const delivered = (what: string) => {
    const owed = acked.slice();
    return waitFor(() => owed.every((m) => received.has(m)), what, 30_000).catch((err: Error) => {
      const missing = owed.filter((m) => !received.has(m));
      throw new Error(`${err.message}: ${missing.length} of ${owed.length} missing (${missing.slice(0, 8).join(' ')}; Redis down at ${down})`);
    });
  };
  let down = -1;
  await waitFor(() => acked.length >= 20 && received.size >= 20, 'messages flow from node A to node B');

  // Redis goes away. A revocation made meanwhile (through node B; the store is PostgreSQL) must close the victim's
  // session on node A by the time Redis is back.
  const doomed = await connect(a, victim);
  let doomedClosed = false;
  doomed.on('close', () => (doomedClosed = true));
  // What was still on its way to node B when Redis went down, and what is acked after, is owed all the same.
  down = acked.length;
  await redis.stop();
  await b.ca.revoke({ serial: victim.serial }, 'keyCompromise');
  // The revocation travels through PostgreSQL's change feed: node A cuts the session off while Redis is still down.
  await waitFor(() => doomedClosed, "the revocation made during the Redis outage closed the victim's session", 10_000);
  await redis.restart();
  // Traffic flows end to end again: a message acknowledged after the restart reached the subscriber.
  const restarted = acked.length;
  await waitFor(() => acked.slice(restarted).some((m) => received.has(m)), 'messages flow from node A to node B after the Redis restart', 30_000);
  await delivered('every message acknowledged before and after the Redis outage reached the subscriber');
  const afterRedis = acked.length;

  // PostgreSQL goes away: enrollment is refused with 503 and nothing issued; MQTT carries on meanwhile.
  const token = (await a.ca.createToken('late-1')).token;
  const { der } = makeCsr(creds, '/CN=late-1');
  await pg.stop();
  t.teardown(() => pg.start().catch(() => undefined)); // for other tests in this file, should an assertion throw
  const refused = await estEnroll(b, 'late-1', token, der);
  t.equal(refused.status, 503, 'enrollment while PostgreSQL is down: 503');
  t.match(refused.body, /unavailable/);
  await waitFor(() => acked.length >= afterRedis + 20, 'MQTT carries on while PostgreSQL is down');
  await pg.start();
  const again = await estEnroll(b, 'late-1', token, der);
  t.equal(again.status, 200, 'the same token enrolls once PostgreSQL is back: nothing was used or issued meanwhile');
  t.same((await pg.sql(new URL(url).pathname.slice(1), "SELECT count(*)::int AS n FROM certificates WHERE device_id = 'late-1'"))[0], { n: 1 }, 'one certificate, recorded');

  publishing = false;
  await loop;
  await delivered('every acknowledged message reached the subscriber in the end');
  const lost = acked.filter((m) => !received.has(m));
  t.equal(lost.length, 0, `of ${acked.length} acknowledged QoS 1 messages (${acked.length - down} from the Redis outage on), lost: ${lost.length} (${lost.slice(0, 5).join(' ')})`);
  t.notOk(doomed.connected, 'the revoked device stays out');
  (doomed as MqttClient).end(true);
});
