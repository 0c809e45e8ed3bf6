/**
 * POST /api/v1/devices/actions (one action on many devices: per-device results, each audited, refusals reported
 * per device, the id limit, roles and CSRF) and GET /api/v1/events/stream (fleet events for operators: enrollment,
 * renewal, quarantine and release, revocation, a score drop, authentication failures at the broker and at EST; backlog,
 * resume with Last-Event-ID, a session's stream ending with the session), on a real gateway over real TLS.
 */
import { request, type RequestOptions } from 'node:https';
import { createParser } from 'eventsource-parser';
import t from 'tap';
import { API_PREFIX, BULK_MAX_DEVICES, EST_PATHS, SESSION_COOKIE } from '../../protocol/index.js';
import { makeCsr, requireCommand, tempDir } from '../helpers.js';
import { connect, connectError, enroll, serviceCredentials, setScore, testGateway, waitFor } from '../mqtt-helpers.js';
import { api, operatorCredentials, sessionFor } from './helpers.js';

interface Sse {
  events: Array<{ id: string | undefined; event: string; data: any }>;
  status: Promise<number>;
  closed: Promise<void>;
  lastId(): string | undefined;
  kill(): void;
}

/** GET /api/v1/events/stream with a certificate or a session cookie, parsed by eventsource-parser. */
function openEvents(gw: { httpsPort: number; caPem: string }, who: { cert?: string; key?: string; cookie?: string }, query = '', lastEventId?: string): Sse {
  const events: Sse['events'] = [];
  let last = lastEventId;
  let resolveStatus!: (n: number) => void;
  let resolveClosed!: () => void;
  const status = new Promise<number>((r) => (resolveStatus = r));
  const closed = new Promise<void>((r) => (resolveClosed = r));
  const options: RequestOptions = {
    ca: gw.caPem,
    servername: 'localhost',
    agent: false,
    ...(who.cert ? { cert: who.cert, key: who.key } : {}),
    headers: { Accept: 'text/event-stream', ...(who.cookie ? { Cookie: `${SESSION_COOKIE}=${who.cookie}` } : {}), ...(lastEventId ? { 'Last-Event-ID': lastEventId } : {}) },
  };
  const req = request(`https://127.0.0.1:${gw.httpsPort}${API_PREFIX}/events/stream${query}`, options, (res) => {
    resolveStatus(res.statusCode!);
    const parser = createParser({
      onEvent: (e) => {
        if (e.id !== undefined) last = e.id;
        events.push({ id: e.id, event: e.event ?? 'message', data: JSON.parse(e.data) });
      },
    });
    res.setEncoding('utf8');
    res.on('data', (c: string) => parser.feed(c));
    res.on('close', () => resolveClosed());
  });
  req.on('error', () => resolveClosed());
  req.end();
  return { events, status, closed, lastId: () => last, kill: () => req.destroy() };
}

