/**
 * wott/trust in a real node:https service with mutual TLS: device certificates from our CA, scores published by a
 * real scoring-identity MQTT client, the library's cache fed by the gateway's real trust stream.
 */
import t from 'tap';
import { TrustClient } from '../../trust/index.js';
import { requireCommand, tempDir } from '../helpers.js';
import { connect, enroll, forgedCredentials, serviceCredentials, setScore, testGateway } from '../mqtt-helpers.js';
import { operatorCredentials } from '../api/helpers.js';
import { callService, mtlsService, waitFor } from './helpers.js';

t.test('requireTrust: served at 0.95, refused within a second of a drop, served again; revoked refused', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const gw = await testGateway(t);
  const dir = tempDir(t);
  const door = await enroll(gw, dir, 'shop-door');
  const other = await enroll(gw, dir, 'shop-till');
  const scorer = await connect(gw, { ...(await serviceCredentials(gw, dir, 'scoring', 'lib')), id: 'scoring:lib' });
  t.teardown(() => scorer.end(true));
  await setScore(gw, scorer, 'shop-door', 0.95);
  await setScore(gw, scorer, 'shop-till', 0.95);

  const viewer = await operatorCredentials(gw, 'viewer', 'shop-service');
  const trust = await TrustClient.connect({ server: `https://127.0.0.1:${gw.httpsPort}`, servername: 'localhost', cert: viewer.cert, key: viewer.key, ca: gw.caPem });
  t.teardown(() => trust.close());
  const guard = trust.requireTrust({ minScore: 0.9 });
  const { port } = await mtlsService(t, gw, (req, res) => guard(req, res, () => res.end('served')));
  const call = (c: { cert: string; key: string }) => callService(port, gw.caPem, c);

  t.same(await call(door), { status: 200, body: 'served' }, 'a device at 0.95 is served');

  const dropped = Date.now();
  await setScore(gw, scorer, 'shop-door', 0.3);
  let refused: { status: number; body: string } | undefined;
  while (Date.now() - dropped < 2000) {
    const r = await call(door);
    if (r.status === 403) {
      refused = r;
      break;
    }
  }
  const after = Date.now() - dropped;
  t.ok(refused, 'refused after the score drop');
  t.ok(after < 1000, `within a second of the score change (${after} ms)`);
  t.match(JSON.parse(refused!.body), { error: 'Forbidden', reason: /score 0\.30 is below 0\.9/, device: 'shop-door', score: 0.3 }, '403 with the reason');

  await setScore(gw, scorer, 'shop-door', 0.95);
  const start = Date.now();
  let again = await call(door);
  while (again.status !== 200 && Date.now() - start < 1000) again = await call(door);
  t.equal(again.status, 200, 'served again once the score is back, without restarting the service');

  // A quarantine (a device event from the change feed) is refused as fast.
  await gw.fleet.quarantine('shop-till');
  const q = Date.now();
  let till = await call(other);
  while (till.status === 200 && Date.now() - q < 2000) till = await call(other);
  t.equal(till.status, 403, 'a quarantined device is refused');
  t.match(JSON.parse(till.body).reason, /quarantined|score 0\.00/, 'with the reason');

  await gw.fleet.revoke({ deviceId: 'shop-door' }, 'keyCompromise');
  const r = Date.now();
  let revoked = await call(door);
  while (revoked.status === 200 && Date.now() - r < 2000) revoked = await call(door);
  t.equal(revoked.status, 403, 'a revoked certificate is refused');
  t.match(JSON.parse(revoked.body).reason, /revoked/, 'because it is revoked');
  t.ok(Date.now() - r < 1000, 'within a second of the revocation');

  const foreign = forgedCredentials(dir, 'shop-door', gw.caPem);
  const forged = await call(foreign);
  t.equal(forged.status, 403, 'a certificate from another CA naming the device is refused');
  t.match(JSON.parse(forged.body).reason, /not accepted/);
  const service = await serviceCredentials(gw, dir, 'scoring', 'not-a-device');
  t.match(JSON.parse((await call(service)).body).reason, /not a device certificate/, 'a service certificate is not a device');
});

