/**
 * What a credential opened stays open only while the credential lasts, over real TLS: event streams opened with a
 * session end when the session is ended (logout, an admin over the API, the CLI in another process) or expires;
 * a keep-alive connection with an operator certificate is refused on its next request, then closed, once the
 * certificate is revoked or expires, and the streams that certificate opened are closed.
 */
import { spawn } from 'node:child_process';
import { Agent, request } from 'node:https';
import type { Socket } from 'node:net';
import t from 'tap';
import { API_PREFIX } from '../../protocol/index.js';
import { CLI, requireCommand } from '../helpers.js';
import { testGateway } from '../mqtt-helpers.js';
import { openStream, waitFor, type SseReader } from '../trust/helpers.js';
import { api, operatorCredentials, sessionFor, type Gw } from './helpers.js';

function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { timeout: 30_000 });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

async function live(stream: SseReader, what: string): Promise<void> {
  await waitFor(() => stream.events.some((e) => e.event === 'ready'), `${what}: ready`);
}

function ended(stream: SseReader): () => boolean {
  let done = false;
  void stream.closed.then(() => (done = true));
  return () => done;
}

/** GET on a keep-alive agent: whether it went over a connection the agent already had open, and which one. */
function getOn(gw: Gw, agent: Agent, path: string): Promise<{ status: number; json: any; headers: Record<string, unknown>; reused: boolean; socket: Socket }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: gw.httpsPort, path: API_PREFIX + path, agent, servername: 'localhost' }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, json: JSON.parse(body), headers: res.headers, reused: req.reusedSocket, socket: req.socket! }));
    });
    req.on('error', reject);
    req.end();
  });
}

t.test('a session stream ends with its session: logout, an admin, the CLI in another process', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const gw = await testGateway(t);
  const admin = await operatorCredentials(gw, 'admin', 'stream-admin');
  const [alice, bob, carol, dave] = await Promise.all(['alice', 'bob', 'carol', 'dave'].map((name) => sessionFor(gw, 'viewer', name)));
  const streams = Object.fromEntries([alice, bob, carol, dave].map((s, i) => [['alice', 'bob', 'carol', 'dave'][i]!, openStream(gw, { cookie: s!.cookie })]));
  for (const [name, stream] of Object.entries(streams)) {
    t.equal(await stream.status, 200, `${name}'s session opens the trust stream`);
    await live(stream, name);
  }
  const done = Object.fromEntries(Object.entries(streams).map(([name, s]) => [name, ended(s)]));

  t.equal((await api(gw, 'POST', '/logout', { cookie: alice!.cookie, csrf: alice!.csrf, body: {} })).status, 200, 'alice logs out');
  await waitFor(done.alice!, "alice's stream to end");
  t.pass("alice's stream ended with her logout");

  t.equal((await api(gw, 'DELETE', `/sessions/${bob!.id}`, admin)).status, 200, "an admin ends bob's session");
  await waitFor(done.bob!, "bob's stream to end");
  t.pass("bob's stream ended with his session");

  const byCli = await cli(['operator', 'logout', carol!.id, '--data', gw.dir]);
  t.equal(byCli.code, 0, `wott operator logout in another process: ${byCli.stderr}`);
  await waitFor(done.carol!, "carol's stream to end (the gateway rechecks the session store)");
  t.pass("carol's stream ended with her session, ended by another process");

  t.notOk(done.dave!(), "dave's stream, whose session lives on, is still open");
  const again = openStream(gw, { cookie: carol!.cookie });
  t.equal(await again.status, 401, 'an ended session cannot open a new stream');
  streams.dave!.kill();
});

t.test('a session stream ends when its session expires', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const gw = await testGateway(t, { api: { sessionTtlMs: 3000 } });
  const erin = await sessionFor(gw, 'viewer', 'erin');
  const stream = openStream(gw, { cookie: erin.cookie });
  t.equal(await stream.status, 200);
  await live(stream, 'erin');
  await waitFor(ended(stream), "erin's stream to end at her session's expiry");
  t.equal((await api(gw, 'GET', '/whoami', { cookie: erin.cookie })).status, 401, 'the session is expired');
});

