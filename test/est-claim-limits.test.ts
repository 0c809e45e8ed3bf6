/**
 * Claim mode under attack (issue 11, item 3), against a real gateway over real TLS: one source floods
 * unauthenticated enrollment and gets 429 with Retry-After; many sources together stop at the cap on unclaimed
 * devices (503); unclaimed devices nobody claims expire, are revoked (CRL) and kicked off MQTT. Throughout, a
 * device with a token enrolls and works, from the very address that is being limited.
 *
 * The gateway's clock is injected and frozen: the rate limiter and the expiry only move when the test moves it.
 */
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { requireCommand, tempDir, makeCsr, memoryLogger, startGatewayProcess, writeTemp } from './helpers.js';
import { connect, connectError, enroll, inbox, testGateway, waitFor } from './mqtt-helpers.js';
import { claimEnroll, crlSerials, est, getBytes } from './est-helpers.js';
import { CRL_PATH, EST_PATHS } from '../protocol/index.js';

const MINUTE = 60_000;

/** Polls an asynchronous condition (an inventory read) until it holds. */
async function eventually(cond: () => Promise<boolean>, what: string, timeoutMs = 30_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function clock() {
  const base = Date.now();
  let offset = 0;
  return { now: () => new Date(base + offset), advance: (ms: number) => void (offset += ms) };
}

/** A token-enrolled device that subscribes to its own topic and receives what it publishes there. */
async function legitimateRoundTrip(t: Tap.Test, gw: Parameters<typeof enroll>[0], dir: string, id: string) {
  const creds = await enroll(gw, dir, id);
  const client = await connect(gw, creds);
  t.teardown(() => client.endAsync(true));
  const got = inbox(client);
  await client.subscribeAsync(`devices/${id}/#`, { qos: 1 });
  await client.publishAsync(`devices/${id}/temp`, '21.5', { qos: 1 });
  await waitFor(() => got.some((m) => m.topic === `devices/${id}/temp` && m.payload === '21.5'), `${id} round trip`);
  return client;
}

t.test('claim flood: per-source rate limit (429 + Retry-After), cap on unclaimed devices (503)', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const time = clock();
  const gw = await testGateway(t, {
    claim: true,
    now: time.now,
    enrollment: { rateLimit: { perMinute: 6, burst: 5, maxSources: 100 }, maxUnclaimed: 8, unclaimedTtlMs: 60 * MINUTE },
  });
  const work = tempDir(t);
  const unclaimed = () => gw.ca.inventory.countDevices('unclaimed');

  // The attacker at 127.0.0.1 spends its burst ...
  for (let i = 0; i < 5; i++) {
    const { reply } = await claimEnroll(gw, work, `flood-${i}`);
    t.equal(reply.status, 200, `burst enrollment ${i} accepted`);
  }
  // ... and then every further attempt is refused before any work, whatever the id.
  let refused = 0;
  let retryAfter: unknown;
  for (let i = 5; i < 40; i++) {
    const { reply } = await claimEnroll(gw, work, `flood-${i}`);
    if (reply.status === 429) refused++;
    retryAfter = reply.headers['retry-after'];
    if (i === 5) t.match(reply.body, /too many enrollment requests without credentials from this address; retry in 10 s/);
  }
  t.equal(refused, 35, 'all 35 attempts past the burst are refused with 429');
  t.equal(retryAfter, '10', 'Retry-After: one request per 10 s at 6 a minute');
  t.equal(await unclaimed(), 5, 'the flood created only the burst');

  // A device with a token, from the same address, is not limited, and works on MQTT.
  await legitimateRoundTrip(t, gw, work, 'legit-1');

  // Ten seconds later (on the gateway's clock) the source may enroll one more device, and only one.
  time.advance(10_000);
  t.equal((await claimEnroll(gw, work, 'flood-after-10s')).reply.status, 200, 'the bucket refilled one token');
  t.equal((await claimEnroll(gw, work, 'flood-after-10s-b')).reply.status, 429, 'and only one');

  // Other sources have their own budget ...
  t.equal((await claimEnroll(gw, work, 'other-1', '127.0.0.2')).reply.status, 200, 'another source is not affected');
  t.equal((await claimEnroll(gw, work, 'other-2', '127.0.0.2')).reply.status, 200);
  t.equal(await unclaimed(), 8, 'the cap is reached');
  // ... but all of them together stop at the cap on unclaimed devices: new and existing ids alike (no enumeration).
  const full = await claimEnroll(gw, work, 'other-3', '127.0.0.2');
  t.equal(full.reply.status, 503, 'cap reached: 503');
  t.match(full.reply.body, /too many unclaimed devices are waiting for an operator to claim them \(limit 8\)/);
  const retry = Number(full.reply.headers['retry-after']);
  t.ok(retry > 3000 && retry <= 3600, `Retry-After is when the oldest unclaimed device expires (${retry} s)`);
  const existing = await claimEnroll(gw, work, 'flood-0', '127.0.0.3');
  t.same([existing.reply.status, existing.reply.body], [full.reply.status, full.reply.body], 'an existing id gets the same 503');
  t.equal(await unclaimed(), 8, 'nothing was created past the cap');
  t.equal((await claimEnroll(gw, work, 'other-4', '127.0.0.4')).reply.status, 503, 'a fresh source is held by the cap too');

  // Token enrollment is not subject to the cap.
  await legitimateRoundTrip(t, gw, work, 'legit-2');
  // Claiming one frees a place.
  await gw.fleet.claim('flood-1');
  t.equal((await claimEnroll(gw, work, 'other-5', '127.0.0.2')).reply.status, 200, 'a claim frees a place');
  t.equal(await unclaimed(), 8);
});

