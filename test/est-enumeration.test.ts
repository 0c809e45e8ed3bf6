/**
 * Device ids cannot be enumerated over EST (issue 11, item 5), against a real gateway over real TLS: an
 * unauthenticated simpleenroll gets one answer (status, headers, body) whether the id is unknown, revoked,
 * unclaimed, active without a TPM key, or active with one; a caller with a wrong token cannot tell either. The
 * precise reason is in the server log. Legitimate devices (TPM recovery, token enrollment) still work.
 */
import t from 'tap';
import { generateKeyPairSync, sign } from 'node:crypto';
import { makeCsr, memoryLogger, requireCommand, tempDir } from './helpers.js';
import { connect, enroll, inbox, testGateway, waitFor } from './mqtt-helpers.js';
import { est, type Reply } from './est-helpers.js';
import { UNAUTHENTICATED_REFUSAL } from '../ca/index.js';
import { EST_PATHS, TPM_SIGNATURE_HEADER } from '../protocol/index.js';

const ENROLL = EST_PATHS.simpleenroll;
const IDS = ['dev-active', 'dev-tpm', 'dev-revoked', 'dev-unclaimed', 'nobody'] as const;

/** What a client can observe of a refusal (Date aside). */
const visible = (r: Reply) => ({
  status: r.status,
  body: r.body,
  type: r.headers['content-type'],
  length: r.headers['content-length'],
  auth: r.headers['www-authenticate'],
  retry: r.headers['retry-after'],
});

async function fleet(t: Tap.Test, claim: boolean) {
  const log = memoryLogger();
  // A generous rate limit: this test is about the answers, not the limiter.
  const gw = await testGateway(t, { claim, log, enrollment: { rateLimit: { perMinute: 600, burst: 1000, maxSources: 100 } } });
  const work = tempDir(t);
  const tpmKey = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const spki = tpmKey.publicKey.export({ format: 'der', type: 'spki' });
  const tpmSign = (csr: Buffer) => sign('sha256', csr, { key: tpmKey.privateKey, dsaEncoding: 'der' });
  await gw.ca.enrollWithToken('dev-active', (await gw.ca.createToken('dev-active')).token, makeCsr(work, '/CN=dev-active').der);
  const tpmCsr = makeCsr(work, '/CN=dev-tpm').der;
  await gw.ca.enrollWithToken('dev-tpm', (await gw.ca.createToken('dev-tpm')).token, tpmCsr, { spki, signature: tpmSign(tpmCsr) });
  await gw.ca.enrollWithToken('dev-revoked', (await gw.ca.createToken('dev-revoked')).token, makeCsr(work, '/CN=dev-revoked').der);
  await gw.ca.revoke({ deviceId: 'dev-revoked' });
  await gw.ca.enrollUnclaimed(makeCsr(work, '/CN=dev-unclaimed').der);
  return { gw, log, work, tpmSign };
}

const attacker = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
const attackerSig = (csr: Buffer) => sign('sha256', csr, { key: attacker.privateKey, dsaEncoding: 'der' }).toString('base64');

for (const claim of [true, false]) {
  t.test(`one answer for every id without credentials (claim mode ${claim ? 'on' : 'off'})`, async (t) => {
    if (!requireCommand(t, 'openssl', 'openssl')) return;
    const { gw, log, work, tpmSign } = await fleet(t, claim);
    const answers: Array<[string, Reply]> = [];
    for (const [i, id] of IDS.entries()) {
      // Each id from its own address, so that the throttled log keeps every precise reason.
      const localAddress = `127.0.3.${i + 1}`;
      const csr = makeCsr(work, `/CN=${id}`).der;
      // A CSR "signed by the TPM" with the attacker's key: the TPM-only recovery path.
      answers.push([`${id} + TPM signature`, await est(gw, ENROLL, { body: csr.toString('base64'), localAddress, headers: { [TPM_SIGNATURE_HEADER]: attackerSig(csr) } })]);
      // No credentials at all: claim mode's path (an unknown id would simply enroll there, as claim mode means).
      if (!claim || id !== 'nobody') answers.push([`${id} without credentials`, await est(gw, ENROLL, { body: csr.toString('base64'), localAddress })]);
    }
    const first = visible(answers[0]![1]);
    t.equal(first.status, 401);
    t.equal(first.body, UNAUTHENTICATED_REFUSAL + '\n');
    for (const [name, reply] of answers) t.same(visible(reply), first, `${name}: the same answer`);

    // The operator still sees why, in the log (one source per id, so none was summarised away).
    const reasons = (log.lines as Array<{ obj: { reason?: string }; msg?: string }>)
      .filter((l) => l.msg === 'EST request refused')
      .map((l) => l.obj.reason ?? '');
    for (const why of [/"nobody" is not enrolled/, /"dev-revoked" is revoked/, /"dev-active" has no TPM key on record/, /not signed by the device's TPM key/]) {
      t.ok(reasons.some((r) => why.test(r)), `logged: ${why}`);
    }
    if (claim) t.ok(reasons.some((r) => /"dev-unclaimed" is already enrolled/.test(r)), 'logged: already enrolled');
    t.equal((await gw.ca.inventory.certificates({ deviceId: 'nobody' })).length, 0, 'nothing was issued');

    // Legitimate devices are unaffected: TPM recovery with the real TPM key, and a token enrollment on MQTT.
    const recovery = makeCsr(work, '/CN=dev-tpm').der;
    const recovered = await est(gw, ENROLL, { body: recovery.toString('base64'), headers: { [TPM_SIGNATURE_HEADER]: tpmSign(recovery).toString('base64') } });
    t.equal(recovered.status, 200, 'the TPM device recovers');
    const creds = await enroll(gw, work, 'dev-new');
    const client = await connect(gw, creds);
    t.teardown(() => client.endAsync(true));
    const got = inbox(client);
    await client.subscribeAsync('devices/dev-new/#', { qos: 1 });
    await client.publishAsync('devices/dev-new/x', 'ok', { qos: 1 });
    await waitFor(() => got.some((m) => m.payload === 'ok'), 'dev-new round trip');
  });
}

t.test('a wrong token does not tell whether the id exists', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const { gw, work } = await fleet(t, false);
  const answers: Array<[string, Reply]> = [];
  for (const id of IDS) {
    const csr = makeCsr(work, `/CN=${id}`).der;
    answers.push([id, await est(gw, ENROLL, { body: csr.toString('base64'), auth: `${id}:not-a-real-token` })]);
  }
  const first = visible(answers[0]![1]);
  t.equal(first.status, 401);
  for (const [id, reply] of answers) t.same(visible(reply), first, `${id}: the same answer`);
  // The right token still works.
  const token = (await gw.ca.createToken('dev-active')).token;
  const ok = await est(gw, ENROLL, { body: makeCsr(work, '/CN=dev-active').der.toString('base64'), auth: `dev-active:${token}` });
  t.equal(ok.status, 200);
});
