/**
 * GET /api/v1/trust/{id} and POST /api/v1/trust/check over real mTLS: the effective score the broker enforces,
 * the certificate facts, and a clear verdict (never a 5xx) for hostile certificates: garbage, huge, another CA's,
 * a service certificate, an expired one, a superseded one, a revoked one.
 */
import t from 'tap';
import { CertificateAuthority } from '../../ca/index.js';
import { requireCommand, tempDir, makeCsr } from '../helpers.js';
import { connect, enroll, forgedCredentials, serviceCredentials, setScore, testGateway } from '../mqtt-helpers.js';
import { api, operatorCredentials } from '../api/helpers.js';
import { deviceTrustSchema, trustCheckResultSchema } from '../../protocol/index.js';

t.test('GET /trust/{id}: the effective score, state, factors, certificate; 404 for an unknown device', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const gw = await testGateway(t);
  const dir = tempDir(t);
  const dev = await enroll(gw, dir, 'tr-a');
  const scorer = await connect(gw, { ...(await serviceCredentials(gw, dir, 'scoring', 'tr')), id: 'scoring:tr' });
  t.teardown(() => scorer.end(true));
  const service = await serviceCredentials(gw, dir, 'broker', 'asker');
  const before = await api(gw, 'GET', '/trust/tr-a', service);
  t.equal(before.status, 200, 'a service certificate may ask');
  t.match(before.json, { device: 'tr-a', score: 0.5, rawScore: null, state: 'active', factors: [], modelVersion: null }, 'no score message yet: the initial score');
  const message = { device: 'tr-a', score: 0.87, factors: [{ id: 'firewall', contribution: -0.05, reason: 'firewall allows by default', fix: 'ufw default deny' }], modelVersion: 'm-3', time: new Date().toISOString() };
  await scorer.publishAsync('wott/v1/scores/tr-a', JSON.stringify(message), { qos: 1, retain: true });
  await new Promise((r) => setTimeout(r, 100));
  const reply = await api(gw, 'GET', '/trust/tr-a', service);
  t.ok(deviceTrustSchema.safeParse(reply.json).success, 'the reply matches its schema');
  t.match(reply.json, { device: 'tr-a', score: 0.87, rawScore: 0.87, state: 'active', factors: message.factors, modelVersion: 'm-3', scoredAt: message.time });
  t.equal(reply.json.certificate.serial, dev.serial, 'the current certificate serial');
  t.match(reply.json.certificate.fingerprint, /^[0-9a-f]{64}$/);
  t.ok(Date.parse(reply.json.certificate.notAfter) > Date.now(), 'and its expiry');
  await gw.fleet.quarantine('tr-a');
  await gw.view.refresh();
  const capped = await api(gw, 'GET', '/trust/tr-a', service);
  t.match(capped.json, { score: 0, rawScore: 0.87, state: 'quarantined' }, 'the effective score is the one the broker enforces (state ceiling)');
  t.ok(capped.json.factors.some((f: { reason: string }) => /quarantined/.test(f.reason)), 'the ceiling shows as a factor');
  t.equal(gw.plugin.effectiveScore('tr-a'), capped.json.score, 'the same number the broker decides with');
  const missing = await api(gw, 'GET', '/trust/no-such-device', service);
  t.equal(missing.status, 404);
  const viewer = await operatorCredentials(gw, 'viewer', 'tr-viewer');
  t.equal((await api(gw, 'GET', '/trust/tr-a', viewer)).status, 200, 'a viewer may ask too');
});