t.test('the library resumes its stream after a dropped connection without missing a change', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const gw = await testGateway(t);
  const dir = tempDir(t);
  const door = await enroll(gw, dir, 'lab-door');
  const scorer = await connect(gw, { ...(await serviceCredentials(gw, dir, 'scoring', 'lib2')), id: 'scoring:lib2' });
  t.teardown(() => scorer.end(true));
  await setScore(gw, scorer, 'lab-door', 0.95);
  const viewer = await operatorCredentials(gw, 'viewer', 'lab-service');
  const statuses: boolean[] = [];
  const trust = await TrustClient.connect({
    server: `https://127.0.0.1:${gw.httpsPort}`,
    servername: 'localhost',
    cert: viewer.cert,
    key: viewer.key,
    ca: gw.caPem,
    onStatus: (s) => statuses.push(s.connected),
  });
  t.teardown(() => trust.close());
  const guard = trust.requireTrust({ minScore: 0.9 });
  const { port } = await mtlsService(t, gw, (req, res) => guard(req, res, () => res.end('served')));
  t.equal((await callService(port, gw.caPem, door)).status, 200, 'served (the device is now in the cache)');

  // Kill the stream's socket; the score changes while it is down.
  (trust as unknown as { stream?: { socket: { destroy(): void } } }).stream?.socket.destroy();
  await setScore(gw, scorer, 'lab-door', 0.2);
  await waitFor(() => statuses.length >= 3 && statuses.at(-1) === true, 'the stream to reconnect');
  t.same(statuses.slice(0, 3), [true, false, true], 'the stream went down and came back');
  const r = await callService(port, gw.caPem, door);
  t.equal(r.status, 403, 'the score change made while the stream was down was not missed');
  t.match(JSON.parse(r.body).reason, /0\.20/);
});

t.test('requireTrust as a Fastify onRequest hook and checkPeer on a bare TLS socket', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const { default: Fastify } = await import('fastify');
  const { createServer: createTlsServer, connect: tlsConnect } = await import('node:tls');
  const gw = await testGateway(t);
  const dir = tempDir(t);
  const dev = await enroll(gw, dir, 'fy-dev');
  const scorer = await connect(gw, { ...(await serviceCredentials(gw, dir, 'scoring', 'fy')), id: 'scoring:fy' });
  t.teardown(() => scorer.end(true));
  await setScore(gw, scorer, 'fy-dev', 0.95);
  const viewer = await operatorCredentials(gw, 'viewer', 'fy-service');
  const trust = await TrustClient.connect({ server: `https://127.0.0.1:${gw.httpsPort}`, servername: 'localhost', cert: viewer.cert, key: viewer.key, ca: gw.caPem });
  t.teardown(() => trust.close());
  const issued = await gw.ca.issueServer(['localhost']);
  const tls = { key: issued.keyPem, cert: issued.pem + gw.ca.material.intermediate.toString(), ca: gw.caPem, requestCert: true, rejectUnauthorized: false };

  const app = Fastify({ https: tls });
  app.addHook('onRequest', trust.requireTrust({ minScore: 0.9 }));
  app.get('/', async () => 'fastify served');
  await app.listen({ port: 0, host: '127.0.0.1' });
  t.teardown(() => app.close());
  const port = (app.server.address() as { port: number }).port;
  t.same(await callService(port, gw.caPem, dev), { status: 200, body: 'fastify served' }, 'Fastify: served at 0.95');
  await setScore(gw, scorer, 'fy-dev', 0.4);
  const start = Date.now();
  let r = await callService(port, gw.caPem, dev);
  while (r.status === 200 && Date.now() - start < 1000) r = await callService(port, gw.caPem, dev);
  t.equal(r.status, 403, 'Fastify: refused after the drop');
  t.match(JSON.parse(r.body).reason, /0\.40 is below 0\.9/);

  // Any TLS socket: a device-to-device link that is not HTTP.
  const verdicts: Array<Awaited<ReturnType<TrustClient['checkPeer']>>> = [];
  const raw = createTlsServer(tls, (socket) => void trust.checkPeer(socket, { minScore: 0.3 }).then((v) => (verdicts.push(v), socket.end(v.trusted ? 'ok' : 'no'))));
  await new Promise<void>((res) => raw.listen(0, '127.0.0.1', res));
  t.teardown(() => new Promise<void>((res) => raw.close(() => res())));
  const reply = await new Promise<string>((res, rej) => {
    const s = tlsConnect({ host: '127.0.0.1', port: (raw.address() as { port: number }).port, servername: 'localhost', ca: gw.caPem, cert: dev.cert, key: dev.key }, () => undefined);
    let got = '';
    s.on('data', (d) => (got += d));
    s.on('end', () => res(got));
    s.on('error', rej);
  });
  t.equal(reply, 'ok', 'checkPeer on a raw TLS socket: 0.4 meets 0.3');
  t.match(verdicts[0], { trusted: true, device: 'fy-dev', score: 0.4, state: 'active' });
});
