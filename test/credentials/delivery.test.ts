/**
 * Credential delivery end to end (issue 17) with a real gateway, real EST enrollment and real MQTT: only the
 * entitled device receives a credential (as a 0400 file with the right content), others never do — not even by
 * subscribing to `#` or the other device's topic; a score drop, quarantine and revocation take it back and flag
 * it; rotation delivers the new version; the gateway's files hold no plaintext.
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { CredentialFiles, CredentialReceiver } from '../../agent/credentials.js';
import { topics } from '../../protocol/index.js';
import { tempDir } from '../helpers.js';
import { api, operatorCredentials } from '../api/helpers.js';
import { connect, enroll, inbox, serviceCredentials, setScore, subscribeGrant, testGateway, waitFor, type Credentials } from '../mqtt-helpers.js';

const quiet = pino({ level: 'silent' });

function allFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? allFiles(join(dir, e.name)) : [join(dir, e.name)]));
}

t.test('entitled devices hold the credential; others never see it; trust loss takes it back', async (t) => {
  const gw = await testGateway(t);
  const dir = tempDir(t);
  const a = await enroll(gw, dir, 'dev-a'); // tag db, score 0.9: entitled
  const b = await enroll(gw, dir, 'dev-b'); // no tag, score 0.9
  const c = await enroll(gw, dir, 'dev-c'); // tag db, score 0.7
  await gw.fleet.setTags('dev-a', ['db']);
  await gw.fleet.setTags('dev-c', ['db']);
  const scorer = await connect(gw, { ...(await serviceCredentials(gw, dir, 'scoring', 'test')), id: 'scoring:test' });
  t.teardown(() => scorer.end(true));
  await setScore(gw, scorer, 'dev-a', 0.9);
  await setScore(gw, scorer, 'dev-b', 0.9);
  await setScore(gw, scorer, 'dev-c', 0.7);

  // Spies: b and c try every topic they can think of.
  const spies = await Promise.all(
    [b, c].map(async (creds) => {
      const client = await connect(gw, { ...creds, id: `${creds.id}:spy` }, { clientId: `${creds.id}:spy` });
      t.teardown(() => client.end(true));
      const got = inbox(client);
      await client.subscribeAsync('#', { qos: 1 });
      t.equal(await subscribeGrant(client, topics.credentials('dev-a')), 128, `${creds.id} may not subscribe to dev-a's credentials`);
      t.equal(await subscribeGrant(client, 'wott/v1/credentials/+'), 128, `${creds.id} may not subscribe to everyone's credentials`);
      return got;
    }),
  );

  const receive = (creds: Credentials) => {
    const files = new CredentialFiles(join(tempDir(t), 'credentials'));
    const receiver = new CredentialReceiver({ urls: [`mqtts://localhost:${gw.mqttPort}`], caPem: gw.caPem, device: creds.id, identity: { keyPem: creds.key, certPem: creds.cert }, files, log: quiet });
    t.teardown(() => receiver.close());
    return { files, receiver, path: (name: string) => join(files.dir, name) };
  };
  const [ra, rb, rc] = [receive(a), receive(b), receive(c)];
  await waitFor(() => ['dev-a', 'dev-b', 'dev-c'].every((d) => gw.plugin.sessionsOf(d).some((s) => s.clientId === `${d}:credentials`)), 'receivers connected');

  const secret = `S3cret-${randomBytes(16).toString('hex')}`;
  const ops = gw.credentials.as('local:tester');
  const info = await ops.set('db-password', Buffer.from(secret), { tags: ['db'], minScore: 0.8 });
  t.equal(info.version, 1);
  t.notOk('value' in info, 'no value comes back');

  await waitFor(() => existsSync(ra.path('db-password')), 'dev-a holds the credential');
  t.equal(readFileSync(ra.path('db-password'), 'utf8'), secret, 'right content');
  t.equal(statSync(ra.path('db-password')).mode & 0o777, 0o400, 'mode 0400');
  t.same(ra.files.list(), [{ name: 'db-password', version: 1, linuxUser: null }]);

  // Score drop below the minimum: gone within 5 s, and flagged.
  await setScore(gw, scorer, 'dev-a', 0.5);
  await waitFor(() => !existsSync(ra.path('db-password')), 'withdrawn after the score drop', 5000);
  const shown = await ops.show('db-password');
  t.same(shown?.exposedTo.map((e) => e.device), ['dev-a'], 'flagged as exposed to dev-a');
  t.match(shown?.exposedTo[0]?.reason, /score 0.5 below 0.8/);
  // …and a recommended action on the device, naming the credential (through the API, as operators see it).
  const viewer = await operatorCredentials(gw, 'viewer', 'alice');
  const detail = await api(gw, 'GET', '/devices/dev-a', viewer);
  t.equal(detail.status, 200, detail.body);
  t.match(detail.json.actions, [{ id: 'credential:db-password', title: /exposed to this device/, fix: /wott credential rotate db-password/ }]);

  // Trusted again: delivered again; rotation: the new version, flag cleared.
  await setScore(gw, scorer, 'dev-a', 0.9);
  await waitFor(() => existsSync(ra.path('db-password')), 'redelivered at 0.9');
  const secret2 = `S3cret-${randomBytes(16).toString('hex')}`;
  t.equal((await ops.rotate('db-password', Buffer.from(secret2))).version, 2);
  await waitFor(() => ra.files.list()[0]?.version === 2, 'version 2 delivered');
  t.equal(readFileSync(ra.path('db-password'), 'utf8'), secret2);
  t.same((await ops.show('db-password'))?.exposedTo, [], 'rotation clears the flag');
  await gw.credentialDelivery.delivery.idle();
  t.notOk((await api(gw, 'GET', '/devices/dev-a', viewer)).json.actions.some((a: { id: string }) => a.id.startsWith('credential:')), 'and the action');

  // Tag loss.
  await gw.fleet.setTags('dev-a', ['other']);
  await waitFor(() => !existsSync(ra.path('db-password')), 'withdrawn after losing the tag', 5000);
  await gw.fleet.setTags('dev-a', ['db']);
  await waitFor(() => existsSync(ra.path('db-password')), 'redelivered with the tag');

  // Quarantine, release, revocation.
  await gw.fleet.quarantine('dev-a');
  await waitFor(() => !existsSync(ra.path('db-password')), 'withdrawn at quarantine', 5000);
  await gw.fleet.release('dev-a');
  await waitFor(() => existsSync(ra.path('db-password')), 'redelivered after release');
  await gw.fleet.revoke({ deviceId: 'dev-a' }, 'keyCompromise');
  await waitFor(() => !existsSync(ra.path('db-password')), 'withdrawn at revocation', 5000);
  t.match((await ops.show('db-password'))?.exposedTo, [{ device: 'dev-a', reason: /revoked/ }]);

  // The others never received anything on a credentials topic, nor a file.
  t.notOk(existsSync(rb.path('db-password')), 'dev-b (no tag) holds nothing');
  t.notOk(existsSync(rc.path('db-password')), 'dev-c (0.7) holds nothing');
  // (Their own topic carries only their manifests: nothing for them, nothing encrypted.)
  for (const [i, got] of spies.entries()) {
    const own = topics.credentials(i === 0 ? 'dev-b' : 'dev-c');
    t.same(got.filter((m) => m.topic.startsWith('wott/v1/credentials/') && m.topic !== own), [], "spies saw nothing on another device's credentials topic");
    t.same(got.filter((m) => m.topic === own && !m.payload.includes('"type":"manifest","held":[]')), [], 'and only empty manifests on their own');
  }

  // The audit log records who did what, and never the value.
  const audit = await gw.fleet.auditLog();
  t.ok(audit.some((e) => e.action === 'credential.set' && e.actor === 'local:tester'));
  t.ok(audit.some((e) => e.action === 'credential.deliver' && e.device === 'dev-a'));
  t.ok(audit.some((e) => e.action === 'credential.withdraw' && e.device === 'dev-a'));
  t.notOk(JSON.stringify(audit).includes(secret) || JSON.stringify(audit).includes(secret2), 'no value in the audit log');

  // No plaintext anywhere in the gateway's data folder (databases, WAL, keys, logs).
  await gw.close();
  const files = allFiles(gw.dir);
  t.ok(files.some((f) => f.endsWith('credentials.db')));
  for (const f of files) {
    const bytes = readFileSync(f);
    t.notOk(bytes.includes(secret) || bytes.includes(secret2), `no plaintext in ${f.slice(gw.dir.length)}`);
  }
  t.equal(statSync(join(gw.dir, 'credentials.key')).mode & 0o777, 0o600, 'credentials.key is 0600');
  t.equal(statSync(join(gw.dir, 'credentials.db')).mode & 0o777, 0o600, 'credentials.db is 0600');
});

t.test('a device that subscribes to its credentials topic in a loop: one sync a second, no audit flood, still served', async (t) => {
  const gw = await testGateway(t);
  const dir = tempDir(t);
  const a = await enroll(gw, dir, 'dev-loop');
  await gw.fleet.setTags('dev-loop', ['db']);
  const scorer = await connect(gw, { ...(await serviceCredentials(gw, dir, 'scoring', 'test')), id: 'scoring:test' });
  t.teardown(() => scorer.end(true));
  await setScore(gw, scorer, 'dev-loop', 0.9);
  const ops = gw.credentials.as('local:tester');
  await ops.set('api-key', Buffer.from('k-1'), { tags: ['db'], minScore: 0.8 });

  // The attacker is the device itself (its own certificate), hammering SUBSCRIBE on its own topic.
  const loop = await connect(gw, { ...a, id: 'dev-loop:loop' }, { clientId: 'dev-loop:loop' });
  t.teardown(() => loop.end(true));
  const got = inbox(loop);
  for (let i = 0; i < 200; i++) void loop.subscribe(topics.credentials('dev-loop'), { qos: 1 });
  await waitFor(() => got.some((m) => m.topic === topics.credentials('dev-loop') && m.payload.includes('"deliver"')), 'the device is still served');
  // A rotation queues behind whatever the SUBSCRIBEs queued: once version 2 arrives, version 1's syncs are done.
  await ops.rotate('api-key', Buffer.from('k-2'));
  await waitFor(() => got.some((m) => m.payload.includes('"deliver"') && m.payload.includes('"version":2')), 'version 2 delivered');
  const deliveries = (await gw.ca.inventory.auditEntries()).filter((e) => e.action === 'credential.deliver' && e.device === 'dev-loop' && /version 1 /.test(e.detail ?? ''));
  t.equal(deliveries.length, 1, 'version 1: one delivery audited, not one per SUBSCRIBE');
  const sent = got.filter((m) => m.payload.includes('"deliver"') && m.payload.includes('"version":1')).length;
  t.ok(sent <= 5, `the 200 SUBSCRIBEs were coalesced into a few syncs (${sent} deliveries sent)`);
});