t.test('bulk device actions: per-device results, each audited; roles, CSRF and the id limit', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const gw = await testGateway(t);
  const dir = tempDir(t);
  for (const id of ['bk-1', 'bk-2', 'bk-3', 'bk-4']) await enroll(gw, dir, id);
  await gw.fleet.revoke({ deviceId: 'bk-4' }, 'keyCompromise');
  const op = await sessionFor(gw, 'operator', 'bulky');
  const call = (body: unknown, who: { cookie?: string; csrf?: string; cert?: string; key?: string } = op) => api(gw, 'POST', '/devices/actions', { ...who, body });

  const q = await call({ ids: ['bk-1', 'bk-2', 'bk-4', 'bk-none'], action: 'quarantine' });
  t.equal(q.status, 200, 'answered as a whole');
  t.match(q.json, { action: 'quarantine', succeeded: 2, failed: 2 });
  t.match(q.json.results, [
    { id: 'bk-1', ok: true, device: { state: 'quarantined' } },
    { id: 'bk-2', ok: true, device: { state: 'quarantined' } },
    { id: 'bk-4', ok: false, status: 409, message: /revoked/ },
    { id: 'bk-none', ok: false, status: 404 },
  ], 'one result per id, in order; the refusals say why');
  t.equal((await gw.ca.inventory.device('bk-1'))?.state, 'quarantined', 'in the inventory');
  t.equal((await gw.ca.inventory.device('bk-3'))?.state, 'active', 'a device not named is untouched');
  const audit = await gw.ca.inventory.auditEntries();
  const quarantines = audit.filter((e) => e.action === 'device.quarantine');
  t.same(quarantines.map((e) => [e.device, e.outcome, e.actor]), [
    ['bk-1', 'ok', 'session:operator:bulky'],
    ['bk-2', 'ok', 'session:operator:bulky'],
    ['bk-4', 'refused', 'session:operator:bulky'],
    ['bk-none', 'refused', 'session:operator:bulky'],
  ], 'each device audited on its own, with the session');

  await gw.fleet.setTags('bk-1', ['keep']);
  const tag = await call({ ids: ['bk-1', 'bk-3'], action: 'tag', tags: ['site:berlin', 'cam'] });
  t.match(tag.json, { succeeded: 2, failed: 0 });
  t.same((await gw.ca.inventory.device('bk-1'))?.tags, ['keep', 'site:berlin', 'cam'], 'tag adds, keeping the tags there were');
  const untag = await call({ ids: ['bk-1'], action: 'untag', tags: ['cam', 'absent'] });
  t.equal(untag.status, 200);
  t.same((await gw.ca.inventory.device('bk-1'))?.tags, ['keep', 'site:berlin'], 'untag removes only those');
  const release = await call({ ids: ['bk-1', 'bk-2'], action: 'release' });
  t.match(release.json, { succeeded: 2 });
  t.equal((await gw.ca.inventory.device('bk-2'))?.state, 'active');

  const viewer = await sessionFor(gw, 'viewer', 'watcher');
  const viewerCert = await operatorCredentials(gw, 'viewer', 'v-cert');
  const auditCount = (await gw.ca.inventory.auditEntries()).length;
  const tooMany = Array.from({ length: BULK_MAX_DEVICES + 1 }, (_, i) => `many-${i}`);
  t.equal((await call({ ids: tooMany, action: 'quarantine' })).status, 400, `more than ${BULK_MAX_DEVICES} ids: 400`);
  t.equal((await call({ ids: ['bk-1', 'bk-1'], action: 'quarantine' })).status, 400, 'repeated ids: 400');
  t.equal((await call({ ids: ['bk-1'], action: 'tag' })).status, 400, 'tag without tags: 400');
  t.equal((await call({ ids: ['bk-1'], action: 'quarantine', tags: ['x'] })).status, 400, 'tags with quarantine: 400');
  t.equal((await call({ ids: ['bk-1'], action: 'revoke' })).status, 400, 'revocation is not a bulk action');
  t.equal((await call({ ids: ['bk-1'], action: 'quarantine' }, { cookie: op.cookie })).status, 403, 'a session without its CSRF token: 403');
  t.equal((await call({ ids: ['bk-1'], action: 'quarantine' }, viewer)).status, 403, 'a viewer session: 403');
  t.equal((await call({ ids: ['bk-1'], action: 'quarantine' }, viewerCert)).status, 403, 'a viewer certificate: 403');
  t.equal((await gw.ca.inventory.auditEntries()).length, auditCount, 'refused requests reached no device');
  t.equal((await gw.ca.inventory.device('bk-1'))?.state, 'active', 'and changed nothing');
});