t.test('the limiter keeps a bounded number of sources; past it new sources share one bucket', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const time = clock();
  const gw = await testGateway(t, {
    claim: true,
    now: time.now,
    enrollment: { rateLimit: { perMinute: 1, burst: 1, maxSources: 3 }, maxUnclaimed: 100, unclaimedTtlMs: 60 * MINUTE },
  });
  const work = tempDir(t);
  const statuses: number[] = [];
  for (let i = 1; i <= 6; i++) statuses.push((await claimEnroll(gw, work, `src-${i}`, `127.0.1.${i}`)).reply.status);
  // Sources 1-3 get their own bucket; 4, 5 and 6 share the overflow bucket: 4 spends it, 5 and 6 are refused.
  t.same(statuses, [200, 200, 200, 200, 429, 429]);
  t.equal(await gw.ca.inventory.countDevices('unclaimed'), 4, 'varying the source address does not multiply the budget');
  // When the tracked sources have refilled (idle), they are dropped and new sources get buckets again.
  time.advance(2 * MINUTE);
  t.equal((await claimEnroll(gw, work, 'src-7', '127.0.1.7')).reply.status, 200);
  t.equal((await claimEnroll(gw, work, 'src-8', '127.0.1.8')).reply.status, 200);
});

t.test('unclaimed devices nobody claims expire: revoked, on the CRL, kicked off MQTT, id kept', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const time = clock();
  const log = memoryLogger();
  const gw = await testGateway(t, {
    claim: true,
    now: time.now,
    log,
    enrollment: { unclaimedTtlMs: 10 * MINUTE, sweepIntervalMs: 100 },
  });
  const work = tempDir(t);

  const squatter = (await claimEnroll(gw, work, 'squatter-1')).creds!;
  const claimed = (await claimEnroll(gw, work, 'claimed-1')).creds!;
  await gw.fleet.claim('claimed-1');
  const legit = await legitimateRoundTrip(t, gw, work, 'legit-1');
  const squatterClient = await connect(gw, squatter);
  t.teardown(() => squatterClient.endAsync(true));
  let squatterClosed = false;
  squatterClient.on('close', () => (squatterClosed = true));
  time.advance(5 * MINUTE);
  const late = (await claimEnroll(gw, work, 'late-1')).creds!;

  // Five minutes later on the gateway's clock the squatter's ten minutes are up; late-1 has five to go.
  time.advance(5 * MINUTE + 1000);
  await eventually(async () => (await gw.ca.inventory.device('squatter-1'))?.state === 'revoked', 'the sweep');
  await waitFor(() => squatterClosed, 'the squatter to be disconnected');
  const rows = await gw.ca.inventory.certificates({ deviceId: 'squatter-1' });
  t.same(rows.map((r) => r.status), ['revoked'], 'its certificate is revoked');
  t.same((await gw.ca.inventory.revocations()).filter((r) => r.serial === squatter.serial).map((r) => r.reason), ['privilegeWithdrawn']);
  // The broker is woken by the revocation's commit; the new CRL follows a moment later (it is signed after it).
  let crl = await getBytes(gw, CRL_PATH);
  for (let i = 0; i < 100 && !crlSerials(crl.body).includes(squatter.serial); i++) {
    await new Promise((r) => setTimeout(r, 50));
    crl = await getBytes(gw, CRL_PATH);
  }
  t.ok(crlSerials(crl.body).includes(squatter.serial), 'the CRL lists it');
  const expiredLines = (log.lines as Array<{ obj: { devices?: string[] }; msg?: string }>).filter((l) => l.msg === 'unclaimed devices expired: certificates revoked');
  t.same(expiredLines.map((l) => l.obj.devices), [['squatter-1']], 'the operator sees it in the log');

  // It can no longer act: no MQTT, no renewal, and its id cannot be taken again without credentials.
  await connectError(gw, squatter);
  const renewal = await est(gw, EST_PATHS.simplereenroll, {
    body: makeCsr(work, '/CN=squatter-1').der.toString('base64'),
    cert: squatter.cert,
    key: squatter.key,
  });
  t.equal(renewal.status, 403, 'renewal refused');
  t.match(renewal.body, /revoked/);
  t.equal((await claimEnroll(gw, work, 'squatter-1')).reply.status, 401, 'the id stays taken for unauthenticated callers');

  // Others are untouched: the claimed device, the younger unclaimed one, and the token device still delivering.
  t.equal((await gw.ca.inventory.device('claimed-1'))?.state, 'active');
  t.equal((await gw.ca.inventory.device('late-1'))?.state, 'unclaimed');
  t.notOk(crlSerials(crl.body).includes(claimed.serial));
  t.notOk(crlSerials(crl.body).includes(late.serial));
  const got = inbox(legit);
  await legit.publishAsync('devices/legit-1/after', 'still here', { qos: 1 });
  await waitFor(() => got.some((m) => m.payload === 'still here'), 'legit-1 still delivers');

  // The documented way back for the real device: an operator token (the id becomes active again).
  await enroll(gw, work, 'squatter-1');
  t.equal((await gw.ca.inventory.device('squatter-1'))?.state, 'active');
});

t.test('wott.yaml enrollment limits reach a `wott gateway` process', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const dir = tempDir(t);
  const config = writeTemp(dir, 'wott.yaml', 'enrollment:\n  claim: true\n  rateLimit:\n    perMinute: 1\n    burst: 2\n  maxUnclaimed: 10\n');
  const { child, port } = await startGatewayProcess(join(dir, 'data'), ['--config', config]);
  t.teardown(() => void child.kill('SIGTERM'));
  const gw = { httpsPort: port, caPem: readFileSync(join(dir, 'data', 'ca', 'root.crt'), 'utf8') };
  const statuses: number[] = [];
  for (let i = 0; i < 3; i++) statuses.push((await claimEnroll(gw, dir, `proc-${i}`)).reply.status);
  t.same(statuses, [200, 200, 429], 'burst 2 from the config file, then 429');
});