t.test('a revoked operator certificate: refused on its keep-alive connection, which closes, and its stream closed', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const gw = await testGateway(t);
  const op = await operatorCredentials(gw, 'viewer', 'kept-alive');
  const other = await operatorCredentials(gw, 'viewer', 'bystander');
  const agent = new Agent({ keepAlive: true, maxSockets: 1, ca: gw.caPem, cert: op.cert, key: op.key });
  t.teardown(() => agent.destroy());

  const first = await getOn(gw, agent, '/whoami');
  t.equal(first.status, 200);
  const second = await getOn(gw, agent, '/whoami');
  t.ok(second.reused && second.socket === first.socket, 'the agent keeps one connection alive');
  const stream = openStream(gw, op);
  const bystander = openStream(gw, other);
  await live(stream, 'operator');
  await live(bystander, 'bystander');
  const closed = ended(stream);
  const bystanderClosed = ended(bystander);

  await gw.ca.revoke({ serial: op.serial }, 'keyCompromise');
  await waitFor(() => gw.view.isRevoked(op.serial), 'the gateway to learn of the revocation');
  const refused = await getOn(gw, agent, '/whoami');
  t.ok(refused.reused && refused.socket === first.socket, 'the next request goes over the same keep-alive connection');
  t.equal(refused.status, 401, 'and is refused');
  t.match(refused.json.message, /revoked/);
  t.equal(refused.headers.connection, 'close', 'with Connection: close');
  await waitFor(() => first.socket.destroyed, 'the keep-alive connection to close');
  t.pass('the connection is closed');
  await waitFor(closed, 'the revoked certificate\'s stream to close');
  t.pass('its open stream is closed');
  t.notOk(bystanderClosed(), "another operator's stream stays open");
  bystander.kill();
});

t.test('an operator certificate that expires: its keep-alive connection is refused, then closed, and its stream closed', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const gw = await testGateway(t);
  const { CertificateAuthority } = await import('../../ca/index.js');
  // The same CA with its clock set back so that the 30-day operator certificate expires a few seconds from now.
  const lifetime = 30 * 86_400_000;
  const issuedAt = Date.now();
  const past = await CertificateAuthority.open({ dataDir: gw.dir, now: () => new Date(Date.now() - lifetime + 8_000), onWarning: () => {} });
  const issued = await past.issueOperator('viewer', 'short-lived');
  past.close();
  const notAfter = Date.parse(new (await import('node:crypto')).X509Certificate(issued.pem).validTo);
  t.ok(notAfter > issuedAt && notAfter < issuedAt + 60_000, 'the certificate expires within a minute');
  const creds = { cert: issued.pem, key: issued.keyPem };
  const agent = new Agent({ keepAlive: true, maxSockets: 1, ca: gw.caPem, ...creds });
  t.teardown(() => agent.destroy());

  const first = await getOn(gw, agent, '/whoami');
  t.equal(first.status, 200, 'served while the certificate is valid');
  const stream = openStream(gw, creds);
  await live(stream, 'short-lived');
  const closed = ended(stream);
  // Keep the connection busy (an idle one would be closed by the server's keep-alive timeout) until it is refused.
  let last = first;
  let served = 0;
  while (last.status === 200 && Date.now() < notAfter + 30_000) {
    await new Promise((r) => setTimeout(r, 100));
    const sentAt = Date.now();
    last = await getOn(gw, agent, '/whoami');
    if (!last.reused || last.socket !== first.socket) t.fail('a request went over another connection');
    // The gateway checked between sentAt and now: served means it was still valid then; refused, expired.
    if (last.status === 200 && sentAt >= notAfter) t.fail(`served after the certificate expired (sent ${sentAt - notAfter} ms after)`);
    if (last.status === 200) served++;
  }
  t.ok(served > 0, `served over the same keep-alive connection until it expired (${served} requests)`);
  t.ok(Date.now() >= notAfter, 'refused only once it has expired');
  t.equal(last.status, 401);
  t.match(last.json.message, /expired/);
  t.equal(last.headers.connection, 'close');
  await waitFor(() => first.socket.destroyed, 'the keep-alive connection to close');
  await waitFor(closed, "the expired certificate's stream to close");
  t.pass('the stream opened with the expired certificate is closed');
});