t.test('the fleet event stream: enrollment, renewal, quarantine, release, revocation, score drop, auth failure; backlog and resume', async (t) => {
  if (!requireCommand(t, 'openssl', 'openssl')) return;
  const gw = await testGateway(t, { api: { eventStream: { heartbeatMs: 200 } } });
  const dir = tempDir(t);
  const first = await enroll(gw, dir, 'ev-1');
  const scorer = await connect(gw, { ...(await serviceCredentials(gw, dir, 'scoring', 'ev')), id: 'scoring:ev' });
  t.teardown(() => scorer.end(true));
  const admin = await operatorCredentials(gw, 'admin', 'ev-admin');
  const viewer = await operatorCredentials(gw, 'viewer', 'ev-viewer');

  const service = await serviceCredentials(gw, dir, 'scoring', 'ev-reader');
  const refused = openEvents(gw, { cert: service.cert, key: service.key });
  t.equal(await refused.status, 403, 'service certificates have the trust stream, not this one');

  const live = openEvents(gw, viewer);
  t.equal(await live.status, 200, 'a viewer reads the fleet events');
  await waitFor(() => live.events.some((e) => e.event === 'ready'), 'ready');
  const seen = (type: string, device: string) => live.events.find((e) => e.event === 'fleet' && e.data.type === type && e.data.device === device);
  const waitSeen = async (type: string, device: string) => (await waitFor(() => !!seen(type, device), `${type} ${device}`), seen(type, device)!.data);

  await enroll(gw, dir, 'ev-2');
  t.match(await waitSeen('enrolled', 'ev-2'), { type: 'enrolled', device: 'ev-2', text: /enrolled/, serial: /^[0-9a-f]+$/ }, 'an enrollment through EST');
  await gw.fleet.renew(Buffer.from(first.cert.replace(/-----[A-Z ]+-----|\s/g, ''), 'base64'), makeCsr(dir, '/CN=ev-1').der);
  t.match(await waitSeen('renewed', 'ev-1'), { text: /new certificate/ }, 'a renewal');
  await connectError(gw, first);
  t.match(await waitSeen('auth_failure', 'ev-1'), { text: /connection refused: .*superseded/i, remoteAddress: /127\.0\.0\.1/ }, 'the broker refusing the superseded certificate');
  // An enrollment with a wrong token naming ev-2 (EST, as an attacker or a misconfigured agent would).
  const refusedEnroll = await api(gw, 'POST', EST_PATHS.simpleenroll, {
    body: makeCsr(dir, '/CN=ev-2').der.toString('base64'),
    headers: { 'Content-Type': 'application/pkcs10', Authorization: `Basic ${Buffer.from('ev-2:not-the-token').toString('base64')}` },
  });
  t.equal(refusedEnroll.status, 401, 'EST refuses the wrong token');
  t.match(await waitSeen('auth_failure', 'ev-2'), { text: 'enrollment refused: unknown enrollment token', remoteAddress: /127\.0\.0\.1/ }, 'a refused enrollment for a device of ours');
  await setScore(gw, scorer, 'ev-2', 0.8);
  await setScore(gw, scorer, 'ev-2', 0.3);
  t.match(await waitSeen('score_drop', 'ev-2'), { score: 0.3, previousScore: 0.8, text: 'score 0.80 → 0.30, below 0.4' }, 'a score drop below a threshold in use');
  t.equal((await api(gw, 'POST', '/devices/ev-2/quarantine', { ...admin, body: {} })).status, 200);
  t.match(await waitSeen('quarantined', 'ev-2'), { text: /quarantined/ });
  const resumeFrom = live.lastId()!;
  t.match(resumeFrom, /^[A-Za-z0-9_-]+-\d+$/, 'ids are {boot}-{seq}');
  live.kill();
  await live.closed;
  // While the client is away.
  t.equal((await api(gw, 'POST', '/devices/ev-2/release', { ...admin, body: {} })).status, 200);
  t.equal((await api(gw, 'POST', '/devices/ev-2/revoke', { ...admin, body: { reason: 'keyCompromise' } })).status, 200);

  const resumed = openEvents(gw, viewer, '', resumeFrom);
  await waitFor(() => resumed.events.some((e) => e.event === 'ready'), 'ready after resume');
  t.same(
    resumed.events.filter((e) => e.event === 'fleet').map((e) => [e.data.type, e.data.device]),
    [['released', 'ev-2'], ['revoked', 'ev-2']],
    'what happened meanwhile, once each, in order',
  );
  t.match(resumed.events.at(-1), { event: 'ready', data: { resumed: true } });
  resumed.kill();

  const fresh = openEvents(gw, viewer, '', 'otherboot-3');
  await waitFor(() => fresh.events.some((e) => e.event === 'ready'), 'ready');
  t.equal(fresh.events[0]!.event, 'reset', 'an id from another gateway process: a reset, then live');
  fresh.kill();

  const backlog = openEvents(gw, viewer, '?backlog=3');
  await waitFor(() => backlog.events.some((e) => e.event === 'ready'), 'ready with backlog');
  t.same(backlog.events.filter((e) => e.event === 'fleet').map((e) => e.data.type), ['quarantined', 'released', 'revoked'], 'the newest three first');
  backlog.kill();
  t.equal((await api(gw, 'GET', '/events/stream?backlog=1000', viewer)).status, 400, 'a backlog over 200: 400');

  const session = await sessionFor(gw, 'viewer', 'ev-session');
  const bySession = openEvents(gw, { cookie: session.cookie });
  t.equal(await bySession.status, 200, 'a browser session reads it too');
  await waitFor(() => bySession.events.some((e) => e.event === 'ready'), 'ready');
  t.equal((await api(gw, 'POST', '/logout', { cookie: session.cookie, csrf: session.csrf, body: {} })).status, 200);
  await bySession.closed;
  t.pass('signing out ends the session’s stream');

  const doomed = await operatorCredentials(gw, 'viewer', 'ev-doomed');
  const byCert = openEvents(gw, doomed);
  await waitFor(() => byCert.events.some((e) => e.event === 'ready'), 'ready');
  await gw.ca.revoke({ serial: doomed.serial }, 'keyCompromise');
  await gw.view.refresh();
  await byCert.closed;
  t.pass('revoking the operator certificate ends its stream');
});