t.test('POST /trust/check: verdicts for good, hostile and stale certificates; never a 5xx', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const gw = await testGateway(t);
  const dir = tempDir(t);
  const good = await enroll(gw, dir, 'ck-good');
  const old = await enroll(gw, dir, 'ck-old');
  const gone = await enroll(gw, dir, 'ck-gone');
  const scorer = await connect(gw, { ...(await serviceCredentials(gw, dir, 'scoring', 'ck')), id: 'scoring:ck' });
  t.teardown(() => scorer.end(true));
  await setScore(gw, scorer, 'ck-good', 0.95);
  await setScore(gw, scorer, 'ck-old', 0.95);
  const service = await serviceCredentials(gw, dir, 'broker', 'checker');
  const check = async (body: unknown) => {
    const reply = await api(gw, 'POST', '/trust/check', { ...service, body });
    t.ok(reply.status < 500, `never a 5xx (${reply.status})`);
    return reply;
  };
  const verdict = async (certificate: string, extra: object = { minScore: 0.9 }) => {
    const reply = await check({ certificate, ...extra });
    t.equal(reply.status, 200);
    t.ok(trustCheckResultSchema.safeParse(reply.json).success, 'the reply matches its schema');
    return reply.json;
  };

  t.match(await verdict(good.cert), { trusted: true, verdict: 'trusted', device: 'ck-good', score: 0.95, state: 'active', serial: good.serial }, 'our current certificate at 0.95 passes 0.9');
  t.match(await verdict(good.cert, { minScore: 0.99 }), { trusted: false, verdict: 'score', reason: /below 0\.99/ }, 'below a higher minimum: no, with the reason');
  t.match(await verdict(good.cert, { topic: 'payments/x', action: 'publish' }), { trusted: true, verdict: 'trusted' }, 'a policy topic it may publish to now');
  await setScore(gw, scorer, 'ck-good', 0.5);
  t.match(await verdict(good.cert, { topic: 'payments/x', action: 'subscribe' }), { trusted: false, verdict: 'policy' }, 'after a drop, the policy refuses');
  t.match(await verdict(good.cert, { topic: 'weather/x', action: 'subscribe' }), { trusted: true }, 'a lower-threshold topic still passes');

  // Hostile and foreign certificates.
  t.match(await verdict('garbage'), { trusted: false, verdict: 'malformed' }, 'garbage');
  t.match(await verdict('-----BEGIN CERTIFICATE-----\nAAAA$$$$\n-----END CERTIFICATE-----'), { trusted: false, verdict: 'malformed' }, 'a PEM with bad base64');
  t.match(await verdict('-----BEGIN CERTIFICATE-----\nMIIBAAAA\n-----END CERTIFICATE-----'), { trusted: false, verdict: 'malformed' }, 'a truncated DER');
  const forged = forgedCredentials(dir, 'ck-good', gw.caPem);
  t.match(await verdict(forged.cert), { trusted: false, verdict: 'not-ours' }, 'another CA naming our device');
  t.match(await verdict(service.cert), { trusted: false, verdict: 'not-a-device' }, 'a service certificate of ours');
  const huge = await check({ certificate: good.cert + 'x'.repeat(20_000), minScore: 0.5 });
  t.equal(huge.status, 400, 'a certificate field over 16 KiB is a 400');
  const tooBig = await check({ certificate: 'x'.repeat(70_000), minScore: 0.5 });
  t.equal(tooBig.status, 413, 'a body over 64 KiB is a 413');
  t.equal((await check({ certificate: good.cert })).status, 400, 'neither minScore nor topic: 400');
  t.equal((await check({ certificate: good.cert, minScore: 2 })).status, 400, 'minScore out of range: 400');
  t.equal((await check({ certificate: good.cert, minScore: 0.5, topic: 'a', action: 'publish' })).status, 400, 'both at once: 400');
  t.equal((await api(gw, 'POST', '/trust/check', { ...service, body: '{"certificate":' })).status, 400, 'malformed JSON: 400');

  // Expired: the same CA with its clock two days back issued a one-day certificate.
  const past = await CertificateAuthority.open({ dataDir: gw.dir, now: () => new Date(Date.now() - 2 * 86_400_000), certLifetimeMs: 86_400_000, onWarning: () => {} });
  const { token } = await past.createToken('ck-expired');
  const issued = await past.enrollWithToken('ck-expired', token, makeCsr(dir, '/CN=ck-expired').der);
  past.close();
  t.match(await verdict(issued.pem), { trusted: false, verdict: 'expired', device: 'ck-expired' }, 'an expired certificate of ours');

  // Superseded: the device renewed; the old certificate is not its current one.
  const renewed = await gw.ca.reenroll(Buffer.from(old.cert.replace(/-----[^-]+-----|\s/g, ''), 'base64'), makeCsr(dir, '/CN=ck-old').der);
  await gw.view.refresh();
  t.match(await verdict(old.cert), { trusted: false, verdict: 'superseded' }, 'the superseded certificate');
  t.match(await verdict(renewed.pem, { minScore: 0.9 }), { trusted: true }, 'the renewed one passes');

  await gw.fleet.revoke({ deviceId: 'ck-gone' }, 'keyCompromise');
  await gw.view.refresh();
  t.match(await verdict(gone.cert), { trusted: false, verdict: 'revoked' }, 'a revoked certificate');
  const device = await api(gw, 'POST', '/trust/check', { cert: good.cert, key: good.key, body: { certificate: good.cert, minScore: 0.1 } });
  t.equal(device.status, 403, 'a device certificate may not call it');
});
